/* SPDX-License-Identifier: MIT */
/* qvm.yaml: the schema, positions in errors, paths, provision steps, and
 * hostile YAML. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vm/config.h"

static qvm_vm_file *parse_ok(const char *text) {
  qvm_vm_file *f = NULL;
  qvm_error *err = NULL;
  int r = vm_file_parse(&f, "qvm.yaml", "/proj", text, strlen(text), &err);
  if (r < 0) fail_msg("unexpected error: %s", qvm_error_message(err));
  return f;
}

/* The error message, which must start with "qvm.yaml:LINE:COL:" when
 * `position` is given, and contain `want`. */
static void parse_err(const char *text, const char *position, const char *want) {
  qvm_vm_file *f = NULL;
  qvm_error *err = NULL;
  int r = vm_file_parse(&f, "qvm.yaml", "/proj", text, strlen(text), &err);
  assert_int_equal(r, QVM_EINVAL);
  assert_null(f);
  const char *msg = qvm_error_message(err);
  if (position && strncmp(msg, position, strlen(position)))
    fail_msg("'%s' does not start with '%s'", msg, position);
  if (!strstr(msg, want)) fail_msg("'%s' does not contain '%s'", msg, want);
  qvm_error_free(err);
}

static void test_full(void **state) {
  (void)state;
  qvm_vm_file *f = parse_ok("vms:\n"
                            "  web:\n"
                            "    image: images/deb.qcow2\n"
                            "    cpus: 2\n"
                            "    memory: 1G\n"
                            "    disk: 10G\n"
                            "    net: bridge=br1,dhcp=external\n"
                            "    ports: [\"8080:80\", \"5353:53/udp\"]\n"
                            "    user: admin\n"
                            "    hostname: web.example\n"
                            "    cloud_config: [a.yaml, /abs/b.sh]\n"
                            "    ssh_keys: /k.pub\n"
                            "    provision:\n"
                            "      - shell: 'echo \"a: b\" # not a comment'\n"
                            "      - script: s.sh\n"
                            "        sudo: true\n"
                            "      - file: site\n"
                            "        to: /var/www\n"
                            "  db:\n"
                            "    kernel: /k\n"
                            "    append: console=ttyS0\n");
  assert_int_equal(qvm_vm_file_count(f), 2);
  assert_string_equal(qvm_vm_file_name(f, 0), "web");
  assert_string_equal(qvm_vm_file_name(f, 1), "db");
  assert_int_equal(qvm_vm_file_find(f, "db"), 1);
  assert_int_equal(qvm_vm_file_find(f, "nope"), -1);
  const qvm_vm_create_options *o = qvm_vm_file_options(f, 0);
  assert_string_equal(o->image, "/proj/images/deb.qcow2");
  assert_int_equal(o->cpus, 2);
  assert_int_equal(o->memory, 1u << 30);
  assert_int_equal(o->disk, UINT64_C(10) << 30);
  assert_string_equal(o->net, "bridge=br1,dhcp=external");
  assert_int_equal(o->n_publish, 2);
  assert_string_equal(o->publish[1], "5353:53/udp");
  assert_string_equal(o->user, "admin");
  assert_string_equal(o->hostname, "web.example");
  assert_int_equal(o->n_cloud_configs, 2);
  assert_string_equal(o->cloud_configs[0], "/proj/a.yaml");
  assert_string_equal(o->cloud_configs[1], "/abs/b.sh");
  assert_int_equal(o->n_authorized_keys, 1);
  assert_string_equal(o->authorized_keys[0], "/k.pub");
  assert_int_equal(o->n_provision, 3);
  assert_string_equal(o->provision[0], "shell:echo \"a: b\" # not a comment");
  assert_string_equal(o->provision[1], "sudo:script:/proj/s.sh");
  assert_string_equal(o->provision[2], "file:/proj/site:/var/www");
  o = qvm_vm_file_options(f, 1);
  assert_null(o->image);
  assert_string_equal(o->kernel, "/k");
  assert_string_equal(o->append, "console=ttyS0");
  qvm_vm_file_free(f);
}

