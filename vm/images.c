/* SPDX-License-Identifier: MIT */
/* The public image API (include/qvm/image.h) over image/store and
 * image/catalog: list, inspect, tag, remove, prune, catalog, resolve. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <qvm/image.h>
#include <qvm/text.h>
#include <qvm/vm.h>

#include "image/catalog.h"
#include "util/cleanup.h"
#include "util/time.h"
#include "vm/images.h"
#include "vm/record.h"
#include "vm/state.h"

#define PRUNE_TMP_MIN_AGE_MS (60 * 60 * 1000)
#define STORE_LOCK_MS 60000

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

int images_store_open(img_store **out, qvm_error **err) {
  _cleanup_free_ char *state = NULL, *root = NULL;
  int r = vm_state_root(&state, err);
  if (r < 0) return r;
  if ((r = vm_private_dir(state, err)) < 0) return r;
  if (asprintf(&root, "%s/images", state) < 0) return oom(err);
  return img_store_open(out, root, err);
}

char *images_url_without_userinfo(const char *url) {
  const char *scheme = strstr(url, "://");
  if (!scheme) return strdup(url);
  const char *host = scheme + 3;
  size_t auth_len = strcspn(host, "/?#");
  const char *at = memrchr(host, '@', auth_len);
  if (!at) return strdup(url);
  char *out = NULL;
  if (asprintf(&out, "%.*s%s", (int)(host - url), url, at + 1) < 0) return NULL;
  return out;
}

static void add_str(struct json_object *o, const char *k, const char *v) {
  if (!v) {
    json_object_object_add(o, k, NULL);
    return;
  }
  _cleanup_free_ char *safe = qvm_text_for_terminal(v, strlen(v), 0);
  json_object_object_add(o, k, json_object_new_string(safe ? safe : ""));
}

static bool same_file(const char *a, const struct stat *b) {
  struct stat st;
  return a && stat(a, &st) == 0 && st.st_dev == b->st_dev && st.st_ino == b->st_ino;
}

int images_used_by(struct json_object **out, const char *path, qvm_error **err) {
  struct stat target;
  struct json_object *users = json_object_new_array();
  if (!users) return oom(err);
  if (stat(path, &target) < 0) {
    *out = users;
    return 0;
  }
  char **names = NULL;
  size_t n = 0;
  int r = qvm_vm_list(&names, &n, err);
  if (r < 0) {
    json_object_put(users);
    return r;
  }
  for (size_t i = 0; i < n; i++) {
    vm_paths p = {0};
    vm_record *rec = NULL;
    /* A VM whose record cannot be read is not counted: it cannot start either. */
    if (vm_paths_init(&p, names[i], NULL) == 0 && vm_record_read(&rec, p.json, NULL) == 0 &&
        rec->spec && rec->spec->image &&
        (!strcmp(rec->spec->image, path) || same_file(rec->spec->image, &target)))
      json_object_array_add(users, json_object_new_string(names[i]));
    vm_record_free(rec);
    vm_paths_clear(&p);
  }
  qvm_vm_names_free(names, n);
  *out = users;
  return 0;
}

int images_record(struct json_object **out, img_store *s, const img_meta *m, qvm_error **err) {
  struct json_object *o = json_object_new_object(), *names = json_object_new_array();
  if (!o || !names) {
    json_object_put(o);
    json_object_put(names);
    return oom(err);
  }
  char ref[72], created[32];
  snprintf(ref, sizeof ref, "sha256:%s", m->digest);
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/sha256/%s", img_store_root(s), m->digest) < 0) {
    json_object_put(o);
    json_object_put(names);
    return oom(err);
  }
  add_str(o, "digest", ref);
  for (size_t i = 0; i < m->n_names; i++)
    json_object_array_add(names, json_object_new_string(m->names[i]));
  json_object_object_add(o, "names", names);
  add_str(o, "path", path);
  add_str(o, "format", m->format);
  json_object_object_add(o, "virtual_size", json_object_new_uint64(m->virtual_size));
  json_object_object_add(o, "file_size", json_object_new_uint64(m->file_size));
  add_str(o, "source", m->source);
  add_str(o, "source_sha256", m->source_sha256);
  add_str(o, "source_sha512", m->source_sha512);
  add_str(o, "verified", m->verified);
  add_str(o, "compression", m->compression);
  add_str(o, "tar_member", m->tar_member);
  qvm_format_rfc3339(created, m->created_ms * 1000);
  add_str(o, "created", created);
  struct json_object *users = NULL;
  int r = images_used_by(&users, path, err);
  if (r < 0) {
    json_object_put(o);
    return r;
  }
  json_object_object_add(o, "used_by", users);
  *out = o;
  return 0;
}

