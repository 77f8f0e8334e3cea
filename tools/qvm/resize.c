/* SPDX-License-Identifier: MIT */
/* qvm resize NAME SIZE [--json] */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/vm.h>

#include "commands.h"

static const char resize_help[] =
    "usage: qvm resize NAME SIZE [--json]\n"
    "\n"
    "Grows the vm's disk to SIZE (e.g. 20G; a whole number of 512-byte sectors).\n"
    "A stopped vm's disk is resized with qemu-img; a running vm's at once, through\n"
    "QEMU (the guest sees the new size; growing its partition and file system is\n"
    "the guest's job). A smaller size is refused: shrinking would lose data.\n"
    "\n"
    "  --json   print {\"name\", \"disk_bytes\", \"online\"}\n";

static int resize_args(int argc, char **argv, bool *json, const char **name, const char **size) {
  static const struct option longopts[] = {{"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'j')
      *json = true;
    else if (c == 'h')
      return printf("%s", resize_help), -1;
    else
      return qvm_cli_bad_option("resize", c, argv);
  }
  if (argc - optind < 2)
    return qvm_cli_usage_error("resize",
                               optind < argc ? "missing the size" : "missing the vm name");
  if (argc - optind > 2)
    return qvm_cli_usage_error("resize", "unexpected argument '%s'", argv[optind + 2]);
  *name = argv[optind];
  *size = argv[optind + 1];
  return 0;
}

static int resize_run(int argc, char **argv) {
  bool json = false;
  const char *name = NULL, *text = NULL;
  int r = resize_args(argc, argv, &json, &name, &text);
  if (r) return r < 0 ? QVM_EXIT_OK : r;
  uint64_t bytes = 0;
  qvm_error *err = NULL;
  if (qvm_vm_size_parse(&bytes, "disk", text, &err) < 0) {
    r = qvm_cli_usage_error("resize", "%s", qvm_error_message(err));
    qvm_error_free(err);
    return r;
  }
  qvm_vm *vm = NULL;
  if (qvm_cli_open(&vm, name, &err) < 0) return qvm_cli_fail("resize", err, qvm_cli_vm_hint(err));
  if (qvm_vm_resize(vm, bytes, &err) < 0) {
    qvm_vm_free(vm);
    return qvm_cli_fail("resize", err, NULL);
  }
  bool online = qvm_vm_get_state(vm) == QVM_VM_RUNNING;
  if (json) {
    printf("{\"name\": ");
    qvm_cli_json_string(stdout, qvm_vm_name(vm));
    printf(", \"disk_bytes\": %" PRIu64 ", \"online\": %s}\n", bytes, online ? "true" : "false");
  } else {
    printf("vm '%s': disk is %" PRIu64 " bytes%s\n", qvm_vm_name(vm), bytes,
           online ? " (resized while running)" : "");
  }
  qvm_vm_free(vm);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_resize = {"resize", "grow a vm's disk", resize_run};
