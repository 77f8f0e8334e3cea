/* SPDX-License-Identifier: MIT */
/* The content-addressed image store (layout in image/store.h). */
#include "image/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include <qvm/text.h>

#include "util/cleanup.h"
#include "util/fs.h"

#define NAMES_MAX (4u << 20)
#define META_MAX (1u << 20)
#define COMMIT_LOCK_MS 120000

struct img_store {
  char *root, *sha_dir, *meta_dir, *tmp_dir, *names_path, *lock_path;
};

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return s[n] == '\0';
}

void img_meta_clear(img_meta *m) {
  if (!m) return;
  free(m->format);
  free(m->source);
  free(m->source_sha256);
  free(m->source_sha512);
  free(m->verified);
  free(m->compression);
  free(m->tar_member);
  for (size_t i = 0; i < m->n_names; i++) free(m->names[i]);
  free(m->names);
  memset(m, 0, sizeof *m);
}

void img_meta_list_free(img_meta *list, size_t n) {
  for (size_t i = 0; list && i < n; i++) img_meta_clear(&list[i]);
  free(list);
}

bool img_name_valid(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n < 1 || n > 64) return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'))) return false;
  for (size_t i = 1; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}

int img_name_check(const char *name, qvm_error **err) {
  if (img_name_valid(name)) return 0;
  _cleanup_free_ char *safe = qvm_text_for_terminal(name ? name : "", name ? strlen(name) : 0, 0);
  return qvm_error_set(err, QVM_EINVAL,
                       "image name '%s' is invalid: it must match [a-z0-9][a-z0-9._-]{0,63}",
                       safe ? safe : "?");
}

/* ---- opening ---- */

static int private_dir(const char *path, qvm_error **err) {
  int r = qvm_mkdir_p(path, 0700, err);
  if (r < 0) return r;
  struct stat st;
  if (lstat(path, &st) < 0) return qvm_error_set_errno(err, errno, "cannot stat '%s'", path);
  if (!S_ISDIR(st.st_mode))
    return qvm_error_set(err, QVM_EINVAL, "image store path '%s' is not a directory", path);
  if (st.st_uid != geteuid())
    return qvm_error_set(err, QVM_EINVAL, "image store directory '%s' is owned by uid %u, not %u",
                         path, (unsigned)st.st_uid, (unsigned)geteuid());
  if ((st.st_mode & 0077) && chmod(path, 0700) < 0)
    return qvm_error_set_errno(err, errno, "cannot make '%s' private", path);
  return 0;
}

void img_store_free(img_store *s) {
  if (!s) return;
  free(s->root);
  free(s->sha_dir);
  free(s->meta_dir);
  free(s->tmp_dir);
  free(s->names_path);
  free(s->lock_path);
  free(s);
}
QVM_DEFINE_CLEANUP(img_store, img_store_free)

int img_store_open(img_store **out, const char *root, qvm_error **err) {
  _cleanup_(img_store_freep) img_store *s = calloc(1, sizeof *s);
  if (!s || !(s->root = strdup(root)) || asprintf(&s->sha_dir, "%s/sha256", root) < 0 ||
      asprintf(&s->meta_dir, "%s/meta", root) < 0 || asprintf(&s->tmp_dir, "%s/tmp", root) < 0 ||
      asprintf(&s->names_path, "%s/names.json", root) < 0 ||
      asprintf(&s->lock_path, "%s/lock", root) < 0)
    return oom(err);
  const char *dirs[] = {s->root, s->sha_dir, s->meta_dir, s->tmp_dir};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(dirs); i++) {
    int r = private_dir(dirs[i], err);
    if (r < 0) return qvm_error_prefix(err, "cannot open the image store");
  }
  *out = TAKE_PTR(s);
  return 0;
}

const char *img_store_root(const img_store *s) { return s->root; }

