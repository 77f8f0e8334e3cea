/* SPDX-License-Identifier: MIT */
/*
 * img_fetch / img_fetch_small / img_url_filename (image/fetch.h).
 *   test_image_fetch unit     no server: names, local paths, file:// urls
 *   test_image_fetch server   tests/image/http_server.py with injected
 *                             faults, plus a raw socket server for replies
 *                             http_server.py cannot send
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/fetch.h"
#include "testlib.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"

#define MIB (1024u * 1024u)
#define BIG_SIZE (8u * MIB)

static char *dir;     /* scratch: part and out files */
static char *srv_dir; /* what http_server.py serves */
static pid_t srv_pid = -1;
static int srv_port;

/* ---- helpers ---- */

static char *path_in(const char *d, const char *name) {
  char *p = NULL;
  assert_true(asprintf(&p, "%s/%s", d, name) > 0);
  return p;
}

static char *url_of(const char *name) {
  char *u = NULL;
  assert_true(asprintf(&u, "http://127.0.0.1:%d/%s", srv_port, name) > 0);
  return u;
}

static bool exists(const char *p) { return access(p, F_OK) == 0; }

static uint64_t file_size(const char *p) {
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  return (uint64_t)st.st_size;
}

static void file_sha256(char hex[65], const char *p) {
  char *out = qvm_test_sh_output("sha256sum '%s' | cut -d' ' -f1", p);
  assert_non_null(out);
  assert_int_equal(strlen(out), 64);
  memcpy(hex, out, 65);
  free(out);
}

static void write_random(const char *p, size_t size) {
  unsigned char *buf = malloc(size);
  assert_non_null(buf);
  randombytes_buf(buf, size);
  assert_int_equal(qvm_write_file_atomic(p, buf, size, 0644, NULL), 0);
  free(buf);
}

/* A disk image of random and zero stretches (compressible, not trivially). */
static void write_disk(const char *p) {
  size_t size = 3 * MIB;
  unsigned char *buf = calloc(1, size);
  assert_non_null(buf);
  for (size_t off = 0; off < size; off += 256 * 1024) randombytes_buf(buf + off, 64 * 1024);
  assert_int_equal(qvm_write_file_atomic(p, buf, size, 0644, NULL), 0);
  free(buf);
}

static void remove_outputs(const char *part, const char *out) {
  unlink(part);
  unlink(out);
}

/* Fresh part/out paths in the scratch dir. */
static void scratch(char **part, char **out, const char *tag) {
  char name[64];
  snprintf(name, sizeof(name), "%s.part", tag);
  *part = path_in(dir, name);
  snprintf(name, sizeof(name), "%s.out", tag);
  *out = path_in(dir, name);
  remove_outputs(*part, *out);
}

static img_fetch_opts opts_for(const char *source, const char *part, const char *out) {
  img_fetch_opts o = {.source = source,
                      .part_path = part,
                      .out_path = out,
                      .connect_timeout_ms = 5000,
                      .stall_timeout_ms = 10000,
                      .backoff_ms = 20};
  return o;
}

static void assert_same_file(const char *a, const char *b) {
  assert_int_equal(qvm_test_sh("cmp -s '%s' '%s'", a, b), 0);
}

static void ctl(const char *fmt, ...) QVM_PRINTF(1, 2);
static void ctl(const char *fmt, ...) {
  char q[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof(q), fmt, ap);
  va_end(ap);
  char *url = NULL;
  assert_true(asprintf(&url, "http://127.0.0.1:%d/_ctl/%s", srv_port, q) > 0);
  char *body = NULL;
  qvm_error *e = NULL;
  int r = img_fetch_small(&body, NULL, url, 1 << 20, 5000, &e);
  if (r < 0) fail_msg("control %s: %s", q, qvm_error_message(e));
  assert_non_null(strstr(body, "ok"));
  free(body);
  free(url);
}

static char *server_log(void) {
  char *url = NULL, *body = NULL;
  assert_true(asprintf(&url, "http://127.0.0.1:%d/_ctl/log", srv_port) > 0);
  assert_int_equal(img_fetch_small(&body, NULL, url, 16 << 20, 5000, NULL), 0);
  free(url);
  return body;
}

typedef struct progress_log {
  unsigned calls, connect, download, retry, decompress;
  uint64_t last_done;
  bool monotonic_ok;
} progress_log;

static void on_progress(const img_progress *p, void *ud) {
  progress_log *l = ud;
  l->calls++;
  if (!strcmp(p->phase, "connect")) l->connect++;
  if (!strcmp(p->phase, "download")) l->download++;
  if (!strcmp(p->phase, "retry")) {
    l->retry++;
    assert_non_null(p->note);
  }
  if (!strcmp(p->phase, "decompress")) l->decompress++;
  assert_true(p->attempt >= 1);
}

/* ---- unit: no server ---- */

/* A cancel hook that says yes from the start: a local source is not read,
 * nothing is left, the error is ECANCELED with class "Cancelled". */
static bool always(void *ud) {
  (*(unsigned *)ud)++;
  return true;
}

static void test_local_cancel(void **state) {
  (void)state;
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "lcancel");
  _cleanup_free_ char *raw = path_in(dir, "cdisk.raw");
  write_disk(raw);
  img_fetch_opts o = opts_for(raw, part, out);
  unsigned polls = 0;
  o.cancelled = always;
  o.cancel_userdata = &polls;
  img_fetch_result r;
  qvm_error *e = NULL;
  assert_int_equal(img_fetch(&r, &o, &e), QVM_ESYS);
  assert_int_equal(qvm_error_errno(e), ECANCELED);
  assert_string_equal(qvm_error_class(e), "Cancelled");
  assert_non_null(strstr(qvm_error_message(e), "cancelled"));
  qvm_error_free(e);
  assert_true(polls >= 1);
  assert_false(exists(out));
  assert_false(exists(part));
  unlink(raw);
}

