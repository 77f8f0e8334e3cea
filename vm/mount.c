/* SPDX-License-Identifier: MIT */
/* Host folder mounts: the --mount syntax, the checks on the host directory
 * (create, and again before each start), vm.json's "mounts", and the lines
 * qvm's seed runs in the guest. See vm/mount.h. */
#include "vm/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
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

static int add_mount(vm_spec *s, char *host, const char *guest, bool ro, bool virtiofs,
                     qvm_error **err) {
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
  s->mounts[s->n_mounts++] =
      (vm_mount){.host = host, .guest = g, .readonly = ro, .virtiofs = virtiofs};
  return 0;
}

int vm_spec_set_mounts(vm_spec *s, const qvm_vm_mount *mounts, size_t n, qvm_error **err) {
  if (n > QVM_VM_MOUNTS_MAX)
    return qvm_error_set(err, QVM_EINVAL, "too many mounts: at most %d", QVM_VM_MOUNTS_MAX);
  bool dflt = false;
  for (size_t i = 0; i < n; i++)
    if (mounts[i].transport == QVM_VM_MOUNT_DEFAULT) {
      int r = vm_mount_transport_default(&dflt, err);
      if (r < 0) return r;
      break;
    }
  for (size_t i = 0; i < n; i++) {
    bool virtiofs = mounts[i].transport == QVM_VM_MOUNT_DEFAULT
                        ? dflt
                        : mounts[i].transport == QVM_VM_MOUNT_VIRTIOFS;
    if (mounts[i].transport != QVM_VM_MOUNT_DEFAULT && mounts[i].transport != QVM_VM_MOUNT_9P &&
        mounts[i].transport != QVM_VM_MOUNT_VIRTIOFS)
      return qvm_error_set(err, QVM_EINVAL, "mount %zu has an unknown transport", i);
    const qvm_vm_mount *m = &mounts[i];
    _cleanup_free_ char *text = vm_mount_format(m);
    _cleanup_free_ char *shown = text ? qvm_text_for_terminal(text, strlen(text), 0) : NULL;
    const char *t = shown ? shown : "?";
    char *host = NULL;
    int r = m->guest ? guest_check(t, m->guest, err)
                     : qvm_error_set(err, QVM_EINVAL, "mount '%s' has no guest path", t);
    if (r >= 0) r = host_dir(&host, t, m->host, err);
    /* virtiofs keeps no xattrs: the guest's owners and modes are real */
    if (r >= 0 && !m->readonly && !virtiofs && (r = xattrs_supported(t, host, err)) < 0) free(host);
    if (r >= 0) r = add_mount(s, host, m->guest, m->readonly, virtiofs, err);
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
    if (r >= 0 && m->virtiofs && !runas && geteuid() == 0)
      r = qvm_error_set(err, QVM_EPERM,
                        "mount '%s': qemu runs as root (QVM_QEMU_USER=root), and virtiofsd "
                        "would run as root too: let qemu drop to its own user",
                        m->host);
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
    json_object_object_add(m, "transport",
                           json_object_new_string(s->mounts[i].virtiofs ? "virtiofs" : "9p"));
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
    json_object_object_add(m, "transport",
                           json_object_new_string(s->mounts[i].virtiofs ? "virtiofs" : "9p"));
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
  struct json_object *ro = NULL, *tr = NULL;
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
  /* absent: a record from before virtiofs, 9p */
  const char *transport = json_str(m, "transport");
  if (json_object_object_get_ex(m, "transport", &tr) &&
      (!transport || (strcmp(transport, "9p") && strcmp(transport, "virtiofs"))))
    return qvm_error_set(err, QVM_EINVAL, "'mounts'[%zu]: \"transport\" is \"9p\" or \"virtiofs\"",
                         i);
  char *h = strdup(host);
  if (!h) return qvm_error_set_errno(err, ENOMEM, "cannot read mounts");
  return add_mount(s, h, guest, has_ro && json_object_get_boolean(ro),
                   transport && !strcmp(transport, "virtiofs"), err);
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
    char opts[96];
    if (m->virtiofs)
      snprintf(opts, sizeof opts, "virtiofs nosuid,nodev,nofail%s", m->readonly ? ",ro" : "");
    else
      snprintf(opts, sizeof opts, "9p trans=virtio,version=9p2000.L,msize=%d,nosuid,nodev,nofail%s",
               VM_MOUNT_MSIZE, m->readonly ? ",ro" : "");
    if (asprintf(&lines[i],
                 "mkdir -p '%1$s' && { grep -q '^%2$s%3$zu ' /etc/fstab || echo '%2$s%3$zu %1$s "
                 "%4$s 0 0' >> /etc/fstab; } "
                 "&& { mountpoint -q '%1$s' || mount '%1$s'; } || echo 'qvm: cannot mount "
                 "%2$s%3$zu at %1$s' >&2",
                 m->guest, VM_MOUNT_TAG_PREFIX, i, opts) < 0) {
      lines[i] = NULL;
      vm_mount_bootcmd_free(lines);
      return qvm_error_set_errno(err, ENOMEM, "out of memory");
    }
  }
  *out = lines;
  return 0;
}