static int lock_file(int *out_fd, const char *path, bool exclusive, int timeout_ms,
                     const char *what, qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open %s '%s'", what, path);
  int64_t deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
  for (;;) {
    if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) break;
    if (errno != EWOULDBLOCK && errno != EINTR)
      return qvm_error_set_errno(err, errno, "cannot lock %s '%s'", what, path);
    if (now_ms() >= deadline)
      return qvm_error_set(err, QVM_EBUSY, "%s '%s' is held by another qvm process", what, path);
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
  }
  *out_fd = TAKE_FD(fd);
  return 0;
}

int img_store_lock(int *out_fd, img_store *s, bool exclusive, int timeout_ms, qvm_error **err) {
  return lock_file(out_fd, s->lock_path, exclusive, timeout_ms, "the image store's lock", err);
}

int img_store_tmp_path(char **out, img_store *s, const char *suffix, qvm_error **err) {
  unsigned char rnd[8];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
    return qvm_error_set_errno(err, errno, "cannot get random bytes");
  char hex[17];
  sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
  if (asprintf(out, "%s/stage-%s%s", s->tmp_dir, hex, suffix ? suffix : "") < 0) return oom(err);
  return 0;
}

static void sha256_hex(char out[65], const void *data, size_t len) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, data, len);
  sodium_bin2hex(out, 65, h, sizeof h);
}

int img_store_source_paths(char **out_part, char **out_lock, img_store *s, const char *source,
                           qvm_error **err) {
  char key[65];
  sha256_hex(key, source, strlen(source));
  _cleanup_free_ char *part = NULL, *lock = NULL;
  if (asprintf(&part, "%s/%s.part", s->tmp_dir, key) < 0 ||
      asprintf(&lock, "%s/%s.lock", s->tmp_dir, key) < 0)
    return oom(err);
  if (out_part) *out_part = TAKE_PTR(part);
  if (out_lock) *out_lock = TAKE_PTR(lock);
  return 0;
}

/* ---- names.json ---- */

static int names_read(struct json_object **out, img_store *s, qvm_error **err) {
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  qvm_error *e = NULL;
  int r = qvm_read_file(&text, &len, s->names_path, NAMES_MAX, &e);
  if (r == QVM_ENOTFOUND) {
    qvm_error_free(e);
    *out = json_object_new_object();
    return *out ? 0 : oom(err);
  }
  if (r < 0) return qvm_error_propagate(err, e);
  struct json_object *o = json_tokener_parse(text);
  if (!o || !json_object_is_type(o, json_type_object)) {
    json_object_put(o);
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not a json object", s->names_path);
  }
  json_object_object_foreach(o, k, v) {
    const char *ref = json_object_get_string(v);
    if (!img_name_valid(k) || !json_object_is_type(v, json_type_string) ||
        strncmp(ref, "sha256:", 7) || strlen(ref) != 71 || !is_hex(ref + 7, 64)) {
      json_object_put(o);
      return qvm_error_set(err, QVM_EINVAL, "'%s' holds a bad entry", s->names_path);
    }
  }
  *out = o;
  return 0;
}

static int names_write(img_store *s, struct json_object *names, qvm_error **err) {
  const char *text = json_object_to_json_string_ext(names, JSON_C_TO_STRING_PRETTY);
  if (!text) return oom(err);
  return qvm_write_file_atomic(s->names_path, text, strlen(text), 0600, err);
}

static int names_of(img_meta *m, struct json_object *names, qvm_error **err) {
  json_object_object_foreach(names, k, v) {
    if (strcmp(json_object_get_string(v) + 7, m->digest)) continue;
    char **nv = reallocarray(m->names, m->n_names + 1, sizeof *nv);
    if (!nv) return oom(err);
    m->names = nv;
    if (!(nv[m->n_names] = strdup(k))) return oom(err);
    m->n_names++;
  }
  return 0;
}

/* ---- meta ---- */

