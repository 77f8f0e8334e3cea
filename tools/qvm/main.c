/* SPDX-License-Identifier: MIT */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/audit.h>

#include "commands.h"

const struct qvm_command *const qvm_commands[] = {
    &qvm_cmd_version, &qvm_cmd_seed,       &qvm_cmd_create,     &qvm_cmd_start,
    &qvm_cmd_stop,    &qvm_cmd_kill,       &qvm_cmd_restart,    &qvm_cmd_resize,
    &qvm_cmd_set,     &qvm_cmd_snapshot,   &qvm_cmd_rollback,   &qvm_cmd_clone,
    &qvm_cmd_fork,    &qvm_cmd_rm,         &qvm_cmd_run,        &qvm_cmd_ls,
    &qvm_cmd_info,    &qvm_cmd_logs,       &qvm_cmd_console,    &qvm_cmd_exec,
    &qvm_cmd_ssh,     &qvm_cmd_shell,      &qvm_cmd_ssh_config, &qvm_cmd_authorize,
    &qvm_cmd_cp,      &qvm_cmd_provision,  &qvm_cmd_ip,         &qvm_cmd_up,
    &qvm_cmd_down,    &qvm_cmd_image,      &qvm_cmd_cert,       &qvm_cmd_audit,
    &qvm_cmd_sandbox, &qvm_cmd_diff,       &qvm_cmd_review,     &qvm_cmd_mcp,
    &qvm_cmd_tools,   &qvm_cmd_completion, &qvm_cmd_complete,
};
const size_t qvm_commands_count = sizeof qvm_commands / sizeof qvm_commands[0];

static void usage(FILE *f) {
  fprintf(f, "usage: qvm COMMAND [OPTIONS]\n\n"
             "Runs QEMU virtual machines directly: no libvirt, no daemon.\n\n"
             "commands:\n");
  for (size_t i = 0; i < qvm_commands_count; i++)
    if (qvm_commands[i]->name[0] != '_') /* __complete: for the scripts only */
      fprintf(f, "  %-12s %s\n", qvm_commands[i]->name, qvm_commands[i]->summary);
  fprintf(f, "\nRun 'qvm COMMAND --help' (or 'qvm help COMMAND') for a command's options.\n"
             "Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 exists/conflict,\n"
             "5 timeout, 6 busy, 7 QEMU error, 8 SSH auth/host key (see docs/cli.md).\n");
}

static const struct qvm_command *find_command(const char *name) {
  for (size_t i = 0; i < qvm_commands_count; i++)
    if (!strcmp(qvm_commands[i]->name, name)) return qvm_commands[i];
  return NULL;
}

/* `qvm help VERB` is `qvm VERB --help`. */
static int help_run(const char *verb) {
  const struct qvm_command *cmd = find_command(verb);
  if (!cmd) {
    fprintf(stderr, "qvm help: unknown command '%s'\ntry 'qvm --help'\n", verb);
    return QVM_EXIT_USAGE;
  }
  char *argv[] = {(char *)cmd->name, (char *)"--help", NULL};
  return cmd->run(2, argv);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  /* qvm --agent ID VERB ...: the agent id of this command's audit records */
  if (argc > 2 && !strcmp(argv[1], "--agent")) {
    if (!qvm_audit_agent_valid(argv[2]) || setenv("QVM_AGENT", argv[2], 1) < 0)
      return fprintf(stderr, "qvm: agent id '%s' is invalid\n", argv[2]), QVM_EXIT_USAGE;
    argc -= 2, argv += 2;
  }
  if (argc < 2) {
    usage(stderr);
    return QVM_EXIT_USAGE;
  }
  const char *verb = argv[1];
  if (!strcmp(verb, "help") && argc > 2) return help_run(argv[2]);
  if (!strcmp(verb, "--help") || !strcmp(verb, "-h") || !strcmp(verb, "help")) {
    usage(stdout);
    return QVM_EXIT_OK;
  }
  if (!strcmp(verb, "--version")) verb = "version";
  const struct qvm_command *cmd = find_command(verb);
  if (cmd) return cmd->run(argc - 1, argv + 1);
  fprintf(stderr, "qvm: unknown command '%s'\ntry 'qvm --help'\n", verb);
  return QVM_EXIT_USAGE;
}