static void test_home(void **state) {
  (void)state;
  setenv("HOME", "/home/u", 1);
  qvm_vm_file *f = parse_ok("vms:\n  a:\n    image: ~/img.qcow2\n");
  assert_string_equal(qvm_vm_file_options(f, 0)->image, "/home/u/img.qcow2");
  qvm_vm_file_free(f);
  parse_err("vms:\n  a:\n    image: ~bob/img\n", "qvm.yaml:3:12:", "only '~/' is expanded");
}

static void test_errors(void **state) {
  (void)state;
  parse_err("", NULL, "empty");
  parse_err("- a\n", "qvm.yaml:1:1:", "top level must be a mapping");
  parse_err("vm:\n  a: {}\n", "qvm.yaml:1:1:", "unknown top-level key 'vm'");
  parse_err("vms: []\n", "qvm.yaml:1:6:", "must map VM names");
  parse_err("vms: {}\n", "qvm.yaml:1:6:", "'vms' is empty");
  parse_err("vms:\n  a:\n    image: x\n    memroy: 1G\n", "qvm.yaml:4:5:",
            "unknown key 'memroy' in vm 'a': did you mean 'memory'? allowed are image");
  parse_err("vms:\n  Bad_Name:\n    image: x\n", "qvm.yaml:2:3:", "vm name 'Bad_Name' is invalid");
  parse_err("vms:\n  ../x:\n    image: x\n", "qvm.yaml:2:3:", "is invalid");
  parse_err("vms:\n  a:\n    image: x\n  a:\n    image: y\n", "qvm.yaml:4:3:", "described twice");
  parse_err("vms:\n  a:\n    cpus: 2\n", "qvm.yaml:3:5:", "needs 'image: PATH'");
  parse_err("vms:\n  a:\n    image: x\n    cpus: many\n",
            "qvm.yaml:4:11:", "whole number from 1 to 255");
  parse_err("vms:\n  a:\n    image: x\n    cpus: 0\n", NULL, "whole number");
  parse_err("vms:\n  a:\n    image: x\n    cpus: 256\n", NULL, "whole number");
  parse_err("vms:\n  a:\n    image: x\n    cpus: -1\n", NULL, "whole number");
  /* Sizes are read into bytes at load, with the value's position. */
  parse_err("vms:\n  a:\n    image: x\n    memory: 1Q\n", "qvm.yaml:4:13:", "memory");
  parse_err("vms:\n  a:\n    image: x\n    disk: -5G\n", "qvm.yaml:4:11:", "disk");
  parse_err("vms:\n  a:\n    image: [x]\n", "qvm.yaml:3:12:", "must be a single value, not a list");
  parse_err("vms:\n  a:\n    image: ''\n", NULL, "empty path");
  parse_err("vms:\n  a:\n    image: x\n    provision: {shell: x}\n", NULL,
            "'provision' must be a list");
  parse_err("vms:\n  a:\n    image: x\n    provision: [ls]\n", NULL,
            "a provision step must be a mapping");
  parse_err("vms:\n  a:\n    image: x\n    provision: [{shell: a, script: b}]\n", NULL,
            "has both 'shell' and 'script'");
  parse_err("vms:\n  a:\n    image: x\n    provision: [{file: a}]\n", NULL, "needs 'to:");
  parse_err("vms:\n  a:\n    image: x\n    provision: [{shell: a, to: b}]\n", NULL,
            "'to' belongs only");
  parse_err("vms:\n  a:\n    image: x\n    provision: [{shell: a, sudo: maybe}]\n", NULL,
            "'sudo' must be true or false");
  parse_err("vms:\n  a:\n    image: x\n    provision: [{run: a}]\n", NULL,
            "unknown provision step key 'run'");
  parse_err("vms:\n  a:\n    image: x\n    provision: [{to: b}]\n", NULL,
            "needs one of shell, script or file");
  parse_err("vms: [a\n", "qvm.yaml:2:1:", "invalid YAML");
  parse_err("vms:\n  a:\n    image: x\n---\nvms: {}\n", NULL, "more than one YAML document");
}

/* An unknown key close to a known one (two edits, or '-' for '_') names it;
 * one far from every key does not guess. */