static void test_url_filename(void **state) {
  (void)state;
  static const struct {
    const char *url, *name;
  } cases[] = {
      {"https://cloud.debian.org/images/debian-12-genericcloud-amd64.qcow2",
       "debian-12-genericcloud-amd64.qcow2"},
      {"https://h/a/b/disk.img?x=1&y=/z#frag", "disk.img"},
      {"https://h/a/my%20disk.raw.xz", "my disk.raw.xz"},
      {"http://user:pw@h:8080/x.img#f/g", "x.img"},
      {"https://h/a/b/", NULL},
      {"https://h", NULL},
      {"https://h?x=/y.img", NULL},
      {"https://h/a%2Fb", NULL}, /* a decoded slash is no file name */
      {"https://h/a%00b", NULL},
      {"https://h/%zz.img", "%zz.img"},
      {"https://h/..", NULL},
      {"/var/tmp/local.qcow2", "local.qcow2"},
      {"file:///srv/img/x.raw", "x.raw"},
      {"", NULL},
  };
  for (size_t i = 0; i < QVM_ARRAY_SIZE(cases); i++) {
    char *got = img_url_filename(cases[i].url);
    if (!cases[i].name) {
      if (got) fail_msg("%s: expected NULL, got '%s'", cases[i].url, got);
    } else {
      if (!got || strcmp(got, cases[i].name))
        fail_msg("%s: expected '%s', got '%s'", cases[i].url, cases[i].name, got ? got : "NULL");
    }
    free(got);
  }
}

static void test_local_plain(void **state) {
  (void)state;
  _cleanup_free_ char *src = path_in(dir, "local.bin");
  write_random(src, 300000);
  char want[65];
  file_sha256(want, src);
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "local");
  img_fetch_opts o = opts_for(src, part, out);
  progress_log pl = {0};
  o.progress = on_progress;
  o.userdata = &pl;
  img_fetch_result r;
  qvm_error *e = NULL;
  int rc = img_fetch(&r, &o, &e);
  if (rc < 0) fail_msg("%s", qvm_error_message(e));
  assert_string_equal(r.sha256, want);
  assert_string_equal(r.content_sha256, want);
  assert_string_equal(r.compression, "none");
  assert_string_equal(r.sha512, "");
  assert_int_equal(r.size, 300000);
  assert_int_equal(r.transferred, 300000);
  assert_int_equal(r.content_size, 300000);
  assert_null(r.final_url);
  assert_null(r.tar_member);
  assert_same_file(src, out);
  assert_true(exists(src)); /* a local source is read, never moved */
  assert_false(exists(part));
  struct stat st;
  assert_int_equal(stat(out, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_true(pl.download >= 1);
  img_fetch_result_clear(&r);

  /* the same as a file:// url, percent-encoded */
  _cleanup_free_ char *spaced = path_in(dir, "lo cal.bin");
  assert_int_equal(rename(src, spaced), 0);
  _cleanup_free_ char *url = NULL;
  assert_true(asprintf(&url, "file://%s/lo%%20cal.bin", dir) > 0);
  unlink(out);
  o = opts_for(url, part, out);
  rc = img_fetch(&r, &o, &e);
  if (rc < 0) fail_msg("%s", qvm_error_message(e));
  assert_string_equal(r.sha256, want);
  img_fetch_result_clear(&r);
  unlink(spaced);
  unlink(out);
}

static void test_local_errors(void **state) {
  (void)state;
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "lerr");
  _cleanup_free_ char *missing = path_in(dir, "nope.img");
  img_fetch_opts o = opts_for(missing, part, out);
  img_fetch_result r;
  qvm_error *e = NULL;
  assert_int_equal(img_fetch(&r, &o, &e), QVM_ENOTFOUND);
  assert_non_null(strstr(qvm_error_message(e), "nope.img"));
  qvm_error_free(e), e = NULL;
  assert_false(exists(out));

  o.source = "ftp://example.com/x.img";
  assert_int_equal(img_fetch(&r, &o, &e), QVM_EINVAL);
  qvm_error_free(e), e = NULL;
  o.source = "relative/x.img";
  assert_int_equal(img_fetch(&r, &o, &e), QVM_EINVAL);
  qvm_error_free(e), e = NULL;
  o.source = "file://otherhost/x.img";
  assert_int_equal(img_fetch(&r, &o, &e), QVM_EINVAL);
  qvm_error_free(e), e = NULL;
  o.source = dir; /* a directory */
  assert_int_equal(img_fetch(&r, &o, &e), QVM_EINVAL);
  qvm_error_free(e), e = NULL;
  assert_false(exists(out));

  /* img_fetch_small: local file, size cap, missing */
  _cleanup_free_ char *sums = path_in(dir, "SHA256SUMS");
  const char text[] = "abc  disk.img\n";
  assert_int_equal(qvm_write_file_atomic(sums, text, strlen(text), 0644, NULL), 0);
  char *body = NULL;
  size_t len = 0;
  assert_int_equal(img_fetch_small(&body, &len, sums, 1024, 1000, NULL), 0);
  assert_string_equal(body, text);
  assert_int_equal(len, strlen(text));
  free(body);
  assert_int_equal(img_fetch_small(&body, &len, sums, 4, 1000, &e), QVM_EINVAL);
  qvm_error_free(e), e = NULL;
  assert_int_equal(img_fetch_small(&body, &len, missing, 1024, 1000, &e), QVM_ENOTFOUND);
  qvm_error_free(e), e = NULL;
  unlink(sums);
}

