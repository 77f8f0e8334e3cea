/* SPDX-License-Identifier: MIT */
/* qvm snapshot restore VM SNAP [--json] */
#include <stdio.h>

#include "snapshot_commands.h"

static const char restore_help[] =
    "usage: qvm snapshot restore VM SNAP [--json]\n"
    "\n"
    "Rolls the vm back to snapshot SNAP. A running vm continues from a snapshot\n"
    "taken with its RAM (what ran then runs again; what came after is gone). A\n"
    "stopped vm gets a disk-only snapshot's disk back. A snapshot with RAM is\n"
    "restored into a running vm (start it first); a disk-only one into a\n"
    "stopped vm (stop it first).\n"
    "\n"
    "  --json   print {\"vm\", \"snapshot\", \"restored\", \"running\"}\n";

static int restore_run(int argc, char **argv) {
  snapshot_cli_args a;
  int r = snapshot_cli_parse(&a, "snapshot restore", restore_help, true, false, argc, argv);
  if (r) return r < 0 ? QVM_EXIT_OK : r;
  qvm_error *err = NULL;
  qvm_vm *vm = NULL;
  if (qvm_cli_open(&vm, a.vm, &err) < 0)
    return qvm_cli_fail("snapshot restore", err, qvm_cli_vm_hint(err));
  if (qvm_vm_snapshot_restore(vm, a.snapshot, NULL, &err) < 0) {
    qvm_vm_free(vm);
    return qvm_cli_fail("snapshot restore", err, NULL);
  }
  r = snapshot_cli_done(&a, vm, "restored");
  qvm_vm_free(vm);
  return r;
}

const struct qvm_command qvm_cmd_snapshot_restore = {"restore", "roll a vm back to a snapshot",
                                                     restore_run};
