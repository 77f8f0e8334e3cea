/* SPDX-License-Identifier: MIT */
/* GET /api/v1/events[?vm=NAME]: the VMs' events as Server-Sent Events.
 * Each VM's events.jsonl (written by its shim, qvm_vm_events_read) is read
 * every POLL_MS and each line becomes one frame
 *
 *     id: NAME.FILE.OFFSET
 *     event: NAME-OF-EVENT
 *     data: {"vm": NAME, ...the event}
 *
 * The lines are the shim's but may hold strings from the guest: each is
 * parsed (strict JSON, valid UTF-8, one object, at most
 * QVM_VM_EVENT_LINE_MAX bytes) and re-serialized; a line that does not
 * pass is skipped. "Last-Event-ID" resumes the VM of that id right after
 * it (other VMs start at their present end). VMs that appear or go away
 * while the stream is open are "vm-created" and "vm-removed" frames (no
 * id). An agent token sees only its own sandboxes. A comment every
 * KEEPALIVE_MS keeps a quiet stream alive; at most SSE_CLIENTS_MAX streams
 * at once (then 503). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <microhttpd.h>

#include <qvm/vm.h>

#include "qvmd.h"

#define SSE_CLIENTS_MAX 64
#define POLL_MS 250
#define KEEPALIVE_MS 15000
#define OUT_SOFT_MAX (1u << 20) /* frames built before they are handed out */

static atomic_int sse_clients;

typedef struct watched {
  char name[QVM_VM_NAME_MAX + 1];
  qvm_vm *vm;
  qvm_vm_events_cursor cur;
  uint64_t dir_ino; /* its directory: another inode is another VM of that name */
  bool seen;        /* in the last listing */
} watched;

typedef struct sse {
  struct MHD_Connection *conn;
  char filter[QVM_VM_NAME_MAX + 1]; /* ?vm= or "" */
  char agent[QVM_VM_AGENT_MAX + 1]; /* an agent token's agent, or "" */
  watched *vms;
  size_t n;
  char *out;
  size_t out_len, out_off, out_cap;
  bool listed, failed;
  char resume_vm[QVM_VM_NAME_MAX + 1];
  qvm_vm_events_cursor resume;
  struct timespec last_sent;
} sse;