static void test_did_you_mean(void **state) {
  (void)state;
  parse_err("vms:\n  a:\n    image: x\n    image-format: raw\n", NULL,
            "did you mean 'image_format'?");
  parse_err("vms:\n  a:\n    image: x\n    cloud-config: c.yaml\n", NULL,
            "did you mean 'cloud_config'?");
  parse_err("vms:\n  a:\n    image: x\n    ssh_key: k.pub\n", NULL, "did you mean 'ssh_keys'?");
  parse_err("vms:\n  a:\n    image: x\n    provision: [{shel: ls}]\n", NULL,
            "unknown provision step key 'shel': did you mean 'shell'? use shell, script");
  parse_err("vm:\n  a: {}\n", NULL, "unknown top-level key 'vm': did you mean 'vms'?");
  const char far[] = "vms:\n  a:\n    image: x\n    frobnicate: 1\n";
  qvm_vm_file *f = NULL;
  qvm_error *err = NULL;
  assert_int_equal(vm_file_parse(&f, "qvm.yaml", "/proj", far, strlen(far), &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "unknown key 'frobnicate'"));
  assert_null(strstr(qvm_error_message(err), "did you mean"));
  qvm_error_free(err);
}

/* examples/qvm.yaml, the commented example docs/cli.md points to, parses:
 * two VMs, one on the user network with provision steps, one on a bridge. */
static void test_example(void **state) {
  (void)state;
  const char *src = getenv("QVM_SOURCE_DIR");
  if (!src) fail_msg("QVM_SOURCE_DIR is not set (run through ctest)");
  char path[4096], dir[4096];
  snprintf(path, sizeof path, "%s/examples/qvm.yaml", src);
  qvm_vm_file *f = NULL;
  qvm_error *err = NULL;
  if (qvm_vm_file_load(&f, path, &err) < 0) fail_msg("%s", qvm_error_message(err));
  assert_int_equal(qvm_vm_file_count(f), 2);
  const qvm_vm_create_options *web = qvm_vm_file_options(f, 0), *db = qvm_vm_file_options(f, 1);
  assert_string_equal(qvm_vm_file_name(f, 0), "web");
  assert_string_equal(web->net, "user");
  assert_int_equal(web->n_publish, 1);
  assert_true(web->n_provision >= 1);
  assert_non_null(strstr(web->image, "/examples/images/"));
  assert_string_equal(qvm_vm_file_name(f, 1), "db");
  assert_int_equal(strncmp(db->net, "bridge", 6), 0);
  assert_non_null(realpath(src, dir));
  assert_int_equal(strncmp(web->image, dir, strlen(dir)), 0);
  qvm_vm_file_free(f);
}

/* Tags are data, never types; aliases resolve to the same data; deep or
 * self-referencing structures only fail. */
static void test_hostile(void **state) {
  (void)state;
  qvm_vm_file *f = parse_ok("vms:\n  a:\n    image: !!python/object:os.system x\n"
                            "    user: &u admin\n    hostname: *u\n");
  assert_string_equal(qvm_vm_file_options(f, 0)->image, "/proj/x");
  assert_string_equal(qvm_vm_file_options(f, 0)->hostname, "admin");
  qvm_vm_file_free(f);
  parse_err("vms: &v\n  a: *v\n", NULL, "unknown key 'a' in vm 'a'");
  parse_err("vms:\n  a:\n    image: x\n    ports: &p [*p]\n", NULL, "must be a single value");
  char deep[4096] = "vms:\n  a:\n    image: x\n    ports: ";
  for (int i = 0; i < 1000; i++) strcat(deep, "[");
  parse_err(deep, NULL, "");
  const char nul[] = "vms:\n  a:\n    image: x\0y\n";
  qvm_vm_file *g = NULL;
  qvm_error *err = NULL;
  assert_int_equal(vm_file_parse(&g, "qvm.yaml", "/", nul, sizeof nul - 1, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "NUL"));
  qvm_error_free(err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full),         cmocka_unit_test(test_home),
      cmocka_unit_test(test_errors),       cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_did_you_mean), cmocka_unit_test(test_example),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
