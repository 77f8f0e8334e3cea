/* SPDX-License-Identifier: MIT */
/* qvm image prune */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include <qvm/image.h>

#include "image_commands.h"

#define VERB "image prune"

static int prune_run(int argc, char **argv) {
  if (qvm_cli_help_asked(argc, argv))
    return printf("usage: qvm image prune [--json]\n\nRemoves the images that have no name and "
                  "no vm, and partial downloads\nno pull has touched for an hour.\n"),
           QVM_EXIT_OK;
  bool json = false;
  int rc = 0;
  qvm_cli_json_only(VERB, argc, argv, &json, &rc);
  if (rc) return rc;
  if (optind < argc) return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind]);
  char *text = NULL;
  qvm_error *err = NULL;
  if (qvm_image_prune(&text, &err) < 0) return qvm_cli_fail(VERB, err, NULL);
  struct json_object *o = json_tokener_parse(text), *removed = NULL, *bytes = NULL;
  free(text);
  if (!o) return QVM_EXIT_FAILURE;
  if (json) {
    qvm_cli_print_json(o);
  } else {
    json_object_object_get_ex(o, "removed", &removed);
    json_object_object_get_ex(o, "bytes", &bytes);
    for (size_t i = 0; i < json_object_array_length(removed); i++)
      printf("removed %s\n", json_object_get_string(json_object_array_get_idx(removed, i)));
    char b[32];
    qvm_cli_format_bytes(b, sizeof b, json_object_get_uint64(bytes));
    printf("freed %s\n", b);
  }
  json_object_put(o);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_image_prune = {"prune", "remove unnamed, unused images",
                                                prune_run};
