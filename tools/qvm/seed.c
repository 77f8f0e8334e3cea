/* SPDX-License-Identifier: MIT */
/*
 * qvm seed build: a NoCloud "cidata" image on its own, in place of
 * cloud-localds / genisoimage. Uses only the public seed API.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/seed.h>

#include "commands.h"

#define VERB "seed build"
#define MAX_KEYS 64

static void usage(FILE *f) {
  fprintf(f,
          "usage: qvm seed build -o SEED.iso [OPTIONS]\n\n"
          "Writes a NoCloud seed image (volume label cidata) with qvm's own ISO9660 writer.\n\n"
          "  -o, --output FILE          the image to write (replaced atomically)\n"
          "      --user-data FILE       user-data; used as is unless --hostname or --ssh-key\n"
          "                             is given, then merged (cloud-config or #! script)\n"
          "                             after checking, with qvm's own cloud-config\n"
          "      --meta-data FILE       meta-data as is (default: from --instance-id, --hostname)\n"
          "      --network-config FILE  network-config as is (default: none)\n"
          "      --hostname NAME        the guest's hostname\n"
          "      --ssh-key FILE         authorized public key(s) for the default user;\n"
          "                             may be repeated\n"
          "      --instance-id ID       meta-data instance-id (default iid-local01)\n"
          "      --epoch SECONDS        timestamps in the image (default $SOURCE_DATE_EPOCH,\n"
          "                             else 946684800 = 2000-01-01)\n"
          "  -h, --help                 this text\n");
}

/* Reads a whole file the user named; NULL and a message on failure. */
static char *read_user_file(const char *path, size_t *out_len, const char *what) {
  FILE *f = fopen(path, "rbe");
  if (!f) {
    fprintf(stderr, "qvm %s: cannot read %s '%s': %s\n", VERB, what, path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(QVM_SEED_MAX_USER_FILE + 1);
  size_t n = buf ? fread(buf, 1, QVM_SEED_MAX_USER_FILE + 1, f) : 0;
  int bad = !buf || ferror(f) || n > QVM_SEED_MAX_USER_FILE;
  fclose(f);
  if (bad) {
    fprintf(stderr, "qvm %s: %s '%s' is unreadable or larger than %u bytes\n", VERB, what, path,
            QVM_SEED_MAX_USER_FILE);
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  *out_len = n;
  return buf;
}

typedef struct seed_args {
  const char *output, *user_data, *meta_data, *network_config, *hostname, *instance_id;
  const char *key_files[MAX_KEYS];
  size_t n_key_files;
  int64_t epoch;
} seed_args;

static int parse_epoch(const char *s, int64_t *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || !*s || *end || v < 0) return -1;
  *out = v;
  return 0;
}

static int parse_args(seed_args *a, int argc, char **argv) {
  static const struct option opts[] = {{"output", required_argument, 0, 'o'},
                                       {"user-data", required_argument, 0, 'u'},
                                       {"meta-data", required_argument, 0, 'm'},
                                       {"network-config", required_argument, 0, 'n'},
                                       {"hostname", required_argument, 0, 'H'},
                                       {"ssh-key", required_argument, 0, 'k'},
                                       {"instance-id", required_argument, 0, 'i'},
                                       {"epoch", required_argument, 0, 'e'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *sde = getenv("SOURCE_DATE_EPOCH");
  a->epoch = QVM_SEED_EPOCH_DEFAULT;
  if (sde && *sde && parse_epoch(sde, &a->epoch) < 0)
    return qvm_cli_usage_error(VERB, "SOURCE_DATE_EPOCH '%s' is not a number of seconds", sde);
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    switch (c) {
    case 'o': a->output = optarg; break;
    case 'u': a->user_data = optarg; break;
    case 'm': a->meta_data = optarg; break;
    case 'n': a->network_config = optarg; break;
    case 'H': a->hostname = optarg; break;
    case 'i': a->instance_id = optarg; break;
    case 'k':
      if (a->n_key_files == MAX_KEYS)
        return qvm_cli_usage_error(VERB, "more than %d --ssh-key files", MAX_KEYS);
      a->key_files[a->n_key_files++] = optarg;
      break;
    case 'e':
      if (parse_epoch(optarg, &a->epoch) < 0)
        return qvm_cli_usage_error(VERB, "epoch '%s' is not a number of seconds", optarg);
      break;
    case 'h': usage(stdout); return -1;
    default: return qvm_cli_usage_error(VERB, "unknown option");
    }
  }
  if (optind < argc) return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind]);
  if (!a->output) return qvm_cli_usage_error(VERB, "-o SEED.iso is required");
  return 0;
}

/* Splits key files into lines; keeps every non-empty, non-comment line. */
static int load_keys(const seed_args *a, char **bufs, const char **keys, size_t *n_keys) {
  *n_keys = 0;
  for (size_t i = 0; i < a->n_key_files; i++) {
    size_t len = 0;
    if (!(bufs[i] = read_user_file(a->key_files[i], &len, "ssh key"))) return -1;
    for (char *save = NULL, *line = strtok_r(bufs[i], "\r\n", &save); line;
         line = strtok_r(NULL, "\r\n", &save)) {
      if (*line == '#' || !*line) continue;
      if (*n_keys == MAX_KEYS * 4) break;
      keys[(*n_keys)++] = line;
    }
  }
  if (a->n_key_files && !*n_keys) {
    fprintf(stderr, "qvm %s: no public key found in the --ssh-key files\n", VERB);
    return -1;
  }
  return 0;
}

typedef struct seed_files {
  char *user_data, *meta_data, *network;
  size_t ud_len, md_len, nc_len;
} seed_files;

/* Fills the spec's user part from --user-data: a script or a cloud-config. */
static int attach_user_data(qvm_seed_spec *spec, const char *path, char **buf) {
  size_t len = 0;
  if (!(*buf = read_user_file(path, &len, "user-data"))) return -1;
  if (len >= 2 && !memcmp(*buf, "#!", 2)) {
    spec->user_script = *buf;
    spec->user_script_len = len;
  } else {
    spec->user_config = *buf;
    spec->user_config_len = len;
    spec->user_config_name = path;
  }
  return 0;
}

static int render(seed_files *out, const seed_args *a, const char *const *keys, size_t n_keys) {
  qvm_seed_spec spec = QVM_SEED_SPEC_INIT;
  spec.instance_id = a->instance_id ? a->instance_id : "iid-local01";
  spec.hostname = a->hostname ? a->hostname : "qvm";
  spec.ssh_authorized_keys = keys;
  spec.n_ssh_authorized_keys = n_keys;
  qvm_error *err = NULL;
  char *user_buf = NULL;
  int rc = 0;
  bool generate = a->hostname || n_keys || !a->user_data;
  if (!generate) {
    if (!(out->user_data = read_user_file(a->user_data, &out->ud_len, "user-data"))) rc = -1;
  } else if (a->user_data && attach_user_data(&spec, a->user_data, &user_buf) < 0) {
    rc = -1;
  } else if (qvm_seed_render_user_data(&out->user_data, &out->ud_len, &spec, &err) < 0) {
    rc = qvm_cli_fail(VERB, err, NULL);
  }
  free(user_buf);
  if (rc) return rc;
  if (a->meta_data) {
    if (!(out->meta_data = read_user_file(a->meta_data, &out->md_len, "meta-data"))) return -1;
  } else if (qvm_seed_render_meta_data(&out->meta_data, &out->md_len, &spec, &err) < 0) {
    return qvm_cli_fail(VERB, err, NULL);
  }
  if (a->network_config &&
      !(out->network = read_user_file(a->network_config, &out->nc_len, "network-config")))
    return -1;
  return 0;
}

static int seed_build(int argc, char **argv) {
  seed_args a = {0};
  int rc = parse_args(&a, argc, argv);
  if (rc) return rc < 0 ? QVM_EXIT_OK : rc;
  char *key_bufs[MAX_KEYS] = {0};
  const char *keys[MAX_KEYS * 4];
  size_t n_keys = 0;
  seed_files f = {0};
  if (load_keys(&a, key_bufs, keys, &n_keys) < 0) {
    rc = QVM_EXIT_NOTFOUND;
  } else if ((rc = render(&f, &a, keys, n_keys)) != 0) {
    rc = rc < 0 ? QVM_EXIT_NOTFOUND : rc;
  } else {
    qvm_seed_file files[] = {{"user-data", f.user_data, f.ud_len},
                             {"meta-data", f.meta_data, f.md_len},
                             {"network-config", f.network, f.nc_len}};
    qvm_error *err = NULL;
    if (qvm_seed_write_iso(a.output, files, f.network ? 3 : 2, a.epoch, &err) < 0)
      rc = qvm_cli_fail(VERB, err, "check that the output directory exists and is writable");
  }
  for (size_t i = 0; i < MAX_KEYS; i++) free(key_bufs[i]);
  free(f.user_data);
  free(f.meta_data);
  free(f.network);
  return rc;
}

static int seed_run(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? QVM_EXIT_USAGE : QVM_EXIT_OK;
  }
  if (!strcmp(argv[1], "build")) return seed_build(argc - 1, argv + 1);
  return qvm_cli_usage_error("seed", "unknown subcommand '%s'", argv[1]);
}

const struct qvm_command qvm_cmd_seed = {"seed", "build a cloud-init NoCloud seed image", seed_run};
