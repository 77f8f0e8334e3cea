/* SPDX-License-Identifier: MIT */
/* Waiting for cloud-init with the shell: see vm/cloud_init.h. */
#include "vm/cloud_init.h"

#include <limits.h>
#include <string.h>

#include <json-c/json.h>

#include "util/cleanup.h"

const char VM_CLOUD_INIT_WAIT[] =
    "command -v cloud-init >/dev/null 2>&1 || exit 127\n"
    "r=/run/cloud-init/result.json\n"
    "if [ -e /run/cloud-init/enabled ] && [ -d /run/systemd/system ]; then\n"
    "  if [ -n \"$BASH_VERSION\" ]; then\n"
    "    while [ ! -e $r ]; do read -r -t 0.2 _; [ $? -gt 128 ] || sleep 0.2; done\n"
    "  else\n"
    "    while [ ! -e $r ]; do sleep 1; done\n"
    "  fi\n"
    "  echo " VM_CLOUD_INIT_RESULT_HEADER " && exec cat $r\n"
    "fi\n"
    "exec cloud-init status --wait --long 2>&1\n";

static void tokener_freep(json_tokener **t) {
  if (*t) json_tokener_free(*t);
}
static void object_putp(struct json_object **o) { json_object_put(*o); }

int vm_cloud_init_result_errors(const char *text, size_t len) {
  if (!text) return -1;
  /* json-c's default depth (32) bounds the nesting a guest can send. */
  _cleanup_(tokener_freep) json_tokener *tok = json_tokener_new();
  if (!tok) return -1;
  size_t n = strnlen(text, len);
  if (n > (size_t)INT_MAX) return -1;
  _cleanup_(object_putp) struct json_object *root = json_tokener_parse_ex(tok, text, (int)n);
  if (!root || json_tokener_get_error(tok) != json_tokener_success) return -1;
  /* nothing but white space after the document */
  for (size_t i = json_tokener_get_parse_end(tok); i < n; i++)
    if (text[i] != ' ' && text[i] != '\n' && text[i] != '\t' && text[i] != '\r') return -1;
  struct json_object *v1 = NULL, *errors = NULL;
  if (!json_object_object_get_ex(root, "v1", &v1) ||
      !json_object_object_get_ex(v1, "errors", &errors) ||
      !json_object_is_type(errors, json_type_array))
    return -1;
  return json_object_array_length(errors) > 0;
}
