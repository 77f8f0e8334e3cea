/* SPDX-License-Identifier: MIT */
/*
 * The guest's SFTP server is hostile: a real OpenSSH sshd on 127.0.0.1 whose
 * `Subsystem sftp` is tests/hostile/sftp_server.c, driven through
 * qvm_ssh_download(), the call behind `qvm cp NAME:PATH DEST`. Each test
 * asserts that an attack is refused or bounded:
 *   - guest modes never give setuid, setgid, sticky or more than the umask;
 *   - a symlink planted in the destination is never followed;
 *   - an endless listing or file stops at the entry/byte cap or the time
 *     limit, leaving no partial file;
 *   - guest names in error messages carry no terminal control bytes;
 *   - a guest that never answers CLOSE (even with the socket kept busy)
 *     costs the time limit plus one grace period, not one per handle;
 *   - an existing directory of another user is never entered, and one that
 *     existed keeps its mode and times (`NAME:/` merged into `~`);
 *   - a download killed midway leaves no file and no temp file;
 *   - at the first level the user's own symlink is followed, another's not.
 * A watchdog turns a download that never ends into a failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <qvm/ssh.h>

#include "ssh_server.h"
#include "testlib.h"

#define MTIME 981173106 /* what the hostile server claims for every entry */
#define ESC_NAME                                                                                   \
  "\x1b]0;pwned\x07\x1b[2J\x9b"                                                                    \
  "31m\xc2\x9b"                                                                                    \
  "1m\xe2\x80\xae"                                                                                 \
  "evil"
#define WATCHDOG_S 300
#define NOBODY 65534 /* another local user */

static struct {
  test_server server;
  char *dir; /* client side: keys, known_hosts, download targets */
  char key_path[4096], known_hosts[4096];
  qvm_ssh_key *client_key, *host_key;
} env;

/* ---- an sshd whose sftp subsystem is the hostile server ---- */

static int write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "we");
  if (!f) return -1;
  int ok = fputs(text, f) >= 0;
  return fclose(f) == 0 && ok ? 0 : -1;
}

static bool port_accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

static int hostile_sshd_start(test_server *s, const char *host_key, const char *auth) {
  char path[4200], *config = NULL;
  memset(s, 0, sizeof *s);
  s->dir = qvm_test_mkdtemp("hostile-sshd");
  s->port = test_free_port();
  if (asprintf(&s->log, "%s/server.log", s->dir) < 0 ||
      asprintf(&config,
               "ListenAddress 127.0.0.1\nPort %d\nHostKey %s\nPidFile %s/sshd.pid\n"
               "AuthorizedKeysFile %s/authorized_keys\nUsePAM no\nStrictModes no\n"
               "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
               "KbdInteractiveAuthentication no\nSubsystem sftp %s\nLogLevel ERROR\n",
               s->port, host_key, s->dir, s->dir, HOSTILE_SFTP_SERVER) < 0)
    return -1;
  snprintf(path, sizeof path, "%s/sshd_config", s->dir);
  int r = write_text(path, config);
  free(config);
  snprintf(path, sizeof path, "%s/authorized_keys", s->dir);
  if (r < 0 || write_text(path, auth) < 0) return -1;
  mkdir("/run/sshd", 0755);
  /* root's home is an empty dir in a private mount namespace: no ~/.bashrc
   * can write into the SFTP stream. */
  if (qvm_test_sh("mkdir -p -m 0700 '%s/home'", s->dir) != 0) return -1;
  s->pid = fork();
  if (s->pid < 0) return -1;
  if (s->pid == 0) {
    int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) dup2(fd, 2);
    execlp("unshare", "unshare", "-m", "sh", "-c",
           "mount --make-rprivate / && mount --bind \"$1/home\" /root && "
           "exec /usr/sbin/sshd -D -e -f \"$1/sshd_config\"",
           "sshd", s->dir, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200; i++, usleep(50000))
    if (port_accepts(s->port)) return 0;
  qvm_test_sh("cat '%s' >&2", s->log);
  return -1;
}

