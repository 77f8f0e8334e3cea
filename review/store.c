/* SPDX-License-Identifier: MIT */
/* Change sets on disk: ids, paths, meta.json, locks, hashes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "review/store.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"
#include "vm/audit.h"
#include "vm/state.h"
#include <qvm/audit.h>
#include <qvm/review.h>
#include <qvm/vm.h>

#define LOCK_WAIT_MS 10000
#define TREE_MAX_ENTRIES 100000
#define TREE_MAX_DEPTH 32
#define META_MAX (4u << 20)

bool qvm_review_id_valid(const char *id) {
  return id && strlen(id) == QVM_REVIEW_ID_LEN &&
         strspn(id, "0123456789abcdef") == QVM_REVIEW_ID_LEN;
}

int review_root(char **out, bool prepare, qvm_error **err) {
  _cleanup_free_ char *state = NULL;
  int r = vm_state_root(&state, err);
  if (r < 0) return r;
  if (asprintf(out, "%s/reviews", state) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if (prepare && ((r = vm_private_dir(state, err)) < 0 || (r = vm_private_dir(*out, err)) < 0)) {
    free(*out);
    *out = NULL;
    return r;
  }
  return 0;
}

int review_dir(char **out, const char *id, qvm_error **err) {
  *out = NULL;
  if (!qvm_review_id_valid(id))
    return qvm_error_set(err, QVM_EINVAL, "review id '%.64s' is invalid (12 hex digits)",
                         id ? id : "");
  _cleanup_free_ char *root = NULL;
  int r = review_root(&root, false, err);
  if (r < 0) return r;
  _cleanup_free_ char *dir = NULL;
  if (asprintf(&dir, "%s/%s", root, id) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  struct stat st;
  if (lstat(dir, &st) < 0) {
    if (errno == ENOENT) {
      qvm_error_set(err, QVM_ENOTFOUND, "no review '%s'", id);
      return qvm_error_set_hint(err, QVM_ENOTFOUND, "ReviewUnknown", id);
    }
    return qvm_error_set_errno(err, errno, "cannot read review '%s'", id);
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
    return qvm_error_set(err, QVM_EINVAL, "review '%s' is not a directory of this user", id);
  *out = TAKE_PTR(dir);
  return 0;
}

static int lock_take(int *out, const char *dir, const char *id, qvm_error **err) {
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/lock", dir) < 0) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open the lock of review '%s'", id);
  int64_t deadline = qvm_now_ms() + LOCK_WAIT_MS;
  while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    if (errno != EWOULDBLOCK && errno != EINTR)
      return qvm_error_set_errno(err, errno, "cannot lock review '%s'", id);
    if (qvm_now_ms() >= deadline)
      return qvm_error_set(err, QVM_EBUSY, "review '%s' is locked by another qvm command", id);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  *out = TAKE_FD(fd);
  return 0;
}

static int meta_read(struct json_object **out, const char *dir, const char *id, qvm_error **err) {
  _cleanup_free_ char *path = NULL, *text = NULL;
  size_t len = 0;
  if (asprintf(&path, "%s/" REVIEW_META, dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = qvm_read_file(&text, &len, path, META_MAX, err);
  if (r < 0) return qvm_error_prefix(err, "review '%s'", id);
  struct json_tokener *tok = json_tokener_new();
  if (!tok) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  struct json_object *o = json_tokener_parse_ex(tok, text, (int)len);
  bool whole = json_tokener_get_error(tok) == json_tokener_success &&
               (size_t)json_tokener_get_parse_end(tok) == len;
  json_tokener_free(tok);
  if (!o || !whole || strlen(text) != len) {
    json_object_put(o);
    return qvm_error_set(err, QVM_EINVAL, "review '%s': meta.json is corrupt (not one JSON object)",
                         id);
  }
  if ((r = review_meta_check(o, id, err)) < 0) {
    json_object_put(o);
    return qvm_error_prefix(err, "review '%s': meta.json is corrupt", id);
  }
  *out = o;
  return 0;
}

int review_open(review *out, const char *id, qvm_error **err) {
  return review_open_as(out, id, true, err);
}

int review_open_as(review *out, const char *id, bool lock, qvm_error **err) {
  *out = (review){.lock_fd = -1};
  int r = review_dir(&out->dir, id, err);
  if (r < 0) return r;
  snprintf(out->id, sizeof out->id, "%s", id);
  if ((lock && (r = lock_take(&out->lock_fd, out->dir, id, err)) < 0) ||
      (r = meta_read(&out->meta, out->dir, id, err)) < 0) {
    review_close(out);
    return r;
  }
  return 0;
}

void review_close(review *r) {
  free(r->dir);
  if (r->lock_fd >= 0) close(r->lock_fd);
  json_object_put(r->meta);
  *r = (review){.lock_fd = -1};
}

int review_save(review *r, qvm_error **err) {
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/" REVIEW_META, r->dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  const char *text = json_object_to_json_string_ext(r->meta, JSON_C_TO_STRING_PRETTY |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
  return qvm_write_file_atomic(path, text, strlen(text), 0600, err);
}

/* --- meta.json's shape ---------------------------------------------------------- */

