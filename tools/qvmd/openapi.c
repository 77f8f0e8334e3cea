/* SPDX-License-Identifier: MIT */
/* GET /api/v1/openapi.json: api/openapi.json as built into qvmd. */
#include <stdlib.h>
#include <string.h>

#include "qvmd.h"

void qvmd_openapi_get(qvmd_reply *out, const qvmd_request *req) {
  (void)req;
  free(out->body);
  out->body = malloc(qvmd_openapi_json_len + 1);
  if (!out->body) {
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return;
  }
  memcpy(out->body, qvmd_openapi_json, qvmd_openapi_json_len);
  out->body[qvmd_openapi_json_len] = '\0';
  out->status = 200;
  out->content_type = "application/json";
}
