/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_COMMANDS_H
#define QVM_TOOLS_COMMANDS_H

#include "cli.h"

/* One line per verb; each is defined in its own tools/qvm/<verb>.c file and
 * listed in the table in main.c. Keep both lists in the same order. */
extern const struct qvm_command qvm_cmd_version;
extern const struct qvm_command qvm_cmd_seed;
extern const struct qvm_command qvm_cmd_create;
extern const struct qvm_command qvm_cmd_start;
extern const struct qvm_command qvm_cmd_stop;
extern const struct qvm_command qvm_cmd_kill;
extern const struct qvm_command qvm_cmd_restart;
extern const struct qvm_command qvm_cmd_resize;
extern const struct qvm_command qvm_cmd_snapshot;
extern const struct qvm_command qvm_cmd_clone;
extern const struct qvm_command qvm_cmd_fork;
extern const struct qvm_command qvm_cmd_set;
extern const struct qvm_command qvm_cmd_shell;
extern const struct qvm_command qvm_cmd_rollback;
extern const struct qvm_command qvm_cmd_rm;
extern const struct qvm_command qvm_cmd_run;
extern const struct qvm_command qvm_cmd_ls;
extern const struct qvm_command qvm_cmd_info;
extern const struct qvm_command qvm_cmd_logs;
extern const struct qvm_command qvm_cmd_console;
extern const struct qvm_command qvm_cmd_exec;
extern const struct qvm_command qvm_cmd_ssh;
extern const struct qvm_command qvm_cmd_ssh_config;
extern const struct qvm_command qvm_cmd_authorize;
extern const struct qvm_command qvm_cmd_cp;
extern const struct qvm_command qvm_cmd_provision;
extern const struct qvm_command qvm_cmd_ip;
extern const struct qvm_command qvm_cmd_up;
extern const struct qvm_command qvm_cmd_down;
extern const struct qvm_command qvm_cmd_image;
extern const struct qvm_command qvm_cmd_cert;
extern const struct qvm_command qvm_cmd_audit;
extern const struct qvm_command qvm_cmd_sandbox;
extern const struct qvm_command qvm_cmd_diff;
extern const struct qvm_command qvm_cmd_review;
extern const struct qvm_command qvm_cmd_mcp;
extern const struct qvm_command qvm_cmd_tools;
extern const struct qvm_command qvm_cmd_completion;
extern const struct qvm_command qvm_cmd_complete;

/* The table main.c dispatches on (`qvm __complete` reads it too). */
extern const struct qvm_command *const qvm_commands[];
extern const size_t qvm_commands_count;

#endif
