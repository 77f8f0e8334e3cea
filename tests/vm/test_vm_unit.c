/* SPDX-License-Identifier: MIT */
/* Unit tests: names, sizes, forwards, drives, spec JSON, pid records, the
 * lock, paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <grp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testlib.h"
#include "util/fs.h"
#include "vm/cpu.h"
#include "vm/handle.h"
#include "vm/images.h"
#include "vm/net.h"
#include "vm/qemu_user.h"
#include "vm/spec.h"
#include "vm/state.h"

static void test_names(void **state) {
  (void)state;
  const char *good[] = {"a",     "0",
                        "web-1", "a-",
                        "9z",    "a23456789-123456789-123456789-123456789-123456789-123456789-123"};
  const char *bad[] = {
      "",         "A",   "-a",
      "a_b",      "a.b", "../x",
      "a,b",      "-rf", "a b",
      "a/b",      ".",   "..",
      "\xc3\xa9", "x\n", "a23456789-123456789-123456789-123456789-123456789-123456789-1234"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    assert_true(qvm_vm_name_valid(good[i]));
    assert_int_equal(qvm_vm_name_check(good[i], NULL), 0);
  }
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    qvm_error *err = NULL;
    assert_false(qvm_vm_name_valid(bad[i]));
    assert_int_equal(qvm_vm_name_check(bad[i], &err), QVM_EINVAL);
    assert_non_null(strstr(qvm_error_message(err), bad[i][0] ? "is invalid" : "empty"));
    qvm_error_free(err);
  }
  assert_false(qvm_vm_name_valid(NULL));
}

static void test_sizes(void **state) {
  (void)state;
  struct {
    const char *text;
    uint64_t want;
  } good[] = {{"1G", 1ull << 30},    {"512M", 512ull << 20}, {"10G", 10ull << 30},
              {"2048K", 2ull << 20}, {"1T", 1ull << 40},     {"1073741824", 1ull << 30},
              {"1GiB", 1ull << 30},  {"1gb", 1ull << 30},    {"16384T", 16384ull << 40}};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    uint64_t v = 0;
    assert_int_equal(qvm_vm_size_parse(&v, "disk", good[i].text, NULL), 0);
    assert_int_equal(v, good[i].want);
  }
  const char *bad[] = {"abc",       "0",
                       "0G",        "-1G",
                       "",          "1.5G",
                       "1X",        "G",
                       " 1G",       "1G ",
                       "1GG",       "99999999999999999999",
                       "16777216T", "18446744073709551615K"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    qvm_error *err = NULL;
    uint64_t v = 7;
    assert_int_equal(qvm_vm_size_parse(&v, "memory", bad[i], &err), QVM_EINVAL);
    assert_int_equal(v, 7);
    assert_non_null(strstr(qvm_error_message(err), "memory size"));
    if (bad[i][0]) assert_non_null(strstr(qvm_error_message(err), bad[i]));
    qvm_error_free(err);
  }
}

static void test_forwards(void **state) {
  (void)state;
  vm_forward f;
  assert_int_equal(vm_forward_parse(&f, "8080:80", NULL), 0);
  assert_string_equal(f.host_addr, "127.0.0.1");
  assert_int_equal(f.host_port, 8080);
  assert_int_equal(f.guest_port, 80);
  assert_false(f.udp);
  vm_forward_clear(&f);
  assert_int_equal(vm_forward_parse(&f, "0.0.0.0:53:5353/udp", NULL), 0);
  assert_string_equal(f.host_addr, "0.0.0.0");
  assert_true(f.udp);
  vm_forward_clear(&f);
  const char *bad[] = {"80",      "a:b",     "0:80", "80:65536", "1:2/sctp",
                       "x,y:1:2", "1:2:3:4", ":80",  ""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    qvm_error *err = NULL;
    assert_int_equal(vm_forward_parse(&f, bad[i], &err), QVM_EINVAL);
    qvm_error_free(err);
  }
}

static void test_drives(void **state) {
  (void)state;
  vm_drive d;
  assert_int_equal(vm_drive_parse(&d, "/a,b/c.img,format=raw,readonly", NULL), 0);
  assert_string_equal(d.path, "/a,b/c.img");
  assert_string_equal(d.format, "raw");
  assert_true(d.readonly);
  vm_drive_clear(&d);
  assert_int_equal(vm_drive_parse(&d, "/x.qcow2", NULL), 0);
  assert_null(d.format);
  assert_false(d.readonly);
  vm_drive_clear(&d);
  qvm_error *err = NULL;
  assert_int_equal(vm_drive_parse(&d, "/x,format=a,b", &err), 0); /* ",b" is part of the path */
  assert_string_equal(d.path, "/x,format=a,b");
  vm_drive_clear(&d);
  assert_int_equal(vm_drive_parse(&d, "/x,format=ra w", &err), QVM_EINVAL);
  qvm_error_free(err);
  err = NULL;
  assert_int_equal(vm_drive_parse(&d, ",readonly", &err), QVM_EINVAL);
  qvm_error_free(err);
}

