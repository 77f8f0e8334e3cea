/* SPDX-License-Identifier: MIT */
/* qvm sandbox: dispatches to the subcommands of sandbox_commands.h. */
#include <stdio.h>

#include "commands.h"
#include "sandbox_commands.h"

static const struct qvm_command *const subcommands[] = {
    &qvm_cmd_sandbox_create,
    &qvm_cmd_sandbox_ls,
    &qvm_cmd_sandbox_destroy,
    &qvm_cmd_sandbox_extend,
};

static void usage(FILE *f) {
  fprintf(f, "usage: qvm sandbox SUBCOMMAND [OPTIONS]\n\n"
             "Sandboxes: vms from a golden image or vm, on an isolated network, that\n"
             "their own shim removes at a deadline (see docs/cli.md).\n\nsubcommands:\n");
  for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
    fprintf(f, "  %-10s %s\n", subcommands[i]->name, subcommands[i]->summary);
  fprintf(f, "\nRun 'qvm sandbox SUBCOMMAND --help' for its options.\n");
}

void sandbox_cli_expiry(char *buf, size_t size, const char *expires_at, int64_t in_s) {
  if (in_s <= 0) {
    snprintf(buf, size, "%s (passed)", expires_at);
    return;
  }
  long long d = in_s / 86400, h = in_s % 86400 / 3600, m = in_s % 3600 / 60, s = in_s % 60;
  if (d)
    snprintf(buf, size, "%s (in %lldd %lldh)", expires_at, d, h);
  else if (h)
    snprintf(buf, size, "%s (in %lldh %lldm)", expires_at, h, m);
  else
    snprintf(buf, size, "%s (in %lldm %llds)", expires_at, m, s);
}

static int sandbox_run(int argc, char **argv) {
  return qvm_cli_dispatch("sandbox", usage, subcommands, sizeof subcommands / sizeof *subcommands,
                          argc, argv);
}

const struct qvm_command qvm_cmd_sandbox = {
    "sandbox", "vms with a deadline and an isolated network: create, ls, destroy, extend",
    sandbox_run};
