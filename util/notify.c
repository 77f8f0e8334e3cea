/* SPDX-License-Identifier: MIT */
#include "util/notify.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

bool qvm_notify(const char *state) {
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t len = path ? strlen(path) : 0;
  if (len < 2 || len >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@')) return false;
  memcpy(sa.sun_path, path, len);
  if (path[0] == '@') sa.sun_path[0] = '\0'; /* abstract: no trailing NUL in the length */
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
  close(fd);
  return n == (ssize_t)strlen(state);
}
