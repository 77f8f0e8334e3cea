/* SPDX-License-Identifier: MIT */
/* qvm review create VM [--from SNAP | --from-image] [--agent ID] [--json] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/audit.h>

#include "review_commands.h"

#define VERB "review create"

static const char create_help[] =
    "usage: qvm review create VM [--from SNAP | --from-image] [--agent ID] [--no-verify]\n"
    "                         [--timeout S] [--json]\n"
    "\n"
    "Records what changed in VM (qvm diff, read from its disk on the host) and an\n"
    "Ansible playbook that makes the same change on a machine that starts from\n"
    "the same base, as a change set with status 'pending'. Nothing is applied\n"
    "until someone other than its author approves it (qvm review approve).\n"
    "\n"
    "  --from SNAP     the base is the vm's internal snapshot SNAP\n"
    "  --from-image    the base is the image the vm was made from (default)\n"
    "  --agent ID      the author's agent id (default: qvm --agent, $QVM_AGENT)\n"
    "  --verify        replay first (the default with --from SNAP): clone SNAP\n"
    "                  into a throwaway vm, apply the playbook to it, diff it\n"
    "                  against VM; the status is 'pending' only when nothing\n"
    "                  differs, else 'pending-with-differences' with the\n"
    "                  differences listed. Takes a boot of the clone.\n"
    "  --no-verify     no replay\n"
    "  --timeout S     --verify: the clone's boot and login (default 300)\n"
    "  --json          print {\"id\", \"vm\", \"status\", \"changes\"}\n";

static int create_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"from", 1, 0, 'f'}, {"from-image", 0, 0, 'I'}, {"agent", 1, 0, 'a'},
      {"json", 0, 0, 'j'}, {"verify", 0, 0, 'V'},     {"timeout", 1, 0, 'T'},
      {"help", 0, 0, 'h'}, {"no-verify", 0, 0, 'n'},  {0, 0, 0, 0}};
  qvm_review_create_options o = QVM_REVIEW_CREATE_OPTIONS_INIT;
  bool json = false, from_image = false;
  int verify = -1; /* -1: the default, a replay when the base is a snapshot */
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    switch (c) {
    case 'f': o.from_snapshot = optarg; break;
    case 'I': from_image = true; break;
    case 'a':
      if (!qvm_audit_agent_valid(optarg))
        return qvm_cli_usage_error(VERB, "agent id '%s' is invalid", optarg);
      o.agent = optarg;
      break;
    case 'j': json = true; break;
    case 'V': verify = 1; break;
    case 'n': verify = 0; break;
    case 'T': {
      int secs = 0, r = qvm_cli_parse_seconds(VERB, optarg, 10, &secs);
      if (r) return r;
      o.timeout_ms = secs * 1000;
      break;
    }
    case 'h': return printf("%s", create_help), QVM_EXIT_OK;
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  o.verify = verify == 1 || (verify < 0 && o.from_snapshot);
  if (o.verify && !o.from_snapshot)
    return qvm_cli_usage_error(VERB,
                               "--verify needs --from SNAP: a replay clones the vm at a snapshot, "
                               "not at its image (snapshot the vm before it changes, then give "
                               "--from SNAP)");
  if (from_image && o.from_snapshot)
    return qvm_cli_usage_error(VERB, "give --from SNAP or --from-image, not both");
  if (optind >= argc) return qvm_cli_usage_error(VERB, "missing the vm");
  if (argc - optind > 1)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 1]);
  const char *vm = argv[optind];
  /* The audit records of this command carry the author's agent id too. */
  if (o.agent) setenv("QVM_AGENT", o.agent, 1);
  qvm_error *err = NULL;
  char *id = NULL;
  if (qvm_review_create(&id, vm, &o, &err) < 0) return review_cli_fail(VERB, err);
  if (json) {
    char *meta = NULL;
    if (qvm_review_show(&meta, id, &err) < 0) {
      free(id);
      return review_cli_fail(VERB, err);
    }
    puts(meta);
    free(meta);
  } else {
    char *meta = NULL;
    bool diffs = qvm_review_show(&meta, id, NULL) == 0 && strstr(meta, "pending-with-differences");
    free(meta);
    /* Say when nothing replayed it: with the image as the base (the
     * default) there is no replay unless the vm had a snapshot to clone. */
    const char *state = diffs      ? "pending, but the replay left differences"
                        : o.verify ? "pending approval, verified by a replay"
                        : o.from_snapshot
                            ? "pending approval, not verified by a replay (--no-verify)"
                            : "pending approval, not verified by a replay (the base is the image: "
                              "replays need --from SNAP)";
    printf("review '%s' created for vm '%s': %s ('qvm review show %s')\n", id, vm, state, id);
  }
  free(id);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_review_create = {
    "create", "record a vm's changes and their playbook as a change set", create_run};
