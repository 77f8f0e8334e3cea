/* SPDX-License-Identifier: MIT */
/* qvm image ls */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/image.h>

#include "image_commands.h"

#define VERB "image ls"

static const char *member(struct json_object *o, const char *k) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "-";
}

/* "a,b" from a JSON array of strings; "-" when empty. */
static void join(char *out, size_t size, struct json_object *o, const char *k) {
  struct json_object *arr = NULL;
  out[0] = '\0';
  size_t len = 0;
  if (json_object_object_get_ex(o, k, &arr))
    for (size_t i = 0; i < json_object_array_length(arr) && len < size; i++)
      len += (size_t)snprintf(out + len, size - len, "%s%s", i ? "," : "",
                              json_object_get_string(json_object_array_get_idx(arr, i)));
  if (!out[0]) snprintf(out, size, "-");
}

static void print_table(struct json_object *all) {
  printf("%-19s %-24s %-6s %10s %10s  %-16s %s\n", "DIGEST", "NAMES", "FORMAT", "SIZE", "VIRTUAL",
         "USED BY", "SOURCE");
  for (size_t i = 0; i < json_object_array_length(all); i++) {
    struct json_object *img = json_object_array_get_idx(all, i), *v = NULL;
    char names[256], users[256], size[32], vsize[32];
    join(names, sizeof names, img, "names");
    join(users, sizeof users, img, "used_by");
    qvm_cli_format_bytes(size, sizeof size,
                         json_object_object_get_ex(img, "file_size", &v) ? json_object_get_uint64(v)
                                                                         : 0);
    qvm_cli_format_bytes(
        vsize, sizeof vsize,
        json_object_object_get_ex(img, "virtual_size", &v) ? json_object_get_uint64(v) : 0);
    printf("%-19.19s %-24s %-6s %10s %10s  %-16s %s\n", member(img, "digest"), names,
           member(img, "format"), size, vsize, users, member(img, "source"));
  }
}

static int ls_run(int argc, char **argv) {
  if (qvm_cli_help_asked(argc, argv))
    return printf("usage: qvm image ls [--json]\n\nLists the stored images, oldest first: digest, "
                  "names, format, size on disk,\nvirtual size, the vms using them and where they "
                  "came from.\n"),
           QVM_EXIT_OK;
  bool json = false;
  int rc = 0;
  qvm_cli_json_only(VERB, argc, argv, &json, &rc);
  if (rc) return rc;
  if (optind < argc) return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind]);
  char *text = NULL;
  qvm_error *err = NULL;
  if (qvm_image_list(&text, &err) < 0) return qvm_cli_fail(VERB, err, NULL);
  struct json_object *all = json_tokener_parse(text);
  free(text);
  if (!all) return fprintf(stderr, "qvm %s: bad json from the library\n", VERB), QVM_EXIT_FAILURE;
  if (json) {
    qvm_cli_print_json(all);
  } else {
    qvm_cli_json_neutralize(all);
    print_table(all);
  }
  json_object_put(all);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_image_ls = {"ls", "list the stored images", ls_run};