static vm_spec *full_spec(void) {
  vm_spec *s = calloc(1, sizeof *s);
  s->name = strdup("round-trip");
  assert_int_equal(vm_uuid_generate(s->uuid, NULL), 0);
  vm_mac_from_uuid(s->mac, s->uuid);
  s->cpus = 3;
  s->memory_mib = 768;
  s->machine = strdup("pc");
  s->cpu = strdup("qemu64,+sse4.2,-vmx,hv-time=on");
  s->accel = VM_ACCEL_TCG;
  s->firmware = VM_FIRMWARE_UEFI;
  s->firmware_code = strdup("/usr/share/OVMF/OVMF_CODE_4M.fd");
  s->firmware_vars = strdup("OVMF_VARS.fd");
  s->kernel = strdup("/k");
  s->initrd = strdup("/i");
  s->append = strdup("console=ttyS0 \"quoted\" ü");
  vm_spec_add_drive(s, "disk.qcow2", "qcow2", false, VM_MEDIA_DISK, NULL);
  s->disk_bytes = 21474836480ull; /* 20 GiB: above INT32_MAX */
  vm_spec_add_drive(s, "/a,b.iso", "raw", true, VM_MEDIA_CDROM, NULL);
  s->seed_iso = strdup("/seed.iso");
  s->net = VM_NET_USER;
  s->ssh_forward = true;
  vm_forward f;
  vm_forward_parse(&f, "1.2.3.4:80:8080/udp", NULL);
  vm_spec_add_forward(s, &f, NULL);
  vm_forward_clear(&f);
  return s;
}

static void test_spec_round_trip(void **state) {
  (void)state;
  vm_spec *s = full_spec();
  struct json_object *j1 = vm_spec_to_json(s);
  /* Through text, as vm.json is. */
  struct json_object *parsed = json_tokener_parse(json_object_to_json_string(j1));
  vm_spec *back = NULL;
  qvm_error *err = NULL;
  if (vm_spec_from_json(&back, parsed, &err) < 0) fail_msg("%s", qvm_error_message(err));
  struct json_object *j2 = vm_spec_to_json(back);
  assert_string_equal(json_object_to_json_string(j1), json_object_to_json_string(j2));
  assert_int_equal(back->cpus, 3);
  assert_string_equal(back->cpu, "qemu64,+sse4.2,-vmx,hv-time=on");
  assert_true(back->disk_bytes == 21474836480ull);
  assert_int_equal(back->n_drives, 2);
  assert_true(back->drives[1].readonly);
  assert_int_equal(back->drives[1].media, VM_MEDIA_CDROM);
  assert_true(back->forwards[0].udp);
  json_object_put(j1);
  json_object_put(j2);
  json_object_put(parsed);
  vm_spec_free(back);
  vm_spec_free(s);
}

/* --cpu: what is a CPU property list and what is not (an option QEMU would
 * read as more than -cpu's value cannot get through: no spaces, no '='
 * in the model, nothing but [A-Za-z0-9_.-] words); what a record means. */
static void test_cpu_check(void **state) {
  (void)state;
  const char *good[] = {"auto",
                        "legacy",
                        "qemu64",
                        "max",
                        "host",
                        "Nehalem-v2",
                        "Skylake-Client-IBRS",
                        "qemu64,+sse4.2,+popcnt",
                        "max,-vmx",
                        "EPYC,hv-time=on,foo.bar=1",
                        "qemu64,pdpe1gb"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    qvm_error *err = NULL;
    if (vm_cpu_check(good[i], &err) < 0) fail_msg("%s: %s", good[i], qvm_error_message(err));
  }
  char big[VM_CPU_MAX_LEN + 2];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  const char *bad[] = {"",
                       "qemu64,",
                       ",sse",
                       "qemu64,,sse",
                       "qemu64 -hda /etc/shadow",
                       "qemu64,+",
                       "qemu64,=on",
                       "qemu64,a=",
                       "-cpu",
                       "max\n",
                       "m\xc3\xa4x",
                       "auto,+sse4.2",
                       "legacy,-vmx",
                       "qemu64;reboot",
                       "model=qemu64",
                       "help",
                       "help,+sse",
                       "qemu64,memory=pc.ram",
                       "qemu64,memory",
                       "max,x-force-features=on",
                       "max,+x-foo",
                       big};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    qvm_error *err = NULL;
    if (vm_cpu_check(bad[i], &err) == 0) fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(qvm_error_code(err), QVM_EINVAL);
    qvm_error_free(err);
  }
  const char *why = NULL;
  assert_string_equal(vm_cpu_model("auto", VM_ACCEL_TCG, &why), "qemu64");
  assert_non_null(strstr(why, "TCG"));
  assert_string_equal(vm_cpu_model("auto", VM_ACCEL_KVM, NULL), "host");
  assert_string_equal(vm_cpu_model(NULL, VM_ACCEL_TCG, &why), "max");
  assert_non_null(strstr(why, "snapshots and forks"));
  assert_string_equal(vm_cpu_model("legacy", VM_ACCEL_KVM, NULL), "host");
  assert_string_equal(vm_cpu_model("Nehalem", VM_ACCEL_KVM, &why), "Nehalem");
  assert_string_equal(why, "chosen with --cpu");
  /* a property whose name starts with "memory" is not the link */
  assert_int_equal(vm_cpu_check("qemu64,memory-foo=1", NULL), 0);
  qvm_error *err = NULL;
  assert_int_equal(vm_cpu_usable("host,+vmx", VM_ACCEL_TCG, "v", &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "vm 'v' would run under TCG"));
  qvm_error_free(err);
  assert_int_equal(vm_cpu_usable("host", VM_ACCEL_KVM, "v", NULL), 0);
  assert_int_equal(vm_cpu_usable("auto", VM_ACCEL_TCG, "v", NULL), 0);
  assert_int_equal(vm_cpu_usable("hostile", VM_ACCEL_TCG, "v", NULL), 0);
}

