/* SPDX-License-Identifier: MIT */
/* qvm_image_import_vm: a VM's disk state (disk.qcow2 over its image),
 * flattened by `qemu-img convert` into one standalone qcow2 in the store's
 * tmp/, hashed and committed like a pull (docs/ARCHITECTURE.md, "Clones").
 * A running VM is read at a consistent point: an internal snapshot (the
 * user's, or a temporary one qvm takes and deletes over QMP). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <qvm/image.h>
#include <qvm/vm.h>

#include "image/hash.h"
#include "util/cleanup.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "vm/handle.h"
#include "vm/image.h"
#include "vm/images.h"
#include "vm/qcow2.h"
#include "vm/shim_ctl.h"

#define IMPORT_QMP_TIMEOUT_MS (SHIM_CTL_QMP_TIMEOUT_MS + 5000)
#define IMPORT_LOCK_TIMEOUT_MS 30000
#define STORE_LOCK_MS 60000

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

static void report(const qvm_image_import_options *o, const char *phase, uint64_t done,
                   uint64_t total) {
  if (!o || !o->progress) return;
  qvm_image_progress ev = {.phase = phase, .done = done, .total = total, .eta_ms = -1};
  o->progress(&ev, o->userdata);
}

bool vm_snapshot_name_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 64) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '.' || c == '_' || c == '-'));
    if (!ok) return false;
  }
  return true;
}

/* A keyval value for --image-opts: ',' doubled. */
static void keyval(qvm_strbuf *sb, const char *key, const char *value) {
  qvm_strbuf_printf(sb, ",%s=", key);
  for (const char *p = value; *p; p++) qvm_strbuf_printf(sb, *p == ',' ? ",," : "%c", *p);
}

/* disk.qcow2 as qemu-img opens it: the header was checked, and the backing
 * file is given here (the spec's image with its recorded format, or none),
 * never taken from a header a guest's QEMU may have rewritten. */
char *vm_disk_image_opts(const vm_spec *spec, const char *disk, bool with_backing) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_printf(&sb, "driver=qcow2,file.driver=file");
  keyval(&sb, "file.filename", disk);
  if (!with_backing) {
    /* qemu-img info opens no backing file (and takes no options for one) */
  } else if (spec->image) {
    keyval(&sb, "backing.driver", spec->image_format);
    qvm_strbuf_printf(&sb, ",backing.file.driver=file");
    keyval(&sb, "backing.file.filename", spec->image);
  } else {
    qvm_strbuf_printf(&sb, ",backing=");
  }
  return qvm_strbuf_steal(&sb);
}

static bool has_vm_disk(const vm_spec *s) {
  for (size_t i = 0; i < s->n_drives; i++)
    if (!strcmp(s->drives[i].path, "disk.qcow2")) return true;
  return false;
}

#define TMP_SNAPSHOT_PREFIX "qvm-import-"

/* The names of disk.qcow2's internal snapshots, from qemu-img's JSON
 * (bounded and type-checked: it comes from a header a guest may have
 * rewritten). Snapshots without a string name are skipped. */
int vm_disk_snapshots(char ***out, size_t *out_n, const char *opts, qvm_error **err) {
  char *argv[] = {"qemu-img", "info", "-U", "--output=json", "--image-opts", (char *)opts, NULL};
  _cleanup_free_ char *text = NULL;
  int r = vm_run_program(&text, argv, err);
  if (r < 0) return r;
  struct json_object *info = json_tokener_parse(text), *snaps = NULL;
  if (!info) return qvm_error_set(err, QVM_EINVAL, "qemu-img info printed no json");
  size_t n = json_object_object_get_ex(info, "snapshots", &snaps) &&
                     json_object_is_type(snaps, json_type_array)
                 ? json_object_array_length(snaps)
                 : 0;
  if (n > 65536) n = 65536;
  char **names = calloc(n + 1, sizeof *names);
  size_t k = 0;
  for (size_t i = 0; names && i < n; i++) {
    struct json_object *sn = json_object_array_get_idx(snaps, i), *v = NULL;
    if (json_object_object_get_ex(sn, "name", &v) && json_object_is_type(v, json_type_string) &&
        !(names[k++] = strdup(json_object_get_string(v))))
      r = -1;
  }
  json_object_put(info);
  if (!names || r < 0) {
    for (size_t i = 0; names && i < k; i++) free(names[i]);
    free(names);
    return oom(err);
  }
  *out = names;
  *out_n = k;
  return 0;
}

