/* SPDX-License-Identifier: MIT */
#include "diff/accounts.h"
#include "util/strbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

bool acct_name_valid(const char *s, size_t n) {
  if (n < 1 || n > 32 || s[0] == '-' || s[0] == '.') return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || (c == '$' && i == n - 1 && n > 1);
    if (!ok) return false;
  }
  return true;
}

/* Splits line l (n bytes) at ':' into exactly want fields. */
static bool split(const char **f, size_t *fl, int want, const char *l, size_t n) {
  int k = 0;
  const char *start = l;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && l[i] != ':') continue;
    if (k == want) return false;
    f[k] = start;
    fl[k++] = (size_t)(l + i - start);
    start = l + i + 1;
  }
  return k == want;
}

static bool parse_id(uint32_t *out, const char *s, size_t n) {
  uint64_t v = 0;
  if (n < 1 || n > 10) return false;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v > UINT32_MAX - 1) return false; /* (uid_t)-1 is no id */
  *out = (uint32_t)v;
  return true;
}

typedef int line_fn(acct_db *db, const char *l, size_t n, size_t line, qvm_error **err);

static int each_line(acct_db *db, const char *what, const char *text, size_t len, line_fn *fn,
                     qvm_error **err) {
  if (len > ACCT_MAX_FILE) return qvm_error_set(err, QVM_EINVAL, "%s is too large", what);
  if (memchr(text, '\0', len)) return qvm_error_set(err, QVM_EINVAL, "%s holds a NUL byte", what);
  size_t line = 0;
  for (size_t at = 0; at < len;) {
    const char *l = text + at, *nl = memchr(l, '\n', len - at);
    size_t n = nl ? (size_t)(nl - l) : len - at;
    at += n + 1;
    line++;
    if (n == 0 || l[0] == '#') continue;
    if (db->n_u + db->n_g >= ACCT_MAX_ENTRIES)
      return qvm_error_set(err, QVM_EINVAL, "%s has more entries than qvm reads", what);
    int r = fn(db, l, n, line, err);
    if (r < 0) return qvm_error_prefix(err, "%s", what);
  }
  return 0;
}

static int bad(qvm_error **err, size_t line, const char *why) {
  return qvm_error_set(err, QVM_EINVAL, "line %zu: %s", line, why);
}

static char *dup_field(const char *s, size_t n) { return qvm_strndup(s, n); }

static int passwd_line(acct_db *db, const char *l, size_t n, size_t line, qvm_error **err) {
  const char *f[7];
  size_t fl[7];
  acct_user u = {0};
  if (!split(f, fl, 7, l, n)) return bad(err, line, "not name:password:uid:gid:gecos:home:shell");
  if (!acct_name_valid(f[0], fl[0])) return bad(err, line, "an invalid user name");
  if (!parse_id(&u.uid, f[2], fl[2]) || !parse_id(&u.gid, f[3], fl[3]))
    return bad(err, line, "an invalid uid or gid");
  for (int i = 4; i < 7; i++)
    if (fl[i] > ACCT_MAX_FIELD) return bad(err, line, "a field is too long");
  if (!(db->n_u & (db->n_u + 1)) || !db->u) { /* grow at 2^k - 1 */
    acct_user *nu = realloc(db->u, (db->n_u + 1) * 2 * sizeof *nu);
    if (!nu) return oom(err);
    db->u = nu;
  }
  u.name = dup_field(f[0], fl[0]);
  u.gecos = dup_field(f[4], fl[4]);
  u.home = dup_field(f[5], fl[5]);
  u.shell = dup_field(f[6], fl[6]);
  db->u[db->n_u++] = u;
  if (!u.name || !u.gecos || !u.home || !u.shell) return oom(err);
  return 0;
}

