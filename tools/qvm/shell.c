/* SPDX-License-Identifier: MIT */
/* qvm shell [NAME] [-- COMMAND...]: `qvm ssh` with a default vm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/vm.h>

#include "commands.h"

#define VERB "shell"
#define DEFAULT_VM "default"

static const char shell_help[] =
    "usage: qvm shell [NAME] [ssh options]\n"
    "\n"
    "Opens a shell in a vm, as 'qvm ssh NAME' does (same options). Without\n"
    "NAME: the vm named 'default' if it exists, else the only running vm;\n"
    "with several running and none named 'default', name one.\n";

/* "default" if it exists, else the only running vm: 0; else the exit code,
 * with the reason printed. */
static int pick(char *out, size_t size) {
  char **names = NULL;
  size_t n = 0;
  qvm_error *err = NULL;
  if (qvm_vm_list(&names, &n, &err) < 0) return qvm_cli_fail(VERB, err, NULL);
  size_t running = 0;
  for (size_t i = 0; i < n && !running; i++)
    if (!strcmp(names[i], DEFAULT_VM)) {
      snprintf(out, size, "%s", DEFAULT_VM);
      qvm_vm_names_free(names, n);
      return 0;
    }
  for (size_t i = 0; i < n; i++) {
    qvm_vm *vm = NULL;
    if (qvm_vm_open(&vm, names[i], NULL) == 0 && qvm_vm_get_state(vm) == QVM_VM_RUNNING &&
        running++ == 0)
      snprintf(out, size, "%s", names[i]);
    qvm_vm_free(vm);
  }
  qvm_vm_names_free(names, n);
  if (running == 1) return 0;
  if (running)
    fprintf(stderr,
            "qvm %s: %zu vms are running and none is named 'default'\n"
            "hint: name one: qvm shell NAME (qvm ls shows them)\n",
            VERB, running);
  else
    fprintf(stderr,
            "qvm %s: no vm is named 'default' and none is running\n"
            "hint: create one: qvm up default --image IMAGE\n",
            VERB);
  return running ? QVM_EXIT_USAGE : QVM_EXIT_NOTFOUND;
}

static int shell_run(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
    return fputs(shell_help, stdout), QVM_EXIT_OK;
  if (argc > 1 && argv[1][0] != '-') { /* a NAME: qvm ssh NAME ... */
    argv[0] = "ssh";
    return qvm_cmd_ssh.run(argc, argv);
  }
  char name[QVM_VM_NAME_MAX + 1];
  int rc = pick(name, sizeof name);
  if (rc) return rc;
  char **args = calloc((size_t)argc + 2, sizeof *args);
  if (!args) return QVM_EXIT_FAILURE;
  args[0] = "ssh";
  args[1] = name;
  for (int i = 1; i < argc; i++) args[i + 1] = argv[i];
  rc = qvm_cmd_ssh.run(argc + 1, args);
  free(args);
  return rc;
}

const struct qvm_command qvm_cmd_shell = {
    "shell", "open a shell in a vm ('default' or the only one)", shell_run};