static int setup(void **state) {
  (void)state;
  qvm_test_require_root();
  qvm_test_require_program("/usr/sbin/sshd");
  qvm_test_require_program("unshare");
  char host_path[4096], *auth = NULL;
  env.dir = qvm_test_mkdtemp("hostile-sftp");
  snprintf(env.key_path, sizeof env.key_path, "%s/id_ed25519", env.dir);
  snprintf(env.known_hosts, sizeof env.known_hosts, "%s/known_hosts", env.dir);
  snprintf(host_path, sizeof host_path, "%s/ssh_host_ed25519_key", env.dir);
  if (qvm_ssh_key_generate(&env.client_key, "client", NULL) < 0 ||
      qvm_ssh_key_generate(&env.host_key, "root@evil", NULL) < 0 ||
      qvm_ssh_key_write(env.client_key, env.key_path, NULL, NULL) < 0 ||
      qvm_ssh_key_write(env.host_key, host_path, NULL, NULL) < 0 ||
      asprintf(&auth, "%s\n", qvm_ssh_key_public_line(env.client_key)) < 0)
    return -1;
  int r = hostile_sshd_start(&env.server, host_path, auth);
  free(auth);
  if (r < 0) return -1;
  return qvm_ssh_known_hosts_pin(env.known_hosts, "evil", qvm_ssh_key_public_line(env.host_key),
                                 NULL);
}

static int teardown(void **state) {
  (void)state;
  test_server_stop(&env.server);
  qvm_ssh_key_free(env.client_key);
  qvm_ssh_key_free(env.host_key);
  if (env.dir) qvm_test_rmtree(env.dir);
  free(env.dir);
  return 0;
}

static unsigned watchdog_s = WATCHDOG_S;

static void watchdog(int sig) {
  (void)sig;
  static const char msg[] = "watchdog: the download never ended (no cap, no time limit)\n";
  if (write(2, msg, sizeof msg - 1)) _exit(1);
  _exit(1);
}

/* One download on a fresh session; *err is the caller's. */
static int download(const char *remote, const char *local, const qvm_ssh_copy_options *co,
                    qvm_error **err) {
  qvm_ssh_options o = QVM_SSH_OPTIONS_INIT;
  o.host = "127.0.0.1";
  o.port = env.server.port;
  o.vm_name = "evil";
  o.known_hosts = env.known_hosts;
  o.identity = env.key_path;
  o.timeout_ms = 20000;
  qvm_ssh *ssh = NULL;
  if (qvm_ssh_connect(&ssh, &o, err) < 0) fail_msg("connect: %s", qvm_error_message(*err));
  signal(SIGALRM, watchdog);
  alarm(watchdog_s);
  int r = qvm_ssh_download(ssh, remote, local, co, err);
  alarm(0);
  if (r < 0) print_message("    %s: %s\n", remote, qvm_error_message(*err));
  qvm_ssh_free(ssh);
  return r;
}

static char *fresh_dir(const char *name) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s", env.dir, name) < 0 || mkdir(p, 0700) < 0) fail_msg("mkdir %s", name);
  return p;
}

static char *path_in(const char *dir, const char *rel) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s", dir, rel) < 0) abort();
  return p;
}

static const char *path_in_static(const char *dir, const char *rel) {
  static char p[4200];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  return p;
}

/* ---- modes ---- */

static mode_t walk_umask;
static int walk_bad;

static int check_mode(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)flag;
  if (ftw->level == 0) return 0;
  if (st->st_mode & 07000 || st->st_mode & walk_umask) {
    print_message("    %s has mode %o (umask %03o)\n", path, st->st_mode & 07777, walk_umask);
    walk_bad++;
  }
  if (st->st_mtime != MTIME) {
    print_message("    %s lost its mtime\n", path);
    walk_bad++;
  }
  return 0;
}

static void modes_with_umask(mode_t mask, const char *name) {
  char *out = fresh_dir(name);
  qvm_error *err = NULL;
  mode_t old = umask(mask);
  int r = download("/modes", out, NULL, &err);
  umask(old);
  if (r < 0) fail_msg("download: %s", qvm_error_message(err));
  walk_umask = mask;
  walk_bad = 0;
  assert_int_equal(nftw(out, check_mode, 16, FTW_PHYS), 0);
  assert_int_equal(walk_bad, 0);
  /* Still a copy: every file and directory is there, with its content. */
  assert_int_equal(qvm_test_sh("cd '%s/modes' && test -d sub && grep -qx hostile suid && "
                               "grep -qx hostile sgid && grep -qx hostile all && "
                               "grep -qx hostile ww && grep -qx hostile sub/inner",
                               out),
                   0);
  free(out);
}

