/* SPDX-License-Identifier: MIT */
/* Unit tests of guest access in the spec: provision step parsing, the
 * "access" member of vm.json (round trip and hostile input), the checks
 * `qvm create` makes, and the keys + seed written at create time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testlib.h"
#include "util/fs.h"
#include "vm/access.h"
#include "vm/spec.h"
#include <qvm/ssh.h>

static void test_step_parse(void **state) {
  (void)state;
  static const struct {
    const char *text;
    vm_step_kind kind;
    bool sudo;
    const char *src, *dst;
  } good[] = {
      {"shell:echo hi", VM_STEP_SHELL, false, "echo hi", NULL},
      {"sudo:shell:a:b c", VM_STEP_SHELL, true, "a:b c", NULL},
      {"shell:line1\nline2 'q' \"d\" $x;", VM_STEP_SHELL, false, "line1\nline2 'q' \"d\" $x;",
       NULL},
      {"script:setup.sh", VM_STEP_SCRIPT, false, "setup.sh", NULL},
      {"sudo:script:/abs/x.sh", VM_STEP_SCRIPT, true, "/abs/x.sh", NULL},
      {"file:app.conf:/etc/app.conf", VM_STEP_FILE, false, "app.conf", "/etc/app.conf"},
      {"sudo:file:dir:/opt/a:b", VM_STEP_FILE, true, "dir", "/opt/a:b"},
      {"file:a:relative", VM_STEP_FILE, false, "a", "relative"},
  };
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    vm_step st = {0};
    qvm_error *err = NULL;
    if (vm_step_parse(&st, good[i].text, &err) < 0)
      fail_msg("'%s': %s", good[i].text, qvm_error_message(err));
    assert_int_equal(st.kind, good[i].kind);
    assert_int_equal(st.sudo, good[i].sudo);
    assert_string_equal(st.text, good[i].src);
    if (good[i].dst)
      assert_string_equal(st.destination, good[i].dst);
    else
      assert_null(st.destination);
    char *again = vm_step_format(&st);
    assert_string_equal(again, good[i].text);
    free(again);
    vm_step_clear(&st);
  }
  static const struct {
    const char *text, *needle;
  } bad[] = {
      {"", "empty"},
      {"shell:", "nothing after"},
      {"echo hi", "is invalid"},
      {"sudo:", "is invalid"},
      {"run:echo", "kind 'run' is unknown"},
      {"sudo:sudo:shell:x", "kind 'sudo' is unknown"},
      {"file:a", "file:SRC:DST"},
      {"file::/b", "file:SRC:DST"},
      {"file:a:", "file:SRC:DST"},
      {"script:", "nothing after"},
      {"Shell:x", "unknown"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    vm_step st = {0};
    qvm_error *err = NULL;
    assert_int_equal(vm_step_parse(&st, bad[i].text, &err), QVM_EINVAL);
    if (!strstr(qvm_error_message(err), bad[i].needle))
      fail_msg("'%s': message '%s' lacks '%s'", bad[i].text, qvm_error_message(err), bad[i].needle);
    assert_null(st.text);
    qvm_error_free(err);
  }
  assert_int_equal(vm_step_parse(NULL, NULL, NULL), QVM_EINVAL);
  /* Without an error to fill, a bad kind is still a failure (it was 0). */
  vm_step untouched = {0};
  assert_int_equal(vm_step_parse(&untouched, "bogus:x", NULL), QVM_EINVAL);
  assert_null(untouched.text);
}

static void test_names(void **state) {
  (void)state;
  const char *users[] = {"qvm", "root", "_svc", "a-b_1", "abcdefghijklmnopqrstuvwxyz012345"};
  const char *bad_users[] = {
      "", "Root", "1abc", "a b", "a:b", "a/b", "-x", "a\nb", "abcdefghijklmnopqrstuvwxyz0123456"};
  for (size_t i = 0; i < sizeof users / sizeof *users; i++)
    assert_true(vm_user_name_valid(users[i]));
  for (size_t i = 0; i < sizeof bad_users / sizeof *bad_users; i++)
    assert_false(vm_user_name_valid(bad_users[i]));
  assert_true(vm_hostname_valid("web-1.example"));
  assert_true(vm_hostname_valid("A1"));
  assert_false(vm_hostname_valid("-a"));
  assert_false(vm_hostname_valid("a_b"));
  assert_false(vm_hostname_valid("a b"));
  assert_false(vm_hostname_valid(""));
  assert_false(vm_hostname_valid("a-"));
  assert_false(vm_hostname_valid("a..b"));
  assert_false(vm_hostname_valid("a.-b"));
  assert_false(vm_hostname_valid("a."));
  assert_true(vm_hostname_valid("a-b.c-d.e"));
}

