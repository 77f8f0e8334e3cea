/* SPDX-License-Identifier: MIT */
#ifndef QVM_DIFF_SYSTEM_H
#define QVM_DIFF_SYSTEM_H

/* Packages, units and accounts of the two states, and how they differ. */
#include <qvm/diff.h>

#include "diff/accounts.h"
#include "diff/dpkg.h"
#include "diff/walk.h"

typedef struct diff_package {
  qvm_diff_kind kind;
  const dpkg_pkg *from, *to;
} diff_package;

typedef struct diff_unit {
  char *name;
  qvm_diff_unit_change change;
} diff_unit;

typedef struct diff_user {
  qvm_diff_kind kind;
  const acct_user *u;
  const char **groups; /* names borrowed from the side's acct_db */
  size_t n_groups;
} diff_user;

typedef struct diff_group {
  qvm_diff_kind kind;
  const acct_group *g;
} diff_group;

typedef struct diff_path_list {
  char **v;
  size_t n, cap;
} diff_path_list;

typedef struct diff_system {
  dpkg_db dpkg[2];
  acct_db acct[2];
  bool have_acct; /* both sides' passwd and group were read */
  diff_package *pkgs;
  size_t n_pkgs;
  diff_unit *units;
  size_t n_units;
  diff_user *users;
  size_t n_users;
  diff_group *groups;
  size_t n_groups;
  /* Sorted, canonical (symlinked directories such as a merged /usr's /lib
   * resolved in that side's tree): [0] what the removed or upgraded
   * packages shipped, [1] what the installed or upgraded ones ship. */
  diff_path_list lists[2];
} diff_system;

/* Reads side's (0: from, 1: to) dpkg status, passwd and group. */
int diff_system_read(diff_system *s, int side, diff_fs *fs, qvm_error **err);
/* Compares what was read, and the units of the two walked trees. */
int diff_system_compare(diff_system *s, const diff_tree *from, const diff_tree *to,
                        qvm_error **err);
/* The file lists (/var/lib/dpkg/info/PKG.list) of side's packages that
 * changed, read from fs, whose walked tree is t. */
int diff_system_read_lists(diff_system *s, int side, diff_fs *fs, const diff_tree *t,
                           qvm_error **err);
/* path is shipped by a package installed or upgraded: apt makes it. */
bool diff_system_ships(const diff_system *s, const char *path);
/* path (deleted) was shipped by a package removed or upgraded and is not
 * shipped by the new side's: apt removes it. */
bool diff_system_apt_removes(const diff_system *s, const char *path);
/* A file that may be absent: *out NULL then. */
int diff_read_optional(char **out, size_t *len, diff_fs *fs, const char *path, size_t max,
                       qvm_error **err);
/* path with the symlinked directories of its prefix resolved in tree t (at
 * most 8 links; a path that then exceeds DIFF_MAX_PATH stays as it was). */
char *diff_canonical_path(const diff_tree *t, const char *path, size_t len);
/* The conffile entry of path in a package installed or upgraded, or NULL. */
const dpkg_conffile *diff_system_conffile(const diff_system *s, const char *path);
/* The name apt installs: NAME, or NAME:ARCH for a foreign architecture. */
int diff_system_apt_name(char **out, const diff_system *s, const dpkg_pkg *p);
void diff_system_clear(diff_system *s);

/* A unit name systemd accepts: [A-Za-z0-9:_.\\@-], a known suffix. */
bool diff_unit_name_valid(const char *s);

#endif
