/* SPDX-License-Identifier: MIT */
/* diff/: the MBR/GPT parse (a guest wrote the table), the comparison of two
 * walked trees and the ignore globs; pure, no disk. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "diff/compare.h"
#include "diff/part.h"
#include "diff/walk.h"
#include "vm/handle.h"
#include "vm/state.h"

#define DISK (64u << 20)

typedef struct img {
  uint8_t *b;
  size_t n;
} img;

static int img_read(void *ctx, void *buf, uint32_t len, uint64_t off) {
  img *m = ctx;
  if (off > m->n || len > m->n - off) return -1;
  memcpy(buf, m->b + off, len);
  return 0;
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

static void ext_at(img *m, uint64_t off) {
  m->b[off + 1024 + 56] = 0x53;
  m->b[off + 1024 + 57] = 0xEF;
}

static void mbr_entry(img *m, int i, uint8_t type, uint32_t start, uint32_t n) {
  uint8_t *e = m->b + 446 + 16 * i;
  e[4] = type;
  put32(e + 8, start);
  put32(e + 12, n);
  m->b[510] = 0x55;
  m->b[511] = 0xAA;
}

static img *img_new(void) {
  img *m = calloc(1, sizeof *m);
  m->n = DISK;
  m->b = calloc(1, DISK);
  assert_non_null(m->b);
  return m;
}
static void img_free(img *m) {
  free(m->b);
  free(m);
}

static void test_whole_disk(void **state) {
  (void)state;
  img *m = img_new();
  ext_at(m, 0);
  diff_part p;
  qvm_error *err = NULL;
  assert_int_equal(diff_part_find_ext(&p, img_read, m, m->n, &err), 0);
  assert_int_equal(p.index, 0);
  assert_int_equal(p.offset, 0);
  img_free(m);
}

static void test_mbr_largest_ext(void **state) {
  (void)state;
  img *m = img_new();
  mbr_entry(m, 0, 0x83, 2048, 4096);   /* ext, 2 MiB */
  mbr_entry(m, 1, 0x83, 8192, 32768);  /* ext, 16 MiB: the root */
  mbr_entry(m, 2, 0x83, 65536, 40000); /* no file system */
  ext_at(m, 2048 * 512ull);
  ext_at(m, 8192 * 512ull);
  diff_part p;
  qvm_error *err = NULL;
  assert_int_equal(diff_part_find_ext(&p, img_read, m, m->n, &err), 0);
  assert_int_equal(p.index, 2);
  assert_int_equal(p.offset, 8192 * 512ull);
  assert_int_equal(p.size, 32768 * 512ull);
  img_free(m);
}

static void test_mbr_outside_disk(void **state) {
  (void)state;
  img *m = img_new();
  mbr_entry(m, 0, 0x83, 2048, 0xFFFFFFF0u);
  qvm_error *err = NULL;
  diff_part p;
  assert_int_equal(diff_part_find_ext(&p, img_read, m, m->n, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "outside the disk"));
  qvm_error_free(err);
  img_free(m);
}

static void gpt(img *m, uint64_t entries_lba, uint32_t n, uint32_t esize) {
  mbr_entry(m, 0, 0xEE, 1, DISK / 512 - 1);
  uint8_t *h = m->b + 512;
  memcpy(h, "EFI PART", 8);
  put64(h + 72, entries_lba);
  put32(h + 80, n);
  put32(h + 84, esize);
}

static void test_gpt(void **state) {
  (void)state;
  img *m = img_new();
  gpt(m, 2, 128, 128);
  uint8_t *e = m->b + 1024 + 128 * 3; /* entry 4 */
  memset(e, 0xAB, 16);                /* a type guid */
  put64(e + 32, 4096);
  put64(e + 40, 4096 + 20479);
  ext_at(m, 4096 * 512ull);
  diff_part p;
  qvm_error *err = NULL;
  assert_int_equal(diff_part_find_ext(&p, img_read, m, m->n, &err), 0);
  assert_int_equal(p.index, 4);
  assert_int_equal(p.size, 20480 * 512ull);
  img_free(m);
}