/* --- virtiofs ------------------------------------------------------------------ */

bool vm_mounts_virtiofs(const vm_spec *s) {
  for (size_t i = 0; i < s->n_mounts; i++)
    if (s->mounts[i].virtiofs) return true;
  return false;
}

const char *vm_virtiofsd_path(void) {
  const char *p = getenv("QVM_VIRTIOFSD");
  return p && p[0] ? p : VM_VIRTIOFSD_DEFAULT;
}

int vm_mount_transport_default(bool *virtiofs, qvm_error **err) {
  const char *t = getenv("QVM_MOUNT_TRANSPORT");
  if (t && t[0]) {
    if (strcmp(t, "9p") && strcmp(t, "virtiofs"))
      return qvm_error_set(err, QVM_EINVAL, "QVM_MOUNT_TRANSPORT is '%.32s': use 9p or virtiofs",
                           t);
    *virtiofs = !strcmp(t, "virtiofs");
    if (*virtiofs && access(vm_virtiofsd_path(), X_OK) < 0)
      return qvm_error_set_errno(err, errno,
                                 "QVM_MOUNT_TRANSPORT=virtiofs, but '%s' cannot be run (Debian: "
                                 "package qemu-system-common; or set QVM_VIRTIOFSD)",
                                 vm_virtiofsd_path());
    return 0;
  }
  *virtiofs = access(vm_virtiofsd_path(), X_OK) == 0;
  return 0;
}

#if defined(__x86_64__)
#define VFS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define VFS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#define VFS_LD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define VFS_RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define VFS_NR offsetof(struct seccomp_data, nr)
/* the low 32 bits of argument n (little endian) */
#define VFS_ARG(n) (offsetof(struct seccomp_data, args) + 8 * (n))
/* syscall sysno returns v without running */
#define VFS_NR_RET(sysno, v) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (sysno), 0, 1), VFS_RET(v)
/* syscall sysno with any of the mode bits `bits` in argument n: EPERM */
#define VFS_NR_MODE(sysno, n, bits)                                                                \
  BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (sysno), 0, 4), VFS_LD(VFS_ARG(n)),                          \
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, (bits), 0, 1), VFS_RET(SECCOMP_RET_ERRNO | EPERM),      \
      VFS_LD(VFS_NR)
#define VFS_SETID (S_ISUID | S_ISGID)
#define VFS_OK (SECCOMP_RET_ERRNO | 0) /* "succeeds", does nothing */
#define VFS_EPERM (SECCOMP_RET_ERRNO | EPERM)
#define VFS_ENOSYS (SECCOMP_RET_ERRNO | ENOSYS)

/* virtiofsd's own filter allows what it needs; this one, stacked under it
 * (the stricter answer wins), takes away what a hostile guest could turn
 * against the host. The C virtiofsd switches to the guest's uid and gid
 * (setresuid) around every create: no-ops here, so every file is made by
 * the one mapped user. */
