/* SPDX-License-Identifier: MIT */
/* qvm create: the flags are in create_flags.c (qvm up takes them too). */
#include <stdio.h>
#include <string.h>

#include <qvm/vm.h>

#include "commands.h"
#include "create_flags.h"

static bool wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
  }
  return false;
}

static const char *create_hint(const qvm_error *err) {
  const char *by_class = qvm_cli_error_hint(err);
  if (by_class) return by_class;
  switch (qvm_error_code(err)) {
  case QVM_ENOTFOUND:
    /* the library's message often ends in "check the path" already */
    return strstr(qvm_error_message(err), "check the path")
               ? NULL
               : "check the path; every file is checked at create time";
  case QVM_EEXISTS: return "pick another name, or remove the old vm with 'qvm rm NAME'";
  default: return NULL;
  }
}

static int create_run(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    printf("usage: qvm create NAME [--image PATH] [OPTIONS]\n\n"
           "Creates a VM. With --image, its disk is a qcow2 overlay on PATH, which is\n"
           "never written to.\n\n%s",
           qvm_cli_create_flags_help);
    return QVM_EXIT_OK;
  }
  __attribute__((cleanup(qvm_cli_create_flags_clear))) qvm_cli_create_flags f =
      QVM_CLI_CREATE_FLAGS_INIT;
  struct option longopts[64];
  if (qvm_cli_create_longopts(longopts, 64, NULL) < 0) return QVM_EXIT_FAILURE;
  int c, r;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":", longopts)) != -1) {
    if (c == '?' || c == ':') return qvm_cli_bad_option("create", c, argv);
    if ((r = qvm_cli_create_flag("create", &f, c, optarg)) > 0) return r;
    if (r < 0) return qvm_cli_bad_option("create", '?', argv);
  }
  if (optind >= argc) return qvm_cli_usage_error("create", "missing the vm name");
  if (optind + 1 < argc)
    return qvm_cli_usage_error("create", "unexpected argument '%s'", argv[optind + 1]);
  const char *name = argv[optind];
  qvm_cli_create_flags_finish(&f);
  qvm_error *err = NULL;
  r = qvm_vm_create(NULL, name, &f.opts, &err);
  qvm_cli_progress_end(&f.progress);
  if (r < 0) return qvm_cli_fail("create", err, create_hint(err));
  printf("%s\n", name);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_create = {"create", "create a vm", create_run};
