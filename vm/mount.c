/* SPDX-License-Identifier: MIT */
/* Host folder mounts: the --mount syntax, the checks on the host directory
 * (create, and again before each start), vm.json's "mounts", and the lines
 * qvm's seed runs in the guest. See vm/mount.h. */
#include "vm/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "vm/state.h"
#include <qvm/text.h>

/* --- the syntax ------------------------------------------------------------ */

bool vm_mount_guest_valid(const char *g) {
  size_t len = g ? strlen(g) : 0;
  if (len < 2 || len > QVM_VM_MOUNT_GUEST_MAX || g[0] != '/' || g[len - 1] == '/') return false;
  for (const char *p = g; *p; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("._+@/-", c);
    if (!ok) return false;
    if (c == '/') {
      size_t n = strcspn(p + 1, "/");
      if (n == 0 || (n == 1 && p[1] == '.') || (n == 2 && p[1] == '.' && p[2] == '.')) return false;
    }
  }
  return true;
}

static int guest_check(const char *text, const char *guest, qvm_error **err) {
  if (vm_mount_guest_valid(guest)) return 0;
  _cleanup_free_ char *shown = qvm_text_for_terminal(guest, strlen(guest), 0);
  return qvm_error_set(err, QVM_EINVAL,
                       "mount '%s': guest path '%s' is invalid: use an absolute path other than "
                       "/, of letters, digits and ._+@-, without . or .. components",
                       text, shown ? shown : "?");
}

void qvm_vm_mount_clear(qvm_vm_mount *m) {
  if (!m) return;
  free((char *)m->host);
  free((char *)m->guest);
  *m = (qvm_vm_mount){0};
}

int qvm_vm_mount_parse(qvm_vm_mount *out, const char *text, qvm_error **err) {
  _cleanup_free_ char *copy = strdup(text ? text : "");
  if (!copy) return qvm_error_set_errno(err, ENOMEM, "cannot parse mount");
  _cleanup_free_ char *shown = qvm_text_for_terminal(copy, strlen(copy), 0);
  bool ro = false;
  char *colon = strrchr(copy, ':');
  if (colon && (!strcmp(colon + 1, "ro") || !strcmp(colon + 1, "rw"))) {
    ro = colon[1] == 'r' && colon[2] == 'o';
    *colon = '\0';
    colon = strrchr(copy, ':');
  }
  char *before = colon ? memrchr(copy, ':', (size_t)(colon - copy)) : NULL;
  if (colon && colon[1] != '/' && before && before[1] == '/') {
    _cleanup_free_ char *opt = qvm_text_for_terminal(colon + 1, strlen(colon + 1), 0);
    return qvm_error_set(err, QVM_EINVAL, "mount '%s' has an unknown option '%s': use :ro or :rw",
                         shown ? shown : "?", opt ? opt : "?");
  }
  if (!colon || colon == copy || !colon[1])
    return qvm_error_set(err, QVM_EINVAL,
                         "mount '%s' is invalid: use HOST:GUEST[:ro], such as ./src:/src or "
                         "/data:/data:ro",
                         shown ? shown : "?");
  *colon = '\0';
  int r = guest_check(shown ? shown : "?", colon + 1, err);
  if (r < 0) return r;
  qvm_vm_mount m = {.host = strdup(copy), .guest = strdup(colon + 1), .readonly = ro};
  if (!m.host || !m.guest) {
    qvm_vm_mount_clear(&m);
    return qvm_error_set_errno(err, ENOMEM, "cannot parse mount");
  }
  *out = m;
  return 0;
}

char *vm_mount_format(const qvm_vm_mount *m) {
  char *s = NULL;
  return asprintf(&s, "%s:%s%s", m->host, m->guest, m->readonly ? ":ro" : "") < 0 ? NULL : s;
}

/* --- the host directory ---------------------------------------------------- */

/* a == b, or one holds the other. */
static bool paths_overlap(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b), n = la < lb ? la : lb;
  if (strncmp(a, b, n)) return false;
  if (la == lb) return true;
  const char *longer = la > lb ? a : b;
  return longer[n] == '/' || n == 1; /* n == 1: "/" */
}

/* qvm's own directories: the state root (keys, disks, vm.json) and the
 * runtime root (sockets). A guest with either mounted owns qvm. */
