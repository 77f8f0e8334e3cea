/* SPDX-License-Identifier: MIT */
/* The VM record (vm/record.h): the codec's round trip, the migration of a
 * schema-1 vm.json written by qvm before the record, hostile members, and
 * the typed updates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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
#include "util/time.h"
#include "vm/record.h"
#include "vm/syntax.h"
#include <qvm/sandbox.h>

static char *fixture_text(const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/vm/data/%s", qvm_test_source_dir(), name);
  char *text = NULL;
  assert_int_equal(qvm_read_file(&text, NULL, path, 1 << 20, NULL), 0);
  return text;
}

static vm_record *parse_ok(const char *text) {
  vm_record *rec = NULL;
  qvm_error *err = NULL;
  int r = vm_record_parse(&rec, text, strlen(text), "vm.json", &err);
  if (r < 0) fail_msg("parse failed: %s", qvm_error_message(err));
  return rec;
}

static struct json_object *json_parse(const char *text) {
  struct json_object *o = json_tokener_parse(text);
  assert_non_null(o);
  return o;
}

/* The schema-1 file, from today's qvm, is read with every member kept. */
static void test_schema1_fields(void **state) {
  (void)state;
  char *text = fixture_text("vm-schema1.json");
  vm_record *rec = parse_ok(text);
  assert_int_equal(rec->schema_read, 1);
  assert_string_equal(rec->created_at, "2026-11-29T11:43:47.693939Z");
  assert_string_equal(rec->spec->name, "bench2");
  assert_int_equal(rec->spec->memory_mib, 1024);
  assert_true(rec->has_runtime);
  const vm_runtime *rt = &rec->runtime;
  assert_int_equal(rt->status, VM_RUN_RUNNING);
  assert_true(rt->has_shim && rt->has_qemu);
  assert_int_equal(rt->shim.pid, 6420);
  assert_int_equal(rt->qemu.pid, 6421);
  assert_int_equal(rt->qemu.start_time, 1148956);
  assert_string_equal(rt->qemu.boot_id, "0fe9ac87-9675-4b50-8edf-7d94b81ff35c");
  assert_false(rt->adopted);
  assert_true(rt->has_accelerator);
  assert_int_equal(rt->accelerator, VM_ACCEL_TCG);
  assert_non_null(strstr(rt->accel_warning, "KVM is not usable"));
  assert_int_equal(rt->ssh_port, 51155);
  assert_int_equal(rt->started_at_us, 1795952627698513);
  assert_int_equal(rt->timings.shim_start_us, 1795952627697915);
  assert_int_equal(rt->timings.qmp_ready_us, 1795952627742670);
  assert_true(rec->has_last_exit);
  const vm_exit *x = &rec->last_exit;
  assert_string_equal(x->reason, "error");
  assert_false(x->clean);
  assert_true(x->has_exit_code);
  assert_int_equal(x->exit_code, 1);
  assert_int_equal(x->signal, 0);
  assert_string_equal(x->shutdown_reason, "guest-shutdown");
  assert_int_equal(x->at_us, 1795952401000001);
  assert_true(rec->has_up);
  const vm_up *u = &rec->up;
  assert_int_equal(u->memory, 1073741824);
  assert_true(u->has_memory && u->has_disk);
  assert_int_equal(u->disk, 3221225472);
  assert_null(u->kernel);
  assert_string_equal(u->net, "user");
  assert_int_equal(u->ports.n, 1);
  assert_string_equal(u->ports.v[0], "8080:80");
  assert_int_equal(u->cloud_config.n, 1);
  assert_true(u->cloud_init && u->ready && u->provisioned);
  vm_record_free(rec);
  free(text);
}

/* Reading schema 1 and writing it back stores schema 2 with every member
 * of the old file, unchanged. */
static void test_schema1_migrates(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("vm-record");
  char *text = fixture_text("vm-schema1.json");
  char path[4096];
  snprintf(path, sizeof path, "%s/vm.json", dir);
  vm_record *rec = parse_ok(text);
  assert_int_equal(vm_record_write(path, rec, NULL), 0);
  vm_record_free(rec);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  char *written = NULL;
  assert_int_equal(qvm_read_file(&written, NULL, path, 1 << 20, NULL), 0);
  struct json_object *old = json_parse(text), *now = json_parse(written), *v = NULL;
  assert_true(json_object_object_get_ex(now, "schema", &v));
  assert_int_equal(json_object_get_int(v), 2);
  assert_false(json_object_object_get_ex(now, "version", NULL));
  json_object_object_del(now, "schema");
  json_object_object_del(old, "version");
  if (!json_object_equal(old, now)) fail_msg("migrated vm.json differs:\n%s", written);
  /* And schema 2 reads back as schema 2. */
  rec = NULL;
  assert_int_equal(vm_record_read(&rec, path, NULL), 0);
  assert_int_equal(rec->schema_read, 2);
  vm_record_free(rec);
  json_object_put(old);
  json_object_put(now);
  free(written);
  free(text);
  qvm_test_rmtree(dir);
  free(dir);
}

