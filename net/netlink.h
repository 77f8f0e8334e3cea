/* SPDX-License-Identifier: MIT */
#ifndef QVM_NET_NETLINK_H
#define QVM_NET_NETLINK_H

#include <libmnl/libmnl.h>

#include "util/error.h"

/* An rtnetlink socket (O_CLOEXEC), bound. */
int nl_open(struct mnl_socket **out, qvm_error **err);
/* One request, then its ACK or the whole dump; cb sees each data message.
 * Returns 0 or -errno (the kernel's error for the request). */
int nl_talk(struct mnl_socket *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data);

#endif
