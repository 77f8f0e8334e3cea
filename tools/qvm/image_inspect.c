/* SPDX-License-Identifier: MIT */
/* qvm image inspect REF */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/image.h>

#include "image_commands.h"

#define VERB "image inspect"

static void print_fields(struct json_object *o) {
  json_object_object_foreach(o, k, v) {
    if (json_object_is_type(v, json_type_array)) {
      printf("%-14s", k);
      size_t n = json_object_array_length(v);
      for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : " ", json_object_get_string(json_object_array_get_idx(v, i)));
      printf("%s\n", n ? "" : " -");
    } else {
      printf("%-14s %s\n", k, v ? json_object_get_string(v) : "-");
    }
  }
}

static int inspect_run(int argc, char **argv) {
  if (qvm_cli_help_asked(argc, argv))
    return printf("usage: qvm image inspect REF [--json]\n\nShows one stored image: REF is a "
                  "name or sha256:DIGEST (12 or more\nhex digits of it).\n"),
           QVM_EXIT_OK;
  bool json = false;
  int rc = 0;
  qvm_cli_json_only(VERB, argc, argv, &json, &rc);
  if (rc) return rc;
  if (optind + 1 != argc) return qvm_cli_usage_error(VERB, "give one image name or digest");
  char *text = NULL;
  qvm_error *err = NULL;
  if (qvm_image_inspect(&text, argv[optind], &err) < 0)
    return qvm_cli_fail(VERB, err,
                        qvm_error_code(err) == QVM_ENOTFOUND ? "see 'qvm image ls'" : NULL);
  struct json_object *o = json_tokener_parse(text);
  free(text);
  if (!o) return QVM_EXIT_FAILURE;
  if (json) {
    qvm_cli_print_json(o);
  } else {
    qvm_cli_json_neutralize(o);
    print_fields(o);
  }
  json_object_put(o);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_image_inspect = {"inspect", "show one stored image", inspect_run};
