/* SPDX-License-Identifier: MIT */
/* Change sets with a human gate (include/qvm/review.h; issue 16's routes):
 *   GET  /api/v1/reviews                      list (an agent token: its own)
 *   POST /api/v1/reviews                      {"vm", "from", "verify", "timeoutMs"}
 *   GET  /api/v1/reviews/{id}                 the meta
 *   GET  /api/v1/reviews/{id}/diff            diff.json
 *   GET  /api/v1/reviews/{id}/playbook        {"files": [{"path", "text"}]}, or
 *                                             text/yaml of playbook.yml (Accept)
 *   PUT  /api/v1/reviews/{id}/playbook        {"text"}: an edit (syntax-checked)
 *   POST /api/v1/reviews/{id}/approve|reject  {"comment"}
 *   POST /api/v1/reviews/{id}/apply           {"target", "timeoutMs"}
 * An agent token creates change sets of its own sandboxes (their author is
 * its agent) and reads the ones it wrote; any other is 404 as for an id
 * that does not exist. Approve, reject, edit and apply are the operator's
 * (their routes are 404 for an agent token); libqvm refuses an approval by
 * the author's own agent (403, class "SelfApproval"). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include <qvm/review.h>
#include <qvm/text.h>
#include <qvm/vm.h>

#include "qvmd.h"

#define COMMENT_MAX 4096
#define PLAYBOOK_TEXT_MAX (512u << 10) /* an edit's playbook.yml */
#define FILES_MAX 256                  /* GET playbook: files listed */
#define FILE_TEXT_MAX (256u << 10)     /* ... bytes of one file given */
#define FILES_TEXT_TOTAL (1u << 20)    /* ... bytes of all of them */
#define TREE_DEPTH_MAX 8

static bool is_agent(const qvmd_request *req) { return req->caller->scope == QVMD_SCOPE_AGENT; }

/* The author's agent of a camelCase meta object; NULL: none. */
static const char *author_agent(json_object *meta) {
  json_object *a = NULL, *v = NULL;
  if (!json_object_object_get_ex(meta, "author", &a) ||
      !json_object_object_get_ex(a, "agent", &v) || !json_object_is_type(v, json_type_string))
    return NULL;
  return json_object_get_string(v);
}

static bool visible(const qvmd_request *req, json_object *meta) {
  if (!is_agent(req)) return true;
  const char *by = author_agent(meta);
  return by && req->caller->agent && !strcmp(by, req->caller->agent);
}

/* The review {id} of the route as a camelCase meta object the caller may
 * see; NULL with a 422 (a malformed id) or a 404 (none, or not its). */
static json_object *open_review(qvmd_reply *out, const qvmd_request *req) {
  const char *id = req->params[0];
  if (!qvm_review_id_valid(id)) {
    qvmd_problem_field(out, "id", "a review id is 12 lowercase hex digits");
    return NULL;
  }
  qvm_error *err = NULL;
  char *text = NULL;
  if (qvm_review_show(&text, id, &err) < 0) {
    if (qvm_error_code(err) == QVM_ENOTFOUND) {
      qvm_error_free(err);
      qvmd_problem_not_found(out, "review", id);
    } else {
      qvmd_problem_qvm(out, err, NULL);
    }
    return NULL;
  }
  json_object *meta = qvmd_json_from_lib(text);
  free(text);
  if (!meta || !json_object_is_type(meta, json_type_object)) {
    json_object_put(meta);
    qvmd_problem(out, 500, "EPROTO", "libqvm's review meta did not parse");
    return NULL;
  }
  if (!visible(req, meta)) {
    json_object_put(meta);
    qvmd_problem_not_found(out, "review", id);
    return NULL;
  }
  return meta;
}

/* After a libqvm call on an id the caller saw: a review gone in between is
 * the same 404 as one that never was. */
static void review_error(qvmd_reply *out, qvm_error *err, const char *id, const char *field) {
  const char *cls = qvm_error_class(err);
  if (qvm_error_code(err) == QVM_ENOTFOUND && cls && !strcmp(cls, "ReviewUnknown")) {
    qvm_error_free(err);
    qvmd_problem_not_found(out, "review", id);
    return;
  }
  qvmd_problem_qvm(out, err, field);
}

