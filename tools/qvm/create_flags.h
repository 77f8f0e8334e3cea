/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_CREATE_FLAGS_H
#define QVM_TOOLS_CREATE_FLAGS_H

/*
 * The flags that describe a new VM (`qvm create`, and `qvm up`, which takes
 * the same ones). A verb builds its getopt_long table with
 * qvm_cli_create_longopts() (the create flags plus its own), hands every
 * option it gets to qvm_cli_create_flag() first, then calls
 * qvm_cli_create_flags_finish() and uses .opts.
 *
 *   __attribute__((cleanup(qvm_cli_create_flags_clear)))
 *   qvm_cli_create_flags f = QVM_CLI_CREATE_FLAGS_INIT;
 *   struct option lo[64];
 *   qvm_cli_create_longopts(lo, 64, my_options);
 *   while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
 *     int r = qvm_cli_create_flag("up", &f, c, optarg);
 *     if (r > 0) return r;            // usage error, already printed
 *     if (r < 0) ... one of my own options ...
 *   }
 *   qvm_cli_create_flags_finish(&f);  // f.opts is ready
 */
#include <getopt.h>
#include <stddef.h>

#include <qvm/vm.h>

#include "progress.h"

#define QVM_CLI_LIST_MAX 32

typedef struct qvm_cli_create_flags {
  qvm_vm_create_options opts;
  /* The string syntaxes parsed into the typed options (qvm_vm_*_parse). */
  qvm_vm_publish publish[QVM_CLI_LIST_MAX];
  qvm_vm_drive drives[QVM_CLI_LIST_MAX];
  qvm_vm_step provision[QVM_CLI_LIST_MAX];
  const char *cdroms[QVM_CLI_LIST_MAX];
  const char *cloud_configs[QVM_CLI_LIST_MAX], *keys[QVM_CLI_LIST_MAX];
  size_t n_publish, n_cdroms, n_drives, n_cloud_configs, n_keys, n_provision;
  qvm_vm_label labels[QVM_VM_LABELS_MAX]; /* --label, parsed (qvm_vm_label_parse) */
  size_t n_labels;
  qvm_vm_mount mounts[QVM_VM_MOUNTS_MAX]; /* --mount, parsed (qvm_vm_mount_parse) */
  size_t n_mounts;
  /* --image-sha256, --image-checksums, and progress, for an --image that
   * is pulled on first use. */
  qvm_image_pull_options pull;
  qvm_cli_progress progress;
} qvm_cli_create_flags;

#define QVM_CLI_CREATE_FLAGS_INIT                                                                  \
  { .opts = QVM_VM_CREATE_OPTIONS_INIT, .pull = QVM_IMAGE_PULL_OPTIONS_INIT }

/* getopt values of the create flags: 0x1000 and up, clear of any letter a
 * verb uses for its own options. */
enum { QVM_CLI_CREATE_OPT_FIRST = 0x1000, QVM_CLI_CREATE_OPT_LAST = 0x10ff };

/* Fills out[] with the create flags, then `extra` (its own table, ending in
 * a zero entry; may be NULL), then the terminating zero entry. Returns the
 * number of entries written without the terminator, or -1 if cap is too
 * small. */
int qvm_cli_create_longopts(struct option *out, size_t cap, const struct option *extra);

/* Handles one getopt_long result: 0 = it was a create flag and is recorded,
 * -1 = not a create flag (the verb's own), > 0 = an exit code (the usage
 * error is printed, naming `verb`). */
int qvm_cli_create_flag(const char *verb, qvm_cli_create_flags *f, int c, const char *arg);

/* Points f->opts' lists at the recorded values, and its image_pull at
 * f->pull with progress on stderr. */
void qvm_cli_create_flags_finish(qvm_cli_create_flags *f);
/* Frees what the parsed drives and steps hold. */
void qvm_cli_create_flags_clear(qvm_cli_create_flags *f);

/* --label KEY=VALUE into labels[*n] (at most QVM_VM_LABELS_MAX; free each
 * with qvm_vm_label_clear) and --agent ID checked: 0, or the exit code of
 * the usage error it printed. */
int qvm_cli_label_arg(const char *verb, qvm_vm_label *labels, size_t *n, const char *arg);
int qvm_cli_agent_arg(const char *verb, const char *arg);

/* The flags' lines for a verb's --help. */
extern const char qvm_cli_create_flags_help[];

/* --cpus (1 to 255) and a size flag (the library's grammar, at least min):
 * a bad value is a usage error (its exit code returned, 0 when good). */
int qvm_cli_parse_cpus(const char *verb, const char *s, unsigned *out);
int qvm_cli_parse_size(const char *verb, const char *opt, const char *what, const char *s,
                       uint64_t min, uint64_t *out);

#endif
