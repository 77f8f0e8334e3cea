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
    "usage: qvm audit verify [--head HASH] [--json]\n\n"
    "Checks the audit log's hash chain: each record's own hash, its seq (no gap)\n"
    "and its link to the line before. Prints 'ok, N records; last hash H' and exits\n"
    "0, or names the first bad line and why (hash mismatch, seq gap, unparsable)\n"
    "and exits 1. The chain shows edits and removals; it cannot stop whoever can\n"
    "write the file (its owner, root) from rewriting all of it or cutting its end:\n"
    "keep the last hash elsewhere and give it to --head later.\n\n"
    "  --head HASH  also check that HASH (a last hash printed before) is still in\n"
    "               the chain: exit 1 if records were cut off or rewritten\n"
    "  --json       print {\"ok\", \"records\", \"bad_line\", \"reason\", \"head\",\n"
    "               \"head_line\"}\n";

static void print_json(const qvm_audit_verify_result *res, bool ok, const char *reason) {
  printf("{\"ok\": %s, \"records\": %" PRIu64 ", \"bad_line\": ", ok ? "true" : "false",
         res->records);
  res->bad_line ? printf("%" PRIu64, res->bad_line) : printf("null");
  printf(", \"reason\": ");
  reason ? qvm_cli_json_string(stdout, reason) : (void)printf("null");
  printf(", \"head\": ");
  res->head[0] ? qvm_cli_json_string(stdout, res->head) : (void)printf("null");
  printf(", \"head_line\": ");
  res->known_head_line ? printf("%" PRIu64, res->known_head_line) : printf("null");
  printf("}\n");
}

int audit_verify_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"json", 0, 0, 'j'}, {"head", 1, 0, 'H'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  bool json = false;
  const char *head = NULL;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'h') return printf("%s", verify_help), QVM_EXIT_OK;
    if (c == 'H')
      head = optarg;
    else if (c == 'j')
      json = true;
    else
      return qvm_cli_bad_option("audit verify", c, argv);
  }
  if (optind < argc)
    return qvm_cli_usage_error("audit verify", "unexpected argument '%s'", argv[optind]);
  if (head && (strlen(head) != 64 || strspn(head, "0123456789abcdef") != 64))
    return qvm_cli_usage_error("audit verify", "--head '%s' is not a sha256 (64 hex digits)", head);
  qvm_audit_verify_result res;
  qvm_error *err = NULL;
  if (qvm_audit_verify(&res, head, &err) < 0) return qvm_cli_fail("audit verify", err, NULL);
  const char *reason = res.bad_line ? res.reason : NULL;
  char line[64];
  if (res.bad_line) snprintf(line, sizeof line, "line %" PRIu64 ": ", res.bad_line);
  if (!reason && head && !res.known_head_line) {
    reason = "the head given is not in the chain: records were cut off its end, or the chain "
             "was rewritten";
    line[0] = '\0';
  }
  if (json)
    print_json(&res, !reason, reason);
  else if (!reason)
    printf("ok, %" PRIu64 " records%s%s\n", res.records, res.head[0] ? "; last hash " : "",
           res.head);
  else
    fprintf(stderr, "qvm audit verify: %s%s (%" PRIu64 " good records)\n", line, reason,
            res.records);
  return reason ? QVM_EXIT_FAILURE : QVM_EXIT_OK;
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
