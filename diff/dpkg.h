/* SPDX-License-Identifier: MIT */
#ifndef QVM_DIFF_DPKG_H
#define QVM_DIFF_DPKG_H

/* dpkg's status file (/var/lib/dpkg/status), parsed as read from the disk:
 * guest bytes, so every field is bounded and checked; pure. */
#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

#define DPKG_MAX_STATUS (64u << 20)
#define DPKG_MAX_PACKAGES 200000u
#define DPKG_MAX_CONFFILES 20000u
#define DPKG_MAX_FIELD 4096u

typedef struct dpkg_conffile {
  char *path;
  char md5[33]; /* hex, or "" (dpkg writes "newconffile" while unpacking) */
} dpkg_conffile;

typedef struct dpkg_pkg {
  char *name, *arch, *version;
  dpkg_conffile *conf;
  size_t n_conf;
} dpkg_pkg;

/* The installed packages (Status "... installed"), sorted by name, arch. */
typedef struct dpkg_db {
  dpkg_pkg *p;
  size_t n;
} dpkg_db;

/* QVM_EINVAL (naming the line) for text that is not a status file: a bad
 * package name or version, a field too long, a package twice, more than
 * the bounds above. */
int dpkg_status_parse(dpkg_db *out, const char *text, size_t len, qvm_error **err);
const dpkg_pkg *dpkg_find(const dpkg_db *db, const char *name, const char *arch);
void dpkg_db_clear(dpkg_db *db);
bool dpkg_name_valid(const char *s);
bool dpkg_version_valid(const char *s);

#endif