static void test_gpt_hostile(void **state) {
  (void)state;
  struct {
    uint64_t lba;
    uint32_t n, esize;
    uint64_t first, last;
    const char *msg;
  } cases[] = {
      {2, 128, 100, 0, 0, "entry size"},
      {2, 128, 1u << 20, 0, 0, "entry size"},
      {DISK / 512 + 5, 4, 128, 0, 0, "outside the disk"},
      {2, 4, 128, 5000, 4000, "ends before"},
      {2, 4, 128, 4096, UINT64_MAX - 1, "outside the disk"},
      {2, 0xFFFFFFFFu, 4096, 0, 0, "no ext2/3/4"}, /* n bounded, nothing found */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    img *m = img_new();
    gpt(m, cases[i].lba, cases[i].n, cases[i].esize);
    if (cases[i].first || cases[i].last) {
      uint8_t *e = m->b + 1024;
      memset(e, 0xAB, 16);
      put64(e + 32, cases[i].first);
      put64(e + 40, cases[i].last);
    }
    diff_part p;
    qvm_error *err = NULL;
    assert_int_equal(diff_part_find_ext(&p, img_read, m, m->n, &err), QVM_EINVAL);
    if (!strstr(qvm_error_message(err), cases[i].msg))
      fail_msg("case %zu: '%s' lacks '%s'", i, qvm_error_message(err), cases[i].msg);
    qvm_error_free(err);
    img_free(m);
  }
}

static void test_no_fs(void **state) {
  (void)state;
  img *m = img_new();
  qvm_error *err = NULL;
  diff_part p;
  assert_int_equal(diff_part_find_ext(&p, img_read, m, m->n, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "no ext2/3/4 file system"));
  qvm_error_free(err);
  img_free(m);
}

static diff_entry ent(const char *path, char type, uint32_t mode, uint64_t size, uint8_t fill) {
  diff_entry e = {.path = (char *)path,
                  .path_len = (uint32_t)strlen(path),
                  .type = type,
                  .mode = mode,
                  .size = size};
  memset(e.sha, fill, sizeof e.sha); /* what the fake hash "reads" */
  return e;
}

static int hashes;
static int fake_hash(void *ctx, int side, diff_entry *e, qvm_error **err) {
  (void)ctx, (void)side, (void)err;
  if (!e->hashed) hashes++; /* as diff_fs_hash: a file is read once */
  e->hashed = true;
  return 0;
}

static void test_compare(void **state) {
  (void)state;
  diff_entry a[] = {
      ent("/", 'd', 0755, 4096, 0),      ent("/etc", 'd', 0755, 4096, 0),
      ent("/etc/gone", 'f', 0644, 3, 1), ent("/etc/mode", 'f', 0644, 3, 1),
      ent("/etc/same", 'f', 0644, 3, 7), ent("/etc/samesize", 'f', 0644, 3, 1),
      ent("/etc/size", 'f', 0644, 3, 1), ent("/link", 'l', 0777, 4, 0),
      ent("/x", 'f', 0644, 1, 0),
  };
  a[7].target = "/abc";
  a[7].target_len = 4;
  diff_entry b[] = {
      ent("/", 'd', 0700, 8192, 0),
      ent("/etc", 'd', 0755, 8192, 0), /* a directory's size is not a change */
      ent("/etc/mode", 'f', 0600, 3, 1),
      ent("/etc/new", 'f', 0644, 3, 1),
      ent("/etc/same", 'f', 0644, 3, 7),
      ent("/etc/samesize", 'f', 0644, 3, 2),
      ent("/etc/size", 'f', 0644, 4, 1),
      ent("/link", 'l', 0777, 4, 0),
      ent("/x", 'l', 0777, 1, 0),
  };
  b[5].uid = 1000;
  b[7].target = "/abd";
  b[7].target_len = 4;
  b[8].target = "y";
  b[8].target_len = 1;
  diff_tree ta = {.e = a, .n = 9}, tb = {.e = b, .n = 9};
  diff_change *c = NULL;
  size_t n = 0;
  qvm_error *err = NULL;
  hashes = 0;
  assert_int_equal(diff_compare(&c, &n, &ta, &tb, fake_hash, NULL, &err), 0);
  struct {
    qvm_diff_kind kind;
    const char *path;
    unsigned what;
  } want[] = {
      {QVM_DIFF_MODIFIED, "/", QVM_DIFF_MODE},
      {QVM_DIFF_DELETED, "/etc/gone", 0},
      {QVM_DIFF_MODIFIED, "/etc/mode", QVM_DIFF_MODE},
      {QVM_DIFF_ADDED, "/etc/new", 0},
      {QVM_DIFF_MODIFIED, "/etc/samesize", QVM_DIFF_CONTENT | QVM_DIFF_OWNER},
      {QVM_DIFF_MODIFIED, "/etc/size", QVM_DIFF_CONTENT},
      {QVM_DIFF_MODIFIED, "/link", QVM_DIFF_TARGET},
      {QVM_DIFF_MODIFIED, "/x", QVM_DIFF_TYPE | QVM_DIFF_MODE},
  };
  assert_int_equal(n, sizeof want / sizeof want[0]);
  for (size_t i = 0; i < n; i++) {
    const diff_entry *e = c[i].to ? c[i].to : c[i].from;
    assert_string_equal(e->path, want[i].path);
    assert_int_equal(c[i].kind, want[i].kind);
    assert_int_equal(c[i].what, want[i].what);
  }
  /* Hashed: both sides of mode, same, samesize (6); new (1); size's new side (1). */
  assert_int_equal(hashes, 8);
  free(c);
}

