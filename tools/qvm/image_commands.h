/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_IMAGE_COMMANDS_H
#define QVM_TOOLS_IMAGE_COMMANDS_H

/* The subcommands of `qvm image`: one tools/qvm/image_<sub>.c file each,
 * listed in the table in image.c in this order. Their argv[0] is the
 * subcommand; they print "qvm image SUB: ..." in errors. */
#include <stdbool.h>

#include "cli.h"

extern const struct qvm_command qvm_cmd_image_pull;
extern const struct qvm_command qvm_cmd_image_ls;
extern const struct qvm_command qvm_cmd_image_inspect;
extern const struct qvm_command qvm_cmd_image_rm;
extern const struct qvm_command qvm_cmd_image_prune;
extern const struct qvm_command qvm_cmd_image_tag;
extern const struct qvm_command qvm_cmd_image_catalog;
extern const struct qvm_command qvm_cmd_image_build;
extern const struct qvm_command qvm_cmd_image_import;

/* True when argv holds --help or -h. */
bool qvm_cli_help_asked(int argc, char **argv);
/* Parses the only option `--json` (sets *json); anything else is a usage
 * error whose exit code goes to *rc (0: fine). Leaves optind after the
 * options. */
void qvm_cli_json_only(const char *verb, int argc, char **argv, bool *json, int *rc);
/* Parses JSON text from the library and prints it (neutralized, pretty). */
int qvm_cli_print_json_text(const char *verb, const char *text);
/* "1.5 GiB" */
void qvm_cli_format_bytes(char *out, size_t size, unsigned long long bytes);

#endif
