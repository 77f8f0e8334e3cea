/* SPDX-License-Identifier: MIT */
/* qvm ip: the guest's address on a bridge, and where qvm learned it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/text.h>
#include <qvm/vm.h>

#include "commands.h"

static const char ip_help[] =
    "usage: qvm ip NAME [--wait SECONDS] [--json]\n\n"
    "Prints the IPv4 address of a vm on a bridge (--net bridge). It answers as\n"
    "soon as qvm's DHCP server has sent the lease (or the watcher has seen an\n"
    "external server's), without polling.\n\n"
    "  --wait SECONDS   wait up to SECONDS for an address (0: answer now, the\n"
    "                   default; -1: wait as long as the vm runs)\n"
    "  --json           print {\"name\",\"ip\",\"source\"}; on failure\n"
    "                   {\"name\",\"error\",\"hint\",\"code\",\"exit_code\"} (same exit\n"
    "                   code; \"code\" is libqvm's error name, e.g. \"ETIMEOUT\")\n\n"
    "source: qvm-dhcp (qvm's DHCP server sent the ACK), dhcp-watch (an external\n"
    "server's ACK, seen on the tap), neighbour (the host's neighbour table) or\n"
    "guest-agent (the QEMU guest agent). A vm on user networking has no address\n"
    "of its own on the host: use 'qvm ssh NAME'.\n";

static int parse_wait(const char *s, int *out_ms) {
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < -1 || v > 24 * 3600)
    return qvm_cli_usage_error("ip", "--wait '%s' is invalid: use seconds from 0 to 86400, or -1",
                               s);
  *out_ms = v < 0 ? -1 : (int)v * 1000;
  return 0;
}

static const char *hint_for(int code) {
  switch (code) {
  case QVM_ETIMEOUT: return "give a longer --wait, or look at the guest's console: qvm logs NAME";
  case QVM_ENOTFOUND: return QVM_CLI_HINT_NO_VM;
  default: return NULL;
  }
}

/* --json on failure: the same message, as an object on stdout, so that a
 * script reading stdout gets JSON either way. stderr still has the text. */
static void print_json_error(const char *name, const qvm_error *err, const char *hint) {
  int code = qvm_error_code(err);
  fputs("{\"name\":", stdout);
  qvm_cli_json_string(stdout, name);
  fputs(",\"error\":", stdout);
  qvm_cli_json_string(stdout, err ? qvm_error_message(err) : "failed");
  if (hint) {
    fputs(",\"hint\":", stdout);
    qvm_cli_json_string(stdout, hint);
  }
  printf(",\"code\":\"%s\",\"exit_code\":%d}\n", qvm_error_code_name(code ? code : QVM_ESYS),
         qvm_cli_exit_code(code ? code : QVM_ESYS));
}

static int ip_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"wait", 1, 0, 'w'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int timeout_ms = 0, c, rc;
  bool json = false;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    switch (c) {
    case 'w':
      if ((rc = parse_wait(optarg, &timeout_ms))) return rc;
      break;
    case 'j': json = true; break;
    case 'h': return printf("%s", ip_help), QVM_EXIT_OK;
    default: return qvm_cli_bad_option("ip", c, argv);
    }
  }
  if (optind >= argc) return qvm_cli_usage_error("ip", "missing the vm name");
  if (optind + 1 < argc)
    return qvm_cli_usage_error("ip", "unexpected argument '%s'", argv[optind + 1]);
  qvm_vm *vm = NULL;
  qvm_error *err = NULL;
  char *ip = NULL, *source = NULL;
  if (qvm_cli_open(&vm, argv[optind], &err) < 0 ||
      qvm_vm_ip(&ip, &source, vm, timeout_ms, &err) < 0) {
    qvm_vm_free(vm);
    const char *hint = qvm_cli_error_hint(err);
    if (!hint) hint = hint_for(qvm_error_code(err));
    if (json) print_json_error(argv[optind], err, hint);
    return qvm_cli_fail("ip", err, hint);
  }
  if (json) {
    fputs("{\"name\":", stdout);
    qvm_cli_json_string(stdout, qvm_vm_name(vm));
    fputs(",\"ip\":", stdout);
    qvm_cli_json_string(stdout, ip);
    fputs(",\"source\":", stdout);
    qvm_cli_json_string(stdout, source);
    fputs("}\n", stdout);
  } else { /* the guest may have chosen it (agent): never raw to a terminal */
    char *safe = qvm_text_for_terminal(ip, strlen(ip), 0);
    printf("%s\n", safe ? safe : "");
    free(safe);
  }
  free(ip);
  free(source);
  qvm_vm_free(vm);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_ip = {"ip", "print a bridged vm's ip address", ip_run};
