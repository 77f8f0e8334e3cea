/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_IMAGE_COMMANDS_H
#define QVM_TOOLS_IMAGE_COMMANDS_H

#include "cli.h"

/* The subcommands of `qvm image`, one tools/qvm/image_<sub>.c file each,
 * listed in the table of tools/qvm/image.c. */
extern const struct qvm_command qvm_cmd_image_build;

#endif