static int to_text(char **out, struct json_object *o, qvm_error **err) {
  const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
  *out = t ? strdup(t) : NULL;
  json_object_put(o);
  return *out ? 0 : oom(err);
}

int qvm_image_list(char **out_json, qvm_error **err) {
  _cleanup_(img_store_freep) img_store *s = NULL;
  int r = images_store_open(&s, err);
  if (r < 0) return r;
  img_meta *list = NULL;
  size_t n = 0;
  if ((r = img_store_list(&list, &n, s, err)) < 0) return r;
  struct json_object *arr = json_object_new_array();
  for (size_t i = 0; r == 0 && i < n; i++) {
    struct json_object *rec = NULL;
    if ((r = images_record(&rec, s, &list[i], err)) == 0) json_object_array_add(arr, rec);
  }
  img_meta_list_free(list, n);
  if (r < 0) {
    json_object_put(arr);
    return r;
  }
  return to_text(out_json, arr, err);
}

int qvm_image_inspect(char **out_json, const char *ref, qvm_error **err) {
  _cleanup_(img_store_freep) img_store *s = NULL;
  int r = images_store_open(&s, err);
  if (r < 0) return r;
  img_meta m = {0};
  if ((r = img_store_lookup(&m, NULL, s, ref, err)) < 0) return r;
  struct json_object *rec = NULL;
  r = images_record(&rec, s, &m, err);
  img_meta_clear(&m);
  return r < 0 ? r : to_text(out_json, rec, err);
}

int qvm_image_tag(const char *ref, const char *name, qvm_error **err) {
  _cleanup_(img_store_freep) img_store *s = NULL;
  int r = images_store_open(&s, err);
  return r < 0 ? r : img_store_tag(s, ref, name, err);
}

/* QVM_ECONFLICT naming the VMs when path is in use. */
static int check_unused(const char *path, const char *ref, qvm_error **err) {
  struct json_object *users = NULL;
  int r = images_used_by(&users, path, err);
  if (r < 0) return r;
  size_t n = json_object_array_length(users);
  if (n == 0) {
    json_object_put(users);
    return 0;
  }
  _cleanup_free_ char *list = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&list, &len);
  for (size_t i = 0; f && i < n; i++)
    fprintf(f, "%s%s", i ? " " : "", json_object_get_string(json_object_array_get_idx(users, i)));
  if (f) fclose(f);
  _cleanup_free_ char *safe = qvm_text_for_terminal(ref, strlen(ref), 0);
  qvm_error_set(err, QVM_ECONFLICT, "image '%s' is used by %s: %s", safe ? safe : "?",
                n == 1 ? "vm" : "vms", list ? list : "?");
  json_object_put(users);
  return qvm_error_set_hint(err, QVM_ECONFLICT, "ImageInUse", list);
}

int qvm_image_remove(const char *ref, qvm_error **err) {
  _cleanup_(img_store_freep) img_store *s = NULL;
  int r = images_store_open(&s, err);
  if (r < 0) return r;
  _cleanup_close_ int lock = -1;
  if ((r = img_store_lock(&lock, s, true, STORE_LOCK_MS, err)) < 0) return r;
  img_meta m = {0};
  _cleanup_free_ char *path = NULL;
  if ((r = img_store_lookup(&m, &path, s, ref, err)) < 0) return r;
  bool is_name = strncmp(ref, "sha256:", 7) != 0;
  if (is_name && m.n_names > 1) {
    /* Another name keeps the image: only this name goes. */
    img_meta_clear(&m);
    close(TAKE_FD(lock)); /* untag takes the lock itself */
    return img_store_untag(s, ref, err);
  }
  r = check_unused(path, ref, err);
  if (r == 0) r = img_store_remove_locked(s, m.digest, err);
  img_meta_clear(&m);
  return r;
}