/* to_json(from_json(to_json(r))) == to_json(r) for a record with every
 * optional member set (and the schema-2 corpus seed parses). */
static void test_round_trip(void **state) {
  (void)state;
  char *text = fixture_text("vm-schema1.json");
  vm_record *rec = parse_ok(text);
  rec->up.allow_backing = true;
  rec->last_exit.signal = 9;
  rec->last_exit.has_exit_code = false;
  struct json_object *a = vm_record_to_json(rec);
  const char *s = json_object_to_json_string(a);
  vm_record *back = parse_ok(s);
  assert_int_equal(back->schema_read, 2);
  assert_int_equal(back->last_exit.signal, 9);
  assert_false(back->last_exit.has_exit_code);
  assert_true(back->up.allow_backing);
  struct json_object *b = vm_record_to_json(back);
  assert_true(json_object_equal(a, b));
  json_object_put(a);
  json_object_put(b);
  vm_record_free(back);
  vm_record_free(rec);
  free(text);
  char *seed = fixture_text("../corpus/vm_json/schema2.json");
  rec = parse_ok(seed);
  assert_int_equal(rec->schema_read, 2);
  vm_record_free(rec);
  free(seed);
}

/* A record whose up has no cpus (a hand edit) reads, and what any update
 * writes back reads again: 0 went out as "cpus":0, which the reader refuses.
 * A size past INT64_MAX is written as unset, not as a negative number. */
static void test_up_without_cpus(void **state) {
  (void)state;
  char *text = fixture_text("vm-schema1.json");
  struct json_object *doc = json_parse(text), *up = NULL;
  assert_true(json_object_object_get_ex(doc, "up", &up));
  json_object_object_del(up, "cpus");
  vm_record *rec = NULL;
  qvm_error *err = NULL;
  assert_int_equal(vm_record_from_json(&rec, doc, &err), 0);
  json_object_put(doc);
  assert_int_equal(rec->up.cpus, 0);
  rec->up.memory = (uint64_t)INT64_MAX + 1;
  struct json_object *a = vm_record_to_json(rec);
  vm_record *back = NULL;
  int r = vm_record_from_json(&back, a, &err);
  if (r < 0) fail_msg("the record written back does not read: %s", qvm_error_message(err));
  assert_int_equal(back->up.cpus, 0);
  assert_false(back->up.has_memory);
  struct json_object *b = vm_record_to_json(back);
  assert_true(json_object_equal(a, b));
  json_object_put(a);
  json_object_put(b);
  vm_record_free(back);
  vm_record_free(rec);
  free(text);
}

/* Each of these edits of a valid file is refused with QVM_EINVAL, and the
 * message names the member. */
static void test_hostile_members(void **state) {
  (void)state;
  static const struct {
    const char *path; /* "runtime.ssh_port" */
    const char *value;
    const char *needle;
  } cases[] = {
      {"schema", "\"2\"", "schema"},
      {"schema", "0", "schema 0"},
      {"version", "7", "version"},
      {"created_at", "\"\\u001b[2J\"", "created_at"},
      {"spec", "[]", "spec"},
      {"runtime", "\"x\"", "runtime"},
      {"runtime.status", "\"paused\"", "paused"},
      {"runtime.ssh_port", "70000", "ssh_port"},
      {"runtime.ssh_port", "\"22\"", "ssh_port"},
      {"runtime.qemu", "{\"pid\":-1,\"start_time\":1,\"boot_id\":\"x\"}", "qemu"},
      {"runtime.accelerator", "\"hvf\"", "hvf"},
      {"runtime.adopted", "1", "adopted"},
      {"runtime.timings", "{\"shim_start_us\":-5}", "shim_start_us"},
      {"runtime.started_at_us", "1.5", "started_at_us"},
      {"last_exit.reason", "\"boom\"", "boom"},
      {"last_exit.exit_code", "300", "exit_code"},
      {"last_exit.signal", "0", "signal"},
      {"last_exit.run_status", "null", "run_status"},
      {"last_exit.at", "null", "at"},
      {"last_exit.detail", "\"\"", "detail"},
      {"up.memory", "\"1G\"", "memory"},
      {"up.ports", "\"8080:80\"", "ports"},
      {"up.ports", "[1]", "ports"},
      {"up.cpus", "0", "cpus"},
      {"up.ready", "\"yes\"", "ready"},
      {"up.net", "\"a\\u0000b\"", "net"},
  };
  char *text = fixture_text("vm-schema1.json");
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct json_object *doc = json_parse(text), *parent = doc;
    char key[64];
    snprintf(key, sizeof key, "%s", cases[i].path);
    char *dot = strchr(key, '.');
    if (dot) {
      *dot = '\0';
      assert_true(json_object_object_get_ex(doc, key, &parent));
      memmove(key, dot + 1, strlen(dot + 1) + 1);
    }
    bool null = !strcmp(cases[i].value, "null");
    json_object_object_add(parent, key, null ? NULL : json_parse(cases[i].value));
    vm_record *rec = NULL;
    qvm_error *err = NULL;
    int r = vm_record_from_json(&rec, doc, &err);
    if (r != QVM_EINVAL)
      fail_msg("%s = %s: got %d, not QVM_EINVAL", cases[i].path, cases[i].value, r);
    if (!strstr(qvm_error_message(err), cases[i].needle))
      fail_msg("%s = %s: '%s' does not name '%s'", cases[i].path, cases[i].value,
               qvm_error_message(err), cases[i].needle);
    assert_null(rec);
    qvm_error_free(err);
    json_object_put(doc);
  }
  free(text);
}

