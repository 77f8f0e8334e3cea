/* SPDX-License-Identifier: MIT */
/* qvm_diff_*: two disk states of a VM (or two images), each read over NBD
 * from a qemu-storage-daemon of its own, walked and compared
 * (docs/ARCHITECTURE.md, "Diff"). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <qvm/diff.h>
#include <qvm/text.h>
#include <qvm/vm.h>

#include "diff/compare.h"
#include "diff/disk.h"
#include "diff/internal.h"
#include "diff/part.h"
#include "diff/walk.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "vm/handle.h"
#include "vm/image.h"
#include "vm/images.h"
#include "vm/qcow2.h"
#include "vm/state.h"

#define DIFF_LOCK_TIMEOUT_MS 30000
#define DIFF_FREEZE_MS 20000 /* each guest agent call of the freeze */

static const char *const default_ignore[] = {
    "/tmp",
    "/run",
    "/var/tmp",
    "/var/log",
    "/var/cache",
    "/var/backups",
    /* cloud-init's state, not /var/lib/cloud/scripts (per-boot scripts run
     * as root at every boot) */
    "/var/lib/cloud/data",
    "/var/lib/cloud/instance",
    "/var/lib/cloud/instances",
    "/var/lib/cloud/sem",
    /* packages are compared from dpkg's status, read on its own */
    "/var/lib/dpkg",
    "/var/lib/apt",
    "/var/lib/dhcp",
    "/var/lib/dbus/machine-id",
    "/var/lib/systemd/random-seed",
    "/var/lib/systemd/timers",
    "/var/lib/systemd/timesync",
    "/var/lib/systemd/catalog",
    "/var/lib/logrotate",
    "/var/lib/private/systemd",
    "/etc/machine-id",
    "/etc/ssh/ssh_host_*",
    "/lost+found",
    NULL,
};

const char *const *qvm_diff_default_ignore(void) { return default_ignore; }

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

void qvm_diff_free(qvm_diff *d) {
  if (!d) return;
  diff_tree_clear(&d->from);
  diff_tree_clear(&d->to);
  free(d->c);
  if (d->content_dir) qvm_rm_rf(d->content_dir, NULL);
  free(d->content_dir);
  diff_system_clear(&d->sys);
  free(d);
}
QVM_DEFINE_CLEANUP(qvm_diff, qvm_diff_free)

/* One state: its daemon, the partition and the file system. */
typedef struct diff_state {
  diff_disk *disk;
  diff_fs *fs;
} diff_state;

static void state_close(diff_state *s) {
  diff_fs_close(s->fs);
  diff_disk_close(s->disk);
  *s = (diff_state){0};
}

static int state_read(void *ctx, void *buf, uint32_t len, uint64_t off) {
  return diff_disk_read(ctx, buf, len, off);
}

static int state_open(diff_state *s, const diff_disk_spec *spec, qvm_error **err) {
  int r = diff_disk_open(&s->disk, spec, err);
  diff_part part;
  if (r >= 0) r = diff_part_find_ext(&part, state_read, s->disk, diff_disk_size(s->disk), err);
  if (r >= 0) r = diff_fs_open(&s->fs, s->disk, &part, err);
  if (r < 0) state_close(s);
  return r;
}

static int hash_side(void *ctx, int side, diff_entry *e, qvm_error **err) {
  diff_state *st = ctx;
  return diff_fs_hash(st[side].fs, e, err);
}

typedef struct globs {
  const char **g;
  size_t n;
} globs;