/* An isolated bridge port: its allow-list round-trips through vm.json,
 * and a corrupt one is refused with the entry named. */
static vm_spec *isolated_spec(void) {
  vm_spec *s = full_spec();
  s->net = VM_NET_BRIDGE;
  s->ssh_forward = false;
  s->bridge = strdup("qvm0");
  s->bridge_address = strdup("10.77.0.1/24");
  s->isolated = true;
  s->n_egress = 2;
  s->egress = calloc(2, sizeof *s->egress);
  assert_int_equal(qvm_net_egress_parse(&s->egress[0], "10.1.2.3:443", NULL), 0);
  assert_int_equal(qvm_net_egress_parse(&s->egress[1], "10.9.0.0/16:53/udp", NULL), 0);
  return s;
}

static int isolated_from(vm_spec **out, const char *isolated_json, qvm_error **err) {
  vm_spec *s = isolated_spec();
  struct json_object *j = vm_spec_to_json(s), *net = NULL;
  vm_spec_free(s);
  assert_true(json_object_object_get_ex(j, "network", &net));
  if (isolated_json) json_object_object_add(net, "isolated", json_tokener_parse(isolated_json));
  struct json_object *parsed = json_tokener_parse(json_object_to_json_string(j));
  int r = vm_spec_from_json(out, parsed, err);
  json_object_put(j);
  json_object_put(parsed);
  return r;
}