void vm_disk_snapshots_free(char **names, size_t n) {
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

static bool has_name(char *const *names, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(names[i], name)) return true;
  return false;
}

/* A temporary snapshot of ours ("qvm-import-" and 12 hex digits). */
static bool tmp_snapshot_name(const char *name) {
  size_t p = strlen(TMP_SNAPSHOT_PREFIX);
  if (strncmp(name, TMP_SNAPSHOT_PREFIX, p) || strlen(name) != p + 12) return false;
  return strspn(name + p, "0123456789abcdef") == 12;
}

int vm_tmp_snapshot_name(char out[32], qvm_error **err) {
  unsigned char rnd[6];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
    return qvm_error_set_errno(err, errno, "cannot get random bytes");
  snprintf(out, 32, TMP_SNAPSHOT_PREFIX "%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
           rnd[4], rnd[5]);
  return 0;
}

int vm_disk_qmp_snapshot(const qvm_vm *vm, const char *command, const char *name, qvm_error **err) {
  struct json_object *args = json_object_new_object(), *ret = NULL;
  if (!args) return oom(err);
  json_object_object_add(args, "device", json_object_new_string("disk"));
  json_object_object_add(args, "name", json_object_new_string(name));
  int r = vm_ctl_qmp(&ret, &vm->paths, command, args, IMPORT_QMP_TIMEOUT_MS, err);
  json_object_put(args);
  json_object_put(ret);
  return r;
}

static int hash_file(char out[65], uint64_t *out_size, const char *path, qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", path);
  enum { CHUNK = 1 << 20 };
  _cleanup_free_ unsigned char *buf = malloc(CHUNK);
  img_hash h = {0};
  if (!buf || !img_hash_begin(&h, false)) {
    img_hash_free(&h);
    return oom(err);
  }
  uint64_t total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      img_hash_free(&h);
      return qvm_error_set_errno(err, e, "cannot read '%s'", path);
    }
    if (n == 0) break;
    img_hash_update(&h, buf, (size_t)n);
    total += (uint64_t)n;
  }
  unsigned char md[IMG_HASH_MAX];
  img_hash_final(&h, md);
  img_hash_free(&h);
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
  *out_size = total;
  return fsync(fd) < 0 ? qvm_error_set_errno(err, errno, "cannot sync '%s'", path) : 0;
}

typedef struct import_ctx {
  qvm_vm *vm;
  const char *snapshot;
  const char *name;
  const qvm_image_import_options *o;
  img_store *s;
  char *staged;
  char digest[65];
  bool existed; /* the digest was in the store before this import */
} import_ctx;

/* qemu-img convert of disk.qcow2 (at snapshot, if any) into c->staged. */
static int convert(import_ctx *c, const char *opts, const char *snapshot, qvm_error **err) {
  _cleanup_free_ char *l = NULL;
  if (snapshot && asprintf(&l, "snapshot.name=%s", snapshot) < 0) return oom(err);
  char *argv[16];
  size_t n = 0;
  argv[n++] = "qemu-img";
  argv[n++] = "convert";
  argv[n++] = "-U";
  argv[n++] = "--image-opts";
  argv[n++] = "-O";
  argv[n++] = "qcow2";
  if (l) {
    argv[n++] = "-l";
    argv[n++] = l;
  }
  argv[n++] = (char *)opts;
  argv[n++] = c->staged;
  argv[n] = NULL;
  report(c->o, "convert", 0, 0);
  return vm_run_program(NULL, argv, err);
}