static void test_unhashable_is_changed(void **state) {
  (void)state;
  diff_entry a[] = {ent("/sparse", 'f', 0644, 1ull << 50, 0)};
  diff_entry b[] = {ent("/sparse", 'f', 0644, 1ull << 50, 0)};
  b[0].unhashable = true;
  diff_tree ta = {.e = a, .n = 1}, tb = {.e = b, .n = 1};
  diff_change *c = NULL;
  size_t n = 0;
  qvm_error *err = NULL;
  assert_int_equal(diff_compare(&c, &n, &ta, &tb, fake_hash, NULL, &err), 0);
  assert_int_equal(n, 1);
  assert_int_equal(c[0].what, QVM_DIFF_CONTENT);
  free(c);
}

static void test_ignore(void **state) {
  (void)state;
  const char *g[] = {"/var/log", "/etc/ssh/ssh_host_*", "/srv/*.tmp"};
  assert_true(diff_ignored("/var/log", g, 3));
  assert_false(diff_ignored("/var/log2", g, 3));
  assert_false(diff_ignored("/var", g, 3));
  assert_true(diff_ignored("/etc/ssh/ssh_host_ed25519_key", g, 3));
  assert_false(diff_ignored("/etc/ssh/sshd_config", g, 3));
  assert_true(diff_ignored("/srv/b.tmp", g, 3));
  assert_false(diff_ignored("/srv/a/b.tmp", g, 3)); /* '*' stops at '/' (FNM_PATHNAME) */
  const char *const *d = qvm_diff_default_ignore();
  size_t n = 0;
  while (d[n]) n++;
  assert_true(diff_ignored("/etc/machine-id", (const char *const *)d, n));
  assert_true(diff_ignored("/var/lib/cloud/instances", (const char *const *)d, n));
  assert_false(diff_ignored("/etc/passwd", (const char *const *)d, n));
  /* packages are read from dpkg's status on their own; apt's state is noise */
  assert_true(diff_ignored("/var/lib/dpkg", (const char *const *)d, n));
  assert_true(diff_ignored("/var/lib/apt", (const char *const *)d, n));
  assert_true(diff_ignored("/var/cache", (const char *const *)d, n));
  assert_true(diff_ignored("/var/log", (const char *const *)d, n));
  assert_false(diff_ignored("/var/lib/dpkg-extra", (const char *const *)d, n));
  /* what runs as root at boot, or redirects the guest, is never noise
   * (hostile review: these were hidden by the default list) */
  assert_false(diff_ignored("/var/lib/cloud", (const char *const *)d, n));
  assert_false(diff_ignored("/var/lib/cloud/scripts", (const char *const *)d, n));
  assert_false(diff_ignored("/var/lib/cloud/scripts/per-boot", (const char *const *)d, n));
  assert_false(diff_ignored("/etc/resolv.conf", (const char *const *)d, n));
  assert_false(diff_ignored("/boot/grub/grubenv", (const char *const *)d, n));
  assert_false(diff_ignored("/var/lib/systemd/linger", (const char *const *)d, n));
}

