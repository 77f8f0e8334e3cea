/* SPDX-License-Identifier: MIT */
/* qvm set VM [--cpus N] [--memory SIZE] [--cpu MODEL] [--publish SPEC]...
 *            [--unpublish SPEC]... [--json] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/vm.h>

#include "commands.h"
#include "create_flags.h"

#define VERB "set"

static const char set_help[] =
    "usage: qvm set VM [--cpus N] [--memory SIZE] [--cpu MODEL]\n"
    "                  [--publish SPEC]... [--unpublish SPEC]... [--json]\n"
    "\n"
    "Changes a vm's virtual CPUs, memory, CPU model and published ports\n"
    "(user net). They are recorded in its\n"
    "vm.json and QEMU gets them at the vm's next start: a running vm keeps what\n"
    "it has until 'qvm restart VM'. A snapshot with RAM taken before a memory or\n"
    "CPU model change cannot be restored after it (QEMU refuses it, or the\n"
    "guest would run on a CPU it did not probe). The disk grows with\n"
    "'qvm resize'.\n"
    "\n"
    "  --cpus N         virtual CPUs, 1 to 255\n"
    "  --memory SIZE    memory, e.g. 512M, 2G (16M to 16T)\n"
    "  --cpu MODEL      auto (qemu64 under TCG, host under KVM) or a QEMU model\n"
    "                   with features, e.g. Nehalem, max, qemu64,+sse4.2\n"
    "  --publish SPEC   forward [IP:]HOST:GUEST[/udp] (as create's); repeatable\n"
    "  --unpublish SPEC remove the forward of [IP:]HOST[:GUEST][/udp] (a bare\n"
    "                   HOST port is 127.0.0.1's); repeatable, done first\n"
    "  --json           print {\"name\", \"changes\": {\"cpus\": [was, now],\n"
    "                   \"memory_mib\": [was, now], \"cpu\": [was, now],\n"
    "                   \"ports\": [[was...], [now...]]},\n"
    "                   \"running\", \"ram_snapshots\"}\n";

#define PORTS_MAX 64

/* --publish SPEC; --unpublish SPEC or a bare HOST port[/udp]. */
static int add_port(qvm_vm_publish *v, size_t *n, bool publish, const char *text) {
  const char *flag = publish ? "--publish" : "--unpublish";
  if (*n >= PORTS_MAX) return qvm_cli_usage_error(VERB, "more than %d %s", PORTS_MAX, flag);
  qvm_vm_publish p = {0};
  qvm_error *err = NULL;
  /* --unpublish HOST[/udp] or IP:HOST[/udp] (IP has dots, HOST none): as
   * HOST:1 or IP:HOST:1, then any guest port. */
  const char *colon = strchr(text, ':');
  bool host_only =
      !publish &&
      (!colon || (!strchr(colon + 1, ':') && memchr(text, '.', (size_t)(colon - text))));
  if (host_only) {
    char spec[64];
    const char *slash = strchr(text, '/');
    int len = slash ? (int)(slash - text) : (int)strlen(text);
    if (len > 21 ||
        snprintf(spec, sizeof spec, "%.*s:1%s", len, text, slash ? slash : "") >= (int)sizeof spec)
      return qvm_cli_usage_error(VERB, "%s '%s' is invalid: use [IP:]HOST[:GUEST][/udp]", flag,
                                 text);
    if (qvm_vm_publish_parse(&p, spec, &err) == 0) p.guest_port = 0;
  } else {
    qvm_vm_publish_parse(&p, text, &err);
  }
  if (err) {
    int rc = qvm_cli_usage_error(VERB, "%s: %s", flag, qvm_error_message(err));
    qvm_error_free(err);
    return rc;
  }
  v[(*n)++] = p;
  return 0;
}

/* The library's "ADDR:HOST:GUEST/PROTO" strings (checked by it). */
static void print_ports(struct json_object *a) {
  size_t n = json_object_array_length(a);
  if (!n) fputs(" none", stdout);
  for (size_t i = 0; i < n; i++)
    printf("%s %s", i ? "," : "", json_object_get_string(json_object_array_get_idx(a, i)));
}

