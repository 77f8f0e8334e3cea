/* SPDX-License-Identifier: MIT */
#include "qemu_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

static void nap_ms(long ms) { nanosleep(&(struct timespec){.tv_nsec = ms * 1000000}, NULL); }

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int listen_unix(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (fd < 0 || strlen(path) >= sizeof(sa.sun_path)) goto fail;
  strcpy(sa.sun_path, path);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) goto fail;
  return fd;
fail:
  if (fd >= 0) close(fd);
  return -1;
}

/* In the child: QEMU's argv, with the monitor on the inherited fd 3. */
static void exec_qemu(qemu_proc *q, const char *kernel, const char *initrd, int lfd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  /* dup2 onto itself would keep O_CLOEXEC. */
  if (lfd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(lfd, 3) < 0) _exit(126);
  int err = open(q->errlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (err < 0 || null < 0) _exit(126);
  dup2(null, 0);
  dup2(err, 1);
  dup2(err, 2);
  char serial[300];
  snprintf(serial, sizeof(serial), "file:%s", q->serial);
  const char *argv[40];
  int n = 0;
  const char *base[] = {"qemu-system-x86_64",
                        "-accel",
                        "tcg",
                        "-cpu",
                        "max",
                        "-m",
                        "256",
                        "-nodefaults",
                        "-display",
                        "none",
                        "-no-reboot",
                        "-S",
                        "-serial",
                        serial,
                        "-chardev",
                        "socket,id=mon,fd=3,server=on,wait=off",
                        "-mon",
                        "chardev=mon,mode=control"};
  for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) argv[n++] = base[i];
  if (kernel) {
    argv[n++] = "-kernel";
    argv[n++] = kernel;
    argv[n++] = "-initrd";
    argv[n++] = initrd;
    argv[n++] = "-append";
    argv[n++] = "console=ttyS0 qvm.dhcp=0 qvm.cdrom=0";
  }
  argv[n] = NULL;
  execvp(argv[0], (char **)argv);
  _exit(127);
}

int qemu_proc_start(qemu_proc *q, const char *kernel, const char *initrd, char *why,
                    size_t why_len) {
  memset(q, 0, sizeof(*q));
  q->pid = -1;
  q->dir = qvm_test_mkdtemp("qemu");
  snprintf(q->sock, sizeof(q->sock), "%s/qmp.sock", q->dir);
  snprintf(q->serial, sizeof(q->serial), "%s/serial.log", q->dir);
  snprintf(q->errlog, sizeof(q->errlog), "%s/qemu.err", q->dir);
  int lfd = listen_unix(q->sock);
  if (lfd < 0) {
    snprintf(why, why_len, "cannot listen on '%s': %s", q->sock, strerror(errno));
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) exec_qemu(q, kernel, initrd, lfd);
  close(lfd);
  if (pid < 0) {
    snprintf(why, why_len, "fork: %s", strerror(errno));
    return -1;
  }
  q->pid = pid;
  return 0;
}

bool qemu_proc_wait_exit(qemu_proc *q, int timeout_ms) {
  if (q->pid <= 0) return true;
  long deadline = now_ms() + timeout_ms;
  for (;;) {
    pid_t r = waitpid(q->pid, &q->status, WNOHANG);
    if (r == q->pid) {
      q->pid = 0;
      return true;
    }
    if (now_ms() >= deadline) return false;
    nap_ms(20);
  }
}

static bool serial_has_line(const char *path, const char *line) {
  FILE *f = fopen(path, "re");
  if (!f) return false;
  char buf[4096];
  bool found = false;
  while (!found && fgets(buf, sizeof(buf), f)) {
    buf[strcspn(buf, "\r\n")] = '\0';
    found = strcmp(buf, line) == 0;
  }
  fclose(f);
  return found;
}

bool qemu_proc_wait_serial(qemu_proc *q, const char *line, int timeout_ms) {
  long deadline = now_ms() + timeout_ms;
  while (!serial_has_line(q->serial, line)) {
    if (now_ms() >= deadline || q->pid <= 0) return false;
    if (waitpid(q->pid, &q->status, WNOHANG) == q->pid) {
      q->pid = 0;
      return serial_has_line(q->serial, line);
    }
    nap_ms(50);
  }
  return true;
}

void qemu_proc_stop(qemu_proc *q) {
  if (q->pid > 0) {
    kill(q->pid, SIGKILL);
    waitpid(q->pid, &q->status, 0);
    q->pid = 0;
  }
  if (q->dir) {
    qvm_test_rmtree(q->dir);
    free(q->dir);
    q->dir = NULL;
  }
}

const char *qemu_proc_tail(qemu_proc *q) {
  static char out[4096];
  out[0] = '\0';
  if (!q->dir) return out;
  char *tail = qvm_test_sh_output("tail -n 15 '%s' 2>/dev/null | tr -d '\\r'; tail -n 5 '%s'",
                                  q->serial, q->errlog);
  snprintf(out, sizeof(out), "%s", tail ? tail : "");
  free(tail);
  return out;
}