static void test_local_compressed(void **state) {
  (void)state;
  qvm_test_require_program("xz");
  _cleanup_free_ char *raw = path_in(dir, "ldisk.raw");
  write_disk(raw);
  char want[65];
  file_sha256(want, raw);
  assert_int_equal(qvm_test_sh("xz -k -T1 -0 -c '%s' > '%s.xz'", raw, raw), 0);
  _cleanup_free_ char *xz = path_in(dir, "ldisk.raw.xz");
  char want_xz[65];
  file_sha256(want_xz, xz);
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "lxz");
  img_fetch_opts o = opts_for(xz, part, out);
  img_fetch_result r;
  qvm_error *e = NULL;
  int rc = img_fetch(&r, &o, &e);
  if (rc < 0) fail_msg("%s", qvm_error_message(e));
  assert_string_equal(r.compression, "xz");
  assert_string_equal(r.sha256, want_xz);
  assert_string_equal(r.content_sha256, want);
  assert_int_equal(r.content_size, 3 * MIB);
  assert_same_file(raw, out);
  img_fetch_result_clear(&r);
  remove_outputs(part, out);

  /* a truncated xz stream and gzip magic before garbage: broken, not content */
  _cleanup_free_ char *cut = path_in(dir, "cut.xz"), *junk = path_in(dir, "junk.gz");
  assert_int_equal(qvm_test_sh("head -c 50000 '%s' > '%s'", xz, cut), 0);
  assert_int_equal(
      qvm_test_sh("printf '\037\213' > '%s' && head -c 5000 '%s' >> '%s'", junk, raw, junk), 0);
  const char *broken[] = {cut, junk};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(broken); i++) {
    o = opts_for(broken[i], part, out);
    e = NULL;
    assert_int_equal(img_fetch(&r, &o, &e), QVM_EPROTO);
    assert_non_null(strstr(qvm_error_message(e), broken[i]));
    qvm_error_free(e);
    assert_false(exists(out));
  }
  unlink(cut);
  unlink(junk);
  unlink(raw);
  unlink(xz);
}

/* ---- the http_server.py server ---- */

static void start_server(void) {
  if (srv_pid > 0) return;
  qvm_test_require_program("python3");
  _cleanup_free_ char *portfile = path_in(dir, "port");
  _cleanup_free_ char *script = NULL;
  assert_true(asprintf(&script, "%s/tests/image/http_server.py", qvm_test_source_dir()) > 0);
  srv_pid = fork();
  assert_true(srv_pid >= 0);
  if (srv_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* no server outlives a crashed test */
    execlp("python3", "python3", script, srv_dir, portfile, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200 && !exists(portfile); i++) usleep(50000);
  char *text = NULL;
  assert_int_equal(qvm_read_file(&text, NULL, portfile, 64, NULL), 0);
  srv_port = atoi(text);
  free(text);
  assert_true(srv_port > 0);
}

static int server_setup(void **state) {
  (void)state;
  /* the local server is reached directly, whatever proxy the caller set */
  unsetenv("http_proxy"), unsetenv("HTTP_PROXY"), unsetenv("https_proxy");
  unsetenv("HTTPS_PROXY"), unsetenv("all_proxy"), unsetenv("ALL_PROXY");
  srv_dir = qvm_test_mkdtemp("fetch-srv");
  assert_non_null(srv_dir);
  _cleanup_free_ char *big = path_in(srv_dir, "big.bin");
  write_random(big, BIG_SIZE);
  _cleanup_free_ char *raw = path_in(srv_dir, "disk.raw");
  write_disk(raw);
  start_server();
  return 0;
}

static int server_teardown(void **state) {
  (void)state;
  if (srv_pid > 0) {
    kill(srv_pid, SIGTERM);
    waitpid(srv_pid, NULL, 0);
    srv_pid = -1;
  }
  if (srv_dir) qvm_test_rmtree(srv_dir);
  free(srv_dir);
  srv_dir = NULL;
  return 0;
}

static void fetch_ok(img_fetch_result *r, const img_fetch_opts *o) {
  qvm_error *e = NULL;
  int rc = img_fetch(r, o, &e);
  if (rc < 0) fail_msg("img_fetch %s: %s", o->source, qvm_error_message(e));
}

static int fetch_fails(const img_fetch_opts *o, char **msg) {
  img_fetch_result r;
  qvm_error *e = NULL;
  int rc = img_fetch(&r, o, &e);
  assert_true(rc < 0);
  assert_non_null(e);
  if (msg) *msg = strdup(qvm_error_message(e));
  qvm_error_free(e);
  assert_false(exists(o->out_path));
  return rc;
}

static void test_good(void **state) {
  (void)state;
  ctl("clear");
  _cleanup_free_ char *big = path_in(srv_dir, "big.bin"), *url = url_of("big.bin");
  char want[65];
  file_sha256(want, big);
  _cleanup_free_ char *want512 = qvm_test_sh_output("sha512sum '%s' | cut -d' ' -f1", big);
  assert_non_null(want512);
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "good");
  img_fetch_opts o = opts_for(url, part, out);
  o.want_sha512 = true;
  progress_log pl = {0};
  o.progress = on_progress;
  o.userdata = &pl;
  img_fetch_result r;
  fetch_ok(&r, &o);
  assert_string_equal(r.sha256, want);
  assert_string_equal(r.sha512, want512);
  assert_string_equal(r.content_sha256, want);
  assert_string_equal(r.compression, "none");
  assert_int_equal(r.size, BIG_SIZE);
  assert_int_equal(r.transferred, BIG_SIZE);
  assert_int_equal(r.content_size, BIG_SIZE);
  assert_int_equal(r.attempts, 1);
  assert_non_null(r.final_url);
  assert_string_equal(r.final_url, url);
  assert_same_file(big, out);
  assert_false(exists(part));
  struct stat st;
  assert_int_equal(stat(out, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(pl.connect, 1);
  assert_true(pl.download >= 1);
  assert_int_equal(pl.retry, 0);
  img_fetch_result_clear(&r);
  remove_outputs(part, out);
}

typedef struct progress_check {
  unsigned calls, with_rate, with_eta;
  uint64_t last_done, total;
  bool backwards;
} progress_check;

static void check_progress(const img_progress *p, void *ud) {
  progress_check *c = ud;
  c->calls++;
  if (p->done < c->last_done) c->backwards = true;
  c->last_done = p->done;
  if (p->total) c->total = p->total;
  if (p->rate) c->with_rate++;
  if (p->eta_ms >= 0) c->with_eta++;
}

/* A slow download: progress at most ~10 times a second, with a rate and an
 * eta, done never going back. */
static void test_progress(void **state) {
  (void)state;
  ctl("clear");
  _cleanup_free_ char *url = url_of("big.bin");
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "progress");
  ctl("fault?path=/big.bin&mode=slow&rate=%u", 4 * MIB);
  img_fetch_opts o = opts_for(url, part, out);
  progress_check c = {0};
  o.progress = check_progress;
  o.userdata = &c;
  int64_t t0 = qvm_now_ms();
  img_fetch_result r;
  fetch_ok(&r, &o);
  int64_t took = qvm_now_ms() - t0;
  assert_true(took >= 1500);
  assert_true(c.calls >= 5);
  assert_true(c.calls <= (unsigned)(took / 100) + 6); /* + the phase changes */
  assert_false(c.backwards);
  assert_int_equal(c.total, BIG_SIZE);
  assert_true(c.with_rate >= 2);
  assert_true(c.with_eta >= 1);
  img_fetch_result_clear(&r);
  remove_outputs(part, out);
}

static void test_resume_across_calls(void **state) {
  (void)state;
  ctl("clear");
  _cleanup_free_ char *big = path_in(srv_dir, "big.bin"), *url = url_of("big.bin");
  char want[65];
  file_sha256(want, big);
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "resume");
  ctl("fault?path=/big.bin&mode=cut&after=%u", 3 * MIB);
  img_fetch_opts o = opts_for(url, part, out);
  _cleanup_free_ char *msg = NULL;
  assert_int_equal(fetch_fails(&o, &msg), QVM_EPROTO);
  assert_int_equal(file_size(part), 3 * MIB); /* kept for the next call */

  img_fetch_result r;
  fetch_ok(&r, &o);
  assert_string_equal(r.sha256, want);
  assert_int_equal(r.size, BIG_SIZE);
  assert_int_equal(r.transferred, BIG_SIZE - 3 * MIB);
  assert_true(r.transferred < r.size);
  assert_same_file(big, out);
  _cleanup_free_ char *log = server_log();
  assert_non_null(strstr(log, "\"range\": \"bytes=3145728-\""));
  img_fetch_result_clear(&r);
  remove_outputs(part, out);
}