static void put_str(struct json_object *o, const char *k, const char *v) {
  json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static int meta_write(img_store *s, const img_meta *m, qvm_error **err) {
  struct json_object *o = json_object_new_object();
  if (!o) return oom(err);
  put_str(o, "digest", m->digest);
  put_str(o, "format", m->format);
  json_object_object_add(o, "virtual_size", json_object_new_uint64(m->virtual_size));
  json_object_object_add(o, "file_size", json_object_new_uint64(m->file_size));
  put_str(o, "source", m->source);
  put_str(o, "source_sha256", m->source_sha256);
  put_str(o, "source_sha512", m->source_sha512);
  put_str(o, "verified", m->verified);
  put_str(o, "compression", m->compression);
  put_str(o, "tar_member", m->tar_member);
  json_object_object_add(o, "created_ms", json_object_new_int64(m->created_ms));
  const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
  _cleanup_free_ char *path = NULL;
  int r = asprintf(&path, "%s/%s.json", s->meta_dir, m->digest) < 0 ? oom(err) : 0;
  if (r == 0) r = text ? qvm_write_file_atomic(path, text, strlen(text), 0600, err) : oom(err);
  json_object_put(o);
  return r;
}

static int get_str(char **out, struct json_object *o, const char *k) {
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(o, k, &v) || !v) return 0;
  if (!json_object_is_type(v, json_type_string)) return -1;
  *out = strdup(json_object_get_string(v));
  return *out ? 0 : -1;
}

static int meta_read(img_meta *out, img_store *s, const char *digest, qvm_error **err) {
  _cleanup_free_ char *path = NULL, *text = NULL;
  size_t len = 0;
  if (asprintf(&path, "%s/%s.json", s->meta_dir, digest) < 0) return oom(err);
  img_meta m = {0};
  memcpy(m.digest, digest, 65);
  int r = qvm_read_file(&text, &len, path, META_MAX, err);
  if (r < 0) return r;
  struct json_object *o = json_tokener_parse(text), *v = NULL;
  bool ok = o && json_object_is_type(o, json_type_object);
  ok = ok && !get_str(&m.format, o, "format") && !get_str(&m.source, o, "source") &&
       !get_str(&m.source_sha256, o, "source_sha256") &&
       !get_str(&m.source_sha512, o, "source_sha512") && !get_str(&m.verified, o, "verified") &&
       !get_str(&m.compression, o, "compression") && !get_str(&m.tar_member, o, "tar_member");
  if (ok && json_object_object_get_ex(o, "virtual_size", &v))
    m.virtual_size = json_object_get_uint64(v);
  if (ok && json_object_object_get_ex(o, "file_size", &v)) m.file_size = json_object_get_uint64(v);
  if (ok && json_object_object_get_ex(o, "created_ms", &v)) m.created_ms = json_object_get_int64(v);
  json_object_put(o);
  if (!ok) {
    img_meta_clear(&m);
    return qvm_error_set(err, QVM_EINVAL, "image metadata '%s' is malformed", path);
  }
  *out = m;
  return 0;
}

/* The image's meta and names; QVM_ENOTFOUND when sha256/<digest> is absent. */
static int load(img_meta *out, char **out_path, img_store *s, const char *digest,
                struct json_object *names, qvm_error **err) {
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/%s", s->sha_dir, digest) < 0) return oom(err);
  struct stat st;
  if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
    return qvm_error_set(err, QVM_ENOTFOUND, "image 'sha256:%s' not found", digest);
  img_meta m = {0};
  int r = meta_read(&m, s, digest, err);
  if (r == 0) r = names_of(&m, names, err);
  if (r < 0) {
    img_meta_clear(&m);
    return r;
  }
  *out = m;
  if (out_path) *out_path = TAKE_PTR(path);
  return 0;
}

/* ---- commit ---- */

static bool under_tmp(img_store *s, const char *path) {
  size_t n = strlen(s->tmp_dir);
  return !strncmp(path, s->tmp_dir, n) && path[n] == '/' && !strchr(path + n + 1, '/') &&
         path[n + 1] && strcmp(path + n + 1, "..") && strcmp(path + n + 1, ".");
}

