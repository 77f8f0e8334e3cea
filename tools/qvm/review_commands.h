/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_REVIEW_COMMANDS_H
#define QVM_TOOLS_REVIEW_COMMANDS_H

/* `qvm review SUB`: one file per subcommand, dispatched by review.c. */
#include <stdbool.h>

#include <qvm/review.h>

#include "cli.h"

extern const struct qvm_command qvm_cmd_review_create;
extern const struct qvm_command qvm_cmd_review_ls;
extern const struct qvm_command qvm_cmd_review_show;
extern const struct qvm_command qvm_cmd_review_approve;
extern const struct qvm_command qvm_cmd_review_reject;
extern const struct qvm_command qvm_cmd_review_edit;
extern const struct qvm_command qvm_cmd_review_apply;

/* A review failure with the hint its class asks for. */
int review_cli_fail(const char *verb, qvm_error *err);
/* Parses "ID [--comment T]" for approve and reject; 0, -1 after help, or
 * an exit code. */
int review_cli_decision(const char **id, const char **comment, const char *verb, const char *help,
                        int argc, char **argv);

#endif