static void test_resume_within_call(void **state) {
  (void)state;
  ctl("clear");
  _cleanup_free_ char *big = path_in(srv_dir, "big.bin"), *url = url_of("big.bin");
  char want[65];
  file_sha256(want, big);
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "resume2");
  ctl("fault?path=/big.bin&mode=cut&after=%u&times=2", 2 * MIB);
  img_fetch_opts o = opts_for(url, part, out);
  o.retries = 3;
  progress_log pl = {0};
  o.progress = on_progress;
  o.userdata = &pl;
  img_fetch_result r;
  fetch_ok(&r, &o);
  assert_int_equal(r.attempts, 3);
  assert_int_equal(pl.retry, 2);
  assert_string_equal(r.sha256, want);
  assert_int_equal(r.transferred, BIG_SIZE);
  assert_same_file(big, out);
  _cleanup_free_ char *log = server_log();
  assert_non_null(strstr(log, "\"range\": \"bytes=2097152-\""));
  assert_non_null(strstr(log, "\"range\": \"bytes=4194304-\""));
  img_fetch_result_clear(&r);
  remove_outputs(part, out);
}

static void test_norange_restarts(void **state) {
  (void)state;
  ctl("clear");
  _cleanup_free_ char *big = path_in(srv_dir, "big.bin"), *url = url_of("big.bin");
  char want[65];
  file_sha256(want, big);
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "norange");
  /* a part whose bytes are wrong: a server ignoring Range must replace them */
  write_random(part, MIB);
  ctl("fault?path=/big.bin&mode=norange");
  img_fetch_opts o = opts_for(url, part, out);
  img_fetch_result r;
  fetch_ok(&r, &o);
  assert_string_equal(r.sha256, want);
  assert_int_equal(r.size, BIG_SIZE);
  assert_int_equal(r.transferred, BIG_SIZE);
  assert_same_file(big, out);
  img_fetch_result_clear(&r);
  remove_outputs(part, out);
}

/* A part that already holds the whole file: the server answers 416. */
static void test_part_complete(void **state) {
  (void)state;
  ctl("clear");
  _cleanup_free_ char *big = path_in(srv_dir, "big.bin"), *url = url_of("big.bin");
  char want[65];
  file_sha256(want, big);
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "whole");
  assert_int_equal(qvm_test_sh("cp '%s' '%s'", big, part), 0);
  img_fetch_opts o = opts_for(url, part, out);
  img_fetch_result r;
  fetch_ok(&r, &o);
  assert_string_equal(r.sha256, want);
  assert_int_equal(r.size, BIG_SIZE);
  assert_int_equal(r.transferred, 0);
  assert_same_file(big, out);
  img_fetch_result_clear(&r);
  remove_outputs(part, out);
}

