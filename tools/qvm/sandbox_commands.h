/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_SANDBOX_COMMANDS_H
#define QVM_TOOLS_SANDBOX_COMMANDS_H

/* `qvm sandbox SUB`: one file per subcommand, dispatched by sandbox.c. */
#include <stdint.h>

#include <qvm/sandbox.h>

#include "cli.h"

extern const struct qvm_command qvm_cmd_sandbox_create;
extern const struct qvm_command qvm_cmd_sandbox_ls;
extern const struct qvm_command qvm_cmd_sandbox_destroy;
extern const struct qvm_command qvm_cmd_sandbox_extend;

/* "2026-11-29T18:50:00Z (in 29m 59s)" or "(passed)" into buf. */
void sandbox_cli_expiry(char *buf, size_t size, const char *expires_at, int64_t expires_in_s);

#endif