static int globs_make(globs *out, const qvm_diff_options *o, qvm_error **err) {
  size_t nd = o && o->no_default_ignore ? 0 : QVM_ARRAY_SIZE(default_ignore) - 1;
  size_t nu = o ? o->n_ignore : 0;
  for (size_t i = 0; i < nu; i++)
    if (!o->ignore[i] || o->ignore[i][0] != '/' || strlen(o->ignore[i]) > DIFF_MAX_PATH)
      return qvm_error_set(err, QVM_EINVAL, "ignore glob '%.200s' does not start with '/'",
                           o->ignore[i] ? o->ignore[i] : "");
  out->g = calloc(nd + nu + 1, sizeof *out->g);
  if (!out->g) return oom(err);
  for (size_t i = 0; i < nd; i++) out->g[out->n++] = default_ignore[i];
  for (size_t i = 0; i < nu; i++) out->g[out->n++] = o->ignore[i];
  return 0;
}

/* One state's walk and its packages and accounts (whose errors, like the
 * walk's, quote guest bytes). */
static int walk_side(qvm_diff *d, int side, diff_fs *fs, const globs *g, qvm_error **err) {
  int r = diff_fs_walk(side ? &d->to : &d->from, fs, g->g, g->n, err);
  if (r >= 0) r = diff_system_read(&d->sys, side, fs, err);
  if (r < 0 && err) qvm_error_neutralize(*err);
  return r;
}

/* Version 1 callers (a shorter struct) are accepted. */
static int check_options(const qvm_diff_options *o, qvm_error **err) {
  if (o && o->version == 1) return 0;
  return QVM_OPTIONS_CHECK(o, qvm_diff_options, QVM_DIFF_OPTIONS_VERSION, err);
}

static bool keeps_content(const qvm_diff_options *o) {
  return o && o->version >= 2 && o->keep_content;
}

static void content_caps(const qvm_diff_options *o, uint64_t *file, uint64_t *total) {
  *file = o->content_max_file ? o->content_max_file : QVM_DIFF_CONTENT_MAX_FILE_DEFAULT;
  *total = o->content_max_total ? o->content_max_total : QVM_DIFF_CONTENT_MAX_TOTAL_DEFAULT;
}

static int diff_states(qvm_diff **out, const diff_disk_spec *from, const diff_disk_spec *to,
                       const qvm_diff_options *o, qvm_error **err) {
  int r = check_options(o, err);
  if (r < 0) return r;
  globs g = {0};
  if ((r = globs_make(&g, o, err)) < 0) return r;
  _cleanup_(qvm_diff_freep) qvm_diff *d = calloc(1, sizeof *d);
  diff_state st[2] = {{0}};
  if (!d) r = oom(err);
  if (r >= 0 && (r = state_open(&st[0], from, err)) < 0) qvm_error_prefix(err, "the base state");
  /* a walk's errors quote the guest's file names */
  if (r >= 0 && (r = walk_side(d, 0, st[0].fs, &g, err)) < 0)
    qvm_error_prefix(err, "the base state");
  if (r >= 0 && (r = state_open(&st[1], to, err)) < 0) qvm_error_prefix(err, "the new state");
  if (r >= 0 && (r = walk_side(d, 1, st[1].fs, &g, err)) < 0)
    qvm_error_prefix(err, "the new state");
  if (r >= 0) r = diff_compare(&d->c, &d->n, &d->from, &d->to, hash_side, st, err);
  if (r >= 0) r = diff_system_compare(&d->sys, &d->from, &d->to, err);
  if (r >= 0 && (r = diff_system_read_lists(&d->sys, 0, st[0].fs, &d->from, err)) < 0)
    qvm_error_neutralize(*err), qvm_error_prefix(err, "the base state");
  if (r >= 0 && (r = diff_system_read_lists(&d->sys, 1, st[1].fs, &d->to, err)) < 0)
    qvm_error_neutralize(*err), qvm_error_prefix(err, "the new state");
  if (r >= 0 && keeps_content(o)) {
    uint64_t max_file, max_total;
    content_caps(o, &max_file, &max_total);
    if ((r = diff_content_keep(d, st[1].fs, max_file, max_total, err)) < 0)
      qvm_error_prefix(err, "cannot keep the new contents");
  }
  if (r >= 0 && (r = diff_conffile_md5s(d, st[1].fs, QVM_DIFF_CONTENT_MAX_FILE_DEFAULT, err)) < 0)
    qvm_error_prefix(err, "cannot read a conffile");
  if (r >= 0) d->bytes_hashed = diff_fs_bytes_hashed(st[0].fs) + diff_fs_bytes_hashed(st[1].fs);
  if (r >= 0)
    d->journal_pending = diff_fs_journal_pending(st[0].fs) || diff_fs_journal_pending(st[1].fs);
  state_close(&st[0]);
  state_close(&st[1]);
  free(g.g);
  if (r >= 0) *out = TAKE_PTR(d);
  return r;
}