static int update_old_meta(img_store *s, const img_meta *meta, qvm_error **err) {
  img_meta old = {0};
  qvm_error *e = NULL;
  int r = meta_read(&old, s, meta->digest, &e);
  if (r < 0) { /* no readable meta beside the file: the new one describes it */
    qvm_error_free(e);
    return meta_write(s, meta, err);
  }
  if (!old.source && meta->source) {
    old.source = meta->source ? strdup(meta->source) : NULL;
    old.source_sha256 = meta->source_sha256 ? strdup(meta->source_sha256) : NULL;
    old.source_sha512 = meta->source_sha512 ? strdup(meta->source_sha512) : NULL;
    if (!old.verified && meta->verified) old.verified = strdup(meta->verified);
    r = meta_write(s, &old, err);
  }
  img_meta_clear(&old);
  return r;
}

int img_store_commit(img_store *s, const char *staged, const img_meta *meta, const char *name,
                     qvm_error **err) {
  if (strlen(meta->digest) != 64 || !is_hex(meta->digest, 64))
    return qvm_error_set(err, QVM_EINVAL, "image digest is not 64 lowercase hex digits");
  if (!under_tmp(s, staged))
    return qvm_error_set(err, QVM_EINVAL, "staged image '%s' is not in the store's tmp/", staged);
  int r = name ? img_name_check(name, err) : 0;
  if (r < 0) return r;
  _cleanup_close_ int lock = -1;
  if ((r = img_store_lock(&lock, s, true, COMMIT_LOCK_MS, err)) < 0) return r;
  _cleanup_free_ char *target = NULL;
  if (asprintf(&target, "%s/%s", s->sha_dir, meta->digest) < 0) return oom(err);
  struct stat st;
  if (lstat(target, &st) == 0 && S_ISREG(st.st_mode)) {
    unlink(staged);
    r = update_old_meta(s, meta, err);
  } else {
    if (chmod(staged, 0444) < 0)
      return qvm_error_set_errno(err, errno, "cannot chmod '%s'", staged);
    /* The meta first: an image file is never visible without it. */
    if ((r = meta_write(s, meta, err)) < 0) return r;
    if (rename(staged, target) < 0)
      return qvm_error_set_errno(err, errno, "cannot move '%s' into the store", staged);
    _cleanup_close_ int dfd = open(s->sha_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) fsync(dfd);
  }
  if (r < 0 || !name) return r;
  struct json_object *names = NULL;
  if ((r = names_read(&names, s, err)) < 0) return r;
  char ref[72];
  snprintf(ref, sizeof ref, "sha256:%s", meta->digest);
  json_object_object_add(names, name, json_object_new_string(ref));
  r = names_write(s, names, err);
  json_object_put(names);
  return r;
}

/* ---- lookup ---- */

static int digest_by_prefix(char out[65], img_store *s, const char *prefix, qvm_error **err) {
  DIR *d = opendir(s->sha_dir);
  if (!d) return qvm_error_set_errno(err, errno, "cannot list '%s'", s->sha_dir);
  size_t n = strlen(prefix), found = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strlen(de->d_name) != 64 || !is_hex(de->d_name, 64) || strncmp(de->d_name, prefix, n))
      continue;
    if (found++ == 0) memcpy(out, de->d_name, 65);
  }
  closedir(d);
  if (found == 0) return qvm_error_set(err, QVM_ENOTFOUND, "image 'sha256:%s' not found", prefix);
  if (found > 1)
    return qvm_error_set(err, QVM_EINVAL, "image prefix 'sha256:%s' matches %zu images", prefix,
                         found);
  return 0;
}

