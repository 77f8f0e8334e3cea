/* SPDX-License-Identifier: MIT */
/* qvm run: QEMU must not outlive the process that supervises it.
 *
 * QEMU runs in a session of its own (setsid in exec_qemu), so a SIGKILL of
 * `qvm run` (a scheduler's kill timeout, the OOM killer, a process-group
 * kill) would leave it running with nobody to stop it, and the next qvm
 * command would adopt it. PR_SET_PDEATHSIG in QEMU cannot help: the kernel
 * clears it when -runas changes QEMU's uid, and it follows the forking
 * thread, not the process. So a small watchdog process, forked right after
 * QEMU, holds QEMU's pidfd and the read end of a pipe whose only write end
 * is the shim's (close-on-exec, never passed on). When that end closes -
 * the shim closed it after QEMU exited, or the process holding it died in
 * any way - the watchdog sends QEMU SIGTERM (QEMU flushes its disks and
 * quits), then SIGKILL if it is still there after WATCHDOG_TERM_MS, and
 * exits. A pidfd names exactly that QEMU, so a reused pid is never hit. The
 * watchdog is in a session of its own and blocks every signal it can, so a
 * terminal's ^C or a kill of qvm run's process group does not take it
 * along; a cgroup kill (systemd, Kubernetes) takes QEMU as well anyway. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vm/shim.h"

#define WATCHDOG_TERM_MS 5000
#define WATCHDOG_PIPE_FD 3
#define WATCHDOG_QEMU_FD 4

static int qemu_signal(int sig) {
  return (int)syscall(SYS_pidfd_send_signal, WATCHDOG_QEMU_FD, sig, NULL, 0);
}

/* In the child after fork: only async-signal-safe calls (the caller of
 * libqvm may have threads). */
/* Closes every fd above WATCHDOG_QEMU_FD. close_range may be missing
 * (Linux < 5.9) or refused by a seccomp filter: then one by one. */
static void close_above(void) {
  if (close_range(WATCHDOG_QEMU_FD + 1, ~0U, 0) == 0) return;
  struct rlimit rl;
  long max =
      getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (1 << 20)
          ? (long)rl.rlim_cur
          : 65536;
  for (long fd = WATCHDOG_QEMU_FD + 1; fd < max; fd++) close((int)fd);
}

__attribute__((noreturn)) static void watchdog_main(int pipe_in, int pipe_out, int qemu_pidfd) {
  /* The shim's end first: with a copy of it open here, no EOF would come. */
  close(pipe_out);
  setsid();
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  int in = fcntl(pipe_in, F_DUPFD_CLOEXEC, 10), q = fcntl(qemu_pidfd, F_DUPFD_CLOEXEC, 10);
  if (in < 0 || q < 0 || dup2(in, WATCHDOG_PIPE_FD) < 0 || dup2(q, WATCHDOG_QEMU_FD) < 0) _exit(1);
  /* Nothing of the shim's: not its lock (a copy would hold the flock), not
   * the tap, not qvm run's stdout (a scheduler's log pipe). */
  for (int fd = 0; fd < WATCHDOG_PIPE_FD; fd++) close(fd);
  close_above();
  char c;
  ssize_t got;
  do got = read(WATCHDOG_PIPE_FD, &c, 1);
  while (got > 0 || (got < 0 && errno == EINTR));
  if (qemu_signal(SIGTERM) == 0) {
    struct pollfd p = {.fd = WATCHDOG_QEMU_FD, .events = POLLIN};
    int n;
    while ((n = poll(&p, 1, WATCHDOG_TERM_MS)) < 0 && errno == EINTR) {
    }
    if (n == 0) qemu_signal(SIGKILL);
  }
  _exit(0);
}

int shim_watchdog_start(shim *s, qvm_error **err) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return qvm_error_set_errno(err, errno, "cannot watch qemu");
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(fds[0]);
    close(fds[1]);
    return qvm_error_set_errno(err, e, "cannot fork qemu's watchdog");
  }
  if (pid == 0) watchdog_main(fds[0], fds[1], s->pidfd);
  close(fds[0]);
  s->watchdog_pid = pid;
  s->watchdog_fd = fds[1];
  return 0;
}

void shim_watchdog_stop(shim *s) {
  if (s->watchdog_fd < 0) return;
  close(s->watchdog_fd); /* QEMU is gone: the watchdog's SIGTERM finds nothing */
  s->watchdog_fd = -1;
  /* It exits at once on EOF (or within WATCHDOG_TERM_MS if QEMU still
   * ran); should it not (a copy of the pipe's end kept open somewhere, a
   * fork of a threaded caller), it is killed rather than waited for
   * forever. */
  for (int waited = 0;; waited += 50) {
    pid_t r = waitpid(s->watchdog_pid, NULL, WNOHANG);
    if (r == s->watchdog_pid || (r < 0 && errno != EINTR)) break;
    if (r == 0 && waited >= WATCHDOG_TERM_MS + 2000) {
      kill(s->watchdog_pid, SIGKILL);
      while (waitpid(s->watchdog_pid, NULL, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    if (r == 0) poll(NULL, 0, 50);
  }
  s->watchdog_pid = 0;
}
