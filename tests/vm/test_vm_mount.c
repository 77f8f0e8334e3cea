/* SPDX-License-Identifier: MIT */
/* Host folder mounts (vm/mount.c): the --mount syntax, the host directory
 * checks at create and before each start, vm.json's "mounts" read back from
 * a hostile file, and the guest's boot lines. */
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
#include "vm/mount.h"
#include "vm/spec.h"

static char *tmp;

static int setup(void **state) {
  (void)state;
  tmp = qvm_test_mkdtemp("mount");
  char *p = NULL;
  assert_true(asprintf(&p, "%s/state", tmp) > 0);
  assert_int_equal(mkdir(p, 0700), 0);
  setenv("QVM_STATE_DIR", p, 1);
  free(p);
  assert_true(asprintf(&p, "%s/run", tmp) > 0);
  setenv("QVM_RUNTIME_DIR", p, 1);
  free(p);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  qvm_test_rmtree(tmp);
  free(tmp);
  return 0;
}

static char *path_in(const char *name) {
  char *p = NULL;
  assert_true(asprintf(&p, "%s/%s", tmp, name) > 0);
  return p;
}

static char *dir_in(const char *name) {
  char *p = path_in(name);
  assert_int_equal(mkdir(p, 0755), 0);
  return p;
}

static void test_parse(void **state) {
  (void)state;
  struct {
    const char *text, *host, *guest;
    bool ro;
  } good[] = {{"./src:/src", "./src", "/src", false},
              {"/data:/mnt/data:ro", "/data", "/mnt/data", true},
              {"/data:/mnt/data:rw", "/data", "/mnt/data", false},
              {"/a:b/c:/x", "/a:b/c", "/x", false}, /* HOST may hold ':' */
              {"/a,b:/w_x-y.z+1@2", "/a,b", "/w_x-y.z+1@2", false}};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    qvm_vm_mount m = {0};
    qvm_error *err = NULL;
    if (qvm_vm_mount_parse(&m, good[i].text, &err) < 0)
      fail_msg("%s: %s", good[i].text, qvm_error_message(err));
    assert_string_equal(m.host, good[i].host);
    assert_string_equal(m.guest, good[i].guest);
    assert_int_equal(m.readonly, good[i].ro);
    qvm_vm_mount_clear(&m);
  }
  struct {
    const char *text, *says;
  } bad[] = {{"", "use HOST:GUEST"},
             {"/data", "use HOST:GUEST"},
             {"/data:", "use HOST:GUEST"},
             {":/x", "use HOST:GUEST"},
             {"/data:x", "guest path 'x' is invalid"}, /* not absolute */
             {"/data:/", "guest path '/' is invalid"},
             {"/data:/a/../etc", "is invalid"},
             {"/data:/a/./b", "is invalid"},
             {"/data:/a//b", "is invalid"},
             {"/data:/a/", "is invalid"},
             {"/data:/a b", "is invalid"},
             {"/data:/a'b", "is invalid"},
             {"/data:/a,b", "is invalid"},
             {"/data:/a\nb", "is invalid"},
             {"/data:/x:rx", "unknown option 'rx': use :ro or :rw"},
             {"/data:/x:readonly", "unknown option 'readonly'"},
             {"/data:/x:ro:ro", "unknown option 'ro'"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    qvm_vm_mount m = {0};
    qvm_error *err = NULL;
    assert_int_equal(qvm_vm_mount_parse(&m, bad[i].text, &err), QVM_EINVAL);
    if (!strstr(qvm_error_message(err), bad[i].says))
      fail_msg("'%s': '%s' does not say '%s'", bad[i].text, qvm_error_message(err), bad[i].says);
    assert_null(m.host);
    qvm_error_free(err);
  }
  char long_guest[QVM_VM_MOUNT_GUEST_MAX + 8] = "/";
  memset(long_guest + 1, 'a', QVM_VM_MOUNT_GUEST_MAX);
  assert_false(vm_mount_guest_valid(long_guest));
  long_guest[QVM_VM_MOUNT_GUEST_MAX] = '\0';
  assert_true(vm_mount_guest_valid(long_guest));
}

