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
/* Sends r as the response (libmicrohttpd takes r->body): MHD_YES or MHD_NO. */
int qvmd_http_queue(struct MHD_Connection *c, qvmd_reply *r);

/* mcp.c: the MCP server on the streamable HTTP transport, at QVMD_MCP_PATH
 * (not a REST route: not in the route table or the OpenAPI document). The
 * caller is authenticated; body is the whole request body (too_big: it was
 * over QVMD_BODY_MAX and dropped). MHD_YES or MHD_NO. */
#define QVMD_MCP_PATH "/mcp"
struct MHD_Connection;
int qvmd_mcp_serve(struct MHD_Connection *c, const char *method, const char *body, size_t len,
                   bool too_big, const qvmd_caller *caller);

#endif
