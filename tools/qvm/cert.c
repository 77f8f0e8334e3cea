/* SPDX-License-Identifier: MIT */
/* qvm cert issue | revoke | push | ca | known-hosts: short-lived SSH
 * certificates from qvm's CA. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>

#include <qvm/cert.h>
#include <qvm/ssh.h>
#include <qvm/vm.h>

#include "commands.h"

#define TTL_MIN_S 60
#define TTL_MAX_S 600
#define MAX_PRINCIPALS 16

static const char issue_help[] =
    "usage: qvm cert issue VM -o FILE [--ttl 5m] [--principal USER]...\n"
    "                      [--source-address CIDR[,CIDR...]] [--force] [--json]\n"
    "\n"
    "Writes a fresh ed25519 key to FILE (0600) and FILE.pub, and a user certificate\n"
    "for it, signed by qvm's user CA, to FILE-cert.pub: plain 'ssh -i FILE' logs in\n"
    "to a guest whose sshd trusts the CA (qvm cert ca --print). The certificate\n"
    "allows a pty and no forwarding, and expires after the ttl.\n"
    "\n"
    "  -o, --output FILE        where the key goes (FILE must not exist, see --force)\n"
    "  --ttl DURATION           lifetime, 1m to 10m (default 5m; s or m suffix)\n"
    "  --principal USER         the guest user it logs in as (default: the vm's user);\n"
    "                           repeat for more\n"
    "  --source-address CIDRS   only from these addresses (sshd checks the client's)\n"
    "  --force                  replace FILE, FILE.pub and FILE-cert.pub\n"
    "  --json                   print {\"vm\", \"serial\", \"key_id\", \"principals\",\n"
    "                           \"valid_after\", \"valid_before\", \"identity\", "
    "\"certificate\"}\n";

static const char revoke_help[] =
    "usage: qvm cert revoke VM SERIAL|--all [--json]\n"
    "\n"
    "Revokes one user certificate issued for VM (by the serial 'qvm cert issue'\n"
    "printed), or with --all every one that has not expired, rewrites the key\n"
    "revocation list that guests' sshd reads as RevokedKeys, and pushes it to\n"
    "every running sandbox (a certificate of qvm's CA is good in any of them).\n"
    "Exit 1 when a push failed: the certificate is revoked in qvm's list and in\n"
    "the sandboxes that got it; run 'qvm cert push' again.\n"
    "  --json   {\"vm\", \"revoked\", \"krl\", \"pushed\": [{\"vm\", \"pushed\", \"error\"}]}\n";

static const char push_help[] =
    "usage: qvm cert push [SANDBOX] [--json]\n"
    "\n"
    "Pushes qvm's current key revocation list to every running sandbox (or to\n"
    "SANDBOX). A sandbox refuses qvm's certificates after a reboot until it has\n"
    "the current list again ('qvm up' pushes it too). Exit 1 when a push failed.\n"
    "  --json   [{\"vm\", \"pushed\", \"error\"}]\n";

static const char known_hosts_help[] =
    "usage: qvm cert known-hosts [--pattern PATTERN]\n"
    "\n"
    "Prints the known_hosts line that makes plain ssh trust qvm's host CA:\n"
    "  @cert-authority " QVM_CERT_KNOWN_HOSTS_PATTERN " HOST-CA-KEY\n"
    "A sandbox's host certificate names the sandbox and 127.0.0.1, so with only\n"
    "this line 'ssh -o StrictHostKeyChecking=yes -p PORT USER@127.0.0.1' reaches\n"
    "it without a prompt. With HostKeyAlias=NAME, add NAME to the pattern.\n"
    "  --pattern PATTERN   comma-separated host patterns (default " QVM_CERT_KNOWN_HOSTS_PATTERN
    ")\n";

static const char ca_help[] =
    "usage: qvm cert ca [--host] --print\n"
    "\n"
    "Prints qvm's user CA public key line (for sshd's TrustedUserCAKeys), or with\n"
    "--host the host CA's (for known_hosts: '@cert-authority * LINE').\n"
    "The CA keys are created on first use.\n";

/* "90", "90s", "5m": seconds. */
static int parse_ttl(const char *s, int64_t *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end == s || errno || v <= 0 || v > 100000) return -1;
  if (!strcmp(end, "m"))
    v *= 60;
  else if (*end && strcmp(end, "s"))
    return -1;
  *out = v;
  return 0;
}

static void print_time(FILE *f, int64_t t) {
  char buf[64];
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  fputs(buf, f);
}