static int set_one(vm_spec *s, const char *host, const char *guest, bool ro, qvm_error **err) {
  qvm_vm_mount m = {.host = host, .guest = guest, .readonly = ro};
  return vm_spec_set_mounts(s, &m, 1, err);
}

static void expect_refused(const char *host, int code, const char *says) {
  vm_spec s = {0};
  qvm_error *err = NULL;
  assert_int_equal(set_one(&s, host, "/x", false, &err), code);
  if (!strstr(qvm_error_message(err), says))
    fail_msg("'%s': '%s' does not say '%s'", host, qvm_error_message(err), says);
  assert_int_equal(s.n_mounts, 0);
  qvm_error_free(err);
  vm_spec_mounts_clear(&s);
}

static void test_host_checks(void **state) {
  (void)state;
  char *share = dir_in("share"), *file = path_in("file"), *link = path_in("link");
  char *missing = path_in("missing"), *state_dir = path_in("state"), *vms = path_in("state/vms");
  assert_int_equal(mkdir(vms, 0700), 0);
  assert_int_equal(qvm_write_file_atomic(file, "x", 1, 0644, NULL), 0);
  assert_int_equal(symlink(share, link), 0);
  expect_refused(missing, QVM_ENOTFOUND, "not found");
  expect_refused(file, QVM_EINVAL, "is not a directory");
  expect_refused("/", QVM_EINVAL, "sharing / is refused");
  expect_refused("/..", QVM_EINVAL, "sharing / is refused");
  expect_refused(state_dir, QVM_EINVAL, "qvm's state directory");
  expect_refused(vms, QVM_EINVAL, "qvm's state directory");
  expect_refused(tmp, QVM_EINVAL, "qvm's state directory"); /* holds it */
  expect_refused("", QVM_EINVAL, "has no host directory");

  /* A symlink and a relative path are recorded resolved. */
  vm_spec s = {0};
  qvm_error *err = NULL;
  if (set_one(&s, link, "/a", false, &err) < 0) fail_msg("%s", qvm_error_message(err));
  char cwd[4096];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(tmp), 0);
  if (set_one(&s, "./share/", "/b", true, &err) < 0) fail_msg("%s", qvm_error_message(err));
  assert_int_equal(chdir(cwd), 0);
  assert_int_equal(s.n_mounts, 2);
  char real[4096];
  assert_non_null(realpath(share, real));
  assert_string_equal(s.mounts[0].host, real);
  assert_string_equal(s.mounts[1].host, real);
  assert_true(s.mounts[1].readonly);
  /* One guest path, one mount. */
  assert_int_equal(set_one(&s, share, "/a", false, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "mounted twice"));
  qvm_error_free(err);
  err = NULL;
  assert_int_equal(s.n_mounts, 2);
  vm_spec_mounts_clear(&s);

  qvm_vm_mount many[QVM_VM_MOUNTS_MAX + 1];
  for (size_t i = 0; i < QVM_VM_MOUNTS_MAX + 1; i++)
    many[i] = (qvm_vm_mount){.host = share, .guest = "/x"};
  assert_int_equal(vm_spec_set_mounts(&s, many, QVM_VM_MOUNTS_MAX + 1, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "at most 16"));
  qvm_error_free(err);
  free(share), free(file), free(link), free(missing), free(state_dir), free(vms);
}

/* Before each start: the directory is still the one checked at create. */
static void test_verify(void **state) {
  (void)state;
  char *dir = dir_in("verify"), *moved = path_in("verify-moved"), *other = dir_in("other");
  vm_spec s = {0};
  qvm_error *err = NULL;
  assert_int_equal(set_one(&s, dir, "/v", false, NULL), 0);
  if (geteuid() == 0) {
    /* QEMU keeping root (no runas): a writable mount is refused. */
    assert_int_equal(vm_mounts_verify(&s, NULL, &err), QVM_EPERM);
    assert_non_null(strstr(qvm_error_message(err), "qemu runs as root"));
    qvm_error_free(err);
    err = NULL;
    s.mounts[0].readonly = true;
  }
  assert_int_equal(vm_mounts_verify(&s, NULL, NULL), 0);
  assert_int_equal(rename(dir, moved), 0);
  assert_int_equal(vm_mounts_verify(&s, NULL, &err), QVM_ENOTFOUND);
  qvm_error_free(err);
  err = NULL;
  /* A symlink put where the directory was is not followed. */
  assert_int_equal(symlink(other, dir), 0);
  assert_int_equal(vm_mounts_verify(&s, NULL, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "now resolves to"));
  qvm_error_free(err);
  vm_spec_mounts_clear(&s);
  free(dir), free(moved), free(other);
}