static int ref_digest(char out[65], img_store *s, const char *ref, struct json_object *names,
                      qvm_error **err) {
  if (!strncmp(ref, "sha256:", 7)) {
    const char *hex = ref + 7;
    size_t n = strlen(hex);
    if (n < 12 || n > 64 || !is_hex(hex, n)) {
      _cleanup_free_ char *safe = qvm_text_for_terminal(ref, strlen(ref), 0);
      return qvm_error_set(err, QVM_EINVAL,
                           "image reference '%s' is invalid: give sha256: and 12 to 64 lowercase "
                           "hex digits",
                           safe ? safe : "?");
    }
    if (n == 64) {
      memcpy(out, hex, 65);
      return 0;
    }
    return digest_by_prefix(out, s, hex, err);
  }
  int r = img_name_check(ref, err);
  if (r < 0) return r;
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(names, ref, &v))
    return qvm_error_set(err, QVM_ENOTFOUND, "image '%s' not found", ref);
  memcpy(out, json_object_get_string(v) + 7, 65);
  return 0;
}

int img_store_lookup(img_meta *out, char **out_path, img_store *s, const char *ref,
                     qvm_error **err) {
  struct json_object *names = NULL;
  int r = names_read(&names, s, err);
  if (r < 0) return r;
  char digest[65];
  r = ref_digest(digest, s, ref, names, err);
  if (r == 0) r = load(out, out_path, s, digest, names, err);
  json_object_put(names);
  return r;
}

static int meta_cmp(const void *a, const void *b) {
  const img_meta *x = a, *y = b;
  if (x->created_ms != y->created_ms) return x->created_ms < y->created_ms ? -1 : 1;
  return strcmp(x->digest, y->digest);
}

int img_store_list(img_meta **out, size_t *out_n, img_store *s, qvm_error **err) {
  struct json_object *names = NULL;
  int r = names_read(&names, s, err);
  if (r < 0) return r;
  DIR *d = opendir(s->sha_dir);
  if (!d) {
    json_object_put(names);
    return qvm_error_set_errno(err, errno, "cannot list '%s'", s->sha_dir);
  }
  img_meta *list = NULL;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strlen(de->d_name) != 64 || !is_hex(de->d_name, 64)) continue;
    img_meta *nl = reallocarray(list, n + 1, sizeof *nl);
    if (!nl) {
      r = oom(err);
      break;
    }
    list = nl;
    memset(&list[n], 0, sizeof list[n]);
    qvm_error *e = NULL;
    r = load(&list[n], NULL, s, de->d_name, names, &e);
    if (r == QVM_ENOTFOUND) { /* removed meanwhile */
      qvm_error_free(e);
      r = 0;
      continue;
    }
    if (r < 0) {
      qvm_error_propagate(err, e);
      break;
    }
    n++;
  }
  closedir(d);
  json_object_put(names);
  if (r < 0) {
    img_meta_list_free(list, n);
    return r;
  }
  if (n) qsort(list, n, sizeof *list, meta_cmp);
  *out = list;
  *out_n = n;
  return 0;
}

int img_store_find_source(img_meta *out, img_store *s, const char *source, qvm_error **err) {
  img_meta *list = NULL;
  size_t n = 0;
  memset(out, 0, sizeof *out);
  int r = img_store_list(&list, &n, s, err);
  if (r < 0) return r;
  for (size_t i = n; i-- > 0;) {
    if (!list[i].source || strcmp(list[i].source, source)) continue;
    *out = list[i];
    memset(&list[i], 0, sizeof list[i]);
    break;
  }
  img_meta_list_free(list, n);
  return 0;
}

/* ---- names and removal ---- */

int img_store_tag(img_store *s, const char *ref, const char *name, qvm_error **err) {
  int r = img_name_check(name, err);
  if (r < 0) return r;
  _cleanup_close_ int lock = -1;
  if ((r = img_store_lock(&lock, s, true, COMMIT_LOCK_MS, err)) < 0) return r;
  img_meta m = {0};
  if ((r = img_store_lookup(&m, NULL, s, ref, err)) < 0) return r;
  struct json_object *names = NULL;
  if ((r = names_read(&names, s, err)) == 0) {
    char v[72];
    snprintf(v, sizeof v, "sha256:%s", m.digest);
    json_object_object_add(names, name, json_object_new_string(v));
    r = names_write(s, names, err);
    json_object_put(names);
  }
  img_meta_clear(&m);
  return r;
}

