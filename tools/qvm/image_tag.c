/* SPDX-License-Identifier: MIT */
/* qvm image tag REF NAME */
#include <getopt.h>
#include <stdio.h>

#include <qvm/image.h>

#include "image_commands.h"

#define VERB "image tag"

static int tag_run(int argc, char **argv) {
  if (qvm_cli_help_asked(argc, argv))
    return printf("usage: qvm image tag REF NAME\n\nPoints NAME ([a-z0-9][a-z0-9._-]{0,63}) at "
                  "REF's image (a name or\nsha256:DIGEST), replacing what NAME pointed at.\n"),
           QVM_EXIT_OK;
  bool json = false;
  int rc = 0;
  qvm_cli_json_only(VERB, argc, argv, &json, &rc);
  if (rc) return rc;
  if (json) return qvm_cli_usage_error(VERB, "tag has no --json output");
  if (optind + 2 != argc) return qvm_cli_usage_error(VERB, "give REF and NAME");
  qvm_error *err = NULL;
  if (qvm_image_tag(argv[optind], argv[optind + 1], &err) < 0)
    return qvm_cli_fail(VERB, err,
                        qvm_error_code(err) == QVM_ENOTFOUND ? "see 'qvm image ls'" : NULL);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_image_tag = {"tag", "give an image another name", tag_run};