/* As root, QEMU drops to another user: that user must reach the directory
 * itself (the parents do not matter: QEMU opens it before the drop). */
static void test_verify_runas(void **state) {
  (void)state;
  if (geteuid() != 0) skip();
  char *dir = dir_in("runas");
  vm_spec s = {0};
  qvm_error *err = NULL;
  assert_int_equal(set_one(&s, dir, "/r", false, NULL), 0);
  assert_int_equal(chmod(dir, 0755), 0);
  assert_int_equal(vm_mounts_verify(&s, "65534:65534", &err), QVM_EPERM);
  assert_non_null(strstr(qvm_error_message(err), "cannot read and write"));
  assert_non_null(strstr(qvm_error_message(err), "uid 65534"));
  qvm_error_free(err);
  err = NULL;
  s.mounts[0].readonly = true; /* reading is enough for :ro */
  assert_int_equal(vm_mounts_verify(&s, "65534:65534", NULL), 0);
  assert_int_equal(chmod(dir, 0700), 0);
  assert_int_equal(vm_mounts_verify(&s, "65534:65534", &err), QVM_EPERM);
  qvm_error_free(err);
  s.mounts[0].readonly = false;
  assert_int_equal(chmod(dir, 0777), 0);
  assert_int_equal(vm_mounts_verify(&s, "65534:65534", NULL), 0);
  vm_spec_mounts_clear(&s);
  free(dir);
}

static vm_spec *from_json_text(const char *text, qvm_error **err) {
  struct json_object *o = json_tokener_parse(text);
  assert_non_null(o);
  vm_spec *s = calloc(1, sizeof *s);
  assert_non_null(s);
  int r = vm_mounts_from_json(s, o, err);
  json_object_put(o);
  if (r < 0) {
    vm_spec_free(s);
    return NULL;
  }
  return s;
}

static void test_json(void **state) {
  (void)state;
  vm_spec *s =
      from_json_text("{\"mounts\":[{\"host\":\"/srv/a\",\"guest\":\"/a\",\"readonly\":false},"
                     "{\"host\":\"/srv/b,c\",\"guest\":\"/b\",\"readonly\":true}]}",
                     NULL);
  assert_non_null(s);
  assert_int_equal(s->n_mounts, 2);
  assert_true(s->mounts[1].readonly);
  struct json_object *o = json_object_new_object();
  vm_mounts_to_json(o, s);
  vm_spec *back = from_json_text(json_object_to_json_string(o), NULL);
  assert_non_null(back);
  assert_int_equal(back->n_mounts, 2);
  assert_string_equal(back->mounts[1].host, "/srv/b,c");
  assert_string_equal(back->mounts[1].guest, "/b");
  json_object_put(o);
  struct json_object *info = vm_mounts_info(s);
  assert_string_equal(
      json_object_get_string(json_object_object_get(json_object_array_get_idx(info, 1), "tag")),
      "qvm1");
  json_object_put(info);
  vm_spec_free(back);
  vm_spec_free(s);

  const char *bad[] = {
      "{\"mounts\":{}}",
      "{\"mounts\":[1]}",
      "{\"mounts\":[{\"host\":\"srv\",\"guest\":\"/a\"}]}",
      "{\"mounts\":[{\"host\":\"/\",\"guest\":\"/a\"}]}",
      "{\"mounts\":[{\"host\":\"/srv\\u0000x\",\"guest\":\"/a\"}]}",
      "{\"mounts\":[{\"host\":\"/srv\\nx\",\"guest\":\"/a\"}]}",
      "{\"mounts\":[{\"host\":\"/srv\",\"guest\":\"/a; reboot\"}]}",
      "{\"mounts\":[{\"host\":\"/srv\",\"guest\":\"/a/../../etc\"}]}",
      "{\"mounts\":[{\"host\":\"/srv\",\"guest\":\"/a\",\"readonly\":\"yes\"}]}",
      "{\"mounts\":[{\"host\":\"/srv\",\"guest\":\"/a\"},{\"host\":\"/srv\",\"guest\":\"/a\"}]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    qvm_error *err = NULL;
    if (from_json_text(bad[i], &err)) fail_msg("accepted: %s", bad[i]);
    assert_non_null(err);
    qvm_error_free(err);
  }
  /* At most 16. */
  char many[4096] = "{\"mounts\":[";
  for (int i = 0; i <= QVM_VM_MOUNTS_MAX; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many),
             "%s{\"host\":\"/srv\",\"guest\":\"/g%d\"}", i ? "," : "", i);
  strcat(many, "]}");
  qvm_error *err = NULL;
  assert_null(from_json_text(many, &err));
  qvm_error_free(err);
}