int img_store_untag(img_store *s, const char *name, qvm_error **err) {
  int r = img_name_check(name, err);
  if (r < 0) return r;
  _cleanup_close_ int lock = -1;
  if ((r = img_store_lock(&lock, s, true, COMMIT_LOCK_MS, err)) < 0) return r;
  struct json_object *names = NULL;
  if ((r = names_read(&names, s, err)) < 0) return r;
  if (!json_object_object_get_ex(names, name, NULL))
    r = qvm_error_set(err, QVM_ENOTFOUND, "image '%s' not found", name);
  else {
    json_object_object_del(names, name);
    r = names_write(s, names, err);
  }
  json_object_put(names);
  return r;
}

int img_store_remove_locked(img_store *s, const char *digest, qvm_error **err) {
  if (strlen(digest) != 64 || !is_hex(digest, 64))
    return qvm_error_set(err, QVM_EINVAL, "image digest is not 64 lowercase hex digits");
  _cleanup_free_ char *path = NULL, *meta = NULL;
  if (asprintf(&path, "%s/%s", s->sha_dir, digest) < 0 ||
      asprintf(&meta, "%s/%s.json", s->meta_dir, digest) < 0)
    return oom(err);
  struct json_object *names = NULL;
  int r = names_read(&names, s, err);
  if (r < 0) return r;
  /* Names first: a crash between leaves an unnamed image (prune removes
   * it), never a name for a missing image. */
  struct json_object *keep = json_object_new_object();
  bool changed = false;
  json_object_object_foreach(names, k, v) {
    if (!strcmp(json_object_get_string(v) + 7, digest))
      changed = true;
    else
      json_object_object_add(keep, k, json_object_get(v));
  }
  json_object_put(names);
  if (changed) r = names_write(s, keep, err);
  json_object_put(keep);
  if (r < 0) return r;
  if (unlink(path) < 0) {
    if (errno == ENOENT)
      return qvm_error_set(err, QVM_ENOTFOUND, "image 'sha256:%s' not found", digest);
    return qvm_error_set_errno(err, errno, "cannot remove '%s'", path);
  }
  if (unlink(meta) < 0 && errno != ENOENT)
    return qvm_error_set_errno(err, errno, "cannot remove '%s'", meta);
  return 0;
}

/* "<key>.part" and "<key>.img" (a pull's download and content) are in use
 * while "<key>.lock" is held. */
static bool keyed_in_use(img_store *s, const char *name) {
  const char *dot = strchr(name, '.');
  if (!dot || dot - name != 64 || !strncmp(dot, ".lock", 6)) return false;
  _cleanup_free_ char *lock = NULL;
  if (asprintf(&lock, "%s/%.64s.lock", s->tmp_dir, name) < 0) return true;
  _cleanup_close_ int fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  return flock(fd, LOCK_EX | LOCK_NB) < 0;
}

int img_store_prune_tmp(uint64_t *out_bytes, img_store *s, int64_t min_age_ms, qvm_error **err) {
  *out_bytes = 0;
  DIR *d = opendir(s->tmp_dir);
  if (!d) return qvm_error_set_errno(err, errno, "cannot list '%s'", s->tmp_dir);
  int64_t now = now_ms();
  struct dirent *de;
  int r = 0;
  while ((de = readdir(d))) {
    const char *n = de->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
    const char *dot = strrchr(n, '.');
    if (dot && !strcmp(dot, ".lock")) continue; /* unlinking a lock file races its next taker */
    struct stat st;
    if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
    int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    if (now - mtime < min_age_ms || keyed_in_use(s, n)) continue;
    if (unlinkat(dirfd(d), n, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0) {
      if (errno == ENOENT) continue;
      r = qvm_error_set_errno(err, errno, "cannot remove '%s/%s'", s->tmp_dir, n);
      break;
    }
    *out_bytes += (uint64_t)st.st_size;
  }
  closedir(d);
  return r;
}
