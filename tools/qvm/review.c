/* SPDX-License-Identifier: MIT */
/* qvm review: dispatches to the subcommands of review_commands.h. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "review_commands.h"

static const struct qvm_command *const subcommands[] = {
    &qvm_cmd_review_create, &qvm_cmd_review_ls,   &qvm_cmd_review_show,  &qvm_cmd_review_approve,
    &qvm_cmd_review_reject, &qvm_cmd_review_edit, &qvm_cmd_review_apply,
};

static void usage(FILE *f) {
  fprintf(f, "usage: qvm review SUBCOMMAND [OPTIONS]\n\n"
             "Change sets with a human gate: what an agent changed in a vm (qvm diff) and\n"
             "the Ansible playbook that does the same, approved by someone else before it\n"
             "is applied anywhere (see docs/cli.md).\n\nsubcommands:\n");
  for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
    fprintf(f, "  %-10s %s\n", subcommands[i]->name, subcommands[i]->summary);
  fprintf(f, "\nRun 'qvm review SUBCOMMAND --help' for its options.\n");
}

int review_cli_fail(const char *verb, qvm_error *err) {
  const char *cls = qvm_error_class(err);
  const char *hint = NULL;
  if (!cls)
    hint = qvm_cli_vm_hint(err);
  else if (!strcmp(cls, "ReviewUnknown"))
    hint = "see 'qvm review ls' for the change sets";
  else if (!strcmp(cls, "ReviewNotApproved"))
    hint = "a change set is applied only after 'qvm review approve ID' by someone else";
  else if (!strcmp(cls, "SelfApproval"))
    hint = "another agent or a person must approve it";
  else if (!strcmp(cls, "ReviewTampered"))
    hint = "make a new change set with 'qvm review create'";
  else if (!strcmp(cls, "PlaybookSyntax"))
    hint = "run 'qvm review edit ID' again to fix the kept copy";
  else if (!strcmp(cls, "NoAnsible"))
    hint = "install ansible-core (scripts/deps.sh test)";
  return qvm_cli_fail(verb, err, hint);
}

int review_cli_decision(const char **id, const char **comment, const char *verb, const char *help,
                        int argc, char **argv) {
  static const struct option longopts[] = {
      {"comment", 1, 0, 'c'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  *comment = NULL;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'c')
      *comment = optarg;
    else if (c == 'h')
      return printf("%s", help), -1;
    else
      return qvm_cli_bad_option(verb, c, argv);
  }
  if (optind >= argc) return qvm_cli_usage_error(verb, "missing the review id");
  if (argc - optind > 1)
    return qvm_cli_usage_error(verb, "unexpected argument '%s'", argv[optind + 1]);
  *id = argv[optind];
  return 0;
}

static int review_run(int argc, char **argv) {
  return qvm_cli_dispatch("review", usage, subcommands, sizeof subcommands / sizeof *subcommands,
                          argc, argv);
}

const struct qvm_command qvm_cmd_review = {
    "review", "change sets of a vm's changes with a human gate: create, approve, apply",
    review_run};