static void test_http_errors(void **state) {
  (void)state;
  ctl("clear");
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "status");
  _cleanup_free_ char *missing = url_of("missing.img");
  img_fetch_opts o = opts_for(missing, part, out);
  o.retries = 3; /* 404 is final: no retry */
  _cleanup_free_ char *msg = NULL;
  int64_t t0 = qvm_now_ms();
  assert_int_equal(fetch_fails(&o, &msg), QVM_ENOTFOUND);
  assert_non_null(strstr(msg, "404"));
  assert_non_null(strstr(msg, "missing.img"));
  assert_true(qvm_now_ms() - t0 < 2000);

  _cleanup_free_ char *url = url_of("big.bin"), *big = path_in(srv_dir, "big.bin");
  ctl("fault?path=/big.bin&mode=status&code=403");
  o.source = url;
  free(msg), msg = NULL;
  assert_int_equal(fetch_fails(&o, &msg), QVM_EPROTO);
  assert_non_null(strstr(msg, "403"));
  assert_int_equal(file_size(part), 0); /* an error body never lands in the part */

  ctl("fault?path=/big.bin&mode=status&code=500");
  o.retries = 0;
  free(msg), msg = NULL;
  assert_int_equal(fetch_fails(&o, &msg), QVM_EPROTO);
  assert_non_null(strstr(msg, "HTTP 500"));

  ctl("fault?path=/big.bin&mode=status&code=500&times=1");
  o.retries = 2;
  img_fetch_result r;
  fetch_ok(&r, &o);
  assert_int_equal(r.attempts, 2);
  char want[65];
  file_sha256(want, big);
  assert_string_equal(r.sha256, want);
  img_fetch_result_clear(&r);

  ctl("fault?path=/big.bin&mode=status&code=503&times=0");
  o.retries = 2;
  free(msg), msg = NULL;
  assert_int_equal(fetch_fails(&o, &msg), QVM_EPROTO);
  assert_non_null(strstr(msg, "503"));
  ctl("clear");
  remove_outputs(part, out);
}

static void test_stall(void **state) {
  (void)state;
  ctl("clear");
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "stall");
  _cleanup_free_ char *url = url_of("big.bin");
  ctl("fault?path=/big.bin&mode=stall&after=100000");
  img_fetch_opts o = opts_for(url, part, out);
  o.stall_timeout_ms = 1500;
  int64_t t0 = qvm_now_ms();
  _cleanup_free_ char *msg = NULL;
  assert_int_equal(fetch_fails(&o, &msg), QVM_ETIMEOUT);
  int64_t took = qvm_now_ms() - t0;
  assert_true(took >= 1400);
  assert_true(took < 6000);
  assert_non_null(strstr(msg, "1500 ms"));
  assert_int_equal(file_size(part), 100000);
  ctl("clear");
  remove_outputs(part, out);
}

typedef struct cancel_after {
  const char *part;
  uint64_t bytes; /* cancel once the part file holds this many */
  unsigned polls;
} cancel_after;

static bool cancel_when_big(void *ud) {
  cancel_after *c = ud;
  c->polls++;
  return exists(c->part) && file_size(c->part) >= c->bytes;
}

/* A slow download cancelled midway: it stops within a moment (not at the
 * end of the file, nor at the stall timeout), fails ECANCELED "Cancelled",
 * and removes its part file (a cancelled download is not resumed). */
static void test_cancel(void **state) {
  (void)state;
  ctl("clear");
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "cancel");
  _cleanup_free_ char *url = url_of("big.bin");
  ctl("fault?path=/big.bin&mode=slow&rate=200000&times=0");
  img_fetch_opts o = opts_for(url, part, out);
  o.retries = 3;
  cancel_after c = {.part = part, .bytes = 100000};
  o.cancelled = cancel_when_big;
  o.cancel_userdata = &c;
  int64_t t0 = qvm_now_ms();
  img_fetch_result r;
  qvm_error *e = NULL;
  assert_int_equal(img_fetch(&r, &o, &e), QVM_ESYS);
  int64_t took = qvm_now_ms() - t0;
  assert_int_equal(qvm_error_errno(e), ECANCELED);
  assert_string_equal(qvm_error_class(e), "Cancelled");
  qvm_error_free(e);
  assert_true(took < 5000); /* 8 MiB at 200 kB/s would take 40 s */
  assert_true(c.polls >= 2);
  assert_false(exists(part));
  assert_false(exists(out));
  ctl("clear");
}

static void test_redirects(void **state) {
  (void)state;
  ctl("clear");
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "redir");
  _cleanup_free_ char *target = url_of("big.bin"), *from = url_of("old.bin");
  ctl("fault?path=/old.bin&mode=redirect&to=%s", target);
  img_fetch_opts o = opts_for(from, part, out);
  img_fetch_result r;
  fetch_ok(&r, &o);
  assert_string_equal(r.final_url, target);
  assert_int_equal(r.size, BIG_SIZE);
  img_fetch_result_clear(&r);
  remove_outputs(part, out);

  ctl("fault?path=/old.bin&mode=redirect&to=file:///etc/passwd");
  _cleanup_free_ char *msg = NULL;
  assert_int_equal(fetch_fails(&o, &msg), QVM_EPROTO);
  assert_non_null(strstr(msg, "redirect"));
  assert_int_equal(file_size(part), 0);

  /* img_fetch_small refuses it too */
  ctl("fault?path=/old.bin&mode=redirect&to=file:///etc/passwd");
  char *body = NULL;
  qvm_error *e = NULL;
  assert_int_equal(img_fetch_small(&body, NULL, from, 1 << 20, 5000, &e), QVM_EPROTO);
  qvm_error_free(e);
  ctl("clear");
  remove_outputs(part, out);
}