/* from (disk.qcow2, or the running VM's copy of it) checked, its snapshots
 * listed (the one asked for must be there; running: temporary ones left by
 * a killed import are deleted in the VM), then converted at snap. */
static int import_from(import_ctx *c, const char *from, const char *snap, bool running,
                       qvm_error **err) {
  qvm_vm *vm = c->vm;
  /* qemu-img runs as root: the header must name exactly the spec's image
   * (or nothing) and no data file, as before every start. */
  vm_qcow2_policy policy = {.what = "vm disk",
                            .backing = vm->spec->image,
                            .backing_format = vm->spec->image_format,
                            .why = ": qemu-img would open it as root; qvm did not import it"};
  int r = vm_qcow2_check_file(from, &policy, err);
  if (r < 0) return r;
  _cleanup_free_ char *opts = vm_disk_image_opts(vm->spec, from, true);
  _cleanup_free_ char *info_opts = vm_disk_image_opts(vm->spec, from, false);
  if (!opts || !info_opts) return oom(err);
  char **snaps = NULL;
  size_t n_snaps = 0;
  if ((r = vm_disk_snapshots(&snaps, &n_snaps, info_opts, err)) < 0) return r;
  bool found = snap && has_name(snaps, n_snaps, snap);
  /* Under the VM's lock no other import runs: a temporary snapshot of
   * ours is left over from an import that was killed; QEMU deletes it. */
  for (size_t i = 0; running && i < n_snaps; i++)
    if (tmp_snapshot_name(snaps[i]) && !(snap && !strcmp(snaps[i], snap))) {
      qvm_error *derr = NULL;
      vm_disk_qmp_snapshot(vm, "blockdev-snapshot-delete-internal-sync", snaps[i], &derr);
      qvm_error_free(derr);
    }
  vm_disk_snapshots_free(snaps, n_snaps);
  if (snap && !found) {
    qvm_error_set(err, QVM_ENOTFOUND, "it has no snapshot '%s'", snap);
    return qvm_error_set_hint(err, QVM_ENOTFOUND, "SnapshotUnknown", snap);
  }
  return convert(c, opts, snap, err);
}

/* A private copy (0600, O_EXCL) of disk as it is now: a reflink where the
 * filesystem has them, else copy_file_range up to the size it had when
 * opened (QEMU may grow it meanwhile; a snapshot's clusters lie below). */
