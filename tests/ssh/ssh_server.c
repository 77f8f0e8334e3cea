/* SPDX-License-Identifier: MIT */
#include "ssh_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

static int bind_loopback(int *out_port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *out_port = ntohs(a.sin_port);
  return fd;
}

int test_free_port(void) {
  int port = 0, fd = bind_loopback(&port);
  if (fd >= 0) close(fd);
  return port;
}

int test_silent_listener(int *out_port) {
  int fd = bind_loopback(out_port);
  if (fd >= 0 && listen(fd, 8) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int write_text(const char *dir, const char *name, const char *text, mode_t mode) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  close(fd);
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

static bool port_accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {
      .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

/* Spawns sh -c script with stderr to s->log; waits until the port accepts. */
static int spawn(test_server *s, const char *script) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int null = open("/dev/null", O_RDWR);
    if (fd >= 0) dup2(fd, 2);
    if (null >= 0) dup2(null, 0), dup2(null, 1);
    execl("/bin/sh", "sh", "-c", script, (char *)NULL);
    _exit(127);
  }
  s->pid = pid;
  for (int i = 0; i < 200; i++) { /* 10 s */
    if (port_accepts(s->port)) return 0;
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      s->pid = 0;
      fprintf(stderr, "server exited early; log:\n");
      qvm_test_sh("cat '%s' >&2", s->log);
      return -1;
    }
    poll(NULL, 0, 50);
  }
  return -1;
}

static int server_init(test_server *s, const char *tag) {
  memset(s, 0, sizeof(*s));
  s->dir = qvm_test_mkdtemp(tag);
  s->port = test_free_port();
  if (!s->dir || s->port <= 0 || asprintf(&s->log, "%s/server.log", s->dir) < 0) return -1;
  return 0;
}

int test_sshd_start(test_server *s, const char *host_key, const char *host_pub_line,
                    const char *authorized_keys) {
  return test_sshd_start_config(s, host_key, host_pub_line, authorized_keys, NULL);
}

int test_sshd_start_config(test_server *s, const char *host_key, const char *host_pub_line,
                           const char *authorized_keys, const char *extra_config) {
  char *config = NULL, *script = NULL;
  int r = -1;
  if (server_init(s, "sshd") < 0) return -1;
  mkdir("/run/sshd", 0755);
  s->host_pub_line = strdup(host_pub_line);
  /* extra_config first: sshd keeps the first value of an option, and a
   * guest's sshd_config.d/ drop-ins are included at the top (Debian's). */
  if (asprintf(&config,
               "%s%sListenAddress 127.0.0.1\nPort %d\nHostKey %s\nPidFile %s/sshd.pid\n"
               "AuthorizedKeysFile %s/authorized_keys\nUsePAM no\nStrictModes no\n"
               "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
               "KbdInteractiveAuthentication no\nSubsystem sftp /usr/lib/openssh/sftp-server\n"
               "MaxSessions 64\nMaxStartups 64\nLogLevel ERROR\n",
               extra_config ? extra_config : "",
               extra_config && *extra_config && extra_config[strlen(extra_config) - 1] != '\n'
                   ? "\n"
                   : "",
               s->port, host_key, s->dir, s->dir) < 0)
    goto out;
  if (write_text(s->dir, "sshd_config", config, 0644) < 0 ||
      write_text(s->dir, "authorized_keys", authorized_keys, 0600) < 0)
    goto out;
  /* root's home is an empty temp dir inside a private mount namespace: the
   * machine's own ~/.bashrc (sourced by bash for every ssh command) neither
   * slows nor changes what the tests measure. */
  if (qvm_test_sh("mkdir -p -m 0700 '%s/home'", s->dir) != 0 ||
      asprintf(&script,
               "exec unshare -m sh -c 'mount --make-rprivate / && mount --bind \"$1/home\" /root "
               "&& exec /usr/sbin/sshd -D -e -f \"$1/sshd_config\"' sshd '%s'",
               s->dir) < 0)
    goto out;
  r = spawn(s, script);
out:
  free(config);
  free(script);
  return r;
}

int test_dropbear_start(test_server *s, const char *authorized_keys) {
  char *script = NULL, *home = NULL;
  int r = -1;
  if (server_init(s, "dropbear") < 0) return -1;
  if (asprintf(&home, "%s/home", s->dir) < 0 || qvm_test_sh("mkdir -p -m 0700 '%s/.ssh'", home))
    goto out;
  if (qvm_test_sh("dropbearkey -t ed25519 -f '%s/hostkey' >/dev/null 2>&1", s->dir) != 0) goto out;
  s->host_pub_line =
      qvm_test_sh_output("dropbearkey -y -f '%s/hostkey' | grep '^ssh-ed25519 '", s->dir);
  if (!s->host_pub_line) goto out;
  {
    char *sshdir = NULL;
    if (asprintf(&sshdir, "%s/.ssh", home) < 0) goto out;
    r = write_text(sshdir, "authorized_keys", authorized_keys, 0600);
    free(sshdir);
    if (r < 0) goto out;
  }
  if (asprintf(&script,
               "exec unshare -m sh -c 'mount --make-rprivate / && mount --bind \"$1\" /root && "
               "exec dropbear -F -E -s -p 127.0.0.1:%d -r \"$2/hostkey\"' dropbear '%s' '%s'",
               s->port, home, s->dir) < 0)
    goto out;
  r = spawn(s, script);
out:
  free(script);
  free(home);
  return r;
}

void test_server_stop(test_server *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 100 && waitpid(s->pid, NULL, WNOHANG) == 0; i++) poll(NULL, 0, 20);
    if (waitpid(s->pid, NULL, WNOHANG) == 0) {
      kill(s->pid, SIGKILL);
      waitpid(s->pid, NULL, 0);
    }
  }
  s->pid = 0;
  if (s->dir) qvm_test_rmtree(s->dir);
  free(s->dir);
  free(s->host_pub_line);
  free(s->log);
  memset(s, 0, sizeof(*s));
}
