/* SPDX-License-Identifier: MIT */
/* qvm sandbox destroy NAME */
#include <getopt.h>
#include <stdio.h>

#include "sandbox_commands.h"

#define VERB "sandbox destroy"

static const char destroy_help[] =
    "usage: qvm sandbox destroy NAME\n"
    "\n"
    "Removes a sandbox now, whatever it is doing: QEMU is killed, and its files,\n"
    "sockets and tap go ('qvm rm --force'). Only for sandboxes: other vms are\n"
    "refused (use 'qvm rm').\n";

static int destroy_run(int argc, char **argv) {
  static const struct option longopts[] = {{"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int c;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'h') return fputs(destroy_help, stdout), QVM_EXIT_OK;
    return qvm_cli_bad_option(VERB, c, argv);
  }
  if (optind >= argc) return qvm_cli_usage_error(VERB, "missing the sandbox name");
  if (optind + 1 < argc)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 1]);
  qvm_error *err = NULL;
  if (qvm_sandbox_destroy(argv[optind], &err) < 0)
    return qvm_cli_fail(VERB, err, qvm_cli_vm_hint(err));
  printf("sandbox '%s' destroyed\n", argv[optind]);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_sandbox_destroy = {"destroy", "remove a sandbox now", destroy_run};