void qvmd_reviews_list(qvmd_reply *out, const qvmd_request *req) {
  qvm_error *err = NULL;
  char *text = NULL;
  if (qvm_review_list(&text, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return;
  }
  json_object *all = qvmd_json_from_lib(text);
  free(text);
  if (!all || !json_object_is_type(all, json_type_array)) {
    json_object_put(all);
    qvmd_problem(out, 500, "EPROTO", "libqvm's review list did not parse");
    return;
  }
  const char *vm = qvmd_query(req, "vm");
  if (vm && qvm_vm_name_check(vm, &err) < 0) {
    json_object_put(all);
    qvmd_problem_qvm(out, err, "vm");
    return;
  }
  json_object *arr = json_object_new_array();
  for (size_t i = 0; i < json_object_array_length(all); i++) {
    json_object *m = json_object_array_get_idx(all, i), *v = NULL;
    if (!visible(req, m)) continue;
    if (vm && (!json_object_object_get_ex(m, "vm", &v) || strcmp(json_object_get_string(v), vm)))
      continue;
    json_object_array_add(arr, json_object_get(m));
  }
  json_object_put(all);
  qvmd_reply_json(out, 200, arr);
}

void qvmd_reviews_get(qvmd_reply *out, const qvmd_request *req) {
  json_object *meta = open_review(out, req);
  if (meta) qvmd_reply_json(out, 200, meta);
}

void qvmd_reviews_create(qvmd_reply *out, const qvmd_request *req) {
  json_object *body = qvmd_body_object(out, req);
  if (!body) return;
  static const char *const known[] = {"vm", "from", "verify", "timeoutMs", NULL};
  const char *vm_name = NULL, *from = NULL;
  bool verify = false, timeout_set = false;
  int64_t timeout_ms = 0;
  qvm_error *err = NULL;
  qvm_vm *vm = NULL;
  if (!qvmd_body_known(out, body, known) || !qvmd_body_string(out, body, "vm", 63, &vm_name) ||
      !qvmd_body_string(out, body, "from", 63, &from) ||
      !qvmd_body_bool(out, body, "verify", &verify) ||
      !qvmd_body_int(out, body, "timeoutMs", 1000, 3600000, &timeout_set, &timeout_ms))
    goto done;
  if (!vm_name) {
    qvmd_problem_field(out, "vm", "'vm' is required");
    goto done;
  }
  if (qvm_vm_name_check(vm_name, &err) < 0) {
    qvmd_problem_qvm(out, err, "vm");
    goto done;
  }
  if (from && qvm_vm_name_check(from, &err) < 0) {
    qvm_error_free(err);
    qvmd_problem_field(out, "from", "'from' must be a snapshot name of the vm");
    goto done;
  }
  if (verify && !from) {
    qvmd_problem_field(out, "verify",
                       "'verify' needs 'from': a replay clones the vm at a snapshot, not at "
                       "its image");
    goto done;
  }
  /* An agent token: only its own sandbox (404 for any other name). */
  qvmd_request sub = *req;
  sub.params[0] = vm_name;
  if (!(vm = qvmd_sandbox_open(out, &sub, false))) goto done;
  qvm_vm_free(vm);
  vm = NULL;
  if (!qvmd_work_begin(out, req)) goto done;
  qvm_review_create_options o = QVM_REVIEW_CREATE_OPTIONS_INIT;
  o.from_snapshot = from;
  o.agent = is_agent(req) ? req->caller->agent : NULL;
  o.verify = verify;
  o.timeout_ms = (int)timeout_ms;
  char *id = NULL;
  int r = qvm_review_create(&id, vm_name, &o, &err);
  qvmd_work_end(req);
  if (r < 0) {
    qvmd_problem_qvm(out, err, NULL);
    goto done;
  }
  char *text = NULL;
  if (qvm_review_show(&text, id, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
  } else {
    json_object *meta = qvmd_json_from_lib(text);
    if (!meta) {
      qvmd_problem(out, 500, "EPROTO", "libqvm's review meta did not parse");
    } else {
      snprintf(out->location, sizeof out->location, "/api/v1/reviews/%s", id);
      qvmd_reply_json(out, 201, meta);
    }
  }
  free(text);
  free(id);
done:
  json_object_put(body);
}

void qvmd_reviews_diff(qvmd_reply *out, const qvmd_request *req) {
  json_object *meta = open_review(out, req);
  if (!meta) return;
  json_object_put(meta);
  qvm_error *err = NULL;
  char *text = NULL;
  if (qvm_review_diff_json(&text, req->params[0], &err) < 0) {
    review_error(out, err, req->params[0], NULL);
    return;
  }
  json_object *d = qvmd_json_from_lib(text);
  free(text);
  if (!d)
    qvmd_problem(out, 500, "EPROTO", "review '%s': diff.json did not parse", req->params[0]);
  else
    qvmd_reply_json(out, 200, d);
}

/* --- the playbook dir ------------------------------------------------------------ */

typedef struct walk {
  json_object *files;
  size_t n, total;
  bool truncated;
} walk;

/* A regular file's bytes, up to max (*more: there were more), through fd. */
static char *read_fd(int fd, size_t max, size_t *len, bool *more) {
  char *buf = malloc(max + 1);
  size_t n = 0;
  *more = false;
  if (!buf) return NULL;
  for (;;) {
    ssize_t k = read(fd, buf + n, max + 1 - n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      free(buf);
      return NULL;
    }
    if (k == 0) break;
    n += (size_t)k;
    if (n > max) {
      *more = true;
      n = max;
      break;
    }
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

/* Walks dir_fd (its path rel, "" at the top) below the playbook dir: every
 * regular file, never through a symlink, sorted by name, bounded. */
static void walk_dir(walk *w, int dir_fd, const char *rel, int depth) {
  struct dirent **names = NULL;
  DIR *d = fdopendir(dir_fd);
  if (!d) {
    close(dir_fd);
    return;
  }
  /* collect, then sort: the order is stable for the page and the tests */
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      struct dirent **nn = realloc(names, cap * sizeof *names);
      if (!nn) break;
      names = nn;
    }
    if (n >= 4 * FILES_MAX) {
      w->truncated = true;
      break;
    }
    names[n] = malloc(sizeof *e);
    if (!names[n]) break;
    memcpy(names[n++], e, sizeof *e);
  }
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && strcmp(names[j - 1]->d_name, names[j]->d_name) > 0; j--) {
      struct dirent *t = names[j];
      names[j] = names[j - 1];
      names[j - 1] = t;
    }
  for (size_t i = 0; i < n; i++) {
    const char *name = names[i]->d_name;
    char path[4096];
    if (snprintf(path, sizeof path, "%s%s%s", rel, *rel ? "/" : "", name) >= (int)sizeof path) {
      w->truncated = true;
      continue;
    }
    int fd = openat(dirfd(d), name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
      if (fd >= 0) close(fd);
      continue; /* a symlink (ELOOP) or gone: not served */
    }
    if (S_ISDIR(st.st_mode)) {
      if (depth < TREE_DEPTH_MAX)
        walk_dir(w, fd, path, depth + 1);
      else
        close(fd), w->truncated = true;
      continue;
    }
    if (!S_ISREG(st.st_mode) || w->n >= FILES_MAX) {
      if (S_ISREG(st.st_mode)) w->truncated = true;
      close(fd);
      continue;
    }
    json_object *f = json_object_new_object();
    qvmd_json_add_guest_bytes(f, "path", path, strlen(path));
    json_object_object_add(f, "size", json_object_new_int64((int64_t)st.st_size));
    size_t room = FILES_TEXT_TOTAL - w->total, max = room < FILE_TEXT_MAX ? room : FILE_TEXT_MAX;
    size_t len = 0;
    bool more = false;
    char *text = max ? read_fd(fd, max, &len, &more) : NULL;
    if (text) {
      qvmd_json_add_guest_bytes(f, "text", text, len);
      w->total += len;
    }
    json_object_object_add(f, "truncated", json_object_new_boolean(!text || more));
    if (!text || more) w->truncated = true;
    free(text);
    close(fd);
    json_object_array_add(w->files, f);
    w->n++;
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  closedir(d);
}

static bool wants_yaml(const qvmd_request *req) {
  const char *accept = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Accept");
  const char *q = qvmd_query(req, "format");
  if (q) return !strcmp(q, "yaml");
  return accept && (strcasestr(accept, "text/yaml") || strcasestr(accept, "application/yaml")) &&
         !strcasestr(accept, "application/json");
}

void qvmd_reviews_playbook_get(qvmd_reply *out, const qvmd_request *req) {
  const char *format = qvmd_query(req, "format");
  if (format && strcmp(format, "yaml") && strcmp(format, "json")) {
    qvmd_problem_field(out, "format", "'format' is json or yaml");
    return;
  }
  json_object *meta = open_review(out, req);
  if (!meta) return;
  json_object_put(meta);
  qvm_error *err = NULL;
  char *dir = NULL;
  if (qvm_review_playbook_dir(&dir, req->params[0], &err) < 0) {
    review_error(out, err, req->params[0], NULL);
    return;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) {
    qvmd_problem(out, 500, "ESYS", "review '%s': its playbook dir cannot be opened: %s",
                 req->params[0], strerror(errno));
    free(dir);
    return;
  }
  free(dir);
  if (wants_yaml(req)) {
    int fd = openat(dfd, "playbook.yml", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    close(dfd);
    size_t len = 0;
    bool more = false;
    struct stat st;
    char *text = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
                     ? read_fd(fd, PLAYBOOK_TEXT_MAX * 2, &len, &more)
                     : NULL;
    if (fd >= 0) close(fd);
    if (!text || more || strlen(text) != len) {
      free(text);
      qvmd_problem(out, 500, "ESYS", "review '%s': playbook.yml cannot be read as text",
                   req->params[0]);
      return;
    }
    out->status = 200;
    out->body = text;
    out->content_type = "text/yaml; charset=utf-8";
    return;
  }
  walk w = {.files = json_object_new_array()};
  walk_dir(&w, dfd, "", 0);
  json_object *o = json_object_new_object();
  json_object_object_add(o, "id", json_object_new_string(req->params[0]));
  json_object_object_add(o, "files", w.files);
  json_object_object_add(o, "truncated", json_object_new_boolean(w.truncated));
  qvmd_reply_json(out, 200, o);
}

void qvmd_reviews_playbook_put(qvmd_reply *out, const qvmd_request *req) {
  json_object *body = qvmd_body_object(out, req);
  if (!body) return;
  static const char *const known[] = {"text", NULL};
  const char *text = NULL;
  json_object *meta = NULL;
  char *path = NULL;
  if (!qvmd_body_known(out, body, known) ||
      !qvmd_body_string(out, body, "text", PLAYBOOK_TEXT_MAX, &text))
    goto done;
  if (!text) {
    qvmd_problem_field(out, "text", "'text' (the new playbook.yml) is required");
    goto done;
  }
  if (!(meta = open_review(out, req))) goto done;
  json_object_put(meta);
  meta = NULL;
  if (!qvmd_work_begin(out, req)) goto done; /* ansible's syntax check takes seconds */
  qvm_error *err = NULL;
  bool changed = false;
  int r = qvm_review_edit_begin(&path, req->params[0], &err);
  if (r == 0) {
    int fd = open(path, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
    size_t len = strlen(text), off = 0;
    while (fd >= 0 && off < len) {
      ssize_t k = write(fd, text + off, len - off);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) break;
      off += (size_t)k;
    }
    bool ok = fd >= 0 && off == len;
    if (fd >= 0 && close(fd) < 0) ok = false;
    if (!ok) {
      qvmd_work_end(req);
      qvmd_problem(out, 500, "ESYS", "review '%s': the edit copy cannot be written",
                   req->params[0]);
      goto done;
    }
    r = qvm_review_edit_commit(&changed, req->params[0], &err);
  }
  qvmd_work_end(req);
  if (r < 0) {
    bool syntax = qvm_error_class(err) && !strcmp(qvm_error_class(err), "PlaybookSyntax");
    review_error(out, err, req->params[0], syntax ? "text" : NULL);
    goto done;
  }
  char *shown = NULL;
  if (qvm_review_show(&shown, req->params[0], &err) < 0) {
    review_error(out, err, req->params[0], NULL);
    goto done;
  }
  meta = qvmd_json_from_lib(shown);
  free(shown);
  if (!meta) {
    qvmd_problem(out, 500, "EPROTO", "libqvm's review meta did not parse");
    goto done;
  }
  json_object *o = json_object_new_object();
  json_object_object_add(o, "changed", json_object_new_boolean(changed));
  json_object_object_add(o, "review", meta);
  meta = NULL;
  qvmd_reply_json(out, 200, o);
done:
  free(path);
  json_object_put(meta);
  json_object_put(body);
}

typedef enum { APPROVE, REJECT } decision;

static bool comment_ok(const char *c) {
  if (!qvm_text_utf8_valid(c, strlen(c))) return false;
  for (const unsigned char *p = (const unsigned char *)c; *p; p++)
    if ((*p < 0x20 && *p != '\n') || *p == 0x7f) return false;
  return true;
}

static void decide(qvmd_reply *out, const qvmd_request *req, decision d) {
  json_object *body = req->body_len ? qvmd_body_object(out, req) : json_object_new_object();
  if (!body) return;
  static const char *const known[] = {"comment", NULL};
  const char *comment = NULL;
  json_object *meta = NULL;
  if (!qvmd_body_known(out, body, known) ||
      !qvmd_body_string(out, body, "comment", COMMENT_MAX, &comment))
    goto done;
  if (comment && !comment_ok(comment)) {
    qvmd_problem_field(out, "comment",
                       "'comment' must be UTF-8 text without control characters but newline");
    goto done;
  }
  if (!(meta = open_review(out, req))) goto done;
  json_object_put(meta);
  meta = NULL;
  qvm_error *err = NULL;
  int r = d == APPROVE ? qvm_review_approve(req->params[0], comment, &err)
                       : qvm_review_reject(req->params[0], comment, &err);
  if (r < 0) {
    review_error(out, err, req->params[0], NULL);
    goto done;
  }
  meta = open_review(out, req);
  if (meta) qvmd_reply_json(out, 200, meta);
  meta = NULL;
done:
  json_object_put(meta);
  json_object_put(body);
}

void qvmd_reviews_approve(qvmd_reply *out, const qvmd_request *req) { decide(out, req, APPROVE); }
void qvmd_reviews_reject(qvmd_reply *out, const qvmd_request *req) { decide(out, req, REJECT); }

void qvmd_reviews_apply(qvmd_reply *out, const qvmd_request *req) {
  json_object *body = req->body_len ? qvmd_body_object(out, req) : json_object_new_object();
  if (!body) return;
  static const char *const known[] = {"target", "timeoutMs", NULL};
  const char *target = NULL;
  bool timeout_set = false;
  int64_t timeout_ms = 0;
  json_object *meta = NULL;
  qvm_error *err = NULL;
  if (!qvmd_body_known(out, body, known) || !qvmd_body_string(out, body, "target", 63, &target) ||
      !qvmd_body_int(out, body, "timeoutMs", 1000, 7200000, &timeout_set, &timeout_ms))
    goto done;
  if (target && qvm_vm_name_check(target, &err) < 0) {
    qvmd_problem_qvm(out, err, "target");
    goto done;
  }
  if (!(meta = open_review(out, req))) goto done;
  json_object *v = NULL;
  /* the default target: the vm the change set was made from */
  if (!target && json_object_object_get_ex(meta, "vm", &v)) target = json_object_get_string(v);
  if (!target) {
    qvmd_problem_field(out, "target", "'target' is required");
    goto done;
  }
  if (!qvmd_work_begin(out, req)) goto done;
  qvm_review_apply_options o = QVM_REVIEW_APPLY_OPTIONS_INIT;
  o.target = target;
  o.timeout_ms = (int)timeout_ms;
  char *text = NULL;
  int r = qvm_review_apply(&text, req->params[0], &o, &err);
  qvmd_work_end(req);
  if (r < 0) {
    free(text);
    review_error(out, err, req->params[0], NULL);
    goto done;
  }
  json_object *res = text ? qvmd_json_from_lib(text) : json_object_new_object();
  free(text);
  if (!res)
    qvmd_problem(out, 500, "EPROTO", "libqvm's apply result did not parse");
  else
    qvmd_reply_json(out, 200, res);
done:
  json_object_put(meta);
  json_object_put(body);
}
