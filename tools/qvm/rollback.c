/* SPDX-License-Identifier: MIT */
/* qvm rollback NAME [--to N|SNAP] [--json] */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <qvm/snapshot.h>
#include <qvm/vm.h>

#include "commands.h"

#define VERB "rollback"

static const char rollback_help[] =
    "usage: qvm rollback NAME [--to N | --to SNAP] [--json]\n"
    "\n"
    "Undoes what happened since a checkpoint ('qvm exec --checkpoint'): restores\n"
    "the latest checkpoint, checkpoint N, or any snapshot SNAP, as 'qvm snapshot\n"
    "restore' does (a running vm continues from that moment, memory and disk).\n"
    "The checkpoint stays, so the same one can be rolled back to again.\n"
    "\n"
    "  --to N|SNAP   checkpoint ckpt-N, or the snapshot named SNAP\n"
    "  --json        print {\"name\", \"restored\"}\n";

static int rollback_run(int argc, char **argv) {
  static const struct option longopts[] = {{"to", required_argument, 0, 't'},
                                           {"json", no_argument, 0, 'j'},
                                           {"help", no_argument, 0, 'h'},
                                           {0, 0, 0, 0}};
  const char *to = NULL;
  bool json = false;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    switch (c) {
    case 't': to = optarg; break;
    case 'j': json = true; break;
    case 'h': return fputs(rollback_help, stdout), QVM_EXIT_OK;
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  if (optind >= argc) return qvm_cli_usage_error(VERB, "missing the vm's name");
  if (argc - optind > 1)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 1]);
  if (to && !to[0]) return qvm_cli_usage_error(VERB, "--to needs a checkpoint number or a name");
  qvm_vm *vm = NULL;
  qvm_error *err = NULL;
  if (qvm_cli_open(&vm, argv[optind], &err) < 0)
    return qvm_cli_fail(VERB, err, qvm_cli_vm_hint(err));
  char name[QVM_VM_CHECKPOINT_NAME_MAX];
  int r = qvm_vm_rollback(name, vm, to, &err);
  if (r < 0) {
    const char *cls = qvm_error_class(err);
    int rc = qvm_cli_fail(VERB, err,
                          cls && !strcmp(cls, "NoCheckpoint")
                              ? "take one with: qvm exec NAME --checkpoint -- CMD"
                              : "qvm snapshot ls NAME lists the checkpoints (ckpt-N)");
    qvm_vm_free(vm);
    return rc;
  }
  if (json) {
    printf("{\"name\":");
    qvm_cli_json_string(stdout, qvm_vm_name(vm));
    printf(",\"restored\":");
    qvm_cli_json_string(stdout, name);
    printf("}\n");
  } else {
    printf("vm '%s' rolled back to %s\n", qvm_vm_name(vm), name);
  }
  qvm_vm_free(vm);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_rollback = {
    "rollback", "undo what happened since a checkpoint (qvm exec --checkpoint)", rollback_run};
