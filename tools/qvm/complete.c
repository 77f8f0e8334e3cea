/* SPDX-License-Identifier: MIT */
/* qvm __complete WORD... CURRENT: the candidates for the word being typed,
 * one per line, for the scripts `qvm completion` prints. Verbs come from the
 * command table; subcommands and flags from the verb's own --help text (the
 * one source, so completion cannot drift from it); names of vms, snapshots
 * and images from the state, through the public API. Never an error: a
 * shell's completion must not print one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include <qvm/image.h>
#include <qvm/snapshot.h>
#include <qvm/vm.h>

#include "commands.h"

#define HELP_MAX (256 << 10)

static void offer(const char *cand, const char *cur) {
  if (!strncmp(cand, cur, strlen(cur))) printf("%s\n", cand);
}

/* `qvm ARGS... --help`'s stdout (bounded), or NULL. */
static char *help_text(const char *verb, const char *sub) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return NULL;
  pid_t pid = fork();
  if (pid < 0) {
    close(p[0]), close(p[1]);
    return NULL;
  }
  if (pid == 0) {
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (dup2(p[1], 1) < 0 || nul < 0 || dup2(nul, 2) < 0 || dup2(nul, 0) < 0) _exit(127);
    char *argv[] = {(char *)"qvm", (char *)verb, (char *)(sub ? sub : "--help"),
                    sub ? (char *)"--help" : NULL, NULL};
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  close(p[1]);
  char *buf = malloc(HELP_MAX + 1);
  size_t len = 0;
  ssize_t n = 0;
  while (buf && len < HELP_MAX && (n = read(p[0], buf + len, HELP_MAX - len)) > 0) len += (size_t)n;
  close(p[0]);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
  if (buf) buf[len] = '\0';
  return buf;
}

/* The "subcommands:" section of a help text: "  NAME   summary" lines. */
static void offer_subcommands(const char *help, const char *cur) {
  const char *s = help ? strstr(help, "\nsubcommands:\n") : NULL;
  if (!s) return;
  for (s = strchr(s + 1, '\n') + 1; *s == ' '; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : "") {
    while (*s == ' ') s++;
    size_t n = strcspn(s, " \n");
    if (n == 0 || n >= 64) break;
    char name[64];
    memcpy(name, s, n);
    name[n] = '\0';
    offer(name, cur);
  }
}

static bool has_subcommands(const char *help) { return help && strstr(help, "\nsubcommands:\n"); }

/* Every --flag the help text names, once each. */
static void offer_flags(const char *help, const char *cur) {
  if (!help) return;
  char seen[8192] = "\n";
  for (const char *s = help; (s = strstr(s, "--")) != NULL;) {
    bool word_start = s == help || strchr(" \t\n[(|,", s[-1]);
    const char *e = s + 2;
    while ((*e >= 'a' && *e <= 'z') || (*e >= '0' && *e <= '9') || (*e == '-' && e > s + 2)) e++;
    size_t n = (size_t)(e - s);
    if (!word_start || n < 3 || n > 48 || e[-1] == '-') {
      s += 2;
      continue;
    }
    char flag[64];
    memcpy(flag, s, n);
    flag[n] = '\0';
    char key[70];
    snprintf(key, sizeof key, "\n%s\n", flag);
    if (!strstr(seen, key) && strlen(seen) + n + 2 < sizeof seen) {
      strcat(seen, flag);
      strcat(seen, "\n");
      offer(flag, cur);
    }
    s = e;
  }
}

static void offer_vms(const char *cur) {
  char **names = NULL;
  size_t n = 0;
  qvm_error *e = NULL;
  if (qvm_vm_list(&names, &n, &e) < 0) return qvm_error_free(e);
  for (size_t i = 0; i < n; i++) offer(names[i], cur);
  qvm_vm_names_free(names, n);
}

static void offer_json_names(const char *json, const char *key, const char *cur) {
  struct json_object *arr = json ? json_tokener_parse(json) : NULL;
  for (size_t i = 0;
       arr && json_object_is_type(arr, json_type_array) && i < json_object_array_length(arr); i++) {
    struct json_object *v = NULL, *o = json_object_array_get_idx(arr, i);
    if (!json_object_object_get_ex(o, key, &v)) continue;
    if (json_object_is_type(v, json_type_string)) offer(json_object_get_string(v), cur);
    for (size_t j = 0; json_object_is_type(v, json_type_array) && j < json_object_array_length(v);
         j++)
      offer(json_object_get_string(json_object_array_get_idx(v, j)), cur);
  }
  json_object_put(arr);
}

