/* SPDX-License-Identifier: MIT */
/* qvm_image_pull: a source (URL, path or catalog alias) into the store,
 * verified, its format detected once, under a per-source lock so that two
 * pulls of one source download it once. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <qvm/image.h>
#include <qvm/text.h>

#include "image/catalog.h"
#include "image/fetch.h"
#include "util/cleanup.h"
#include "util/time.h"
#include "vm/image.h"
#include "vm/images.h"

#define CHECKSUMS_MAX (1u << 20)
#define CHECKSUMS_TIMEOUT_MS 30000

typedef struct pull {
  const qvm_image_pull_options *o;
  char *url;   /* what is fetched: a URL (credentials kept) or an absolute path */
  char *clean; /* the source as stored and printed: without credentials */
  char *alias; /* the catalog entry's alias, or NULL */
  bool remote; /* http(s) */
  char expected[129];
  const char *alg; /* "sha256", "sha512" or NULL: not verified */
  char *checksums; /* the checksum file's URL, or NULL */
  char *verified;
} pull;

static void pull_clear(pull *p) {
  free(p->url);
  free(p->clean);
  free(p->alias);
  free(p->checksums);
  free(p->verified);
}

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

static void report(const pull *p, const char *phase, const char *note) {
  if (!p->o->progress) return;
  qvm_image_progress ev = {.phase = phase, .eta_ms = -1, .note = note};
  p->o->progress(&ev, p->o->userdata);
}

static bool pull_cancelled(void *userdata) {
  const pull *p = userdata;
  return p->o->cancelled && p->o->cancelled(p->o->userdata);
}

static int cancelled_error(const pull *p, qvm_error **err) {
  qvm_error_set_code_errno(err, QVM_ESYS, ECANCELED, "pull of '%s' was cancelled", p->clean);
  return qvm_error_set_hint(err, QVM_ESYS, "Cancelled", NULL);
}

static void fetch_progress(const img_progress *fp, void *userdata) {
  const pull *p = userdata;
  if (!p->o->progress) return;
  /* "decompress" is part of the download here: one pass over the bytes. */
  qvm_image_progress ev = {.phase = strcmp(fp->phase, "decompress") ? fp->phase : "download",
                           .done = fp->done,
                           .total = fp->total,
                           .rate = fp->rate,
                           .eta_ms = fp->eta_ms,
                           .attempt = fp->attempt,
                           .note = fp->note};
  p->o->progress(&ev, p->o->userdata);
}

/* An error about `url` that may quote it with its user:password (curl's
 * messages do): the same error with every "userinfo@" cut out. */
static int scrub_userinfo(qvm_error **err, int r, const char *url) {
  const char *host = strstr(url, "://");
  if (!err || !*err || !host) return r;
  host += 3;
  const char *at = memrchr(host, '@', strcspn(host, "/?#"));
  if (!at) return r;
  _cleanup_free_ char *userinfo = strndup(host, (size_t)(at + 1 - host));
  const char *msg = qvm_error_message(*err);
  if (!userinfo || !strstr(msg, userinfo)) return r;
  _cleanup_free_ char *clean = NULL;
  size_t len = 0, n = strlen(userinfo);
  FILE *f = open_memstream(&clean, &len);
  if (!f) return r;
  for (const char *p = msg, *q; *p; p = q + n) {
    if (!(q = strstr(p, userinfo))) {
      fputs(p, f);
      break;
    }
    fwrite(p, 1, (size_t)(q - p), f);
  }
  fclose(f);
  int code = qvm_error_code(*err);
  qvm_error_free(*err);
  *err = NULL;
  return qvm_error_set(err, code, "%s", clean ? clean : "?");
}

static bool is_url(const char *s) {
  return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8) || !strncmp(s, "file://", 7);
}

