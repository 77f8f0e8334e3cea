/* SPDX-License-Identifier: MIT */
/*
 * Golden files for the builder: spec -> user-data, meta-data, network-config
 * in tests/seed/golden/<case>.<file>. QVM_TEST_REGENERATE=1 rewrites them;
 * otherwise they are compared byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <qvm/seed.h>

#include "testlib.h"

static void compare_golden(const char *name, const char *file, const char *got, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/seed/golden/%s.%s", qvm_test_source_dir(), name, file);
  const char *regen = getenv("QVM_TEST_REGENERATE");
  if (regen && !strcmp(regen, "1")) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(got, 1, len, f), len);
    fclose(f);
    return;
  }
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("golden file %s is missing (run with QVM_TEST_REGENERATE=1)", path);
  char *want = malloc(len + 2);
  size_t n = fread(want, 1, len + 1, f);
  fclose(f);
  if (n != len || memcmp(want, got, len) != 0) {
    fprintf(stderr, "--- %s differs; got:\n%.*s\n", path, (int)len, got);
    free(want);
    fail_msg("%s differs from the golden file", path);
  }
  free(want);
}

static void check_spec(const char *name, const qvm_seed_spec *spec) {
  char *out = NULL;
  size_t len = 0;
  qvm_error *err = NULL;
  if (qvm_seed_render_user_data(&out, &len, spec, &err) < 0) fail_msg("%s", qvm_error_message(err));
  compare_golden(name, "user-data", out, len);
  free(out);
  assert_int_equal(qvm_seed_render_meta_data(&out, &len, spec, &err), 0);
  compare_golden(name, "meta-data", out, len);
  free(out);
  if (spec->network) {
    assert_int_equal(qvm_seed_render_network_config(&out, &len, spec, &err), 0);
    compare_golden(name, "network-config", out, len);
    free(out);
  }
}

static const char *const qvm_keys[] = {
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmYy5y8YJ2bM7ZpYJH0r0Y1b4YkQ3CqGm5xXwqv1n2c qvm@host"};

static void test_minimal(void **state) {
  (void)state;
  qvm_seed_spec s = QVM_SEED_SPEC_INIT;
  s.instance_id = "qvm-0b1c2d3e-0000-4000-8000-000000000001";
  s.hostname = "vm1";
  s.ssh_authorized_keys = qvm_keys;
  s.n_ssh_authorized_keys = 1;
  check_spec("minimal", &s);
}

static void test_full(void **state) {
  (void)state;
  qvm_seed_user users[] = {{.name = "qvm",
                            .groups = "sudo,adm",
                            .sudo = "ALL=(ALL) NOPASSWD:ALL",
                            .shell = "/bin/bash",
                            .lock_passwd = true,
                            .ssh_authorized_keys = qvm_keys,
                            .n_ssh_authorized_keys = 1}};
  qvm_seed_host_key hk[] = {
      {.type = "ed25519",
       .private_key =
           "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
           "-----END OPENSSH PRIVATE KEY-----\n",
       .public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyHostKeyHostKeyHostKey root@vm"}};
  static const uint8_t bin[] = {0, 1, 2, 0xff, 0xfe, 'x', '\n'};
  qvm_seed_write_file files[] = {
      {.path = "/etc/motd",
       .content = "welcome: to qvm\n# not a comment\n",
       .content_len = 32,
       .permissions = "0644",
       .owner = "root:root"},
      {.path = "/opt/blob.bin", .content = bin, .content_len = sizeof bin, .permissions = "0600"},
  };
  const char *pkgs[] = {"curl", "vim-nox", "yes"};
  const char *boot[] = {"echo boot > /run/qvm-boot"};
  const char *run[] = {"systemctl restart ssh", "echo 'a: b' >> /tmp/x # hash"};
  qvm_seed_spec s = QVM_SEED_SPEC_INIT;
  s.instance_id = "qvm-0b1c2d3e-0000-4000-8000-000000000002";
  s.hostname = "web-1";
  s.fqdn = "web-1.example.test";
  s.manage_etc_hosts = true;
  s.users = users;
  s.n_users = 1;
  s.host_keys = hk;
  s.n_host_keys = 1;
  s.packages = pkgs;
  s.n_packages = 3;
  s.package_update = true;
  s.write_files = files;
  s.n_write_files = 2;
  s.bootcmd = boot;
  s.n_bootcmd = 1;
  s.runcmd = run;
  s.n_runcmd = 2;
  qvm_seed_network net = {.mac = "52:54:00:AB:CD:EF", .dhcp4 = true};
  s.network = &net;
  s.growpart_off = true;
  check_spec("full", &s);
}

/* A version 1 spec (from before growpart_off) is taken; the field is not
 * read from it. */
static void test_version_1(void **state) {
  (void)state;
  qvm_seed_spec s = QVM_SEED_SPEC_INIT;
  s.version = 1;
  s.instance_id = "qvm-0b1c2d3e-0000-4000-8000-000000000001";
  s.hostname = "vm1";
  s.ssh_authorized_keys = qvm_keys;
  s.n_ssh_authorized_keys = 1;
  s.growpart_off = true;
  check_spec("minimal", &s);
  s.version = 3;
  char *out = NULL;
  size_t len = 0;
  qvm_error *err = NULL;
  assert_true(qvm_seed_render_user_data(&out, &len, &s, &err) < 0);
  assert_non_null(strstr(qvm_error_message(err), "unknown version 3"));
  qvm_error_free(err);
}

static void test_static_network(void **state) {
  (void)state;
  const char *ns[] = {"192.0.2.53", "2001:db8::53"};
  qvm_seed_network net = {.mac = "52:54:00:12:34:56",
                          .address = "192.0.2.10/24",
                          .gateway = "192.0.2.1",
                          .nameservers = ns,
                          .n_nameservers = 2};
  qvm_seed_spec s = QVM_SEED_SPEC_INIT;
  s.instance_id = "i-static";
  s.hostname = "db";
  s.ready_marker = false;
  s.ssh_pwauth = false;
  s.network = &net;
  check_spec("static", &s);
}

static void test_user_parts(void **state) {
  (void)state;
  qvm_seed_user users[] = {
      {.name = "qvm", .ssh_authorized_keys = qvm_keys, .n_ssh_authorized_keys = 1}};
  const char *cfg = "#cloud-config\nusers:\n  - default\n  - name: alice\nruncmd:\n  - echo "
                    "from-user\nhostname: user-wins\n";
  const char *script = "#!/bin/sh\necho \"user script\" > /dev/ttyS0\n";
  qvm_seed_spec s = QVM_SEED_SPEC_INIT;
  s.instance_id = "i-merge";
  s.hostname = "merged";
  s.users = users;
  s.n_users = 1;
  s.user_config = cfg;
  s.user_config_len = strlen(cfg);
  s.user_config_name = "user.yaml";
  s.user_script = script;
  s.user_script_len = strlen(script);
  check_spec("multipart", &s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_minimal),    cmocka_unit_test(test_full),
      cmocka_unit_test(test_version_1),  cmocka_unit_test(test_static_network),
      cmocka_unit_test(test_user_parts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