static void offer_snapshots(const char *vm_name, const char *cur) {
  qvm_vm *vm = NULL;
  qvm_error *e = NULL;
  char *json = NULL;
  if (qvm_vm_open(&vm, vm_name, &e) < 0) return qvm_error_free(e);
  if (qvm_vm_snapshot_list(&json, vm, &e) < 0) qvm_error_free(e);
  offer_json_names(json, "name", cur);
  free(json);
  qvm_vm_free(vm);
}

static void offer_images(const char *cur) {
  char *json = NULL;
  qvm_error *e = NULL;
  if (qvm_image_list(&json, &e) < 0) return qvm_error_free(e);
  offer_json_names(json, "names", cur);
  free(json);
}

/* Whether a flag takes a value: the help text shows "--flag VALUE" or
 * "--flag=VALUE" (a capital word after it). */
static bool flag_takes_value(const char *help, const char *flag) {
  size_t n = strlen(flag);
  for (const char *s = help; s && (s = strstr(s, flag)) != NULL; s += n) {
    const char *e = s + n;
    if ((*e == ' ' || *e == '=') && e[1] >= 'A' && e[1] <= 'Z') return true;
  }
  return false;
}

/* words[0..n-1]: what precedes the word being typed, after "qvm". */
static int complete_run(int argc, char **argv) {
  if (argc < 2) return QVM_EXIT_OK;
  char **words = argv + 1;
  size_t n = (size_t)argc - 2;
  const char *cur = argv[argc - 1];
  if (n >= 2 && !strcmp(words[0], "--agent")) words += 2, n -= 2;
  if (n == 0) {
    for (size_t i = 0; i < qvm_commands_count; i++)
      if (qvm_commands[i]->name[0] != '_') offer(qvm_commands[i]->name, cur);
    offer("help", cur);
    if (cur[0] == '-') offer("--help", cur), offer("--version", cur), offer("--agent", cur);
    return QVM_EXIT_OK;
  }
  const char *verb = words[0];
  if (!strcmp(verb, "help")) {
    if (n == 1)
      for (size_t i = 0; i < qvm_commands_count; i++)
        if (qvm_commands[i]->name[0] != '_') offer(qvm_commands[i]->name, cur);
    return QVM_EXIT_OK;
  }
  bool known = false;
  for (size_t i = 0; i < qvm_commands_count && !known; i++)
    known = !strcmp(qvm_commands[i]->name, verb) && verb[0] != '_';
  if (!known || strchr(verb, '/')) return QVM_EXIT_OK;
  char *help = help_text(verb, NULL);
  const char *sub = NULL;
  if (has_subcommands(help)) {
    if (n == 1) {
      if (cur[0] == '-')
        offer("--help", cur);
      else
        offer_subcommands(help, cur);
      free(help);
      return QVM_EXIT_OK;
    }
    sub = words[1];
    bool ok = sub[0] != '-' && strlen(sub) < 64;
    for (const char *c = sub; ok && *c; c++) ok = (*c >= 'a' && *c <= 'z') || *c == '-';
    free(help);
    help = ok ? help_text(verb, sub) : NULL;
  }
  /* the positionals so far (a flag's separate value is not one) */
  const char *pos_words[8];
  size_t pos = 0;
  bool value_next = false;
  for (size_t i = sub ? 2 : 1; i < n; i++) {
    if (value_next) {
      value_next = false;
    } else if (words[i][0] == '-') {
      value_next = !strchr(words[i], '=') && flag_takes_value(help, words[i]);
    } else if (pos < 8) {
      pos_words[pos++] = words[i];
    }
  }
  const char *prev = words[n - 1];
  if (cur[0] == '-') {
    offer_flags(help, cur);
  } else if (value_next) {
    /* a flag's value: names where the flag names one */
    if (!strcmp(verb, "sandbox") && !strcmp(prev, "--from")) {
      offer_images(cur);
      offer_vms(cur);
    } else if (pos > 0 &&
               (!strcmp(prev, "--snapshot") || !strcmp(prev, "--to") || !strcmp(prev, "--from"))) {
      offer_snapshots(pos_words[0], cur);
    }
  } else if (!strcmp(verb, "image")) {
    if (pos == 0 && sub && strcmp(sub, "pull") && strcmp(sub, "build") && strcmp(sub, "import"))
      offer_images(cur);
  } else if (!strcmp(verb, "up") || (!strcmp(verb, "sandbox") && sub && !strcmp(sub, "create"))) {
    /* up IMAGE; sandbox create takes a new name */
    if (pos == 0 && !strcmp(verb, "up")) offer_images(cur);
  } else if (pos == 0) {
    offer_vms(cur);
  } else if (pos == 1 && sub && !strcmp(verb, "snapshot") &&
             (!strcmp(sub, "restore") || !strcmp(sub, "rm"))) {
    offer_snapshots(pos_words[0], cur);
  }
  free(help);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_complete = {"__complete", "(for shell completion scripts)",
                                             complete_run};
