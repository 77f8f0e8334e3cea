/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_QVMD_HTTP_H
#define QVM_TOOLS_QVMD_HTTP_H

#include <stdbool.h>
#include <sys/types.h>

#include "qvmd.h"

struct MHD_Daemon;

typedef struct qvmd_listener {
  bool tcp; /* bearer tokens; else the UNIX socket (SO_PEERCRED) */
  /* UNIX socket: members of this group (primary or supplementary) may call
   * too, with group_scope (full or read). */
  bool group_set;
  gid_t group;
  qvmd_scope group_scope;
  /* TCP: TLS with this certificate chain and key (PEM text), or NULL. */
  const char *tls_cert, *tls_key;
} qvmd_listener;

typedef struct qvmd_http_limits {
  unsigned timeout_s;              /* idle connection, header and body */
  unsigned max_connections;        /* per listener */
  unsigned max_connections_per_ip; /* TCP: per client address; 0: none */
} qvmd_http_limits;

/* Serves on the listening socket fd (which libmicrohttpd then owns). */
struct MHD_Daemon *qvmd_http_start(const qvmd_listener *l, int fd, const qvmd_http_limits *lim);
void qvmd_http_set_work_max(int n);

#endif