static bool qcow2_has_backing(const char *path) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  vm_qcow2_header h;
  qvm_error *e = NULL;
  bool has = fd >= 0 && vm_qcow2_read_fd(&h, fd, path, &e) == 0 && h.has_backing;
  qvm_error_free(e);
  return has;
}

int qvm_diff_images(qvm_diff **out, const char *from, const char *from_format, const char *to,
                    const char *to_format, const qvm_diff_options *opts, qvm_error **err) {
  if (!from || !to) return qvm_error_set(err, QVM_EINVAL, "two images are needed");
  diff_disk_spec a = {.file = from, .format = from_format ? from_format : "raw"};
  diff_disk_spec b = {.file = to, .format = to_format ? to_format : "raw"};
  if (!strcmp(b.format, "qcow2") && qcow2_has_backing(to)) {
    b.backing = from;
    b.backing_format = a.format;
  }
  int r = diff_states(out, &a, &b, opts, err);
  if (r < 0) qvm_error_prefix(err, "cannot diff '%s' and '%s'", from, to);
  return r;
}

/* A VM's disk state at an internal snapshot, as a qcow2 overlay on its
 * image holding only what differs (qemu-img convert -B), in the store's
 * tmp/: qemu-storage-daemon cannot open an internal snapshot itself. */
static int snapshot_overlay(char **out, img_store *s, const qvm_vm *vm, const char *disk,
                            const char *snap, qvm_error **err) {
  _cleanup_free_ char *opts = vm_disk_image_opts(vm->spec, disk, true), *l = NULL, *path = NULL;
  if (!opts || asprintf(&l, "snapshot.name=%s", snap) < 0) return oom(err);
  int r = img_store_tmp_path(&path, s, ".diff.qcow2", err);
  if (r < 0) return r;
  char *argv[] = {"qemu-img", "convert", "-U", "--image-opts",  "-l", l,
                  "-O",       "qcow2",   "-B", vm->spec->image, "-F", vm->spec->image_format,
                  opts,       path,      NULL};
  if ((r = vm_run_program(NULL, argv, err)) < 0) {
    unlink(path);
    return qvm_error_prefix(err, "cannot read snapshot '%s'", snap);
  }
  *out = TAKE_PTR(path);
  return 0;
}

static int check_snapshot(const qvm_vm *vm, const char *disk, const char *snap, qvm_error **err) {
  if (!snap) return 0;
  _cleanup_free_ char *opts = vm_disk_image_opts(vm->spec, disk, false);
  char **names = NULL;
  size_t n = 0;
  int r = opts ? vm_disk_snapshots(&names, &n, opts, err) : oom(err);
  if (r < 0) return r;
  bool found = false;
  for (size_t i = 0; i < n; i++) found = found || !strcmp(names[i], snap);
  vm_disk_snapshots_free(names, n);
  if (found) return 0;
  qvm_error_set(err, QVM_ENOTFOUND, "it has no snapshot '%s'", snap);
  return qvm_error_set_hint(err, QVM_ENOTFOUND, "SnapshotUnknown", snap);
}

typedef struct vm_diff {
  qvm_vm *vm;
  img_store *store;
  const qvm_diff_options *o;
  char *copy;              /* a running vm's disk, copied */
  char *from_tmp, *to_tmp; /* snapshot overlays */
} vm_diff;

