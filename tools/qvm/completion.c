/* SPDX-License-Identifier: MIT */
/* qvm completion bash|zsh|fish: a completion script for the shell. Each
 * script only asks `qvm __complete` (tools/qvm/complete.c), so verbs, flags
 * and names come from the installed qvm itself and cannot go stale. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const char bash_script[] =
    "# bash completion for qvm (qvm completion bash)\n"
    "_qvm() {\n"
    "  local IFS=$'\\n' cur=${COMP_WORDS[COMP_CWORD]}\n"
    "  COMPREPLY=($(\"${COMP_WORDS[0]}\" __complete \"${COMP_WORDS[@]:1:COMP_CWORD-1}\" \"$cur\" "
    "2>/dev/null))\n"
    "}\n"
    "complete -o default -F _qvm qvm\n";

static const char zsh_script[] =
    "#compdef qvm\n"
    "# zsh completion for qvm (qvm completion zsh)\n"
    "_qvm() {\n"
    "  local -a cands\n"
    "  cands=(${(f)\"$(${words[1]} __complete ${words[2,CURRENT-1]} \"${words[CURRENT]}\" "
    "2>/dev/null)\"})\n"
    "  (( ${#cands} )) && compadd -Q -- $cands || _files\n"
    "}\n"
    "if [[ $funcstack[1] == _qvm ]]; then _qvm \"$@\"; else compdef _qvm qvm; fi\n";

static const char fish_script[] =
    "# fish completion for qvm (qvm completion fish)\n"
    "function __qvm_complete\n"
    "    set -l words (commandline -opc)\n"
    "    $words[1] __complete $words[2..-1] (commandline -ct) 2>/dev/null\n"
    "end\n"
    "complete -c qvm -f -a '(__qvm_complete)'\n";

static int completion_run(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: qvm completion bash|zsh|fish\n\n"
           "Prints a completion script for the shell. It completes verbs, subcommands\n"
           "and flags (from each verb's --help) and the names of vms, snapshots and\n"
           "images (asked of qvm as you type). Load it for this shell with\n"
           "  source <(qvm completion bash)\n"
           "or put it where the shell looks (installing qvm does):\n"
           "  bash: /usr/share/bash-completion/completions/qvm\n"
           "  zsh:  a directory on $fpath, as _qvm\n"
           "  fish: ~/.config/fish/completions/qvm.fish\n");
    return QVM_EXIT_OK;
  }
  if (argc != 2) return qvm_cli_usage_error("completion", "give one shell: bash, zsh or fish");
  const char *shell = argv[1];
  if (!strcmp(shell, "bash")) return fputs(bash_script, stdout), QVM_EXIT_OK;
  if (!strcmp(shell, "zsh")) return fputs(zsh_script, stdout), QVM_EXIT_OK;
  if (!strcmp(shell, "fish")) return fputs(fish_script, stdout), QVM_EXIT_OK;
  return qvm_cli_usage_error("completion", "shell '%.32s' is unknown: use bash, zsh or fish",
                             shell);
}

const struct qvm_command qvm_cmd_completion = {
    "completion", "print a shell completion script (bash, zsh, fish)", completion_run};