static int set_expected(pull *p, const char *hex, const char *alg, const char *what,
                        qvm_error **err) {
  size_t want = !strcmp(alg, "sha256") ? 64 : 128, n = strlen(hex);
  bool ok = n == want;
  for (size_t i = 0; ok && i < n; i++) {
    char c = (char)(hex[i] | 0x20);
    ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    p->expected[i] = c;
  }
  if (!ok) {
    _cleanup_free_ char *safe = qvm_text_for_terminal(hex, n, 0);
    return qvm_error_set(err, QVM_EINVAL, "%s '%s' is not %zu hex digits", what, safe ? safe : "?",
                         want);
  }
  p->expected[n] = '\0';
  p->alg = alg;
  return (p->verified = strdup(alg)) ? 0 : oom(err);
}

static int local_source(pull *p, const char *source, qvm_error **err) {
  char real[PATH_MAX];
  if (!realpath(source, real)) {
    _cleanup_free_ char *safe = qvm_text_for_terminal(source, strlen(source), 0);
    return qvm_error_set_code_errno(err, errno == ENOENT ? QVM_ENOTFOUND : QVM_ESYS, errno,
                                    "image source '%s' cannot be opened", safe ? safe : "?");
  }
  return (p->url = strdup(real)) && (p->clean = strdup(real)) ? 0 : oom(err);
}

/* The source: URL, path or alias, and what the alias's entry says. */
static int classify(pull *p, const char *source, const img_catalog_entry **out_entry,
                    img_catalog *cat, qvm_error **err) {
  *out_entry = NULL;
  struct stat st;
  if (is_url(source)) {
    p->remote = strncmp(source, "file://", 7) != 0;
    if (!(p->url = strdup(source)) || !(p->clean = images_url_without_userinfo(source)))
      return oom(err);
    return 0;
  }
  /* A bare word is an alias before it is a file in the current directory:
   * a file another user left in /tmp must not stand in for 'debian-12'. */
  if (strchr(source, '/') || source[0] == '.' || !img_name_valid(source))
    return local_source(p, source, err);
  _cleanup_free_ char *file = NULL;
  int r = qvm_image_catalog_path(&file, err);
  if (r < 0 || (r = img_catalog_load(cat, file, err)) < 0) return r;
  const img_catalog_entry *e = img_catalog_find(cat, source);
  if (!e && stat(source, &st) == 0 && S_ISREG(st.st_mode)) return local_source(p, source, err);
  if (!e) {
    qvm_error_set(err, QVM_ENOTFOUND,
                  "'%s' is neither a url, a file nor an alias of the image catalog", source);
    return qvm_error_set_hint(err, QVM_ENOTFOUND, "ImageUnknown", source);
  }
  p->remote = strncmp(e->url, "file://", 7) != 0;
  if (!(p->alias = strdup(source)) || !(p->url = strdup(e->url)) ||
      !(p->clean = images_url_without_userinfo(e->url)))
    return oom(err);
  *out_entry = e;
  return 0;
}

static char *source_filename(const pull *p) {
  if (is_url(p->url)) return img_url_filename(p->url);
  _cleanup_free_ char *copy = strdup(p->url);
  return copy ? strdup(basename(copy)) : NULL;
}

/* The digest a checksum file lists for the source's file name. */
static int from_checksums(pull *p, const char *url, qvm_error **err) {
  _cleanup_free_ char *text = NULL, *fname = source_filename(p),
                      *clean = images_url_without_userinfo(url);
  size_t len = 0;
  if (!fname || !clean)
    return fname ? oom(err) : qvm_error_set(err, QVM_EINVAL, "url '%s' names no file", p->clean);
  report(p, "resolve", clean);
  int timeout = p->o->stall_timeout_ms > 0 ? p->o->stall_timeout_ms : CHECKSUMS_TIMEOUT_MS;
  int r = img_fetch_small(&text, &len, url, CHECKSUMS_MAX, timeout, err);
  if (r < 0) {
    scrub_userinfo(err, r, url);
    return qvm_error_prefix(err, "cannot get the checksum file '%s'", clean);
  }
  char hex[129];
  const char *alg = NULL;
  if ((r = img_checksums_find(hex, &alg, text, len, fname, err)) < 0)
    return qvm_error_prefix(err, "checksum file '%s'", clean);
  if ((r = set_expected(p, hex, alg, "checksum", err)) < 0) return r;
  free(p->verified);
  p->checksums = strdup(clean);
  return asprintf(&p->verified, "checksums:%s", clean) < 0 || !p->checksums ? oom(err) : 0;
}