int vm_disk_copy(const char *disk, const char *to, qvm_error **err) {
  _cleanup_close_ int in = open(disk, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", disk);
  struct stat st;
  if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not a regular file", disk);
  _cleanup_close_ int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (out < 0) return qvm_error_set_errno(err, errno, "cannot create '%s'", to);
  if (ioctl(out, FICLONE, in) == 0) return 0;
  off_t off = 0;
  while (off < st.st_size) {
    ssize_t n = copy_file_range(in, &off, out, NULL, (size_t)(st.st_size - off), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return qvm_error_set_errno(err, errno, "cannot copy '%s'", disk);
    if (n == 0) break; /* shrunk meanwhile: qemu-img will say what is wrong */
  }
  return 0;
}

/* A running VM's QEMU (the guest's, if it took QEMU over) can rewrite
 * disk.qcow2's header at any moment, between qvm's check and qemu-img's
 * open: qemu-img (root) reads a private copy, checked after it was made.
 * An internal snapshot's clusters do not change in the file while QEMU
 * runs on (copy on write), so the copy holds it whole. */
static int import_running(import_ctx *c, const char *disk, qvm_error **err) {
  qvm_vm *vm = c->vm;
  int r = 0;
  char tmp[32] = "";
  const char *snap = c->snapshot;
  if (!snap) {
    /* A temporary internal snapshot: a consistent point qemu-img can read
     * while the guest goes on writing (docs/ARCHITECTURE.md, "Clones"). */
    if ((r = vm_tmp_snapshot_name(tmp, err)) < 0) return r;
    report(c->o, "snapshot", 0, 0);
    if ((r = vm_disk_qmp_snapshot(vm, "blockdev-snapshot-internal-sync", tmp, err)) < 0)
      return qvm_error_prefix(err, "cannot take a temporary snapshot of its disk");
    snap = tmp;
  }
  _cleanup_free_ char *copy = NULL;
  r = img_store_tmp_path(&copy, c->s, ".copy", err);
  if (r >= 0) report(c->o, "copy", 0, 0);
  if (r >= 0) r = vm_disk_copy(disk, copy, err);
  if (r >= 0) r = import_from(c, copy, snap, true, err);
  if (copy) unlink(copy);
  qvm_error *derr = NULL;
  if (tmp[0] &&
      vm_disk_qmp_snapshot(vm, "blockdev-snapshot-delete-internal-sync", tmp, &derr) < 0 &&
      r >= 0) {
    r = qvm_error_set(err, qvm_error_code(derr),
                      "cannot delete the temporary snapshot '%s' of its disk: %s", tmp,
                      qvm_error_message(derr));
  }
  qvm_error_free(derr);
  return r;
}

static int import_locked(import_ctx *c, qvm_error **err) {
  qvm_vm *vm = c->vm;
  int r = vm_reconcile_locked(vm, err);
  if (r < 0) return r;
  if (!has_vm_disk(vm->spec))
    return qvm_error_set(err, QVM_EINVAL,
                         "it has no disk of its own (disk.qcow2) to import: it boots a kernel, "
                         "a cdrom or drives it does not own");
  qvm_vm_state state = qvm_vm_get_state(vm);
  if (state == QVM_VM_STARTING || state == QVM_VM_STOPPING)
    return qvm_error_set(err, QVM_ECONFLICT, "it is %s: import it once it runs or has stopped",
                         qvm_vm_state_name(state));
  bool running = state == QVM_VM_RUNNING;
  _cleanup_free_ char *disk = NULL;
  if (asprintf(&disk, "%s/disk.qcow2", vm->paths.dir) < 0) return oom(err);
  if ((r = img_store_tmp_path(&c->staged, c->s, ".img", err)) < 0) return r;
  r = running ? import_running(c, disk, err) : import_from(c, disk, c->snapshot, false, err);
  if (r < 0) return r;
  report(c->o, "hash", 0, 0);
  uint64_t size = 0;
  if ((r = hash_file(c->digest, &size, c->staged, err)) < 0) return r;
  if (chmod(c->staged, 0444) < 0) return qvm_error_set_errno(err, errno, "cannot chmod");
  vm_image_info info = {0};
  r = vm_image_check(&info, "image", c->staged, "qcow2", false, NULL, err);
  if (r < 0) {
    vm_image_info_clear(&info);
    return r;
  }
  char ref[72];
  snprintf(ref, sizeof ref, "sha256:%s", c->digest);
  img_meta prev = {0};
  qvm_error *lerr = NULL;
  c->existed = img_store_lookup(&prev, NULL, c->s, ref, &lerr) == 0;
  qvm_error_free(lerr);
  img_meta_clear(&prev);
  _cleanup_free_ char *source = NULL;
  if (asprintf(&source, "vm:%s", vm->name) < 0) {
    vm_image_info_clear(&info);
    return oom(err);
  }
  img_meta m = {.format = "qcow2",
                .virtual_size = info.size,
                .file_size = size,
                .source = source,
                .compression = "none",
                .created_ms = qvm_realtime_us() / 1000};
  memcpy(m.digest, c->digest, sizeof m.digest);
  r = img_store_commit(c->s, c->staged, &m, c->name, err);
  vm_image_info_clear(&info);
  return r;
}

int vm_image_import_held(char out_digest[65], bool *out_existed, img_store *s, qvm_vm *vm,
                         const char *snapshot, const qvm_image_import_options *opts,
                         qvm_error **err) {
  import_ctx c = {.vm = vm, .snapshot = snapshot, .o = opts, .s = s};
  int r = import_locked(&c, err);
  if (c.staged) unlink(c.staged); /* gone already once committed */
  free(c.staged);
  if (r >= 0) {
    memcpy(out_digest, c.digest, 65);
    *out_existed = c.existed;
  }
  return r;
}

int vm_image_import(char out_digest[65], bool *out_existed, char **out_json, img_store *s,
                    const char *vm_name, const char *snapshot, const char *name,
                    const qvm_image_import_options *opts, qvm_error **err) {
  int r = QVM_OPTIONS_CHECK(opts, qvm_image_import_options, QVM_IMAGE_IMPORT_OPTIONS_VERSION, err);
  if (r < 0) return r;
  if (!vm_name || (r = qvm_vm_name_check(vm_name, err)) < 0)
    return vm_name ? r : qvm_error_set(err, QVM_EINVAL, "no vm given");
  if (name && (r = img_name_check(name, err)) < 0) return r;
  if (snapshot && !vm_snapshot_name_valid(snapshot))
    return qvm_error_set(err, QVM_EINVAL,
                         "snapshot name '%.64s' is invalid: use [A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                         snapshot);
  import_ctx c = {.snapshot = snapshot, .name = name, .o = opts, .s = s};
  if ((r = qvm_vm_open(&c.vm, vm_name, err)) < 0) return r;
  int fd = -1;
  r = vm_lock_acquire(&fd, &c.vm->paths, "image-import", IMPORT_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = import_locked(&c, err);
  vm_lock_release(fd);
  if (c.staged) unlink(c.staged); /* gone already once committed */
  free(c.staged);
  if (r >= 0) {
    if (out_digest) memcpy(out_digest, c.digest, 65);
    if (out_existed) *out_existed = c.existed;
    report(opts, "done", 0, 0);
  }
  if (r >= 0 && out_json) {
    char ref[72];
    snprintf(ref, sizeof ref, "sha256:%s", c.digest);
    img_meta m = {0};
    struct json_object *o = NULL;
    r = img_store_lookup(&m, NULL, s, ref, err);
    if (r == 0) r = images_record(&o, s, &m, err);
    img_meta_clear(&m);
    if (r == 0) {
      json_object_object_add(o, "vm", json_object_new_string(vm_name));
      json_object_object_add(o, "snapshot", snapshot ? json_object_new_string(snapshot) : NULL);
      const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
      *out_json = t ? strdup(t) : NULL;
      json_object_put(o);
      if (!*out_json) r = oom(err);
    }
  }
  qvm_vm_free(c.vm);
  return r;
}

int images_remove_unused(img_store *s, const char *digest, qvm_error **err) {
  _cleanup_close_ int lock = -1;
  int r = img_store_lock(&lock, s, true, STORE_LOCK_MS, err);
  if (r < 0) return r;
  char ref[72];
  snprintf(ref, sizeof ref, "sha256:%s", digest);
  img_meta m = {0};
  _cleanup_free_ char *path = NULL;
  if ((r = img_store_lookup(&m, &path, s, ref, err)) < 0) return r;
  size_t names = m.n_names;
  img_meta_clear(&m);
  struct json_object *users = NULL;
  if (names || (r = images_used_by(&users, path, err)) < 0) return r;
  bool used = json_object_array_length(users) > 0;
  json_object_put(users);
  return used ? 0 : img_store_remove_locked(s, digest, err);
}

int qvm_image_import_vm(char **out_json, const char *vm, const char *snapshot, const char *name,
                        const qvm_image_import_options *opts, qvm_error **err) {
  _cleanup_(img_store_freep) img_store *s = NULL;
  int r = images_store_open(&s, err);
  if (r == 0) r = vm_image_import(NULL, NULL, out_json, s, vm, snapshot, name, opts, err);
  if (r < 0) qvm_error_prefix(err, "cannot import vm '%s'", vm ? vm : "");
  return r;
}