static void print_issued(const qvm_cert *cert, const char *vm, const char *const *principals,
                         const char *file, const char *cert_path, bool json) {
  if (!json) {
    printf("serial %" PRIu64 ", key id %s, valid ", qvm_cert_serial(cert), qvm_cert_key_id(cert));
    print_time(stdout, qvm_cert_valid_after(cert));
    printf(" to ");
    print_time(stdout, qvm_cert_valid_before(cert));
    printf("\nkey %s, certificate %s\n", file, cert_path);
    return;
  }
  printf("{\"vm\": ");
  qvm_cli_json_string(stdout, vm);
  printf(", \"serial\": %" PRIu64 ", \"key_id\": ", qvm_cert_serial(cert));
  qvm_cli_json_string(stdout, qvm_cert_key_id(cert));
  printf(", \"principals\": [");
  for (size_t i = 0; principals[i]; i++) {
    printf(i ? ", " : "");
    qvm_cli_json_string(stdout, principals[i]);
  }
  printf("], \"valid_after\": \"");
  print_time(stdout, qvm_cert_valid_after(cert));
  printf("\", \"valid_before\": \"");
  print_time(stdout, qvm_cert_valid_before(cert));
  printf("\", \"identity\": ");
  qvm_cli_json_string(stdout, file);
  printf(", \"certificate\": ");
  qvm_cli_json_string(stdout, cert_path);
  printf("}\n");
}

typedef struct issue_args {
  const char *vm, *file, *source_address;
  const char *principals[MAX_PRINCIPALS + 1];
  size_t n_principals;
  int64_t ttl_s;
  bool json, force;
} issue_args;

static int issue_parse(issue_args *a, int argc, char **argv) {
  enum { OPT_TTL = 1, OPT_PRINCIPAL, OPT_SOURCE, OPT_JSON, OPT_FORCE };
  static const struct option longopts[] = {{"output", 1, 0, 'o'},
                                           {"ttl", 1, 0, OPT_TTL},
                                           {"principal", 1, 0, OPT_PRINCIPAL},
                                           {"source-address", 1, 0, OPT_SOURCE},
                                           {"json", 0, 0, OPT_JSON},
                                           {"force", 0, 0, OPT_FORCE},
                                           {"help", 0, 0, 'h'},
                                           {0, 0, 0, 0}};
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":o:h", longopts)) != -1) {
    if (c == 'o') {
      a->file = optarg;
    } else if (c == OPT_TTL) {
      if (parse_ttl(optarg, &a->ttl_s) < 0 || a->ttl_s < TTL_MIN_S || a->ttl_s > TTL_MAX_S)
        return qvm_cli_usage_error("cert issue",
                                   "--ttl '%s' is invalid: use 1m to 10m (60s to 600s)", optarg);
    } else if (c == OPT_PRINCIPAL) {
      if (a->n_principals == MAX_PRINCIPALS)
        return qvm_cli_usage_error("cert issue", "at most %d --principal", MAX_PRINCIPALS);
      a->principals[a->n_principals++] = optarg;
    } else if (c == OPT_SOURCE) {
      a->source_address = optarg;
    } else if (c == OPT_JSON) {
      a->json = true;
    } else if (c == OPT_FORCE) {
      a->force = true;
    } else if (c == 'h') {
      return printf("%s", issue_help), -1;
    } else {
      return qvm_cli_bad_option("cert issue", c, argv);
    }
  }
  if (optind >= argc) return qvm_cli_usage_error("cert issue", "missing the vm name");
  if (argc - optind > 1)
    return qvm_cli_usage_error("cert issue", "unexpected argument '%s'", argv[optind + 1]);
  if (!a->file || !*a->file)
    return qvm_cli_usage_error("cert issue", "missing -o FILE (where the key goes)");
  a->vm = argv[optind];
  return 0;
}

static int refuse_existing(const char *const *paths, size_t n) {
  struct stat st;
  for (size_t i = 0; i < n; i++)
    if (lstat(paths[i], &st) == 0) {
      fprintf(stderr, "qvm cert issue: '%s' already exists\nhint: remove it, or use --force\n",
              paths[i]);
      return QVM_EXIT_EXISTS;
    }
  return 0;
}

