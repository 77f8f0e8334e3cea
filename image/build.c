/* SPDX-License-Identifier: MIT */
/* Offline image build (image/build.h): mmdebstrap, mkfs.ext4 -d, sfdisk,
 * GRUB's boot.img/core.img written after the MBR, qemu-img convert. There
 * is no partition scanning on the hosts this runs on (losetup -P makes no
 * loopNp1), so nothing is mounted: the root filesystem is made as a file of
 * the partition's size and copied into place. */
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <qvm/text.h>

#include "image/build.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"

/* image/build-customize.sh, compiled in (cmake/EmbedFile.cmake). */
extern const unsigned char img_build_hook[];
extern const size_t img_build_hook_len;

#define MIB (UINT64_C(1) << 20)
#define PART_START_SECTOR 2048

typedef struct build_ctx {
  const img_build_opts *o;
  const img_distro *distro;
  const char *tmp;
  char *log; /* every tool's output, for the tail in an error */
  sigset_t sigs;
  int interrupted; /* the signal that stopped the build, or 0 */
  const char *phase;
  int64_t last_tick_ms;
} build_ctx;

static const struct {
  const char *tool, *package;
} tools[] = {
    {"mmdebstrap", "mmdebstrap"},
    {"mkfs.ext4", "e2fsprogs"},
    {"sfdisk", "fdisk"},
    {"qemu-img", "qemu-utils"},
};
enum { T_MMDEBSTRAP, T_MKFS, T_SFDISK, T_QEMU_IMG, T_COUNT };

void img_build_result_clear(img_build_result *r) {
  free(r->kernel);
  free(r->packages);
  *r = (img_build_result){0};
}

static char *path_in(const char *dir, const char *name) {
  char *p = NULL;
  return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static int find_tool(char **out, size_t which, qvm_error **err) {
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const char *p = path; *p;) {
    size_t n = strcspn(p, ":");
    if (n > 0 && p[0] == '/') {
      char *cand = NULL;
      if (asprintf(&cand, "%.*s/%s", (int)n, p, tools[which].tool) < 0)
        return qvm_error_set_errno(err, ENOMEM, "tool lookup");
      struct stat st;
      if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) {
        *out = cand;
        return 0;
      }
      free(cand);
    }
    p += n + (p[n] == ':');
  }
  return qvm_error_set(err, QVM_EUNAVAIL, "'%s' not found in PATH (it is in the '%s' package)",
                       tools[which].tool, tools[which].package);
}

static const char *signal_name(int sig) {
  return sig == SIGINT    ? "SIGINT"
         : sig == SIGTERM ? "SIGTERM"
         : sig == SIGHUP  ? "SIGHUP"
                          : "a signal";
}

static int check_interrupt(build_ctx *c, qvm_error **err) {
  const struct timespec zero = {0, 0};
  int sig = sigtimedwait(&c->sigs, NULL, &zero);
  if (sig > 0 && !c->interrupted) c->interrupted = sig;
  if (!c->interrupted) return 0;
  return qvm_error_set_code_errno(err, QVM_ESYS, EINTR, "image build interrupted by %s",
                                  signal_name(c->interrupted));
}

static int begin_phase(build_ctx *c, const char *phase, qvm_error **err) {
  int r = check_interrupt(c, err);
  if (r < 0) return r;
  c->phase = phase;
  c->last_tick_ms = qvm_now_ms();
  if (c->o->progress) c->o->progress(phase, c->o->userdata);
  return 0;
}

static void tick(build_ctx *c) {
  int64_t now = qvm_now_ms();
  if (!c->o->progress || now - c->last_tick_ms < 1000) return;
  c->last_tick_ms = now;
  c->o->progress(c->phase, c->o->userdata);
}

