/* SPDX-License-Identifier: MIT */
/* qvm image build: a cloud image from distribution packages (mmdebstrap). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <qvm/image.h>

#include "commands.h"
#include "image_commands.h"

#define VERB "image build"

static const char help[] =
    "usage: qvm image build NAME [--distro D] [--packages P,...] [--size SIZE]\n"
    "                            [--mirror URL] [--output FILE] [--json]\n\n"
    "Builds a cloud image from distribution packages with mmdebstrap: an MBR disk\n"
    "with GRUB for BIOS boot and one ext4 root partition filling it, cloud-init\n"
    "(NoCloud), OpenSSH and the QEMU guest agent. The qcow2 goes into the image\n"
    "store as NAME (use it with 'qvm up --image NAME'). Needs root, mmdebstrap,\n"
    "e2fsprogs, fdisk and qemu-utils; takes a few minutes.\n\n"
    "  --distro D         debian-12 (bookworm, the default) or debian-13 (trixie)\n"
    "  --packages P,...   extra packages to install (repeatable)\n"
    "  --size SIZE        virtual disk size, e.g. 3G (default), 1G to 2T\n"
    "  --mirror URL       an http(s)://, file:// or copy:// Debian mirror\n"
    "                     (default: this host's apt sources for the suite)\n"
    "  --output FILE      write the qcow2 to FILE instead of the store (no NAME)\n"
    "  --json             print the result (digest, kernel, packages, ...) as JSON\n\n"
    "Progress goes to stderr: the phase and time on a terminal, else one line per\n"
    "phase (bootstrap, filesystem, bootloader, convert). Ctrl-C stops the build\n"
    "and removes its temp files.\n";

typedef struct build_cli {
  bool tty;
  const char *phase;
  struct timespec phase_start, start;
} build_cli;

static double since(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void on_progress(const qvm_image_progress *p, void *userdata) {
  build_cli *c = userdata;
  bool fresh = !c->phase || strcmp(c->phase, p->phase);
  if (fresh) {
    if (c->tty && c->phase) fputc('\n', stderr);
    c->phase = !strcmp(p->phase, "bootstrap")    ? "bootstrap"
               : !strcmp(p->phase, "filesystem") ? "filesystem"
               : !strcmp(p->phase, "bootloader") ? "bootloader"
               : !strcmp(p->phase, "convert")    ? "convert"
                                                 : "done";
    clock_gettime(CLOCK_MONOTONIC, &c->phase_start);
  }
  if (!strcmp(c->phase, "done")) {
    fprintf(stderr, "%sbuilt in %.0fs\n", c->tty ? "\r\033[K" : "", since(&c->start));
    return;
  }
  if (c->tty) {
    double s = since(&c->phase_start);
    fprintf(stderr, "\r\033[K%-10s %d:%02d", c->phase, (int)s / 60, (int)s % 60);
  } else if (fresh) {
    fprintf(stderr, "%s (%.0fs)\n", c->phase, since(&c->start));
  }
  fflush(stderr);
}

/* --packages a,b --packages c: one list. */
static int add_packages(char ***list, size_t *n, const char *arg) {
  char *copy = strdup(arg), *save = NULL;
  if (!copy) return -1;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    char **g = realloc(*list, (*n + 1) * sizeof **list);
    if (!g) break;
    *list = g;
    if (!(g[*n] = strdup(t))) break;
    (*n)++;
  }
  free(copy);
  return 0;
}

static void free_list(char **list, size_t n) {
  for (size_t i = 0; i < n; i++) free(list[i]);
  free(list);
}

static const char *build_hint(const qvm_error *err) {
  switch (qvm_error_code(err)) {
  case QVM_EUNAVAIL:
    return strstr(qvm_error_message(err), "root")
               ? "run it as root (e.g. with sudo)"
               : "install the package named above (apt-get install ...)";
  case QVM_ENOTFOUND: return "give a Debian mirror with --mirror URL";
  case QVM_EEXISTS: return "pick another --output file, or remove the old one";
  default: return NULL;
  }
}

static int parse_and_build(int argc, char **argv, char ***pk, size_t *npk) {
  static const struct option longopts[] = {
      {"distro", required_argument, NULL, 'd'}, {"packages", required_argument, NULL, 'p'},
      {"size", required_argument, NULL, 's'},   {"mirror", required_argument, NULL, 'm'},
      {"output", required_argument, NULL, 'o'}, {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
  qvm_image_build_options o = QVM_IMAGE_BUILD_OPTIONS_INIT;
  bool json = false;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    qvm_error *err = NULL;
    switch (c) {
    case 'h': fputs(help, stdout); return QVM_EXIT_OK;
    case 'd': o.distro = optarg; break;
    case 'p':
      if (add_packages(pk, npk, optarg) < 0) return QVM_EXIT_FAILURE;
      break;
    case 's':
      if (qvm_vm_size_parse(&o.size, "size", optarg, &err) < 0) {
        int rc = qvm_cli_usage_error(VERB, "%s", qvm_error_message(err));
        qvm_error_free(err);
        return rc;
      }
      break;
    case 'm': o.mirror = optarg; break;
    case 'o': o.output = optarg; break;
    case 'j': json = true; break;
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  const char *name = optind < argc ? argv[optind] : NULL;
  if (!name && !o.output) return qvm_cli_usage_error(VERB, "missing the image name");
  if (name && o.output)
    return qvm_cli_usage_error(VERB, "an image written with --output gets no name");
  if (optind + (name ? 1 : 0) < argc)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + (name ? 1 : 0)]);
  o.packages = (const char *const *)*pk;
  o.n_packages = *npk;
  build_cli cli = {.tty = isatty(STDERR_FILENO)};
  clock_gettime(CLOCK_MONOTONIC, &cli.start);
  o.progress = on_progress;
  o.userdata = &cli;
  char *out = NULL;
  qvm_error *err = NULL;
  if (qvm_image_build(json ? &out : NULL, name, &o, &err) < 0) {
    if (cli.tty && cli.phase) fputc('\n', stderr);
    bool interrupted = qvm_error_code(err) == QVM_ESYS && qvm_error_errno(err) == EINTR;
    int rc = qvm_cli_fail(VERB, err, build_hint(err));
    return interrupted ? 130 : rc;
  }
  if (json) {
    printf("%s\n", out);
    free(out);
  } else {
    printf("%s\n", name ? name : o.output);
  }
  return QVM_EXIT_OK;
}

static int image_build_run(int argc, char **argv) {
  char **pk = NULL;
  size_t npk = 0;
  int rc = parse_and_build(argc, argv, &pk, &npk);
  free_list(pk, npk);
  return rc;
}

const struct qvm_command qvm_cmd_image_build = {
    "build", "build a cloud image from distribution packages (mmdebstrap)", image_build_run};
