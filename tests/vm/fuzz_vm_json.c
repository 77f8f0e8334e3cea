/* SPDX-License-Identifier: MIT */
/*
 * vm.json is a file a user can edit: parse arbitrary bytes as one, read its
 * spec, and for every spec that passes validation build the QEMU command
 * line. The same bytes also go through the option parsers (sizes, port
 * forwards, drives, names).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vm/argv.h"
#include "vm/spec.h"
#include "vm/state.h"

static void parse_options(const char *s) {
  uint64_t size = 0;
  qvm_error *err = NULL;
  qvm_vm_size_parse(&size, "disk", s, &err);
  qvm_error_free(err);
  vm_forward f = {0};
  if (vm_forward_parse(&f, s, NULL) == 0) vm_forward_clear(&f);
  vm_drive d = {0};
  if (vm_drive_parse(&d, s, NULL) == 0) vm_drive_clear(&d);
  qvm_vm_name_check(s, NULL);
}

static void build_argv(const vm_spec *spec) {
  vm_argv_input in = {.spec = spec,
                      .qemu = "qemu-system-x86_64",
                      .vm_dir = "/vms/x",
                      .accel = VM_ACCEL_TCG,
                      .qmp_fd = 3,
                      .console_fd = 4,
                      .serial_log = "serial.log",
                      .ssh_port = 2222,
                      .tap_fd = 5};
  vm_argv *a = NULL;
  qvm_error *err = NULL;
  if (vm_argv_build(&a, &in, &err) < 0) abort(); /* a valid spec always builds */
  char *text = vm_argv_format(a);
  if (!text) abort();
  free(text);
  vm_argv_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 20) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  parse_options(text);
  struct json_object *doc = NULL, *spec_json = NULL;
  if (vm_doc_parse(&doc, text, size, "fuzz", NULL) == 0) {
    vm_spec *spec = NULL;
    if (json_object_object_get_ex(doc, "spec", &spec_json) &&
        vm_spec_from_json(&spec, spec_json, NULL) == 0) {
      build_argv(spec);
      vm_spec_free(spec);
    }
    json_object_put(doc);
  }
  free(text);
  return 0;
}