/* Run as root, the guest's 04755/02755/07777 files and 02777/01777
 * directories become 0755 files and 0755 directories (umask 022), 0700 and
 * 0600 with umask 077: never setuid, setgid, sticky or group/world-writable
 * beyond the umask. Modes and mtimes are otherwise kept. */
static void test_modes_lose_dangerous_bits(void **state) {
  (void)state;
  modes_with_umask(022, "modes022");
  modes_with_umask(077, "modes077");
}

/* ---- symlinks planted in the destination ---- */

static char *sentinel;

static void sentinel_make(void) {
  sentinel = fresh_dir("sentinel");
  assert_int_equal(qvm_test_sh("echo keep > '%s/file'", sentinel), 0);
}

static void sentinel_untouched(void) {
  char *listing = qvm_test_sh_output("cd '%s' && ls -A && cat file && stat -c %%a file", sentinel);
  assert_non_null(listing);
  assert_string_equal(listing, "file\nkeep\n644");
  free(listing);
}

static void refused_as_link(const char *remote, const char *local) {
  qvm_error *err = NULL;
  int r = download(remote, local, NULL, &err);
  sentinel_untouched();
  assert_int_equal(r, QVM_EEXISTS);
  assert_non_null(strstr(qvm_error_message(err), "symbolic link"));
  qvm_error_free(err);
}

static void test_planted_symlinks_not_followed(void **state) {
  (void)state;
  sentinel_make();
  /* the directory the copy would create is another user's link to the
   * sentinel; below the first level even our own links are refused */
  char *a = fresh_dir("links-a");
  assert_int_equal(
      qvm_test_sh("ln -s '%s' '%s/tree' && chown -h %d '%s/tree'", sentinel, a, NOBODY, a), 0);
  refused_as_link("/tree", a);
  /* a link deeper down */
  char *b = fresh_dir("links-b");
  assert_int_equal(qvm_test_sh("mkdir '%s/tree' && ln -s '%s' '%s/tree/sub'", b, sentinel, b), 0);
  refused_as_link("/tree", b);
  /* a link where a file goes, pointing at the sentinel's file */
  char *c = fresh_dir("links-c");
  assert_int_equal(
      qvm_test_sh("mkdir -p '%s/tree/sub' && ln -s '%s/file' '%s/tree/sub/g'", c, sentinel, c), 0);
  refused_as_link("/tree", c);
  /* a single file onto a link */
  char *d = fresh_dir("links-d"), *target = path_in(d, "f");
  assert_int_equal(
      qvm_test_sh("ln -s '%s/file' '%s' && chown -h %d '%s'", sentinel, target, NOBODY, target), 0);
  refused_as_link("/tree/f", target);
  /* the same trees without the links download fine */
  char *e = fresh_dir("links-e");
  qvm_error *err = NULL;
  if (download("/tree", e, NULL, &err) < 0) fail_msg("%s", qvm_error_message(err));
  assert_int_equal(qvm_test_sh("cd '%s/tree' && grep -qx hostile f && grep -qx hostile sub/g", e),
                   0);
  /* a hard link to the sentinel's file is replaced, not written through;
   * a single file goes into an existing directory, or to a new name */
  char *g = fresh_dir("links-g"), *hard = path_in(g, "f");
  assert_int_equal(link(path_in_static(sentinel, "file"), hard), 0);
  if (download("/tree/f", hard, NULL, &err) < 0) fail_msg("%s", qvm_error_message(err));
  if (download("/tree/f", g, NULL, &err) < 0) fail_msg("%s", qvm_error_message(err));
  if (download("/tree/sub/g", path_in_static(g, "new"), NULL, &err) < 0)
    fail_msg("%s", qvm_error_message(err));
  assert_int_equal(qvm_test_sh("cd '%s' && grep -qx hostile f && grep -qx hostile new && "
                               "test \"$(ls -A)\" = \"$(printf 'f\\nnew')\"",
                               g),
                   0);
  free(g), free(hard);
  /* ".." and "." listed by the guest are skipped, not entered */
  char *f = fresh_dir("dots");
  if (download("/dots", f, NULL, &err) < 0) fail_msg("%s", qvm_error_message(err));
  char *listing = qvm_test_sh_output("cd '%s' && find . | LC_ALL=C sort | tr '\\n' ' '", f);
  assert_string_equal(listing, ". ./dots ./dots/x ");
  sentinel_untouched();
  free(listing);
  free(a), free(b), free(c), free(d), free(e), free(f), free(target), free(sentinel);
}

