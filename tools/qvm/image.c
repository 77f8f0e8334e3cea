/* SPDX-License-Identifier: MIT */
/* qvm image: dispatches to the subcommands of image_commands.h. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "commands.h"
#include "image_commands.h"

static const struct qvm_command *const subcommands[] = {
    &qvm_cmd_image_pull,    &qvm_cmd_image_ls,    &qvm_cmd_image_inspect,
    &qvm_cmd_image_rm,      &qvm_cmd_image_prune, &qvm_cmd_image_tag,
    &qvm_cmd_image_catalog, &qvm_cmd_image_build, &qvm_cmd_image_import,
};

static void usage(FILE *f) {
  fprintf(f, "usage: qvm image SUBCOMMAND [OPTIONS]\n\n"
             "Pulls images into qvm's content-addressed store and manages them\n"
             "(see docs/images.md).\n\nsubcommands:\n");
  for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
    fprintf(f, "  %-10s %s\n", subcommands[i]->name, subcommands[i]->summary);
  fprintf(f, "\nRun 'qvm image SUBCOMMAND --help' for its options.\n");
}

bool qvm_cli_help_asked(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
  }
  return false;
}

void qvm_cli_json_only(const char *verb, int argc, char **argv, bool *json, int *rc) {
  static const struct option longopts[] = {{"json", no_argument, 0, 'j'}, {0, 0, 0, 0}};
  int c;
  *rc = 0;
  *json = false;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":", longopts)) != -1) {
    if (c != 'j') {
      *rc = qvm_cli_bad_option(verb, c, argv);
      return;
    }
    *json = true;
  }
}

int qvm_cli_print_json_text(const char *verb, const char *text) {
  struct json_object *o = json_tokener_parse(text);
  if (!o) {
    fprintf(stderr, "qvm %s: the library returned json that does not parse\n", verb);
    return QVM_EXIT_FAILURE;
  }
  qvm_cli_print_json(o);
  json_object_put(o);
  return QVM_EXIT_OK;
}

void qvm_cli_format_bytes(char *out, size_t size, unsigned long long bytes) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)bytes;
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof *units) v /= 1024, u++;
  if (u == 0)
    snprintf(out, size, "%llu B", bytes);
  else
    snprintf(out, size, "%.1f %s", v, units[u]);
}

static int image_run(int argc, char **argv) {
  return qvm_cli_dispatch("image", usage, subcommands, sizeof subcommands / sizeof *subcommands,
                          argc, argv);
}

const struct qvm_command qvm_cmd_image = {"image", "pull, list, tag and remove disk images",
                                          image_run};