static void test_compressed(void **state) {
  (void)state;
  ctl("clear");
  static const struct {
    const char *name, *cmd, *compression;
    bool tar;
  } cases[] = {
      {"disk.raw.xz", "xz -T1 -0 -c disk.raw > disk.raw.xz", "xz", false},
      {"disk.raw.gz", "gzip -1 -c disk.raw > disk.raw.gz", "gzip", false},
      {"disk.raw.zst", "zstd -q -1 -c disk.raw > disk.raw.zst", "zstd", false},
      {"disk.raw.bz2", "bzip2 -1 -c disk.raw > disk.raw.bz2", "bzip2", false},
      {"disk.tar.xz", "tar -c --format=ustar disk.raw | xz -T1 -0 > disk.tar.xz", "xz", true},
      {"disk.tar", "tar -c --format=ustar -f disk.tar disk.raw", "none", true},
      {"disk.tar.gz",
       "mkdir -p d/sub && cp disk.raw d/sub/disk.raw && echo hi > d/README && "
       "tar -C d -cz -f disk.tar.gz README sub",
       "gzip", true},
      /* a sparse member (GNU tar -S), as cloud tarballs hold disk.raw */
      {"sparse.tar",
       "mkdir -p s && cp --sparse=always disk.raw s/disk.raw && "
       "tar -S --format=gnu -C s -c -f sparse.tar disk.raw",
       "none", true},
  };
  _cleanup_free_ char *raw = path_in(srv_dir, "disk.raw");
  char want[65];
  file_sha256(want, raw);
  for (size_t i = 0; i < QVM_ARRAY_SIZE(cases); i++) {
    assert_int_equal(qvm_test_sh("cd '%s' && %s", srv_dir, cases[i].cmd), 0);
    _cleanup_free_ char *file = path_in(srv_dir, cases[i].name), *url = url_of(cases[i].name);
    char want_dl[65];
    file_sha256(want_dl, file);
    _cleanup_free_ char *part = NULL, *out = NULL;
    scratch(&part, &out, "comp");
    img_fetch_opts o = opts_for(url, part, out);
    img_fetch_result r;
    fetch_ok(&r, &o);
    assert_string_equal(r.compression, cases[i].compression);
    assert_string_equal(r.sha256, want_dl);
    assert_string_equal(r.content_sha256, want);
    assert_int_equal(r.size, file_size(file));
    assert_int_equal(r.content_size, 3 * MIB);
    assert_same_file(raw, out);
    if (cases[i].tar) {
      assert_non_null(r.tar_member);
      assert_non_null(strstr(r.tar_member, "disk.raw"));
    } else {
      assert_null(r.tar_member);
    }
    img_fetch_result_clear(&r);
    remove_outputs(part, out);
  }
}

static void test_tar_ambiguous(void **state) {
  (void)state;
  ctl("clear");
  assert_int_equal(qvm_test_sh("cd '%s' && head -c 10000 disk.raw > a.img && "
                               "head -c 20000 disk.raw > 'b\033[31m.img' && "
                               "tar -c -f two.tar a.img 'b\033[31m.img' && "
                               "echo x > notes.txt && echo y > more.txt && "
                               "tar -c -f none.tar notes.txt more.txt",
                               srv_dir),
                   0);
  _cleanup_free_ char *part = NULL, *out = NULL, *url = url_of("two.tar");
  scratch(&part, &out, "two");
  img_fetch_opts o = opts_for(url, part, out);
  _cleanup_free_ char *msg = NULL;
  assert_int_equal(fetch_fails(&o, &msg), QVM_EINVAL);
  assert_non_null(strstr(msg, "a.img"));
  assert_non_null(strstr(msg, "\\x1b[31m.img")); /* neutralized */
  assert_null(strchr(msg, '\033'));

  _cleanup_free_ char *url2 = url_of("none.tar"), *msg2 = NULL;
  o.source = url2;
  remove_outputs(part, out);
  assert_int_equal(fetch_fails(&o, &msg2), QVM_EINVAL);
  assert_non_null(strstr(msg2, "notes.txt"));
  remove_outputs(part, out);
}

static void test_bomb(void **state) {
  (void)state;
  ctl("clear");
  assert_int_equal(qvm_test_sh("cd '%s' && head -c 67108864 /dev/zero | gzip -1 > bomb.gz && "
                               "head -c 67108864 /dev/zero | xz -T1 -0 > bomb.xz && "
                               "head -c 67108864 /dev/zero > zeros && "
                               "tar -c -f - zeros | gzip -1 > bomb.tar.gz",
                               srv_dir),
                   0);
  static const char *const names[] = {"bomb.gz", "bomb.xz", "bomb.tar.gz"};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(names); i++) {
    _cleanup_free_ char *part = NULL, *out = NULL, *url = url_of(names[i]);
    scratch(&part, &out, "bomb");
    img_fetch_opts o = opts_for(url, part, out);
    o.max_content = 8 * MIB;
    _cleanup_free_ char *msg = NULL;
    assert_int_equal(fetch_fails(&o, &msg), QVM_EINVAL);
    assert_non_null(strstr(msg, "larger than 8388608"));
    remove_outputs(part, out);
  }
  /* uncompressed content over the cap, too */
  _cleanup_free_ char *part = NULL, *out = NULL, *url = url_of("big.bin");
  scratch(&part, &out, "cap");
  img_fetch_opts o = opts_for(url, part, out);
  o.max_content = MIB;
  assert_int_equal(fetch_fails(&o, NULL), QVM_EINVAL);
  remove_outputs(part, out);
  _cleanup_free_ char *z = path_in(srv_dir, "zeros");
  unlink(z);
}

