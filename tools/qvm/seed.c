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
#include <sys/stat.h>

#include <qvm/seed.h>
#include <qvm/ssh.h>

#include "commands.h"

#define VERB "seed build"
#define MAX_KEYS 64

static void usage(FILE *f) {
  fprintf(f,
          "usage: qvm seed build -o SEED.iso [OPTIONS]\n\n"
          "Writes a NoCloud seed image (volume label cidata) with qvm's own ISO9660 writer.\n\n"
          "  -o, --output FILE          the image to write (replaced atomically; mode\n"
          "                             0666 less the umask, but 0600 when it holds a\n"
          "                             private key or an input others cannot read)\n"
          "      --user-data FILE       user-data; used as is unless --hostname or --ssh-key\n"
          "                             is given, then merged (cloud-config or #! script)\n"
          "                             with qvm's own cloud-config\n"
          "      --meta-data FILE       meta-data as is (default: from --instance-id, --hostname)\n"
          "      --network-config FILE  network-config as is (default: none)\n"
          "      --hostname NAME        the guest's hostname\n"
          "      --ssh-key FILE         authorized public key(s) for the default user;\n"
          "                             may be repeated\n"
          "      --instance-id ID       meta-data instance-id (default iid-local01)\n"
          "      --epoch SECONDS        timestamps in the image (default $SOURCE_DATE_EPOCH,\n"
          "                             else 946684800 = 2000-01-01)\n"
          "  -h, --help                 this text\n\n"
          "Every file is checked first, whatever the options: user-data is '#cloud-config'\n"
          "YAML (one mapping), a '#!' script or a MIME multipart message; meta-data is a\n"
          "YAML mapping; network-config a mapping with version 1 or 2; --ssh-key files hold\n"
          "public key lines. Errors name the file and line.\n\n"
          "exit status: 0 written; 1 a file is invalid, unreadable or too big, or the image\n"
          "cannot be written; 2 bad options; 3 a file does not exist.\n");
}

/* Reads a whole file the user named into *out (NUL-terminated). Returns 0,
 * or the exit code after a message: a missing file is "not found" (3); one
 * that exists but cannot be read or is too big is a failure (1). */
static int read_user_file(char **out, size_t *out_len, const char *path, const char *what) {
  FILE *f = fopen(path, "rbe");
  if (!f) {
    int e = errno;
    fprintf(stderr, "qvm %s: cannot read %s '%s': %s\n", VERB, what, path, strerror(e));
    if (e == ENOENT || e == ENOTDIR) {
      fprintf(stderr, "hint: check the path\n");
      return QVM_EXIT_NOTFOUND;
    }
    return QVM_EXIT_FAILURE;
  }
  char *buf = malloc(QVM_SEED_MAX_USER_FILE + 1);
  size_t n = buf ? fread(buf, 1, QVM_SEED_MAX_USER_FILE + 1, f) : 0;
  int e = ferror(f) ? errno : 0;
  fclose(f);
  if (!buf || e || n > QVM_SEED_MAX_USER_FILE) {
    if (!buf || e)
      fprintf(stderr, "qvm %s: cannot read %s '%s': %s\n", VERB, what, path,
              strerror(buf ? e : ENOMEM));
    else
      fprintf(stderr, "qvm %s: %s '%s' is larger than %u bytes\n", VERB, what, path,
              QVM_SEED_MAX_USER_FILE);
    free(buf);
    return QVM_EXIT_FAILURE;
  }
  buf[n] = 0;
  *out = buf;
  *out_len = n;
  return 0;
}

/* A check of a user's file failed: the message names the file and line. */
static int invalid_file(qvm_error *err, const char *hint) {
  qvm_cli_fail(VERB, err, hint);
  return QVM_EXIT_FAILURE;
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
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":o:h", opts)) != -1) {
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
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  if (optind < argc) return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind]);
  if (!a->output) return qvm_cli_usage_error(VERB, "-o SEED.iso is required");
  return 0;
}

/* Checks one line of a --ssh-key file; comments and blank lines are skipped
 * by the caller. */