int qvm_image_prune(char **out_json, qvm_error **err) {
  _cleanup_(img_store_freep) img_store *s = NULL;
  int r = images_store_open(&s, err);
  if (r < 0) return r;
  _cleanup_close_ int lock = -1;
  if ((r = img_store_lock(&lock, s, true, STORE_LOCK_MS, err)) < 0) return r;
  img_meta *list = NULL;
  size_t n = 0;
  if ((r = img_store_list(&list, &n, s, err)) < 0) return r;
  struct json_object *removed = json_object_new_array();
  uint64_t bytes = 0;
  for (size_t i = 0; r == 0 && i < n; i++) {
    if (list[i].n_names) continue;
    _cleanup_free_ char *path = NULL;
    struct json_object *users = NULL;
    if (asprintf(&path, "%s/sha256/%s", img_store_root(s), list[i].digest) < 0) {
      r = oom(err);
      break;
    }
    if ((r = images_used_by(&users, path, err)) < 0) break;
    bool used = json_object_array_length(users) > 0;
    json_object_put(users);
    if (used) continue;
    if ((r = img_store_remove_locked(s, list[i].digest, err)) < 0) break;
    char ref[72];
    snprintf(ref, sizeof ref, "sha256:%s", list[i].digest);
    json_object_array_add(removed, json_object_new_string(ref));
    bytes += list[i].file_size;
  }
  img_meta_list_free(list, n);
  uint64_t tmp_bytes = 0;
  if (r == 0) r = img_store_prune_tmp(&tmp_bytes, s, PRUNE_TMP_MIN_AGE_MS, err);
  if (r < 0) {
    json_object_put(removed);
    return r;
  }
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "removed", removed);
  json_object_object_add(o, "bytes", json_object_new_uint64(bytes + tmp_bytes));
  return to_text(out_json, o, err);
}

int qvm_image_catalog_path(char **out, qvm_error **err) {
  const char *v = getenv("QVM_CATALOG");
  int r;
  if (v && v[0])
    r = asprintf(out, "%s", v);
  else if (geteuid() == 0)
    r = asprintf(out, "/etc/qvm/catalog.yaml");
  else if ((v = getenv("XDG_CONFIG_HOME")) && v[0] == '/')
    r = asprintf(out, "%s/qvm/catalog.yaml", v);
  else if ((v = getenv("HOME")) && v[0] == '/')
    r = asprintf(out, "%s/.config/qvm/catalog.yaml", v);
  else
    return qvm_error_set(err, QVM_ENOTFOUND,
                         "cannot tell where the image catalog is: set "
                         "QVM_CATALOG");
  return r < 0 ? oom(err) : 0;
}

int qvm_image_catalog(char **out_json, qvm_error **err) {
  _cleanup_free_ char *file = NULL;
  int r = qvm_image_catalog_path(&file, err);
  if (r < 0) return r;
  img_catalog c = {0};
  if ((r = img_catalog_load(&c, file, err)) < 0) return r;
  _cleanup_(img_store_freep) img_store *s = NULL;
  if ((r = images_store_open(&s, err)) < 0) {
    img_catalog_clear(&c);
    return r;
  }
  struct json_object *arr = json_object_new_array();
  for (size_t i = 0; i < c.n; i++) {
    const img_catalog_entry *e = &c.entries[i];
    struct json_object *o = json_object_new_object();
    add_str(o, "alias", e->alias);
    /* credentials in a user catalog's URLs stay in the file */
    _cleanup_free_ char *url = images_url_without_userinfo(e->url);
    _cleanup_free_ char *sums = e->checksums ? images_url_without_userinfo(e->checksums) : NULL;
    add_str(o, "url", url ? url : "?");
    if (e->checksums) add_str(o, "checksums", sums ? sums : "?");
    if (e->sha256) add_str(o, "sha256", e->sha256);
    if (e->sha512) add_str(o, "sha512", e->sha512);
    add_str(o, "description", e->description);
    add_str(o, "origin", e->origin);
    img_meta m = {0};
    char ref[72] = "";
    if (img_store_lookup(&m, NULL, s, e->alias, NULL) == 0)
      snprintf(ref, sizeof ref, "sha256:%s", m.digest);
    img_meta_clear(&m);
    add_str(o, "stored", ref[0] ? ref : NULL);
    json_object_array_add(arr, o);
  }
  img_catalog_clear(&c);
  return to_text(out_json, arr, err);
}

static bool is_url(const char *ref) {
  return !strncmp(ref, "http://", 7) || !strncmp(ref, "https://", 8) || !strncmp(ref, "file://", 7);
}

