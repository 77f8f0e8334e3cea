/* SPDX-License-Identifier: MIT */
/* ansible-playbook as a child process, and its recap. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "review/review.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"

extern char **environ;

#define ENV_MAX 4096

/* The program's path on $PATH, or NULL. */
static char *find_program(const char *name) {
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
  _cleanup_free_ char *copy = strdup(path);
  char *save = NULL;
  for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
    char *p = NULL;
    if (d[0] != '/' || asprintf(&p, "%s/%s", d, name) < 0) continue;
    struct stat st;
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0) return p;
    free(p);
  }
  return NULL;
}

static const char ansible_cfg[] = "[defaults]\n"
                                  /* The connection's and the become prompt's timeout
                                   * (ansible's default, 10 s, plus 2 for become): a
                                   * guest under TCG on a busy host took longer to
                                   * answer sudo, and the apply failed half-way. */
                                  "timeout = 60\n"
                                  "host_key_checking = True\n"
                                  "retry_files_enabled = False\n"
                                  "nocolor = True\n"
                                  "interpreter_python = auto_silent\n"
                                  "deprecation_warnings = False\n"
                                  "local_tmp = %s/tmp\n"
                                  "[ssh_connection]\n"
                                  "pipelining = True\n"
                                  /* One SSH connection per host for the whole run (each
                                   * task a session on it: under TCG a new connection,
                                   * sshd's fork and re-exec, costs the guest seconds),
                                   * its socket in a directory of this run's own, so that
                                   * no other run's master (~/.ansible/cp, where another
                                   * VM may have had the same 127.0.0.1 port) is reused;
                                   * the masters are told to exit when the run ends
                                   * (stop_masters), and would exit by themselves 30 s
                                   * after their last session. */
                                  "control_path_dir = %s\n"
                                  "ssh_args = -o ControlMaster=auto -o ControlPersist=30s\n";

/* The environment: ours without ANSIBLE_* (a caller's setting must not
 * change what an approved playbook does), plus ANSIBLE_CONFIG. */
static char **child_env(const char *cfg) {
  size_t n = 0;
  while (environ[n] && n < ENV_MAX) n++;
  char **env = calloc(n + 4, sizeof *env);
  if (!env) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "ANSIBLE_", 8)) env[k++] = environ[i];
  if (asprintf(&env[k++], "ANSIBLE_CONFIG=%s", cfg) < 0) {
    free(env);
    return NULL;
  }
  env[k++] = "ANSIBLE_NOCOLOR=1";
  env[k] = NULL;
  return env;
}

static int wait_child(int *status, pid_t pid, int timeout_ms, qvm_error **err) {
  int64_t deadline = qvm_now_ms() + timeout_ms;
  for (;;) {
    int st = 0;
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid) {
      *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return 0;
    }
    if (w < 0 && errno != EINTR) return qvm_error_set_errno(err, errno, "cannot wait for ansible");
    if (qvm_now_ms() >= deadline) {
      kill(-pid, SIGTERM);
      struct timespec ts = {2, 0};
      nanosleep(&ts, NULL);
      kill(-pid, SIGKILL);
      waitpid(pid, &st, 0);
      return qvm_error_set(err, QVM_ETIMEOUT, "ansible-playbook did not finish within %d s",
                           timeout_ms / 1000);
    }
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

/* ssh -O exit to each connection master (a socket in dir) of a run that has
 * ended, so that none outlives it; a master that does not answer within 10 s
 * is left to its ControlPersist. */
static void stop_masters(const char *dir, char **env) {
  _cleanup_free_ char *ssh = find_program("ssh");
  if (!ssh) return;
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    struct stat st;
    _cleanup_free_ char *sock = NULL, *opt = NULL;
    if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISSOCK(st.st_mode) || asprintf(&sock, "%s/%s", dir, e->d_name) < 0 ||
        asprintf(&opt, "ControlPath=%s", sock) < 0)
      continue;
    const char *argv[] = {"ssh", "-o", opt, "-O", "exit", "qvm-review", NULL};
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
      if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(127);
      setpgid(0, 0);
      execve(ssh, (char *const *)argv, env);
      _exit(127);
    }
    if (pid < 0) continue;
    setpgid(pid, pid);
    int status = 0;
    qvm_error *ignored = NULL;
    if (wait_child(&status, pid, 10000, &ignored) < 0) qvm_error_free(ignored);
  }
  closedir(d);
}