/* The last lines of the tools' log, neutralized, as one line ("a | b"). */
static char *log_tail(const char *log) {
  _cleanup_close_ int fd = open(log, O_RDONLY | O_CLOEXEC);
  char buf[1024];
  ssize_t n = 0;
  if (fd >= 0) {
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
    n = pread(fd, buf, sizeof buf, from);
  }
  if (n <= 0) return strdup("no output");
  size_t len = (size_t)n;
  while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
  size_t start = len, lines = 0;
  while (start > 0 && lines < 6) {
    start--;
    if (buf[start] == '\n') lines++;
  }
  if (buf[start] == '\n') start++;
  qvm_strbuf sb = QVM_STRBUF_INIT;
  for (size_t i = start; i < len;) {
    const char *nl = memchr(buf + i, '\n', len - i);
    size_t l = nl ? (size_t)(nl - (buf + i)) : len - i;
    char *safe = qvm_text_for_terminal(buf + i, l, 0);
    if (l) qvm_strbuf_printf(&sb, "%s%s", sb.len ? " | " : "", safe ? safe : "");
    free(safe);
    i += l + 1;
  }
  return qvm_strbuf_steal(&sb);
}

/* Runs argv (argv[0] a full path) in its own process group, stdin from
 * in_path (or /dev/null), stdout to out_path (or the log), stderr to the
 * log. A SIGINT/SIGTERM/SIGHUP meanwhile stops it (SIGTERM to its group,
 * SIGKILL 30 s later). */
static int run(build_ctx *c, const char *const argv[], const char *in_path, const char *out_path,
               qvm_error **err) {
  _cleanup_close_ int in = open(in_path ? in_path : "/dev/null", O_RDONLY | O_CLOEXEC);
  _cleanup_close_ int logfd = open(c->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  _cleanup_close_ int outfd =
      out_path ? open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
  if (in < 0 || logfd < 0 || (out_path && outfd < 0))
    return qvm_error_set_errno(err, errno, "cannot run '%s'", argv[0]);
  pid_t pid = fork();
  if (pid < 0) return qvm_error_set_errno(err, errno, "cannot run '%s'", argv[0]);
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    setpgid(0, 0);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(in, 0) < 0 || dup2(out_path ? outfd : logfd, 1) < 0 || dup2(logfd, 2) < 0) _exit(126);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  setpgid(pid, pid);
  int status = 0;
  int64_t kill_at = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return qvm_error_set_errno(err, errno, "waitpid");
    const struct timespec step = {0, 200 * 1000 * 1000};
    int sig = sigtimedwait(&c->sigs, NULL, &step);
    if (sig > 0 && !c->interrupted) {
      c->interrupted = sig;
      kill(-pid, SIGTERM);
      kill_at = qvm_now_ms() + 30000;
    }
    if (kill_at && qvm_now_ms() > kill_at) {
      kill(-pid, SIGKILL);
      kill_at = 0;
    }
    tick(c);
  }
  int r = check_interrupt(c, err);
  if (r < 0) return r;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  _cleanup_free_ char *tail = log_tail(c->log);
  const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
  if (WIFEXITED(status))
    return qvm_error_set(err, QVM_ESYS, "'%s' failed (exit status %d): %s", base,
                         WEXITSTATUS(status), tail ? tail : "");
  return qvm_error_set(err, QVM_ESYS, "'%s' was killed by signal %d: %s", base, WTERMSIG(status),
                       tail ? tail : "");
}

static int write_new_file(const char *path, const void *data, size_t len, mode_t mode,
                          qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0 || qvm_write_all(fd, data, len) < 0 || fchmod(fd, mode) < 0)
    return qvm_error_set_errno(err, errno, "cannot write '%s'", path);
  return 0;
}

/* Single quotes for sh, ' as '\''. */
static void sh_quote(qvm_strbuf *sb, const char *s) {
  qvm_strbuf_putc(sb, '\'');
  for (; *s; s++)
    if (*s == '\'')
      qvm_strbuf_puts(sb, "'\\''");
    else
      qvm_strbuf_putc(sb, *s);
  qvm_strbuf_putc(sb, '\'');
}