static int side_spec(diff_disk_spec *out, char **tmp, vm_diff *c, const char *disk,
                     const char *snap, bool base, qvm_error **err) {
  const vm_spec *spec = c->vm->spec;
  if (base && !snap) {
    *out = (diff_disk_spec){.file = spec->image, .format = spec->image_format};
    return 0;
  }
  const char *file = disk;
  if (snap) {
    int r = snapshot_overlay(tmp, c->store, c->vm, disk, snap, err);
    if (r < 0) return r;
    file = *tmp;
  }
  *out = (diff_disk_spec){.file = file,
                          .format = "qcow2",
                          .backing = spec->image,
                          .backing_format = spec->image_format};
  return 0;
}

/* The guest's file systems thawed: a few tries, since a guest left frozen
 * blocks every write in it. */
static int thaw(qvm_vm *vm, qvm_error **err) {
  qvm_error *e = NULL;
  for (int i = 0; i < 3; i++) {
    qvm_error_free(e);
    e = NULL;
    if (vm_qga_command(&vm->paths, "guest-fsfreeze-thaw", DIFF_FREEZE_MS, &e) == 0) return 0;
  }
  int r = qvm_error_set(err, qvm_error_code(e),
                        "its file systems were frozen for the diff and could not be thawed "
                        "(%s): writes in the guest block until they are; restart vm '%s'",
                        qvm_error_message(e), vm->name);
  qvm_error_free(e);
  return r;
}

static int diff_locked(qvm_diff **out, vm_diff *c, qvm_error **err) {
  qvm_vm *vm = c->vm;
  int r = vm_reconcile_locked(vm, err);
  if (r < 0) return r;
  if (!vm->spec->image || !vm->spec->image_format)
    return qvm_error_set(err, QVM_EINVAL, "it was not created from an image: nothing to diff");
  qvm_vm_state state = qvm_vm_get_state(vm);
  if (state == QVM_VM_STARTING || state == QVM_VM_STOPPING)
    return qvm_error_set(err, QVM_ECONFLICT, "it is %s: diff it once it runs or has stopped",
                         qvm_vm_state_name(state));
  _cleanup_free_ char *disk = NULL;
  if (asprintf(&disk, "%s/disk.qcow2", vm->paths.dir) < 0) return oom(err);
  const char *from_snap = c->o ? c->o->from_snapshot : NULL;
  const char *to_snap = c->o ? c->o->to_snapshot : NULL;
  char tmp[32] = "";
  if (state == QVM_VM_RUNNING) {
    /* A consistent point while the guest runs on: a temporary internal
     * snapshot, and a private copy of the file that holds it (its QEMU can
     * rewrite the header of the live file at any moment). */
    if (!to_snap) {
      if ((r = vm_tmp_snapshot_name(tmp, err)) < 0) return r;
      /* Frozen through the guest agent while the snapshot is taken, when
       * it answers: the freeze checkpoints ext4's journal, which the walk
       * does not replay. Without an agent (or one that refuses), the
       * snapshot is crash-consistent and the result may say incomplete;
       * nothing the agent says is trusted, the disk is read as it is. */
      qvm_error *ferr = NULL;
      int f = vm_qga_command(&vm->paths, "guest-fsfreeze-freeze", DIFF_FREEZE_MS, &ferr);
      /* an answer too late may still have frozen it: thawed all the same */
      bool frozen = f == 0 || qvm_error_code(ferr) == QVM_ETIMEOUT;
      qvm_error_free(ferr);
      r = vm_disk_qmp_snapshot(vm, "blockdev-snapshot-internal-sync", tmp, err);
      qvm_error *terr = NULL;
      int t = frozen ? thaw(vm, &terr) : 0;
      if (t < 0) { /* a guest left frozen is the worse news */
        if (r >= 0) vm_disk_qmp_snapshot(vm, "blockdev-snapshot-delete-internal-sync", tmp, NULL);
        if (err) qvm_error_free(*err), *err = NULL;
        return qvm_error_propagate(err, terr);
      }
      if (r < 0) return qvm_error_prefix(err, "cannot take a temporary snapshot of its disk");
      to_snap = tmp;
    }
    r = img_store_tmp_path(&c->copy, c->store, ".diff-copy", err);
    if (r >= 0) r = vm_disk_copy(disk, c->copy, err);
    qvm_error *derr = NULL;
    if (tmp[0] &&
        vm_disk_qmp_snapshot(vm, "blockdev-snapshot-delete-internal-sync", tmp, &derr) < 0 &&
        r >= 0)
      r = qvm_error_set(err, qvm_error_code(derr),
                        "cannot delete the temporary snapshot '%s' of its disk: %s", tmp,
                        qvm_error_message(derr));
    qvm_error_free(derr);
    if (r < 0) return r;
    free(disk);
    disk = strdup(c->copy);
    if (!disk) return oom(err);
  }
  vm_qcow2_policy policy = {.what = "vm disk",
                            .backing = vm->spec->image,
                            .backing_format = vm->spec->image_format,
                            .why = ": qemu-img would open it as root; qvm did not diff it"};
  if ((r = vm_qcow2_check_file(disk, &policy, err)) < 0) return r;
  if ((r = check_snapshot(vm, disk, from_snap, err)) < 0) return r;
  if (to_snap != tmp && (r = check_snapshot(vm, disk, to_snap, err)) < 0) return r;
  diff_disk_spec from, to;
  if ((r = side_spec(&from, &c->from_tmp, c, disk, from_snap, true, err)) < 0) return r;
  if ((r = side_spec(&to, &c->to_tmp, c, disk, to_snap, false, err)) < 0) return r;
  return diff_states(out, &from, &to, c->o, err);
}

