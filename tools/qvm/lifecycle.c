/* SPDX-License-Identifier: MIT */
/* qvm create, start, stop, kill, restart, rm, run. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/vm.h>

#include "commands.h"

static bool wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
  }
  return false;
}

/* The single NAME operand after the options, or a usage error. */
static int one_name(const char *verb, int argc, char **argv, const char **out) {
  if (optind >= argc) return qvm_cli_usage_error(verb, "missing the vm name");
  if (optind + 1 < argc)
    return qvm_cli_usage_error(verb, "unexpected argument '%s'", argv[optind + 1]);
  *out = argv[optind];
  return 0;
}

static int parse_int(const char *verb, const char *what, const char *s, int min, int max,
                     int *out) {
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < min || v > max)
    return qvm_cli_usage_error(verb, "%s '%s' is invalid: use a number from %d to %d", what, s, min,
                               max);
  *out = (int)v;
  return 0;
}

/* QVM_EBUSY is also `rm` of a running vm, whose message says what to do
 * ("stop it first, or use --force"): the wait hint is for a held lock only,
 * whose message names the holder ("... holds the vm's lock"). */
static const char *hint_for(const qvm_error *err) {
  switch (qvm_error_code(err)) {
  case QVM_ENOTFOUND: return QVM_CLI_HINT_NO_VM;
  case QVM_EBUSY:
    return strstr(qvm_error_message(err), "holds the vm's lock")
               ? "wait for the other operation to finish, then retry"
               : NULL;
  default: return NULL;
  }
}

static int fail(const char *verb, qvm_error *err) { return qvm_cli_fail(verb, err, hint_for(err)); }

/* --- start / stop / kill / restart -------------------------------------- */

static const char start_help[] =
    "usage: qvm start NAME [--timeout S]\n\n"
    "Starts the vm's supervisor (shim), which starts QEMU, and returns once\n"
    "QEMU's monitor answers. A running vm is left alone.\n\n"
    "  --timeout S   how long to wait for QEMU (default 60)\n";

static const char stop_help[] =
    "usage: qvm stop NAME [--timeout S]\n\n"
    "Presses the ACPI power button and waits for the guest to power off; after\n"
    "S seconds (default 60) tells QEMU to quit, and kills it if that fails too.\n"
    "A stopped vm is left alone.\n";

static const char restart_help[] = "usage: qvm restart NAME [--timeout S]\n\nqvm stop NAME, then "
                                   "qvm start NAME, under one lock.\n";

static int timed_options(const char *verb, int argc, char **argv, int *timeout) {
  static const struct option longopts[] = {{"timeout", 1, 0, 't'}, {0, 0, 0, 0}};
  int c;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":t:", longopts)) != -1) {
    if (c != 't') return qvm_cli_bad_option(verb, c, argv);
    if (parse_int(verb, "timeout", optarg, 0, 86400, timeout)) return QVM_EXIT_USAGE;
  }
  return 0;
}

static int open_vm(const char *verb, const char *name, qvm_vm **out) {
  qvm_error *err = NULL;
  if (qvm_cli_open(out, name, &err) < 0) return fail(verb, err);
  return 0;
}

static int start_run(int argc, char **argv) {
  if (wants_help(argc, argv)) return printf("%s", start_help), QVM_EXIT_OK;
  int timeout = 60, r;
  const char *name = NULL;
  qvm_vm *vm = NULL;
  if ((r = timed_options("start", argc, argv, &timeout)) ||
      (r = one_name("start", argc, argv, &name)) || (r = open_vm("start", name, &vm)))
    return r;
  qvm_vm_start_options o = QVM_VM_START_OPTIONS_INIT;
  o.timeout_ms = timeout * 1000;
  qvm_error *err = NULL;
  bool was_running = qvm_vm_get_state(vm) == QVM_VM_RUNNING;
  if (qvm_vm_start(vm, &o, &err) < 0)
    r = fail("start", err);
  else if (was_running)
    fprintf(stderr, "vm '%s' is already running\n", name);
  else
    qvm_cli_print_warnings(vm, false);
  qvm_vm_free(vm);
  return r;
}

static int stop_run(int argc, char **argv) {
  if (wants_help(argc, argv)) return printf("%s", stop_help), QVM_EXIT_OK;
  int timeout = 60, r;
  const char *name = NULL;
  qvm_vm *vm = NULL;
  if ((r = timed_options("stop", argc, argv, &timeout)) ||
      (r = one_name("stop", argc, argv, &name)) || (r = open_vm("stop", name, &vm)))
    return r;
  qvm_vm_state before = qvm_vm_get_state(vm);
  bool live = before == QVM_VM_RUNNING || before == QVM_VM_STARTING || before == QVM_VM_STOPPING;
  qvm_vm_stop_options o = QVM_VM_STOP_OPTIONS_INIT;
  o.timeout_ms = timeout * 1000; /* the flag counts seconds */
  qvm_error *err = NULL;
  if (qvm_vm_stop(vm, &o, &err) < 0)
    r = fail("stop", err);
  else if (!live)
    fprintf(stderr, "vm '%s' is not running\n", name);
  else
    qvm_cli_print_exit(vm);
  qvm_vm_free(vm);
  return r;
}