static int make_uuid(char out[37], qvm_error **err) {
  unsigned char b[16];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
    return qvm_error_set_errno(err, errno, "getrandom");
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
  return 0;
}

/* Unmounts (lazily, deepest first) whatever is mounted under dir: an
 * interrupted mmdebstrap may leave the chroot's /proc, /sys or /dev. */
static void unmount_under(const char *dir) {
  _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return;
  size_t dl = strlen(dir);
  char **found = NULL;
  size_t n = 0;
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    char *save = NULL, *tok = strtok_r(line, " ", &save);
    for (int i = 0; tok && i < 4; i++) tok = strtok_r(NULL, " ", &save);
    if (!tok) continue;
    char *w = tok; /* undo the octal escapes of spaces and such */
    for (char *r = tok; *r; r++) {
      if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
          r[3] <= '7') {
        *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
        r += 3;
      } else {
        *w++ = *r;
      }
    }
    *w = '\0';
    if (strncmp(tok, dir, dl) || tok[dl] != '/') continue;
    char **grown = realloc(found, (n + 1) * sizeof *found);
    if (!grown) break;
    found = grown;
    if ((found[n] = strdup(tok))) n++;
  }
  free(line);
  for (size_t pass = 0; pass < n; pass++) /* longest first: children before parents */
    for (size_t i = pass + 1; i < n; i++)
      if (strlen(found[i]) > strlen(found[pass])) {
        char *t = found[i];
        found[i] = found[pass];
        found[pass] = t;
      }
  for (size_t i = 0; i < n; i++) {
    umount2(found[i], MNT_DETACH);
    free(found[i]);
  }
  free(found);
}

static int remove_tree(const char *path, qvm_error **err) {
  unmount_under(path);
  return qvm_rm_rf(path, err);
}

static int tree_bytes(uint64_t *out, const char *root, qvm_error **err) {
  char *paths[] = {(char *)root, NULL};
  FTS *fts = fts_open(paths, FTS_PHYSICAL | FTS_XDEV | FTS_NOCHDIR, NULL);
  if (!fts) return qvm_error_set_errno(err, errno, "cannot walk '%s'", root);
  uint64_t sum = 0;
  FTSENT *e;
  while ((e = fts_read(fts)))
    if (e->fts_info != FTS_DP && e->fts_statp && e->fts_info != FTS_NS)
      sum += (uint64_t)e->fts_statp->st_blocks * 512;
  fts_close(fts);
  *out = sum;
  return 0;
}

