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
                            "    cpu: Nehalem,+rdrand\n"
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
  assert_int_equal(o->net.mode, QVM_VM_NET_BRIDGE);
  assert_string_equal(o->net.bridge, "br1");
  assert_true(o->net.dhcp_external);
  assert_string_equal(o->net.subnet, "");
  assert_int_equal(o->n_publish, 2);
  assert_int_equal(o->publish[0].host_port, 8080);
  assert_int_equal(o->publish[0].guest_port, 80);
  assert_int_equal(o->publish[0].proto, QVM_VM_PROTO_TCP);
  assert_int_equal(o->publish[1].host_port, 5353);
  assert_int_equal(o->publish[1].guest_port, 53);
  assert_int_equal(o->publish[1].proto, QVM_VM_PROTO_UDP);
  assert_string_equal(o->user, "admin");
  assert_string_equal(o->hostname, "web.example");
  assert_string_equal(o->cpu, "Nehalem,+rdrand");
  assert_null(qvm_vm_file_options(f, 1)->cpu);
  assert_int_equal(o->n_cloud_configs, 2);
  assert_string_equal(o->cloud_configs[0], "/proj/a.yaml");
  assert_string_equal(o->cloud_configs[1], "/abs/b.sh");
  assert_int_equal(o->n_authorized_keys, 1);
  assert_string_equal(o->authorized_keys[0], "/k.pub");
  assert_int_equal(o->n_provision, 3);
  assert_int_equal(o->provision[0].kind, QVM_VM_STEP_SHELL);
  assert_false(o->provision[0].sudo);
  assert_string_equal(o->provision[0].text, "echo \"a: b\" # not a comment");
  assert_int_equal(o->provision[1].kind, QVM_VM_STEP_SCRIPT);
  assert_true(o->provision[1].sudo);
  assert_string_equal(o->provision[1].text, "/proj/s.sh");
  assert_int_equal(o->provision[2].kind, QVM_VM_STEP_FILE);
  assert_string_equal(o->provision[2].text, "/proj/site");
  assert_string_equal(o->provision[2].destination, "/var/www");
  assert_null(o->provision[0].destination);
  o = qvm_vm_file_options(f, 1);
  assert_null(o->image);
  assert_string_equal(o->kernel, "/k");
  assert_string_equal(o->append, "console=ttyS0");
  qvm_vm_file_free(f);
}

/* The structured forms fill the typed options directly; a file step may
 * now name a path with ':' (no string syntax in between). */
static void test_structured(void **state) {
  (void)state;
  qvm_vm_file *f = parse_ok("vms:\n"
                            "  a:\n"
                            "    image: x\n"
                            "    net: {mode: bridge, bridge: br0, subnet: 10.9.0.1/24, nat: true}\n"
                            "    ports:\n"
                            "      - {host: 8080, guest: 80}\n"
                            "      - {host: 5353, guest: 53, proto: udp, addr: 0.0.0.0}\n"
                            "      - '9000:90'\n"
                            "    provision:\n"
                            "      - {file: 'a:b', to: /srv}\n"
                            "  b:\n"
                            "    image: x\n"
                            "    net: {mode: user, restrict: true}\n"
                            "    ports: {host: 1, guest: 2}\n"
                            "  c:\n"
                            "    image: x\n"
                            "    net: none\n");
  const qvm_vm_create_options *o = qvm_vm_file_options(f, 0);
  assert_int_equal(o->net.mode, QVM_VM_NET_BRIDGE);
  assert_string_equal(o->net.bridge, "br0");
  assert_string_equal(o->net.subnet, "10.9.0.1/24");
  assert_true(o->net.nat);
  assert_false(o->net.dhcp_external);
  assert_int_equal(o->n_publish, 3);
  assert_string_equal(o->publish[0].addr, "");
  assert_int_equal(o->publish[1].proto, QVM_VM_PROTO_UDP);
  assert_string_equal(o->publish[1].addr, "0.0.0.0");
  assert_int_equal(o->publish[2].host_port, 9000);
  assert_string_equal(o->provision[0].text, "/proj/a:b");
  o = qvm_vm_file_options(f, 1);
  assert_int_equal(o->net.mode, QVM_VM_NET_USER);
  assert_true(o->net.restricted);
  assert_int_equal(o->n_publish, 1);
  assert_int_equal(o->publish[0].guest_port, 2);
  assert_int_equal(qvm_vm_file_options(f, 2)->net.mode, QVM_VM_NET_NONE);
  qvm_vm_file_free(f);
  parse_err("vms:\n  a:\n    image: x\n    net: {bridge: br0}\n",
            "qvm.yaml:4:10:", "'net' needs 'mode: user|none|bridge'");
  parse_err("vms:\n  a:\n    image: x\n    net: {mode: tap}\n",
            "qvm.yaml:4:17:", "'mode' must be user, none or bridge");
  parse_err("vms:\n  a:\n    image: x\n    net: {mode: bridge, brige: b}\n", NULL,
            "unknown net key 'brige': did you mean 'bridge'?");
  parse_err("vms:\n  a:\n    image: x\n    net: {mode: bridge, bridge: abcdefghijklmnopq}\n", NULL,
            "'bridge' must be 1 to 15 characters");
  parse_err("vms:\n  a:\n    image: x\n    net: {mode: bridge, dhcp: maybe}\n", NULL,
            "'dhcp' must be qvm or external");
  parse_err("vms:\n  a:\n    image: x\n    net: bridge,dhcp=maybe\n",
            "qvm.yaml:4:10:", "network option 'dhcp=maybe'");
  parse_err("vms:\n  a:\n    image: x\n    ports: [{host: 8080}]\n", NULL,
            "a port needs 'host: PORT' and 'guest: PORT'");
  parse_err("vms:\n  a:\n    image: x\n    ports: [{host: 0, guest: 1}]\n", NULL,
            "whole number from 1 to 65535");
  parse_err("vms:\n  a:\n    image: x\n    ports: [{host: 1, guest: 2, proto: sctp}]\n", NULL,
            "'proto' must be tcp or udp");
  parse_err("vms:\n  a:\n    image: x\n    ports: [{host: 1, guest: 2, addr: '::1'}]\n", NULL,
            "'addr' must be an IPv4 address");
  parse_err("vms:\n  a:\n    image: x\n    ports: [{hots: 1}]\n", NULL,
            "unknown port key 'hots': did you mean 'host'?");
  parse_err("vms:\n  a:\n    image: x\n    ports: ['80:x']\n", "qvm.yaml:4:13:", "invalid port");
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
  assert_int_equal(web->net.mode, QVM_VM_NET_USER);
  assert_int_equal(web->n_publish, 1);
  assert_true(web->n_provision >= 1);
  assert_non_null(strstr(web->image, "/examples/images/"));
  assert_string_equal(qvm_vm_file_name(f, 1), "db");
  assert_int_equal(db->net.mode, QVM_VM_NET_BRIDGE);
  assert_string_equal(db->net.bridge, "qvmbr0");
  assert_string_equal(db->net.subnet, "10.77.0.1/24");
  assert_non_null(realpath(src, dir));
  assert_int_equal(strncmp(web->image, dir, strlen(dir)), 0);
  qvm_vm_file_free(f);
}