static void test_spec_isolated(void **state) {
  (void)state;
  vm_spec *back = NULL;
  qvm_error *err = NULL;
  if (isolated_from(&back, NULL, &err) < 0) fail_msg("%s", qvm_error_message(err));
  assert_true(back->isolated);
  assert_int_equal(back->n_egress, 2);
  assert_int_equal(back->egress[0].port, 443);
  assert_true(back->egress[1].udp);
  assert_int_equal(back->egress[1].prefix, 16);
  struct json_object *j = vm_spec_to_json(back), *net = NULL, *iso = NULL;
  assert_true(json_object_object_get_ex(j, "network", &net));
  assert_true(json_object_object_get_ex(net, "isolated", &iso));
  assert_string_equal(
      json_object_to_json_string_ext(iso, JSON_C_TO_STRING_PLAIN),
      "{\"allow_egress\":[\"10.1.2.3\\/32:443\\/tcp\",\"10.9.0.0\\/16:53\\/udp\"]}");
  json_object_put(j);
  vm_spec_free(back);
  struct {
    const char *json, *why;
  } bad[] = {{"true", "'isolated' is not an object"},
             {"{\"allow_egress\":\"10.0.0.1:80\"}", "not an array"},
             {"{\"allow_egress\":[\"10.0.0.1:80\",\"bogus\"]}", "entry 1"},
             {"{\"allow_egress\":[\"10.0.0.1:80\",\"bogus\"]}", "'bogus'"},
             {"{\"allow_egress\":[80]}", "not a string"},
             {"{\"allow_egress\":[\"10.0.0.1:99999\"]}", "port"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    vm_spec *s = NULL;
    qvm_error *e = NULL;
    assert_int_equal(isolated_from(&s, bad[i].json, &e), QVM_EINVAL);
    if (!strstr(qvm_error_message(e), bad[i].why))
      fail_msg("%s: '%s' not in: %s", bad[i].json, bad[i].why, qvm_error_message(e));
    qvm_error_free(e);
    assert_null(s);
  }
  /* 33 entries: more than vm.json may hold. */
  char many[33 * 20 + 40] = "{\"allow_egress\":[";
  for (int i = 0; i < 33; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"10.0.0.%d:80\"", i ? "," : "",
             i + 1);
  strcat(many, "]}");
  vm_spec *s = NULL;
  assert_int_equal(isolated_from(&s, many, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "more than 32"));
  qvm_error_free(err);
}

static void test_spec_json_rejects(void **state) {
  (void)state;
  struct {
    const char *key;
    const char *json;
  } bad[] = {{"name", "\"../x\""},
             {"cpus", "0"},
             {"cpus", "\"2\""},
             {"memory_mib", "1"},
             {"mac", "\"zz\""},
             {"uuid", "\"x\""},
             {"machine", "\"virt\""},
             {"accel", "\"hvf\""},
             {"drives", "[{\"path\":1}]"},
             {"drives", "{}"},
             {"network", "{\"mode\":\"x\"}"},
             {"firmware", "\"coreboot\""},
             {"disk_bytes", "0"},
             {"disk_bytes", "-512"},
             {"disk_bytes", "\"20G\""},
             {"disk_bytes", "1.5"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    vm_spec *s = full_spec();
    struct json_object *j = vm_spec_to_json(s);
    json_object_object_add(j, bad[i].key, json_tokener_parse(bad[i].json));
    vm_spec *back = NULL;
    qvm_error *err = NULL;
    if (vm_spec_from_json(&back, j, &err) != QVM_EINVAL)
      fail_msg("accepted %s=%s", bad[i].key, bad[i].json);
    assert_null(back);
    assert_non_null(strstr(qvm_error_message(err), "vm spec is invalid"));
    qvm_error_free(err);
    json_object_put(j);
    vm_spec_free(s);
  }
}

static void test_pid_records(void **state) {
  (void)state;
  vm_proc me;
  assert_int_equal(vm_proc_record(&me, getpid(), NULL), 0);
  assert_true(vm_proc_alive(&me));
  assert_true(vm_proc_matches(&me, me.boot_id));
  /* A record from another boot is never trusted, even if the pid matches. */
  vm_proc other_boot = me;
  strcpy(other_boot.boot_id, "00000000-0000-0000-0000-000000000000");
  assert_false(vm_proc_alive(&other_boot));
  assert_false(vm_proc_matches(&me, "00000000-0000-0000-0000-000000000000"));
  /* A reused pid has another start time. */
  vm_proc reused = me;
  reused.start_time++;
  assert_false(vm_proc_alive(&reused));
  assert_int_equal(vm_proc_pidfd(&reused), -1);
  int fd = vm_proc_pidfd(&me);
  assert_true(fd >= 0);
  close(fd);
  /* An exited child: a zombie first, then gone. */
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  vm_proc child;
  assert_int_equal(vm_proc_record(&child, pid, NULL), 0);
  usleep(100 * 1000);
  assert_false(vm_proc_alive(&child)); /* zombie */
  waitpid(pid, NULL, 0);
  assert_false(vm_proc_alive(&child));
  /* JSON round trip and rejects. */
  struct json_object *j = vm_proc_to_json(&me);
  vm_proc back;
  assert_int_equal(vm_proc_from_json(&back, j, NULL), 0);
  assert_int_equal(back.pid, me.pid);
  assert_int_equal(back.start_time, me.start_time);
  assert_string_equal(back.boot_id, me.boot_id);
  json_object_object_add(j, "pid", json_object_new_int(-5));
  assert_int_equal(vm_proc_from_json(&back, j, NULL), QVM_EINVAL);
  json_object_put(j);
}

static void test_lock_names_holder(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("vm-lock");
  setenv("QVM_STATE_DIR", dir, 1);
  setenv("QVM_RUNTIME_DIR", dir, 1);
  vm_paths p;
  assert_int_equal(vm_paths_init(&p, "locked", NULL), 0);
  qvm_error *err = NULL;
  int fd = -1;
  assert_int_equal(vm_lock_acquire(&fd, &p, "start", 100, &err), QVM_ENOTFOUND);
  qvm_error_free(err);
  err = NULL;
  assert_int_equal(qvm_mkdir_p(p.dir, 0700, NULL), 0);
  assert_int_equal(qvm_write_file_atomic(p.lock, "", 0, 0644, NULL), 0);
  assert_int_equal(vm_lock_acquire(&fd, &p, "start", 100, NULL), 0);
  pid_t pid = fork();
  if (pid == 0) {
    int fd2 = -1;
    qvm_error *e = NULL;
    int r = vm_lock_acquire(&fd2, &p, "stop", 200, &e);
    char want[64];
    snprintf(want, sizeof want, "'start' (pid %d)", (int)getppid());
    _exit(r == QVM_EBUSY && strstr(qvm_error_message(e), want) ? 0 : 1);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  vm_lock_release(fd);
  assert_int_equal(vm_lock_acquire(&fd, &p, "stop", 100, NULL), 0);
  vm_lock_release(fd);
  vm_paths_clear(&p);
  qvm_test_rmtree(dir);
  free(dir);
}

static int err_code(int r, qvm_error **err, const char *want) {
  if (want) assert_non_null(strstr(qvm_error_message(*err), want));
  qvm_error_free(*err);
  *err = NULL;
  return r;
}

/* Snapshot names go to qemu-img's -l and QMP: a comma, '=', a space or a
 * control character would change what they say. */
static void test_clone_args(void **state) {
  (void)state;
  assert_true(vm_snapshot_name_valid("snap1"));
  assert_true(vm_snapshot_name_valid("A.b_c-9"));
  assert_false(vm_snapshot_name_valid(""));
  assert_false(vm_snapshot_name_valid(NULL));
  assert_false(vm_snapshot_name_valid("-x"));
  assert_false(vm_snapshot_name_valid("a,b"));
  assert_false(vm_snapshot_name_valid("a=b"));
  assert_false(vm_snapshot_name_valid("a b"));
  assert_false(vm_snapshot_name_valid("a\nb"));
  char long_name[66];
  memset(long_name, 'a', 65);
  long_name[65] = '\0';
  assert_false(vm_snapshot_name_valid(long_name));
  long_name[64] = '\0';
  assert_true(vm_snapshot_name_valid(long_name));

  char *dir = qvm_test_mkdtemp("vm-clone");
  setenv("QVM_STATE_DIR", dir, 1);
  setenv("QVM_RUNTIME_DIR", dir, 1);
  qvm_error *err = NULL;
  char *out = NULL;
  assert_int_equal(err_code(qvm_vm_clone(&out, "src", "src", NULL, &err), &err, "already exists"),
                   QVM_EEXISTS);
  assert_int_equal(err_code(qvm_vm_clone(&out, "src", "BAD", NULL, &err), &err, "invalid"),
                   QVM_EINVAL);
  assert_int_equal(err_code(qvm_vm_clone(&out, "nope", "dst", NULL, &err), &err, "not found"),
                   QVM_ENOTFOUND);
  qvm_vm_clone_options co = QVM_VM_CLONE_OPTIONS_INIT;
  co.version = 99;
  assert_int_equal(err_code(qvm_vm_clone(&out, "nope", "dst", &co, &err), &err, NULL), QVM_EINVAL);
  co = (qvm_vm_clone_options)QVM_VM_CLONE_OPTIONS_INIT;
  co.then = (qvm_vm_clone_then)7;
  assert_int_equal(err_code(qvm_vm_clone(&out, "nope", "dst", &co, &err), &err, NULL), QVM_EINVAL);
  assert_int_equal(
      err_code(qvm_image_import_vm(&out, "nope", "a,b", "x", NULL, &err), &err, "snapshot name"),
      QVM_EINVAL);
  assert_int_equal(
      err_code(qvm_image_import_vm(&out, "nope", NULL, "Bad Name", NULL, &err), &err, NULL),
      QVM_EINVAL);
  assert_int_equal(
      err_code(qvm_image_import_vm(&out, "nope", NULL, "x", NULL, &err), &err, "not found"),
      QVM_ENOTFOUND);
  assert_null(out);
  qvm_test_rmtree(dir);
  free(dir);
}

static void test_paths(void **state) {
  (void)state;
  char longdir[200];
  memset(longdir, 'x', sizeof longdir - 1);
  longdir[0] = '/';
  longdir[sizeof longdir - 1] = '\0';
  setenv("QVM_STATE_DIR", "/tmp/qvm-unit-state", 1);
  setenv("QVM_RUNTIME_DIR", longdir, 1);
  vm_paths p;
  qvm_error *err = NULL;
  assert_int_equal(vm_paths_init(&p, "a", &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "QVM_RUNTIME_DIR"));
  qvm_error_free(err);
  err = NULL;
  setenv("QVM_RUNTIME_DIR", "/run/x", 1);
  assert_int_equal(vm_paths_init(&p, "../etc", &err), QVM_EINVAL);
  qvm_error_free(err);
  assert_int_equal(vm_paths_init(&p, "web", NULL), 0);
  assert_string_equal(p.dir, "/tmp/qvm-unit-state/vms/web");
  assert_string_equal(p.qmp_sock, "/run/x/web/qmp.sock");
  vm_paths_clear(&p);
  setenv("QVM_RUNTIME_DIR", "relative", 1);
  err = NULL;
  assert_int_equal(vm_paths_init(&p, "web", &err), QVM_EINVAL);
  qvm_error_free(err);
}

static void test_doc_read_rejects(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("vm-doc");
  char path[512];
  snprintf(path, sizeof path, "%s/vm.json", dir);
  const char *bad[] = {"", "[1]", "{\"a\":", "{} trailing", "\"s\""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(qvm_write_file_atomic(path, bad[i], strlen(bad[i]), 0644, NULL), 0);
    struct json_object *doc = NULL;
    qvm_error *err = NULL;
    assert_int_equal(vm_doc_read(&doc, path, &err), QVM_EINVAL);
    qvm_error_free(err);
  }
  struct json_object *doc = NULL;
  qvm_error *err = NULL;
  unlink(path);
  assert_int_equal(vm_doc_read(&doc, path, &err), QVM_ENOTFOUND);
  qvm_error_free(err);
  qvm_test_rmtree(dir);
  free(dir);
}

/* A bridge VM's MAC: 0a: + 5 bytes of the uuid; when another VM on the same
 * bridge has it (vm.json) or the bridge's lease db names it, the next
 * candidate of the same scheme. A VM on another bridge does not count. */
static void write_text(const char *dir, const char *rel, const char *text) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  char *slash = strrchr(path, '/');
  *slash = '\0';
  assert_int_equal(qvm_mkdir_p(path, 0700, NULL), 0);
  *slash = '/';
  assert_int_equal(qvm_write_file_atomic(path, text, strlen(text), 0600, NULL), 0);
}

static void test_bridge_mac_collision(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("vm-mac");
  setenv("QVM_STATE_DIR", dir, 1);
  const char *uuid = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3";
  vm_spec s = {.name = "new", .bridge = "qvm0", .net = VM_NET_BRIDGE};
  snprintf(s.uuid, sizeof s.uuid, "%s", uuid);
  assert_int_equal(vm_net_mac_assign(&s, NULL), 0);
  assert_string_equal(s.mac, "0a:0a:1b:2c:3d:4e");
  /* Another bridge's VM with that MAC: no collision. */
  write_text(dir, "vms/far/vm.json",
             "{\"spec\":{\"mac\":\"0a:0a:1b:2c:3d:4e\",\"network\":{\"bridge\":\"br9\"}}}");
  assert_int_equal(vm_net_mac_assign(&s, NULL), 0);
  assert_string_equal(s.mac, "0a:0a:1b:2c:3d:4e");
  /* A VM on the same bridge has it: the next candidate. */
  write_text(dir, "vms/near/vm.json",
             "{\"spec\":{\"mac\":\"0a:0a:1b:2c:3d:4e\",\"network\":{\"bridge\":\"qvm0\"}}}");
  assert_int_equal(vm_net_mac_assign(&s, NULL), 0);
  assert_string_equal(s.mac, "0a:1b:2c:3d:4e:5f");
  /* The lease db remembers that one (a removed VM's): the one after. */
  write_text(dir, "net/qvm0.leases", "released 0a:1b:2c:3d:4e:5f 10.77.0.10 1 -\n");
  assert_int_equal(vm_net_mac_assign(&s, NULL), 0);
  assert_string_equal(s.mac, "0a:2c:3d:4e:5f:4a");
  /* The VM's own vm.json does not count against it. */
  write_text(dir, "vms/new/vm.json",
             "{\"spec\":{\"mac\":\"0a:2c:3d:4e:5f:4a\",\"network\":{\"bridge\":\"qvm0\"}}}");
  assert_int_equal(vm_net_mac_assign(&s, NULL), 0);
  assert_string_equal(s.mac, "0a:2c:3d:4e:5f:4a");
  unsetenv("QVM_STATE_DIR");
  qvm_test_rmtree(dir);
  free(dir);
}

/* qvm_vm_create checks typed options a caller filled by hand, before it
 * writes anything. */
static void test_create_checks_typed(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("vm-typed");
  setenv("QVM_STATE_DIR", dir, 1);
  setenv("QVM_RUNTIME_DIR", dir, 1);
  qvm_vm_publish bad_addr = {.addr = "1.2.3", .host_port = 1, .guest_port = 2};
  qvm_vm_publish no_port = {.host_port = 8080};
  qvm_vm_publish unterminated = {.host_port = 1, .guest_port = 2};
  memset(unterminated.addr, '1', sizeof unterminated.addr);
  static const struct {
    const char *needle;
  } want[] = {{"not an IPv4 address"},
              {"ports are 1 to 65535"},
              {"not an IPv4 address"},
              {"restrict belongs to user networking"},
              {"nat needs bridge networking"},
              {"bridge, subnet and dhcp belong to bridge networking"},
              {"memory size 1024 bytes is out of range"}};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    qvm_vm_create_options o = QVM_VM_CREATE_OPTIONS_INIT;
    o.kernel = "/etc/hostname";
    o.no_cloud_init = true;
    switch (i) {
    case 0: o.publish = &bad_addr, o.n_publish = 1; break;
    case 1: o.publish = &no_port, o.n_publish = 1; break;
    case 2: o.publish = &unterminated, o.n_publish = 1; break;
    case 3: o.net = (qvm_vm_net){.mode = QVM_VM_NET_NONE, .restricted = true}; break;
    case 4: o.net.nat = true; break;
    case 5: snprintf(o.net.bridge, sizeof o.net.bridge, "br0"); break;
    default: o.memory = 1024; break;
    }
    qvm_error *err = NULL;
    assert_int_equal(qvm_vm_create(NULL, "t", &o, &err), QVM_EINVAL);
    if (!strstr(qvm_error_message(err), want[i].needle))
      fail_msg("case %zu: '%s' lacks '%s'", i, qvm_error_message(err), want[i].needle);
    qvm_error_free(err);
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/vms/t", dir);
  assert_int_equal(access(path, F_OK), -1);
  unsetenv("QVM_STATE_DIR");
  unsetenv("QVM_RUNTIME_DIR");
  qvm_test_rmtree(dir);
  free(dir);
}

/* The default QEMU user must be a system account with a group of its own:
 * an existing login account or a shared group (users) is refused. */
static void test_qemu_user_default_checked(void **state) {
  (void)state;
  struct group *users = getgrnam("users");
  if (users) assert_int_equal(vm_qemu_user_check_default(995, users->gr_gid, NULL), QVM_EINVAL);
  struct group *own = getgrnam(VM_QEMU_USER_DEFAULT);
  if (!own) return; /* not created on this machine yet: qvm creates it at start */
  assert_int_equal(vm_qemu_user_check_default(own->gr_gid, own->gr_gid, NULL), 0);
  assert_int_equal(vm_qemu_user_check_default(1000, own->gr_gid, NULL), QVM_EINVAL);
}

/* Replaces the first `from` in the file with `to`, of the same length, in
 * place (the same inode). */
static void overwrite(const char *path, const char *from, const char *to) {
  char *text = NULL;
  size_t len = 0;
  assert_int_equal(qvm_read_file(&text, &len, path, 1 << 20, NULL), 0);
  char *at = strstr(text, from);
  assert_non_null(at);
  assert_int_equal(strlen(from), strlen(to));
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, to, strlen(to), at - text), (ssize_t)strlen(to));
  close(fd);
  free(text);
}