static int vfs_seccomp(void) {
#ifdef VFS_AUDIT_ARCH
  struct sock_filter f[] = {
      VFS_LD(offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, VFS_AUDIT_ARCH, 1, 0),
      VFS_RET(SECCOMP_RET_KILL_PROCESS),
      VFS_LD(VFS_NR),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1), /* x32 */
      VFS_RET(VFS_ENOSYS),
      VFS_NR_RET(SYS_setresuid, VFS_OK),
      VFS_NR_RET(SYS_setresgid, VFS_OK),
      VFS_NR_RET(SYS_setuid, VFS_OK),
      VFS_NR_RET(SYS_setgid, VFS_OK),
      VFS_NR_RET(SYS_setreuid, VFS_OK),
      VFS_NR_RET(SYS_setregid, VFS_OK),
      VFS_NR_RET(SYS_setfsuid, VFS_OK),
      VFS_NR_RET(SYS_setfsgid, VFS_OK),
      VFS_NR_RET(SYS_setgroups, VFS_OK),
      /* no symlinks (a link the host follows), FIFOs, sockets or devices */
      VFS_NR_RET(SYS_symlinkat, VFS_EPERM),
      VFS_NR_RET(SYS_mknodat, VFS_EPERM),
#ifdef SYS_symlink
      VFS_NR_RET(SYS_symlink, VFS_EPERM),
      VFS_NR_RET(SYS_mknod, VFS_EPERM),
#endif
      /* no extended attributes (security.capability, ACLs) */
      VFS_NR_RET(SYS_setxattr, VFS_EPERM),
      VFS_NR_RET(SYS_lsetxattr, VFS_EPERM),
      VFS_NR_RET(SYS_fsetxattr, VFS_EPERM),
      /* newer ways around the checks below */
      VFS_NR_RET(SYS_openat2, VFS_ENOSYS),
      VFS_NR_RET(452 /* fchmodat2 */, VFS_ENOSYS),
      VFS_NR_RET(SYS_io_uring_setup, VFS_ENOSYS),
      /* no setuid or setgid bit, made or set; no world-writable mode set
       * or directory made (a file created is left to the guest's umask:
       * the open mode 0666 of virtiofsd's own fopen looks the same) */
      VFS_NR_MODE(SYS_fchmod, 1, VFS_SETID | S_IWOTH),
      VFS_NR_MODE(SYS_fchmodat, 2, VFS_SETID | S_IWOTH),
      VFS_NR_MODE(SYS_mkdirat, 2, S_IWOTH),
      VFS_NR_MODE(SYS_openat, 3, VFS_SETID),
#ifdef SYS_chmod
      VFS_NR_MODE(SYS_chmod, 1, VFS_SETID | S_IWOTH),
      VFS_NR_MODE(SYS_mkdir, 1, S_IWOTH),
      VFS_NR_MODE(SYS_open, 2, VFS_SETID),
      VFS_NR_MODE(SYS_creat, 1, VFS_SETID),
#endif
      VFS_RET(SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = (unsigned short)(sizeof f / sizeof f[0]), .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
#else
  errno = ENOSYS; /* no filter for this architecture: no virtiofsd */
  return -1;
#endif
}

/* Everything a child needs, made before fork. */
typedef struct vfs_child {
  const char *virtiofsd;
  const char *source;
  bool ro;
  bool drop; /* setgroups and setres[ug]id to uid, gid first (root) */
  uid_t uid;
  gid_t gid;
  int listen_fd, log_fd, dir_fd;
  char uid_map[32], gid_map[32];
  char *env_source; /* QVM_VIRTIOFS_SOURCE=HOST: which share a virtiofsd serves */
} vfs_child;

static int vfs_write(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t len = (ssize_t)strlen(text), n = write(fd, text, (size_t)len);
  int e = errno;
  close(fd);
  errno = e;
  return n == len ? 0 : -1;
}

/* Where virtiofsd finds the directory in its mount namespace: a tmpfs on
 * /tmp (0755) holding a bind mount of it, so the directory's own parents
 * need not be reachable by QEMU's user. */
#define VFS_MNT_PARENT "/tmp"
#define VFS_MNT VFS_MNT_PARENT "/qvm-share"

/* In a new mount namespace: the directory (the cwd) bind-mounted at
 * VFS_MNT, read-only for :ro. Made while still root in the host's user
 * namespace, the read-only flag is locked for virtiofsd's. */
static const char *vfs_bind(const vfs_child *c) {
  struct statvfs v;
  if (unshare(CLONE_NEWNS) < 0) return "unshare mount namespace";
  if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return "mount private";
  if (mount("qvm", VFS_MNT_PARENT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
            "mode=0755,size=16k,nr_inodes=16") < 0)
    return "mount a tmpfs on " VFS_MNT_PARENT;
  if (mkdir(VFS_MNT, 0755) < 0) return "mkdir " VFS_MNT;
  if (mount(".", VFS_MNT, NULL, MS_BIND | MS_REC, NULL) < 0) return "bind";
  if (!c->ro) return NULL;
  if (statvfs(VFS_MNT, &v) < 0) return "statvfs";
  /* the flags the mount had are kept (a user namespace could not clear them
   * either) */
  unsigned long fl = MS_BIND | MS_REMOUNT | MS_RDONLY;
  if (v.f_flag & ST_NOSUID) fl |= MS_NOSUID;
  if (v.f_flag & ST_NODEV) fl |= MS_NODEV;
  if (v.f_flag & ST_NOEXEC) fl |= MS_NOEXEC;
  if (v.f_flag & ST_NOATIME) fl |= MS_NOATIME;
  if (v.f_flag & ST_NODIRATIME) fl |= MS_NODIRATIME;
  if (v.f_flag & ST_RELATIME) fl |= MS_RELATIME;
  if (mount(NULL, VFS_MNT, NULL, fl, NULL) < 0) return "remount read-only";
  return NULL;
}

/* In the child between fork and exec: system calls only. */
__attribute__((noreturn)) static void vfs_exec(const vfs_child *c) {
  const char *step = "fds";
  int nul = open("/dev/null", O_RDWR);
  int l = fcntl(c->log_fd, F_DUPFD_CLOEXEC, 10), sk = fcntl(c->listen_fd, F_DUPFD_CLOEXEC, 10);
  if (nul < 0 || l < 0 || sk < 0 || dup2(nul, 0) < 0 || dup2(l, 1) < 0 || dup2(l, 2) < 0 ||
      dup2(sk, 3) < 0)
    _exit(126);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
  setsid();
  /* The directory, opened while root: its parents need not be reachable
   * by QEMU's user (as with 9p, where QEMU opens it before -runas):
   * virtiofsd gets it at VFS_MNT. */
  step = "chdir";
  if (fchdir(c->dir_fd) < 0) goto fail;
  /* as root: before the user namespace; else (qvm not root) in it */
  if (c->drop && (step = vfs_bind(c))) goto fail;
  if (c->drop) {
    step = "setgroups";
    if (setgroups(0, NULL) < 0) goto fail;
    step = "setresgid";
    if (setresgid(c->gid, c->gid, c->gid) < 0) goto fail;
    step = "setresuid";
    if (setresuid(c->uid, c->uid, c->uid) < 0) goto fail;
    /* the uid change made this process undumpable: its /proc/self/uid_map
     * would stay root's */
    step = "dumpable";
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) goto fail;
  }
  /* only that uid and gid, as the namespace's root: its capabilities
   * reach no other owner's files */
  step = "unshare user namespace (unprivileged user namespaces disabled?)";
  if (unshare(CLONE_NEWUSER) < 0) goto fail;
  step = "uid_map";
  if (vfs_write("/proc/self/setgroups", "deny") < 0 ||
      vfs_write("/proc/self/uid_map", c->uid_map) < 0)
    goto fail;
  step = "gid_map";
  if (vfs_write("/proc/self/gid_map", c->gid_map) < 0) goto fail;
  if (!c->drop && (step = vfs_bind(c))) goto fail;
  close_range(4, ~0U, 0);
  step = "chdir /";
  if (chdir("/") < 0) goto fail;
  /* No parent-death signal: like QEMU, a virtiofsd outlives a shim that
   * dies (the next shim adopts QEMU, and the guest's mounts keep working);
   * it exits when QEMU hangs up. */
  step = "seccomp";
  if (vfs_seccomp() < 0) goto fail;
  /* no_xattr: no security.capability or ACLs; modcaps: virtiofsd's own
   * capabilities (in its namespace) without mknod, setfcap and fsetid */
  const char *argv[] = {c->virtiofsd, "--fd=3",
                        "-o",         "source=" VFS_MNT,
                        "-o",         "no_xattr",
                        "-o",         "no_posix_acl",
                        "-o",         "no_security_label",
                        "-o",         "cache=auto",
                        "-o",         "modcaps=-mknod:-setfcap:-fsetid",
                        NULL};
  const char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", c->env_source, NULL};
  step = "exec";
  execve(c->virtiofsd, (char *const *)argv, (char *const *)envp);
fail:
  dprintf(2, "qvm: virtiofsd for '%s': %s: %s\n", c->source, step, strerror(errno));
  _exit(127);
}

