/* SPDX-License-Identifier: MIT */
/* qvm mcp [--agent ID]: the Model Context Protocol over stdio. One JSON-RPC
 * 2.0 message per line on stdin, one answer per line on stdout (json-c's
 * plain output escapes every control character, so no answer has a raw
 * newline in it), nothing but answers on stdout, logs on stderr. The
 * messages themselves are served by tools/mcp/ (shared with qvmd's /mcp).
 * Each tools/call runs on a worker thread (at most WORKERS_MAX at once)
 * while the reader reads on: a notifications/cancelled for it stops it at
 * its next step, and it answers nothing. Everything else is answered in
 * order, at once. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qvm/text.h>
#include <qvm/vm.h>

#include "cli.h"
#include "commands.h"
#include "create_flags.h"
#include "mcp.h"

#define VERB "mcp"
#define LINE_MAX_BYTES (4u << 20)
#define WORKERS_MAX 8 /* tool calls under way at once */

static const char mcp_help[] =
    "usage: qvm mcp [--agent ID]\n"
    "\n"
    "Serves the Model Context Protocol on stdin and stdout (the stdio\n"
    "transport: one JSON-RPC message per line), for an agent's MCP client to\n"
    "start as a subprocess. Tools: vm_list, vm_create, vm_start, vm_stop,\n"
    "vm_delete, ssh_key_generate, ssh_key_list, vm_inject_ssh_key,\n"
    "sandbox_create, sandbox_list, sandbox_exec, sandbox_read_file,\n"
    "sandbox_write_file, sandbox_snapshot, sandbox_rollback, sandbox_diff,\n"
    "review_create, sandbox_destroy ('qvm tools' prints their definitions).\n"
    "Both protocol revisions: 2025-11-25 (initialize) and the stateless\n"
    "2026-07-28 (server/discover). Tool calls run side by side (at most 8);\n"
    "notifications/cancelled stops one. Diagnostics go to stderr. At the end\n"
    "of its input it waits for the calls under way and exits 0. qvmd serves\n"
    "the same server over HTTP at /mcp.\n"
    "\n"
    "  --agent ID   scope it to agent ID (also `qvm --agent ID mcp`, or\n"
    "               $QVM_AGENT): the sandbox tools see and touch only that\n"
    "               agent's sandboxes, sandboxes it makes are that agent's,\n"
    "               and the vm_* tools are not offered\n";

/* Answers and notifications come from the reader and from the workers:
 * one writer at a time, a whole line each. */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* Sends msg (and releases it). */
static void send_message(json_object *msg) {
  if (!msg) return;
  const char *text =
      json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  pthread_mutex_lock(&out_lock);
  if (fputs(text, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) == EOF) {
    /* the client is gone: nobody to answer */
    fprintf(stderr, "qvm mcp: writing to stdout: %s\n", strerror(errno));
    _exit(QVM_EXIT_FAILURE);
  }
  pthread_mutex_unlock(&out_lock);
  json_object_put(msg);
}

static void notify(void *ctx, json_object *msg) {
  (void)ctx;
  send_message(msg);
}

/* The tool calls under way, each on its own thread, so that the reader
 * goes on reading (notifications/cancelled among others). */
typedef struct worker {
  bool busy;
  json_object *msg; /* the request */
  json_object *id;  /* its id (in msg) */
  mcp_call call;
} worker;

static worker workers[WORKERS_MAX];
static pthread_mutex_t workers_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t workers_idle = PTHREAD_COND_INITIALIZER;

static void *work(void *arg) {
  worker *w = arg;
  send_message(mcp_handle(&w->call, w->msg)); /* NULL when cancelled: no answer */
  pthread_mutex_lock(&workers_lock);
  json_object_put(w->msg);
  w->msg = w->id = NULL;
  w->busy = false;
  pthread_cond_broadcast(&workers_idle);
  pthread_mutex_unlock(&workers_lock);
  return NULL;
}

/* Starts msg (a tools/call; taken) on a worker; false: all are busy. */
static bool start_call(const mcp_server *srv, json_object *msg) {
  pthread_mutex_lock(&workers_lock);
  worker *w = NULL;
  for (size_t i = 0; i < WORKERS_MAX && !w; i++)
    if (!workers[i].busy) w = &workers[i];
  if (w) {
    w->busy = true;
    w->msg = msg;
    json_object_object_get_ex(msg, "id", &w->id);
    mcp_call_init(&w->call, srv, notify, NULL);
  }
  pthread_mutex_unlock(&workers_lock);
  if (!w) return false;
  int r = mcp_thread_start(work, w);
  if (r != 0) {
    pthread_mutex_lock(&workers_lock);
    w->busy = false;
    w->msg = w->id = NULL;
    pthread_mutex_unlock(&workers_lock);
    return false;
  }
  return true;
}

/* notifications/cancelled: the call with that id under way, if any. */
static void cancel_call(json_object *id) {
  pthread_mutex_lock(&workers_lock);
  for (size_t i = 0; i < WORKERS_MAX; i++)
    if (workers[i].busy && json_object_equal(workers[i].id, id)) mcp_cancel(&workers[i].call);
  pthread_mutex_unlock(&workers_lock);
}