/* ---- guest text in error messages ---- */

/* Valid UTF-8 with no C0 or C1 control, DEL or bidi override. */
static bool terminal_safe(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned c = *p, n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : 3;
    if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xc2) || c > 0xf4) return false;
    unsigned cp = n == 0 ? c : n == 1 ? c & 0x1f : n == 2 ? c & 0x0f : c & 0x07;
    for (unsigned i = 1; i <= n; i++) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
        (cp >= 0x2066 && cp <= 0x2069))
      return false;
    p += n + 1;
  }
  return true;
}

static void error_is_safe(const char *remote, const char *local, int code) {
  qvm_error *err = NULL;
  assert_int_equal(download(remote, local, NULL, &err), code);
  const char *msg = qvm_error_message(err);
  if (!terminal_safe(msg)) fail_msg("unsafe message for %s", remote);
  /* the name is shown, neutralized */
  assert_non_null(strstr(msg, "\\x1b]0;pwned\\x07\\x1b[2J"));
  qvm_error_free(err);
}

static void test_escapes_in_errors(void **state) {
  (void)state;
  assert_false(terminal_safe(ESC_NAME));
  char *out = fresh_dir("esc");
  error_is_safe("/esc-type", out, QVM_EINVAL);  /* a symlink entry: refused by name */
  error_is_safe("/esc-open", out, QVM_EPROTO);  /* OPEN fails: the path is in the message */
  error_is_safe("/esc-slash", out, QVM_EPROTO); /* a name with '/': refused */
  char *local = fresh_dir("esc-local"), *dir = path_in(local, "esc-local");
  assert_int_equal(mkdir(dir, 0700), 0);
  char *link = path_in(dir, ESC_NAME);
  assert_int_equal(symlink("/nonexistent", link), 0);
  error_is_safe("/esc-local", local, QVM_EEXISTS); /* the local path in the message */
  free(out), free(local), free(dir), free(link);
}

/* ---- endless streams ---- */

static void assert_no_file_in(const char *dir) {
  char *listing = qvm_test_sh_output("cd '%s' && find . -type f | wc -l", dir);
  assert_string_equal(listing, "0");
  free(listing);
}

static void test_endless_listing_stops(void **state) {
  (void)state;
  /* "." and ".." forever, with the default cap: they count too */
  char *out = fresh_dir("endless-dots");
  qvm_error *err = NULL;
  assert_int_equal(download("/endless-dots", out, NULL, &err), QVM_EINVAL);
  assert_string_equal(qvm_error_class(err), "TooManyFiles");
  assert_non_null(strstr(qvm_error_message(err), "more than 1000000 directory entries"));
  qvm_error_free(err);
  /* new files forever, with a small cap */
  char *out2 = fresh_dir("endless-names");
  qvm_ssh_copy_options co = QVM_SSH_COPY_OPTIONS_INIT;
  co.max_files = 300;
  assert_int_equal(download("/endless-names", out2, &co, &err), QVM_EINVAL);
  assert_string_equal(qvm_error_class(err), "TooManyFiles");
  assert_non_null(strstr(qvm_error_message(err), "more than 300 directory entries"));
  qvm_error_free(err);
  char *n = qvm_test_sh_output("ls -A '%s/endless-names' | wc -l", out2);
  assert_int_equal(atoi(n), 300);
  free(n), free(out), free(out2);
}

static void test_endless_file_stops(void **state) {
  (void)state;
  char *out = fresh_dir("endless-file-cap");
  qvm_error *err = NULL;
  qvm_ssh_copy_options co = QVM_SSH_COPY_OPTIONS_INIT;
  co.max_bytes = 8u << 20;
  assert_int_equal(download("/endless-file", out, &co, &err), QVM_EINVAL);
  assert_string_equal(qvm_error_class(err), "TooLarge");
  assert_non_null(strstr(qvm_error_message(err), "more than 8388608 bytes"));
  qvm_error_free(err);
  assert_no_file_in(out); /* neither the target nor a temp file */
  /* no byte cap: the time limit stops it, even though data never stops coming */
  char *out2 = fresh_dir("endless-file-time");
  co.max_bytes = UINT64_MAX;
  co.timeout_ms = 3000;
  assert_int_equal(download("/endless-file", out2, &co, &err), QVM_ETIMEOUT);
  assert_string_equal(qvm_error_class(err), "Timeout");
  assert_non_null(strstr(qvm_error_message(err), "time limit of 3 s"));
  qvm_error_free(err);
  assert_no_file_in(out2);
  free(out), free(out2);
}

