/* SPDX-License-Identifier: MIT */
/* qvm review approve ID [--comment T] */
#include <stdio.h>

#include "review_commands.h"

static const char approve_help[] =
    "usage: qvm review approve ID [--comment T]\n"
    "\n"
    "Approves a pending change set. The approval is bound to the sha256 of its\n"
    "diff and of its playbook: an edit afterwards voids it, and apply refuses a\n"
    "change set whose files no longer match. The agent id that made the change\n"
    "set (qvm --agent ID, $QVM_AGENT) cannot approve it.\n"
    "\n"
    "  --comment T   recorded with the approval and in the audit log\n";

static int approve_run(int argc, char **argv) {
  const char *id = NULL, *comment = NULL;
  int r = review_cli_decision(&id, &comment, "review approve", approve_help, argc, argv);
  if (r) return r < 0 ? QVM_EXIT_OK : r;
  qvm_error *err = NULL;
  if (qvm_review_approve(id, comment, &err) < 0) return review_cli_fail("review approve", err);
  printf("review '%s' approved\n", id);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_review_approve = {"approve", "approve a pending change set",
                                                   approve_run};
