/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_MCP_H
#define QVM_TOOLS_MCP_H
/*
 * qvm mcp: the MCP server over stdio (mcp.c: transport and JSON-RPC;
 * mcp_tools.c: the tool table and what each tool calls in libqvm).
 */
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
};

/* A guest's output kept per stream, and a file read through the guest. */
#define MCP_OUTPUT_MAX (1u << 20)

typedef struct mcp_server {
  const char *agent; /* NULL: every sandbox and the vm_* tools */
} mcp_server;

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

/* Progress of the tools/call in progress: a notifications/progress with
 * the request's _meta.progressToken, if it gave one (else nothing). progress
 * must grow from call to call; total 0: unknown. message: qvm's own words. */
void mcp_progress(double progress, double total, const char *message);

/* The tools this server lists ({"name","title","description","inputSchema",
 * "outputSchema","annotations"} each); a new reference. */
json_object *mcp_tools_list(const mcp_server *srv);
/* Runs tool `name` with `args` (an object, or NULL for none). */
void mcp_tools_call(const mcp_server *srv, const char *name, json_object *args, mcp_outcome *out);

/* A JSON string of bytes that may not be UTF-8: as they are when they are,
 * else neutralized (qvm_text_for_terminal). */
json_object *mcp_json_text(const char *bytes, size_t len);

#endif