int qvm_diff_vm(qvm_diff **out, const char *name, const qvm_diff_options *opts, qvm_error **err) {
  int r = check_options(opts, err);
  if (r < 0) return r;
  if (!name) return qvm_error_set(err, QVM_EINVAL, "no vm given");
  const char *snaps[] = {opts ? opts->from_snapshot : NULL, opts ? opts->to_snapshot : NULL};
  for (int i = 0; i < 2; i++)
    if (snaps[i] && !vm_snapshot_name_valid(snaps[i]))
      return qvm_error_set(err, QVM_EINVAL,
                           "snapshot name '%.64s' is invalid: use [A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                           snaps[i]);
  vm_diff c = {.o = opts};
  if ((r = qvm_vm_open(&c.vm, name, err)) < 0) return r;
  int fd = -1;
  r = images_store_open(&c.store, err);
  if (r >= 0) r = vm_lock_acquire(&fd, &c.vm->paths, "diff", DIFF_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = diff_locked(out, &c, err);
  vm_lock_release(fd);
  char *tmps[] = {c.copy, c.from_tmp, c.to_tmp};
  for (int i = 0; i < 3; i++) {
    if (tmps[i]) unlink(tmps[i]);
    free(tmps[i]);
  }
  img_store_free(c.store);
  qvm_vm_free(c.vm);
  if (r < 0) qvm_error_prefix(err, "cannot diff vm '%s'", name);
  return r;
}

size_t qvm_diff_count(const qvm_diff *d) { return d ? d->n : 0; }

static void file_of(qvm_diff_file *f, const diff_entry *e) {
  *f = (qvm_diff_file){0};
  if (!e) return;
  f->present = true;
  f->type = e->type;
  f->mode = e->mode;
  f->uid = e->uid;
  f->gid = e->gid;
  f->size = e->size;
  if (e->hashed)
    for (int i = 0; i < 32; i++) snprintf(f->sha256 + 2 * i, 3, "%02x", e->sha[i]);
  f->target = e->target;
  f->target_len = e->target_len;
}

void qvm_diff_get(qvm_diff_change *out, const qvm_diff *d, size_t i) {
  const diff_change *c = &d->c[i];
  const diff_entry *e = c->to ? c->to : c->from;
  *out =
      (qvm_diff_change){.kind = c->kind, .path = e->path, .path_len = e->path_len, .what = c->what};
  file_of(&out->from, c->from);
  file_of(&out->to, c->to);
}

void qvm_diff_stats(const qvm_diff *d, uint64_t *from, uint64_t *to, uint64_t *bytes) {
  if (from) *from = d->from.n;
  if (to) *to = d->to.n;
  if (bytes) *bytes = d->bytes_hashed;
}

const char *qvm_diff_kind_name(qvm_diff_kind k) {
  return k == QVM_DIFF_ADDED ? "added" : k == QVM_DIFF_DELETED ? "deleted" : "modified";
}

const char *qvm_diff_what_name(unsigned bit) {
  switch (bit) {
  case QVM_DIFF_TYPE: return "type";
  case QVM_DIFF_CONTENT: return "content";
  case QVM_DIFF_MODE: return "mode";
  case QVM_DIFF_OWNER: return "owner";
  case QVM_DIFF_TARGET: return "target";
  case QVM_DIFF_DEVICE: return "device";
  default: return "?";
  }
}

static char *base64(const char *p, size_t n) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *o = malloc((n + 2) / 3 * 4 + 1), *q = o;
  if (!o) return NULL;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)(uint8_t)p[i] << 16;
    if (i + 1 < n) v |= (uint32_t)(uint8_t)p[i + 1] << 8;
    if (i + 2 < n) v |= (uint8_t)p[i + 2];
    *q++ = tbl[v >> 18 & 63];
    *q++ = tbl[v >> 12 & 63];
    *q++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
    *q++ = i + 2 < n ? tbl[v & 63] : '=';
  }
  *q = '\0';
  return o;
}

