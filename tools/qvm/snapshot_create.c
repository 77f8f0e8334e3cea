/* SPDX-License-Identifier: MIT */
/* qvm snapshot create VM SNAP [--disk-only] [--json] */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "snapshot_commands.h"

static const char create_help[] =
    "usage: qvm snapshot create VM SNAP [--disk-only] [--json]\n"
    "\n"
    "Takes snapshot SNAP of the vm's disk, inside disk.qcow2. Of a running vm it\n"
    "holds the RAM and device state too ('qvm snapshot restore' makes the vm\n"
    "continue from that moment); the guest pauses while it is written. Of a\n"
    "stopped vm, the disk only. SNAP: 1-63 of a-z, 0-9 and '-'.\n"
    "Ctrl-C waits for QEMU to finish writing, then removes the snapshot.\n"
    "\n"
    "  --disk-only  of a running vm, the disk only (no pause for RAM; restore\n"
    "               it on the stopped vm)\n"
    "  --json       print {\"vm\", \"snapshot\", \"created\", \"running\"}\n";

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static int on_progress(const char *status, void *ctx) {
  char *last = ctx;
  if (strcmp(status, last) && isatty(STDERR_FILENO)) {
    fprintf(stderr, "snapshot: %s%s\n", status, interrupted ? " (interrupting)" : "");
    snprintf(last, 32, "%s", status);
  }
  return interrupted;
}

static int create_run(int argc, char **argv) {
  snapshot_cli_args a;
  int r = snapshot_cli_parse(&a, "snapshot create", create_help, true, true, argc, argv);
  if (r) return r < 0 ? QVM_EXIT_OK : r;
  qvm_error *err = NULL;
  qvm_vm *vm = NULL;
  if (qvm_cli_open(&vm, a.vm, &err) < 0)
    return qvm_cli_fail("snapshot create", err, qvm_cli_vm_hint(err));
  char last[32] = "";
  qvm_vm_snapshot_options opts = QVM_VM_SNAPSHOT_OPTIONS_INIT;
  opts.disk_only = a.disk_only;
  opts.progress = on_progress;
  opts.progress_ctx = last;
  struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  r = qvm_vm_snapshot_create(vm, a.snapshot, &opts, &err);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  if (r < 0) {
    qvm_vm_free(vm);
    return qvm_cli_fail("snapshot create", err, NULL);
  }
  r = snapshot_cli_done(&a, vm, "created");
  qvm_vm_free(vm);
  return r;
}

const struct qvm_command qvm_cmd_snapshot_create = {"create", "take a snapshot", create_run};