/* image: a path when it looks like one, else a store name, digest, alias or
 * URL kept as written; image_sha256/image_checksums reach the pull options. */
static void test_image_refs(void **state) {
  (void)state;
  qvm_vm_file *f = parse_ok("vms:\n"
                            "  a: {image: debian-12}\n"
                            "  b: {image: 'https://example.invalid/x.qcow2', image_sha256: "
                            "'0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}\n"
                            "  c: {image: 'sha256:0123456789ab'}\n"
                            "  d: {image: ./disk.qcow2}\n"
                            "  e: {image: imgs/disk.qcow2, image_checksums: "
                            "'http://127.0.0.1/SHA256SUMS'}\n");
  const qvm_vm_create_options *a = qvm_vm_file_options(f, 0), *b = qvm_vm_file_options(f, 1),
                              *c = qvm_vm_file_options(f, 2), *d = qvm_vm_file_options(f, 3),
                              *e = qvm_vm_file_options(f, 4);
  assert_string_equal(a->image, "debian-12");
  assert_null(a->image_pull);
  assert_string_equal(b->image, "https://example.invalid/x.qcow2");
  assert_non_null(b->image_pull);
  assert_int_equal(b->image_pull->version, QVM_IMAGE_PULL_OPTIONS_VERSION);
  assert_string_equal(b->image_pull->sha256,
                      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  assert_string_equal(c->image, "sha256:0123456789ab");
  assert_string_equal(d->image, "/proj/./disk.qcow2");
  assert_string_equal(e->image, "/proj/imgs/disk.qcow2");
  assert_string_equal(e->image_pull->checksums, "http://127.0.0.1/SHA256SUMS");
  assert_null(e->image_pull->sha256);
  qvm_vm_file_free(f);
}

/* Tags are data, never types; aliases resolve to the same data; deep or
 * self-referencing structures only fail. */
static void test_hostile(void **state) {
  (void)state;
  qvm_vm_file *f = parse_ok("vms:\n  a:\n    image: !!python/object:os.system x\n"
                            "    user: &u admin\n    hostname: *u\n");
  /* a bare word with no such file beside qvm.yaml is an image reference */
  assert_string_equal(qvm_vm_file_options(f, 0)->image, "x");
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
      cmocka_unit_test(test_full),         cmocka_unit_test(test_structured),
      cmocka_unit_test(test_home),         cmocka_unit_test(test_errors),
      cmocka_unit_test(test_image_refs),   cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_did_you_mean), cmocka_unit_test(test_example),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