static int issue_run(int argc, char **argv) {
  issue_args a = {.ttl_s = 300};
  int r = issue_parse(&a, argc, argv);
  if (r) return r < 0 ? QVM_EXIT_OK : r;
  char *pub_path = NULL, *cert_path = NULL;
  qvm_error *err = NULL;
  qvm_vm *vm = NULL;
  qvm_cert_ca *ca = NULL;
  qvm_ssh_key *key = NULL;
  qvm_cert *cert = NULL;
  if (asprintf(&pub_path, "%s.pub", a.file) < 0 || asprintf(&cert_path, "%s-cert.pub", a.file) < 0)
    return QVM_EXIT_FAILURE;
  const char *paths[] = {a.file, pub_path, cert_path};
  if (!a.force && (r = refuse_existing(paths, 3))) goto out;
  r = QVM_EXIT_FAILURE;
  if (qvm_vm_open(&vm, a.vm, &err) < 0) {
    r = qvm_cli_fail("cert issue", err, qvm_cli_vm_hint(err));
    goto out;
  }
  if (a.n_principals == 0) a.principals[a.n_principals++] = qvm_vm_user(vm);
  qvm_cert_options o = QVM_CERT_OPTIONS_INIT;
  o.vm = a.vm;
  o.principals = a.principals;
  o.source_address = a.source_address;
  o.ttl_ms = a.ttl_s * 1000;
  if (qvm_ssh_key_generate(&key, "qvm-cert", &err) < 0 || qvm_cert_ca_open(&ca, NULL, &err) < 0)
    goto fail;
  o.public_line = qvm_ssh_key_public_line(key);
  /* Issued first, so that bad input leaves no files behind. */
  if (qvm_cert_issue(&cert, ca, &o, &err) < 0 ||
      qvm_ssh_key_write(key, a.file, pub_path, &err) < 0 ||
      qvm_cert_write(cert, cert_path, &err) < 0)
    goto fail;
  print_issued(cert, a.vm, a.principals, a.file, cert_path, a.json);
  r = QVM_EXIT_OK;
  goto out;
fail:
  r = qvm_cli_fail("cert issue", err, NULL);
out:
  qvm_cert_free(cert);
  qvm_ssh_key_free(key);
  qvm_cert_ca_free(ca);
  qvm_vm_free(vm);
  free(pub_path);
  free(cert_path);
  return r;
}

/* One line per sandbox the KRL was pushed to (JSON from qvm_cert_push). */
static void print_pushes(const char *json) {
  struct json_object *a = json_tokener_parse(json);
  size_t n = a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
  for (size_t i = 0; i < n; i++) {
    struct json_object *o = json_object_array_get_idx(a, i), *vm = NULL, *ok = NULL, *e = NULL,
                       *skip = NULL;
    json_object_object_get_ex(o, "vm", &vm);
    json_object_object_get_ex(o, "pushed", &ok);
    json_object_object_get_ex(o, "error", &e);
    json_object_object_get_ex(o, "skipped", &skip);
    if (json_object_get_boolean(ok))
      printf("sandbox '%s': krl pushed\n", json_object_get_string(vm));
    else if (json_object_get_boolean(skip))
      printf("sandbox '%s': skipped: %s\n", json_object_get_string(vm), json_object_get_string(e));
    else
      printf("sandbox '%s': krl NOT pushed: %s\n", json_object_get_string(vm),
             json_object_get_string(e));
  }
  json_object_put(a);
}

static int push_status(const char *verb, size_t failed) {
  if (!failed) return QVM_EXIT_OK;
  fprintf(stderr,
          "qvm %s: %zu running sandbox%s did not get the krl\n"
          "hint: run 'qvm cert push' once they answer over ssh\n",
          verb, failed, failed == 1 ? "" : "es");
  return QVM_EXIT_FAILURE;
}

static int revoke_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"all", 0, 0, 'a'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  bool all = false, json = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'a')
      all = true;
    else if (c == 'j')
      json = true;
    else if (c == 'h')
      return printf("%s", revoke_help), QVM_EXIT_OK;
    else
      return qvm_cli_bad_option("cert revoke", c, argv);
  }
  int want = all ? 1 : 2;
  if (argc - optind < want)
    return qvm_cli_usage_error("cert revoke", optind < argc ? "missing the serial (or --all)"
                                                            : "missing the vm name");
  if (argc - optind > want)
    return qvm_cli_usage_error("cert revoke", "unexpected argument '%s'", argv[optind + want]);
  uint64_t serial = 0;
  if (!all) {
    const char *s = argv[optind + 1];
    char *end = NULL;
    errno = 0;
    serial = strtoull(s, &end, 10);
    if (!*s || *end || errno || serial == 0 || *s == '-' || *s == '+')
      return qvm_cli_usage_error("cert revoke", "serial '%s' is invalid", s);
  }
  qvm_error *err = NULL;
  qvm_cert_ca *ca = NULL;
  size_t n = 0, failed = 0;
  char *pushed = NULL;
  if (qvm_cert_ca_open(&ca, NULL, &err) < 0 ||
      qvm_cert_revoke(&n, ca, argv[optind], serial, &err) < 0 ||
      qvm_cert_push(&pushed, &failed, ca, NULL, &err) < 0) {
    qvm_cert_ca_free(ca);
    return qvm_cli_fail("cert revoke", err, NULL);
  }
  if (json) {
    printf("{\"vm\": ");
    qvm_cli_json_string(stdout, argv[optind]);
    printf(", \"revoked\": %zu, \"krl\": ", n);
    qvm_cli_json_string(stdout, qvm_cert_ca_krl_path(ca));
    printf(", \"pushed\": %s}\n", pushed);
  } else {
    printf("vm '%s': %zu certificate%s newly revoked (krl %s)\n", argv[optind], n,
           n == 1 ? "" : "s", qvm_cert_ca_krl_path(ca));
    print_pushes(pushed);
  }
  free(pushed);
  qvm_cert_ca_free(ca);
  return push_status("cert revoke", failed);
}