/* key: the neutralized text; key_b64: the raw bytes, when they differ. */
static bool add_name(struct json_object *o, const char *key, const char *bytes, size_t n) {
  _cleanup_free_ char *shown = qvm_text_for_terminal(bytes, n, 0);
  if (!shown) return false;
  json_object_object_add(o, key, json_object_new_string(shown));
  if (strlen(shown) == n && !memcmp(shown, bytes, n)) return true;
  _cleanup_free_ char *b64 = base64(bytes, n), *k = NULL;
  if (!b64 || asprintf(&k, "%s_b64", key) < 0) return false;
  json_object_object_add(o, k, json_object_new_string(b64));
  return true;
}

static struct json_object *file_json(const qvm_diff_file *f, bool *ok) {
  if (!f->present) return NULL;
  struct json_object *o = json_object_new_object();
  char type[2] = {f->type, 0}, mode[8];
  snprintf(mode, sizeof mode, "%04o", f->mode);
  json_object_object_add(o, "type", json_object_new_string(type));
  json_object_object_add(o, "mode", json_object_new_string(mode));
  json_object_object_add(o, "uid", json_object_new_int64(f->uid));
  json_object_object_add(o, "gid", json_object_new_int64(f->gid));
  json_object_object_add(o, "size", json_object_new_uint64(f->size));
  if (f->sha256[0]) json_object_object_add(o, "sha256", json_object_new_string(f->sha256));
  if (f->target && !add_name(o, "target", f->target, f->target_len)) *ok = false;
  return o;
}

static struct json_object *str_array(const char *const *v, size_t n) {
  struct json_object *a = json_object_new_array();
  for (size_t i = 0; a && i < n; i++) json_object_array_add(a, json_object_new_string(v[i]));
  return a;
}