static void test_newer_schema(void **state) {
  (void)state;
  const char *text = "{\"schema\": 3, \"spec\": {}}";
  vm_record *rec = NULL;
  qvm_error *err = NULL;
  assert_int_equal(vm_record_parse(&rec, text, strlen(text), "vm.json", &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "schema 3"));
  assert_non_null(strstr(qvm_error_message(err), "newer than qvm"));
  assert_null(rec);
  qvm_error_free(err);
}

/* The typed updates: each keeps what it does not change. */
static void test_updates(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("vm-record");
  setenv("QVM_STATE_DIR", dir, 1);
  setenv("QVM_RUNTIME_DIR", dir, 1);
  vm_paths p = {0};
  assert_int_equal(vm_paths_init(&p, "bench2", NULL), 0);
  assert_int_equal(qvm_mkdir_p(p.dir, 0700, NULL), 0);
  char *text = fixture_text("vm-schema1.json");
  vm_record *rec = parse_ok(text);
  rec->has_runtime = rec->has_last_exit = rec->has_up = false;
  assert_int_equal(vm_record_write(p.json, rec, NULL), 0);

  vm_proc shim = {.pid = 77, .start_time = 5, .boot_id = "0fe9ac87-9675-4b50-8edf-7d94b81ff35c"};
  assert_int_equal(vm_record_set_status(&p, VM_RUN_STARTING, &shim, false, NULL), 0);
  vm_runtime rt = rec->runtime;
  rt.status = VM_RUN_RUNNING;
  assert_int_equal(vm_record_set_runtime(&p, &rt, NULL), 0);
  assert_int_equal(vm_record_set_status(&p, VM_RUN_STOPPING, NULL, true, NULL), 0);
  vm_record *now = NULL;
  assert_int_equal(vm_record_read(&now, p.json, NULL), 0);
  assert_true(now->has_runtime);
  assert_int_equal(now->runtime.status, VM_RUN_STOPPING);
  assert_true(now->runtime.adopted);
  assert_int_equal(now->runtime.qemu.pid, 6421); /* kept by the status change */
  assert_int_equal(now->runtime.shim.pid, 6420);
  assert_int_equal(now->runtime.ssh_port, 51155);
  vm_record_free(now);

  vm_exit x = {.reason = "killed", .detail = "killed by qvm kill", .run_status = 137};
  snprintf(x.at, sizeof x.at, "2026-11-29T12:00:00.000000Z");
  assert_int_equal(vm_record_exit(&p, &x, NULL), 0);
  assert_int_equal(vm_record_set_up(&p, &rec->up, NULL), 0);
  assert_int_equal(vm_record_mark_up(&p, false, true, NULL), 0);
  assert_int_equal(vm_record_read(&now, p.json, NULL), 0);
  assert_false(now->has_runtime);
  assert_true(now->has_last_exit);
  assert_string_equal(now->last_exit.reason, "killed");
  assert_int_equal(now->last_exit.run_status, 137);
  assert_true(now->has_up && now->up.ready && now->up.provisioned);
  assert_int_equal(now->up.memory, 1073741824);
  vm_record_free(now);

  /* No vm.json: QVM_ENOTFOUND, nothing written. */
  unlink(p.json);
  assert_int_equal(vm_record_mark_up(&p, true, true, NULL), QVM_ENOTFOUND);
  assert_int_equal(access(p.json, F_OK), -1);
  vm_record_free(rec);
  free(text);
  vm_paths_clear(&p);
  unsetenv("QVM_STATE_DIR");
  unsetenv("QVM_RUNTIME_DIR");
  qvm_test_rmtree(dir);
  free(dir);
}

/* The up diff keeps the messages qvm up has always printed. */
static void test_up_diff(void **state) {
  (void)state;
  char *text = fixture_text("vm-schema1.json");
  vm_record *a = parse_ok(text), *b = parse_ok(text);
  char *same = vm_up_diff(&a->up, &b->up);
  assert_string_equal(same, "");
  free(same);
  b->up.memory = 2u << 30;
  free(b->up.net);
  b->up.net = strdup("none");
  b->up.has_disk = false;
  char *diff = vm_up_diff(&a->up, &b->up);
  assert_string_equal(diff, "\n  memory: was 1G, now 2G\n  disk: was 3G, now unset"
                            "\n  net: was \"user\", now \"none\"");
  free(diff);
  /* Mounts are written only when there are some: added and removed both
   * count. */
  assert_int_equal(vm_strv_add(&b->up.mounts, "/srv/a:/a:ro", NULL), 0);
  diff = vm_up_diff(&a->up, &b->up);
  assert_non_null(strstr(diff, "\n  mounts: was unset, now [\"\\/srv\\/a:\\/a:ro\"]"));
  free(diff);
  diff = vm_up_diff(&b->up, &a->up);
  assert_non_null(strstr(diff, "\n  mounts: was [\"\\/srv\\/a:\\/a:ro\"], now unset"));
  free(diff);
  vm_record_free(a);
  vm_record_free(b);
  free(text);
}