/* "[" + qvm_vm_info of each name, opened now + "]": what qvm_vm_list_info
 * must give. */
static char *infos_joined(const char *const *names, size_t n) {
  size_t cap = 2, len = 1;
  char *out = malloc(cap + 1);
  assert_non_null(out);
  out[0] = '[';
  for (size_t i = 0; i < n; i++) {
    qvm_vm *vm = NULL;
    char *text = NULL;
    assert_int_equal(qvm_vm_open(&vm, names[i], NULL), 0);
    assert_int_equal(qvm_vm_info(&text, vm, NULL), 0);
    qvm_vm_free(vm);
    cap += strlen(text) + 1;
    out = realloc(out, cap + 1);
    assert_non_null(out);
    len += (size_t)sprintf(out + len, "%s%s", i ? "," : "", text);
    free(text);
  }
  strcpy(out + len, "]");
  return out;
}

static char *list_info(void) {
  char *text = NULL;
  qvm_error *err = NULL;
  if (qvm_vm_list_info(&text, &err) < 0) fail_msg("qvm_vm_list_info: %s", qvm_error_message(err));
  return text;
}

static void assert_list_is(const char *const *names, size_t n, const char *what) {
  char *want = infos_joined(names, n), *got = list_info();
  if (strcmp(got, want)) fail_msg("%s: the list\n%s\nis not the infos\n%s", what, got, want);
  free(want);
  free(got);
}