static bool version_valid(const char *v, size_t n) {
  if (n == 0 || n > 128) return false;
  for (size_t i = 0; i < n; i++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+~:-", v[i]))
      return false;
  return true;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_package(char ***lines, size_t *n, const char *pkg, size_t pl, const char *ver,
                       size_t vl) {
  char **g = realloc(*lines, (*n + 1) * sizeof **lines);
  if (!g) return -1;
  *lines = g;
  if (asprintf(&g[*n], "%.*s %.*s", (int)pl, pkg, (int)vl, ver) < 0) return -1;
  (*n)++;
  return 0;
}

/* "name version" lines of the installed packages in root's dpkg status. */
static int installed_packages(img_build_result *r, const char *root, qvm_error **err) {
  _cleanup_free_ char *path = path_in(root, "var/lib/dpkg/status");
  _cleanup_free_ char *text = NULL;
  if (!path) return qvm_error_set_errno(err, ENOMEM, "dpkg status");
  int rc = qvm_read_file(&text, NULL, path, 64 << 20, err);
  if (rc < 0) return rc;
  char **lines = NULL;
  size_t n = 0;
  bool oom = false, installed = false;
  const char *pkg = NULL, *ver = NULL;
  size_t pl = 0, vl = 0;
  for (const char *p = text;;) {
    size_t len = strcspn(p, "\n");
    bool last = p[len] == '\0';
    if (len > 9 && !strncmp(p, "Package: ", 9)) {
      pkg = p + 9;
      pl = len - 9;
      char name[129];
      snprintf(name, sizeof name, "%.*s", (int)(pl < 128 ? pl : 128), pkg);
      if (pl > 128 || !img_package_name_valid(name)) pkg = NULL;
    } else if (len > 9 && !strncmp(p, "Version: ", 9)) {
      ver = p + 9;
      vl = len - 9;
      if (!version_valid(ver, vl)) ver = NULL;
    } else if (!strncmp(p, "Status: ", 8)) {
      installed = len >= 18 && !strncmp(p + len - 10, " installed", 10);
    }
    if (len == 0 || last) { /* end of a stanza */
      if (pkg && ver && installed && !oom && add_package(&lines, &n, pkg, pl, ver, vl) < 0)
        oom = true;
      pkg = ver = NULL;
      installed = false;
    }
    if (last) break;
    p += len + 1;
  }
  if (lines) qsort(lines, n, sizeof *lines, cmp_str);
  qvm_strbuf sb = QVM_STRBUF_INIT;
  for (size_t i = 0; i < n; i++) {
    qvm_strbuf_printf(&sb, "%s\n", lines[i]);
    free(lines[i]);
  }
  free(lines);
  r->packages = qvm_strbuf_steal(&sb);
  r->n_packages = n;
  if (oom || !r->packages) return qvm_error_set_errno(err, ENOMEM, "dpkg status");
  if (n == 0) return qvm_error_set(err, QVM_ESYS, "the built tree has no installed package");
  return 0;
}

static int read_kernel_version(img_build_result *r, const char *tmp, qvm_error **err) {
  _cleanup_free_ char *path = path_in(tmp, "kernel-version");
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  if (!path) return qvm_error_set_errno(err, ENOMEM, "kernel version");
  int rc = qvm_read_file(&text, &len, path, 256, err);
  if (rc < 0) {
    qvm_error_prefix(err, "the customize hook left no kernel version");
    return rc;
  }
  while (len && text[len - 1] == '\n') text[--len] = '\0';
  for (size_t i = 0; i < len; i++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+~_-", text[i]))
      len = 0;
  if (len == 0 || len > 128)
    return qvm_error_set(err, QVM_ESYS, "the customize hook left a bad kernel version");
  r->kernel = TAKE_PTR(text);
  return 0;
}

static int bootstrap(build_ctx *c, img_build_result *r, const char *tool, qvm_error **err) {
  const img_build_opts *o = c->o;
  _cleanup_free_ char *hook = path_in(c->tmp, "customize.sh");
  _cleanup_free_ char *root = path_in(c->tmp, "root");
  _cleanup_free_ char *sources_path = path_in(c->tmp, "sources.list");
  if (!hook || !root || !sources_path) return qvm_error_set_errno(err, ENOMEM, "image build");
  int rc = write_new_file(hook, img_build_hook, img_build_hook_len, 0700, err);
  if (rc < 0) return rc;
  const char *mirror = o->mirror;
  if (!mirror) {
    _cleanup_free_ char *sources = NULL;
    rc =
        img_host_apt_sources(&sources, o->etc_apt ? o->etc_apt : "/etc/apt", c->distro->suite, err);
    if (rc < 0) return rc;
    if ((rc = write_new_file(sources_path, sources, strlen(sources), 0600, err)) < 0) return rc;
    mirror = sources_path;
  }
  qvm_strbuf inc = QVM_STRBUF_INIT, cmd = QVM_STRBUF_INIT;
  qvm_strbuf_puts(&inc, "--include=");
  for (size_t i = 0; img_build_base_packages[i]; i++)
    qvm_strbuf_printf(&inc, "%s%s", i ? "," : "", img_build_base_packages[i]);
  for (size_t i = 0; i < o->n_packages; i++) qvm_strbuf_printf(&inc, ",%s", o->packages[i]);
  /* mmdebstrap runs a hook through sh: every word is quoted, and none is
   * the user's (the temp dir is the store's, the uuid ours). */
  qvm_strbuf_puts(&cmd, "--customize-hook=");
  sh_quote(&cmd, hook);
  qvm_strbuf_puts(&cmd, " \"$1\" ");
  sh_quote(&cmd, r->fs_uuid);
  qvm_strbuf_putc(&cmd, ' ');
  sh_quote(&cmd, c->tmp);
  qvm_strbuf_putc(&cmd, ' ');
  sh_quote(&cmd, c->distro->title);
  _cleanup_free_ char *include = qvm_strbuf_steal(&inc);
  _cleanup_free_ char *customize = qvm_strbuf_steal(&cmd);
  if (!include || !customize) return qvm_error_set_errno(err, ENOMEM, "image build");
  const char *argv[] = {tool,
                        "--mode=root",
                        "--variant=apt",
                        "--format=directory",
                        include,
                        "--aptopt=Acquire::Languages \"none\"",
                        "--dpkgopt=path-exclude=/usr/share/man/*",
                        "--dpkgopt=path-exclude=/usr/share/locale/*",
                        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
                        "--dpkgopt=path-exclude=/usr/share/doc/*",
                        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                        customize,
                        c->distro->suite,
                        root,
                        mirror,
                        NULL};
  if ((rc = run(c, argv, NULL, NULL, err)) < 0) {
    qvm_error_prefix(err, "bootstrap");
    return rc;
  }
  if ((rc = read_kernel_version(r, c->tmp, err)) < 0 || (rc = installed_packages(r, root, err)) < 0)
    return rc;
  return tree_bytes(&r->root_tree_bytes, root, err);
}

static int filesystem(build_ctx *c, img_build_result *r, const char *tool, qvm_error **err) {
  _cleanup_free_ char *root = path_in(c->tmp, "root");
  _cleanup_free_ char *image = path_in(c->tmp, "root.ext4");
  if (!root || !image) return qvm_error_set_errno(err, ENOMEM, "image build");
  /* Room for the journal, inode tables and a little slack. */
  uint64_t need = r->root_tree_bytes / 2 * 3 + 128 * MIB;
  r->fs_size = r->virtual_size - (uint64_t)PART_START_SECTOR * 512;
  if (need > r->fs_size)
    return qvm_error_set(err, QVM_EINVAL,
                         "the root tree is %" PRIu64 " MiB: a %" PRIu64
                         " MiB disk is too small for it (at least %" PRIu64 " MiB)",
                         r->root_tree_bytes / MIB, r->virtual_size / MIB, need / MIB + 2);
  char size[32];
  snprintf(size, sizeof size, "%" PRIu64 "k", r->fs_size / 1024);
  const char *argv[] = {tool,       "-q", "-F", "-L",  "root", "-U",
                        r->fs_uuid, "-d", root, image, size,   NULL};
  int rc = run(c, argv, NULL, NULL, err);
  if (rc < 0) {
    qvm_error_prefix(err, "filesystem");
    return rc;
  }
  return remove_tree(root, err);
}

/* Copies the data of src (skipping holes) into dst at offset. */
static int copy_sparse(int dst, const char *src_path, uint64_t offset, qvm_error **err) {
  _cleanup_close_ int src = open(src_path, O_RDONLY | O_CLOEXEC);
  if (src < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", src_path);
  _cleanup_free_ char *buf = malloc(MIB);
  if (!buf) return qvm_error_set_errno(err, ENOMEM, "copy");
  off_t end = lseek(src, 0, SEEK_END);
  for (off_t pos = 0; pos < end;) {
    off_t data = lseek(src, pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;
    off_t hole = data < 0 ? -1 : lseek(src, data, SEEK_HOLE);
    if (data < 0 || hole < 0) return qvm_error_set_errno(err, errno, "cannot read '%s'", src_path);
    for (pos = data; pos < hole;) {
      size_t want = (size_t)(hole - pos) < MIB ? (size_t)(hole - pos) : MIB;
      ssize_t n = pread(src, buf, want, pos);
      if (n <= 0)
        return qvm_error_set_errno(err, n < 0 ? errno : EIO, "cannot read '%s'", src_path);
      if (pwrite(dst, buf, (size_t)n, (off_t)offset + pos) != n)
        return qvm_error_set_errno(err, errno, "cannot write the disk image");
      pos += n;
    }
  }
  return 0;
}

/* GRUB for BIOS boot, as grub-bios-setup does it for a core image embedded
 * after the MBR: boot.img's code (not the partition table) in sector 0, its
 * drive-check jump replaced by NOPs for a hard disk, core.img from sector 1.
 * core.img's own blocklist already points at sector 2 onwards. */
static int write_grub(int disk, const char *tmp, qvm_error **err) {
  _cleanup_free_ char *boot_path = path_in(tmp, "boot.img"), *core_path = path_in(tmp, "core.img");
  _cleanup_free_ char *boot = NULL, *core = NULL;
  size_t boot_len = 0, core_len = 0;
  if (!boot_path || !core_path) return qvm_error_set_errno(err, ENOMEM, "bootloader");
  int rc;
  if ((rc = qvm_read_file(&boot, &boot_len, boot_path, 4096, err)) < 0 ||
      (rc = qvm_read_file(&core, &core_len, core_path, 2 * MIB, err)) < 0) {
    qvm_error_prefix(err, "the customize hook left no GRUB image");
    return rc;
  }
  if (boot_len != 512)
    return qvm_error_set(err, QVM_ESYS, "GRUB's boot.img is %zu bytes, not 512", boot_len);
  if (core_len == 0 || core_len > (PART_START_SECTOR - 1) * 512)
    return qvm_error_set(err, QVM_ESYS, "GRUB's core.img (%zu bytes) does not fit the MBR gap",
                         core_len);
  static const unsigned char nops[2] = {0x90, 0x90};
  if (pwrite(disk, boot, 440, 0) != 440 || pwrite(disk, nops, 2, 0x66) != 2 ||
      pwrite(disk, core, core_len, 512) != (ssize_t)core_len)
    return qvm_error_set_errno(err, errno, "cannot write the boot sectors");
  return 0;
}

static int bootloader(build_ctx *c, const img_build_result *r, const char *tool, qvm_error **err) {
  _cleanup_free_ char *raw = path_in(c->tmp, "disk.raw"), *fs = path_in(c->tmp, "root.ext4");
  _cleanup_free_ char *script = path_in(c->tmp, "disk.sfdisk");
  if (!raw || !fs || !script) return qvm_error_set_errno(err, ENOMEM, "bootloader");
  _cleanup_close_ int disk = open(raw, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (disk < 0 || ftruncate(disk, (off_t)r->virtual_size) < 0)
    return qvm_error_set_errno(err, errno, "cannot create '%s'", raw);
  static const char layout[] = "label: dos\nunit: sectors\nstart=2048, type=83, bootable\n";
  int rc = write_new_file(script, layout, sizeof layout - 1, 0600, err);
  if (rc < 0) return rc;
  const char *argv[] = {tool, "--quiet", "--no-reread", "--no-tell-kernel", raw, NULL};
  if ((rc = run(c, argv, script, NULL, err)) < 0) {
    qvm_error_prefix(err, "partition table");
    return rc;
  }
  if ((rc = copy_sparse(disk, fs, (uint64_t)PART_START_SECTOR * 512, err)) < 0) return rc;
  unlink(fs);
  if ((rc = write_grub(disk, c->tmp, err)) < 0) return rc;
  if (fsync(disk) < 0) return qvm_error_set_errno(err, errno, "cannot write '%s'", raw);
  return 0;
}

static int convert(build_ctx *c, const char *dest, const char *tool, qvm_error **err) {
  _cleanup_free_ char *raw = path_in(c->tmp, "disk.raw");
  if (!raw) return qvm_error_set_errno(err, ENOMEM, "convert");
  const char *argv[] = {tool, "convert", "-q", "-f", "raw", "-O", "qcow2", raw, dest, NULL};
  int rc = run(c, argv, NULL, NULL, err);
  if (rc < 0) qvm_error_prefix(err, "convert");
  return rc;
}

static int build_steps(build_ctx *c, img_build_result *r, const char *dest, char *paths[],
                       qvm_error **err) {
  int64_t start = qvm_now_ms();
  int rc;
  if ((rc = begin_phase(c, "bootstrap", err)) < 0 ||
      (rc = bootstrap(c, r, paths[T_MMDEBSTRAP], err)) < 0)
    return rc;
  r->bootstrap_ms = qvm_now_ms() - start;
  if ((rc = begin_phase(c, "filesystem", err)) < 0 ||
      (rc = filesystem(c, r, paths[T_MKFS], err)) < 0 ||
      (rc = begin_phase(c, "bootloader", err)) < 0 ||
      (rc = bootloader(c, r, paths[T_SFDISK], err)) < 0 ||
      (rc = begin_phase(c, "convert", err)) < 0 ||
      (rc = convert(c, dest, paths[T_QEMU_IMG], err)) < 0)
    return rc;
  r->total_ms = qvm_now_ms() - start;
  return check_interrupt(c, err);
}

int img_build(img_build_result *out, const char *dest, const img_build_opts *o, qvm_error **err) {
  int r = img_build_opts_check(o, err);
  if (r < 0) return r;
  if (geteuid() != 0)
    return qvm_error_set(err, QVM_EUNAVAIL,
                         "building an image needs root (mmdebstrap --mode=root, chroot)");
  char *paths[T_COUNT] = {0};
  for (size_t i = 0; i < T_COUNT && r == 0; i++) r = find_tool(&paths[i], i, err);
  if (r == 0 && access(dest, F_OK) == 0)
    r = qvm_error_set(err, QVM_EEXISTS, "'%s' already exists", dest);
  if (r == 0 && mkdir(o->tmpdir, 0700) < 0)
    r = qvm_error_set_errno(err, errno, "cannot create '%s'", o->tmpdir);
  if (r < 0) {
    for (size_t i = 0; i < T_COUNT; i++) free(paths[i]);
    return r;
  }
  build_ctx c = {.o = o, .distro = img_distro_find(o->distro), .tmp = o->tmpdir};
  sigset_t old;
  sigemptyset(&c.sigs);
  sigaddset(&c.sigs, SIGINT);
  sigaddset(&c.sigs, SIGTERM);
  sigaddset(&c.sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &c.sigs, &old);
  img_build_result res = {.distro = c.distro,
                          .virtual_size = o->size ? o->size : IMG_BUILD_SIZE_DEFAULT};
  c.log = path_in(o->tmpdir, "build.log");
  if (!c.log)
    r = qvm_error_set_errno(err, ENOMEM, "image build");
  else if ((r = make_uuid(res.fs_uuid, err)) == 0)
    r = build_steps(&c, &res, dest, paths, err);
  if (r < 0) unlink(dest);
  qvm_error *cleanup_err = NULL;
  if (remove_tree(o->tmpdir, &cleanup_err) < 0 && r == 0)
    r = qvm_error_propagate(err, TAKE_PTR(cleanup_err));
  if (cleanup_err) qvm_error_free(cleanup_err);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  free(c.log);
  for (size_t i = 0; i < T_COUNT; i++) free(paths[i]);
  if (r < 0) {
    img_build_result_clear(&res);
    return r;
  }
  *out = res;
  return 0;
}