static struct json_object *package_json(const qvm_diff_package *p) {
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "kind", json_object_new_string(qvm_diff_package_kind_name(p->kind)));
  json_object_object_add(o, "name", json_object_new_string(p->name));
  json_object_object_add(o, "arch", json_object_new_string(p->arch));
  json_object_object_add(o, "from_version",
                         p->from_version ? json_object_new_string(p->from_version) : NULL);
  json_object_object_add(o, "to_version",
                         p->to_version ? json_object_new_string(p->to_version) : NULL);
  return o;
}

static struct json_object *user_json(const qvm_diff_user *u, bool *ok) {
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "kind", json_object_new_string(qvm_diff_kind_name(u->kind)));
  json_object_object_add(o, "name", json_object_new_string(u->name));
  json_object_object_add(o, "uid", json_object_new_int64(u->uid));
  json_object_object_add(o, "gid", json_object_new_int64(u->gid));
  /* free text from the guest */
  if (!add_name(o, "gecos", u->gecos, strlen(u->gecos)) ||
      !add_name(o, "home", u->home, strlen(u->home)) ||
      !add_name(o, "shell", u->shell, strlen(u->shell)))
    *ok = false;
  json_object_object_add(o, "groups", str_array(u->groups, u->n_groups));
  return o;
}

/* "packages", "units", "users", "groups" (names were checked on parsing:
 * package, unit, user and group names are plain ASCII). */
static bool system_json(struct json_object *root, const qvm_diff *d) {
  struct json_object *pk = json_object_new_array(), *un = json_object_new_array(),
                     *us = json_object_new_array(), *gr = json_object_new_array();
  bool ok = pk && un && us && gr;
  for (size_t i = 0; ok && i < qvm_diff_package_count(d); i++) {
    qvm_diff_package p;
    qvm_diff_package_get(&p, d, i);
    json_object_array_add(pk, package_json(&p));
  }
  for (size_t i = 0; ok && i < qvm_diff_unit_count(d); i++) {
    qvm_diff_unit u;
    qvm_diff_unit_get(&u, d, i);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(u.name));
    json_object_object_add(o, "change",
                           json_object_new_string(qvm_diff_unit_change_name(u.change)));
    json_object_array_add(un, o);
  }
  for (size_t i = 0; ok && i < qvm_diff_user_count(d); i++) {
    qvm_diff_user u;
    qvm_diff_user_get(&u, d, i);
    json_object_array_add(us, user_json(&u, &ok));
  }
  for (size_t i = 0; ok && i < qvm_diff_group_count(d); i++) {
    qvm_diff_group g;
    qvm_diff_group_get(&g, d, i);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string(qvm_diff_kind_name(g.kind)));
    json_object_object_add(o, "name", json_object_new_string(g.name));
    json_object_object_add(o, "gid", json_object_new_int64(g.gid));
    json_object_object_add(o, "members", str_array(g.members, g.n_members));
    json_object_array_add(gr, o);
  }
  json_object_object_add(root, "packages", pk);
  json_object_object_add(root, "units", un);
  json_object_object_add(root, "users", us);
  json_object_object_add(root, "groups", gr);
  return ok;
}

int qvm_diff_json(char **out, const qvm_diff *d, qvm_error **err) {
  struct json_object *root = json_object_new_object(), *arr = json_object_new_array();
  bool ok = root && arr;
  for (size_t i = 0; ok && i < d->n; i++) {
    qvm_diff_change c;
    qvm_diff_get(&c, d, i);
    struct json_object *o = json_object_new_object(), *what = json_object_new_array();
    json_object_object_add(o, "kind", json_object_new_string(qvm_diff_kind_name(c.kind)));
    ok = add_name(o, "path", c.path, c.path_len);
    for (unsigned b = 1; b <= QVM_DIFF_DEVICE; b <<= 1)
      if (c.what & b) json_object_array_add(what, json_object_new_string(qvm_diff_what_name(b)));
    json_object_object_add(o, "changed", what);
    json_object_object_add(o, "from", file_json(&c.from, &ok));
    json_object_object_add(o, "to", file_json(&c.to, &ok));
    /* apt's part of a package change: what the playbook leaves to apt */
    if (diff_change_by_package(d, &d->c[i]))
      json_object_object_add(o, "package", json_object_new_boolean(true));
    json_object_array_add(arr, o);
  }
  json_object_object_add(root, "changes", arr);
  if (ok) ok = system_json(root, d);
  json_object_object_add(root, "entries_from", json_object_new_uint64(d->from.n));
  json_object_object_add(root, "entries_to", json_object_new_uint64(d->to.n));
  json_object_object_add(root, "bytes_hashed", json_object_new_uint64(d->bytes_hashed));
  json_object_object_add(root, "incomplete",
                         qvm_diff_incomplete(d) ? json_object_new_string(qvm_diff_incomplete(d))
                                                : NULL);
  const char *t = ok ? json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN) : NULL;
  *out = t ? strdup(t) : NULL;
  json_object_put(root);
  return *out ? 0 : oom(err);
}

