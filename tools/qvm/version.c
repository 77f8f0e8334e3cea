/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static int version_run(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: qvm version\n\nPrints qvm's version.\n");
    return QVM_EXIT_OK;
  }
  if (argc > 1) return qvm_cli_usage_error("version", "unexpected argument '%s'", argv[1]);
  printf("qvm %s\n", QVM_VERSION);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_version = {"version", "print qvm's version", version_run};