static const char base_spec[] =
    "{\"name\":\"web\",\"uuid\":\"0f8b6c1e-5f3c-4a4e-9a43-1c2d3e4f5a6b\","
    "\"mac\":\"52:54:00:12:34:56\",\"cpus\":1,\"memory_mib\":256,\"machine\":\"q35\","
    "\"accel\":\"auto\",\"firmware\":\"bios\",\"drives\":[],"
    "\"network\":{\"mode\":\"user\",\"ssh_forward\":true,\"forwards\":[]}";

static int spec_parse(vm_spec **out, const char *access, qvm_error **err) {
  char *text = NULL;
  if (asprintf(&text, "%s%s%s}", base_spec, access ? ",\"access\":" : "", access ? access : "") < 0)
    abort();
  struct json_object *o = json_tokener_parse(text);
  free(text);
  assert_non_null(o);
  int r = vm_spec_from_json(out, o, err);
  json_object_put(o);
  return r;
}

static void test_access_round_trip(void **state) {
  (void)state;
  const char *access =
      "{\"cloud_init\":true,\"user\":\"dev\",\"hostname\":\"web.example\",\"hostkey\":\"tofu\","
      "\"cloud_configs\":[\"/a/b.yaml\",\"/c/d.sh\"],\"authorized_keys\":[\"/k.pub\"],"
      "\"provision\":[{\"kind\":\"shell\",\"sudo\":true,\"run\":\"echo 'a b' \\n $X\"},"
      "{\"kind\":\"script\",\"sudo\":false,\"source\":\"/s.sh\"},"
      "{\"kind\":\"file\",\"sudo\":false,\"source\":\"/src dir\",\"destination\":\"/opt/x\"}]}";
  vm_spec *s = NULL;
  qvm_error *err = NULL;
  if (spec_parse(&s, access, &err) < 0) fail_msg("%s", qvm_error_message(err));
  assert_true(s->cloud_init);
  assert_string_equal(s->user, "dev");
  assert_string_equal(s->hostname, "web.example");
  assert_true(s->hostkey_tofu);
  assert_int_equal(s->n_cloud_configs, 2);
  assert_string_equal(s->cloud_configs[1], "/c/d.sh");
  assert_int_equal(s->n_authorized_keys, 1);
  assert_int_equal(s->n_steps, 3);
  assert_int_equal(s->steps[0].kind, VM_STEP_SHELL);
  assert_true(s->steps[0].sudo);
  assert_string_equal(s->steps[0].text, "echo 'a b' \n $X");
  assert_string_equal(s->steps[2].destination, "/opt/x");
  /* to JSON and back gives the same JSON */
  struct json_object *j1 = vm_spec_to_json(s);
  vm_spec *s2 = NULL;
  assert_int_equal(vm_spec_from_json(&s2, j1, NULL), 0);
  struct json_object *j2 = vm_spec_to_json(s2);
  assert_string_equal(json_object_to_json_string(j1), json_object_to_json_string(j2));
  json_object_put(j1);
  json_object_put(j2);
  vm_spec_free(s);
  vm_spec_free(s2);
}

