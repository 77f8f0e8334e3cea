/* SPDX-License-Identifier: MIT */
#ifndef QVM_DIFF_ACCOUNTS_H
#define QVM_DIFF_ACCOUNTS_H

/* /etc/passwd and /etc/group as read from the disk: guest bytes, bounded
 * and checked; pure. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define ACCT_MAX_FILE (4u << 20)
#define ACCT_MAX_ENTRIES 100000u
#define ACCT_MAX_MEMBERS 10000u
#define ACCT_MAX_FIELD 1024u

typedef struct acct_user {
  char *name, *gecos, *home, *shell;
  uint32_t uid, gid;
} acct_user;

typedef struct acct_group {
  char *name;
  uint32_t gid;
  char **members;
  size_t n_members;
} acct_group;

/* Sorted by name; a name twice is QVM_EINVAL. */
typedef struct acct_db {
  acct_user *u;
  size_t n_u;
  acct_group *g;
  size_t n_g;
} acct_db;

/* A user or group name: [A-Za-z0-9_][A-Za-z0-9_.-]*[$]?, 1 to 32 bytes. */
bool acct_name_valid(const char *s, size_t n);
/* name:password:uid:gid:gecos:home:shell lines; NIS "+" / "-" lines are
 * refused (QVM_EINVAL naming the line), as is anything not 7 fields. */
int acct_passwd_parse(acct_db *db, const char *text, size_t len, qvm_error **err);
/* name:password:gid:member,member lines. */
int acct_group_parse(acct_db *db, const char *text, size_t len, qvm_error **err);
const acct_user *acct_find_user(const acct_db *db, const char *name);
const acct_group *acct_find_group(const acct_db *db, const char *name);
void acct_db_clear(acct_db *db);

#endif