static void clear_error(qvm_error **err) {
  if (err && *err) {
    qvm_error_free(*err);
    *err = NULL;
  }
}

/* The SHA256SUMS, else SHA512SUMS, beside the url (its directory), when
 * one lists the url's file. 0 when one did; < 0 (err set) when none did. */
static int discover_checksums(pull *p, qvm_error **err) {
  static const char *const names[] = {"SHA256SUMS", "SHA512SUMS"};
  const char *end = strchr(p->url, '?');
  size_t len = end ? (size_t)(end - p->url) : strlen(p->url);
  const char *slash = memrchr(p->url, '/', len);
  const char *host = strstr(p->url, "://");
  if (!slash || !host || slash < host + 3) return qvm_error_set(err, QVM_EINVAL, "no directory");
  int r = -1;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    _cleanup_free_ char *url = NULL;
    if (asprintf(&url, "%.*s/%s", (int)(slash - p->url), p->url, names[i]) < 0) return oom(err);
    clear_error(err);
    if ((r = from_checksums(p, url, err)) == 0) return 0;
  }
  return r;
}

static int expectations(pull *p, const img_catalog_entry *e, qvm_error **err) {
  const qvm_image_pull_options *o = p->o;
  int given = !!o->sha256 + !!o->sha512 + !!o->checksums;
  if (given > 1) return qvm_error_set(err, QVM_EINVAL, "give one of sha256, sha512, checksums");
  const char *sha256 = given ? o->sha256 : e ? e->sha256 : NULL;
  const char *sha512 = given ? o->sha512 : e ? e->sha512 : NULL;
  const char *sums = given ? o->checksums : e ? e->checksums : NULL;
  if (sha256) return set_expected(p, sha256, "sha256", "sha256", err);
  if (sha512) return set_expected(p, sha512, "sha512", "sha512", err);
  if (sums) {
    if (strncmp(sums, "http://", 7) && strncmp(sums, "https://", 8) && strncmp(sums, "file://", 7))
      return qvm_error_set(err, QVM_EINVAL, "checksum file url must be http(s):// or file://");
    return from_checksums(p, sums, err);
  }
  bool discover = o->discover_checksums && !e && is_url(p->url);
  if (p->remote && discover) {
    if (discover_checksums(p, err) == 0) return 0;
    clear_error(err); /* the refusal below says what was tried */
  }
  if (p->remote && !o->insecure_no_checksum) {
    qvm_error_set(err, QVM_EINVAL,
                  "'%s' has no checksum to verify it with%s: give a sha256, sha512 or a "
                  "checksum file",
                  p->clean, discover ? " (no SHA256SUMS or SHA512SUMS beside it lists it)" : "");
    return qvm_error_set_hint(err, QVM_EINVAL, "ImageUnverified", NULL);
  }
  return 0;
}

static int lock_source(int *out_fd, const char *path, qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", path);
  while (flock(fd, LOCK_EX) < 0)
    if (errno != EINTR) return qvm_error_set_errno(err, errno, "cannot lock '%s'", path);
  *out_fd = TAKE_FD(fd);
  return 0;
}

/* An earlier pull of this source that gives what is expected. */
static bool reusable(const pull *p, const img_meta *m) {
  if (!m->digest[0]) return false;
  if (!p->alg) return p->remote; /* a local file may have changed: read it again */
  const char *have = !strcmp(p->alg, "sha256") ? m->source_sha256 : m->source_sha512;
  return have && !strcmp(have, p->expected);
}