/* A fake guest agent on a UNIX socket, for one connection: answers the
 * sync with its id, then the command as `mode` says ("ok", "error",
 * "silent"); exits 3 when the command is not the one expected. */
static void fake_agent(int lfd, const char *mode, const char *want) {
  int c = accept(lfd, NULL, NULL);
  if (c < 0) _exit(2);
  char buf[4096];
  size_t len = 0;
  unsigned id = 0;
  bool synced = false;
  for (;;) {
    ssize_t n = read(c, buf + len, sizeof buf - 1 - len);
    if (n <= 0) _exit(synced ? 0 : 2);
    len += (size_t)n;
    buf[len] = '\0';
    char *nl;
    while ((nl = strchr(buf, '\n'))) {
      *nl = '\0';
      char out[256];
      if (!synced) {
        if (!strcmp(mode, "nosync")) {
          pause();
          _exit(0);
        }
        const char *at = strstr(buf, "\"id\":");
        if (!at) _exit(2);
        id = (unsigned)strtoul(at + 5, NULL, 10);
        /* noise first, as an agent may send it; then the delimiter */
        int k = snprintf(out, sizeof out, "{\"junk\": 1}\n\xff{\"return\": %u}\n", id);
        if (write(c, out, (size_t)k) != k) _exit(2);
        synced = true;
      } else {
        if (strcmp(buf, want)) _exit(3);
        const char *reply = !strcmp(mode, "ok") ? "{\"return\": 1}\n"
                            : !strcmp(mode, "error")
                                ? "{\"error\": {\"class\": \"GenericError\"}}\n"
                                : NULL;
        if (!reply) {
          pause();
          _exit(0);
        }
        if (write(c, reply, strlen(reply)) < 0) _exit(2);
      }
      len -= (size_t)(nl + 1 - buf);
      memmove(buf, nl + 1, len + 1);
    }
  }
}

static int run_qga(const char *mode, int timeout_ms) {
  char dir[] = "/tmp/qvm-qga-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/qga.sock", dir);
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(lfd, 1), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) fake_agent(lfd, mode, "{\"execute\":\"guest-fsfreeze-freeze\"}");
  close(lfd);
  vm_paths p = {.qga_sock = path};
  qvm_error *err = NULL;
  int r = vm_qga_command(&p, "guest-fsfreeze-freeze", timeout_ms, &err);
  qvm_error_free(err);
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  if (WIFEXITED(st)) assert_int_not_equal(WEXITSTATUS(st), 3); /* the command as sent */
  unlink(path);
  rmdir(dir);
  return r;
}

/* The freeze of a running vm's diff: the agent's answer, its refusal, its
 * silence (bounded), a socket with no agent behind it, no socket. */
static void test_qga_command(void **state) {
  (void)state;
  assert_int_equal(run_qga("ok", 5000), 0);
  assert_int_equal(run_qga("error", 5000), QVM_EPROTO);
  assert_int_equal(run_qga("silent", 300), QVM_ETIMEOUT);
  assert_int_equal(run_qga("nosync", 300), QVM_EUNAVAIL); /* no agent in the guest */
  vm_paths none = {.qga_sock = "/nonexistent/qga.sock"};
  assert_true(vm_qga_command(&none, "guest-fsfreeze-thaw", 300, NULL) < 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whole_disk),       cmocka_unit_test(test_mbr_largest_ext),
      cmocka_unit_test(test_mbr_outside_disk), cmocka_unit_test(test_gpt),
      cmocka_unit_test(test_gpt_hostile),      cmocka_unit_test(test_no_fs),
      cmocka_unit_test(test_compare),          cmocka_unit_test(test_unhashable_is_changed),
      cmocka_unit_test(test_ignore),           cmocka_unit_test(test_qga_command),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