/* The up record holds the typed options in the CLI's syntax: what users
 * typed formats back to the same text, so a schema-1 up record (which kept
 * the text as typed) still compares equal. */
static void test_up_syntax_stable(void **state) {
  (void)state;
  const char *nets[] = {"user",
                        "user,restrict",
                        "none",
                        "bridge",
                        "bridge=br1,dhcp=external",
                        "bridge=qvmbr0,subnet=10.77.0.1/24"};
  for (size_t i = 0; i < sizeof nets / sizeof *nets; i++) {
    qvm_vm_net n;
    assert_int_equal(qvm_vm_net_parse(&n, nets[i], NULL), 0);
    char *t = vm_net_format(&n);
    assert_string_equal(t, nets[i]);
    free(t);
  }
  const char *ports[] = {"8080:80", "5353:53/udp", "0.0.0.0:2222:22"};
  for (size_t i = 0; i < sizeof ports / sizeof *ports; i++) {
    qvm_vm_publish p;
    assert_int_equal(qvm_vm_publish_parse(&p, ports[i], NULL), 0);
    char *t = vm_publish_format(&p);
    assert_string_equal(t, ports[i]);
    free(t);
  }
  const char *steps[] = {"shell:echo a:b", "sudo:script:/s.sh", "file:/a:/b"};
  for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
    qvm_vm_step st;
    assert_int_equal(qvm_vm_step_parse(&st, steps[i], NULL), 0);
    char *t = vm_public_step_format(&st);
    assert_string_equal(t, steps[i]);
    free(t);
    qvm_vm_step_clear(&st);
  }
  qvm_vm_drive d;
  assert_int_equal(qvm_vm_drive_parse(&d, "/a,b.img,format=raw,readonly", NULL), 0);
  char *t = vm_drive_format(&d);
  assert_string_equal(t, "/a,b.img,format=raw,readonly");
  free(t);
  qvm_vm_drive_clear(&d);
}

/* "snapshots": a record without them (older qvm) reads with none; a round
 * trip keeps every member; hostile entries are refused, naming the member. */
