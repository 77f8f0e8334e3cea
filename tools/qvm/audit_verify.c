/* SPDX-License-Identifier: MIT */
/* qvm audit verify [--json], and the table's summary of a record. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/audit.h>

#include "audit_commands.h"
#include "commands.h"

static const char verify_help[] =
    "usage: qvm audit verify [--json]\n\n"
    "Checks the audit log's hash chain: each record's own hash, its seq (no gap)\n"
    "and its link to the line before. Prints 'ok, N records' and exits 0, or names\n"
    "the first bad line and why (hash mismatch, seq gap, unparsable) and exits 1.\n"
    "The chain shows edits and removals; it cannot stop whoever can write the file\n"
    "(its owner, root) from rewriting all of it: keep the last hash it prints\n"
    "elsewhere to catch that.\n\n"
    "  --json   print {\"ok\", \"records\", \"bad_line\", \"reason\", \"head\"}\n";

int audit_verify_run(int argc, char **argv) {
  static const struct option longopts[] = {{"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  bool json = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'h') return printf("%s", verify_help), QVM_EXIT_OK;
    if (c != 'j') return qvm_cli_bad_option("audit verify", c, argv);
    json = true;
  }
  if (optind < argc)
    return qvm_cli_usage_error("audit verify", "unexpected argument '%s'", argv[optind]);
  qvm_audit_verify_result res;
  qvm_error *err = NULL;
  if (qvm_audit_verify(&res, &err) < 0) return qvm_cli_fail("audit verify", err, NULL);
  bool ok = res.bad_line == 0;
  if (json) {
    printf("{\"ok\": %s, \"records\": %" PRIu64 ", \"bad_line\": ", ok ? "true" : "false",
           res.records);
    ok ? printf("null") : printf("%" PRIu64, res.bad_line);
    printf(", \"reason\": ");
    ok ? printf("null") : (void)qvm_cli_json_string(stdout, res.reason);
    printf(", \"head\": ");
    res.head[0] ? (void)qvm_cli_json_string(stdout, res.head) : (void)printf("null");
    printf("}\n");
  } else if (ok) {
    printf("ok, %" PRIu64 " records%s%s\n", res.records, res.head[0] ? "; last hash " : "",
           res.head);
  } else {
    fprintf(stderr, "qvm audit verify: line %" PRIu64 ": %s (%" PRIu64 " good records before it)\n",
            res.bad_line, res.reason, res.records);
  }
  return ok ? QVM_EXIT_OK : QVM_EXIT_FAILURE;
}

/* ---- the table's summaries ---------------------------------------------------- */

static const char *str(struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
             ? json_object_get_string(v)
             : NULL;
}

static bool num(int64_t *out, struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
    return false;
  *out = json_object_get_int64(v);
  return true;
}

static size_t put(char *out, size_t size, size_t at, const char *fmt, const char *s) {
  if (at >= size) return at;
  int n = snprintf(out + at, size - at, fmt, s);
  return n < 0 ? at : at + (size_t)n;
}

/* "sh -c 'x' -> exit 0" / "-> signal KILL" */
static size_t command(char *out, size_t size, struct json_object *d) {
  struct json_object *argv = NULL;
  size_t at = 0;
  if (json_object_object_get_ex(d, "argv", &argv) && json_object_is_type(argv, json_type_array))
    for (size_t i = 0; i < json_object_array_length(argv) && at < 80; i++)
      at = put(out, size, at, i ? " %s" : "%s",
               json_object_get_string(json_object_array_get_idx(argv, i)));
  else if (str(d, "command"))
    at = put(out, size, at, "%s", str(d, "command"));
  if (at > 80 && size > 84) at = put(out, size, 77, "%s", "...");
  int64_t exit_code = 0;
  if (num(&exit_code, d, "exit")) {
    char n[32];
    snprintf(n, sizeof n, "%" PRId64, exit_code);
    at = put(out, size, at, " -> exit %s", n);
  } else if (str(d, "signal")) {
    at = put(out, size, at, " -> signal %s", str(d, "signal"));
  }
  return at;
}

void audit_cli_summary(char *out, size_t size, struct json_object *rec) {
  struct json_object *d = NULL;
  const char *action = str(rec, "action");
  out[0] = '\0';
  if (!action || !json_object_object_get_ex(rec, "details", &d)) return;
  size_t at = 0;
  int64_t bytes = 0;
  if (!strcmp(action, "exec") || !strncmp(action, "ssh-", 4)) {
    at = command(out, size, d);
  } else if (!strcmp(action, "cp")) {
    bool up = str(d, "direction") && !strcmp(str(d, "direction"), "upload");
    at = put(out, size, at, "%s", up ? str(d, "local") : str(d, "remote"));
    at = put(out, size, at, " -> %s", up ? str(d, "remote") : str(d, "local"));
    if (num(&bytes, d, "bytes")) {
      char n[32];
      snprintf(n, sizeof n, "%" PRId64, bytes);
      at = put(out, size, at, " (%s bytes)", n);
    }
  } else if (!strncmp(action, "snapshot-", 9)) {
    at = put(out, size, at, "%s", str(d, "snapshot"));
  } else if (!strcmp(action, "clone")) {
    at = put(out, size, at, "from %s", str(d, "source"));
  } else if (!strcmp(action, "create") && str(d, "image")) {
    at = put(out, size, at, "image %s", str(d, "image"));
  }
  if (str(d, "error")) put(out, size, at, at ? "; failed: %s" : "failed: %s", str(d, "error"));
}