static int check_key_line(const char *path, size_t line_no, const char *line) {
  qvm_error *err = NULL;
  if (qvm_ssh_public_line_check(line, &err) == 0) return 0;
  fprintf(stderr, "qvm %s: ssh key file '%s' line %zu: %s\n", VERB, path, line_no,
          qvm_error_message(err));
  fprintf(stderr, "hint: --ssh-key takes public key files (such as ~/.ssh/id_ed25519.pub), one "
                  "'type base64 [comment]' line per key\n");
  qvm_error_free(err);
  return QVM_EXIT_FAILURE;
}

/* Splits key files into lines; keeps every non-empty, non-comment line, each
 * checked to be a public key line. */
static int load_keys(const seed_args *a, char **bufs, const char **keys, size_t *n_keys) {
  *n_keys = 0;
  for (size_t i = 0; i < a->n_key_files; i++) {
    size_t len = 0, line_no = 0, before = *n_keys;
    int r = read_user_file(&bufs[i], &len, a->key_files[i], "ssh key file");
    if (r) return r;
    for (char *line = bufs[i], *next; line; line = next) {
      line_no++;
      next = strchr(line, '\n');
      if (next) *next++ = 0;
      line[strcspn(line, "\r")] = 0;
      line += strspn(line, " \t");
      if (*line == '#' || !*line) continue;
      if ((r = check_key_line(a->key_files[i], line_no, line))) return r;
      if (*n_keys == MAX_KEYS * 4) {
        fprintf(stderr, "qvm %s: more than %d keys in the --ssh-key files\n", VERB, MAX_KEYS * 4);
        return QVM_EXIT_USAGE;
      }
      keys[(*n_keys)++] = line;
    }
    if (*n_keys == before) {
      fprintf(stderr, "qvm %s: ssh key file '%s' holds no public key\n", VERB, a->key_files[i]);
      fprintf(stderr, "hint: give a public key file such as ~/.ssh/id_ed25519.pub\n");
      return QVM_EXIT_FAILURE;
    }
  }
  return 0;
}

typedef struct seed_files {
  char *user_data, *meta_data, *network;
  size_t ud_len, md_len, nc_len;
} seed_files;

#define USER_DATA_HINT                                                                             \
  "user-data must start with '#cloud-config' (then one YAML mapping) or '#!' (a script), or "      \
  "be a MIME multipart message"

/* Reads and checks --user-data; *kind says what it is. */
static int read_user_data(char **out, size_t *len, qvm_seed_user_data_kind *kind,
                          const char *path) {
  qvm_error *err = NULL;
  int r = read_user_file(out, len, path, "user-data");
  if (r) return r;
  if (qvm_seed_check_user_data(kind, *out, *len, path, &err) < 0)
    return invalid_file(err, USER_DATA_HINT);
  return 0;
}

/* Fills the spec's user part from --user-data, to be merged with qvm's
 * cloud-config: a script or a cloud-config, nothing else. */
static int attach_user_data(qvm_seed_spec *spec, const char *path, char **buf) {
  size_t len = 0;
  qvm_seed_user_data_kind kind;
  int r = read_user_data(buf, &len, &kind, path);
  if (r) return r;
  if (kind == QVM_SEED_USER_DATA_SCRIPT) {
    spec->user_script = *buf;
    spec->user_script_len = len;
  } else if (kind == QVM_SEED_USER_DATA_CLOUD_CONFIG) {
    spec->user_config = *buf;
    spec->user_config_len = len;
    spec->user_config_name = path;
  } else {
    fprintf(stderr,
            "qvm %s: user-data '%s' is neither a cloud-config nor a #! script, so it "
            "cannot be merged with qvm's cloud-config\n",
            VERB, path);
    fprintf(stderr, "hint: leave out --hostname and --ssh-key to use the file as it is\n");
    return QVM_EXIT_FAILURE;
  }
  return 0;
}

static int read_checked(char **out, size_t *len, const char *path, const char *what,
                        int (*check)(const char *, size_t, const char *, qvm_error **),
                        const char *hint) {
  qvm_error *err = NULL;
  int r = read_user_file(out, len, path, what);
  if (r) return r;
  if (check(*out, *len, path, &err) < 0) return invalid_file(err, hint);
  return 0;
}