static void test_snapshots(void **state) {
  (void)state;
  char *text = fixture_text("vm-schema1.json");
  vm_record *rec = parse_ok(text);
  assert_int_equal(rec->n_snapshots, 0);
  assert_string_equal(rec->snapshot_current, "");
  struct json_object *plain = vm_record_to_json(rec);
  assert_false(json_object_object_get_ex(plain, "snapshots", NULL));
  json_object_put(plain);
  vm_record_free(rec);

  struct json_object *doc = json_parse(text);
  json_object_object_add(doc, "snapshots",
                         json_parse("[{\"name\":\"a\",\"created_at\":\"2026-01-02T03:04:05Z\","
                                    "\"ram\":true,\"vm_state\":\"running\",\"vm_state_size\":"
                                    "123456,\"disk_bytes\":33554432,\"parent\":null},"
                                    "{\"name\":\"b-2\",\"ram\":false,\"parent\":\"a\"}]"));
  json_object_object_add(doc, "snapshot_current", json_object_new_string("b-2"));
  qvm_error *err = NULL;
  assert_int_equal(vm_record_from_json(&rec, doc, &err), 0);
  assert_int_equal(rec->n_snapshots, 2);
  assert_true(rec->snapshots[0].ram);
  assert_int_equal(rec->snapshots[0].vm_state_size, 123456);
  assert_int_equal(rec->snapshots[0].disk_bytes, 33554432);
  assert_string_equal(rec->snapshots[0].parent, "");
  assert_string_equal(rec->snapshots[1].parent, "a");
  assert_string_equal(rec->snapshot_current, "b-2");
  struct json_object *a = vm_record_to_json(rec);
  vm_record *back = parse_ok(json_object_to_json_string(a));
  struct json_object *b = vm_record_to_json(back);
  assert_true(json_object_equal(a, b));
  json_object_put(a);
  json_object_put(b);
  vm_record_free(back);
  vm_record_free(rec);
  json_object_put(doc);

  static const struct {
    const char *snapshots, *current, *needle;
  } bad[] = {
      {"{}", NULL, "'snapshots' is not an array"},
      {"[1]", NULL, "not an object"},
      {"[{}]", NULL, "'name' is missing"},
      {"[{\"name\":\"../x\"}]", NULL, "'name' is not a valid snapshot name"},
      {"[{\"name\":\"a\"},{\"name\":\"a\"}]", NULL, "there twice"},
      {"[{\"name\":\"a\",\"ram\":1}]", NULL, "'ram'"},
      {"[{\"name\":\"a\",\"vm_state\":\"\\u001b[2J\"}]", NULL, "'vm_state'"},
      {"[{\"name\":\"a\",\"vm_state_size\":-1}]", NULL, "'vm_state_size'"},
      {"[{\"name\":\"a\",\"parent\":\"A B\"}]", NULL, "'parent'"},
      {"[]", "\"x/y\"", "'snapshot_current'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    doc = json_parse(text);
    json_object_object_add(doc, "snapshots", json_parse(bad[i].snapshots));
    if (bad[i].current) json_object_object_add(doc, "snapshot_current", json_parse(bad[i].current));
    rec = NULL;
    err = NULL;
    assert_int_equal(vm_record_from_json(&rec, doc, &err), QVM_EINVAL);
    if (!strstr(qvm_error_message(err), bad[i].needle))
      fail_msg("%s: '%s' does not name '%s'", bad[i].snapshots, qvm_error_message(err),
               bad[i].needle);
    assert_null(rec);
    qvm_error_free(err);
    json_object_put(doc);
  }
  /* More than VM_SNAPSHOT_MAX entries. */
  struct json_object *many = json_object_new_array();
  for (int i = 0; i <= VM_SNAPSHOT_MAX; i++) {
    char name[16];
    snprintf(name, sizeof name, "s%d", i);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_array_add(many, o);
  }
  doc = json_parse(text);
  json_object_object_add(doc, "snapshots", many);
  err = NULL;
  assert_int_equal(vm_record_from_json(&rec, doc, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "more than"));
  qvm_error_free(err);
  json_object_put(doc);
  free(text);
}

/* --- labels, agent, sandbox deadline (vm/labels.c, vm/ttl.c) -------------- */

/* A vm.json from before tags has none, and none are written back. */
static void test_tags_absent(void **state) {
  (void)state;
  char *text = fixture_text("vm-schema1.json");
  vm_record *rec = parse_ok(text);
  assert_int_equal(rec->spec->n_labels, 0);
  assert_null(rec->spec->agent);
  assert_false(rec->spec->sandbox);
  assert_int_equal(rec->spec->expires_at_us, 0);
  struct json_object *a = vm_record_to_json(rec), *spec = NULL;
  assert_true(json_object_object_get_ex(a, "spec", &spec));
  assert_false(json_object_object_get_ex(spec, "labels", NULL));
  assert_false(json_object_object_get_ex(spec, "agent", NULL));
  assert_false(json_object_object_get_ex(spec, "sandbox", NULL));
  json_object_put(a);
  vm_record_free(rec);
  free(text);
}

/* The corpus file with every tag: read, written back member for member
 * (labels sorted by key, the deadline to the microsecond). */
static void test_tags_golden(void **state) {
  (void)state;
  char *text = fixture_text("../corpus/vm_json/sandbox.json");
  vm_record *rec = parse_ok(text);
  const vm_spec *s = rec->spec;
  assert_int_equal(s->n_labels, 3);
  assert_string_equal(s->labels[0].key, "empty");
  assert_string_equal(s->labels[0].value, "");
  assert_string_equal(s->labels[1].key, "job");
  assert_string_equal(s->labels[2].key, "team/infra");
  assert_string_equal(s->labels[2].value, "a.b-c");
  assert_string_equal(s->agent, "claude@ci:run-7");
  assert_true(s->sandbox);
  assert_int_equal(s->expires_at_us, 1795978200123456LL);
  struct json_object *in = json_parse(text), *out = vm_record_to_json(rec);
  struct json_object *in_spec = NULL, *out_spec = NULL, *x = NULL, *y = NULL;
  assert_true(json_object_object_get_ex(in, "spec", &in_spec));
  assert_true(json_object_object_get_ex(out, "spec", &out_spec));
  static const char *const members[] = {"labels", "agent", "sandbox"};
  for (size_t i = 0; i < 3; i++) {
    assert_true(json_object_object_get_ex(in_spec, members[i], &x));
    assert_true(json_object_object_get_ex(out_spec, members[i], &y));
    if (!json_object_equal(x, y))
      fail_msg("%s: wrote %s, read %s", members[i], json_object_to_json_string(y),
               json_object_to_json_string(x));
  }
  const char *written = json_object_to_json_string_ext(out_spec, JSON_C_TO_STRING_PLAIN);
  assert_non_null(strstr(written, "\"labels\":{\"empty\":\"\",\"job\":\"build-42\","
                                  "\"team\\/infra\":\"a.b-c\"}"));
  assert_non_null(strstr(written, "\"sandbox\":{\"expires_at\":\"2026-11-29T18:50:00.123456Z\"}"));
  vm_record *back = parse_ok(json_object_to_json_string(out));
  assert_int_equal(back->spec->expires_at_us, s->expires_at_us);
  struct json_object *again = vm_record_to_json(back);
  assert_true(json_object_equal(out, again));
  json_object_put(again);
  vm_record_free(back);
  json_object_put(in);
  json_object_put(out);
  vm_record_free(rec);
  free(text);
}

/* sandbox.checkpoint_each: read, written back only when true (a sandbox
 * without it is written as before), in the info JSON; only for a sandbox. */
static void test_tags_checkpoint_each(void **state) {
  (void)state;
  char *text = fixture_text("../corpus/vm_json/sandbox.json");
  vm_record *rec = parse_ok(text);
  assert_false(rec->spec->checkpoint_each);
  struct json_object *info = json_object_new_object(), *v = NULL;
  vm_tags_info(info, rec->spec, 0);
  assert_true(json_object_object_get_ex(info, "checkpoint_each", &v));
  assert_false(json_object_get_boolean(v));
  json_object_put(info);
  vm_record_free(rec);
  struct json_object *doc = json_parse(text), *spec = NULL, *sb = NULL;
  assert_true(json_object_object_get_ex(doc, "spec", &spec));
  assert_true(json_object_object_get_ex(spec, "sandbox", &sb));
  json_object_object_add(sb, "checkpoint_each", json_object_new_boolean(true));
  rec = parse_ok(json_object_to_json_string(doc));
  assert_true(rec->spec->checkpoint_each);
  struct json_object *out = vm_record_to_json(rec), *out_spec = NULL;
  assert_true(json_object_object_get_ex(out, "spec", &out_spec));
  assert_non_null(strstr(json_object_to_json_string_ext(out_spec, JSON_C_TO_STRING_PLAIN),
                         "\"sandbox\":{\"expires_at\":\"2026-11-29T18:50:00.123456Z\","
                         "\"checkpoint_each\":true}"));
  vm_record *back = parse_ok(json_object_to_json_string(out));
  assert_true(back->spec->checkpoint_each);
  info = json_object_new_object();
  vm_tags_info(info, back->spec, 0);
  assert_true(json_object_object_get_ex(info, "checkpoint_each", &v));
  assert_true(json_object_get_boolean(v));
  json_object_put(info);
  vm_record_free(back);
  json_object_put(out);
  vm_record_free(rec);
  /* false is the same as absent */
  json_object_object_add(sb, "checkpoint_each", json_object_new_boolean(false));
  rec = parse_ok(json_object_to_json_string(doc));
  assert_false(rec->spec->checkpoint_each);
  vm_record_free(rec);
  json_object_put(doc);
  free(text);
  /* create options: only a sandbox takes it */
  vm_spec s = {0};
  qvm_vm_tags t = {.checkpoint_each = true};
  qvm_error *err = NULL;
  assert_int_equal(vm_spec_set_tags(&s, &t, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "only for a sandbox"));
  qvm_error_free(err);
  t = (qvm_vm_tags){.sandbox = true, .expires_at_us = 5, .checkpoint_each = true};
  assert_int_equal(vm_spec_set_tags(&s, &t, NULL), 0);
  assert_true(s.checkpoint_each);
  vm_spec_tags_clear(&s);
  assert_false(s.checkpoint_each);
  /* the user-command entry refuses what it cannot do before touching anything */
  qvm_ssh_exec_options eo = QVM_SSH_EXEC_OPTIONS_INIT;
  char ckpt[QVM_VM_CHECKPOINT_NAME_MAX] = "x";
  assert_int_equal(qvm_vm_exec_command(NULL, ckpt, NULL, NULL, &eo, 0x2, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "flags"));
  assert_string_equal(ckpt, "");
  qvm_error_free(err);
  assert_int_equal(qvm_vm_exec_command(NULL, NULL, NULL, NULL, &eo, 0, NULL), QVM_EINVAL);
}

/* spec.MEMBER = value is refused, naming needle. */
static void test_tags_hostile(void **state) {
  (void)state;
  static const struct {
    const char *member, *value, *needle;
  } cases[] = {
      {"labels", "[]", "labels"},
      {"labels", "{\"Role\":\"x\"}", "Role"},
      {"labels", "{\"\":\"x\"}", "label key"},
      {"labels", "{\"a\":1}", "label value"},
      {"labels", "{\"a\":\"x\\ny\"}", "printable"},
      {"labels", "{\"a\":\"\\u001b[2J\"}", "printable"},
      {"labels", "{\"a\":\"caf\\u00e9\"}", "printable"},
      {"agent", "\"a b\"", "agent id"},
      {"agent", "\"\"", "agent id"},
      {"agent", "7", "agent"},
      {"sandbox", "true", "sandbox"},
      {"sandbox", "{}", "expires_at"},
      {"sandbox", "{\"expires_at\":5}", "expires_at"},
      {"sandbox", "{\"expires_at\":\"2021-02-30T00:00:00Z\"}", "2021-02-30"},
      {"sandbox", "{\"expires_at\":\"2021-01-01 00:00:00Z\"}", "RFC 3339"},
      {"sandbox", "{\"expires_at\":\"2021-01-01T00:00:00+01:00\"}", "RFC 3339"},
      {"sandbox", "{\"expires_at\":\"2021-01-01T00:00:00.1234567Z\"}", "RFC 3339"},
      {"sandbox", "{\"expires_at\":\"1969-12-31T23:59:59Z\"}", "RFC 3339"},
      {"sandbox", "{\"expires_at\":\"2026-01-01T00:00:00Z\",\"checkpoint_each\":1}",
       "checkpoint_each"},
      {"sandbox", "{\"expires_at\":\"2026-01-01T00:00:00Z\",\"checkpoint_each\":\"true\"}",
       "checkpoint_each"},
  };
  char *text = fixture_text("vm-schema1.json");
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct json_object *doc = json_parse(text), *spec = NULL;
    assert_true(json_object_object_get_ex(doc, "spec", &spec));
    json_object_object_add(spec, cases[i].member, json_parse(cases[i].value));
    vm_record *rec = NULL;
    qvm_error *err = NULL;
    int r = vm_record_from_json(&rec, doc, &err);
    if (r != QVM_EINVAL)
      fail_msg("spec.%s = %s: got %d, not QVM_EINVAL", cases[i].member, cases[i].value, r);
    if (!strstr(qvm_error_message(err), cases[i].needle))
      fail_msg("spec.%s = %s: '%s' does not name '%s'", cases[i].member, cases[i].value,
               qvm_error_message(err), cases[i].needle);
    assert_null(rec);
    qvm_error_free(err);
    json_object_put(doc);
  }
  /* 65 labels */
  struct json_object *doc = json_parse(text), *spec = NULL, *labels = json_object_new_object();
  assert_true(json_object_object_get_ex(doc, "spec", &spec));
  for (int i = 0; i < 65; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    json_object_object_add(labels, k, json_object_new_string("v"));
  }
  json_object_object_add(spec, "labels", labels);
  vm_record *rec = NULL;
  qvm_error *err = NULL;
  assert_int_equal(vm_record_from_json(&rec, doc, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "more than 64"));
  qvm_error_free(err);
  json_object_put(doc);
  free(text);
}

