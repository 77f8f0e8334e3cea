/* SPDX-License-Identifier: MIT */
/* qvm review reject ID [--comment T] */
#include <stdio.h>

#include "review_commands.h"

static const char reject_help[] =
    "usage: qvm review reject ID [--comment T]\n"
    "\n"
    "Rejects a pending or approved change set, for good: it can no longer be\n"
    "approved, edited or applied. Nothing is run.\n"
    "\n"
    "  --comment T   recorded with the decision and in the audit log\n";

static int reject_run(int argc, char **argv) {
  const char *id = NULL, *comment = NULL;
  int r = review_cli_decision(&id, &comment, "review reject", reject_help, argc, argv);
  if (r) return r < 0 ? QVM_EXIT_OK : r;
  qvm_error *err = NULL;
  if (qvm_review_reject(id, comment, &err) < 0) return review_cli_fail("review reject", err);
  printf("review '%s' rejected\n", id);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_review_reject = {"reject", "reject a change set", reject_run};
