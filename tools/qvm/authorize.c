/* SPDX-License-Identifier: MIT */
/* qvm authorize NAME KEYFILE [--json] */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/keystore.h>
#include <qvm/vm.h>

#include "commands.h"

#define KEYFILE_MAX (64u << 10)

static const char authorize_help[] =
    "usage: qvm authorize NAME KEYFILE [--json]\n"
    "\n"
    "Adds each public key line in KEYFILE ('-': standard input; blank lines and\n"
    "# comments are skipped) to the authorized_keys of the vm's user, once however\n"
    "often it is run: over SSH when the vm runs; else into its seed, which the\n"
    "guest's cloud-init reads at its next boot (the first one or a later one). A\n"
    "sandbox takes certificates only (qvm cert issue).\n"
    "\n"
    "  --json   print {\"name\", \"keys\", \"via\"}: via is \"ssh\", \"seed\" or, when\n"
    "           the vm started or stopped meanwhile, \"ssh+seed\"\n";

static int authorize_args(int argc, char **argv, bool *json, const char **name, const char **file) {
  static const struct option longopts[] = {{"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int c;
  optind = 1;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":h", longopts)) != -1) {
    if (c == 'j')
      *json = true;
    else if (c == 'h')
      return printf("%s", authorize_help), -1;
    else
      return qvm_cli_bad_option("authorize", c, argv);
  }
  if (argc - optind < 2)
    return qvm_cli_usage_error("authorize",
                               optind < argc ? "missing the key file" : "missing the vm name");
  if (argc - optind > 2)
    return qvm_cli_usage_error("authorize", "unexpected argument '%s'", argv[optind + 2]);
  *name = argv[optind];
  *file = argv[optind + 1];
  return 0;
}

/* KEYFILE whole, at most KEYFILE_MAX bytes, NUL-terminated; NULL with a
 * message printed on failure. */
static char *read_keys(const char *path) {
  FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
  if (!f) {
    fprintf(stderr, "qvm authorize: cannot open '%s': %s\n", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(KEYFILE_MAX + 1);
  size_t n = buf ? fread(buf, 1, KEYFILE_MAX + 1, f) : 0;
  bool failed = !buf || ferror(f);
  if (f != stdin) fclose(f);
  if (failed || n > KEYFILE_MAX) {
    fprintf(stderr, "qvm authorize: '%s': %s\n", path,
            failed ? "cannot read it" : "larger than 64 KiB: not a public key file");
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  if (strlen(buf) != n) {
    fprintf(stderr, "qvm authorize: '%s' holds a NUL byte: not a public key file\n", path);
    free(buf);
    return NULL;
  }
  return buf;
}

static int authorize_run(int argc, char **argv) {
  bool json = false;
  const char *name = NULL, *file = NULL;
  int r = authorize_args(argc, argv, &json, &name, &file);
  if (r) return r < 0 ? QVM_EXIT_OK : r;
  char *keys = read_keys(file);
  if (!keys) return QVM_EXIT_USAGE;
  qvm_error *err = NULL;
  qvm_vm *vm = NULL;
  if (qvm_cli_open(&vm, name, &err) < 0) {
    free(keys);
    return qvm_cli_fail("authorize", err, qvm_cli_vm_hint(err));
  }
  unsigned n = 0, lineno = 0, n_seed = 0;
  for (char *save = NULL, *l = strtok_r(keys, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    lineno++;
    l[strcspn(l, "\r")] = '\0';
    while (*l == ' ' || *l == '\t') l++;
    if (!*l || *l == '#') continue;
    const char *via = NULL;
    if (qvm_vm_authorize_key_via(vm, l, &via, &err) < 0) {
      fprintf(stderr, "qvm authorize: '%s' line %u (%u key%s added before it):\n", file, lineno, n,
              n == 1 ? "" : "s");
      free(keys);
      qvm_vm_free(vm);
      return qvm_cli_fail("authorize", err, NULL);
    }
    n++;
    n_seed += via && !strcmp(via, "seed");
  }
  free(keys);
  if (!n) {
    qvm_vm_free(vm);
    return qvm_cli_usage_error("authorize", "'%s' holds no public key line", file);
  }
  if (json) {
    printf("{\"name\": ");
    qvm_cli_json_string(stdout, qvm_vm_name(vm));
    /* all one way, unless the vm started or stopped in between */
    printf(", \"keys\": %u, \"via\": \"%s\"}\n", n,
           !n_seed       ? "ssh"
           : n_seed == n ? "seed"
                         : "ssh+seed");
  } else {
    if (n_seed < n)
      printf("vm '%s': %u key%s authorized over SSH\n", qvm_vm_name(vm), n - n_seed,
             n - n_seed == 1 ? "" : "s");
    if (n_seed)
      printf("vm '%s': %u key%s authorized in its seed (the guest adds %s at its next boot)\n",
             qvm_vm_name(vm), n_seed, n_seed == 1 ? "" : "s", n_seed == 1 ? "it" : "them");
  }
  qvm_vm_free(vm);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_authorize = {"authorize", "add a public key to a vm's user",
                                              authorize_run};