static int outside_qvm(const char *text, const char *dir, qvm_error **err) {
  int (*roots[])(char **, qvm_error **) = {vm_state_root, vm_runtime_root};
  const char *names[] = {"state", "runtime"};
  for (size_t i = 0; i < 2; i++) {
    _cleanup_free_ char *root = NULL;
    int r = roots[i](&root, err);
    if (r < 0) return r;
    char real[PATH_MAX];
    const char *cmp = realpath(root, real) ? real : root;
    if (paths_overlap(dir, cmp) || paths_overlap(dir, root))
      return qvm_error_set(err, QVM_EINVAL,
                           "mount '%s': host directory '%s' holds or is inside qvm's %s "
                           "directory '%s': share another directory",
                           text, dir, names[i], cmp);
  }
  return 0;
}

/* Whether `runas` ("UID:GID") may search (and, unless ro, write) dir itself:
 * QEMU opens the directory before it drops to that user, and reaches
 * everything under it relative to that fd, so the parents do not matter. A
 * child does the check under those ids, so ACLs count too. */
static int runas_access(const char *text, const char *dir, const char *runas, bool ro,
                        qvm_error **err) {
  unsigned long uid = 0, gid = 0;
  if (!runas && geteuid() == 0 && !ro)
    /* QEMU_USER=root: a guest would write as root, xattrs such as
     * security.capability too. */
    return qvm_error_set(err, QVM_EPERM,
                         "mount '%s': qemu runs as root (QVM_QEMU_USER=root), so the guest "
                         "would write to '%s' as root: mount it :ro, or let qemu drop to its "
                         "own user",
                         text, dir);
  if (!runas) {
    /* QEMU keeps this process's credentials. */
    if (faccessat(AT_FDCWD, dir, R_OK | X_OK | (ro ? 0 : W_OK), AT_EACCESS) == 0) return 0;
    return qvm_error_set_errno(err, errno, "mount '%s': qemu (running as you) cannot %s '%s'", text,
                               ro ? "read" : "read and write", dir);
  }
  if (sscanf(runas, "%lu:%lu", &uid, &gid) != 2)
    return qvm_error_set(err, QVM_EINVAL, "qemu user '%s' is not UID:GID", runas);
  _cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return qvm_error_set_errno(err, errno, "mount '%s': cannot open '%s'", text, dir);
  pid_t pid = fork();
  if (pid < 0) return qvm_error_set_errno(err, errno, "cannot check mount '%s'", text);
  if (pid == 0) {
    gid_t g = (gid_t)gid;
    if (setgroups(1, &g) < 0 || setresgid(g, g, g) < 0 || setresuid(uid, uid, uid) < 0) _exit(2);
    _exit(faccessat(fd, ".", R_OK | X_OK | (ro ? 0 : W_OK), AT_EACCESS) == 0 ? 0 : 1);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
  return qvm_error_set(err, QVM_EPERM,
                       "mount '%s': qemu runs as uid %lu gid %lu (-runas), which cannot %s "
                       "'%s': give it access (chown, chmod or setfacl -m u:%lu:rwx), or mount "
                       "it :ro",
                       text, uid, gid, ro ? "read" : "read and write", dir, uid);
}

/* mapped-xattr keeps the guest's owners, modes and symlinks in user.virtfs.*
 * extended attributes: a file system without them (tmpfs before Linux 6.6)
 * would fail every file the guest creates. */
static int xattrs_supported(const char *text, const char *dir, qvm_error **err) {
  char v[1];
  if (getxattr(dir, "user.virtfs.mode", v, sizeof v) >= 0 || errno != ENOTSUP) return 0;
  return qvm_error_set(err, QVM_EINVAL,
                       "mount '%s': the file system of '%s' has no user extended attributes, "
                       "which a writable mount needs (the guest's owners and modes are kept "
                       "there): mount it :ro, or share a directory on ext4, xfs or btrfs",
                       text, dir);
}

/* The resolved directory of `host` in *out. */
static int host_dir(char **out, const char *text, const char *host, qvm_error **err) {
  char real[PATH_MAX];
  struct stat st;
  if (!host || host[0] == '\0')
    return qvm_error_set(err, QVM_EINVAL, "mount '%s' has no host directory", text);
  if (!realpath(host, real) || stat(real, &st) < 0)
    return qvm_error_set(err, QVM_ENOTFOUND, "mount '%s': host directory '%s' not found", text,
                         host);
  if (!S_ISDIR(st.st_mode))
    return qvm_error_set(err, QVM_EINVAL, "mount '%s': '%s' is not a directory", text, host);
  if (!strcmp(real, "/"))
    return qvm_error_set(err, QVM_EINVAL, "mount '%s': sharing / is refused: share a directory",
                         text);
  for (const char *p = real; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      return qvm_error_set(err, QVM_EINVAL,
                           "mount '%s': host path has a control character: rename it", text);
  int r = outside_qvm(text, real, err);
  if (r < 0) return r;
  if (!(*out = strdup(real))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

void vm_spec_mounts_clear(vm_spec *s) {
  for (size_t i = 0; i < s->n_mounts; i++) {
    free(s->mounts[i].host);
    free(s->mounts[i].guest);
  }
  free(s->mounts);
  s->mounts = NULL;
  s->n_mounts = 0;
}

static int add_mount(vm_spec *s, char *host, const char *guest, bool ro, qvm_error **err) {
  for (size_t i = 0; i < s->n_mounts; i++)
    if (!strcmp(s->mounts[i].guest, guest)) {
      free(host);
      return qvm_error_set(err, QVM_EINVAL, "guest path '%s' is mounted twice", guest);
    }
  vm_mount *v = reallocarray(s->mounts, s->n_mounts + 1, sizeof *v);
  char *g = strdup(guest);
  if (v) s->mounts = v;
  if (!v || !g) {
    free(host);
    free(g);
    return qvm_error_set_errno(err, ENOMEM, "cannot add mount");
  }
  s->mounts[s->n_mounts++] = (vm_mount){.host = host, .guest = g, .readonly = ro};
  return 0;
}

int vm_spec_set_mounts(vm_spec *s, const qvm_vm_mount *mounts, size_t n, qvm_error **err) {
  if (n > QVM_VM_MOUNTS_MAX)
    return qvm_error_set(err, QVM_EINVAL, "too many mounts: at most %d", QVM_VM_MOUNTS_MAX);
  for (size_t i = 0; i < n; i++) {
    const qvm_vm_mount *m = &mounts[i];
    _cleanup_free_ char *text = vm_mount_format(m);
    _cleanup_free_ char *shown = text ? qvm_text_for_terminal(text, strlen(text), 0) : NULL;
    const char *t = shown ? shown : "?";
    char *host = NULL;
    int r = m->guest ? guest_check(t, m->guest, err)
                     : qvm_error_set(err, QVM_EINVAL, "mount '%s' has no guest path", t);
    if (r >= 0) r = host_dir(&host, t, m->host, err);
    if (r >= 0 && !m->readonly && (r = xattrs_supported(t, host, err)) < 0) free(host);
    if (r >= 0) r = add_mount(s, host, m->guest, m->readonly, err);
    if (r < 0) return r;
  }
  return 0;
}

int vm_mounts_verify(const vm_spec *s, const char *runas, qvm_error **err) {
  for (size_t i = 0; i < s->n_mounts; i++) {
    const vm_mount *m = &s->mounts[i];
    char text[32];
    snprintf(text, sizeof text, "%s%zu", VM_MOUNT_TAG_PREFIX, i);
    _cleanup_free_ char *now = NULL;
    int r = host_dir(&now, m->host, m->host, err);
    if (r >= 0 && strcmp(now, m->host))
      r = qvm_error_set(err, QVM_EINVAL,
                        "mount '%s': host directory '%s' now resolves to '%s' (a symlink in "
                        "its path): qvm shares only the directory it checked at create",
                        m->host, m->host, now);
    if (r >= 0) r = runas_access(m->host, m->host, runas, m->readonly, err);
    if (r < 0) return r;
  }
  return 0;
}

/* --- vm.json ----------------------------------------------------------------- */

void vm_mounts_to_json(struct json_object *o, const vm_spec *s) {
  if (!s->n_mounts) return;
  struct json_object *a = json_object_new_array();
  for (size_t i = 0; i < s->n_mounts; i++) {
    struct json_object *m = json_object_new_object();
    json_object_object_add(m, "host", json_object_new_string(s->mounts[i].host));
    json_object_object_add(m, "guest", json_object_new_string(s->mounts[i].guest));
    json_object_object_add(m, "readonly", json_object_new_boolean(s->mounts[i].readonly));
    json_object_array_add(a, m);
  }
  json_object_object_add(o, "mounts", a);
}

struct json_object *vm_mounts_info(const vm_spec *s) {
  struct json_object *a = json_object_new_array();
  for (size_t i = 0; i < s->n_mounts; i++) {
    char tag[32];
    snprintf(tag, sizeof tag, "%s%zu", VM_MOUNT_TAG_PREFIX, i);
    struct json_object *m = json_object_new_object();
    json_object_object_add(m, "host", json_object_new_string(s->mounts[i].host));
    json_object_object_add(m, "guest", json_object_new_string(s->mounts[i].guest));
    json_object_object_add(m, "readonly", json_object_new_boolean(s->mounts[i].readonly));
    json_object_object_add(m, "tag", json_object_new_string(tag));
    json_object_array_add(a, m);
  }
  return a;
}

static const char *json_str(struct json_object *m, const char *key) {
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(m, key, &v) || !json_object_is_type(v, json_type_string))
    return NULL;
  const char *s = json_object_get_string(v);
  return strlen(s) == (size_t)json_object_get_string_len(v) ? s : NULL;
}

/* vm.json is a user file: the same rules as at create, but for the checks
 * of the directory itself, which vm_mounts_verify makes before each start. */
static int mount_from_json(vm_spec *s, struct json_object *m, size_t i, qvm_error **err) {
  struct json_object *ro = NULL;
  const char *host = json_str(m, "host"), *guest = json_str(m, "guest");
  bool has_ro = json_object_object_get_ex(m, "readonly", &ro);
  if (!json_object_is_type(m, json_type_object) || !host || !guest ||
      (has_ro && !json_object_is_type(ro, json_type_boolean)))
    return qvm_error_set(err, QVM_EINVAL,
                         "'mounts'[%zu] needs \"host\" and \"guest\" strings and a boolean "
                         "\"readonly\"",
                         i);
  size_t len = strlen(host);
  bool control = false;
  for (const char *p = host; *p; p++) control |= (unsigned char)*p < 0x20 || *p == 0x7f;
  if (host[0] != '/' || len >= PATH_MAX || control || !strcmp(host, "/"))
    return qvm_error_set(err, QVM_EINVAL, "'mounts'[%zu]: host path is not an absolute directory",
                         i);
  if (!vm_mount_guest_valid(guest))
    return qvm_error_set(err, QVM_EINVAL, "'mounts'[%zu]: guest path is invalid", i);
  char *h = strdup(host);
  if (!h) return qvm_error_set_errno(err, ENOMEM, "cannot read mounts");
  return add_mount(s, h, guest, has_ro && json_object_get_boolean(ro), err);
}

int vm_mounts_from_json(vm_spec *s, struct json_object *o, qvm_error **err) {
  struct json_object *a = NULL;
  if (!json_object_object_get_ex(o, "mounts", &a) || json_object_is_type(a, json_type_null))
    return 0;
  if (!json_object_is_type(a, json_type_array))
    return qvm_error_set(err, QVM_EINVAL, "'mounts' is not an array");
  size_t n = json_object_array_length(a);
  if (n > QVM_VM_MOUNTS_MAX)
    return qvm_error_set(err, QVM_EINVAL, "'mounts' has more than %d entries", QVM_VM_MOUNTS_MAX);
  for (size_t i = 0; i < n; i++) {
    int r = mount_from_json(s, json_object_array_get_idx(a, i), i, err);
    if (r < 0) return r;
  }
  return 0;
}

/* --- the guest ----------------------------------------------------------------- */

void vm_mount_bootcmd_free(char **lines) {
  for (char **p = lines; p && *p; p++) free(*p);
  free(lines);
}

/* The guest path passed vm_mount_guest_valid: no quote, space or shell
 * character can be in it. The fstab line is written once (the tag at the
 * start of a line), so an edit the guest's admin makes later is kept. */
int vm_mount_bootcmd(char ***out, const vm_spec *s, qvm_error **err) {
  char **lines = calloc(s->n_mounts + 1, sizeof *lines);
  if (!lines) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < s->n_mounts; i++) {
    const vm_mount *m = &s->mounts[i];
    if (!vm_mount_guest_valid(m->guest)) {
      vm_mount_bootcmd_free(lines);
      return qvm_error_set(err, QVM_EINVAL, "guest path '%s' is invalid", m->guest);
    }
    if (asprintf(&lines[i],
                 "mkdir -p '%1$s' && { grep -q '^%2$s%3$zu ' /etc/fstab || echo '%2$s%3$zu %1$s "
                 "9p trans=virtio,version=9p2000.L,msize=%4$d,nosuid,nodev,nofail%5$s 0 0' >> "
                 "/etc/fstab; } "
                 "&& { mountpoint -q '%1$s' || mount '%1$s'; } || echo 'qvm: cannot mount "
                 "%2$s%3$zu at %1$s' >&2",
                 m->guest, VM_MOUNT_TAG_PREFIX, i, VM_MOUNT_MSIZE, m->readonly ? ",ro" : "") < 0) {
      lines[i] = NULL;
      vm_mount_bootcmd_free(lines);
      return qvm_error_set_errno(err, ENOMEM, "out of memory");
    }
  }
  *out = lines;
  return 0;
}
