/* SPDX-License-Identifier: MIT */
#ifndef QVM_UTIL_NOTIFY_H
#define QVM_UTIL_NOTIFY_H

#include <stdbool.h>

/* sd_notify(3)'s protocol, without libsystemd: one datagram with STATE
 * ("READY=1", "STOPPING=1", "STATUS=...", lines joined by '\n') to the
 * AF_UNIX socket $NOTIFY_SOCKET names (a path, or "@name" for an abstract
 * one). Returns false when there is no such socket or the send failed; a
 * service manager that is not listening is no error of the caller's. */
bool qvm_notify(const char *state);

#endif