const char *review_meta_string(struct json_object *meta, const char *key) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(meta, key, &v) && json_object_is_type(v, json_type_string)
             ? json_object_get_string(v)
             : NULL;
}

static bool hex64(const char *s) {
  return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static bool status_known(const char *s) {
  static const char *const known[] = {REVIEW_PENDING, REVIEW_PENDING_DIFF, REVIEW_APPROVED,
                                      REVIEW_REJECTED, REVIEW_APPLIED};
  for (size_t i = 0; s && i < QVM_ARRAY_SIZE(known); i++)
    if (!strcmp(s, known[i])) return true;
  return false;
}

static int actor_check(struct json_object *a, const char *what, qvm_error **err) {
  struct json_object *v = NULL;
  if (!json_object_is_type(a, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not an object", what);
  if (!json_object_object_get_ex(a, "agent", &v) || json_object_is_type(v, json_type_null))
    return 0;
  if (!json_object_is_type(v, json_type_string) ||
      !qvm_audit_agent_valid(json_object_get_string(v)))
    return qvm_error_set(err, QVM_EINVAL, "'%s.agent' is not an agent id", what);
  return 0;
}

static struct json_object *member(struct json_object *o, const char *key, json_type type) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, type) ? v : NULL;
}

int review_meta_check(struct json_object *meta, const char *id, qvm_error **err) {
  if (!json_object_is_type(meta, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "not an object");
  struct json_object *v = member(meta, "version", json_type_int);
  if (!v || json_object_get_int64(v) != 1)
    return qvm_error_set(err, QVM_EINVAL, "'version' is not 1");
  const char *s = review_meta_string(meta, "id");
  if (!s || strcmp(s, id)) return qvm_error_set(err, QVM_EINVAL, "'id' is not the review's own");
  if (!qvm_vm_name_valid(review_meta_string(meta, "vm")))
    return qvm_error_set(err, QVM_EINVAL, "'vm' is not a vm name");
  if (!status_known(review_meta_string(meta, "status")))
    return qvm_error_set(err, QVM_EINVAL, "'status' is not a known status");
  if (!hex64(review_meta_string(meta, "diff_sha256")) ||
      !hex64(review_meta_string(meta, "playbook_sha256")))
    return qvm_error_set(err, QVM_EINVAL, "'diff_sha256' or 'playbook_sha256' is not a sha256");
  if (!review_meta_string(meta, "created"))
    return qvm_error_set(err, QVM_EINVAL, "'created' is missing");
  int r = actor_check(member(meta, "author", json_type_object), "author", err);
  if (r < 0) return r;
  if (!member(meta, "history", json_type_array) || !member(meta, "applies", json_type_array))
    return qvm_error_set(err, QVM_EINVAL, "'history' or 'applies' is not an array");
  struct json_object *ap = member(meta, "approval", json_type_object);
  s = review_meta_string(meta, "status");
  bool approved = !strcmp(s, REVIEW_APPROVED) || !strcmp(s, REVIEW_APPLIED);
  if (approved != (ap != NULL))
    return qvm_error_set(err, QVM_EINVAL, "'approval' does not match status '%s'", s);
  if (ap && (!hex64(review_meta_string(ap, "diff_sha256")) ||
             !hex64(review_meta_string(ap, "playbook_sha256")) ||
             (r = actor_check(member(ap, "actor", json_type_object), "approval.actor", err)) < 0))
    return r < 0 ? r : qvm_error_set(err, QVM_EINVAL, "'approval' has no sha256s");
  return 0;
}

/* --- actors, history, audit --------------------------------------------------------- */

struct json_object *review_actor(const char *agent) {
  struct json_object *a = json_object_new_object();
  uid_t uid = getuid();
  struct passwd pw, *res = NULL;
  char buf[4096];
  json_object_object_add(a, "uid", json_object_new_int64(uid));
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res)
    json_object_object_add(a, "user", vm_audit_string(pw.pw_name, 256, NULL));
  if (!agent) agent = getenv("QVM_AGENT");
  json_object_object_add(
      a, "agent", agent && qvm_audit_agent_valid(agent) ? json_object_new_string(agent) : NULL);
  return a;
}

const char *review_actor_agent(struct json_object *actor) {
  return review_meta_string(actor, "agent");
}

void review_history_add(struct json_object *meta, const char *action, const char *comment,
                        struct json_object *extra) {
  struct json_object *h = member(meta, "history", json_type_array);
  struct json_object *e = extra ? extra : json_object_new_object();
  char now[32];
  qvm_format_rfc3339(now, qvm_realtime_us());
  json_object_object_add(e, "action", json_object_new_string(action));
  if (!json_object_object_get_ex(e, "actor", NULL))
    json_object_object_add(e, "actor", review_actor(NULL));
  json_object_object_add(e, "time", json_object_new_string(now));
  if (comment) json_object_object_add(e, "comment", json_object_new_string(comment));
  if (h)
    json_object_array_add(h, e);
  else
    json_object_put(e);
}

void review_audit(const char *vm, const char *action, const char *id, int r,
                  const qvm_error *const *err, struct json_object *details) {
  struct json_object *d = details ? details : json_object_new_object();
  json_object_object_add(d, "review", id ? json_object_new_string(id) : NULL);
  vm_audit_note(qvm_vm_name_valid(vm) ? vm : NULL, action, r, err, d);
}

int review_comment_check(const char *comment, qvm_error **err) {
  if (!comment) return 0;
  size_t n = strlen(comment);
  if (n > REVIEW_COMMENT_MAX)
    return qvm_error_set(err, QVM_EINVAL, "comment is longer than %d bytes", REVIEW_COMMENT_MAX);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)comment[i];
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
      return qvm_error_set(err, QVM_EINVAL, "comment holds a control byte (0x%02x)", c);
  }
  /* vm_audit_string() turns a bad byte into U+FFFD: what it changed was not UTF-8. */
  struct json_object *s = vm_audit_string(comment, REVIEW_COMMENT_MAX, NULL);
  bool same = s && !strcmp(json_object_get_string(s), comment);
  json_object_put(s);
  if (!same) return qvm_error_set(err, QVM_EINVAL, "comment is not valid UTF-8");
  return 0;
}