static void test_full_disk(void **state) {
  (void)state;
  qvm_test_require_root();
  ctl("clear");
  _cleanup_free_ char *mnt = path_in(dir, "small");
  assert_int_equal(mkdir(mnt, 0700), 0);
  /* a private mount namespace: the tmpfs goes away with this process */
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    qvm_test_skip("no private mount namespace: %s", strerror(errno));
  if (mount("qvm-test", mnt, "tmpfs", 0, "size=1m") < 0)
    qvm_test_skip("cannot mount a tmpfs: %s", strerror(errno));
  /* the part on the full file system */
  _cleanup_free_ char *part = path_in(mnt, "big.part"), *out = path_in(dir, "full.out");
  _cleanup_free_ char *url = url_of("big.bin");
  img_fetch_opts o = opts_for(url, part, out);
  img_fetch_result r;
  qvm_error *e = NULL;
  assert_int_equal(img_fetch(&r, &o, &e), QVM_ESYS);
  assert_int_equal(qvm_error_errno(e), ENOSPC);
  assert_non_null(strstr(qvm_error_message(e), part));
  qvm_error_free(e), e = NULL;
  assert_false(exists(out));
  unlink(part);

  /* the decompressed content on the full file system */
  assert_int_equal(qvm_test_sh("cd '%s' && xz -T1 -0 -c disk.raw > full.raw.xz", srv_dir), 0);
  _cleanup_free_ char *part2 = path_in(dir, "full.part"), *out2 = path_in(mnt, "full.out");
  _cleanup_free_ char *url2 = url_of("full.raw.xz");
  o = opts_for(url2, part2, out2);
  assert_int_equal(img_fetch(&r, &o, &e), QVM_ESYS);
  assert_int_equal(qvm_error_errno(e), ENOSPC);
  assert_non_null(strstr(qvm_error_message(e), out2));
  qvm_error_free(e);
  assert_false(exists(out2));
  unlink(part2);

  /* part and out on two file systems: the content is copied, not renamed */
  _cleanup_free_ char *small = path_in(srv_dir, "small.bin"), *url3 = url_of("small.bin");
  write_random(small, 300000);
  _cleanup_free_ char *part3 = path_in(mnt, "small.part"), *out3 = path_in(dir, "small.out");
  o = opts_for(url3, part3, out3);
  fetch_ok(&r, &o);
  assert_int_equal(r.size, 300000);
  assert_same_file(small, out3);
  assert_false(exists(part3));
  img_fetch_result_clear(&r);
  unlink(out3);
  assert_int_equal(umount(mnt), 0);
  rmdir(mnt);
}

/* ---- a raw socket server for replies http_server.py does not send ---- */

typedef void raw_reply_fn(int fd, const char *request, unsigned nth);

typedef struct raw_server {
  int lfd;
  int port;
  raw_reply_fn *reply;
  atomic_bool stop;
  atomic_uint requests;
  pthread_t thread;
} raw_server;

static void *raw_main(void *arg) {
  raw_server *s = arg;
  while (!s->stop) {
    struct pollfd p = {.fd = s->lfd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) continue;
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) continue;
    char req[4096];
    size_t len = 0;
    while (len < sizeof(req) - 1) {
      ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
      if (n <= 0) break;
      len += (size_t)n;
      req[len] = '\0';
      if (strstr(req, "\r\n\r\n")) break;
    }
    req[len] = '\0';
    s->reply(fd, req, s->requests++);
    close(fd);
  }
  return NULL;
}

static void raw_start(raw_server *s, raw_reply_fn *reply) {
  memset(s, 0, sizeof(*s));
  s->reply = reply;
  s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(s->lfd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(s->lfd, 8), 0);
  socklen_t al = sizeof(a);
  assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
  s->port = ntohs(a.sin_port);
  assert_int_equal(pthread_create(&s->thread, NULL, raw_main, s), 0);
}

static void raw_stop(raw_server *s) {
  s->stop = true;
  pthread_join(s->thread, NULL);
  close(s->lfd);
}

static unsigned char body[4000];

static void send_str(int fd, const char *s) { (void)!send(fd, s, strlen(s), MSG_NOSIGNAL); }

/* Range asked: a 206 whose Content-Range starts elsewhere; no Range: 200. */
static void reply_wrong_range(int fd, const char *req, unsigned nth) {
  (void)nth;
  char head[256];
  if (strcasestr(req, "\r\nRange:")) {
    snprintf(head, sizeof(head),
             "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 7-%zu/%zu\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             sizeof(body) - 1, sizeof(body), sizeof(body) - 7);
    send_str(fd, head);
    (void)!send(fd, body + 7, sizeof(body) - 7, MSG_NOSIGNAL);
    return;
  }
  snprintf(head, sizeof(head),
           "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", sizeof(body));
  send_str(fd, head);
  (void)!send(fd, body, sizeof(body), MSG_NOSIGNAL);
}

/* Always a 206 with a range that fits nothing. */
static void reply_bogus_range(int fd, const char *req, unsigned nth) {
  (void)req, (void)nth;
  send_str(fd, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 99-10/5\r\n"
               "Content-Length: 10\r\nConnection: close\r\n\r\n0123456789");
}

/* A cut, then a 206 for a file of another size (it changed), then 200. */
static void reply_changed(int fd, const char *req, unsigned nth) {
  (void)req;
  char head[256];
  if (nth == 1) {
    snprintf(head, sizeof(head),
             "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1000-4999/5000\r\n"
             "Content-Length: 4000\r\nConnection: close\r\n\r\n");
    send_str(fd, head);
    (void)!send(fd, body, 4000, MSG_NOSIGNAL);
    return;
  }
  snprintf(head, sizeof(head),
           "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", sizeof(body));
  send_str(fd, head);
  (void)!send(fd, body, nth == 0 ? 1000 : sizeof(body), MSG_NOSIGNAL);
}

static void reply_huge_length(int fd, const char *req, unsigned nth) {
  (void)req, (void)nth;
  send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n"
               "Connection: close\r\n\r\n");
  (void)!send(fd, body, 100, MSG_NOSIGNAL);
}

