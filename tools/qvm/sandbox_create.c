/* SPDX-License-Identifier: MIT */
/* qvm sandbox create [NAME] --from GOLDEN [--ttl D] [--agent ID] [--label K=V]...
 *   [--net isolated|user|isolated-bridge[=BR]] [--allow-egress HOST:PORT[/tcp|udp]]...
 *   [--checkpoint-each] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "create_flags.h"
#include "sandbox_commands.h"

#define VERB "sandbox create"

static const char create_help[] =
    "usage: qvm sandbox create [NAME] --from GOLDEN [--ttl DURATION] [--agent ID]\n"
    "                          [--label KEY=VALUE]...\n"
    "                          [--net isolated|user|isolated-bridge[=BRIDGE]]\n"
    "                          [--allow-egress HOST:PORT[/tcp|/udp]]...\n"
    "                          [--checkpoint-each]\n"
    "                          [--timeout S] [--no-wait-cloud-init] [--json]\n"
    "\n"
    "Makes a sandbox and brings it up. GOLDEN is VM:SNAP (a clone of the vm's\n"
    "snapshot), a vm's name (a clone of its disk), or an image (a store name,\n"
    "digest, catalog alias, URL or path: created and brought up as 'qvm up').\n"
    "NAME defaults to sb- and 8 random hex digits. At its deadline the sandbox's\n"
    "own shim stops it and removes it with everything it has.\n"
    "\n"
    "  --from GOLDEN      what to start from (required)\n"
    "  --ttl DURATION     lifetime: Ns, Nm, Nh or Nd, 10s to 7d (default 30m)\n"
    "  --agent ID         the agent the sandbox is for ([A-Za-z0-9._@:-]{1,128})\n"
    "  --label KEY=VALUE  a label; repeatable, at most 64\n"
    "  --net isolated     user-mode networking with restrict=on (the default): the\n"
    "                     guest reaches nothing, not the host, not other vms, not\n"
    "                     the internet; only the host's SSH forward reaches it\n"
    "  --net user         user-mode networking with outbound NAT\n"
    "  --net isolated-bridge[=BRIDGE]\n"
    "                     a port of BRIDGE (default qvm0) with qvm's DHCP and NAT,\n"
    "                     cut off by the host's nftables: no other vm, no host\n"
    "                     service (only DHCP, ARP and replies to the host's own\n"
    "                     connections, such as SSH), nothing outside but\n"
    "                     --allow-egress; needs root or CAP_NET_ADMIN\n"
    "  --allow-egress HOST:PORT[/tcp|/udp]\n"
    "                     with isolated-bridge: the guest may open connections to\n"
    "                     HOST (an IPv4 address or CIDR, no DNS names) on PORT\n"
    "                     (tcp unless /udp); repeatable, at most 32\n"
    "  --checkpoint-each  take a checkpoint before every command run in it ('qvm\n"
    "                     exec', qvmd's exec), as 'qvm exec --checkpoint' does: 'qvm\n"
    "                     rollback NAME' undoes the last one; the last 5 are kept; a\n"
    "                     command whose checkpoint fails does not run\n"
    "  --timeout S        the whole up (default 600)\n"
    "  --no-wait-cloud-init  stop waiting once SSH works\n"
    "  --json             print {\"name\", \"state\", \"agent\", \"labels\", \"expires_at\",\n"
    "                     \"expires_at_us\", \"expires_in_s\", \"from\", \"kind\", \"ttl_s\",\n"
    "                     \"net\", \"ssh_port\", \"checkpoint_each\"}\n";

typedef struct create_args {
  qvm_sandbox_create_options o;
  qvm_up_options up;
  qvm_vm_label labels[QVM_VM_LABELS_MAX];
  const char *egress[QVM_VM_EGRESS_MAX];
  const char *name;
  bool json;
} create_args;

static void create_args_clear(create_args *a) {
  for (size_t i = 0; i < a->o.n_labels; i++) qvm_vm_label_clear(&a->labels[i]);
}

static int parse_option(create_args *a, int c, char **argv) {
  qvm_error *err = NULL;
  switch (c) {
  case 'f': a->o.from = optarg; return 0;
  case 'T':
    if (qvm_sandbox_duration_parse(&a->o.ttl_s, optarg, &err) < 0) {
      int r = qvm_cli_usage_error(VERB, "--ttl: %s", qvm_error_message(err));
      qvm_error_free(err);
      return r;
    }
    return 0;
  case 'a': return qvm_cli_agent_arg(VERB, optarg) ?: (a->o.agent = optarg, 0);
  case 'l': return qvm_cli_label_arg(VERB, a->labels, &a->o.n_labels, optarg);
  case 'n':
    if (!strcmp(optarg, "isolated")) return a->o.net = QVM_SANDBOX_NET_ISOLATED, 0;
    if (!strcmp(optarg, "user")) return a->o.net = QVM_SANDBOX_NET_USER, 0;
    if (!strcmp(optarg, "isolated-bridge")) return a->o.net = QVM_SANDBOX_NET_ISOLATED_BRIDGE, 0;
    if (!strncmp(optarg, "isolated-bridge=", 16) && optarg[16]) {
      a->o.bridge = optarg + 16;
      return a->o.net = QVM_SANDBOX_NET_ISOLATED_BRIDGE, 0;
    }
    return qvm_cli_usage_error(VERB,
                               "--net '%s' is unknown: use isolated, user or "
                               "isolated-bridge[=BRIDGE]",
                               optarg);
  case 'e':
    if (a->o.n_allow_egress == QVM_VM_EGRESS_MAX)
      return qvm_cli_usage_error(VERB, "--allow-egress '%s': at most %d entries", optarg,
                                 QVM_VM_EGRESS_MAX);
    a->egress[a->o.n_allow_egress++] = optarg;
    return 0;
  case 'W': a->up.wait_cloud_init = false; return 0;
  case 'C': a->o.checkpoint_each = true; return 0;
  case 'j': a->json = true; return 0;
  case 't': {
    int v = 0, rc = qvm_cli_parse_seconds(VERB, optarg, 1, &v);
    if (rc) return rc;
    a->up.timeout_ms = v * 1000;
    return 0;
  }
  default: return qvm_cli_bad_option(VERB, c, argv);
  }
}

static int parse(create_args *a, int argc, char **argv) {
  static const struct option longopts[] = {{"from", 1, 0, 'f'},
                                           {"ttl", 1, 0, 'T'},
                                           {"agent", 1, 0, 'a'},
                                           {"label", 1, 0, 'l'},
                                           {"net", 1, 0, 'n'},
                                           {"timeout", 1, 0, 't'},
                                           {"json", 0, 0, 'j'},
                                           {"help", 0, 0, 'h'},
                                           {"no-wait-cloud-init", 0, 0, 'W'},
                                           {"allow-egress", 1, 0, 'e'},
                                           {"checkpoint-each", 0, 0, 'C'},
                                           {0, 0, 0, 0}};
  int c, r = 0;
  optind = 0;
  opterr = 0;
  while (!r && (c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'h') return fputs(create_help, stdout), -1;
    r = parse_option(a, c, argv);
  }
  if (r) return r;
  if (!a->o.from) return qvm_cli_usage_error(VERB, "missing --from GOLDEN");
  if (a->o.n_allow_egress && a->o.net != QVM_SANDBOX_NET_ISOLATED_BRIDGE)
    return qvm_cli_usage_error(VERB, "--allow-egress needs --net isolated-bridge");
  if (argc - optind > 1)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 1]);
  a->name = optind < argc ? argv[optind] : NULL;
  return 0;
}

static int print_result(const char *text, bool json) {
  struct json_object *o = json_tokener_parse(text), *v = NULL;
  if (!o) {
    fprintf(stderr, "qvm %s: the library returned json that does not parse\n", VERB);
    return QVM_EXIT_FAILURE;
  }
  if (json) {
    qvm_cli_print_json(o);
  } else {
    qvm_cli_json_neutralize(o);
    char when[96];
    const char *at =
        json_object_object_get_ex(o, "expires_at", &v) ? json_object_get_string(v) : "?";
    sandbox_cli_expiry(when, sizeof when, at,
                       json_object_object_get_ex(o, "expires_in_s", &v) ? json_object_get_int64(v)
                                                                        : 0);
    printf("sandbox '%s' is up; it expires at %s\n",
           json_object_object_get_ex(o, "name", &v) ? json_object_get_string(v) : "?", when);
    if (json_object_object_get_ex(o, "checkpoint_each", &v) && json_object_get_boolean(v))
      printf("every command run in it takes a checkpoint first\n");
  }
  json_object_put(o);
  return QVM_EXIT_OK;
}

static int create_run(int argc, char **argv) {
  __attribute__((cleanup(create_args_clear)))
  create_args a = {.o = QVM_SANDBOX_CREATE_OPTIONS_INIT, .up = QVM_UP_OPTIONS_INIT};
  int r = parse(&a, argc, argv);
  if (r) return r < 0 ? QVM_EXIT_OK : r;
  a.o.labels = a.labels;
  a.o.allow_egress = a.egress;
  a.o.up = &a.up;
  char *out = NULL;
  qvm_error *err = NULL;
  if (qvm_sandbox_create(&out, a.name, &a.o, &err) < 0) return qvm_cli_fail(VERB, err, NULL);
  r = print_result(out, a.json);
  free(out);
  return r;
}

const struct qvm_command qvm_cmd_sandbox_create = {
    "create", "make a sandbox from an image, a vm or a vm's snapshot, and bring it up", create_run};