static int add_member(acct_group *g, const char *s, size_t n, size_t line, qvm_error **err) {
  if (!acct_name_valid(s, n)) return bad(err, line, "an invalid member name");
  if (g->n_members >= ACCT_MAX_MEMBERS) return bad(err, line, "too many members");
  if (!(g->n_members & (g->n_members + 1)) || !g->members) {
    char **m = realloc(g->members, (g->n_members + 1) * 2 * sizeof *m);
    if (!m) return oom(err);
    g->members = m;
  }
  if (!(g->members[g->n_members] = qvm_strndup(s, n))) return oom(err);
  g->n_members++;
  return 0;
}

static int group_line(acct_db *db, const char *l, size_t n, size_t line, qvm_error **err) {
  const char *f[4];
  size_t fl[4];
  uint32_t gid;
  if (!split(f, fl, 4, l, n)) return bad(err, line, "not name:password:gid:members");
  if (!acct_name_valid(f[0], fl[0])) return bad(err, line, "an invalid group name");
  if (!parse_id(&gid, f[2], fl[2])) return bad(err, line, "an invalid gid");
  if (!(db->n_g & (db->n_g + 1)) || !db->g) {
    acct_group *ng = realloc(db->g, (db->n_g + 1) * 2 * sizeof *ng);
    if (!ng) return oom(err);
    db->g = ng;
  }
  acct_group *g = &db->g[db->n_g++];
  *g = (acct_group){.name = qvm_strndup(f[0], fl[0]), .gid = gid};
  if (!g->name) return oom(err);
  for (size_t at = 0; at < fl[3];) {
    const char *m = f[3] + at, *comma = memchr(m, ',', fl[3] - at);
    size_t ml = comma ? (size_t)(comma - m) : fl[3] - at;
    at += ml + 1;
    int r = ml ? add_member(g, m, ml, line, err) : 0;
    if (r < 0) return r;
  }
  return 0;
}

static int user_cmp(const void *a, const void *b) {
  return strcmp(((const acct_user *)a)->name, ((const acct_user *)b)->name);
}
static int group_cmp(const void *a, const void *b) {
  return strcmp(((const acct_group *)a)->name, ((const acct_group *)b)->name);
}

int acct_passwd_parse(acct_db *db, const char *text, size_t len, qvm_error **err) {
  int r = each_line(db, "/etc/passwd", text, len, passwd_line, err);
  if (r < 0) return r;
  if (db->n_u) qsort(db->u, db->n_u, sizeof *db->u, user_cmp);
  for (size_t i = 1; i < db->n_u; i++)
    if (!user_cmp(&db->u[i - 1], &db->u[i]))
      return qvm_error_set(err, QVM_EINVAL, "/etc/passwd: user '%s' appears twice", db->u[i].name);
  return 0;
}

int acct_group_parse(acct_db *db, const char *text, size_t len, qvm_error **err) {
  int r = each_line(db, "/etc/group", text, len, group_line, err);
  if (r < 0) return r;
  if (db->n_g) qsort(db->g, db->n_g, sizeof *db->g, group_cmp);
  for (size_t i = 1; i < db->n_g; i++)
    if (!group_cmp(&db->g[i - 1], &db->g[i]))
      return qvm_error_set(err, QVM_EINVAL, "/etc/group: group '%s' appears twice", db->g[i].name);
  return 0;
}

const acct_user *acct_find_user(const acct_db *db, const char *name) {
  acct_user key = {.name = (char *)name};
  return db->n_u ? bsearch(&key, db->u, db->n_u, sizeof key, user_cmp) : NULL;
}

const acct_group *acct_find_group(const acct_db *db, const char *name) {
  acct_group key = {.name = (char *)name};
  return db->n_g ? bsearch(&key, db->g, db->n_g, sizeof key, group_cmp) : NULL;
}

void acct_db_clear(acct_db *db) {
  for (size_t i = 0; i < db->n_u; i++) {
    free(db->u[i].name);
    free(db->u[i].gecos);
    free(db->u[i].home);
    free(db->u[i].shell);
  }
  for (size_t i = 0; i < db->n_g; i++) {
    free(db->g[i].name);
    for (size_t k = 0; k < db->g[i].n_members; k++) free(db->g[i].members[k]);
    free(db->g[i].members);
  }
  free(db->u);
  free(db->g);
  *db = (acct_db){0};
}