static void test_access_defaults(void **state) {
  (void)state;
  vm_spec *s = NULL;
  /* A vm.json from before guest access: no pin was ever made, so TOFU. */
  assert_int_equal(spec_parse(&s, NULL, NULL), 0);
  assert_false(s->cloud_init);
  assert_null(s->user);
  assert_true(s->hostkey_tofu);
  assert_int_equal(s->n_steps, 0);
  vm_spec_free(s);
  /* Every hostname create accepts reads back: a long FQDN once made the
   * VM impossible to open (the reader capped it at 63). */
  char access[400], fqdn[256];
  snprintf(fqdn, sizeof fqdn, "%s.%s.%s.example",
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
           "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
           "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
  assert_true(vm_hostname_valid(fqdn));
  snprintf(access, sizeof access, "{\"cloud_init\":true,\"hostname\":\"%s\"}", fqdn);
  qvm_error *err = NULL;
  if (spec_parse(&s, access, &err) < 0) fail_msg("%s", qvm_error_message(err));
  assert_string_equal(s->hostname, fqdn);
  vm_spec_free(s);
  /* qvm's seed without an explicit policy: pinned. */
  assert_int_equal(spec_parse(&s, "{\"cloud_init\":true,\"user\":\"qvm\"}", NULL), 0);
  assert_false(s->hostkey_tofu);
  vm_spec_free(s);
}

static void test_access_rejects(void **state) {
  (void)state;
  static const struct {
    const char *access, *needle;
  } bad[] = {
      {"[]", "'access' is not an object"},
      {"{\"user\":\"Root\"}", "not a valid user name"},
      {"{\"user\":\"a;rm -rf /\"}", "user"},
      {"{\"user\":5}", "not a string"},
      {"{\"hostname\":\"a b\"}", "hostname"},
      {"{\"hostkey\":\"off\"}", "use pinned or tofu"},
      {"{\"cloud_configs\":[\"relative.yaml\"]}", "absolute path"},
      {"{\"cloud_configs\":\"x\"}", "not an array"},
      {"{\"authorized_keys\":[5]}", "absolute path"},
      {"{\"provision\":{}}", "not an array"},
      {"{\"provision\":[5]}", "not an object"},
      {"{\"provision\":[{}]}", "no kind"},
      {"{\"provision\":[{\"kind\":\"exec\",\"run\":\"x\"}]}", "unknown"},
      {"{\"provision\":[{\"kind\":\"shell\"}]}", "incomplete"},
      {"{\"provision\":[{\"kind\":\"shell\",\"run\":\"\"}]}", "empty"},
      {"{\"provision\":[{\"kind\":\"script\",\"source\":\"x.sh\"}]}", "not absolute"},
      {"{\"provision\":[{\"kind\":\"file\",\"source\":\"/x\"}]}", "incomplete"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    vm_spec *s = NULL;
    qvm_error *err = NULL;
    assert_int_equal(spec_parse(&s, bad[i].access, &err), QVM_EINVAL);
    if (!strstr(qvm_error_message(err), bad[i].needle))
      fail_msg("%s: message '%s' lacks '%s'", bad[i].access, qvm_error_message(err), bad[i].needle);
    assert_null(s);
    qvm_error_free(err);
  }
}

/* --- create-time checks and files -------------------------------------------------- */

typedef struct tmp {
  char *dir;
} tmp;

static char *write_tmp(const char *dir, const char *name, const char *content, mode_t mode) {
  char *path = NULL;
  if (asprintf(&path, "%s/%s", dir, name) < 0) abort();
  assert_int_equal(qvm_write_file_atomic(path, content, strlen(content), mode, NULL), 0);
  return path;
}

static vm_spec *new_spec(void) {
  vm_spec *s = calloc(1, sizeof *s);
  s->name = strdup("web");
  strcpy(s->uuid, "0f8b6c1e-5f3c-4a4e-9a43-1c2d3e4f5a6b");
  strcpy(s->mac, "52:54:00:12:34:56");
  s->net = VM_NET_USER;
  return s;
}

static int access_spec(vm_spec **out, const qvm_vm_create_options *o, qvm_error **err) {
  *out = new_spec();
  return vm_access_spec(*out, o, err);
}

static void expect_fail(const qvm_vm_create_options *o, int code, const char *needle) {
  vm_spec *s = NULL;
  qvm_error *err = NULL;
  assert_int_equal(access_spec(&s, o, &err), code);
  if (!strstr(qvm_error_message(err), needle))
    fail_msg("message '%s' lacks '%s'", qvm_error_message(err), needle);
  qvm_error_free(err);
  vm_spec_free(s);
}

static void test_create_checks(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("access-unit");
  char *good_yaml = write_tmp(dir, "ok.yaml", "#cloud-config\nruncmd:\n  - [touch, /x]\n", 0644);
  char *bad_yaml = write_tmp(dir, "bad.yaml", "#cloud-config\nruncmd: [\n", 0644);
  char *list_yaml = write_tmp(dir, "list.yaml", "- a\n- b\n", 0644);
  char *script = write_tmp(dir, "s.sh", "#!/bin/sh\necho hi\n", 0755);
  char *unreadable = write_tmp(dir, "u.sh", "#!/bin/sh\n", 0000);
  char *priv = write_tmp(dir, "id", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n", 0600);
  qvm_ssh_key *k = NULL;
  assert_int_equal(qvm_ssh_key_generate(&k, "me@host", NULL), 0);
  char *pub = write_tmp(dir, "me.pub", qvm_ssh_key_public_line(k), 0644);
  qvm_ssh_key_free(k);
  char *missing = NULL;
  if (asprintf(&missing, "%s/nope.sh", dir) < 0) abort();

  qvm_vm_create_options o = QVM_VM_CREATE_OPTIONS_INIT;
  const char *cc[] = {good_yaml, script};
  const char *keys[] = {pub};
  const qvm_vm_step steps[] = {{.kind = QVM_VM_STEP_SHELL, .text = "echo hi"},
                               {.kind = QVM_VM_STEP_SCRIPT, .sudo = true, .text = script},
                               {.kind = QVM_VM_STEP_FILE, .text = dir, .destination = "/opt/"}};
  o.cloud_configs = cc, o.n_cloud_configs = 2;
  o.authorized_keys = keys, o.n_authorized_keys = 1;
  o.provision = steps, o.n_provision = 3;
  vm_spec *s = NULL;
  qvm_error *err = NULL;
  if (access_spec(&s, &o, &err) < 0) fail_msg("%s", qvm_error_message(err));
  assert_true(s->cloud_init);
  assert_string_equal(s->user, "qvm");
  assert_string_equal(s->hostname, "web");
  assert_string_equal(s->seed_iso, "seed.iso");
  assert_false(s->hostkey_tofu);
  assert_int_equal(s->n_steps, 3);
  assert_string_equal(s->steps[1].text, script); /* absolute already: realpath */
  assert_true(s->steps[1].sudo);
  assert_string_equal(s->steps[2].destination, "/opt/");

  /* keys + seed into a directory */
  assert_int_equal(vm_access_populate(dir, s, false, NULL), 0);
  struct stat st;
  char path[700];
  snprintf(path, sizeof path, "%s/id_ed25519", dir);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  snprintf(path, sizeof path, "%s/seed.iso", dir);
  assert_int_equal(stat(path, &st), 0);
  assert_true(st.st_size > 0);
  snprintf(path, sizeof path, "%s/known_hosts", dir);
  char *kh = NULL;
  assert_int_equal(qvm_read_file(&kh, NULL, path, 4096, NULL), 0);
  assert_int_equal(strncmp(kh, "web ssh-ed25519 AAAA", 20), 0);
  free(kh);
  vm_spec_free(s);

  /* Three parts (two cloud-configs): qvm writes the multipart itself. */
  const char *three[] = {good_yaml, script, good_yaml};
  o.cloud_configs = three, o.n_cloud_configs = 3;
  assert_int_equal(access_spec(&s, &o, NULL), 0);
  assert_int_equal(vm_access_populate(dir, s, false, NULL), 0);
  vm_spec_free(s);
  o.cloud_configs = cc, o.n_cloud_configs = 2;

  /* a VM name ending in '-' gives a valid hostname; a dotted one an fqdn */
  {
    vm_spec *t = new_spec();
    free(t->name);
    t->name = strdup("web--");
    assert_int_equal(vm_access_spec(t, &o, NULL), 0);
    assert_string_equal(t->hostname, "web");
    assert_int_equal(vm_access_populate(dir, t, false, NULL), 0);
    vm_spec_free(t);
    qvm_vm_create_options h = o;
    h.hostname = "web.example.org";
    assert_int_equal(access_spec(&t, &h, NULL), 0);
    assert_int_equal(vm_access_populate(dir, t, false, NULL), 0);
    vm_spec_free(t);
  }

  /* root: no sudo line, disable_root off */
  o.user = "root";
  assert_int_equal(access_spec(&s, &o, NULL), 0);
  assert_string_equal(s->user, "root");
  vm_spec_free(s);
  o.user = NULL;

  qvm_vm_create_options b = o;
  const char *one[1];
  b.cloud_configs = one, b.n_cloud_configs = 1;
  one[0] = bad_yaml;
  expect_fail(&b, QVM_EINVAL, bad_yaml);
  one[0] = list_yaml;
  expect_fail(&b, QVM_EINVAL, "mapping");
  one[0] = missing;
  expect_fail(&b, QVM_ENOTFOUND, "nope.sh");
  b = o;
  b.authorized_keys = one, b.n_authorized_keys = 1;
  one[0] = priv;
  expect_fail(&b, QVM_EINVAL, "not an ssh public key");
  b = o;
  qvm_vm_step step = {.kind = QVM_VM_STEP_SCRIPT, .text = missing};
  b.provision = &step, b.n_provision = 1;
  expect_fail(&b, QVM_ENOTFOUND, "provision step 1");
  if (geteuid() != 0) { /* root reads anything */
    step.text = unreadable;
    expect_fail(&b, QVM_EPERM, "not readable");
  }
  char missing_dir[700];
  snprintf(missing_dir, sizeof missing_dir, "%s/missing", dir);
  step = (qvm_vm_step){.kind = QVM_VM_STEP_FILE, .text = missing_dir, .destination = "/x"};
  expect_fail(&b, QVM_ENOTFOUND, "not found");
  /* Typed steps are checked as the parser checks the syntax. */
  step = (qvm_vm_step){.kind = QVM_VM_STEP_SHELL, .text = ""};
  expect_fail(&b, QVM_EINVAL, "shell:CMD");
  step = (qvm_vm_step){.kind = QVM_VM_STEP_FILE, .text = dir};
  expect_fail(&b, QVM_EINVAL, "needs a destination");
  step = (qvm_vm_step){.kind = QVM_VM_STEP_SHELL, .text = "ls", .destination = "/x"};
  expect_fail(&b, QVM_EINVAL, "belongs only to a file step");
  step = (qvm_vm_step){.kind = (qvm_vm_step_kind)7, .text = "ls"};
  expect_fail(&b, QVM_EINVAL, "step kind 7 is unknown");
  b = o;
  b.no_cloud_init = true;
  expect_fail(&b, QVM_EINVAL, "qvm builds none without cloud-init");
  b = o;
  b.seed_iso = "/x.iso";
  expect_fail(&b, QVM_EINVAL, "qvm builds none when a seed image is given");
  b = (qvm_vm_create_options)QVM_VM_CREATE_OPTIONS_INIT;
  b.user = "Bad User";
  expect_fail(&b, QVM_EINVAL, "user 'Bad User' is invalid");
  b.user = NULL;
  b.hostname = "a_b";
  expect_fail(&b, QVM_EINVAL, "hostname 'a_b' is invalid");
  b.hostname = NULL;
  b.hostkey = "off";
  expect_fail(&b, QVM_EINVAL, "pinned or tofu");

  /* --no-cloud-init: no seed, TOFU, user root unless given */
  b = (qvm_vm_create_options)QVM_VM_CREATE_OPTIONS_INIT;
  b.no_cloud_init = true;
  assert_int_equal(access_spec(&s, &b, NULL), 0);
  assert_false(s->cloud_init);
  assert_true(s->hostkey_tofu);
  assert_null(s->user);
  assert_null(s->seed_iso);
  vm_spec_free(s);

  free(good_yaml), free(bad_yaml), free(list_yaml), free(script), free(unreadable);
  free(priv), free(pub), free(missing);
  qvm_test_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_step_parse),        cmocka_unit_test(test_names),
      cmocka_unit_test(test_access_round_trip), cmocka_unit_test(test_access_defaults),
      cmocka_unit_test(test_access_rejects),    cmocka_unit_test(test_create_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