static void test_bootcmd(void **state) {
  (void)state;
  vm_spec *s = from_json_text("{\"mounts\":[{\"host\":\"/srv/a\",\"guest\":\"/work\"},"
                              "{\"host\":\"/srv/b\",\"guest\":\"/ro\",\"readonly\":true}]}",
                              NULL);
  assert_non_null(s);
  char **lines = NULL;
  assert_int_equal(vm_mount_bootcmd(&lines, s, NULL), 0);
  assert_non_null(lines[0]);
  assert_non_null(lines[1]);
  assert_null(lines[2]);
  assert_non_null(strstr(lines[0], "'qvm0 /work 9p trans=virtio,version=9p2000.L,msize=131072,"
                                   "nosuid,nodev,nofail 0 0' >> /etc/fstab"));
  assert_non_null(strstr(lines[0], "mountpoint -q '/work' || mount '/work'"));
  assert_non_null(strstr(lines[1], "'qvm1 /ro 9p trans=virtio,version=9p2000.L,msize=131072,"
                                   "nosuid,nodev,nofail,ro 0 0'"));
  assert_null(strstr(lines[0], "/srv/a")); /* the host path never reaches the guest */
  vm_mount_bootcmd_free(lines);
  vm_spec_free(s);
}

/* The transport: QVM_MOUNT_TRANSPORT picks it (else virtiofsd's presence),
 * vm.json records it ("transport"; absent: 9p; anything else refused),
 * info shows it, the fstab line has its type, and a virtiofs mount is
 * refused when QEMU (so virtiofsd) would keep root. */
