/* SPDX-License-Identifier: MIT */
/* qvm snapshot rm VM SNAP [--json] */
#include <stdio.h>

#include "snapshot_commands.h"

static const char rm_help[] = "usage: qvm snapshot rm VM SNAP [--json]\n"
                              "\n"
                              "Removes snapshot SNAP from the vm's disk and record (running or "
                              "stopped).\n"
                              "\n"
                              "  --json   print {\"vm\", \"snapshot\", \"removed\", \"running\"}\n";

static int rm_run(int argc, char **argv) {
  snapshot_cli_args a;
  int r = snapshot_cli_parse(&a, "snapshot rm", rm_help, true, false, argc, argv);
  if (r) return r < 0 ? QVM_EXIT_OK : r;
  qvm_error *err = NULL;
  qvm_vm *vm = NULL;
  if (qvm_cli_open(&vm, a.vm, &err) < 0)
    return qvm_cli_fail("snapshot rm", err, qvm_cli_vm_hint(err));
  if (qvm_vm_snapshot_remove(vm, a.snapshot, NULL, &err) < 0) {
    qvm_vm_free(vm);
    return qvm_cli_fail("snapshot rm", err, NULL);
  }
  r = snapshot_cli_done(&a, vm, "removed");
  qvm_vm_free(vm);
  return r;
}

const struct qvm_command qvm_cmd_snapshot_rm = {"rm", "remove a snapshot", rm_run};