/* ---- the user's own symlink at the first level ---- */

/* `qvm cp -r vm:/tree ~/` where ~/tree is the user's own link to a
 * directory elsewhere, and a file onto the user's own link to a file: both
 * go where the link leads, and the link stays. */
static void test_own_symlink_followed(void **state) {
  (void)state;
  char *out = fresh_dir("own-link"), *big = fresh_dir("own-big");
  assert_int_equal(qvm_test_sh("ln -s '%s' '%s/tree' && echo old > '%s/g' && ln -s '%s/g' "
                               "'%s/glink'",
                               big, out, big, big, out),
                   0);
  qvm_error *err = NULL;
  if (download("/tree", out, NULL, &err) < 0) fail_msg("%s", qvm_error_message(err));
  if (download("/tree/f", path_in_static(out, "glink"), NULL, &err) < 0)
    fail_msg("%s", qvm_error_message(err));
  assert_int_equal(qvm_test_sh("test -L '%s/tree' && test -L '%s/glink' && grep -qx hostile "
                               "'%s/f' && grep -qx hostile '%s/sub/g' && grep -qx hostile '%s/g'",
                               out, out, big, big, big),
                   0);
  free(out), free(big);
}

/* ---- directories that were already there ---- */

static void assert_empty_dir(const char *dir) {
  char *listing = qvm_test_sh_output("find '%s' -mindepth 1 | wc -l", dir);
  assert_string_equal(listing, "0");
  free(listing);
}

static void refused_foreign(const char *remote, const char *local, const char *empty) {
  qvm_error *err = NULL;
  assert_int_equal(download(remote, local, NULL, &err), QVM_EEXISTS);
  assert_non_null(strstr(qvm_error_message(err), "uid 65534"));
  assert_non_null(strstr(qvm_error_message(err), empty));
  qvm_error_free(err);
  assert_empty_dir(empty);
}

/* Another user made /tmp/tree (0777, theirs) before `qvm cp -r vm:/tree
 * /tmp/`: refused, nothing written into it; the same one level down. Our
 * own directory that is already there is entered. */
static void test_foreign_dir_not_entered(void **state) {
  (void)state;
  char *out = fresh_dir("foreign"), *theirs = path_in(out, "tree");
  assert_int_equal(mkdir(theirs, 0777), 0);
  assert_int_equal(chown(theirs, NOBODY, NOBODY), 0);
  assert_int_equal(chmod(theirs, 0777), 0);
  refused_foreign("/tree", out, theirs);
  char *out2 = fresh_dir("foreign-deep"), *sub = path_in(out2, "tree/sub");
  assert_int_equal(
      qvm_test_sh("mkdir -p '%s' && chown %d '%s' && chmod 0777 '%s'", sub, NOBODY, sub, sub), 0);
  refused_foreign("/tree", out2, sub);
  char *out3 = fresh_dir("own-existing");
  assert_int_equal(qvm_test_sh("mkdir -p '%s/tree/sub'", out3), 0);
  qvm_error *err = NULL;
  if (download("/tree", out3, NULL, &err) < 0) fail_msg("%s", qvm_error_message(err));
  assert_int_equal(qvm_test_sh("grep -qx hostile '%s/tree/sub/g'", out3), 0);
  free(out), free(theirs), free(out2), free(sub), free(out3);
}

/* `qvm cp -r vm:/ ~` merges into ~ (here "/merge777/." into a 0700 dir):
 * the guest's 0777 or 0000 and its mtime never reach the directory that
 * was there, with umask 002 too. */