static void test_transport(void **state) {
  (void)state;
  char *dir = dir_in("vfs");
  vm_spec s = {0};
  qvm_error *err = NULL;
  assert_int_equal(setenv("QVM_MOUNT_TRANSPORT", "nfs", 1), 0);
  assert_int_equal(set_one(&s, dir, "/v", false, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "QVM_MOUNT_TRANSPORT"));
  qvm_error_free(err);
  err = NULL;
  assert_int_equal(setenv("QVM_MOUNT_TRANSPORT", "virtiofs", 1), 0);
  assert_int_equal(setenv("QVM_VIRTIOFSD", "/nonexistent/virtiofsd", 1), 0);
  assert_int_equal(set_one(&s, dir, "/v", false, &err), QVM_ESYS);
  assert_non_null(strstr(qvm_error_message(err), "/nonexistent/virtiofsd"));
  qvm_error_free(err);
  err = NULL;
  /* without virtiofsd the default is 9p */
  assert_int_equal(unsetenv("QVM_MOUNT_TRANSPORT"), 0);
  assert_int_equal(set_one(&s, dir, "/v", false, NULL), 0);
  assert_false(s.mounts[0].virtiofs);
  vm_spec_mounts_clear(&s);
  /* an explicit transport (a clone keeps its source's) wins over the
   * default; an unknown one is refused */
  qvm_vm_mount ex[] = {{.host = dir, .guest = "/e", .transport = QVM_VM_MOUNT_VIRTIOFS},
                       {.host = dir, .guest = "/f", .transport = QVM_VM_MOUNT_9P}};
  assert_int_equal(vm_spec_set_mounts(&s, ex, 2, NULL), 0);
  assert_true(s.mounts[0].virtiofs);
  assert_false(s.mounts[1].virtiofs);
  vm_spec_mounts_clear(&s);
  ex[0].transport = (qvm_vm_mount_transport)7;
  assert_int_equal(vm_spec_set_mounts(&s, ex, 1, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "transport"));
  qvm_error_free(err);
  err = NULL;
  assert_int_equal(s.n_mounts, 0);
  assert_int_equal(setenv("QVM_VIRTIOFSD", "/bin/true", 1), 0);
  assert_int_equal(set_one(&s, dir, "/v", false, NULL), 0);
  assert_int_equal(set_one(&s, dir, "/r", true, NULL), 0);
  assert_true(s.mounts[0].virtiofs && s.mounts[1].virtiofs);
  if (geteuid() == 0) {
    assert_int_equal(vm_mounts_verify(&s, NULL, &err), QVM_EPERM);
    assert_non_null(strstr(qvm_error_message(err), "virtiofsd would run as root"));
    qvm_error_free(err);
    err = NULL;
  }
  char **lines = NULL;
  assert_int_equal(vm_mount_bootcmd(&lines, &s, NULL), 0);
  assert_non_null(strstr(lines[0], "'qvm0 /v virtiofs nosuid,nodev,nofail 0 0'"));
  assert_non_null(strstr(lines[1], "'qvm1 /r virtiofs nosuid,nodev,nofail,ro 0 0'"));
  vm_mount_bootcmd_free(lines);
  struct json_object *o = json_object_new_object();
  vm_mounts_to_json(o, &s);
  assert_non_null(strstr(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                         "\"transport\":\"virtiofs\""));
  vm_spec *back = from_json_text(json_object_to_json_string(o), NULL);
  assert_non_null(back);
  assert_true(back->mounts[0].virtiofs && back->mounts[1].virtiofs);
  struct json_object *info = vm_mounts_info(back);
  assert_string_equal(json_object_get_string(
                          json_object_object_get(json_object_array_get_idx(info, 1), "transport")),
                      "virtiofs");
  json_object_put(info);
  vm_spec_free(back);
  json_object_put(o);
  vm_spec_mounts_clear(&s);
  back = from_json_text("{\"mounts\":[{\"host\":\"/srv/a\",\"guest\":\"/a\"},"
                        "{\"host\":\"/srv/b\",\"guest\":\"/b\",\"transport\":\"9p\"}]}",
                        NULL);
  assert_non_null(back);
  assert_false(back->mounts[0].virtiofs || back->mounts[1].virtiofs); /* old records: 9p */
  vm_spec_free(back);
  const char *bad[] = {"\"nfs\"", "1", "null", "\"virtiofs\\u0000\""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char text[160];
    snprintf(text, sizeof text,
             "{\"mounts\":[{\"host\":\"/srv/a\",\"guest\":\"/a\",\"transport\":%s}]}", bad[i]);
    assert_null(from_json_text(text, &err));
    assert_non_null(strstr(qvm_error_message(err), "transport"));
    qvm_error_free(err);
    err = NULL;
  }
  assert_int_equal(unsetenv("QVM_VIRTIOFSD"), 0);
  assert_int_equal(setenv("QVM_MOUNT_TRANSPORT", "9p", 1), 0);
  free(dir);
}

int main(void) {
  /* the tests above the transport's are 9p's, whatever the host has */
  setenv("QVM_MOUNT_TRANSPORT", "9p", 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),     cmocka_unit_test(test_host_checks),
      cmocka_unit_test(test_verify),    cmocka_unit_test(test_verify_runas),
      cmocka_unit_test(test_json),      cmocka_unit_test(test_bootcmd),
      cmocka_unit_test(test_transport),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
