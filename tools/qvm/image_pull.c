/* SPDX-License-Identifier: MIT */
/* qvm image pull SOURCE */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/image.h>

#include "image_commands.h"
#include "progress.h"

#define VERB "image pull"

static const char help[] =
    "usage: qvm image pull SOURCE [--name NAME] [--sha256 HEX | --sha512 HEX |\n"
    "                      --checksums URL] [--allow-backing] [--insecure-no-checksum]\n"
    "                      [--retries N] [--json] [--quiet]\n\n"
    "Downloads SOURCE into the image store, verifies its checksum, and records\n"
    "its format once. SOURCE is an http(s):// or file:// url, a file, or an alias\n"
    "of the catalog ('qvm image catalog'); an alias names the image after itself.\n"
    "An interrupted download resumes; two pulls of one source download it once.\n\n"
    "  --name NAME            point NAME at the image\n"
    "  --sha256 HEX           the download's expected sha256 (or --sha512)\n"
    "  --checksums URL        a SHA256SUMS/SHA512SUMS file listing the file's name\n"
    "  --allow-backing        accept an image that names a backing file\n"
    "  --insecure-no-checksum accept an http(s) download without any checksum\n"
    "  --retries N            further attempts after a failure (default 4)\n"
    "  --json                 the result as JSON on stdout; progress as JSON\n"
    "                         lines on stderr\n"
    "  --quiet, -q            no progress\n";

static int print_result(const char *text) {
  struct json_object *o = json_tokener_parse(text), *v = NULL, *names = NULL;
  if (!o) return QVM_EXIT_FAILURE;
  qvm_cli_json_neutralize(o);
  const char *digest = json_object_object_get_ex(o, "digest", &v) ? json_object_get_string(v) : "?";
  const char *format = json_object_object_get_ex(o, "format", &v) ? json_object_get_string(v) : "?";
  unsigned long long size =
      json_object_object_get_ex(o, "virtual_size", &v) ? json_object_get_uint64(v) : 0;
  bool reused = json_object_object_get_ex(o, "reused", &v) && json_object_get_boolean(v);
  char sz[32];
  qvm_cli_format_bytes(sz, sizeof sz, size);
  printf("%s %s (%s, %s)", reused ? "already stored:" : "pulled", digest, format, sz);
  if (json_object_object_get_ex(o, "names", &names) && json_object_array_length(names)) {
    printf(" as");
    for (size_t i = 0; i < json_object_array_length(names); i++)
      printf(" %s", json_object_get_string(json_object_array_get_idx(names, i)));
  }
  printf("\n");
  json_object_put(o);
  return QVM_EXIT_OK;
}

static int pull_run(int argc, char **argv) {
  if (qvm_cli_help_asked(argc, argv)) return fputs(help, stdout), QVM_EXIT_OK;
  static const struct option longopts[] = {
      {"name", required_argument, 0, 'n'},    {"sha256", required_argument, 0, 's'},
      {"sha512", required_argument, 0, 'S'},  {"checksums", required_argument, 0, 'c'},
      {"allow-backing", no_argument, 0, 'b'}, {"insecure-no-checksum", no_argument, 0, 'i'},
      {"retries", required_argument, 0, 'r'}, {"json", no_argument, 0, 'j'},
      {"quiet", no_argument, 0, 'q'},         {0, 0, 0, 0}};
  qvm_image_pull_options opts = QVM_IMAGE_PULL_OPTIONS_INIT;
  bool json = false, quiet = false;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":q", longopts)) != -1) {
    char *end = NULL;
    switch (c) {
    case 'n': opts.name = optarg; break;
    case 's': opts.sha256 = optarg; break;
    case 'S': opts.sha512 = optarg; break;
    case 'c': opts.checksums = optarg; break;
    case 'b': opts.allow_backing = true; break;
    case 'i': opts.insecure_no_checksum = true; break;
    case 'j': json = true; break;
    case 'q': quiet = true; break;
    case 'r': {
      unsigned long v = strtoul(optarg, &end, 10);
      if (!*optarg || *end || v > 100)
        return qvm_cli_usage_error(VERB, "--retries '%s' is not a number from 0 to 100", optarg);
      opts.retries = (unsigned)v;
      break;
    }
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  if (optind + 1 != argc)
    return qvm_cli_usage_error(VERB, optind >= argc ? "give one SOURCE" : "give one SOURCE only");
  if (!!opts.sha256 + !!opts.sha512 + !!opts.checksums > 1)
    return qvm_cli_usage_error(VERB, "give only one of --sha256, --sha512, --checksums");
  qvm_cli_progress prog;
  qvm_cli_progress_init(&prog, qvm_cli_progress_mode_for(quiet, json));
  opts.progress = qvm_cli_image_progress;
  opts.userdata = &prog;
  char *out = NULL;
  qvm_error *err = NULL;
  int r = qvm_image_pull(&out, argv[optind], &opts, &err);
  qvm_cli_progress_end(&prog);
  if (r < 0) {
    const char *src = argv[optind];
    bool alias_like = !strchr(src, '/') && !strchr(src, ':');
    return qvm_cli_fail(VERB, err,
                        qvm_error_code(err) == QVM_ENOTFOUND && alias_like
                            ? "see 'qvm image catalog' for the aliases"
                            : NULL);
  }
  int rc = json ? qvm_cli_print_json_text(VERB, out) : print_result(out);
  free(out);
  return rc;
}

const struct qvm_command qvm_cmd_image_pull = {
    "pull", "download and verify an image into the store", pull_run};
