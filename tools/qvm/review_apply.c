/* SPDX-License-Identifier: MIT */
/* qvm review apply ID (--target VM | --inventory FILE) [--timeout S] [--json] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "review_commands.h"

#define VERB "review apply"

static const char apply_help[] =
    "usage: qvm review apply ID (--target VM | --inventory FILE) [--timeout S] [--json]\n"
    "\n"
    "Runs the change set's playbook with ansible-playbook, only when it is\n"
    "approved and its diff and playbook still have the sha256s the approval was\n"
    "given for. The result (exit status, the recap's counts) is recorded in the\n"
    "change set and the audit log; ansible's output goes to the log it names.\n"
    "\n"
    "  --target VM       a running vm of qvm's: qvm writes the inventory and a\n"
    "                    known_hosts with its pinned host key (StrictHostKeyChecking\n"
    "                    yes) and uses qvm's client key for it\n"
    "  --inventory FILE  an Ansible inventory of your own\n"
    "  --timeout S       stop ansible after S seconds (default 1800)\n"
    "  --json            print {\"id\", \"exit\", \"ok\", \"changed\", \"failed\",\n"
    "                    \"unreachable\", \"log\"}\n"
    "\n"
    "Exits 0 when ansible-playbook succeeded, 1 when it failed.\n";

static int apply_run(int argc, char **argv) {
  static const struct option longopts[] = {{"target", 1, 0, 't'},  {"inventory", 1, 0, 'i'},
                                           {"timeout", 1, 0, 'T'}, {"json", 0, 0, 'j'},
                                           {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
  qvm_review_apply_options o = QVM_REVIEW_APPLY_OPTIONS_INIT;
  bool json = false;
  int c, secs = 1800;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    switch (c) {
    case 't': o.target = optarg; break;
    case 'i': o.inventory = optarg; break;
    case 'T': {
      int r = qvm_cli_parse_seconds(VERB, optarg, 1, &secs);
      if (r) return r;
      break;
    }
    case 'j': json = true; break;
    case 'h': return printf("%s", apply_help), QVM_EXIT_OK;
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  if (optind >= argc) return qvm_cli_usage_error(VERB, "missing the review id");
  if (argc - optind > 1)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 1]);
  if (!o.target == !o.inventory)
    return qvm_cli_usage_error(VERB, "give --target VM or --inventory FILE");
  o.timeout_ms = secs * 1000;
  qvm_error *err = NULL;
  char *text = NULL;
  if (qvm_review_apply(&text, argv[optind], &o, &err) < 0) return review_cli_fail(VERB, err);
  struct json_object *res = json_tokener_parse(text), *v = NULL;
  free(text);
  int ex = json_object_object_get_ex(res, "exit", &v) ? json_object_get_int(v) : -1;
  if (json) {
    qvm_cli_print_json(res);
  } else {
    long ch = json_object_object_get_ex(res, "changed", &v) ? json_object_get_int64(v) : -1;
    long ok = json_object_object_get_ex(res, "ok", &v) ? json_object_get_int64(v) : -1;
    long fa = json_object_object_get_ex(res, "failed", &v) ? json_object_get_int64(v) : -1;
    long un = json_object_object_get_ex(res, "unreachable", &v) ? json_object_get_int64(v) : -1;
    const char *log = json_object_object_get_ex(res, "log", &v) ? json_object_get_string(v) : "?";
    printf("review '%s' applied: exit %d, ok=%ld changed=%ld failed=%ld unreachable=%ld\n"
           "ansible's output: %s\n",
           argv[optind], ex, ok, ch, fa, un, log);
  }
  json_object_put(res);
  if (ex != 0) fprintf(stderr, "qvm %s: ansible-playbook failed (exit %d)\n", VERB, ex);
  return ex == 0 ? QVM_EXIT_OK : QVM_EXIT_FAILURE;
}

const struct qvm_command qvm_cmd_review_apply = {"apply", "run an approved change set's playbook",
                                                 apply_run};
