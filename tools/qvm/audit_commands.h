/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_AUDIT_COMMANDS_H
#define QVM_TOOLS_AUDIT_COMMANDS_H

/* qvm audit's pieces: the list (audit.c), verify and the summaries
 * (audit_verify.c). */
#include <stddef.h>

struct json_object;

int audit_verify_run(int argc, char **argv);
/* One line about a record for the table ("exec sh -c ... -> exit 0"); raw
 * text, the caller neutralizes it. */
void audit_cli_summary(char *out, size_t size, struct json_object *rec);

#endif
