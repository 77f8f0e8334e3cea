/* SPDX-License-Identifier: MIT */
/*
 * vm.json is a file a user can edit: parse arbitrary bytes as one through
 * the record codec (vm/record.h), and for every record that passes
 * validation check that it encodes and decodes to itself, then build the
 * QEMU command line from its spec. The same bytes also go through the
 * option parsers (sizes, port forwards, drives, names).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/argv.h"
#include "vm/record.h"
#include "vm/spec.h"
#include "vm/syntax.h"

/* Names the failed check: the replay runs optimized, where aborts merge. */
#define FAIL() (fprintf(stderr, "fuzz_vm_json: check at line %d failed\n", __LINE__), abort())

/* The public parsers of the CLI's syntaxes: what one accepts, the up
 * record's formatter writes back to text that parses to the same struct. */
static void parse_options(const char *s) {
  uint64_t size = 0;
  qvm_error *err = NULL;
  qvm_vm_size_parse(&size, "disk", s, &err);
  qvm_error_free(err);
  qvm_vm_publish p, p2;
  if (qvm_vm_publish_parse(&p, s, NULL) == 0) {
    char *t = vm_publish_format(&p);
    if (!t || qvm_vm_publish_parse(&p2, t, NULL) < 0 || memcmp(&p, &p2, sizeof p)) FAIL();
    free(t);
  }
  qvm_vm_net n, n2;
  if (qvm_vm_net_parse(&n, s, NULL) == 0) {
    char *t = vm_net_format(&n);
    if (!t || qvm_vm_net_parse(&n2, t, NULL) < 0 || memcmp(&n, &n2, sizeof n)) FAIL();
    free(t);
  }
  qvm_vm_drive d = {0};
  if (qvm_vm_drive_parse(&d, s, NULL) == 0) {
    char *t = vm_drive_format(&d);
    qvm_vm_drive d2 = {0};
    if (!t || qvm_vm_drive_parse(&d2, t, NULL) < 0 || strcmp(d.path, d2.path) ||
        !d.format != !d2.format || (d.format && strcmp(d.format, d2.format)) ||
        d.readonly != d2.readonly)
      FAIL();
    qvm_vm_drive_clear(&d2);
    qvm_vm_drive_clear(&d);
    free(t);
  }
  qvm_vm_step st = {0};
  if (qvm_vm_step_parse(&st, s, NULL) == 0) {
    char *t = vm_public_step_format(&st);
    qvm_vm_step st2 = {0};
    if (!t || qvm_vm_step_parse(&st2, t, NULL) < 0 || st.kind != st2.kind || st.sudo != st2.sudo ||
        strcmp(st.text, st2.text))
      FAIL();
    qvm_vm_step_clear(&st2);
    qvm_vm_step_clear(&st);
    free(t);
  }
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
                      .tap_fd = 5,
                      .mount_sock_dir = "/run/qvm/x"};
  vm_argv *a = NULL;
  qvm_error *err = NULL;
  if (vm_argv_build(&a, &in, &err) < 0) FAIL(); /* a valid spec always builds */
  char *text = vm_argv_format(a);
  if (!text) FAIL();
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
    if (vm_record_from_json(&back, a, NULL) < 0) FAIL();
    struct json_object *b = vm_record_to_json(back);
    if (!json_object_equal(a, b)) FAIL();
    if (rec->has_up) {
      char *diff = vm_up_diff(&rec->up, &back->up);
      if (!diff || *diff) FAIL();
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