static void wait_workers(void) {
  pthread_mutex_lock(&workers_lock);
  for (;;) {
    bool busy = false;
    for (size_t i = 0; i < WORKERS_MAX; i++) busy |= workers[i].busy;
    if (!busy) break;
    pthread_cond_wait(&workers_idle, &workers_lock);
  }
  pthread_mutex_unlock(&workers_lock);
}

static void handle_line(const mcp_server *srv, char *line, size_t len) {
  while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
  size_t start = 0;
  while (start < len && (line[start] == ' ' || line[start] == '\t')) start++;
  if (start == len) return; /* a blank line */
  json_object *error = NULL, *msg = mcp_parse(line + start, len - start, &error);
  if (!msg) return send_message(error);
  json_object *target = mcp_cancel_target(msg);
  const char *method = NULL;
  if (target) {
    cancel_call(target);
  } else if (mcp_is_request(msg, &method) && !strcmp(method, "tools/call")) {
    if (start_call(srv, msg)) return; /* the worker owns msg */
    json_object *id = NULL;
    json_object_object_get_ex(msg, "id", &id);
    send_message(mcp_error_reply(id, MCP_INTERNAL_ERROR, NULL,
                                 "%d tool calls are under way already: wait for one to end",
                                 WORKERS_MAX));
  } else {
    mcp_call call;
    mcp_call_init(&call, srv, notify, NULL);
    send_message(mcp_handle(&call, msg));
  }
  json_object_put(msg);
}

static void send_overlong(void) {
  send_message(mcp_error_reply(NULL, MCP_INVALID_REQUEST, NULL,
                               "a message over %u bytes was skipped", LINE_MAX_BYTES));
}

/* Reads stdin to its end, a line at a time, each at most LINE_MAX_BYTES: a
 * longer one is answered with -32600 and skipped up to its newline. At the
 * end, the calls under way finish and are answered. */
static int serve(const mcp_server *srv) {
  char *line = malloc(LINE_MAX_BYTES);
  char buf[65536];
  if (!line) return fputs("qvm mcp: out of memory\n", stderr), QVM_EXIT_FAILURE;
  size_t len = 0;
  bool overlong = false;
  int rc = QVM_EXIT_OK;
  for (;;) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fprintf(stderr, "qvm mcp: reading stdin: %s\n", strerror(errno));
      rc = QVM_EXIT_FAILURE;
      break;
    }
    if (n == 0) break;
    size_t i = 0;
    while (i < (size_t)n) {
      char *nl = memchr(buf + i, '\n', (size_t)n - i);
      size_t piece = (nl ? (size_t)(nl - buf) : (size_t)n) - i;
      if (!overlong && len + piece > LINE_MAX_BYTES) overlong = true;
      if (!overlong) {
        memcpy(line + len, buf + i, piece);
        len += piece;
      }
      i += piece;
      if (!nl) break;
      i++; /* the newline */
      if (overlong)
        send_overlong();
      else
        handle_line(srv, line, len);
      len = 0;
      overlong = false;
    }
  }
  if (rc == QVM_EXIT_OK && overlong)
    send_overlong();
  else if (rc == QVM_EXIT_OK && len > 0)
    handle_line(srv, line, len); /* the last line, without its newline */
  free(line);
  wait_workers();
  return rc;
}

static int mcp_run(int argc, char **argv) {
  static const struct option longopts[] = {{"agent", 1, 0, 'a'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  mcp_server srv = {0};
  int c, r = 0;
  optind = 0;
  opterr = 0;
  while (!r && (c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'h') return fputs(mcp_help, stdout), QVM_EXIT_OK;
    if (c == 'a') {
      if ((r = qvm_cli_agent_arg(VERB, optarg))) return r;
      srv.agent = optarg;
    } else {
      r = qvm_cli_bad_option(VERB, c, argv);
    }
  }
  if (r) return r;
  if (optind < argc) return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind]);
  const char *env_agent = getenv("QVM_AGENT");
  if (!srv.agent && env_agent && env_agent[0]) {
    qvm_error *err = NULL;
    if (qvm_vm_agent_check(env_agent, &err) < 0) return qvm_cli_fail(VERB, err, NULL);
    srv.agent = env_agent;
  }
  /* The audit records of what this server does name the agent too. */
  if (srv.agent && setenv("QVM_AGENT", srv.agent, 1) < 0)
    return fprintf(stderr, "qvm mcp: setenv: %s\n", strerror(errno)), QVM_EXIT_FAILURE;
  signal(SIGPIPE, SIG_IGN);
  fprintf(stderr, "qvm mcp: serving MCP on stdio%s%s\n", srv.agent ? " for agent " : "",
          srv.agent ? srv.agent : "");
  return serve(&srv);
}

const struct qvm_command qvm_cmd_mcp = {"mcp", "serve the Model Context Protocol on stdio",
                                        mcp_run};
