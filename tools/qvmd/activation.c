/* SPDX-License-Identifier: MIT */
/* systemd socket activation (sd_listen_fds(3) without libsystemd): when
 * LISTEN_PID is this process, LISTEN_FDS listening sockets start at fd 3.
 * qvmd takes at most one UNIX stream socket and one IPv4 TCP socket. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "activation.h"

#define SD_LISTEN_FDS_START 3

static long env_number(const char *name) {
  const char *v = getenv(name);
  char *end = NULL;
  if (!v || !*v) return -1;
  errno = 0;
  long n = strtol(v, &end, 10);
  return errno || *end || n < 0 ? -1 : n;
}

int qvmd_activation_fds(int *unix_fd, int *tcp_fd, char *msg, size_t size) {
  *unix_fd = *tcp_fd = -1;
  long pid = env_number("LISTEN_PID"), n = env_number("LISTEN_FDS");
  if (pid != (long)getpid() || n <= 0) return 0;
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  if (n > 2) {
    snprintf(msg, size, "systemd passed %ld sockets; qvmd takes one UNIX and one TCP socket", n);
    return -1;
  }
  for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int type = 0, listening = 0;
    socklen_t tl = sizeof type, ll = sizeof listening;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) < 0 || type != SOCK_STREAM ||
        !listening) {
      snprintf(msg, size, "systemd's fd %d is not a listening stream socket", fd);
      return -1;
    }
    int *slot = ss.ss_family == AF_UNIX ? unix_fd : ss.ss_family == AF_INET ? tcp_fd : NULL;
    if (!slot || *slot >= 0) {
      snprintf(msg, size, "systemd's fd %d is not the one UNIX or the one IPv4 socket qvmd takes",
               fd);
      return -1;
    }
    *slot = fd;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  return (int)n;
}