static void merge_keeps_dest(const char *remote, const char *name) {
  char *dest = fresh_dir(name);
  assert_int_equal(chmod(dest, 0700), 0);
  assert_int_equal(qvm_test_sh("touch -d 2020-01-01 '%s'", dest), 0);
  qvm_error *err = NULL;
  mode_t old = umask(002);
  int r = download(remote, dest, NULL, &err);
  umask(old);
  if (r < 0) fail_msg("%s", qvm_error_message(err));
  struct stat st;
  assert_int_equal(stat(dest, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700);
  assert_true(st.st_mtime != MTIME);
  assert_int_equal(qvm_test_sh("grep -qx hostile '%s/x'", dest), 0);
  free(dest);
}

static void test_merge_keeps_existing_dir(void **state) {
  (void)state;
  merge_keeps_dest("/merge777/.", "merge777");
  merge_keeps_dest("/merge000/.", "merge000");
}

/* ---- CLOSE never answered ---- */

static double seconds_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Handles (directories and a file, five or four) whose CLOSE the guest
 * never answers, with the socket quiet or kept busy by stray replies: the
 * copy ends at its time limit plus one grace period of 10 s, not 10 s per
 * handle (40 s or more here). In a child that leaves with _exit(): libssh2
 * cannot free a handle whose close never finished (LeakSanitizer would
 * report it at exit). */
static int stalled_close_child(const char *remote, const char *out) {
  qvm_ssh_copy_options co = QVM_SSH_COPY_OPTIONS_INIT;
  co.timeout_ms = 2000;
  qvm_error *err = NULL;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  watchdog_s = 90;
  int r = download(remote, out, &co, &err);
  double took = seconds_since(&t0);
  print_message("    %s took %.1f s\n", remote, took);
  if (r != QVM_ETIMEOUT || strcmp(qvm_error_class(err), "Timeout")) return 2;
  /* 2 s + 10 s, with room for a loaded machine; one grace per handle
   * would be over 40 s */
  return took < 30 ? 0 : 3;
}

static void stalled_close(const char *remote, const char *name) {
  char *out = fresh_dir(name);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int code = stalled_close_child(remote, out);
    fflush(NULL);
    _exit(code);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  free(out);
}

static void test_close_never_answered(void **state) {
  (void)state;
  stalled_close("/stall-quiet", "stall-quiet");
  stalled_close("/stall-noisy", "stall-noisy");
}

/* ---- a download killed midway ---- */

/* Bytes of the file the process pid has open under dir, or -1. */
static long long open_file_size(pid_t pid, const char *dir) {
  char fd_dir[64], link[4200], target[4200];
  snprintf(fd_dir, sizeof fd_dir, "/proc/%d/fd", (int)pid);
  long long size = -1;
  for (int fd = 3; fd < 64; fd++) {
    snprintf(link, sizeof link, "%s/%d", fd_dir, fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    struct stat st;
    if (!strncmp(target, dir, strlen(dir)) && target[strlen(dir)] == '/' && stat(link, &st) == 0 &&
        S_ISREG(st.st_mode))
      size = (long long)st.st_size;
  }
  return size;
}

/* An endless file without caps, killed (SIGKILL, SIGINT) once 1 MiB is
 * written: no file and no temp file is left in the destination. */
static void killed_midway(int sig, const char *name) {
  char *out = fresh_dir(name);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    signal(SIGINT, SIG_DFL); /* a shell's background job starts with it ignored */
    qvm_ssh_copy_options co = QVM_SSH_COPY_OPTIONS_INIT;
    co.max_bytes = UINT64_MAX;
    co.timeout_ms = -1;
    qvm_error *err = NULL;
    _exit(download("/endless-file", out, &co, &err) < 0 ? 3 : 4);
  }
  bool midway = false;
  for (int i = 0; i < 1200 && !midway; i++) {
    midway = open_file_size(pid, out) >= (1 << 20);
    if (!midway) usleep(50000);
  }
  kill(pid, sig);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(midway);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == sig);
  char *listing = qvm_test_sh_output("cd '%s' && find . -mindepth 1 | wc -l", out);
  if (strcmp(listing, "0")) qvm_test_sh("ls -la '%s' >&2", out);
  assert_string_equal(listing, "0");
  free(listing), free(out);
}

static void test_killed_download_leaves_nothing(void **state) {
  (void)state;
  killed_midway(SIGKILL, "killed-kill");
  killed_midway(SIGINT, "killed-int");
}

/* argv[1], if given, picks tests by name pattern (cmocka's filter). */
int main(int argc, char **argv) {
  if (argc > 1) cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_modes_lose_dangerous_bits),
      cmocka_unit_test(test_planted_symlinks_not_followed),
      cmocka_unit_test(test_escapes_in_errors),
      cmocka_unit_test(test_endless_listing_stops),
      cmocka_unit_test(test_endless_file_stops),
      cmocka_unit_test(test_own_symlink_followed),
      cmocka_unit_test(test_foreign_dir_not_entered),
      cmocka_unit_test(test_merge_keeps_existing_dir),
      cmocka_unit_test(test_close_never_answered),
      cmocka_unit_test(test_killed_download_leaves_nothing),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
