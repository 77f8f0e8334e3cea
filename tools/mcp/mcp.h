/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_MCP_H
#define QVM_TOOLS_MCP_H
/*
 * The Model Context Protocol server both qvm (`qvm mcp`, stdio: tools/qvm/
 * mcp.c) and qvmd (streamable HTTP at /mcp: tools/qvmd/mcp.c) serve. This
 * directory is transport-free: mcp_server.c turns one JSON-RPC message into
 * its reply (notifications the call sends go through a callback),
 * mcp_tools.c is the tool table and what each tool calls in libqvm. It uses
 * include/qvm/ and json-c only.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/* JSON-RPC error codes. */
enum {
  MCP_PARSE_ERROR = -32700,
  MCP_INVALID_REQUEST = -32600,
  MCP_METHOD_NOT_FOUND = -32601,
  MCP_INVALID_PARAMS = -32602,
  MCP_INTERNAL_ERROR = -32603,
  MCP_UNSUPPORTED_PROTOCOL_VERSION = -32022, /* 2026-07-28 */
};

/* A guest's output kept per stream, and a file read through the guest. */
#define MCP_OUTPUT_MAX (1u << 20)

/* The stateless revision (server/discover, the version in each request's
 * _meta) and the versions of the initialize handshake, newest first. */
#define MCP_PROTOCOL_STATELESS "2026-07-28"
extern const char *const mcp_protocol_versions[];
extern const size_t mcp_n_protocol_versions;
bool mcp_protocol_supported(const char *version);

typedef struct mcp_server {
  const char *agent; /* NULL: every sandbox and the vm_* tools */
  bool read_only;    /* only the tools annotated readOnlyHint (a read token) */
} mcp_server;

/* A notification for the client (a new reference the callee releases). */
typedef void (*mcp_notify_fn)(void *ctx, json_object *msg);

/* One message being served: who serves it, where its notifications go,
 * and whether the client cancelled it. Each request has its own, so calls
 * may run at the same time (qvmd's threads, qvm mcp's workers). */
typedef struct mcp_call {
  const mcp_server *srv;
  mcp_notify_fn notify; /* NULL: notifications are dropped */
  void *notify_ctx;
  json_object *progress_token; /* the request's _meta.progressToken (borrowed) */
  double progress_last;
  atomic_bool cancelled; /* notifications/cancelled, or the client went away */
  /* The protocol version the transport was told (HTTP's MCP-Protocol-Version
   * header), checked by it; NULL: none. The request's _meta wins. */
  const char *transport_version;
} mcp_call;

void mcp_call_init(mcp_call *call, const mcp_server *srv, mcp_notify_fn notify, void *ctx);
static inline bool mcp_cancelled(mcp_call *call) { return atomic_load(&call->cancelled); }
static inline void mcp_cancel(mcp_call *call) { atomic_store(&call->cancelled, true); }

/* What a tools/call ends in: a JSON-RPC error (bad arguments, unknown
 * tool: code != 0, message, field), or a result (structured, or isError with
 * the message). */
typedef struct mcp_outcome {
  int code; /* 0, or MCP_INVALID_PARAMS / MCP_INTERNAL_ERROR */
  char message[512];
  char field[64];          /* the argument at fault, "" when none */
  json_object *structured; /* the tool's result object (owned) */
  bool is_error;           /* the tool ran and failed: message says why */
} mcp_outcome;

/* Progress of the tools/call `call` serves: a notifications/progress with
 * the request's _meta.progressToken, if it gave one (else nothing). progress
 * must grow from call to call; total 0: unknown. message: qvm's own words. */
void mcp_progress(mcp_call *call, double progress, double total, const char *message);

/* Runs fn(arg) on a detached thread (a tools/call's worker): 0 or an errno. */
int mcp_thread_start(void *(*fn)(void *), void *arg);

/* ---- mcp_server.c: messages ---------------------------------------------------- */

/* Parses one message (UTF-8, strict JSON, nesting bounded): the value, or
 * NULL with *error_reply set to the JSON-RPC error to send back. */
json_object *mcp_parse(const char *text, size_t len, json_object **error_reply);

/* A JSON-RPC error reply: {"jsonrpc","id","error":{"code","message",
 * "data":{"field"}}} (field NULL or "": no data); id NULL: null. */
json_object *mcp_error_reply(json_object *id, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Whether msg is a well-formed request (jsonrpc "2.0", a valid id, a
 * method, params absent or an object), and its method. */
bool mcp_is_request(json_object *msg, const char **method);
/* The requestId a notifications/cancelled names (borrowed), else NULL. */
json_object *mcp_cancel_target(json_object *msg);
/* The protocol version a request names in params._meta (NULL: none). */
const char *mcp_meta_protocol(json_object *msg);

/* Serves one parsed message: its reply (a new reference), or NULL when
 * nothing is to be sent (a notification, a response, or a call that was
 * cancelled: a cancelled request gets no answer). */
json_object *mcp_handle(mcp_call *call, json_object *msg);

/* ---- mcp_tools.c: the tools ------------------------------------------------------ */

/* The tools this server lists ({"name","title","description","inputSchema",
 * "outputSchema","annotations"} each); a new reference. */
json_object *mcp_tools_list(const mcp_server *srv);
/* Runs tool `name` with `args` (an object, or NULL for none). A tool checks
 * mcp_cancelled() between its steps and, cancelled, removes what it made. */
void mcp_tools_call(mcp_call *call, const char *name, json_object *args, mcp_outcome *out);

/* ---- mcp_json.c: JSON out of libqvm and guests (qvmd's replies use it too) --- */

/* A JSON string of bytes that may not be UTF-8: as they are when they are,
 * else neutralized (qvm_text_for_terminal). */
json_object *mcp_json_text(const char *bytes, size_t len);
/* Bytes from a guest as obj[key] (mcp_json_text), plus obj[key + "Base64"]
 * with the exact bytes when they are not UTF-8. */
void mcp_json_add_guest_bytes(json_object *obj, const char *key, const void *bytes, size_t len);
/* libqvm's snake_case JSON text as a new object with camelCase keys
 * ("labels" kept as they are); NULL if the text does not parse. */
json_object *mcp_json_from_lib(const char *text);

/* A command's output stream, kept up to MCP_OUTPUT_MAX bytes (then
 * truncated is set and the rest dropped). */
typedef struct mcp_capture {
  char *data; /* malloc'd once, MCP_OUTPUT_MAX bytes; NULL before any */
  size_t len;
  bool truncated;
} mcp_capture;
/* 0, or QVM_ESYS when out of memory (a qvm_ssh_output_fn's answer). */
int mcp_capture_add(mcp_capture *c, const void *data, size_t len);
struct qvm_ssh_exec_result;
/* exitCode (null after a signal) and signal (the name, neutralized; null
 * after an exit) into r. */
void mcp_json_exit_status(json_object *r, const struct qvm_ssh_exec_result *res);
/* An exec's result into r: exitCode (null after a signal), signal,
 * stdout/stderr (mcp_json_add_guest_bytes), their truncated flags,
 * durationMs, checkpoint (null when ckpt is ""). */
void mcp_json_exec_result(json_object *r, const struct qvm_ssh_exec_result *res,
                          const mcp_capture *out, const mcp_capture *err, const char *ckpt);

#endif
