/* SPDX-License-Identifier: MIT */
/* qvm set VM [--cpus N] [--memory SIZE] [--cpu MODEL] [--json] */
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
    "usage: qvm set VM [--cpus N] [--memory SIZE] [--cpu MODEL] [--json]\n"
    "\n"
    "Changes a vm's virtual CPUs, memory and CPU model. They are recorded in its\n"
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
    "  --json           print {\"name\", \"changes\": {\"cpus\": [was, now],\n"
    "                   \"memory_mib\": [was, now], \"cpu\": [was, now]},\n"
    "                   \"running\", \"ram_snapshots\"}\n";

static int set_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"cpus", required_argument, 0, 'c'}, {"memory", required_argument, 0, 'm'},
      {"cpu", required_argument, 0, 'C'},  {"json", no_argument, 0, 'j'},
      {"help", no_argument, 0, 'h'},       {0, 0, 0, 0}};
  qvm_vm_set_options opts = QVM_VM_SET_OPTIONS_INIT;
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
    case 'j': json = true; break;
    case 'h': return fputs(set_help, stdout), QVM_EXIT_OK;
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  if (optind >= argc) return qvm_cli_usage_error(VERB, "missing the vm's name");
  if (argc - optind > 1)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 1]);
  if (!opts.cpus && !opts.memory && !opts.cpu)
    return qvm_cli_usage_error(VERB, "nothing to change: give --cpus, --memory or --cpu");
  qvm_vm *vm = NULL;
  qvm_error *err = NULL;
  if (qvm_cli_open(&vm, argv[optind], &err) < 0)
    return qvm_cli_fail(VERB, err, qvm_cli_vm_hint(err));
  char *out = NULL;
  r = qvm_vm_set(&out, vm, &opts, &err);
  if (r < 0) {
    qvm_vm_free(vm);
    return qvm_cli_fail(VERB, err, qvm_cli_vm_hint(err));
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
