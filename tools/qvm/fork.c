/* SPDX-License-Identifier: MIT */
/* qvm fork SRC [--count N] [--prefix P] [--no-wait] [--timeout S] [--json] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/vm.h>

#include "commands.h"
#include "progress.h"

#define VERB "fork"

static const char fork_help[] =
    "usage: qvm fork SRC [--count N] [--prefix P] [--no-wait] [--timeout S]\n"
    "                [--json] [--quiet]\n"
    "\n"
    "Makes N forks of running vm SRC that resume from its memory instead of\n"
    "booting: SRC pauses for a moment while its disk gets a temporary snapshot\n"
    "and QEMU saves its RAM and devices to a file, then runs on. SRC's disk\n"
    "at that instant becomes an unnamed store image; each fork is a vm over it\n"
    "with its own disk overlay, its own user-mode network and SSH port, and\n"
    "every process SRC had. A fork keeps the guest's identity (MAC, address,\n"
    "hostname, host key, instance-id, SRC's ssh client key); qvm pins the host\n"
    "key for it under its own name. Its clock is set from the host through the\n"
    "guest agent when SRC's guest runs one. Forks are named P-1 .. P-N.\n"
    "SRC must run with user or no networking. After a failure nothing is left\n"
    "and SRC runs as before. Stopping a fork and starting it again boots it\n"
    "from its disk.\n"
    "\n"
    "  --count N, -n N  how many forks (1 to 64; default 1)\n"
    "  --prefix P       name prefix (default SRC)\n"
    "  --no-wait        return once each fork runs, without an SSH login\n"
    "  --timeout S      per fork: start, clock and SSH (default 60)\n"
    "  --json           print {\"source\", \"image\", \"paused_ms\", \"state_bytes\",\n"
    "                   \"forks\": [{\"name\", \"uuid\", \"ssh_port\", \"resumed_ms\",\n"
    "                   \"clock_ms\", \"ready_ms\", \"clock\"}]}; progress as JSON\n"
    "                   lines on stderr\n"
    "  --quiet, -q      no progress\n";

static int parse_count(const char *s, unsigned *out) {
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 1 || v > QVM_VM_FORK_MAX) return -1;
  *out = (unsigned)v;
  return 0;
}

static void print_table(struct json_object *o) {
  struct json_object *forks = NULL, *v = NULL;
  qvm_cli_json_neutralize(o);
  printf("forked vm '%s': paused %lld ms, state %.1f MiB, image %s\n",
         json_object_object_get_ex(o, "source", &v) ? json_object_get_string(v) : "?",
         json_object_object_get_ex(o, "paused_ms", &v) ? (long long)json_object_get_int64(v) : -1LL,
         json_object_object_get_ex(o, "state_bytes", &v)
             ? (double)json_object_get_uint64(v) / (1024.0 * 1024.0)
             : 0.0,
         json_object_object_get_ex(o, "image", &v) ? json_object_get_string(v) : "?");
  printf("%-24s %-9s %-9s %s\n", "NAME", "SSH", "READY", "CLOCK");
  if (!json_object_object_get_ex(o, "forks", &forks)) return;
  for (size_t i = 0; i < json_object_array_length(forks); i++) {
    struct json_object *f = json_object_array_get_idx(forks, i), *n = NULL, *p = NULL, *r = NULL,
                       *c = NULL;
    json_object_object_get_ex(f, "name", &n);
    json_object_object_get_ex(f, "ssh_port", &p);
    json_object_object_get_ex(f, "ready_ms", &r);
    json_object_object_get_ex(f, "clock", &c);
    char port[16] = "-", ready[24];
    if (p) snprintf(port, sizeof port, "%d", json_object_get_int(p));
    snprintf(ready, sizeof ready, "%.2f s", (double)json_object_get_int64(r) / 1000.0);
    printf("%-24s %-9s %-9s %s\n", n ? json_object_get_string(n) : "?", port, ready,
           c ? json_object_get_string(c) : "?");
  }
}

static int fork_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"count", required_argument, 0, 'n'}, {"prefix", required_argument, 0, 'p'},
      {"no-wait", no_argument, 0, 'W'},     {"timeout", required_argument, 0, 't'},
      {"json", no_argument, 0, 'j'},        {"quiet", no_argument, 0, 'q'},
      {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
  qvm_vm_fork_options opts = QVM_VM_FORK_OPTIONS_INIT;
  bool json = false, quiet = false;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":hqn:", longopts)) != -1) {
    switch (c) {
    case 'n':
      if (parse_count(optarg, &opts.count) < 0)
        return qvm_cli_usage_error(VERB, "count '%s' is invalid: use 1 to %d", optarg,
                                   QVM_VM_FORK_MAX);
      break;
    case 'p': opts.prefix = optarg; break;
    case 'W': opts.no_wait = true; break;
    case 'j': json = true; break;
    case 'q': quiet = true; break;
    case 't': {
      int v = 0, rc = qvm_cli_parse_seconds(VERB, optarg, 1, &v);
      if (rc) return rc;
      opts.timeout_ms = v * 1000;
      break;
    }
    case 'h': return fputs(fork_help, stdout), QVM_EXIT_OK;
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  if (optind >= argc) return qvm_cli_usage_error(VERB, "missing the source vm SRC");
  if (argc - optind > 1)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 1]);
  qvm_cli_progress prog;
  qvm_cli_progress_init(&prog, qvm_cli_progress_mode_for(quiet, json));
  opts.progress = qvm_cli_image_progress;
  opts.userdata = &prog;
  char *out = NULL;
  qvm_error *err = NULL;
  int r = qvm_vm_fork(&out, argv[optind], &opts, &err);
  qvm_cli_progress_end(&prog);
  if (r < 0) {
    const char *cls = qvm_error_class(err);
    const char *hint = qvm_cli_vm_hint(err);
    if (cls && !strcmp(cls, "VmNotRunning"))
      hint = "start it first (qvm start SRC), or clone a stopped vm: qvm clone SRC DST";
    if (cls && !strcmp(cls, "NoVmGenId"))
      hint = "restart it (qvm restart SRC): vms qvm starts now have one";
    if (cls && !strcmp(cls, "BridgeNetwork")) hint = "use qvm clone for a vm on a bridge";
    return qvm_cli_fail(VERB, err, hint);
  }
  int rc = QVM_EXIT_OK;
  struct json_object *o = json_tokener_parse(out);
  if (!o) {
    fprintf(stderr, "qvm %s: the library returned json that does not parse\n", VERB);
    rc = QVM_EXIT_FAILURE;
  } else if (json) {
    qvm_cli_print_json(o);
  } else {
    print_table(o);
  }
  json_object_put(o);
  free(out);
  return rc;
}

const struct qvm_command qvm_cmd_fork = {
    "fork", "fork a running vm into N vms that resume from its memory", fork_run};
