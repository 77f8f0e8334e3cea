/* SPDX-License-Identifier: MIT */
/* /api/v1/images: the image store (include/qvm/image.h). List, inspect,
 * catalog (agent tokens too: a sandbox may start from a store image or a
 * catalog alias, so what they are is no secret), remove, and pull, which
 * is always an operation (operations.c). An http(s) URL without a checksum
 * is refused (422, class ImageUnverified) before an operation starts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/image.h>

#include "qvmd.h"

#define REF_MAX 4096

/* libqvm's JSON text as a camelCase reply (status 200). */
static void reply_lib(qvmd_reply *out, char *text, const char *what) {
  json_object *o = qvmd_json_from_lib(text);
  free(text);
  if (!o) {
    qvmd_problem(out, 500, "EPROTO", "libqvm's %s did not parse", what);
    return;
  }
  qvmd_reply_json(out, 200, o);
}

void qvmd_images_list(qvmd_reply *out, const qvmd_request *req) {
  (void)req;
  char *text = NULL;
  qvm_error *err = NULL;
  if (qvm_image_list(&text, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return;
  }
  reply_lib(out, text, "image list");
}

void qvmd_images_catalog(qvmd_reply *out, const qvmd_request *req) {
  (void)req;
  char *text = NULL;
  qvm_error *err = NULL;
  if (qvm_image_catalog(&text, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return;
  }
  reply_lib(out, text, "image catalog");
}

static bool ref_ok(qvmd_reply *out, const char *ref) {
  if (strlen(ref) > REF_MAX) {
    qvmd_problem_field(out, "ref", "an image reference is at most %d bytes", REF_MAX);
    return false;
  }
  return true;
}

void qvmd_images_get(qvmd_reply *out, const qvmd_request *req) {
  const char *ref = req->params[0];
  if (!ref_ok(out, ref)) return;
  char *text = NULL;
  qvm_error *err = NULL;
  if (qvm_image_inspect(&text, ref, &err) < 0) {
    qvmd_problem_qvm(out, err, "ref");
    return;
  }
  reply_lib(out, text, "image");
}

void qvmd_images_delete(qvmd_reply *out, const qvmd_request *req) {
  const char *ref = req->params[0];
  if (!ref_ok(out, ref)) return;
  qvm_error *err = NULL;
  if (qvm_image_remove(ref, &err) < 0)
    qvmd_problem_qvm(out, err, "ref");
  else
    qvmd_reply_empty(out, 204);
}

typedef struct pull_job {
  json_object *body; /* the strings below point into it */
  const char *source, *name, *sha256, *sha512, *checksums;
} pull_job;

static void pull_job_free(void *arg) {
  pull_job *j = arg;
  json_object_put(j->body);
  free(j);
}

static void on_progress(const qvm_image_progress *p, void *userdata) {
  qvmd_op_progress(userdata, p->phase, p->done, p->total);
}

static bool on_cancelled(void *userdata) { return qvmd_op_cancelled(userdata); }

static void pull_run(qvmd_op *op, qvmd_reply *out, void *arg) {
  pull_job *j = arg;
  qvm_image_pull_options o = QVM_IMAGE_PULL_OPTIONS_INIT;
  o.name = j->name;
  o.sha256 = j->sha256;
  o.sha512 = j->sha512;
  o.checksums = j->checksums;
  o.progress = on_progress;
  o.cancelled = on_cancelled;
  o.userdata = op;
  char *text = NULL;
  qvm_error *err = NULL;
  if (qvm_image_pull(&text, j->source, &o, &err) < 0) {
    qvmd_problem_qvm(out, err, "source");
    return;
  }
  reply_lib(out, text, "pulled image");
}

static bool is_remote(const char *s) {
  return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

void qvmd_url_without_userinfo(char *dst, size_t size, const char *src) {
  const char *host = strstr(src, "://");
  const char *at = NULL;
  if (host) {
    size_t auth = strcspn(host + 3, "/?#");
    at = memrchr(host + 3, '@', auth);
  }
  if (!at)
    snprintf(dst, size, "%s", src);
  else
    snprintf(dst, size, "%.*s%s", (int)(host + 3 - src), src, at + 1);
}

void qvmd_images_pull(qvmd_reply *out, const qvmd_request *req) {
  json_object *body = qvmd_body_object(out, req);
  if (!body) return;
  static const char *const known[] = {"source", "name", "sha256", "sha512", "checksums", NULL};
  pull_job *j = calloc(1, sizeof *j);
  if (!j) {
    json_object_put(body);
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return;
  }
  j->body = body;
  if (!qvmd_body_known(out, body, known) ||
      !qvmd_body_string(out, body, "source", REF_MAX, &j->source) ||
      !qvmd_body_string(out, body, "name", 128, &j->name) ||
      !qvmd_body_string(out, body, "sha256", 64, &j->sha256) ||
      !qvmd_body_string(out, body, "sha512", 128, &j->sha512) ||
      !qvmd_body_string(out, body, "checksums", REF_MAX, &j->checksums))
    goto fail;
  if (!j->source) {
    qvmd_problem_field(out, "source", "'source' is required");
    goto fail;
  }
  if (!!j->sha256 + !!j->sha512 + !!j->checksums > 1) {
    qvmd_problem_field(out, "checksums", "give one of 'sha256', 'sha512' and 'checksums'");
    goto fail;
  }
  if (is_remote(j->source) && !j->sha256 && !j->sha512 && !j->checksums) {
    /* the refusal libqvm gives (class ImageUnverified), before any
     * operation starts */
    char shown[REF_MAX + 1];
    qvmd_url_without_userinfo(shown, sizeof shown, j->source);
    json_object *p = json_object_new_object();
    json_object_object_add(p, "type", json_object_new_string("urn:qvm:problem:EINVAL"));
    json_object_object_add(p, "title", json_object_new_string("Unprocessable Content"));
    json_object_object_add(p, "status", json_object_new_int(422));
    char detail[REF_MAX + 128];
    snprintf(detail, sizeof detail,
             "'%s' has no checksum to verify it with: give 'sha256', 'sha512' or 'checksums'",
             shown);
    json_object_object_add(p, "detail", json_object_new_string(detail));
    json_object_object_add(p, "code", json_object_new_string("EINVAL"));
    json_object_object_add(p, "class", json_object_new_string("ImageUnverified"));
    json_object_object_add(p, "field", json_object_new_string("source"));
    qvmd_reply_json(out, 422, p);
    out->content_type = "application/problem+json";
    goto fail;
  }
  char shown[REF_MAX + 1];
  qvmd_url_without_userinfo(shown, sizeof shown, j->source);
  qvmd_op_start(out, req, "image.pull", j->name ? j->name : shown, shown, pull_run, j,
                pull_job_free);
  return;
fail:
  pull_job_free(j);
}