static int vfs_listen(int *out, const char *path, qvm_error **err) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path)
    return qvm_error_set(err, QVM_EINVAL, "socket path '%s' is too long", path);
  memcpy(a.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot make a socket");
  if ((unlink(path) < 0 && errno != ENOENT) || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      chmod(path, 0600) < 0 || listen(fd, 1) < 0) {
    int e = errno;
    close(fd);
    return qvm_error_set_errno(err, e, "cannot listen on '%s'", path);
  }
  *out = fd;
  return 0;
}

static void vfs_sock_path(char *buf, size_t n, const char *dir, size_t i) {
  snprintf(buf, n, "%s/" VM_MOUNT_TAG_PREFIX "%zu" VM_MOUNT_SOCK_SUFFIX, dir, i);
}

int vm_virtiofsd_start(pid_t *pids, size_t *n_pids, const vm_spec *s, const char *sock_dir,
                       const char *runas, int log_fd, qvm_error **err) {
  *n_pids = 0;
  if (!vm_mounts_virtiofs(s)) return 0;
  unsigned long uid = geteuid(), gid = getegid();
  if (runas && sscanf(runas, "%lu:%lu", &uid, &gid) != 2)
    return qvm_error_set(err, QVM_EINVAL, "qemu user '%s' is not UID:GID", runas);
  if (!runas && geteuid() == 0)
    return qvm_error_set(err, QVM_EPERM,
                         "virtiofsd would run as root: qemu must drop to its "
                         "own user for virtiofs mounts");
  if (uid == 0 || gid == 0)
    return qvm_error_set(err, QVM_EPERM, "virtiofsd must not run as uid or gid 0");
  const char *bin = vm_virtiofsd_path();
  if (access(bin, X_OK) < 0)
    return qvm_error_set_errno(err, errno,
                               "virtiofs mounts need virtiofsd, and '%s' cannot be run (Debian: "
                               "package qemu-system-common; or set QVM_VIRTIOFSD)",
                               bin);
  for (size_t i = 0; i < s->n_mounts && i < QVM_VM_MOUNTS_MAX; i++) {
    const vm_mount *m = &s->mounts[i];
    if (!m->virtiofs) continue;
    char path[PATH_MAX];
    vfs_sock_path(path, sizeof path, sock_dir, i);
    vfs_child c = {.virtiofsd = bin,
                   .source = m->host,
                   .ro = m->readonly,
                   .drop = runas != NULL,
                   .uid = (uid_t)uid,
                   .gid = (gid_t)gid,
                   .log_fd = log_fd};
    snprintf(c.uid_map, sizeof c.uid_map, "0 %lu 1\n", uid);
    snprintf(c.gid_map, sizeof c.gid_map, "0 %lu 1\n", gid);
    int r = 0;
    /* vm_mounts_verify just found it resolves to itself */
    c.dir_fd = open(m->host, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (c.dir_fd < 0) r = qvm_error_set_errno(err, errno, "cannot open '%s'", m->host);
    if (r >= 0 && asprintf(&c.env_source, "QVM_VIRTIOFS_SOURCE=%s", m->host) < 0) {
      c.env_source = NULL;
      r = qvm_error_set_errno(err, ENOMEM, "out of memory");
    }
    if (r >= 0) r = vfs_listen(&c.listen_fd, path, err);
    pid_t pid = -1;
    if (r >= 0) {
      pid = fork();
      if (pid == 0) vfs_exec(&c);
      int e = errno;
      close(c.listen_fd); /* virtiofsd has it; QEMU connects by path */
      if (pid < 0) r = qvm_error_set_errno(err, e, "cannot fork virtiofsd");
    }
    if (c.dir_fd >= 0) close(c.dir_fd);
    free(c.env_source);
    if (r < 0) {
      vm_virtiofsd_stop(pids, n_pids, s, sock_dir);
      return r;
    }
    pids[(*n_pids)++] = pid;
  }
  return 0;
}

static bool vfs_reap(pid_t pid, int ms) {
  for (int waited = 0;; waited += 20) {
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (waited >= ms) return false;
    nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
  }
}

void vm_virtiofsd_stop(pid_t *pids, size_t *n_pids, const vm_spec *s, const char *sock_dir) {
  for (size_t i = 0; i < *n_pids; i++) kill(pids[i], SIGTERM);
  for (size_t i = 0; i < *n_pids; i++)
    if (!vfs_reap(pids[i], 2000)) {
      kill(pids[i], SIGKILL);
      while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR) {
      }
    }
  *n_pids = 0;
  for (size_t i = 0; sock_dir && i < s->n_mounts; i++) {
    if (!s->mounts[i].virtiofs) continue;
    char path[PATH_MAX];
    vfs_sock_path(path, sizeof path, sock_dir, i);
    unlink(path);
  }
}