static int set_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"cpus", required_argument, 0, 'c'},    {"memory", required_argument, 0, 'm'},
      {"cpu", required_argument, 0, 'C'},     {"json", no_argument, 0, 'j'},
      {"publish", required_argument, 0, 'p'}, {"unpublish", required_argument, 0, 'u'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  qvm_vm_set_options opts = QVM_VM_SET_OPTIONS_INIT;
  static qvm_vm_publish pub[PORTS_MAX], unpub[PORTS_MAX];
  opts.publish = pub;
  opts.unpublish = unpub;
  bool json = false;
  int c, r;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    switch (c) {
    case 'c':
      if ((r = qvm_cli_parse_cpus(VERB, optarg, &opts.cpus))) return r;
      break;
    case 'm':
      if ((r = qvm_cli_parse_size(VERB, "--memory", "memory", optarg, 16u << 20, &opts.memory)))
        return r;
      break;
    case 'C': opts.cpu = optarg; break;
    case 'p':
    case 'u':
      if ((r = add_port(c == 'p' ? pub : unpub, c == 'p' ? &opts.n_publish : &opts.n_unpublish,
                        c == 'p', optarg)))
        return r;
      break;
    case 'j': json = true; break;
    case 'h': return fputs(set_help, stdout), QVM_EXIT_OK;
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  if (optind >= argc) return qvm_cli_usage_error(VERB, "missing the vm's name");
  if (argc - optind > 1)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 1]);
  if (!opts.cpus && !opts.memory && !opts.cpu && !opts.n_publish && !opts.n_unpublish)
    return qvm_cli_usage_error(
        VERB, "nothing to change: give --cpus, --memory, --cpu, --publish or --unpublish");
  qvm_vm *vm = NULL;
  qvm_error *err = NULL;
  if (qvm_cli_open(&vm, argv[optind], &err) < 0)
    return qvm_cli_fail(VERB, err, qvm_cli_vm_hint(err));
  char *out = NULL;
  r = qvm_vm_set(&out, vm, &opts, &err);
  if (r < 0) {
    qvm_vm_free(vm);
    return qvm_cli_fail(VERB, err, NULL); /* the vm was found: a NOTFOUND here is a port */
  }
  struct json_object *o = json_tokener_parse(out), *ch = NULL, *v = NULL;
  free(out);
  int rc = QVM_EXIT_OK;
  if (!o) {
    fprintf(stderr, "qvm %s: the library returned json that does not parse\n", VERB);
    rc = QVM_EXIT_FAILURE;
  } else if (json) {
    qvm_cli_print_json(o);
  } else {
    json_object_object_get_ex(o, "changes", &ch);
    if (json_object_object_get_ex(ch, "cpus", &v))
      printf("cpus: %s -> %s\n", json_object_get_string(json_object_array_get_idx(v, 0)),
             json_object_get_string(json_object_array_get_idx(v, 1)));
    if (json_object_object_get_ex(ch, "memory_mib", &v))
      printf("memory: %sM -> %sM\n", json_object_get_string(json_object_array_get_idx(v, 0)),
             json_object_get_string(json_object_array_get_idx(v, 1)));
    if (json_object_object_get_ex(ch, "cpu", &v))
      printf("cpu: %s -> %s\n", json_object_get_string(json_object_array_get_idx(v, 0)),
             json_object_get_string(json_object_array_get_idx(v, 1)));
    if (json_object_object_get_ex(ch, "ports", &v)) {
      fputs("ports:", stdout);
      print_ports(json_object_array_get_idx(v, 0));
      fputs(" ->", stdout);
      print_ports(json_object_array_get_idx(v, 1));
      putchar('\n');
    }
    if (json_object_object_get_ex(o, "running", &v) && json_object_get_boolean(v))
      printf("vm '%s' runs with the old values until 'qvm restart %s'\n", qvm_vm_name(vm),
             qvm_vm_name(vm));
    if (json_object_object_get_ex(o, "ram_snapshots", &v) && json_object_get_int(v) > 0 &&
        (json_object_object_get_ex(ch, "memory_mib", NULL) ||
         json_object_object_get_ex(ch, "cpu", NULL)))
      fprintf(stderr,
              "warning: its %d snapshot(s) with RAM cannot be restored with the new memory size "
              "or CPU model\n",
              json_object_get_int(v));
  }
  json_object_put(o);
  qvm_vm_free(vm);
  return rc;
}

const struct qvm_command qvm_cmd_set = {
    "set", "change a vm's cpus, memory and CPU model (next start)", set_run};
