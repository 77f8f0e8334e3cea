/* SPDX-License-Identifier: MIT */
/* qvm review edit ID */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "review_commands.h"

#define VERB "review edit"

static const char edit_help[] =
    "usage: qvm review edit ID\n"
    "\n"
    "Opens a private copy of the change set's playbook.yml in $EDITOR (or\n"
    "$VISUAL). When the editor exits, the copy is checked with\n"
    "'ansible-playbook --syntax-check'; a copy that fails is refused and kept\n"
    "(run edit again to go on with it). An accepted edit changes the playbook's\n"
    "sha256: an approval given before is void and the change set is pending\n"
    "again.\n";

/* $QVM_REVIEW_EDITOR FILE through sh, as git runs $EDITOR (it may hold
 * arguments); the editor's exit status, or -1. */
static int run_editor(const char *path) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", "exec $QVM_REVIEW_EDITOR \"$1\"", "sh", path, (char *)NULL);
    _exit(127);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    ;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int edit_run(int argc, char **argv) {
  static const struct option longopts[] = {{"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'h') return printf("%s", edit_help), QVM_EXIT_OK;
    return qvm_cli_bad_option(VERB, c, argv);
  }
  if (optind >= argc) return qvm_cli_usage_error(VERB, "missing the review id");
  if (argc - optind > 1)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 1]);
  const char *id = argv[optind];
  const char *editor = getenv("EDITOR");
  if (!editor || !*editor) editor = getenv("VISUAL");
  if (!editor || !*editor)
    return qvm_cli_usage_error(VERB, "set $EDITOR (or $VISUAL) to an editor");
  qvm_error *err = NULL;
  char *path = NULL;
  if (qvm_review_edit_begin(&path, id, &err) < 0) return review_cli_fail(VERB, err);
  setenv("QVM_REVIEW_EDITOR", editor, 1);
  int st = run_editor(path);
  if (st != 0) {
    fprintf(stderr,
            "qvm %s: the editor exited with status %d: nothing changed; the copy '%s' is kept\n",
            VERB, st, path);
    free(path);
    return QVM_EXIT_FAILURE;
  }
  bool changed = false;
  if (qvm_review_edit_commit(&changed, id, &err) < 0) {
    free(path);
    return review_cli_fail(VERB, err);
  }
  free(path);
  printf(changed ? "review '%s': playbook changed; it is pending approval again\n"
                 : "review '%s': playbook unchanged\n",
         id);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_review_edit = {"edit", "edit a change set's playbook in $EDITOR",
                                                edit_run};