static void reply_short(int fd, const char *req, unsigned nth) {
  (void)req, (void)nth;
  send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n");
  (void)!send(fd, body, 100, MSG_NOSIGNAL);
}

static char *raw_url(const raw_server *s) {
  char *u = NULL;
  assert_true(asprintf(&u, "http://127.0.0.1:%d/x.img", s->port) > 0);
  return u;
}

static void test_hostile_ranges(void **state) {
  (void)state;
  randombytes_buf(body, sizeof(body));
  char want[65];
  unsigned char d[32];
  crypto_hash_sha256(d, body, sizeof(body));
  for (size_t i = 0; i < 32; i++) snprintf(want + 2 * i, 3, "%02x", d[i]);
  raw_server s;
  raw_start(&s, reply_wrong_range);
  _cleanup_free_ char *url = raw_url(&s);
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "hostile");
  assert_int_equal(qvm_write_file_atomic(part, body, 100, 0600, NULL), 0);
  img_fetch_opts o = opts_for(url, part, out);
  img_fetch_result r;
  fetch_ok(&r, &o);
  assert_string_equal(r.sha256, want); /* restarted from 0, the bad 206 never used */
  assert_int_equal(r.size, sizeof(body));
  assert_int_equal(s.requests, 2);
  img_fetch_result_clear(&r);
  raw_stop(&s);
  remove_outputs(part, out);

  raw_start(&s, reply_changed);
  free(url), url = raw_url(&s);
  o = opts_for(url, part, out);
  o.retries = 1;
  fetch_ok(&r, &o);
  assert_string_equal(r.sha256, want);
  assert_int_equal(r.size, sizeof(body));
  assert_int_equal(r.attempts, 2);
  assert_int_equal(s.requests, 3);
  img_fetch_result_clear(&r);
  raw_stop(&s);
  remove_outputs(part, out);

  raw_start(&s, reply_bogus_range);
  free(url), url = raw_url(&s);
  o.source = url;
  _cleanup_free_ char *msg = NULL;
  assert_int_equal(fetch_fails(&o, &msg), QVM_EPROTO);
  assert_non_null(strstr(msg, "content range"));
  assert_int_equal(file_size(part), 0);
  raw_stop(&s);
  remove_outputs(part, out);
}

static void test_hostile_lengths(void **state) {
  (void)state;
  raw_server s;
  raw_start(&s, reply_huge_length);
  _cleanup_free_ char *url = raw_url(&s);
  _cleanup_free_ char *part = NULL, *out = NULL;
  scratch(&part, &out, "length");
  img_fetch_opts o = opts_for(url, part, out);
  o.retries = 2;
  _cleanup_free_ char *msg = NULL;
  assert_int_equal(fetch_fails(&o, &msg), QVM_EINVAL);
  assert_non_null(strstr(msg, "1000000000000000 bytes"));
  assert_int_equal(s.requests, 1); /* too big is final */
  raw_stop(&s);
  remove_outputs(part, out);

  raw_start(&s, reply_short);
  free(url), url = raw_url(&s);
  o.source = url;
  o.retries = 0;
  free(msg), msg = NULL;
  assert_int_equal(fetch_fails(&o, &msg), QVM_EPROTO);
  assert_int_equal(file_size(part), 100); /* kept for a resume */
  raw_stop(&s);
  remove_outputs(part, out);
}

static int group_setup(void **state) {
  (void)state;
  assert_true(sodium_init() >= 0);
  dir = qvm_test_mkdtemp("fetch");
  return dir ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  if (dir) {
    _cleanup_free_ char *mnt = path_in(dir, "small");
    umount2(mnt, MNT_DETACH); /* left mounted by a failed test_full_disk */
    qvm_test_rmtree(dir);
  }
  free(dir);
  return 0;
}

static int all_setup(void **state) {
  group_setup(state);
  return server_setup(state);
}

static int all_teardown(void **state) {
  server_teardown(state);
  return group_teardown(state);
}

int main(int argc, char **argv) {
  const struct CMUnitTest unit[] = {
      cmocka_unit_test(test_url_filename), cmocka_unit_test(test_local_plain),
      cmocka_unit_test(test_local_errors), cmocka_unit_test(test_local_compressed),
      cmocka_unit_test(test_local_cancel),
  };
  const struct CMUnitTest server[] = {
      cmocka_unit_test(test_good),
      cmocka_unit_test(test_progress),
      cmocka_unit_test(test_resume_across_calls),
      cmocka_unit_test(test_resume_within_call),
      cmocka_unit_test(test_norange_restarts),
      cmocka_unit_test(test_part_complete),
      cmocka_unit_test(test_http_errors),
      cmocka_unit_test(test_stall),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_redirects),
      cmocka_unit_test(test_compressed),
      cmocka_unit_test(test_tar_ambiguous),
      cmocka_unit_test(test_bomb),
      cmocka_unit_test(test_full_disk),
      cmocka_unit_test(test_hostile_ranges),
      cmocka_unit_test(test_hostile_lengths),
  };
  if (argc > 1 && !strcmp(argv[1], "server"))
    return cmocka_run_group_tests(server, all_setup, all_teardown);
  return cmocka_run_group_tests(unit, group_setup, group_teardown);
}
