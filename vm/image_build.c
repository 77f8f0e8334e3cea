/* SPDX-License-Identifier: MIT */
/* qvm_image_build (include/qvm/image.h): image/build.c into the store's
 * tmp/, hashed, committed under a name; or into a file of the caller's. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <sodium.h>

#include "image/hash.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <qvm/image.h>

#include "image/build.h"
#include "image/store.h"
#include "util/cleanup.h"
#include "vm/state.h"

static inline void img_storep(img_store **s) { img_store_free(*s); }

typedef struct progress_relay {
  const qvm_image_build_options *opts;
} progress_relay;

static void relay_progress(const char *phase, void *userdata) {
  const progress_relay *p = userdata;
  qvm_image_progress ev = {.phase = phase, .eta_ms = -1};
  p->opts->progress(&ev, p->opts->userdata);
}

static int file_sha256(char hex[65], uint64_t *out_size, const char *path, qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", path);
  img_hash st = {0};
  _cleanup_free_ unsigned char *buf = malloc(1 << 20);
  if (!buf || !img_hash_begin(&st, false)) {
    img_hash_free(&st);
    return qvm_error_set_errno(err, ENOMEM, "hash");
  }
  uint64_t total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, 1 << 20);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      img_hash_free(&st);
      return qvm_error_set_errno(err, errno, "cannot read '%s'", path);
    }
    if (n == 0) break;
    img_hash_update(&st, buf, (size_t)n);
    total += (uint64_t)n;
  }
  unsigned char d[IMG_HASH_MAX];
  img_hash_final(&st, d);
  img_hash_free(&st);
  sodium_bin2hex(hex, 65, d, 32);
  *out_size = total;
  return 0;
}

static json_object *result_json(const img_build_result *r, const char *name, const char *output,
                                const char *digest, uint64_t file_size, const char *mirror) {
  json_object *o = json_object_new_object(), *pk = json_object_new_object();
  json_object_object_add(o, "digest", json_object_new_string(digest));
  json_object_object_add(o, "name", name ? json_object_new_string(name) : NULL);
  json_object_object_add(o, "output", output ? json_object_new_string(output) : NULL);
  json_object_object_add(o, "distro", json_object_new_string(r->distro->name));
  json_object_object_add(o, "suite", json_object_new_string(r->distro->suite));
  json_object_object_add(o, "format", json_object_new_string("qcow2"));
  json_object_object_add(o, "virtual_size", json_object_new_int64((int64_t)r->virtual_size));
  json_object_object_add(o, "file_size", json_object_new_int64((int64_t)file_size));
  json_object_object_add(o, "fs_size", json_object_new_int64((int64_t)r->fs_size));
  json_object_object_add(o, "root_tree_bytes", json_object_new_int64((int64_t)r->root_tree_bytes));
  json_object_object_add(o, "partition_table", json_object_new_string("dos"));
  json_object_object_add(o, "boot", json_object_new_string("bios-grub-mbr"));
  json_object_object_add(o, "fs_uuid", json_object_new_string(r->fs_uuid));
  json_object_object_add(o, "kernel", json_object_new_string(r->kernel));
  for (const char *p = r->packages; p && *p;) {
    size_t len = strcspn(p, "\n");
    const char *sp = memchr(p, ' ', len);
    if (sp) {
      char *key = strndup(p, (size_t)(sp - p));
      if (key)
        json_object_object_add(pk, key,
                               json_object_new_string_len(sp + 1, (int)(p + len - sp - 1)));
      free(key);
    }
    p += len + (p[len] == '\n');
  }
  json_object_object_add(o, "packages", pk);
  json_object_object_add(o, "package_count", json_object_new_int64((int64_t)r->n_packages));
  json_object_object_add(o, "mirror", mirror ? json_object_new_string(mirror) : NULL);
  json_object_object_add(o, "build_ms", json_object_new_int64(r->total_ms));
  json_object_object_add(o, "bootstrap_ms", json_object_new_int64(r->bootstrap_ms));
  return o;
}

static int emit_json(char **out_json, json_object *o, qvm_error **err) {
  if (!o) return qvm_error_set_errno(err, ENOMEM, "image build");
  const char *s =
      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
  char *copy = s ? strdup(s) : NULL;
  json_object_put(o);
  if (!copy) return qvm_error_set_errno(err, ENOMEM, "image build");
  *out_json = copy;
  return 0;
}

/* "build:debian-12" or "build:debian-12+pkg,pkg" (the store's source). */
static char *source_of(const qvm_image_build_options *o, const char *distro) {
  size_t len = strlen("build:") + strlen(distro) + 2;
  for (size_t i = 0; i < o->n_packages; i++) len += strlen(o->packages[i]) + 1;
  char *s = malloc(len);
  if (!s) return NULL;
  int n = snprintf(s, len, "build:%s", distro);
  for (size_t i = 0; i < o->n_packages; i++)
    n += snprintf(s + n, len - (size_t)n, "%s%s", i ? "," : "+", o->packages[i]);
  return s;
}

/* Into the caller's file: the temp dir and the staged file beside it (one
 * filesystem, so the final rename is atomic). */
