/* SPDX-License-Identifier: MIT */
/*
 * The cloud-config builder: hostile strings round-trip through the libyaml
 * emitter unchanged and inject no structure; user cloud-config checking;
 * multipart merging headers; spec validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <yaml.h>

#include <qvm/seed.h>

#include "seed/yaml_out.h"
#include "util/cleanup.h"

static char *long_string(void) {
  char *s = malloc(70001);
  for (int i = 0; i < 70000; i++) s[i] = (char)('a' + i % 26);
  memcpy(s + 100, ": # - [x] {y} ", 14);
  s[70000] = 0;
  return s;
}

static const char *const hostile[] = {
    "",
    "null",
    "Null",
    "~",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "true",
    "0x10",
    "010",
    "1e3",
    ".inf",
    "-.5",
    "2001-12-14",
    "key: value",
    "a:b",
    "# comment",
    "value # not a comment",
    "*alias",
    "&anchor",
    "!tag",
    "!!python/object:os.system",
    "!!python/object/apply:os.system ['id']",
    "---",
    "...",
    "--- x",
    "line1\nline2",
    "line1\nline2\n",
    "trailing newlines\n\n\n",
    "\nleading newline",
    "  leading spaces",
    "trailing spaces  ",
    " both ",
    "\ttab\tinside",
    "trailing tab\t",
    "ctl \x01\x02\x1b[31m \x7f",
    "cr\rlf\r\n",
    "unicode: żółw, 日本語, emoji 🐢",
    "\xc2\x85 next line, \xe2\x80\xa8 line sep",
    "[flow, seq]",
    "{flow: map}",
    "- item",
    "? complex",
    "| literal",
    "> folded",
    "'single'",
    "\"double\"",
    "back\\slash",
    "%TAG ! tag:x",
    "@reserved",
    "`reserved",
    "a\n  indented\n\tand tab\n",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host",
    "echo 'hi' > /dev/ttyS0 && x=\"$(id)\"; #",
};

/* Emits a mapping {k: [strings...]} and parses it back. */
static char **round_trip(const char *const *in, size_t n, size_t *out_n) {
  yaml_out y;
  yaml_out_begin(&y, "#cloud-config\n");
  yaml_out_map_begin(&y);
  yaml_out_key(&y, "k");
  yaml_out_seq_begin(&y, false);
  for (size_t i = 0; i < n; i++) yaml_out_str(&y, in[i]);
  yaml_out_seq_end(&y);
  yaml_out_key(&y, "t");
  yaml_out_seq_begin(&y, false);
  for (size_t i = 0; i < n; i++) yaml_out_text(&y, in[i], strlen(in[i]));
  yaml_out_seq_end(&y);
  yaml_out_map_end(&y);
  char *text = NULL;
  size_t len = 0;
  qvm_error *err = NULL;
  assert_int_equal(yaml_out_finish(&y, &text, &len, "test", &err), 0);

  yaml_parser_t p;
  assert_true(yaml_parser_initialize(&p));
  yaml_parser_set_input_string(&p, (unsigned char *)text, len);
  char **got = calloc(2 * n + 4, sizeof *got);
  size_t ng = 0;
  int depth = 0, done = 0;
  while (!done) {
    yaml_event_t ev;
    assert_true(yaml_parser_parse(&p, &ev));
    switch (ev.type) {
    case YAML_STREAM_END_EVENT: done = 1; break;
    case YAML_ALIAS_EVENT: fail_msg("alias injected"); break;
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
      assert_null(ev.data.mapping_start.tag);
      assert_true(++depth <= 2);
      break;
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT: depth--; break;
    case YAML_SCALAR_EVENT:
      assert_null(ev.data.scalar.tag);
      if (depth == 2) {
        assert_true(ng < 2 * n);
        /* A plain scalar must not be one a YAML 1.1 resolver reads as non-str. */
        if (ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
          assert_true(yaml_plain_safe((char *)ev.data.scalar.value, ev.data.scalar.length));
        got[ng] = malloc(ev.data.scalar.length + 1);
        memcpy(got[ng], ev.data.scalar.value, ev.data.scalar.length);
        got[ng++][ev.data.scalar.length] = 0;
      }
      break;
    default: break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  free(text);
  *out_n = ng;
  return got;
}

static void test_hostile_round_trip(void **state) {
  (void)state;
  char *lng = long_string();
  size_t n = sizeof hostile / sizeof hostile[0];
  const char **in = calloc(n + 1, sizeof *in);
  memcpy(in, hostile, n * sizeof *in);
  in[n++] = lng;
  size_t ng = 0;
  char **got = round_trip(in, n, &ng);
  assert_int_equal(ng, 2 * n);
  for (size_t i = 0; i < 2 * n; i++) {
    if (strcmp(got[i], in[i % n]) != 0) fail_msg("string %zu changed: '%s'", i % n, in[i % n]);
    free(got[i]);
  }
  free(got);
  free(in);
  free(lng);
}

static void test_invalid_utf8_refused(void **state) {
  (void)state;
  yaml_out y;
  yaml_out_begin(&y, NULL);
  yaml_out_map_begin(&y);
  yaml_out_kv(&y, "k", "bad \xff\xfe");
  yaml_out_map_end(&y);
  char *text = NULL;
  size_t len = 0;
  qvm_error *err = NULL;
  assert_int_equal(yaml_out_finish(&y, &text, &len, "test", &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "utf-8"));
  qvm_error_free(err);
}

/* Finds the scalars of runcmd in rendered user-data (a plain cloud-config). */
static void test_spec_values_round_trip(void **state) {
  (void)state;
  qvm_seed_spec spec = QVM_SEED_SPEC_INIT;
  spec.instance_id = "i-1";
  spec.hostname = "h";
  spec.ready_marker = false;
  spec.runcmd = (const char *const *)hostile;
  spec.n_runcmd = sizeof hostile / sizeof hostile[0];
  char *ud = NULL;
  size_t len = 0;
  qvm_error *err = NULL;
  assert_int_equal(qvm_seed_render_user_data(&ud, &len, &spec, &err), 0);
  assert_memory_equal(ud, "#cloud-config\n", 14);
  yaml_parser_t p;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_string(&p, (unsigned char *)ud, len);
  size_t idx = 0;
  int depth = 0, in_runcmd = 0, done = 0;
  while (!done) {
    yaml_event_t ev;
    assert_true(yaml_parser_parse(&p, &ev));
    if (ev.type == YAML_STREAM_END_EVENT) done = 1;
    if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) depth++;
    if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
      if (--depth == 1) in_runcmd = 0;
    }
    if (ev.type == YAML_SCALAR_EVENT) {
      const char *v = (const char *)ev.data.scalar.value;
      if (depth == 1 && !strcmp(v, "runcmd"))
        in_runcmd = 1;
      else if (depth == 2 && in_runcmd) {
        assert_true(idx < spec.n_runcmd);
        assert_string_equal(v, hostile[idx]);
        idx++;
      }
    }
    yaml_event_delete(&ev);
  }
  assert_int_equal(idx, spec.n_runcmd);
  yaml_parser_delete(&p);
  free(ud);
}

static void expect_check_error(const char *yaml, const char *needle) {
  qvm_error *err = NULL;
  assert_int_equal(qvm_seed_check_user_config(yaml, strlen(yaml), "my.yaml", &err), QVM_EINVAL);
  const char *m = qvm_error_message(err);
  if (!strstr(m, needle) || !strstr(m, "'my.yaml'")) fail_msg("unexpected message: %s", m);
  qvm_error_free(err);
}

static void test_user_config_check(void **state) {
  (void)state;
  qvm_error *err = NULL;
  const char *ok = "#cloud-config\npackages: [vim]\nruncmd:\n  - echo hi\n";
  assert_int_equal(qvm_seed_check_user_config(ok, strlen(ok), "ok.yaml", &err), 0);
  expect_check_error("a: 1\nb: [1, 2\nc: 3\n", "line ");
  expect_check_error("key: value\n  bad: indent\n", "line 2");
  expect_check_error("- a\n- b\n", "not a mapping");
  expect_check_error("just a string\n", "not a mapping");
  expect_check_error("", "empty");
  expect_check_error("# only a comment\n", "empty");
  expect_check_error("a: 1\n---\nb: 2\n", "second document");
  expect_check_error("a: \"\xff\"\n", "line ");
  char deep[400];
  memset(deep, '[', 200);
  strcpy(deep + 200, "\n");
  char deep_map[420] = "a: ";
  strcat(deep_map, deep);
  expect_check_error(deep_map, "line 1");
}

static void test_multipart_merge(void **state) {
  (void)state;
  const char *keys[] = {"ssh-ed25519 AAAAqvm qvm"};
  qvm_seed_user user = {.name = "qvm", .ssh_authorized_keys = keys, .n_ssh_authorized_keys = 1};
  qvm_seed_spec spec = QVM_SEED_SPEC_INIT;
  spec.instance_id = "i-2";
  spec.hostname = "h";
  spec.users = &user;
  spec.n_users = 1;
  const char *cfg = "#cloud-config\nusers:\n  - default\nruncmd: [\"echo user\"]\n";
  spec.user_config = cfg;
  spec.user_config_len = strlen(cfg);
  const char *script = "#!/bin/sh\necho script\n";
  spec.user_script = script;
  spec.user_script_len = strlen(script);
  char *ud = NULL;
  size_t len = 0;
  qvm_error *err = NULL;
  assert_int_equal(qvm_seed_render_user_data(&ud, &len, &spec, &err), 0);
  assert_non_null(strstr(ud, "Content-Type: multipart/mixed; boundary="));
  /* user's cloud-config, then the script, then qvm's part, which comes last so
   * its list items are appended after the user's. */
  char *c1 = strstr(ud, "Content-Type: text/cloud-config");
  char *sh = strstr(ud, "Content-Type: text/x-shellscript");
  char *c2 = c1 ? strstr(c1 + 1, "Content-Type: text/cloud-config") : NULL;
  assert_true(c1 && sh && c2 && c1 < sh && sh < c2);
  size_t merges = 0;
  for (char *p = ud;
       (p = strstr(p, "Merge-Type: list(append)+dict(no_replace,recurse_list)+str()\n")); p++)
    merges++;
  assert_int_equal(merges, 2);
  assert_non_null(strstr(c2, "name: qvm"));
  assert_non_null(strstr(c2, QVM_SEED_READY_MARKER " i-2"));
  free(ud);

  /* A user part that is not a mapping is refused, naming the file. */
  spec.user_config = "- a\n";
  spec.user_config_len = 4;
  spec.user_config_name = "bad.yaml";
  assert_int_equal(qvm_seed_render_user_data(&ud, &len, &spec, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "'bad.yaml' line 1"));
  qvm_error_free(err);
  err = NULL;
  spec.user_config = NULL;
  spec.user_script = "echo no shebang\n";
  spec.user_script_len = 16;
  assert_int_equal(qvm_seed_render_user_data(&ud, &len, &spec, &err), QVM_EINVAL);
  qvm_error_free(err);
}

static void expect_spec_error(const qvm_seed_spec *spec, const char *needle) {
  char *out = NULL;
  size_t len = 0;
  qvm_error *err = NULL;
  int r = spec->network ? qvm_seed_render_network_config(&out, &len, spec, &err)
                        : qvm_seed_render_user_data(&out, &len, spec, &err);
  assert_int_equal(r, QVM_EINVAL);
  if (!strstr(qvm_error_message(err), needle))
    fail_msg("unexpected message: %s", qvm_error_message(err));
  qvm_error_free(err);
}

static void test_spec_checks(void **state) {
  (void)state;
  qvm_seed_spec s = QVM_SEED_SPEC_INIT;
  s.instance_id = "i-1";
  s.hostname = "bad host";
  expect_spec_error(&s, "hostname 'bad host'");
  s.hostname = "ok";
  s.version = 0; /* not made with QVM_SEED_SPEC_INIT */
  expect_spec_error(&s, "qvm_seed_spec: unknown version 0");
  s.version = QVM_SEED_SPEC_VERSION + 1;
  expect_spec_error(&s, "qvm_seed_spec: unknown version");
  s.version = QVM_SEED_SPEC_VERSION;
  s.instance_id = "i'; reboot";
  expect_spec_error(&s, "instance-id");
  s.instance_id = "i-1";
  qvm_seed_user u = {.name = "Root;"};
  s.users = &u;
  s.n_users = 1;
  expect_spec_error(&s, "user name 'Root;'");
  s.n_users = 0;
  qvm_seed_network n = {.mac = "52:54:00:zz:00:01", .dhcp4 = true};
  s.network = &n;
  expect_spec_error(&s, "mac '52:54:00:zz:00:01'");
  n.mac = "52:54:00:12:34:56";
  n.dhcp4 = false;
  n.address = "10.0.0.5";
  expect_spec_error(&s, "ADDRESS/PREFIX");
  n.address = "10.0.0.5/33";
  expect_spec_error(&s, "ADDRESS/PREFIX");
  n.address = "10.0.0.5/24";
  n.gateway = "10.0.0.256";
  expect_spec_error(&s, "gateway");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hostile_round_trip),     cmocka_unit_test(test_invalid_utf8_refused),
      cmocka_unit_test(test_spec_values_round_trip), cmocka_unit_test(test_user_config_check),
      cmocka_unit_test(test_multipart_merge),        cmocka_unit_test(test_spec_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