/* --- hashes ---------------------------------------------------------------------- */

static int hash_fd(char out[65], int fd, const char *what, qvm_error **err) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  unsigned char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return qvm_error_set_errno(err, errno, "cannot read '%s'", what);
    if (n == 0) break;
    crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
  }
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, h);
  sodium_bin2hex(out, 65, h, sizeof h);
  return 0;
}

int review_hash_file(char out[65], const char *path, qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", path);
  return hash_fd(out, fd, path, err);
}

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* The sorted names in dirfd (without . and ..). */
static int names_read(char ***out, size_t *out_n, int dirfd, size_t *budget, const char *what,
                      qvm_error **err) {
  int fd = dup(dirfd);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0) close(fd);
    return qvm_error_set_errno(err, errno, "cannot read '%s'", what);
  }
  rewinddir(d);
  char **v = NULL;
  size_t n = 0;
  struct dirent *e;
  int r = 0;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char **nv = (*budget)-- == 0 ? NULL : reallocarray(v, n + 1, sizeof *v);
    if (!nv || !(nv[n] = strdup(e->d_name))) {
      if (nv) v = nv;
      r = qvm_error_set(err, QVM_EINVAL, "'%s' holds too many files", what);
      break;
    }
    v = nv;
    n++;
  }
  closedir(d);
  if (r < 0) return names_free(v, n), r;
  if (n) qsort(v, n, sizeof *v, name_cmp);
  *out = v;
  *out_n = n;
  return 0;
}