static int result(char **out_json, img_store *s, const char *digest, uint64_t transferred,
                  bool reused, qvm_error **err) {
  if (!out_json) return 0;
  char ref[72];
  snprintf(ref, sizeof ref, "sha256:%s", digest);
  img_meta m = {0};
  int r = img_store_lookup(&m, NULL, s, ref, err);
  struct json_object *o = NULL;
  if (r == 0) r = images_record(&o, s, &m, err);
  img_meta_clear(&m);
  if (r < 0) return r;
  json_object_object_add(o, "transferred", json_object_new_uint64(transferred));
  json_object_object_add(o, "reused", json_object_new_boolean(reused));
  const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
  *out_json = t ? strdup(t) : NULL;
  json_object_put(o);
  return *out_json ? 0 : oom(err);
}

static int verify(const pull *p, const img_fetch_result *res, const char *part, const char *out,
                  qvm_error **err) {
  if (!p->alg) return 0;
  report(p, "verify", NULL);
  const char *got = !strcmp(p->alg, "sha256") ? res->sha256 : res->sha512;
  if (!strcmp(got, p->expected)) return 0;
  unlink(part);
  unlink(out);
  return qvm_error_set(err, QVM_EINVAL, "checksum mismatch for '%s': expected %s %s, got %s",
                       p->clean, p->alg, p->expected, got);
}

static int import(const pull *p, img_store *s, const img_fetch_result *res, const char *out,
                  const char *name, qvm_error **err) {
  report(p, "inspect", NULL);
  /* Store files are 0444 anyway; readable now, qemu-img can read it as the
   * qemu user (vm/image.c), who may then detect raw, vdi, ... too. */
  if (chmod(out, 0444) < 0) {
    unlink(out);
    return qvm_error_set_errno(err, errno, "cannot chmod '%s'", out);
  }
  vm_image_info info = {0};
  int r = vm_image_check(&info, "image", out, NULL, p->o->allow_backing, NULL, err);
  if (r == 0) r = vm_image_format_check("image", p->clean, info.format, err);
  if (r < 0) {
    unlink(out);
    vm_image_info_clear(&info);
    return qvm_error_prefix(err, "cannot import '%s'", p->clean);
  }
  img_meta m = {.format = info.format,
                .virtual_size = info.size,
                .file_size = res->content_size,
                .source = p->clean,
                .source_sha256 = (char *)res->sha256,
                .source_sha512 = res->sha512[0] ? (char *)res->sha512 : NULL,
                .verified = p->verified,
                .compression = (char *)res->compression,
                .tar_member = res->tar_member,
                .created_ms = qvm_realtime_us() / 1000};
  memcpy(m.digest, res->content_sha256, sizeof m.digest);
  r = img_store_commit(s, out, &m, name, err);
  if (r < 0) unlink(out);
  vm_image_info_clear(&info);
  return r;
}

static int download(char **out_json, pull *p, img_store *s, const char *name, qvm_error **err) {
  _cleanup_free_ char *part = NULL, *lockp = NULL, *out = NULL;
  int r = img_store_source_paths(&part, &lockp, s, p->clean, err);
  if (r < 0) return r;
  size_t n = strlen(part);
  if (!(out = strdup(part))) return oom(err);
  memcpy(out + n - 5, ".img", 5); /* <key>.part -> <key>.img */
  _cleanup_close_ int lock = -1;
  if ((r = lock_source(&lock, lockp, err)) < 0) return r;
  img_meta prev = {0};
  if ((r = img_store_find_source(&prev, s, p->clean, err)) < 0) return r;
  if (reusable(p, &prev)) {
    char ref[72];
    snprintf(ref, sizeof ref, "sha256:%s", prev.digest);
    r = name ? img_store_tag(s, ref, name, err) : 0;
    if (r == 0) r = result(out_json, s, prev.digest, 0, true, err);
    img_meta_clear(&prev);
    return r;
  }
  img_meta_clear(&prev);
  img_fetch_opts fo = {.source = p->url,
                       .part_path = part,
                       .out_path = out,
                       .want_sha512 = p->alg && !strcmp(p->alg, "sha512"),
                       .stall_timeout_ms = p->o->stall_timeout_ms,
                       .retries = p->o->retries,
                       .progress = fetch_progress,
                       .userdata = p,
                       .cancelled = pull_cancelled,
                       .cancel_userdata = p};
  img_fetch_result res = {0};
  if (pull_cancelled(p)) {
    unlink(part); /* a download an earlier pull left is not resumed either */
    return cancelled_error(p, err);
  }
  r = img_fetch(&res, &fo, err);
  if (r < 0) {
    img_fetch_result_clear(&res);
    scrub_userinfo(err, r, p->url);
    return qvm_error_prefix(err, "cannot pull '%s'", p->clean);
  }
  r = verify(p, &res, part, out, err);
  if (r == 0 && pull_cancelled(p)) {
    unlink(part);
    unlink(out);
    r = cancelled_error(p, err);
  }
  if (r == 0) {
    unlink(part);
    r = import(p, s, &res, out, name, err);
  }
  if (r == 0) r = result(out_json, s, res.content_sha256, res.transferred, false, err);
  img_fetch_result_clear(&res);
  return r;
}