/* Listings from several threads while vm.json changes: each a whole array
 * naming la (the cache is replaced under them). */
static void *list_often(void *arg) {
  (void)arg;
  for (int i = 0; i < 200; i++) {
    char *text = list_info();
    size_t len = strlen(text);
    if (len < 2 || text[0] != '[' || text[len - 1] != ']' || !strstr(text, "\"name\":\"la\""))
      fail_msg("a listing beside others: %s", text);
    free(text);
  }
  return NULL;
}

static void set_shim(const char *name, const vm_proc *shim) {
  vm_paths p;
  assert_int_equal(vm_paths_init(&p, name, NULL), 0);
  assert_int_equal(vm_record_set_status(&p, VM_RUN_RUNNING, shim, false, NULL), 0);
  vm_paths_clear(&p);
}

/* qvm_vm_list_info is qvm_vm_info VM by VM, and never an answer kept from
 * before vm.json changed or a recorded process died: each change below
 * comes right after a listing that kept every info it could (the racy-ctime
 * rule off at first, so that only the stat identity tells a change). */
static void test_list_info(void **state) {
  (void)state;
  char *dir = qvm_test_mkdtemp("vm-list");
  setenv("QVM_STATE_DIR", dir, 1);
  setenv("QVM_RUNTIME_DIR", dir, 1);
  int64_t racy = vm_list_racy_ns;
  vm_list_racy_ns = -1000000000; /* keep even what was written just now */
  char *empty = list_info();
  assert_string_equal(empty, "[]");
  free(empty);
  const char *names[] = {"la", "lb", "lc"};
  for (size_t i = 0; i < 3; i++) {
    qvm_vm_create_options o = QVM_VM_CREATE_OPTIONS_INIT;
    o.kernel = "/etc/hostname";
    o.no_cloud_init = true;
    assert_int_equal(qvm_vm_create(NULL, names[i], &o, NULL), 0);
  }
  assert_list_is(names, 3, "created");
  unsigned long reads = vm_list_reads;
  char *kept = list_info();
  assert_int_equal(vm_list_reads, reads); /* all three kept: no vm.json read */
  assert_list_is(names, 3, "kept");
  /* The same size and inode, mtime set back: only ctime tells (a tick
   * later: within one tick of the coarse clock is what the racy rule, off
   * here, is for). */
  char path[4096];
  snprintf(path, sizeof path, "%s/vms/la/vm.json", dir);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  usleep(20 * 1000);
  overwrite(path, "\"cpus\":1", "\"cpus\":2");
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
  char *changed = list_info();
  assert_non_null(strstr(changed, "\"cpus\":2"));
  free(changed);
  assert_list_is(names, 3, "vm.json written in place");
  /* lb's shim is a child of this test: alive, so lb is no longer "created". */
  pid_t pid = fork();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  vm_proc shim;
  assert_int_equal(vm_proc_record(&shim, pid, NULL), 0);
  set_shim("lb", &shim);
  char *live = list_info();
  assert_string_not_equal(live, kept);
  char pid_member[64];
  snprintf(pid_member, sizeof pid_member, "\"shim_pid\":%d", (int)pid);
  assert_non_null(strstr(live, pid_member));
  assert_list_is(names, 3, "a live shim");
  /* It dies and vm.json stays as it was: the next listing says so. */
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  char *crashed = list_info();
  assert_null(strstr(crashed, pid_member));
  assert_non_null(strstr(crashed, "\"state\":\"crashed\""));
  assert_list_is(names, 3, "a dead shim");
  /* Dead stays dead: kept from now on. */
  reads = vm_list_reads;
  char *again = list_info();
  assert_string_equal(again, crashed);
  assert_int_equal(vm_list_reads, reads);
  free(again);
  /* Removed; then a vm.json that does not parse: both left out. */
  assert_int_equal(qvm_vm_remove("lc", false, NULL), 0);
  assert_list_is(names, 2, "removed");
  snprintf(path, sizeof path, "%s/vms/lb/vm.json", dir);
  assert_int_equal(qvm_write_file_atomic(path, "{", 1, 0600, NULL), 0);
  assert_list_is(names, 1, "unreadable");
  /* The racy rule on: two writes in place, mtime set back, with a listing
   * between them, all likely within one tick of the kernel's coarse clock
   * (then ctime too is the same, unless the file system has the multigrain
   * timestamps of Linux 6.13+): the second is shown all the same. */
  vm_list_racy_ns = racy;
  snprintf(path, sizeof path, "%s/vms/la/vm.json", dir);
  assert_int_equal(stat(path, &st), 0);
  times[0] = st.st_atim, times[1] = st.st_mtim;
  overwrite(path, "\"cpus\":2", "\"cpus\":3");
  assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
  assert_list_is(names, 1, "racy");
  overwrite(path, "\"cpus\":3", "\"cpus\":4");
  assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
  changed = list_info();
  assert_non_null(strstr(changed, "\"cpus\":4"));
  free(changed);
  /* Listings from 4 threads while vm.json changes, every read kept. */
  vm_list_racy_ns = -1000000000;
  pthread_t threads[4];
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&threads[i], NULL, list_often, NULL), 0);
  for (int i = 0; i < 100; i++) {
    overwrite(path, i % 2 ? "\"cpus\":5" : "\"cpus\":4", i % 2 ? "\"cpus\":4" : "\"cpus\":5");
    usleep(1000);
  }
  for (size_t i = 0; i < 4; i++) assert_int_equal(pthread_join(threads[i], NULL), 0);
  usleep(20 * 1000); /* a tick later (the racy rule is off) */
  overwrite(path, "\"cpus\":4", "\"cpus\":6");
  vm_list_racy_ns = racy;
  assert_list_is(names, 1, "after the threads");
  /* Another state root: nothing of the first one's. */
  char *other = qvm_test_mkdtemp("vm-list-2");
  setenv("QVM_STATE_DIR", other, 1);
  char *none = list_info();
  assert_string_equal(none, "[]");
  free(none);
  free(kept);
  free(live);
  free(crashed);
  unsetenv("QVM_STATE_DIR");
  unsetenv("QVM_RUNTIME_DIR");
  qvm_test_rmtree(other);
  qvm_test_rmtree(dir);
  free(other);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_forwards),
      cmocka_unit_test(test_drives),
      cmocka_unit_test(test_spec_round_trip),
      cmocka_unit_test(test_spec_isolated),
      cmocka_unit_test(test_spec_json_rejects),
      cmocka_unit_test(test_pid_records),
      cmocka_unit_test(test_lock_names_holder),
      cmocka_unit_test(test_paths),
      cmocka_unit_test(test_doc_read_rejects),
      cmocka_unit_test(test_bridge_mac_collision),
      cmocka_unit_test(test_create_checks_typed),
      cmocka_unit_test(test_qemu_user_default_checked),
      cmocka_unit_test(test_clone_args),
      cmocka_unit_test(test_cpu_check),
      cmocka_unit_test(test_list_info),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
