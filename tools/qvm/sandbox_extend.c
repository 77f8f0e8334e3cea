/* SPDX-License-Identifier: MIT */
/* qvm sandbox extend NAME DURATION [--json] */
#include <getopt.h>
#include <stdio.h>
#include <time.h>

#include "sandbox_commands.h"

#define VERB "sandbox extend"

static const char extend_help[] =
    "usage: qvm sandbox extend NAME DURATION [--json]\n"
    "\n"
    "Moves the sandbox's deadline DURATION (Ns, Nm, Nh or Nd; 10s to 7d) later,\n"
    "to at most 7d from now. vm.json is written under the vm's lock, then its\n"
    "running shim re-reads it. A sandbox whose deadline passed cannot be\n"
    "extended.\n"
    "\n"
    "  --json   print {\"name\", \"expires_at_us\"}\n";

static int extend_run(int argc, char **argv) {
  static const struct option longopts[] = {{"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  bool json = false;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'h') return fputs(extend_help, stdout), QVM_EXIT_OK;
    if (c != 'j') return qvm_cli_bad_option(VERB, c, argv);
    json = true;
  }
  if (argc - optind < 2)
    return qvm_cli_usage_error(VERB,
                               optind < argc ? "missing the duration" : "missing the sandbox name");
  if (argc - optind > 2)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 2]);
  const char *name = argv[optind];
  int64_t by = 0, at = 0;
  qvm_error *err = NULL;
  if (qvm_sandbox_duration_parse(&by, argv[optind + 1], &err) < 0) {
    int r = qvm_cli_usage_error(VERB, "%s", qvm_error_message(err));
    qvm_error_free(err);
    return r;
  }
  if (qvm_sandbox_extend(&at, name, by, &err) < 0)
    return qvm_cli_fail(VERB, err, qvm_cli_vm_hint(err));
  if (json) {
    printf("{\"name\": ");
    qvm_cli_json_string(stdout, name);
    printf(", \"expires_at_us\": %lld}\n", (long long)at);
  } else {
    char when[32] = "?";
    time_t t = (time_t)(at / 1000000);
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("sandbox '%s' now expires at %s\n", name, when);
  }
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_sandbox_extend = {"extend", "move a sandbox's deadline later",
                                                   extend_run};