static int kill_run(int argc, char **argv) {
  if (wants_help(argc, argv))
    return printf("usage: qvm kill NAME\n\nKills QEMU at once (SIGKILL). The guest gets no "
                  "chance to shut down.\n"),
           QVM_EXIT_OK;
  int r;
  const char *name = NULL;
  qvm_vm *vm = NULL;
  if (argc > 1 && argv[1][0] == '-' && strcmp(argv[1], "--"))
    return qvm_cli_usage_error("kill", "unknown option '%s'", argv[1]);
  optind = argc > 1 && !strcmp(argv[1], "--") ? 2 : 1;
  if ((r = one_name("kill", argc, argv, &name)) || (r = open_vm("kill", name, &vm))) return r;
  qvm_error *err = NULL;
  if (qvm_vm_kill(vm, &err) < 0) r = fail("kill", err);
  qvm_vm_free(vm);
  return r;
}

static int restart_run(int argc, char **argv) {
  if (wants_help(argc, argv)) return printf("%s", restart_help), QVM_EXIT_OK;
  int timeout = 60, r;
  const char *name = NULL;
  qvm_vm *vm = NULL;
  if ((r = timed_options("restart", argc, argv, &timeout)) ||
      (r = one_name("restart", argc, argv, &name)) || (r = open_vm("restart", name, &vm)))
    return r;
  qvm_vm_stop_options so = QVM_VM_STOP_OPTIONS_INIT;
  so.timeout_ms = timeout * 1000; /* the flag counts seconds */
  qvm_error *err = NULL;
  if (qvm_vm_restart(vm, &so, NULL, &err) < 0)
    r = fail("restart", err);
  else
    qvm_cli_print_warnings(vm, false);
  qvm_vm_free(vm);
  return r;
}

const struct qvm_command qvm_cmd_start = {"start", "start a vm", start_run};
const struct qvm_command qvm_cmd_stop = {"stop", "stop a vm gracefully", stop_run};
const struct qvm_command qvm_cmd_kill = {"kill", "kill a vm's QEMU at once", kill_run};
const struct qvm_command qvm_cmd_restart = {"restart", "stop, then start a vm", restart_run};

/* --- rm -------------------------------------------------------------------- */

static int rm_run(int argc, char **argv) {
  static const struct option longopts[] = {{"force", 0, 0, 'f'}, {0, 0, 0, 0}};
  if (wants_help(argc, argv))
    return printf("usage: qvm rm NAME [--force]\n\nRemoves a vm and everything it has: disk, "
                  "logs, sockets, lock.\n\n  -f, --force   kill the vm first if it runs\n"),
           QVM_EXIT_OK;
  bool force = false;
  int c, r;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":f", longopts)) != -1) {
    if (c != 'f') return qvm_cli_bad_option("rm", c, argv);
    force = true;
  }
  const char *name = NULL;
  if ((r = one_name("rm", argc, argv, &name))) return r;
  qvm_error *err = NULL;
  qvm_vm *vm = NULL;
  if (force && qvm_vm_open(&vm, name, &err) < 0 && qvm_error_code(err) != QVM_ENOTFOUND)
    fprintf(stderr,
            "qvm rm: warning: %s\nqvm rm: removing vm '%s' anyway: only a shim that answers on its "
            "ctl.sock is stopped; a tap it made is left\n",
            qvm_error_message(err), name);
  qvm_vm_free(vm);
  qvm_error_free(err);
  err = NULL;
  if (qvm_vm_remove(name, force, &err) < 0) return fail("rm", err);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_rm = {"rm", "remove a vm", rm_run};

/* --- run ------------------------------------------------------------------- */

static const char run_help[] =
    "usage: qvm run NAME [--timeout S]\n\n"
    "Runs the vm in the foreground: this process is its supervisor. SIGTERM or\n"
    "SIGINT stops it gracefully (power button; after S seconds, default 60,\n"
    "quit, then kill). The exit status is the guest's outcome:\n"
    "  0        the guest shut down cleanly\n"
    "  1        QEMU exited with an error, or qvm failed\n"
    "  124      the guest did not power off in time; QEMU was made to quit\n"
    "  128+N    QEMU was killed by signal N (137: qvm kill or SIGKILL)\n"
    "  2-8      qvm could not start it (see qvm --help)\n";

static int run_run(int argc, char **argv) {
  if (wants_help(argc, argv)) return printf("%s", run_help), QVM_EXIT_OK;
  int timeout = 60, r;
  const char *name = NULL;
  qvm_vm *vm = NULL;
  if ((r = timed_options("run", argc, argv, &timeout)) ||
      (r = one_name("run", argc, argv, &name)) || (r = open_vm("run", name, &vm)))
    return r;
  int status = QVM_RUN_EXIT_ERROR;
  qvm_error *err = NULL;
  if (qvm_vm_run(&status, vm, timeout * 1000, &err) < 0) {
    r = fail("run", err);
  } else {
    qvm_cli_print_exit(vm);
    r = status;
  }
  qvm_vm_free(vm);
  return r;
}

const struct qvm_command qvm_cmd_run = {"run", "run a vm in the foreground", run_run};
