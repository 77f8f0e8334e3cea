/* SPDX-License-Identifier: MIT */
/* qvm snapshot ls VM [--json] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "image_commands.h"
#include "snapshot_commands.h"

static const char ls_help[] =
    "usage: qvm snapshot ls VM [--json]\n"
    "\n"
    "Lists the vm's snapshots, oldest first; '*' marks the one restored or taken\n"
    "last (the parent of the next).\n"
    "\n"
    "  --json   print [{\"name\", \"created_at\", \"ram\", \"vm_state\", \"vm_state_size\",\n"
    "           \"disk_bytes\", \"parent\", \"current\"}]\n";

static const char *member(struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
             ? json_object_get_string(v)
             : "-";
}

static void print_table(struct json_object *list) {
  printf("  %-24s %-26s %-4s %-9s %-10s %s\n", "NAME", "CREATED", "RAM", "STATE", "RAM SIZE",
         "PARENT");
  for (size_t i = 0; i < json_object_array_length(list); i++) {
    struct json_object *o = json_object_array_get_idx(list, i), *v = NULL;
    bool ram = json_object_object_get_ex(o, "ram", &v) && json_object_get_boolean(v);
    bool current = json_object_object_get_ex(o, "current", &v) && json_object_get_boolean(v);
    char size[32] = "-";
    if (ram && json_object_object_get_ex(o, "vm_state_size", &v) && json_object_get_int64(v) > 0)
      qvm_cli_format_bytes(size, sizeof size, (unsigned long long)json_object_get_int64(v));
    printf("%c %-24s %-26s %-4s %-9s %-10s %s\n", current ? '*' : ' ', member(o, "name"),
           member(o, "created_at"), ram ? "yes" : "no", member(o, "vm_state"), size,
           member(o, "parent"));
  }
}

static int ls_run(int argc, char **argv) {
  snapshot_cli_args a;
  int r = snapshot_cli_parse(&a, "snapshot ls", ls_help, false, false, argc, argv);
  if (r) return r < 0 ? QVM_EXIT_OK : r;
  qvm_error *err = NULL;
  qvm_vm *vm = NULL;
  if (qvm_cli_open(&vm, a.vm, &err) < 0)
    return qvm_cli_fail("snapshot ls", err, qvm_cli_vm_hint(err));
  char *text = NULL;
  r = qvm_vm_snapshot_list(&text, vm, &err);
  qvm_vm_free(vm);
  if (r < 0) return qvm_cli_fail("snapshot ls", err, NULL);
  struct json_object *list = json_tokener_parse(text);
  free(text);
  if (!json_object_is_type(list, json_type_array)) {
    json_object_put(list);
    fprintf(stderr, "qvm snapshot ls: the library returned json that does not parse\n");
    return QVM_EXIT_FAILURE;
  }
  if (a.json) {
    qvm_cli_print_json(list);
  } else if (json_object_array_length(list) == 0) {
    printf("vm '%s' has no snapshots\n", a.vm);
  } else {
    print_table(list);
  }
  json_object_put(list);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_snapshot_ls = {"ls", "list a vm's snapshots", ls_run};