int qvm_image_pull(char **out_json, const char *source, const qvm_image_pull_options *opts,
                   qvm_error **err) {
  qvm_image_pull_options defaults = QVM_IMAGE_PULL_OPTIONS_INIT;
  int r = QVM_OPTIONS_CHECK(opts, qvm_image_pull_options, QVM_IMAGE_PULL_OPTIONS_VERSION, err);
  if (r < 0) return r;
  if (!source || !source[0]) return qvm_error_set(err, QVM_EINVAL, "image source is empty");
  if (opts && opts->name && (r = img_name_check(opts->name, err)) < 0) return r;
  /* A version 1 caller's struct ends before the version 2 members: only
   * what it has is copied, the rest stays at its defaults. */
  if (opts)
    memcpy(&defaults, opts,
           opts->version >= 2 ? sizeof defaults
                              : offsetof(qvm_image_pull_options, discover_checksums));
  pull p = {.o = &defaults};
  img_catalog cat = {0};
  const img_catalog_entry *entry = NULL;
  _cleanup_(img_store_freep) img_store *s = NULL;
  r = classify(&p, source, &entry, &cat, err);
  if (r == 0) report(&p, "resolve", p.clean);
  if (r == 0) r = expectations(&p, entry, err);
  if (r == 0 && pull_cancelled(&p)) r = cancelled_error(&p, err);
  if (r == 0) r = images_store_open(&s, err);
  if (r == 0) r = download(out_json, &p, s, p.o->name ? p.o->name : p.alias, err);
  if (r == 0) report(&p, "done", NULL);
  img_catalog_clear(&cat);
  pull_clear(&p);
  return r;
}

int qvm_image_pull_discard(const char *source, bool *out_removed, qvm_error **err) {
  if (out_removed) *out_removed = false;
  if (!source || !source[0]) return qvm_error_set(err, QVM_EINVAL, "image source is empty");
  qvm_image_pull_options defaults = QVM_IMAGE_PULL_OPTIONS_INIT;
  pull p = {.o = &defaults};
  img_catalog cat = {0};
  const img_catalog_entry *entry = NULL;
  _cleanup_(img_store_freep) img_store *s = NULL;
  _cleanup_free_ char *part = NULL, *lockp = NULL;
  _cleanup_close_ int fd = -1;
  int r = classify(&p, source, &entry, &cat, err);
  if (r == 0) r = images_store_open(&s, err);
  if (r == 0) r = img_store_source_paths(&part, &lockp, s, p.clean, err);
  if (r == 0) {
    fd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) r = qvm_error_set_errno(err, errno, "cannot open '%s'", lockp);
  }
  if (r == 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
    r = errno == EWOULDBLOCK ? qvm_error_set(err, QVM_EBUSY, "a pull of '%s' is under way", p.clean)
                             : qvm_error_set_errno(err, errno, "cannot lock '%s'", lockp);
  if (r == 0) {
    size_t n = strlen(part);
    bool removed = unlink(part) == 0;
    memcpy(part + n - 5, ".img", 5); /* <key>.part -> <key>.img */
    removed = (unlink(part) == 0) || removed;
    if (out_removed) *out_removed = removed;
  }
  img_catalog_clear(&cat);
  pull_clear(&p);
  return r;
}