static int tree_walk(crypto_hash_sha256_state *st, int dirfd, const char *rel, int depth,
                     size_t *budget, qvm_error **err) {
  if (depth > TREE_MAX_DEPTH)
    return qvm_error_set(err, QVM_EINVAL, "playbook dir is deeper than %d levels at '%s'",
                         TREE_MAX_DEPTH, rel);
  char **names = NULL;
  size_t n = 0;
  int r = names_read(&names, &n, dirfd, budget, rel, err);
  for (size_t i = 0; r == 0 && i < n; i++) {
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/%s", rel, names[i]) < 0) {
      r = qvm_error_set_errno(err, ENOMEM, "out of memory");
      break;
    }
    struct stat s;
    if (fstatat(dirfd, names[i], &s, AT_SYMLINK_NOFOLLOW) < 0) {
      r = qvm_error_set_errno(err, errno, "cannot stat '%s'", path);
    } else if (S_ISDIR(s.st_mode)) {
      crypto_hash_sha256_update(st, (const unsigned char *)"d ", 2);
      crypto_hash_sha256_update(st, (const unsigned char *)path, strlen(path) + 1);
      crypto_hash_sha256_update(st, (const unsigned char *)"\n", 1);
      _cleanup_close_ int sub =
          openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      r = sub < 0 ? qvm_error_set_errno(err, errno, "cannot open '%s'", path)
                  : tree_walk(st, sub, path, depth + 1, budget, err);
    } else if (S_ISREG(s.st_mode)) {
      _cleanup_close_ int f = openat(dirfd, names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      char h[65];
      r = f < 0 ? qvm_error_set_errno(err, errno, "cannot open '%s'", path)
                : hash_fd(h, f, path, err);
      if (r == 0) {
        crypto_hash_sha256_update(st, (const unsigned char *)"f ", 2);
        crypto_hash_sha256_update(st, (const unsigned char *)path, strlen(path) + 1);
        crypto_hash_sha256_update(st, (const unsigned char *)h, 64);
        crypto_hash_sha256_update(st, (const unsigned char *)"\n", 1);
      }
    } else {
      r = qvm_error_set(err, QVM_EINVAL, "playbook dir holds '%s', neither a file nor a directory",
                        path);
    }
  }
  names_free(names, n);
  return r;
}

int review_hash_tree(char out[65], const char *dir, qvm_error **err) {
  _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", dir);
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  size_t budget = TREE_MAX_ENTRIES;
  int r = tree_walk(&st, fd, ".", 0, &budget, err);
  if (r < 0) return r;
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, h);
  sodium_bin2hex(out, 65, h, sizeof h);
  return 0;
}

int review_hashes(char diff[65], char playbook[65], const char *dir, qvm_error **err) {
  _cleanup_free_ char *d = NULL, *p = NULL;
  if (asprintf(&d, "%s/" REVIEW_DIFF, dir) < 0 || asprintf(&p, "%s/" REVIEW_PLAYBOOK_DIR, dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = review_hash_file(diff, d, err);
  return r < 0 ? r : review_hash_tree(playbook, p, err);
}
