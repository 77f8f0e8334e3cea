/* SPDX-License-Identifier: MIT */
#ifndef QVM_DIFF_INTERNAL_H
#define QVM_DIFF_INTERNAL_H

/* The diff object shared by diff.c, content.c and ansible.c. */
#include <stdbool.h>
#include <stdint.h>

#include <qvm/diff.h>

#include "diff/compare.h"
#include "diff/system.h"
#include "diff/walk.h"

struct qvm_diff {
  diff_tree from, to;
  diff_change *c;
  size_t n;
  uint64_t bytes_hashed;
  bool journal_pending; /* either state's ext4 journal was not replayed */
  char *content_dir;    /* keep_content: <sha256 hex> files, 0600 in a 0700 dir */
  diff_system sys;      /* packages, units, accounts */
};

/* Needs the "to" content for a playbook: a regular file added, or one whose
 * content or type changed. */
bool diff_change_needs_content(const diff_change *c);
/* Copies every needed content from fs (the "to" state) into a new private
 * directory, once per sha256, within the caps. */
int diff_content_keep(qvm_diff *d, diff_fs *fs, uint64_t max_file, uint64_t max_total,
                      qvm_error **err);
void diff_sha_hex(char out[65], const uint8_t sha[32]);
/* Computes the md5 of each added or changed conffile of a package
 * installed or upgraded whose content was not kept (one over max_file
 * bytes is left unknown), so that diff_change_by_package can tell an
 * edited one. */
int diff_conffile_md5s(qvm_diff *d, diff_fs *fs, uint64_t max_file, qvm_error **err);
/* The change is apt's: a path a package installed or upgraded ships (a
 * conffile only with the content the package recorded), or a deletion of
 * what a package removed or upgraded shipped and the new side does not.
 * The playbook leaves it to the apt task; the JSON marks it "package". */
bool diff_change_by_package(const qvm_diff *d, const diff_change *c);

#endif