static int run_ansible(int *out_status, const char *prog, const char *const *argv, const char *cwd,
                       const char *cpdir, const char *log, int timeout_ms, qvm_error **err) {
  _cleanup_free_ char *cfg = NULL, *cfg_text = NULL, *tmp = NULL;
  if (asprintf(&cfg, "%s/ansible.cfg", cwd) < 0 || asprintf(&tmp, "%s/tmp", cwd) < 0 ||
      asprintf(&cfg_text, ansible_cfg, cwd, cpdir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = qvm_write_file_atomic(cfg, cfg_text, strlen(cfg_text), 0600, err);
  if (r < 0) return r;
  if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
    return qvm_error_set_errno(err, errno, "cannot make '%s'", tmp);
  _cleanup_close_ int out = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  _cleanup_close_ int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || devnull < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", log);
  char **env = child_env(cfg);
  if (!env) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  pid_t pid = fork();
  if (pid < 0) {
    r = qvm_error_set_errno(err, errno, "cannot fork");
  } else if (pid == 0) {
    setpgid(0, 0);
    if (dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 || chdir(cwd) < 0) _exit(127);
    execve(prog, (char *const *)argv, env);
    _exit(127);
  } else {
    setpgid(pid, pid);
    r = wait_child(out_status, pid, timeout_ms > 0 ? timeout_ms : 1800000, err);
    stop_masters(cpdir, env);
  }
  for (size_t i = 0; env[i]; i++)
    if (!strncmp(env[i], "ANSIBLE_CONFIG=", 15)) free(env[i]);
  free(env);
  return r;
}

int review_ansible(int *out_status, const char *const *argv, const char *cwd, const char *log,
                   int timeout_ms, qvm_error **err) {
  _cleanup_free_ char *prog = find_program(argv[0]);
  if (!prog) {
    qvm_error_set(err, QVM_EUNAVAIL, "'%s' is not installed (Debian: ansible-core)", argv[0]);
    return qvm_error_set_hint(err, QVM_EUNAVAIL, "NoAnsible", NULL);
  }
  /* The masters' sockets: a socket's path has at most 107 bytes, and ssh
   * refuses to run at all ("ControlPath too long") when the path it would
   * make is longer, so they are not under cwd (a long state dir's path
   * plus the review's would overrun it) but in a private directory that
   * mkdtemp makes in /tmp, removed after the run. */
  char cpdir[] = "/tmp/qvm-cp-XXXXXX";
  if (!mkdtemp(cpdir)) return qvm_error_set_errno(err, errno, "cannot make a directory in /tmp");
  int r = run_ansible(out_status, prog, argv, cwd, cpdir, log, timeout_ms, err);
  qvm_rm_rf(cpdir, NULL);
  return r;
}

/* "name : ok=3 changed=1 unreachable=0 failed=0 ..." */
static bool recap_line(review_recap *sum, const char *line, size_t len) {
  static const char *const keys[] = {"ok=", "changed=", "unreachable=", "failed="};
  long *slots[] = {&sum->ok, &sum->changed, &sum->unreachable, &sum->failed};
  const char *colon = memchr(line, ':', len);
  if (!colon) return false;
  bool any = false;
  for (size_t k = 0; k < 4; k++) {
    size_t kl = strlen(keys[k]);
    for (const char *p = colon + 1; p + kl < line + len; p++) {
      if ((p[-1] != ' ' && p[-1] != ':') || strncmp(p, keys[k], kl)) continue;
      long v = 0;
      const char *q = p + kl;
      while (q < line + len && *q >= '0' && *q <= '9' && v < 100000000) v = v * 10 + (*q++ - '0');
      *slots[k] += v;
      any = true;
      break;
    }
  }
  return any;
}

bool review_recap_parse(review_recap *out, const char *text, size_t len) {
  *out = (review_recap){0};
  const char *last = NULL;
  for (const char *p = text; p && p < text + len;) {
    const char *hit = memmem(p, (size_t)(text + len - p), "PLAY RECAP", 10);
    if (!hit) break;
    last = hit;
    p = hit + 10;
  }
  if (!last) return false;
  const char *p = memchr(last, '\n', (size_t)(text + len - last));
  bool any = false;
  while (p && ++p < text + len) {
    const char *end = memchr(p, '\n', (size_t)(text + len - p));
    size_t n = end ? (size_t)(end - p) : (size_t)(text + len - p);
    if (n == 0) break;
    if (!recap_line(out, p, n)) break;
    any = true;
    p = end;
  }
  return any;
}