static void test_label_rules(void **state) {
  (void)state;
  char key63[64], key64[65], val255[256], val256[257];
  memset(key63, 'a', 63), key63[63] = 0;
  memset(key64, 'a', 64), key64[64] = 0;
  memset(val255, 'v', 255), val255[255] = 0;
  memset(val256, 'v', 256), val256[256] = 0;
  assert_int_equal(qvm_vm_label_check(key63, val255, NULL), 0);
  assert_int_equal(qvm_vm_label_check("a.b_c/d-9", "", NULL), 0);
  assert_int_equal(qvm_vm_label_check(key64, "v", NULL), QVM_EINVAL);
  assert_int_equal(qvm_vm_label_check("k", val256, NULL), QVM_EINVAL);
  assert_int_equal(qvm_vm_label_check("k", "a\x7f", NULL), QVM_EINVAL);
  assert_int_equal(qvm_vm_label_check("k:x", "v", NULL), QVM_EINVAL);
  qvm_vm_label l;
  assert_int_equal(qvm_vm_label_parse(&l, "env=a=b", NULL), 0);
  assert_string_equal(l.key, "env");
  assert_string_equal(l.value, "a=b");
  qvm_vm_label_clear(&l);
  assert_null(l.key);
  qvm_error *err = NULL;
  assert_int_equal(qvm_vm_label_parse(&l, "=v", &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "label key"));
  qvm_error_free(err);
  assert_int_equal(qvm_vm_label_parse(&l, "novalue", NULL), QVM_EINVAL);
  assert_null(l.key);
  char agent128[129], agent129[130];
  memset(agent128, 'A', 128), agent128[128] = 0;
  memset(agent129, 'A', 129), agent129[129] = 0;
  assert_int_equal(qvm_vm_agent_check(agent128, NULL), 0);
  assert_int_equal(qvm_vm_agent_check("bot.1@ci:run_7-x", NULL), 0);
  assert_int_equal(qvm_vm_agent_check(agent129, NULL), QVM_EINVAL);
  assert_int_equal(qvm_vm_agent_check("a/b", NULL), QVM_EINVAL);
  assert_int_equal(qvm_vm_agent_check(NULL, NULL), QVM_EINVAL);
  /* the create options' copy: checked, sorted, each key once */
  vm_spec s = {0};
  qvm_vm_label two[] = {{"b", "2"}, {"a", "1"}};
  qvm_vm_tags t = {.labels = two, .n_labels = 2, .agent = "x", .sandbox = true, .expires_at_us = 5};
  assert_int_equal(vm_spec_set_tags(&s, &t, NULL), 0);
  assert_string_equal(s.labels[0].key, "a");
  assert_string_equal(s.agent, "x");
  qvm_vm_label dup[] = {{"a", "1"}, {"a", "2"}};
  t.labels = dup;
  assert_int_equal(vm_spec_set_tags(&s, &t, NULL), QVM_EINVAL);
  assert_int_equal(s.n_labels, 0);
  t = (qvm_vm_tags){.expires_at_us = 5};
  assert_int_equal(vm_spec_set_tags(&s, &t, NULL), QVM_EINVAL); /* a deadline, no sandbox */
  t = (qvm_vm_tags){.sandbox = true};
  assert_int_equal(vm_spec_set_tags(&s, &t, NULL), QVM_EINVAL); /* a sandbox, no deadline */
  t = (qvm_vm_tags){.labels = two, .n_labels = QVM_VM_LABELS_MAX + 1};
  assert_int_equal(vm_spec_set_tags(&s, &t, NULL), QVM_EINVAL);
  t = (qvm_vm_tags){.n_labels = 2}; /* a count without a list */
  assert_int_equal(vm_spec_set_tags(&s, &t, NULL), QVM_EINVAL);
  vm_spec_tags_clear(&s);
}

