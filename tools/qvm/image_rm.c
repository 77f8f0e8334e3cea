/* SPDX-License-Identifier: MIT */
/* qvm image rm REF... */
#include <getopt.h>
#include <stdio.h>

#include <qvm/image.h>

#include "image_commands.h"

#define VERB "image rm"

static int rm_run(int argc, char **argv) {
  if (qvm_cli_help_asked(argc, argv))
    return printf("usage: qvm image rm REF...\n\nRemoves a name, or the image when REF is its "
                  "digest or its only name.\nAn image a vm uses is not removed (exit 6).\n"),
           QVM_EXIT_OK;
  bool json = false;
  int rc = 0;
  qvm_cli_json_only(VERB, argc, argv, &json, &rc);
  if (rc) return rc;
  if (json) return qvm_cli_usage_error(VERB, "rm has no --json output");
  if (optind >= argc) return qvm_cli_usage_error(VERB, "give at least one image name or digest");
  int worst = QVM_EXIT_OK;
  for (int i = optind; i < argc; i++) {
    qvm_error *err = NULL;
    if (qvm_image_remove(argv[i], &err) < 0)
      worst = qvm_cli_fail(VERB, err,
                           qvm_error_code(err) == QVM_ENOTFOUND ? "see 'qvm image ls'" : NULL);
    else
      printf("removed %s\n", argv[i]);
  }
  return worst;
}

const struct qvm_command qvm_cmd_image_rm = {"rm", "remove an image or one of its names", rm_run};
