/* SPDX-License-Identifier: MIT */
#include "vm/qemu_user.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"

/* 1: found, 0: no such user, < 0: the lookup itself failed. */
static int lookup(uid_t *uid, gid_t *gid, const char *name) {
  char buf[4096];
  struct passwd pw, *found = NULL;
  int e = getpwnam_r(name, &pw, buf, sizeof buf, &found);
  if (e) return -e;
  if (!found) return 0;
  *uid = pw.pw_uid;
  *gid = pw.pw_gid;
  return 1;
}

/* useradd's exit status (or -1), with the first line of what it said. */
static int run_useradd(const char *name, char *msg, size_t msg_len) {
  static const char *const paths[] = {"/usr/sbin/useradd", "/sbin/useradd"};
  const char *bin = NULL;
  for (size_t i = 0; i < sizeof paths / sizeof paths[0] && !bin; i++)
    if (access(paths[i], X_OK) == 0) bin = paths[i];
  if (!bin) {
    snprintf(msg, msg_len, "useradd is not installed");
    return -1;
  }
  int out[2];
  if (pipe2(out, O_CLOEXEC) < 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    char *const argv[] = {(char *)bin,  "--system",        "--user-group", "--no-create-home",
                          "--home-dir", "/nonexistent",    "--shell",      "/usr/sbin/nologin",
                          "--comment",  "qvm QEMU runner", (char *)name,   NULL};
    char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul < 0 || dup2(nul, 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0) _exit(126);
    execve(bin, argv, envp);
    _exit(127);
  }
  close(out[1]);
  size_t len = 0;
  while (len + 1 < msg_len) {
    ssize_t n = read(out[0], msg + len, msg_len - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
  }
  msg[len] = '\0';
  msg[strcspn(msg, "\n")] = '\0';
  close(out[0]);
  int st = 0;
  if (pid < 0) return -1;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Creates the default user. useradd's own lock does not stop two of them
 * from both adding the user (seen here: two starts at once, two uids), so
 * creators queue on a lock of qvm's own, host-wide like /etc/passwd, and
 * whoever comes second finds the user made. */
#define VM_QEMU_USER_LOCK "/run/qvm-qemu-user.lock"

static int create_default(uid_t *uid, gid_t *gid, qvm_error **err) {
  _cleanup_close_ int lock =
      open(VM_QEMU_USER_LOCK, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock >= 0)
    while (flock(lock, LOCK_EX) < 0 && errno == EINTR) {
    }
  int found = lookup(uid, gid, VM_QEMU_USER_DEFAULT);
  if (found != 0) return found > 0 ? 0 : qvm_error_set_errno(err, -found, "cannot look up");
  char msg[256] = "";
  int status = run_useradd(VM_QEMU_USER_DEFAULT, msg, sizeof msg);
  if ((found = lookup(uid, gid, VM_QEMU_USER_DEFAULT)) != 0)
    return found > 0 ? 0 : qvm_error_set_errno(err, -found, "cannot look up");
  return qvm_error_set(err, QVM_ESYS,
                       "cannot create the system user '%s' that runs qemu (useradd exit %d: %s): "
                       "create it with 'useradd --system --user-group --no-create-home --shell "
                       "/usr/sbin/nologin %s', or name another with QVM_QEMU_USER",
                       VM_QEMU_USER_DEFAULT, status, msg[0] ? msg : "no message",
                       VM_QEMU_USER_DEFAULT);
}

/* The default user must be what qvm (or a package) made: a system uid with
 * its own group, not an account someone logs in with or a shared group. */
int vm_qemu_user_check_default(uid_t uid, gid_t gid, qvm_error **err) {
  char buf[4096];
  struct group gr, *found = NULL;
  if (getgrgid_r(gid, &gr, buf, sizeof buf, &found) != 0 || !found ||
      strcmp(found->gr_name, VM_QEMU_USER_DEFAULT) != 0 || (found->gr_mem && found->gr_mem[0]))
    return qvm_error_set(err, QVM_EINVAL,
                         "user '%s' exists, but its group %u is not its own group '%s' (with no "
                         "other members): qemu would share it; fix the account, or name another "
                         "user with QVM_QEMU_USER",
                         VM_QEMU_USER_DEFAULT, (unsigned)gid, VM_QEMU_USER_DEFAULT);
  if (uid >= 1000)
    return qvm_error_set(err, QVM_EINVAL,
                         "user '%s' exists, but uid %u is not a system uid (below 1000): is it "
                         "an account someone uses? fix it, or name another user with "
                         "QVM_QEMU_USER",
                         VM_QEMU_USER_DEFAULT, (unsigned)uid);
  return 0;
}

int vm_qemu_user_runas(char **out, qvm_error **err) {
  *out = NULL;
  if (geteuid() != 0) return 0;
  const char *env = getenv("QVM_QEMU_USER");
  const char *name = env && env[0] ? env : VM_QEMU_USER_DEFAULT;
  if (!strcmp(name, "root")) return 0;
  uid_t uid = 0;
  gid_t gid = 0;
  int found = lookup(&uid, &gid, name);
  if (found < 0) return qvm_error_set_errno(err, -found, "cannot look up user '%.40s'", name);
  if (found == 0 && strcmp(name, VM_QEMU_USER_DEFAULT))
    return qvm_error_set(err, QVM_ENOTFOUND,
                         "user '%.40s' (QVM_QEMU_USER) does not exist: create it, or unset "
                         "QVM_QEMU_USER to use %s",
                         name, VM_QEMU_USER_DEFAULT);
  if (found == 0) {
    int r = create_default(&uid, &gid, err);
    if (r < 0) return r;
  }
  if (!strcmp(name, VM_QEMU_USER_DEFAULT) && uid && gid) {
    int r = vm_qemu_user_check_default(uid, gid, err);
    if (r < 0) return r;
  }
  if (uid == 0 || gid == 0)
    return qvm_error_set(err, QVM_EINVAL,
                         "user '%.40s' has uid or gid 0: qemu would keep root's rights; use an "
                         "unprivileged user, or QVM_QEMU_USER=root to run qemu as root",
                         name);
  if (asprintf(out, "%u:%u", (unsigned)uid, (unsigned)gid) < 0) {
    *out = NULL;
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  return 0;
}