static void test_rfc3339(void **state) {
  (void)state;
  int64_t us = -1;
  assert_int_equal(vm_rfc3339_parse(&us, "1970-01-01T00:00:00Z", NULL), 0);
  assert_int_equal(us, 0);
  assert_int_equal(vm_rfc3339_parse(&us, "2026-11-29T11:43:47.5Z", NULL), 0);
  assert_int_equal(us, 1795952627500000LL);
  assert_int_equal(vm_rfc3339_parse(&us, "2024-02-29T23:59:59.000001Z", NULL), 0);
  char buf[32];
  for (int64_t t = 1; t < INT64_C(4102444800000000); t = t * 7 + 12345) {
    qvm_format_rfc3339(buf, t);
    assert_int_equal(vm_rfc3339_parse(&us, buf, NULL), 0);
    assert_int_equal(us, t);
  }
  static const char *const bad[] = {"",
                                    "2026-11-29",
                                    "2026-11-29T11:43:47",
                                    "2026-11-29T11:43:47.Z",
                                    "2026-11-29T24:00:00Z",
                                    "2026-13-01T00:00:00Z",
                                    "2023-02-29T00:00:00Z",
                                    "2026-11-29t11:43:47Z",
                                    "+026-11-29T11:43:47Z",
                                    "2026-11-29T11:43:60Z"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (vm_rfc3339_parse(&us, bad[i], NULL) != QVM_EINVAL) fail_msg("'%s' was taken", bad[i]);
}

static void test_durations(void **state) {
  (void)state;
  unsetenv("QVM_TEST_MIN_TTL_S");
  int64_t s = 0;
  assert_int_equal(qvm_sandbox_duration_parse(&s, "10s", NULL), 0);
  assert_int_equal(s, 10);
  assert_int_equal(qvm_sandbox_duration_parse(&s, "30m", NULL), 0);
  assert_int_equal(s, 1800);
  assert_int_equal(qvm_sandbox_duration_parse(&s, "2h", NULL), 0);
  assert_int_equal(s, 7200);
  assert_int_equal(qvm_sandbox_duration_parse(&s, "7d", NULL), 0);
  assert_int_equal(s, 604800);
  assert_int_equal(qvm_sandbox_duration_parse(&s, "168h", NULL), 0);
  static const char *const bad[] = {"9s", "8d", "604801s",     "1h30m", "m",
                                    "",   "10", "-5m",         "+5m",   "5 m",
                                    "1w", "0s", "99999999999d"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (qvm_sandbox_duration_parse(&s, bad[i], NULL) != QVM_EINVAL)
      fail_msg("duration '%s' was taken", bad[i]);
  qvm_error *err = NULL;
  assert_int_equal(qvm_sandbox_duration_parse(&s, "1s", &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "out of range"));
  qvm_error_free(err);
  /* the test-only minimum: 1..10 s, nothing else */
  setenv("QVM_TEST_MIN_TTL_S", "1", 1);
  assert_int_equal(qvm_sandbox_duration_parse(&s, "1s", NULL), 0);
  assert_int_equal(qvm_sandbox_duration_parse(&s, "0s", NULL), QVM_EINVAL);
  setenv("QVM_TEST_MIN_TTL_S", "0", 1);
  assert_int_equal(qvm_sandbox_duration_parse(&s, "5s", NULL), QVM_EINVAL);
  setenv("QVM_TEST_MIN_TTL_S", "20", 1);
  assert_int_equal(qvm_sandbox_duration_parse(&s, "10s", NULL), 0); /* not raised to 20 */
  unsetenv("QVM_TEST_MIN_TTL_S");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_up_without_cpus),  cmocka_unit_test(test_schema1_fields),
      cmocka_unit_test(test_schema1_migrates), cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_hostile_members),  cmocka_unit_test(test_newer_schema),
      cmocka_unit_test(test_updates),          cmocka_unit_test(test_up_diff),
      cmocka_unit_test(test_up_syntax_stable), cmocka_unit_test(test_snapshots),
      cmocka_unit_test(test_tags_absent),      cmocka_unit_test(test_tags_golden),
      cmocka_unit_test(test_tags_hostile),     cmocka_unit_test(test_tags_checkpoint_each),
      cmocka_unit_test(test_label_rules),      cmocka_unit_test(test_rfc3339),
      cmocka_unit_test(test_durations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
