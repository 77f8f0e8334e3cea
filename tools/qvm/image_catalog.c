/* SPDX-License-Identifier: MIT */
/* qvm image catalog */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include <qvm/image.h>

#include "image_commands.h"

#define VERB "image catalog"

static const char *member(struct json_object *o, const char *k) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "-";
}

static int catalog_run(int argc, char **argv) {
  if (qvm_cli_help_asked(argc, argv))
    return printf("usage: qvm image catalog [--json]\n\nLists the aliases 'qvm image pull' "
                  "knows: built in, and from the user\ncatalog ($QVM_CATALOG, else "
                  "/etc/qvm/catalog.yaml as root, else\n~/.config/qvm/catalog.yaml; see "
                  "docs/images.md), which adds or overrides.\n"),
           QVM_EXIT_OK;
  bool json = false;
  int rc = 0;
  qvm_cli_json_only(VERB, argc, argv, &json, &rc);
  if (rc) return rc;
  if (optind < argc) return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind]);
  char *text = NULL;
  qvm_error *err = NULL;
  if (qvm_image_catalog(&text, &err) < 0) return qvm_cli_fail(VERB, err, NULL);
  struct json_object *all = json_tokener_parse(text);
  free(text);
  if (!all) return QVM_EXIT_FAILURE;
  if (json) {
    qvm_cli_print_json(all);
  } else {
    qvm_cli_json_neutralize(all);
    printf("%-16s %-8s %-19s %s\n", "ALIAS", "ORIGIN", "STORED", "URL");
    for (size_t i = 0; i < json_object_array_length(all); i++) {
      struct json_object *e = json_object_array_get_idx(all, i);
      const char *origin = member(e, "origin");
      printf("%-16s %-8s %-19.19s %s\n", member(e, "alias"), origin[0] == '/' ? "user" : origin,
             member(e, "stored"), member(e, "url"));
    }
  }
  json_object_put(all);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_image_catalog = {"catalog", "list the image aliases", catalog_run};
