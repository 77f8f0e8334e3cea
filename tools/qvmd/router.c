/* SPDX-License-Identifier: MIT */
/* The route table and the matching of a request path against it. The
 * OpenAPI document (api/openapi.json) lists the same (method, path) pairs:
 * tests/qvmd/routes.sh compares them (`qvmd --routes`). */
#include <stdio.h>
#include <string.h>

#include "qvmd.h"

enum {
  W = QVMD_ROUTE_WRITE,
  A = QVMD_ROUTE_AGENT,
  ANY = QVMD_ROUTE_ANYONE,
  U = QVMD_ROUTE_UNLISTED,
  UP = QVMD_ROUTE_UPLOAD
};

const qvmd_route qvmd_routes[] = {
    {"GET", "/api/v1/openapi.json", qvmd_openapi_get, ANY},
    {"GET", "/api/v1/vms", qvmd_vms_list, 0},
    {"POST", "/api/v1/vms", qvmd_vms_create, W},
    {"GET", "/api/v1/vms/{name}", qvmd_vms_get, 0},
    {"DELETE", "/api/v1/vms/{name}", qvmd_vms_delete, W},
    {"POST", "/api/v1/vms/{name}/start", qvmd_vms_start, W},
    {"POST", "/api/v1/vms/{name}/stop", qvmd_vms_stop, W},
    {"POST", "/api/v1/vms/{name}/restart", qvmd_vms_restart, W},
    {"POST", "/api/v1/vms/{name}/exec", qvmd_vms_exec, W},
    {"PUT", "/api/v1/vms/{name}/files", qvmd_files_put, W | UP},
    {"GET", "/api/v1/vms/{name}/files", qvmd_files_get, 0},
    {"GET", "/api/v1/vms/{name}/ip", qvmd_vms_ip, 0},
    {"GET", "/api/v1/vms/{name}/console", qvmd_vms_console, 0},
    {"GET", "/api/v1/vms/{name}/snapshots", qvmd_snapshots_list, 0},
    {"POST", "/api/v1/vms/{name}/snapshots", qvmd_snapshots_create, W},
    {"POST", "/api/v1/vms/{name}/snapshots/{snapshot}/restore", qvmd_snapshots_restore, W},
    {"DELETE", "/api/v1/vms/{name}/snapshots/{snapshot}", qvmd_snapshots_delete, W},
    {"POST", "/api/v1/vms/{name}/clone", qvmd_vms_clone, W},
    {"POST", "/api/v1/vms/{name}/fork", qvmd_vms_fork, W},
    {"GET", "/api/v1/sandboxes", qvmd_sandboxes_list, A},
    {"POST", "/api/v1/sandboxes", qvmd_sandboxes_create, W | A},
    {"GET", "/api/v1/sandboxes/{name}", qvmd_sandboxes_get, A},
    {"DELETE", "/api/v1/sandboxes/{name}", qvmd_sandboxes_delete, W | A},
    {"POST", "/api/v1/sandboxes/{name}/exec", qvmd_vms_exec, W | A},
    {"PUT", "/api/v1/sandboxes/{name}/files", qvmd_files_put, W | A | UP},
    {"GET", "/api/v1/sandboxes/{name}/files", qvmd_files_get, A},
    {"GET", "/api/v1/sandboxes/{name}/snapshots", qvmd_sandbox_snapshots_list, A},
    {"POST", "/api/v1/sandboxes/{name}/checkpoint", qvmd_sandboxes_checkpoint, W | A},
    {"POST", "/api/v1/sandboxes/{name}/rollback", qvmd_sandboxes_rollback, W | A},
    {"GET", "/api/v1/events", qvmd_events_get, A},
    {"GET", "/api/v1/reviews", qvmd_reviews_list, A},
    {"POST", "/api/v1/reviews", qvmd_reviews_create, W | A},
    {"GET", "/api/v1/reviews/{id}", qvmd_reviews_get, A},
    {"GET", "/api/v1/reviews/{id}/diff", qvmd_reviews_diff, A},
    {"GET", "/api/v1/reviews/{id}/playbook", qvmd_reviews_playbook_get, A},
    {"PUT", "/api/v1/reviews/{id}/playbook", qvmd_reviews_playbook_put, W},
    {"POST", "/api/v1/reviews/{id}/approve", qvmd_reviews_approve, W},
    {"POST", "/api/v1/reviews/{id}/reject", qvmd_reviews_reject, W},
    {"POST", "/api/v1/reviews/{id}/apply", qvmd_reviews_apply, W},
    {"GET", "/api/v1/audit", qvmd_audit_list, 0},
    {"GET", "/api/v1/operations", qvmd_operations_list, A},
    {"GET", "/api/v1/operations/{id}", qvmd_operations_get, A},
    {"DELETE", "/api/v1/operations/{id}", qvmd_operations_cancel, W | A},
    {"GET", "/api/v1/operations/{id}/events", qvmd_operations_events, A},
    {"GET", "/api/v1/images", qvmd_images_list, A},
    {"POST", "/api/v1/images", qvmd_images_pull, W},
    {"GET", "/api/v1/images/catalog", qvmd_images_catalog, A},
    {"GET", "/api/v1/images/{ref}", qvmd_images_get, A},
    {"DELETE", "/api/v1/images/{ref}", qvmd_images_delete, W},
    {"GET", "/api/v1/ssh-keys", qvmd_keys_list, 0},
    {"POST", "/api/v1/ssh-keys", qvmd_keys_create, W},
    {"GET", "/api/v1/ssh-keys/{name}", qvmd_keys_get, 0},
    {"POST", "/api/v1/vms/{name}/ssh-keys/{key}", qvmd_keys_inject, W},
    /* Datamancy vm-provisioner's routes (docs/qvmd.md). */
    {"GET", "/api/vms", qvmd_vms_list, U},
    {"POST", "/api/vms", qvmd_vms_create, W | U},
    {"GET", "/api/vms/{name}", qvmd_vms_get, U},
    {"DELETE", "/api/vms/{name}", qvmd_vms_delete, W | U},
    {"POST", "/api/vms/{name}/start", qvmd_vms_start, W | U},
    {"POST", "/api/vms/{name}/stop", qvmd_vms_stop, W | U},
    {"GET", "/api/ssh-keys", qvmd_keys_list, U},
    {"POST", "/api/ssh-keys", qvmd_keys_create, W | U},
    {"GET", "/api/ssh-keys/{name}/public", qvmd_keys_get, U},
    {"POST", "/api/vms/{name}/ssh-keys/{key}", qvmd_keys_inject, W | U},
};
const size_t qvmd_n_routes = sizeof qvmd_routes / sizeof qvmd_routes[0];