static int64_t ms_since(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

static void emit(sse *s, const char *text, size_t len) {
  if (s->failed) return;
  if (s->out_len + len > s->out_cap) {
    size_t cap = s->out_len + len + 4096;
    char *o = realloc(s->out, cap);
    if (!o) {
      s->failed = true;
      return;
    }
    s->out = o, s->out_cap = cap;
  }
  memcpy(s->out + s->out_len, text, len);
  s->out_len += len;
}

static void emit_frame(sse *s, const char *id, const char *event, json_object *data) {
  size_t len = 0;
  const char *d = json_object_to_json_string_length(
      data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  char head[256];
  int n = snprintf(head, sizeof head, "%s%s%sevent: %s\ndata: ", id ? "id: " : "", id ? id : "",
                   id ? "\n" : "", event);
  emit(s, head, (size_t)n);
  emit(s, d, len);
  emit(s, "\n\n", 2);
}

/* An event's name as an SSE event type: [A-Za-z0-9_.:-], at most 64
 * bytes, else "event". */
static const char *event_type(json_object *ev) {
  json_object *v = NULL;
  if (!json_object_object_get_ex(ev, "event", &v) || !json_object_is_type(v, json_type_string))
    return "event";
  const char *t = json_object_get_string(v);
  size_t len = strlen(t);
  if (len == 0 || len > 64 || len != (size_t)json_object_get_string_len(v)) return "event";
  for (const char *c = t; *c; c++)
    if (!(strchr("_.:-", *c) || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
          (*c >= '0' && *c <= '9')))
      return "event";
  return t;
}

typedef struct line_ctx {
  sse *s;
  watched *w;
} line_ctx;

static int on_line(void *ctx, const char *line, size_t len, const qvm_vm_events_cursor *next) {
  line_ctx *c = ctx;
  json_tokener *tok = json_tokener_new_ex(32);
  if (!tok) return 0;
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  json_object *ev = json_tokener_parse_ex(tok, line, (int)len);
  bool whole =
      json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == len;
  json_tokener_free(tok);
  if (ev && whole && json_object_is_type(ev, json_type_object)) {
    char id[QVM_VM_NAME_MAX + 48];
    snprintf(id, sizeof id, "%s.%llu.%llu", c->w->name, (unsigned long long)next->file,
             (unsigned long long)next->offset);
    /* the type before "vm" is added: the frame owns its copy of the name */
    char type[65];
    snprintf(type, sizeof type, "%s", event_type(ev));
    json_object_object_add(ev, "vm", json_object_new_string(c->w->name));
    emit_frame(c->s, id, type, ev);
  }
  json_object_put(ev);
  return c->s->out_len - c->s->out_off > OUT_SOFT_MAX ? 1 : 0;
}

static void emit_lifecycle(sse *s, const char *type, const char *name) {
  char ts[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  json_object *d = json_object_new_object();
  json_object_object_add(d, "event", json_object_new_string(type));
  json_object_object_add(d, "vm", json_object_new_string(name));
  json_object_object_add(d, "time", json_object_new_string(ts));
  emit_frame(s, NULL, type, d);
  json_object_put(d);
}

/* Whether the caller may see the VM: an agent token only its own. */
static bool visible(const sse *s, qvm_vm *vm) {
  if (!s->agent[0]) return true;
  const char *owner = qvm_vm_agent(vm);
  return owner && !strcmp(owner, s->agent);
}

static uint64_t dir_ino(qvm_vm *vm) {
  struct stat st;
  const char *dir = qvm_vm_dir(vm);
  return dir && stat(dir, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static void watch(sse *s, const char *name) {
  qvm_vm *vm = NULL;
  qvm_error *err = NULL;
  if (qvm_vm_open(&vm, name, &err) < 0) {
    qvm_error_free(err);
    return;
  }
  if (!visible(s, vm)) {
    qvm_vm_free(vm);
    return;
  }
  watched *v = realloc(s->vms, (s->n + 1) * sizeof *v);
  if (!v) {
    qvm_vm_free(vm);
    return;
  }
  s->vms = v;
  watched *w = &s->vms[s->n++];
  *w = (watched){.vm = vm, .seen = true, .dir_ino = dir_ino(vm)};
  snprintf(w->name, sizeof w->name, "%s", name);
  if (s->listed) {
    emit_lifecycle(s, "vm-created", name);
    /* a new VM: all of its log */
  } else if (s->resume_vm[0] && !strcmp(s->resume_vm, name)) {
    w->cur = s->resume;
  } else if (qvm_vm_events_end(&w->cur, vm, &err) < 0) {
    qvm_error_free(err);
  }
}

/* The VMs now: new ones watched, gone ones dropped; one removed and made
 * again since the last listing (its directory is another) is both, and its
 * owner is checked again. */
static void relist(sse *s) {
  char **names = NULL;
  size_t n = 0;
  qvm_error *err = NULL;
  if (s->filter[0]) {
    names = calloc(1, sizeof *names);
    qvm_vm *vm = NULL;
    if (names && qvm_vm_open(&vm, s->filter, &err) == 0) {
      names[0] = strdup(s->filter);
      n = names[0] ? 1 : 0;
      qvm_vm_free(vm);
    }
    qvm_error_free(err);
    err = NULL;
  } else if (qvm_vm_list(&names, &n, &err) < 0) {
    qvm_error_free(err);
    return; /* next time */
  }
  bool *fresh = calloc(n ? n : 1, sizeof *fresh);
  if (!fresh) {
    qvm_vm_names_free(names, n);
    return;
  }
  for (size_t i = 0; i < s->n; i++) s->vms[i].seen = false;
  for (size_t i = 0; i < n; i++) {
    fresh[i] = true;
    for (size_t j = 0; j < s->n; j++)
      if (!strcmp(s->vms[j].name, names[i])) {
        fresh[i] = dir_ino(s->vms[j].vm) != s->vms[j].dir_ino;
        s->vms[j].seen = !fresh[i];
        break;
      }
  }
  for (size_t i = 0; i < s->n;) {
    if (s->vms[i].seen) {
      i++;
      continue;
    }
    emit_lifecycle(s, "vm-removed", s->vms[i].name);
    qvm_vm_free(s->vms[i].vm);
    s->vms[i] = s->vms[--s->n];
  }
  for (size_t i = 0; i < n; i++)
    if (fresh[i]) watch(s, names[i]);
  free(fresh);
  qvm_vm_names_free(names, n);
  s->listed = true;
}

static void poll_once(sse *s) {
  relist(s);
  for (size_t i = 0; i < s->n && s->out_len - s->out_off <= OUT_SOFT_MAX; i++) {
    line_ctx c = {.s = s, .w = &s->vms[i]};
    qvm_error *err = NULL;
    if (qvm_vm_events_read(s->vms[i].vm, &s->vms[i].cur, on_line, &c, &err) < 0)
      qvm_error_free(err);
  }
}

static long sse_read(void *cls, char *buf, size_t max) {
  sse *s = cls;
  for (;;) {
    if (s->failed) return QVMD_STREAM_ERROR;
    size_t n = s->out_len - s->out_off;
    if (n) {
      if (n > max) n = max;
      memcpy(buf, s->out + s->out_off, n);
      s->out_off += n;
      if (s->out_off == s->out_len) s->out_off = s->out_len = 0;
      clock_gettime(CLOCK_MONOTONIC, &s->last_sent);
      return (long)n;
    }
    poll_once(s);
    if (s->out_len) continue;
    if (ms_since(&s->last_sent) >= KEEPALIVE_MS) {
      static const char ka[] = ": keep-alive\n\n";
      emit(s, ka, sizeof ka - 1);
      continue;
    }
    if (qvmd_stream_wait(s->conn, -1, POLL_MS) < 0) return QVMD_STREAM_ERROR;
  }
}

static void sse_free(void *cls) {
  sse *s = cls;
  for (size_t i = 0; i < s->n; i++) qvm_vm_free(s->vms[i].vm);
  free(s->vms);
  free(s->out);
  free(s);
  atomic_fetch_sub(&sse_clients, 1);
}

/* "Last-Event-ID: NAME.FILE.OFFSET" into s->resume_vm / s->resume. */
static void parse_resume(sse *s, const char *id) {
  if (!id || strlen(id) > QVM_VM_NAME_MAX + 48) return;
  char buf[QVM_VM_NAME_MAX + 49];
  snprintf(buf, sizeof buf, "%s", id);
  char *off = strrchr(buf, '.');
  if (!off) return;
  *off++ = '\0';
  char *file = strrchr(buf, '.');
  if (!file) return;
  *file++ = '\0';
  char *e1 = NULL, *e2 = NULL;
  unsigned long long f = strtoull(file, &e1, 10), o = strtoull(off, &e2, 10);
  size_t len = strlen(buf);
  if (!*file || !*off || *e1 || *e2 || len > QVM_VM_NAME_MAX || !qvm_vm_name_valid(buf)) return;
  memcpy(s->resume_vm, buf, len + 1);
  s->resume = (qvm_vm_events_cursor){.file = f, .offset = o};
}

void qvmd_events_get(qvmd_reply *out, const qvmd_request *req) {
  const char *filter = qvmd_query(req, "vm");
  const char *agent = req->caller->scope == QVMD_SCOPE_AGENT ? req->caller->agent : NULL;
  qvm_error *err = NULL;
  if (filter) {
    if (qvm_vm_name_check(filter, &err) < 0) {
      qvmd_problem_qvm(out, err, "vm");
      return;
    }
    qvm_vm *vm = NULL;
    if (qvm_vm_open(&vm, filter, &err) < 0) {
      qvm_error_free(err);
      qvmd_problem_not_found(out, agent ? "sandbox" : "vm", filter);
      return;
    }
    const char *owner = qvm_vm_agent(vm);
    bool ok = !agent || (owner && !strcmp(owner, agent));
    qvm_vm_free(vm);
    if (!ok) {
      qvmd_problem_not_found(out, "sandbox", filter);
      return;
    }
  }
  if (atomic_fetch_add(&sse_clients, 1) >= SSE_CLIENTS_MAX) {
    atomic_fetch_sub(&sse_clients, 1);
    qvmd_problem(out, 503, "Busy", "%d event streams are open already; try again later",
                 SSE_CLIENTS_MAX);
    out->retry_after_s = 5;
    return;
  }
  sse *s = calloc(1, sizeof *s);
  if (!s) {
    atomic_fetch_sub(&sse_clients, 1);
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return;
  }
  s->conn = req->conn;
  if (filter) snprintf(s->filter, sizeof s->filter, "%s", filter);
  if (agent) snprintf(s->agent, sizeof s->agent, "%s", agent);
  parse_resume(s, MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Last-Event-ID"));
  clock_gettime(CLOCK_MONOTONIC, &s->last_sent);
  poll_once(s); /* the VMs there are now, at their present ends (or the resumed one) */
  static const char hello[] = "retry: 1000\n\n";
  emit(s, hello, sizeof hello - 1);
  out->status = 200;
  out->content_type = "text/event-stream";
  out->stream_read = sse_read;
  out->stream_free = sse_free;
  out->stream_cls = s;
  out->stream_timeout_s = KEEPALIVE_MS / 1000 * 4;
}