/* A path: it has a '/' or starts with '.', or it cannot be a name, a
 * digest or a URL. A bare name is a file only when neither the store nor the
 * catalog knows it (qvm_image_resolve): a file another user left in the
 * current directory must not stand in for 'debian-12'. */
static bool is_path(const char *ref) {
  return strchr(ref, '/') || ref[0] == '.' || (!img_name_valid(ref) && strncmp(ref, "sha256:", 7));
}

static bool is_file(const char *ref) {
  struct stat st;
  return stat(ref, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_alias(bool *out, const char *ref, qvm_error **err) {
  _cleanup_free_ char *file = NULL;
  img_catalog cat = {0};
  int r = qvm_image_catalog_path(&file, err);
  if (r >= 0) r = img_catalog_load(&cat, file, err);
  if (r >= 0) *out = img_catalog_find(&cat, ref) != NULL;
  img_catalog_clear(&cat);
  return r;
}

static int file_path(char **out_path, const char *ref, qvm_error **err) {
  char real[PATH_MAX];
  if (!realpath(ref, real))
    return qvm_error_set_code_errno(err, errno == ENOENT ? QVM_ENOTFOUND : QVM_ESYS, errno,
                                    "disk image '%s' cannot be opened", ref);
  return (*out_path = strdup(real)) ? 0 : oom(err);
}

static int stored(char **out_path, char **out_format, img_store *s, const char *ref,
                  qvm_error **err) {
  img_meta m = {0};
  int r = img_store_lookup(&m, out_path, s, ref, err);
  if (r < 0) return r;
  *out_format = m.format ? strdup(m.format) : NULL;
  img_meta_clear(&m);
  if (!*out_format) {
    free(TAKE_PTR(*out_path));
    return qvm_error_set(err, QVM_EINVAL, "image '%s' has no recorded format", ref);
  }
  return 0;
}

/* The store path of what a pull's JSON result names. */
static int pulled(char **out_path, char **out_format, img_store *s, const char *json,
                  qvm_error **err) {
  struct json_object *o = json_tokener_parse(json), *d = NULL;
  int r = o && json_object_object_get_ex(o, "digest", &d)
              ? stored(out_path, out_format, s, json_object_get_string(d), err)
              : qvm_error_set(err, QVM_EPROTO, "a pull returned no digest");
  json_object_put(o);
  return r;
}

int qvm_image_resolve(char **out_path, char **out_format, const char *ref,
                      const qvm_image_pull_options *opts, qvm_error **err) {
  *out_path = NULL;
  *out_format = NULL;
  if (!ref || !ref[0]) return qvm_error_set(err, QVM_EINVAL, "image reference is empty");
  if (!is_url(ref) && is_path(ref)) return file_path(out_path, ref, err);
  _cleanup_(img_store_freep) img_store *s = NULL;
  int r = images_store_open(&s, err);
  if (r < 0) return r;
  if (!is_url(ref)) {
    qvm_error *e = NULL;
    r = stored(out_path, out_format, s, ref, &e);
    if (r == 0) return 0;
    if (r != QVM_ENOTFOUND || !strncmp(ref, "sha256:", 7)) return qvm_error_propagate(err, e);
    qvm_error_free(e); /* not a store name: maybe an alias */
  } else {
    img_meta m = {0};
    _cleanup_free_ char *clean = images_url_without_userinfo(ref);
    if (!clean) return oom(err);
    if ((r = img_store_find_source(&m, s, clean, err)) < 0) return r;
    bool have = m.digest[0] != '\0';
    char dref[72];
    snprintf(dref, sizeof dref, "sha256:%s", m.digest);
    img_meta_clear(&m);
    /* An expected digest or checksum file: the pull decides whether the
     * stored image is the one asked for (it may have been pulled with
     * another checksum, or none). */
    bool expects = opts && (opts->sha256 || opts->sha512 || opts->checksums);
    if (have && !expects) return stored(out_path, out_format, s, dref, err);
  }
  if (!is_url(ref)) {
    /* neither stored nor an alias: a file of that name, if there is one */
    bool alias = false;
    if ((r = is_alias(&alias, ref, err)) < 0) return r;
    if (!alias && is_file(ref)) return file_path(out_path, ref, err);
  }
  _cleanup_free_ char *json = NULL;
  if ((r = qvm_image_pull(&json, ref, opts, err)) < 0) return r;
  return pulled(out_path, out_format, s, json, err);
}
