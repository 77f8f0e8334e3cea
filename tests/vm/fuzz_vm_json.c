/* SPDX-License-Identifier: MIT */
/*
 * vm.json is a file a user can edit: parse arbitrary bytes as one through
 * the record codec (vm/record.h), and for every record that passes
 * validation check that it encodes and decodes to itself, then build the
 * QEMU command line from its spec. The same bytes also go through the
 * option parsers (sizes, port forwards, drives, names).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vm/argv.h"
#include "vm/record.h"
#include "vm/spec.h"

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
  vm_record *rec = NULL;
  if (vm_record_parse(&rec, text, size, "fuzz", NULL) == 0) {
    /* A record that was accepted reads back as itself once written. */
    struct json_object *a = vm_record_to_json(rec);
    vm_record *back = NULL;
    if (vm_record_from_json(&back, a, NULL) < 0) abort();
    struct json_object *b = vm_record_to_json(back);
    if (!json_object_equal(a, b)) abort();
    if (rec->has_up) {
      char *diff = vm_up_diff(&rec->up, &back->up);
      if (!diff || *diff) abort();
      free(diff);
    }
    json_object_put(a);
    json_object_put(b);
    vm_record_free(back);
    build_argv(rec->spec);
    vm_record_free(rec);
  }
  free(text);
  return 0;
}