static int push_run(int argc, char **argv) {
  static const struct option longopts[] = {{"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  bool json = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'j')
      json = true;
    else if (c == 'h')
      return printf("%s", push_help), QVM_EXIT_OK;
    else
      return qvm_cli_bad_option("cert push", c, argv);
  }
  if (argc - optind > 1)
    return qvm_cli_usage_error("cert push", "unexpected argument '%s'", argv[optind + 1]);
  const char *vm = optind < argc ? argv[optind] : NULL;
  qvm_error *err = NULL;
  qvm_cert_ca *ca = NULL;
  size_t failed = 0;
  char *pushed = NULL;
  if (qvm_cert_ca_open(&ca, NULL, &err) < 0 || qvm_cert_push(&pushed, &failed, ca, vm, &err) < 0) {
    qvm_cert_ca_free(ca);
    return qvm_cli_fail("cert push", err, NULL);
  }
  if (json)
    printf("%s\n", pushed);
  else
    print_pushes(pushed);
  free(pushed);
  qvm_cert_ca_free(ca);
  return push_status("cert push", failed);
}

static int known_hosts_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"pattern", 1, 0, 'p'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  const char *pattern = NULL;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'p')
      pattern = optarg;
    else if (c == 'h')
      return printf("%s", known_hosts_help), QVM_EXIT_OK;
    else
      return qvm_cli_bad_option("cert known-hosts", c, argv);
  }
  if (optind < argc)
    return qvm_cli_usage_error("cert known-hosts", "unexpected argument '%s'", argv[optind]);
  qvm_error *err = NULL;
  qvm_cert_ca *ca = NULL;
  char *line = NULL;
  if (qvm_cert_ca_open(&ca, NULL, &err) < 0 ||
      qvm_cert_known_hosts_line(&line, ca, pattern, &err) < 0) {
    qvm_cert_ca_free(ca);
    return qvm_cli_fail("cert known-hosts", err, NULL);
  }
  printf("%s\n", line);
  free(line);
  qvm_cert_ca_free(ca);
  return QVM_EXIT_OK;
}

static int ca_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"host", 0, 0, 'H'}, {"print", 0, 0, 'p'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  bool host = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'H')
      host = true;
    else if (c == 'h')
      return printf("%s", ca_help), QVM_EXIT_OK;
    else if (c != 'p')
      return qvm_cli_bad_option("cert ca", c, argv);
  }
  if (optind < argc)
    return qvm_cli_usage_error("cert ca", "unexpected argument '%s'", argv[optind]);
  qvm_error *err = NULL;
  qvm_cert_ca *ca = NULL;
  if (qvm_cert_ca_open(&ca, NULL, &err) < 0) return qvm_cli_fail("cert ca", err, NULL);
  printf("%s\n", qvm_cert_ca_public_line(ca, host ? QVM_CERT_HOST : QVM_CERT_USER));
  qvm_cert_ca_free(ca);
  return QVM_EXIT_OK;
}

static const struct qvm_command cert_issue = {"issue", "a short-lived user certificate and key",
                                              issue_run};
static const struct qvm_command cert_revoke = {"revoke", "revoke certificates issued for a vm",
                                               revoke_run};
static const struct qvm_command cert_ca = {"ca", "print a CA public key line", ca_run};
static const struct qvm_command cert_push = {"push", "push the krl to running sandboxes", push_run};
static const struct qvm_command cert_known_hosts = {
    "known-hosts", "print the @cert-authority line for known_hosts", known_hosts_run};
static const struct qvm_command *const subcommands[] = {&cert_issue, &cert_revoke, &cert_push,
                                                        &cert_ca, &cert_known_hosts};

static void usage(FILE *f) {
  fprintf(f, "usage: qvm cert SUBCOMMAND [OPTIONS]\n\n"
             "Short-lived OpenSSH certificates signed by qvm's own CA (see docs/cli.md).\n\n"
             "subcommands:\n");
  for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
    fprintf(f, "  %-10s %s\n", subcommands[i]->name, subcommands[i]->summary);
  fprintf(f, "\nRun 'qvm cert SUBCOMMAND --help' for its options.\n");
}

static int cert_run(int argc, char **argv) {
  return qvm_cli_dispatch("cert", usage, subcommands, sizeof subcommands / sizeof *subcommands,
                          argc, argv);
}

const struct qvm_command qvm_cmd_cert = {"cert", "short-lived ssh certificates from qvm's CA",
                                         cert_run};
