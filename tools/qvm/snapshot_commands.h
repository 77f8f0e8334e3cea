/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_SNAPSHOT_COMMANDS_H
#define QVM_TOOLS_SNAPSHOT_COMMANDS_H

/* `qvm snapshot SUB`: one file per subcommand, dispatched by snapshot.c. */
#include <stdbool.h>

#include <qvm/snapshot.h>

#include "cli.h"

extern const struct qvm_command qvm_cmd_snapshot_create;
extern const struct qvm_command qvm_cmd_snapshot_ls;
extern const struct qvm_command qvm_cmd_snapshot_restore;
extern const struct qvm_command qvm_cmd_snapshot_rm;

typedef struct snapshot_cli_args {
  const char *vm, *snapshot; /* snapshot NULL for ls */
  bool json, disk_only;
} snapshot_cli_args;

/* Parses "VM [SNAP] [--json] [--disk-only]" for `qvm snapshot VERB` (verb
 * "snapshot create"); --disk-only only when allowed, SNAP unless ls.
 * Returns 0, -1 after printing help, or an exit code. */
int snapshot_cli_parse(snapshot_cli_args *out, const char *verb, const char *help, bool want_snap,
                       bool allow_disk_only, int argc, char **argv);
/* Prints {"vm","snapshot",...} or a line; for create, restore and rm. */
int snapshot_cli_done(const snapshot_cli_args *a, qvm_vm *vm, const char *did);

#endif
