/* SPDX-License-Identifier: MIT */
/* qvm audit [VM] [--agent ID] [--since T] [--json]; qvm audit verify (audit_verify.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include <qvm/audit.h>
#include <qvm/text.h>

#include "audit_commands.h"
#include "commands.h"

static const char audit_help[] =
    "usage: qvm audit [VM] [--agent ID] [--since T] [--json]\n"
    "       qvm audit verify [--json]\n\n"
    "Lists the audit log's records, oldest first: every create, start, stop, rm,\n"
    "snapshot, clone, exec, cp and ssh session, by whom, on which vm. The log is\n"
    "host-wide (the state dir's audit/audit.jsonl) and keeps the records of vms\n"
    "that are gone. 'qvm audit verify' checks its hash chain.\n\n"
    "  VM           only this vm's records (--vm NAME for a vm named 'verify')\n"
    "  --agent ID   only records made with this agent id (qvm --agent ID, or\n"
    "               $QVM_AGENT)\n"
    "  --since T    only records from T on: RFC 3339 (2026-11-29T18:00:00Z, or a\n"
    "               date), or an age: 30s, 10m, 2h, 7d\n"
    "  --json       print the records as a JSON array\n";

/* RFC 3339 (UTC 'Z' or +HH:MM, optional fraction) or a bare date; or an
 * age N[smhd] before now. Realtime µs; -1 if neither. */
static int64_t parse_since(const char *s) {
  char *end = NULL;
  long long n = strtoll(s, &end, 10);
  static const struct {
    char unit;
    long long secs;
  } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
  for (size_t i = 0; s[0] >= '0' && s[0] <= '9' && end && i < 4; i++)
    if (end[0] == units[i].unit && !end[1] && n >= 0 && n <= 36500LL * 86400 / units[i].secs)
      return ((long long)time(NULL) - n * units[i].secs) * 1000000;
  struct tm tm = {0};
  const char *rest = strptime(s, "%Y-%m-%d", &tm);
  if (!rest) return -1;
  if (*rest == 'T' || *rest == 't' || *rest == ' ') {
    if (!(rest = strptime(rest + 1, "%H:%M:%S", &tm))) return -1;
    if (*rest == '.')
      for (rest++; *rest >= '0' && *rest <= '9'; rest++) {
      }
    int sign = *rest == '+' ? -1 : 1, hh = 0, mm = 0, len = 0;
    if (*rest == 'Z' || *rest == 'z')
      rest++;
    else if ((*rest == '+' || *rest == '-') && sscanf(rest + 1, "%2d:%2d%n", &hh, &mm, &len) == 2 &&
             len == 5)
      rest += 6, tm.tm_min += sign * (hh * 60 + mm);
    else
      return -1;
  }
  return *rest ? -1 : (int64_t)timegm(&tm) * 1000000;
}

static const char *member(struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
             ? json_object_get_string(v)
             : NULL;
}

static void print_cell(const char *text, int width) {
  char *safe = qvm_text_for_terminal(text ? text : "-", strlen(text ? text : "-"), 0);
  printf(width ? "%-*s " : "%.*s", width ? width : 120, safe ? safe : "?");
  free(safe);
}

static void print_row(struct json_object *rec) {
  struct json_object *actor = NULL, *uid = NULL;
  char who[200] = "-", summary[512];
  if (json_object_object_get_ex(rec, "actor", &actor)) {
    const char *user = member(actor, "user"), *agent = member(actor, "agent");
    json_object_object_get_ex(actor, "uid", &uid);
    snprintf(who, sizeof who, "%s%s%s", user ? user : json_object_get_string(uid), agent ? "/" : "",
             agent ? agent : "");
  }
  audit_cli_summary(summary, sizeof summary, rec);
  print_cell(member(rec, "time"), 24);
  print_cell(who, 16);
  print_cell(member(rec, "vm"), 16);
  print_cell(member(rec, "action"), 16);
  print_cell(summary, 0);
  printf("\n");
}

static int list(const qvm_audit_filter *f, bool json) {
  char *text = NULL;
  qvm_error *err = NULL;
  if (qvm_audit_list(&text, f, &err) < 0) return qvm_cli_fail("audit", err, NULL);
  struct json_object *records = json_tokener_parse(text);
  free(text);
  if (!json_object_is_type(records, json_type_array)) {
    json_object_put(records);
    fprintf(stderr, "qvm audit: the library returned json that does not parse\n");
    return QVM_EXIT_FAILURE;
  }
  if (json) {
    qvm_cli_print_json(records);
  } else {
    printf("%-24s %-16s %-16s %-16s %s\n", "TIME", "ACTOR", "VM", "ACTION", "SUMMARY");
    for (size_t i = 0; i < json_object_array_length(records); i++)
      print_row(json_object_array_get_idx(records, i));
  }
  json_object_put(records);
  return QVM_EXIT_OK;
}

static int audit_run(int argc, char **argv) {
  static const struct option longopts[] = {{"agent", 1, 0, 'a'}, {"since", 1, 0, 's'},
                                           {"vm", 1, 0, 'v'},    {"json", 0, 0, 'j'},
                                           {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
  if (argc > 1 && !strcmp(argv[1], "verify")) return audit_verify_run(argc - 1, argv + 1);
  qvm_audit_filter f = QVM_AUDIT_FILTER_INIT;
  bool json = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'h') return printf("%s", audit_help), QVM_EXIT_OK;
    if (c == 'j')
      json = true;
    else if (c == 'a' && qvm_audit_agent_valid(optarg))
      f.agent = optarg;
    else if (c == 'a')
      return qvm_cli_usage_error("audit", "agent id '%s' is invalid", optarg);
    else if (c == 'v')
      f.vm = optarg;
    else if (c == 's' && (f.since_us = parse_since(optarg)) < 0)
      return qvm_cli_usage_error("audit",
                                 "--since '%s' is not a time (2026-11-29T18:00:00Z) or "
                                 "an age (30s, 10m, 2h, 7d)",
                                 optarg);
    else if (c != 's')
      return qvm_cli_bad_option("audit", c, argv);
  }
  if (optind < argc && f.vm) return qvm_cli_usage_error("audit", "give VM or --vm, not both");
  if (optind < argc) f.vm = argv[optind++];
  if (optind < argc) return qvm_cli_usage_error("audit", "unexpected argument '%s'", argv[optind]);
  if (f.vm && !qvm_vm_name_valid(f.vm))
    return qvm_cli_usage_error("audit", "vm name '%s' is invalid", f.vm);
  return list(&f, json);
}

const struct qvm_command qvm_cmd_audit = {"audit", "list or verify the audit log", audit_run};
