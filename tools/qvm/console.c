/* SPDX-License-Identifier: MIT */
/* qvm console: the guest's serial port, interactively. Ctrl-] detaches. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <qvm/vm.h>

#include "commands.h"

#define DETACH_KEY 0x1d /* Ctrl-] */

static int relay(int sock) {
  char buf[4096];
  for (;;) {
    struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return QVM_EXIT_FAILURE;
    }
    if (p[1].revents) {
      ssize_t n = read(sock, buf, sizeof buf);
      if (n <= 0) return QVM_EXIT_OK; /* the vm stopped */
      if (write(STDOUT_FILENO, buf, (size_t)n) < 0) return QVM_EXIT_FAILURE;
    }
    if (p[0].revents) {
      ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
      if (n <= 0) return QVM_EXIT_OK;
      char *detach = memchr(buf, DETACH_KEY, (size_t)n);
      size_t len = detach ? (size_t)(detach - buf) : (size_t)n;
      if (len && write(sock, buf, len) < 0) return QVM_EXIT_FAILURE;
      if (detach) return QVM_EXIT_OK;
    }
  }
}

static int console_run(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
    return printf("usage: qvm console NAME\n\nAttaches to the vm's serial console. Press Ctrl-] "
                  "to detach.\nOne console client at a time; a second one waits.\n"),
           QVM_EXIT_OK;
  if (argc < 2) return qvm_cli_usage_error("console", "missing the vm name");
  if (argv[1][0] == '-') return qvm_cli_usage_error("console", "unknown option '%s'", argv[1]);
  if (argc > 2) return qvm_cli_usage_error("console", "unexpected argument '%s'", argv[2]);
  qvm_vm *vm = NULL;
  qvm_error *err = NULL;
  int sock = -1;
  if (qvm_cli_open(&vm, argv[1], &err) < 0)
    return qvm_cli_fail("console", err, qvm_cli_vm_hint(err));
  if (qvm_vm_console_connect(&sock, vm, &err) < 0) {
    bool stopped = qvm_vm_get_state(vm) != QVM_VM_RUNNING;
    char hint[128];
    snprintf(hint, sizeof hint, "start it with 'qvm start %s'", argv[1]);
    qvm_vm_free(vm);
    return qvm_cli_fail("console", err, stopped ? hint : NULL);
  }
  struct termios saved, raw;
  bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
  if (tty) {
    raw = saved;
    cfmakeraw(&raw);
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    fprintf(stderr, "connected to '%s'; press Ctrl-] to detach\r\n", argv[1]);
  }
  int rc = relay(sock);
  if (tty) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  close(sock);
  qvm_vm_free(vm);
  return rc;
}

const struct qvm_command qvm_cmd_console = {"console", "attach to a vm's serial console",
                                            console_run};
