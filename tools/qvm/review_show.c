/* SPDX-License-Identifier: MIT */
/* qvm review show ID [--json] [--playbook] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/text.h>

#include "review_commands.h"

#define VERB "review show"
#define PLAYBOOK_MAX (16 << 20)

static const char show_help[] =
    "usage: qvm review show ID [--json] [--playbook]\n"
    "\n"
    "Shows a change set: its vm, base, author, status, the sha256 of its diff and\n"
    "playbook, the approval, what was done with it, and the changes.\n"
    "\n"
    "  --playbook   also print playbook.yml\n"
    "  --json       print meta.json's object with \"diff\" (qvm diff --json's) and,\n"
    "               with --playbook, \"playbook\" (the text)\n";

static const char *member(struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
             ? json_object_get_string(v)
             : NULL;
}

static void print_actor(const char *label, struct json_object *a) {
  const char *agent = member(a, "agent");
  printf("%-10s %s%s%s\n", label, member(a, "user") ? member(a, "user") : "?", agent ? "/" : "",
         agent ? agent : "");
}

static void print_meta(struct json_object *m, struct json_object *diff) {
  struct json_object *v = NULL, *base = NULL;
  printf("%-10s %s\n%-10s %s\n", "id", member(m, "id"), "vm", member(m, "vm"));
  json_object_object_get_ex(m, "base", &base);
  printf("%-10s %s%s\n", "base", member(base, "snapshot") ? "snapshot " : "the vm's image",
         member(base, "snapshot") ? member(base, "snapshot") : "");
  json_object_object_get_ex(m, "author", &v);
  print_actor("author", v);
  printf("%-10s %s\n%-10s %s\n", "created", member(m, "created"), "status", member(m, "status"));
  printf("%-10s %s\n%-10s %s\n", "diff", member(m, "diff_sha256"), "playbook",
         member(m, "playbook_sha256"));
  if (member(m, "incomplete")) printf("%-10s %s\n", "warning", member(m, "incomplete"));
  if (json_object_object_get_ex(m, "approval", &v) && json_object_is_type(v, json_type_object)) {
    struct json_object *a = NULL;
    json_object_object_get_ex(v, "actor", &a);
    print_actor("approved", a);
    if (member(v, "comment")) printf("%-10s %s\n", "comment", member(v, "comment"));
  }
  if (json_object_object_get_ex(m, "replay", &v) && json_object_is_type(v, json_type_object)) {
    struct json_object *res = NULL, *n = NULL, *st = NULL;
    json_object_object_get_ex(v, "residual", &res);
    json_object_object_get_ex(v, "residual_count", &n);
    json_object_object_get_ex(v, "stale", &st);
    printf("%-10s %d difference(s) after applying the playbook to a clone of the base%s\n",
           "replay", json_object_get_int(n),
           json_object_get_boolean(st) ? " (of the playbook before an edit)" : "");
    for (size_t i = 0; i < json_object_array_length(res); i++) {
      struct json_object *e = json_object_array_get_idx(res, i);
      printf("  ! %s (%s)\n", member(e, "path"), member(e, "why"));
    }
  } else {
    printf("%-10s not verified by replay\n", "replay");
  }
  if (json_object_object_get_ex(m, "history", &v))
    for (size_t i = 0; i < json_object_array_length(v); i++) {
      struct json_object *h = json_object_array_get_idx(v, i), *a = NULL;
      json_object_object_get_ex(h, "actor", &a);
      printf("  %s %-8s by %s%s%s%s%s\n", member(h, "time"), member(h, "action"),
             member(a, "user") ? member(a, "user") : "?", member(a, "agent") ? "/" : "",
             member(a, "agent") ? member(a, "agent") : "", member(h, "comment") ? ": " : "",
             member(h, "comment") ? member(h, "comment") : "");
    }
  if (json_object_object_get_ex(m, "applies", &v))
    for (size_t i = 0; i < json_object_array_length(v); i++) {
      struct json_object *a = json_object_array_get_idx(v, i), *n = NULL;
      int ex = json_object_object_get_ex(a, "exit", &n) ? json_object_get_int(n) : -1;
      int ch = json_object_object_get_ex(a, "changed", &n) ? json_object_get_int(n) : -1;
      printf("  applied to %s: exit %d, changed=%d (%s)\n",
             member(a, "target") ? member(a, "target") : member(a, "inventory"), ex, ch,
             member(a, "log"));
    }
  printf("changes:\n");
  struct json_object *changes = NULL;
  if (json_object_object_get_ex(diff, "changes", &changes))
    for (size_t i = 0; i < json_object_array_length(changes); i++) {
      struct json_object *c = json_object_array_get_idx(changes, i);
      const char *kind = member(c, "kind");
      printf("  %c %s\n", kind ? (char)(kind[0] - 32) : '?', member(c, "path"));
    }
}

static int show_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"json", 0, 0, 'j'}, {"playbook", 0, 0, 'p'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  bool json = false, playbook = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'j')
      json = true;
    else if (c == 'p')
      playbook = true;
    else if (c == 'h')
      return printf("%s", show_help), QVM_EXIT_OK;
    else
      return qvm_cli_bad_option(VERB, c, argv);
  }
  if (optind >= argc) return qvm_cli_usage_error(VERB, "missing the review id");
  if (argc - optind > 1)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 1]);
  const char *id = argv[optind];
  qvm_error *err = NULL;
  char *text = NULL, *diff_text = NULL, *dir = NULL;
  if (qvm_review_show(&text, id, &err) < 0 || qvm_review_diff_json(&diff_text, id, &err) < 0) {
    free(text);
    return review_cli_fail(VERB, err);
  }
  struct json_object *meta = json_tokener_parse(text), *diff = json_tokener_parse(diff_text);
  free(text);
  free(diff_text);
  char *pb = NULL;
  if (playbook && qvm_review_playbook_dir(&dir, id, &err) == 0) {
    char *path = NULL;
    if (asprintf(&path, "%s/playbook.yml", dir) >= 0) {
      FILE *f = fopen(path, "re");
      pb = calloc(1, PLAYBOOK_MAX + 1);
      if (f && pb) pb[fread(pb, 1, PLAYBOOK_MAX, f)] = '\0';
      if (f) fclose(f);
    }
    free(path);
    free(dir);
  }
  if (json) {
    json_object_object_add(meta, "diff", json_object_get(diff));
    if (pb) json_object_object_add(meta, "playbook", json_object_new_string(pb));
    qvm_cli_print_json(meta);
  } else {
    qvm_cli_json_neutralize(meta);
    qvm_cli_json_neutralize(diff);
    print_meta(meta, diff);
    if (pb) {
      char *safe = qvm_text_for_terminal(pb, strlen(pb), QVM_TEXT_KEEP_NEWLINE);
      printf("playbook.yml:\n%s", safe ? safe : "?");
      free(safe);
    }
  }
  free(pb);
  json_object_put(meta);
  json_object_put(diff);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_review_show = {"show", "show a change set", show_run};
