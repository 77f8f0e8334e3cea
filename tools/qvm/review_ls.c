/* SPDX-License-Identifier: MIT */
/* qvm review ls [--json] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "review_commands.h"

static const char ls_help[] = "usage: qvm review ls [--json]\n"
                              "\n"
                              "Lists the change sets, oldest first.\n"
                              "\n"
                              "  --json   print their meta.json objects as an array\n";

static const char *member(struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
             ? json_object_get_string(v)
             : "-";
}

static void print_row(struct json_object *o) {
  struct json_object *author = NULL, *changes = NULL;
  json_object_object_get_ex(o, "author", &author);
  json_object_object_get_ex(o, "changes", &changes);
  char who[200];
  snprintf(who, sizeof who, "%s%s%s", member(author, "user"),
           *member(author, "agent") != '-' ? "/" : "",
           *member(author, "agent") != '-' ? member(author, "agent") : "");
  if (json_object_object_get_ex(o, "error", NULL)) {
    printf("%-12s %s\n", member(o, "id"), member(o, "error"));
    return;
  }
  printf("%-12s %-16s %-26s %-24s %-7d %s\n", member(o, "id"), member(o, "vm"), member(o, "status"),
         member(o, "created"), json_object_get_int(changes), who);
}

static int ls_run(int argc, char **argv) {
  static const struct option longopts[] = {{"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  bool json = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'j')
      json = true;
    else if (c == 'h')
      return printf("%s", ls_help), QVM_EXIT_OK;
    else
      return qvm_cli_bad_option("review ls", c, argv);
  }
  if (optind < argc)
    return qvm_cli_usage_error("review ls", "unexpected argument '%s'", argv[optind]);
  qvm_error *err = NULL;
  char *text = NULL;
  if (qvm_review_list(&text, &err) < 0) return review_cli_fail("review ls", err);
  struct json_object *list = json_tokener_parse(text);
  free(text);
  if (!json_object_is_type(list, json_type_array)) {
    json_object_put(list);
    fprintf(stderr, "qvm review ls: the library returned json that does not parse\n");
    return QVM_EXIT_FAILURE;
  }
  if (json) {
    qvm_cli_print_json(list);
  } else {
    qvm_cli_json_neutralize(list);
    printf("%-12s %-16s %-26s %-24s %-7s %s\n", "ID", "VM", "STATUS", "CREATED", "CHANGES",
           "AUTHOR");
    for (size_t i = 0; i < json_object_array_length(list); i++)
      print_row(json_object_array_get_idx(list, i));
  }
  json_object_put(list);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_review_ls = {"ls", "list the change sets", ls_run};
