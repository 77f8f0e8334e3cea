/* SPDX-License-Identifier: MIT */
/* qvm image import --from-vm VM [--snapshot SNAP] NAME */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/image.h>

#include "image_commands.h"
#include "progress.h"

#define VERB "image import"

static const char help[] =
    "usage: qvm image import --from-vm VM [--snapshot SNAP] NAME [--json] [--quiet]\n\n"
    "Turns a vm's disk state into a store image named NAME (a golden image that\n"
    "'qvm up --image NAME', 'qvm create' and 'qvm clone' start from): its disk\n"
    "and the image under it, flattened into one standalone qcow2. The vm is not\n"
    "changed. A running vm is read at one point in time: SNAP, or a temporary\n"
    "internal snapshot of its disk that qvm takes and deletes.\n\n"
    "  --from-vm VM      the vm to import (required)\n"
    "  --snapshot SNAP   an internal snapshot of its disk instead of its current state\n"
    "  --json            the image's record as JSON (as 'qvm image inspect', with\n"
    "                    \"vm\" and \"snapshot\"); progress as JSON lines on stderr\n"
    "  --quiet, -q       no progress\n";

static int import_run(int argc, char **argv) {
  if (qvm_cli_help_asked(argc, argv)) return fputs(help, stdout), QVM_EXIT_OK;
  static const struct option longopts[] = {{"from-vm", required_argument, 0, 'f'},
                                           {"snapshot", required_argument, 0, 's'},
                                           {"json", no_argument, 0, 'j'},
                                           {"quiet", no_argument, 0, 'q'},
                                           {0, 0, 0, 0}};
  const char *vm = NULL, *snapshot = NULL;
  bool json = false, quiet = false;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":q", longopts)) != -1) {
    switch (c) {
    case 'f': vm = optarg; break;
    case 's': snapshot = optarg; break;
    case 'j': json = true; break;
    case 'q': quiet = true; break;
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  if (!vm) return qvm_cli_usage_error(VERB, "give the vm with --from-vm VM");
  if (optind >= argc) return qvm_cli_usage_error(VERB, "give the image's NAME");
  if (optind + 1 < argc)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 1]);
  qvm_cli_progress prog;
  qvm_cli_progress_init(&prog, qvm_cli_progress_mode_for(quiet, json));
  qvm_image_import_options opts = QVM_IMAGE_IMPORT_OPTIONS_INIT;
  opts.progress = qvm_cli_image_progress;
  opts.userdata = &prog;
  char *out = NULL;
  qvm_error *err = NULL;
  int r = qvm_image_import_vm(&out, vm, snapshot, argv[optind], &opts, &err);
  qvm_cli_progress_end(&prog);
  if (r < 0) {
    const char *cls = qvm_error_class(err);
    return qvm_cli_fail(VERB, err,
                        cls && !strcmp(cls, "SnapshotUnknown")
                            ? "'qemu-img snapshot -U -l' on the vm's disk.qcow2 lists its snapshots"
                        : qvm_error_code(err) == QVM_ENOTFOUND
                            ? "see 'qvm ls' for the vms that exist"
                            : NULL);
  }
  int rc = QVM_EXIT_OK;
  if (json) {
    rc = qvm_cli_print_json_text(VERB, out);
  } else {
    struct json_object *o = json_tokener_parse(out), *v = NULL;
    if (o) qvm_cli_json_neutralize(o);
    char sz[32];
    qvm_cli_format_bytes(
        sz, sizeof sz,
        o && json_object_object_get_ex(o, "virtual_size", &v) ? json_object_get_uint64(v) : 0);
    printf("imported vm '%s'%s%s as %s (%s, qcow2, %s)\n", vm, snapshot ? " at snapshot " : "",
           snapshot ? snapshot : "", argv[optind],
           o && json_object_object_get_ex(o, "digest", &v) ? json_object_get_string(v) : "?", sz);
    json_object_put(o);
  }
  free(out);
  return rc;
}

const struct qvm_command qvm_cmd_image_import = {
    "import", "make a store image from a vm's disk (--from-vm)", import_run};
