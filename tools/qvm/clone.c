/* SPDX-License-Identifier: MIT */
/* qvm clone SRC DST [--snapshot SNAP] [--start|--up] [--json] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/up.h>
#include <qvm/vm.h>

#include "commands.h"
#include "progress.h"

#define VERB "clone"

static const char clone_help[] =
    "usage: qvm clone SRC DST [--snapshot SNAP] [--start | --up] [--timeout S]\n"
    "                 [--no-wait-cloud-init] [--json] [--quiet]\n"
    "\n"
    "Makes vm DST a linked clone of vm SRC: SRC's disk state (or its internal\n"
    "snapshot SNAP) becomes an unnamed store image, and DST gets an overlay on it\n"
    "with SRC's settings (cpus, memory, machine, network, user, read-only drives,\n"
    "cdroms) and a fresh identity: uuid, MAC, ssh client key, guest host key\n"
    "(pinned before its first boot), cloud-init instance-id, hostname DST.\n"
    "SRC keeps running, or stays stopped, and its disk's data is not written: a\n"
    "running SRC is read at one point in time through a temporary internal\n"
    "snapshot. Not copied: published ports (they would clash), cloud-config\n"
    "files and provision steps (their effect is in the disk). A writable extra\n"
    "drive is refused. The image stays while a clone uses it ('qvm image ls').\n"
    "\n"
    "  --snapshot SNAP   clone an internal snapshot of SRC's disk\n"
    "  --start           start DST\n"
    "  --up              bring DST up (start, ssh, cloud-init: as 'qvm up')\n"
    "  --timeout S       --start: until QEMU answers (default 60); --up: the whole\n"
    "                    up (default 600)\n"
    "  --no-wait-cloud-init  --up: stop waiting once SSH works\n"
    "  --json            print {\"name\", \"source\", \"snapshot\", \"image\", \"uuid\",\n"
    "                    \"mac\", \"state\"}; progress as JSON lines on stderr\n"
    "  --quiet, -q       no progress\n";

static int clone_run(int argc, char **argv) {
  static const struct option longopts[] = {{"snapshot", required_argument, 0, 's'},
                                           {"start", no_argument, 0, 'S'},
                                           {"up", no_argument, 0, 'u'},
                                           {"json", no_argument, 0, 'j'},
                                           {"quiet", no_argument, 0, 'q'},
                                           {"timeout", required_argument, 0, 't'},
                                           {"no-wait-cloud-init", no_argument, 0, 'W'},
                                           {"help", no_argument, 0, 'h'},
                                           {0, 0, 0, 0}};
  qvm_vm_clone_options opts = QVM_VM_CLONE_OPTIONS_INIT;
  bool json = false, quiet = false, start = false, up = false;
  qvm_up_options upo = QVM_UP_OPTIONS_INIT;
  qvm_vm_start_options so = QVM_VM_START_OPTIONS_INIT;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":hq", longopts)) != -1) {
    switch (c) {
    case 's': opts.snapshot = optarg; break;
    case 'S': start = true; break;
    case 'u': up = true; break;
    case 'j': json = true; break;
    case 'q': quiet = true; break;
    case 'W': upo.wait_cloud_init = false; break;
    case 't': {
      int v = 0, rc = qvm_cli_parse_seconds(VERB, optarg, 1, &v);
      if (rc) return rc;
      upo.timeout_ms = so.timeout_ms = v * 1000;
      break;
    }
    case 'h': return fputs(clone_help, stdout), QVM_EXIT_OK;
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  if (start && up) return qvm_cli_usage_error(VERB, "give --start or --up, not both");
  if (argc - optind < 2)
    return qvm_cli_usage_error(VERB, optind < argc ? "missing the clone's name DST"
                                                   : "missing the source vm SRC");
  if (argc - optind > 2)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + 2]);
  const char *src = argv[optind], *dst = argv[optind + 1];
  opts.then = up ? QVM_VM_CLONE_UP : start ? QVM_VM_CLONE_START : QVM_VM_CLONE_CREATE;
  qvm_up_result res = {0};
  opts.start = &so;
  opts.up = &upo;
  opts.up_result = &res;
  qvm_cli_progress prog;
  qvm_cli_progress_init(&prog, qvm_cli_progress_mode_for(quiet, json));
  opts.progress = qvm_cli_image_progress;
  opts.userdata = &prog;
  char *out = NULL;
  qvm_error *err = NULL;
  int r = qvm_vm_clone(&out, src, dst, &opts, &err);
  qvm_cli_progress_end(&prog);
  if (r < 0) {
    const char *cls = qvm_error_class(err);
    return qvm_cli_fail(VERB, err,
                        cls && !strcmp(cls, "SnapshotUnknown")
                            ? "'qemu-img snapshot -U -l' on SRC's disk.qcow2 lists its snapshots"
                            : qvm_cli_vm_hint(err));
  }
  int rc = QVM_EXIT_OK;
  struct json_object *o = json_tokener_parse(out), *v = NULL;
  if (!o) {
    fprintf(stderr, "qvm %s: the library returned json that does not parse\n", VERB);
    rc = QVM_EXIT_FAILURE;
  } else if (json) {
    qvm_cli_print_json(o);
  } else {
    qvm_cli_json_neutralize(o);
    printf("cloned vm '%s' to '%s' (image %s, %s)\n", src, dst,
           json_object_object_get_ex(o, "image", &v) ? json_object_get_string(v) : "?",
           json_object_object_get_ex(o, "state", &v) ? json_object_get_string(v) : "?");
  }
  json_object_put(o);
  free(out);
  return rc;
}

const struct qvm_command qvm_cmd_clone = {
    "clone", "make a linked clone of a vm with a fresh identity", clone_run};
