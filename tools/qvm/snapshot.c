/* SPDX-License-Identifier: MIT */
/* qvm snapshot: dispatches to the subcommands of snapshot_commands.h. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "snapshot_commands.h"

static const struct qvm_command *const subcommands[] = {
    &qvm_cmd_snapshot_create,
    &qvm_cmd_snapshot_ls,
    &qvm_cmd_snapshot_restore,
    &qvm_cmd_snapshot_rm,
};

static void usage(FILE *f) {
  fprintf(f, "usage: qvm snapshot SUBCOMMAND [OPTIONS]\n\n"
             "Snapshots of a vm's disk, kept inside it; a running vm's hold its RAM too\n"
             "(see docs/cli.md).\n\nsubcommands:\n");
  for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
    fprintf(f, "  %-10s %s\n", subcommands[i]->name, subcommands[i]->summary);
  fprintf(f, "\nRun 'qvm snapshot SUBCOMMAND --help' for its options.\n");
}

int snapshot_cli_parse(snapshot_cli_args *out, const char *verb, const char *help, bool want_snap,
                       bool allow_disk_only, int argc, char **argv) {
  static const struct option with_disk_only[] = {
      {"json", 0, 0, 'j'}, {"disk-only", 0, 0, 'd'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  static const struct option plain[] = {{"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  *out = (snapshot_cli_args){0};
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", allow_disk_only ? with_disk_only : plain)) != -1) {
    if (c == 'j')
      out->json = true;
    else if (c == 'd')
      out->disk_only = true;
    else if (c == 'h')
      return printf("%s", help), -1;
    else
      return qvm_cli_bad_option(verb, c, argv);
  }
  int want = want_snap ? 2 : 1;
  if (argc - optind < want)
    return qvm_cli_usage_error(verb,
                               optind < argc ? "missing the snapshot name" : "missing the vm name");
  if (argc - optind > want)
    return qvm_cli_usage_error(verb, "unexpected argument '%s'", argv[optind + want]);
  out->vm = argv[optind];
  out->snapshot = want_snap ? argv[optind + 1] : NULL;
  return 0;
}

int snapshot_cli_done(const snapshot_cli_args *a, qvm_vm *vm, const char *did) {
  bool running = qvm_vm_get_state(vm) == QVM_VM_RUNNING;
  if (a->json) {
    printf("{\"vm\": ");
    qvm_cli_json_string(stdout, qvm_vm_name(vm));
    printf(", \"snapshot\": ");
    qvm_cli_json_string(stdout, a->snapshot);
    printf(", \"%s\": true, \"running\": %s}\n", did, running ? "true" : "false");
  } else {
    printf("vm '%s': snapshot '%s' %s%s\n", qvm_vm_name(vm), a->snapshot, did,
           running ? " (running)" : "");
  }
  return QVM_EXIT_OK;
}

static int snapshot_run(int argc, char **argv) {
  return qvm_cli_dispatch("snapshot", usage, subcommands, sizeof subcommands / sizeof *subcommands,
                          argc, argv);
}

const struct qvm_command qvm_cmd_snapshot = {
    "snapshot", "snapshot a vm (with its RAM while it runs), restore, list, remove", snapshot_run};
