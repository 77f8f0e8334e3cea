/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_QVMD_ACTIVATION_H
#define QVM_TOOLS_QVMD_ACTIVATION_H

#include <stddef.h>

/* The sockets systemd passed (socket activation), -1 for none of a kind.
 * Returns how many, 0 when not activated, -1 with msg set when they are not
 * what qvmd takes. Clears LISTEN_* from the environment. */
int qvmd_activation_fds(int *unix_fd, int *tcp_fd, char *msg, size_t size);

#endif