static int render_user_data(seed_files *out, const seed_args *a, qvm_seed_spec *spec,
                            size_t n_keys) {
  qvm_error *err = NULL;
  char *user_buf = NULL;
  int rc = 0;
  qvm_seed_user_data_kind kind;
  if (a->user_data && !a->hostname && !n_keys)
    return read_user_data(&out->user_data, &out->ud_len, &kind, a->user_data);
  if (a->user_data && (rc = attach_user_data(spec, a->user_data, &user_buf)) != 0) {
  } else if (qvm_seed_render_user_data(&out->user_data, &out->ud_len, spec, &err) < 0) {
    rc = qvm_cli_fail(VERB, err, NULL);
  }
  free(user_buf);
  return rc;
}

static int render(seed_files *out, const seed_args *a, const char *const *keys, size_t n_keys) {
  qvm_seed_spec spec = QVM_SEED_SPEC_INIT;
  spec.instance_id = a->instance_id ? a->instance_id : "iid-local01";
  spec.hostname = a->hostname ? a->hostname : "qvm";
  spec.ssh_authorized_keys = keys;
  spec.n_ssh_authorized_keys = n_keys;
  qvm_error *err = NULL;
  int rc = render_user_data(out, a, &spec, n_keys);
  if (rc) return rc;
  if (a->meta_data) {
    rc = read_checked(&out->meta_data, &out->md_len, a->meta_data, "meta-data",
                      qvm_seed_check_meta_data,
                      "meta-data is one YAML mapping, such as 'instance-id: iid-local01'; or "
                      "leave out --meta-data and qvm writes it");
    if (rc) return rc;
  } else if (qvm_seed_render_meta_data(&out->meta_data, &out->md_len, &spec, &err) < 0) {
    return qvm_cli_fail(VERB, err, NULL);
  }
  if (a->network_config)
    return read_checked(&out->network, &out->nc_len, a->network_config, "network-config",
                        qvm_seed_check_network_config,
                        "network-config is one YAML mapping with 'version: 2' (netplan style) "
                        "or 'version: 1' at its top");
  return 0;
}

/* A file that group or others cannot read. */
static bool file_private(const char *path) {
  struct stat st;
  return path && stat(path, &st) == 0 && (st.st_mode & 044) != 044;
}

/* The output's mode: 0666 less the umask, like any file a user makes, but
 * 0600 when the image holds a secret: a private key, or an input file that
 * others may not read (the image is never more readable than its inputs). */
static mode_t output_mode(const seed_args *a, const qvm_seed_file *files, size_t n) {
  bool secret = qvm_seed_files_hold_secret(files, n) || file_private(a->user_data) ||
                file_private(a->meta_data) || file_private(a->network_config);
  for (size_t i = 0; i < a->n_key_files; i++) secret = secret || file_private(a->key_files[i]);
  mode_t mask = umask(077);
  umask(mask);
  return secret ? 0600 : 0666 & ~mask;
}

static int seed_build(int argc, char **argv) {
  seed_args a = {0};
  int rc = parse_args(&a, argc, argv);
  if (rc) return rc < 0 ? QVM_EXIT_OK : rc;
  char *key_bufs[MAX_KEYS] = {0};
  const char *keys[MAX_KEYS * 4];
  size_t n_keys = 0;
  seed_files f = {0};
  if ((rc = load_keys(&a, key_bufs, keys, &n_keys)) == 0 &&
      (rc = render(&f, &a, keys, n_keys)) == 0) {
    qvm_seed_file files[] = {{"user-data", f.user_data, f.ud_len},
                             {"meta-data", f.meta_data, f.md_len},
                             {"network-config", f.network, f.nc_len}};
    qvm_error *err = NULL;
    size_t n = f.network ? 3 : 2;
    if (qvm_seed_write_iso(a.output, files, n, a.epoch, output_mode(&a, files, n), &err) < 0)
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
