/* SPDX-License-Identifier: MIT */
/* GET /api/v1/audit?vm=NAME&agent=ID&sinceUs=N: the host-wide audit log's
 * records (include/qvm/audit.h), oldest first. */
#include <errno.h>
#include <stdlib.h>

#include <qvm/audit.h>
#include <qvm/vm.h>

#include "qvmd.h"

void qvmd_audit_list(qvmd_reply *out, const qvmd_request *req) {
  qvm_audit_filter f = QVM_AUDIT_FILTER_INIT;
  qvm_error *err = NULL;
  const char *since = qvmd_query(req, "sinceUs");
  f.vm = qvmd_query(req, "vm");
  f.agent = qvmd_query(req, "agent");
  if (f.vm && qvm_vm_name_check(f.vm, &err) < 0) {
    qvmd_problem_qvm(out, err, "vm");
    return;
  }
  if (f.agent && !qvm_audit_agent_valid(f.agent)) {
    qvmd_problem_field(out, "agent", "'agent' is not a valid agent id");
    return;
  }
  if (since) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(since, &end, 10);
    if (errno || end == since || *end || v < 0) {
      qvmd_problem_field(out, "sinceUs", "'sinceUs' must be microseconds since the epoch");
      return;
    }
    f.since_us = v;
  }
  char *text = NULL;
  if (qvm_audit_list(&text, &f, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return;
  }
  json_object *arr = json_tokener_parse(text);
  free(text);
  if (!arr) {
    qvmd_problem(out, 500, "EPROTO", "libqvm's audit list did not parse");
    return;
  }
  qvmd_reply_json(out, 200, arr);
}