/* Matches path against pattern, copying {param} segments into buf and
 * pointing params at them. */
static bool match(const char *pattern, const char *path, const char **params, char *buf,
                  size_t size) {
  size_t n = 0, used = 0;
  while (*pattern && *path) {
    if (*pattern != '/' || *path != '/') return false;
    pattern++, path++;
    size_t pl = strcspn(pattern, "/"), sl = strcspn(path, "/");
    if (pattern[0] == '{') {
      if (sl == 0 || n == QVMD_PARAMS_MAX || used + sl + 1 > size) return false;
      memcpy(buf + used, path, sl);
      buf[used + sl] = '\0';
      params[n++] = buf + used;
      used += sl + 1;
    } else if (pl != sl || memcmp(pattern, path, sl)) {
      return false;
    }
    pattern += pl, path += sl;
  }
  return !*pattern && !*path;
}

const qvmd_route *qvmd_route_find(const char *method, const char *path, qvmd_request *req,
                                  char *param_buf, size_t param_buf_size, unsigned *out_status,
                                  char *allow, size_t allow_size) {
  bool path_known = false;
  allow[0] = '\0';
  for (size_t i = 0; i < qvmd_n_routes; i++) {
    const qvmd_route *r = &qvmd_routes[i];
    const char *params[QVMD_PARAMS_MAX] = {0};
    if (!match(r->pattern, path, params, param_buf, param_buf_size)) continue;
    if (!strcmp(r->method, method)) {
      memcpy(req->params, params, sizeof params);
      return r;
    }
    path_known = true;
    size_t len = strlen(allow);
    snprintf(allow + len, allow_size - len, "%s%s", len ? ", " : "", r->method);
  }
  *out_status = path_known ? 405 : 404;
  return NULL;
}