static int build_to_file(img_build_result *res, img_build_opts *bo, const char *output,
                         qvm_error **err) {
  struct stat st;
  if (lstat(output, &st) == 0)
    return qvm_error_set(err, QVM_EEXISTS, "'%s' already exists", output);
  /* Everything is staged in a directory of our own with an unpredictable
   * name (mkdtemp, 0700) beside the output: no name another user can
   * guess and pre-create as a symlink, even in /tmp. */
  _cleanup_free_ char *copy = strdup(output), *stage = NULL, *tmpdir = NULL, *staged = NULL;
  if (!copy || asprintf(&stage, "%s/.qvm-build-XXXXXX", dirname(copy)) < 0)
    return qvm_error_set_errno(err, ENOMEM, "image build");
  if (!mkdtemp(stage))
    return qvm_error_set_errno(err, errno, "cannot create a directory beside '%s'", output);
  if (asprintf(&tmpdir, "%s/build", stage) < 0 || asprintf(&staged, "%s/disk.qcow2", stage) < 0) {
    rmdir(stage);
    return qvm_error_set_errno(err, ENOMEM, "image build");
  }
  bo->tmpdir = tmpdir;
  int r = img_build(res, staged, bo, err);
  if (r >= 0 && link(staged, output) < 0) {
    int e = errno;
    img_build_result_clear(res);
    r = e == EEXIST ? qvm_error_set(err, QVM_EEXISTS, "'%s' already exists", output)
                    : qvm_error_set_errno(err, e, "cannot create '%s'", output);
  }
  unlink(staged);
  rmdir(stage);
  return r;
}

static int build_to_store(img_build_result *res, char digest[65], uint64_t *file_size,
                          img_build_opts *bo, const char *name, const qvm_image_build_options *o,
                          qvm_error **err) {
  _cleanup_free_ char *state = NULL, *root = NULL, *tmpdir = NULL, *staged = NULL;
  _cleanup_(img_storep) img_store *store = NULL;
  int r;
  if ((r = vm_state_root(&state, err)) < 0 || (r = vm_private_dir(state, err)) < 0) return r;
  if (asprintf(&root, "%s/images", state) < 0)
    return qvm_error_set_errno(err, ENOMEM, "image build");
  if ((r = img_store_open(&store, root, err)) < 0 ||
      (r = img_store_tmp_path(&tmpdir, store, ".build", err)) < 0 ||
      (r = img_store_tmp_path(&staged, store, ".qcow2", err)) < 0)
    return r;
  bo->tmpdir = tmpdir;
  if ((r = img_build(res, staged, bo, err)) < 0) return r;
  _cleanup_free_ char *source = source_of(o, res->distro->name);
  img_meta meta = {.format = (char *)"qcow2",
                   .virtual_size = res->virtual_size,
                   .source = source,
                   .compression = (char *)"none"};
  r = source ? file_sha256(digest, file_size, staged, err)
             : qvm_error_set_errno(err, ENOMEM, "image build");
  if (r == 0) {
    memcpy(meta.digest, digest, 65);
    meta.file_size = *file_size;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    meta.created_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    r = img_store_commit(store, staged, &meta, name, err);
  }
  if (r < 0) {
    unlink(staged);
    img_build_result_clear(res);
  }
  return r;
}

int qvm_image_build(char **out_json, const char *name, const qvm_image_build_options *opts,
                    qvm_error **err) {
  static const qvm_image_build_options defaults = QVM_IMAGE_BUILD_OPTIONS_INIT;
  const qvm_image_build_options *o = opts ? opts : &defaults;
  if (QVM_OPTIONS_CHECK(o, qvm_image_build_options, QVM_IMAGE_BUILD_OPTIONS_VERSION, err) < 0)
    return QVM_EINVAL;
  if (o->output && name)
    return qvm_error_set(err, QVM_EINVAL, "an image written to a file gets no store name");
  if (!o->output && img_name_check(name, err) < 0) return QVM_EINVAL;
  progress_relay relay = {o};
  img_build_opts bo = {.distro = o->distro ? o->distro : "debian-12",
                       .packages = o->packages,
                       .n_packages = o->n_packages,
                       .size = o->size,
                       .mirror = o->mirror,
                       .progress = o->progress ? relay_progress : NULL,
                       .userdata = &relay};
  if (img_build_opts_check(&bo, err) < 0) return QVM_EINVAL;
  img_build_result res = {0};
  char digest[65] = "";
  uint64_t file_size = 0;
  int r = o->output ? build_to_file(&res, &bo, o->output, err)
                    : build_to_store(&res, digest, &file_size, &bo, name, o, err);
  if (r < 0) return r;
  if (o->output && (r = file_sha256(digest, &file_size, o->output, err)) < 0) {
    img_build_result_clear(&res);
    return r;
  }
  if (o->progress) relay_progress("done", &relay);
  if (out_json)
    r = emit_json(out_json, result_json(&res, name, o->output, digest, file_size, o->mirror), err);
  img_build_result_clear(&res);
  return r;
}