const char *qvm_diff_incomplete(const qvm_diff *d) {
  return d && d->journal_pending
             ? "a file system's ext4 journal holds transactions that qvm diff does not replay "
               "(a running vm, or one that did not shut down cleanly): the newest changes may "
               "be missing; diff a cleanly stopped vm for a complete list"
             : NULL;
}

size_t qvm_diff_package_count(const qvm_diff *d) { return d ? d->sys.n_pkgs : 0; }

void qvm_diff_package_get(qvm_diff_package *out, const qvm_diff *d, size_t i) {
  const diff_package *p = &d->sys.pkgs[i];
  const dpkg_pkg *any = p->to ? p->to : p->from;
  *out = (qvm_diff_package){.kind = p->kind,
                            .name = any->name,
                            .arch = any->arch,
                            .from_version = p->from ? p->from->version : NULL,
                            .to_version = p->to ? p->to->version : NULL};
}

const char *qvm_diff_package_kind_name(qvm_diff_kind k) {
  return k == QVM_DIFF_ADDED ? "installed" : k == QVM_DIFF_DELETED ? "removed" : "upgraded";
}

size_t qvm_diff_unit_count(const qvm_diff *d) { return d ? d->sys.n_units : 0; }

void qvm_diff_unit_get(qvm_diff_unit *out, const qvm_diff *d, size_t i) {
  *out = (qvm_diff_unit){.name = d->sys.units[i].name, .change = d->sys.units[i].change};
}

const char *qvm_diff_unit_change_name(qvm_diff_unit_change c) {
  switch (c) {
  case QVM_DIFF_UNIT_ENABLED: return "enabled";
  case QVM_DIFF_UNIT_DISABLED: return "disabled";
  case QVM_DIFF_UNIT_MASKED: return "masked";
  case QVM_DIFF_UNIT_UNMASKED: return "unmasked";
  default: return "?";
  }
}

size_t qvm_diff_user_count(const qvm_diff *d) { return d ? d->sys.n_users : 0; }

void qvm_diff_user_get(qvm_diff_user *out, const qvm_diff *d, size_t i) {
  const diff_user *u = &d->sys.users[i];
  *out = (qvm_diff_user){.kind = u->kind,
                         .name = u->u->name,
                         .uid = u->u->uid,
                         .gid = u->u->gid,
                         .gecos = u->u->gecos,
                         .home = u->u->home,
                         .shell = u->u->shell,
                         .groups = u->groups,
                         .n_groups = u->n_groups};
}

size_t qvm_diff_group_count(const qvm_diff *d) { return d ? d->sys.n_groups : 0; }

void qvm_diff_group_get(qvm_diff_group *out, const qvm_diff *d, size_t i) {
  const diff_group *g = &d->sys.groups[i];
  *out = (qvm_diff_group){.kind = g->kind,
                          .name = g->g->name,
                          .gid = g->g->gid,
                          .members = (const char *const *)g->g->members,
                          .n_members = g->g->n_members};
}
