/* SPDX-License-Identifier: MIT */
/* qvm sandbox ls [--agent ID] [--json] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "create_flags.h"
#include "sandbox_commands.h"

#define VERB "sandbox ls"

static const char ls_help[] =
    "usage: qvm sandbox ls [--agent ID] [--json]\n"
    "\n"
    "Lists the sandboxes: name, state, agent, when each expires, labels. Those\n"
    "whose deadline passed while they were not running are removed first.\n"
    "\n"
    "  --agent ID   only this agent's\n"
    "  --json       print [{\"name\", \"state\", \"agent\", \"labels\", \"expires_at\",\n"
    "               \"expires_at_us\", \"expires_in_s\"}]\n";

static const char *member(struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
             ? json_object_get_string(v)
             : "-";
}

static void print_labels(struct json_object *o) {
  struct json_object *l = NULL;
  bool first = true;
  if (json_object_object_get_ex(o, "labels", &l) && json_object_is_type(l, json_type_object)) {
    json_object_object_foreach(l, k, v) {
      printf("%s%s=%s", first ? "" : ",", k, json_object_get_string(v));
      first = false;
    }
  }
  printf("%s\n", first ? "-" : "");
}

static void print_table(struct json_object *list) {
  printf("%-24s %-9s %-20s %-44s %s\n", "NAME", "STATE", "AGENT", "EXPIRES", "LABELS");
  for (size_t i = 0; i < json_object_array_length(list); i++) {
    struct json_object *o = json_object_array_get_idx(list, i), *v = NULL;
    char when[96];
    sandbox_cli_expiry(when, sizeof when, member(o, "expires_at"),
                       json_object_object_get_ex(o, "expires_in_s", &v) ? json_object_get_int64(v)
                                                                        : 0);
    printf("%-24s %-9s %-20s %-44s ", member(o, "name"), member(o, "state"), member(o, "agent"),
           when);
    print_labels(o);
  }
}

static int ls_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"agent", 1, 0, 'a'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  const char *agent = NULL;
  bool json = false;
  int c, r = 0;
  optind = 0;
  opterr = 0;
  while (!r && (c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'h') return fputs(ls_help, stdout), QVM_EXIT_OK;
    if (c == 'a')
      r = qvm_cli_agent_arg(VERB, optarg) ?: (agent = optarg, 0);
    else if (c == 'j')
      json = true;
    else
      r = qvm_cli_bad_option(VERB, c, argv);
  }
  if (r) return r;
  if (optind < argc) return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind]);
  char *text = NULL;
  qvm_error *err = NULL;
  if (qvm_sandbox_list(&text, agent, &err) < 0) return qvm_cli_fail(VERB, err, NULL);
  struct json_object *list = json_tokener_parse(text);
  free(text);
  if (!json_object_is_type(list, json_type_array)) {
    json_object_put(list);
    fprintf(stderr, "qvm %s: the library returned json that does not parse\n", VERB);
    return QVM_EXIT_FAILURE;
  }
  qvm_cli_json_neutralize(list);
  if (json)
    qvm_cli_print_json(list);
  else
    print_table(list);
  json_object_put(list);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_sandbox_ls = {"ls", "list sandboxes and when they expire", ls_run};
