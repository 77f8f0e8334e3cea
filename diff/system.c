/* SPDX-License-Identifier: MIT */
/* Packages (dpkg's status), systemd enablement (symlinks in the walked
 * trees) and accounts (/etc/passwd, /etc/group) of two states, read from
 * the disk like the files (docs/ARCHITECTURE.md, "Diff"). */
#include "diff/system.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"

#define LIST_MAX (16u << 20)

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

int diff_read_optional(char **out, size_t *len, diff_fs *fs, const char *path, size_t max,
                       qvm_error **err) {
  qvm_error *e = NULL;
  *out = NULL;
  int r = diff_fs_read_path(fs, path, max, out, len, &e);
  if (r == QVM_ENOTFOUND) {
    qvm_error_free(e);
    return 0;
  }
  return r < 0 ? qvm_error_propagate(err, e) : 0;
}

int diff_system_read(diff_system *s, int side, diff_fs *fs, qvm_error **err) {
  _cleanup_free_ char *status = NULL, *passwd = NULL, *group = NULL;
  size_t ls = 0, lp = 0, lg = 0;
  int r = diff_read_optional(&status, &ls, fs, "/var/lib/dpkg/status", DPKG_MAX_STATUS, err);
  if (r >= 0 && status && (r = dpkg_status_parse(&s->dpkg[side], status, ls, err)) < 0)
    qvm_error_prefix(err, "/var/lib/dpkg/status");
  if (r >= 0) r = diff_read_optional(&passwd, &lp, fs, "/etc/passwd", ACCT_MAX_FILE, err);
  if (r >= 0) r = diff_read_optional(&group, &lg, fs, "/etc/group", ACCT_MAX_FILE, err);
  if (r >= 0 && passwd) r = acct_passwd_parse(&s->acct[side], passwd, lp, err);
  if (r >= 0 && group) r = acct_group_parse(&s->acct[side], group, lg, err);
  bool both = passwd && group;
  s->have_acct = side == 0 ? both : s->have_acct && both;
  return r;
}

/* Packages: a merge of the two sorted lists. */
static int compare_packages(diff_system *s, qvm_error **err) {
  const dpkg_db *a = &s->dpkg[0], *b = &s->dpkg[1];
  s->pkgs = calloc(a->n + b->n + 1, sizeof *s->pkgs);
  if (!s->pkgs) return oom(err);
  size_t i = 0, j = 0;
  while (i < a->n || j < b->n) {
    int c = i == a->n   ? 1
            : j == b->n ? -1
                        : (strcmp(a->p[i].name, b->p[j].name) ? strcmp(a->p[i].name, b->p[j].name)
                                                              : strcmp(a->p[i].arch, b->p[j].arch));
    if (c < 0)
      s->pkgs[s->n_pkgs++] = (diff_package){QVM_DIFF_DELETED, &a->p[i++], NULL};
    else if (c > 0)
      s->pkgs[s->n_pkgs++] = (diff_package){QVM_DIFF_ADDED, NULL, &b->p[j++]};
    else if (strcmp(a->p[i].version, b->p[j].version))
      s->pkgs[s->n_pkgs++] = (diff_package){QVM_DIFF_MODIFIED, &a->p[i++], &b->p[j++]};
    else
      i++, j++;
  }
  return 0;
}

bool diff_unit_name_valid(const char *s) {
  static const char *const suffixes[] = {".service", ".socket", ".target",    ".timer",
                                         ".path",    ".mount",  ".automount", ".swap",
                                         ".slice",   ".scope",  ".device"};
  size_t n = strlen(s);
  if (n < 3 || n > 255 || s[0] == '.' || s[0] == '-') return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || strchr(":_.\\@-", s[i])))
      return false;
  for (size_t k = 0; k < QVM_ARRAY_SIZE(suffixes); k++) {
    size_t sl = strlen(suffixes[k]);
    if (n > sl && !strcmp(s + n - sl, suffixes[k])) return true;
  }
  return false;
}

#define UNIT_DIR "/etc/systemd/system/"

/* The unit an entry enables (*masked false) or masks (true), or NULL. */
static const char *unit_of(const diff_entry *e, bool *masked) {
  size_t pl = strlen(UNIT_DIR);
  if (e->type != 'l' || e->path_len <= pl || memcmp(e->path, UNIT_DIR, pl)) return NULL;
  const char *rest = e->path + pl, *slash = strchr(rest, '/');
  if (!slash) {
    *masked = true;
    return e->target_len == 9 && !memcmp(e->target, "/dev/null", 9) && diff_unit_name_valid(rest)
               ? rest
               : NULL;
  }
  size_t dl = (size_t)(slash - rest);
  bool wants =
      (dl > 6 && !memcmp(slash - 6, ".wants", 6)) || (dl > 9 && !memcmp(slash - 9, ".requires", 9));
  *masked = false;
  return wants && !strchr(slash + 1, '/') && diff_unit_name_valid(slash + 1) ? slash + 1 : NULL;
}

typedef struct name_set {
  const char **v;
  size_t n;
} name_set;

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The enabled (masked false) or masked units of a tree, sorted, unique. */
static int units_of(name_set *out, const diff_tree *t, bool want_masked, qvm_error **err) {
  out->v = calloc(t->n + 1, sizeof *out->v);
  if (!out->v) return oom(err);
  out->n = 0;
  for (size_t i = 0; i < t->n; i++) {
    bool masked = false;
    const char *u = unit_of(&t->e[i], &masked);
    if (u && masked == want_masked) out->v[out->n++] = u;
  }
  qsort(out->v, out->n, sizeof *out->v, str_cmp);
  size_t k = 0;
  for (size_t i = 0; i < out->n; i++)
    if (!k || strcmp(out->v[k - 1], out->v[i])) out->v[k++] = out->v[i];
  out->n = k;
  return 0;
}

static int push_unit(diff_system *s, size_t *cap, const char *name, qvm_diff_unit_change c,
                     qvm_error **err) {
  if (s->n_units == *cap) {
    size_t nc = *cap ? *cap * 2 : 16;
    diff_unit *u = realloc(s->units, nc * sizeof *u);
    if (!u) return oom(err);
    s->units = u, *cap = nc;
  }
  char *copy = strdup(name);
  if (!copy) return oom(err);
  s->units[s->n_units++] = (diff_unit){copy, c};
  return 0;
}

static int unit_cmp(const void *a, const void *b) {
  const diff_unit *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : (int)x->change - (int)y->change;
}

static int compare_units(diff_system *s, const diff_tree *from, const diff_tree *to,
                         qvm_error **err) {
  size_t cap = 0;
  int r = 0;
  for (int masked = 0; masked < 2 && r >= 0; masked++) {
    name_set a = {0}, b = {0};
    r = units_of(&a, from, masked, err);
    if (r >= 0) r = units_of(&b, to, masked, err);
    qvm_diff_unit_change on = masked ? QVM_DIFF_UNIT_MASKED : QVM_DIFF_UNIT_ENABLED;
    qvm_diff_unit_change off = masked ? QVM_DIFF_UNIT_UNMASKED : QVM_DIFF_UNIT_DISABLED;
    for (size_t i = 0, j = 0; r >= 0 && (i < a.n || j < b.n);) {
      int c = i == a.n ? 1 : j == b.n ? -1 : strcmp(a.v[i], b.v[j]);
      if (c < 0)
        r = push_unit(s, &cap, a.v[i++], off, err);
      else if (c > 0)
        r = push_unit(s, &cap, b.v[j++], on, err);
      else
        i++, j++;
    }
    free(a.v);
    free(b.v);
  }
  if (r >= 0 && s->n_units) qsort(s->units, s->n_units, sizeof *s->units, unit_cmp);
  return r;
}

static bool is_member(const acct_group *g, const char *user) {
  for (size_t i = 0; i < g->n_members; i++)
    if (!strcmp(g->members[i], user)) return true;
  return false;
}

/* The groups of db that list user, sorted (db->g is). */
static int groups_of(diff_user *du, const acct_db *db, qvm_error **err) {
  for (size_t i = 0; i < db->n_g; i++)
    if (is_member(&db->g[i], du->u->name)) du->n_groups++;
  du->groups = calloc(du->n_groups + 1, sizeof *du->groups);
  if (!du->groups) return oom(err);
  du->n_groups = 0;
  for (size_t i = 0; i < db->n_g; i++)
    if (is_member(&db->g[i], du->u->name)) du->groups[du->n_groups++] = db->g[i].name;
  return 0;
}

static bool same_groups(const diff_user *a, const diff_user *b) {
  if (a->n_groups != b->n_groups) return false;
  for (size_t i = 0; i < a->n_groups; i++)
    if (strcmp(a->groups[i], b->groups[i])) return false;
  return true;
}

static bool same_user(const acct_user *a, const acct_user *b) {
  return a->uid == b->uid && a->gid == b->gid && !strcmp(a->gecos, b->gecos) &&
         !strcmp(a->home, b->home) && !strcmp(a->shell, b->shell);
}

static int compare_users(diff_system *s, qvm_error **err) {
  const acct_db *a = &s->acct[0], *b = &s->acct[1];
  s->users = calloc(a->n_u + b->n_u + 1, sizeof *s->users);
  if (!s->users) return oom(err);
  size_t i = 0, j = 0;
  int r = 0;
  while (r >= 0 && (i < a->n_u || j < b->n_u)) {
    int c = i == a->n_u ? 1 : j == b->n_u ? -1 : strcmp(a->u[i].name, b->u[j].name);
    diff_user *du = &s->users[s->n_users];
    if (c < 0) {
      *du = (diff_user){.kind = QVM_DIFF_DELETED, .u = &a->u[i++]};
      if ((r = groups_of(du, a, err)) >= 0) s->n_users++;
      continue;
    }
    *du = (diff_user){.kind = c > 0 ? QVM_DIFF_ADDED : QVM_DIFF_MODIFIED, .u = &b->u[j++]};
    if ((r = groups_of(du, b, err)) < 0) break;
    if (c > 0) {
      s->n_users++;
      continue;
    }
    diff_user old = {.u = &a->u[i++]};
    if ((r = groups_of(&old, a, err)) < 0) {
      free(du->groups);
      break;
    }
    if (!same_user(old.u, du->u) || !same_groups(&old, du))
      s->n_users++;
    else
      free(du->groups), du->groups = NULL;
    free(old.groups);
  }
  return r;
}

static bool same_group(const acct_group *x, const acct_group *y) {
  if (x->gid != y->gid || x->n_members != y->n_members) return false;
  for (size_t i = 0; i < x->n_members; i++)
    if (strcmp(x->members[i], y->members[i])) return false;
  return true;
}

static int compare_groups(diff_system *s, qvm_error **err) {
  const acct_db *a = &s->acct[0], *b = &s->acct[1];
  s->groups = calloc(a->n_g + b->n_g + 1, sizeof *s->groups);
  if (!s->groups) return oom(err);
  size_t i = 0, j = 0;
  while (i < a->n_g || j < b->n_g) {
    int c = i == a->n_g ? 1 : j == b->n_g ? -1 : strcmp(a->g[i].name, b->g[j].name);
    if (c < 0)
      s->groups[s->n_groups++] = (diff_group){QVM_DIFF_DELETED, &a->g[i++]};
    else if (c > 0)
      s->groups[s->n_groups++] = (diff_group){QVM_DIFF_ADDED, &b->g[j++]};
    else if (!same_group(&a->g[i++], &b->g[j++]))
      s->groups[s->n_groups++] = (diff_group){QVM_DIFF_MODIFIED, &b->g[j - 1]};
  }
  return 0;
}

int diff_system_compare(diff_system *s, const diff_tree *from, const diff_tree *to,
                        qvm_error **err) {
  int r = compare_packages(s, err);
  if (r >= 0) r = compare_units(s, from, to, err);
  /* Accounts only when both sides have them: a side without /etc/passwd
   * is no system to compare with. */
  if (r >= 0 && s->have_acct) r = compare_users(s, err);
  if (r >= 0 && s->have_acct) r = compare_groups(s, err);
  return r;
}

const dpkg_conffile *diff_system_conffile(const diff_system *s, const char *path) {
  for (size_t i = 0; i < s->n_pkgs; i++) {
    const dpkg_pkg *p = s->pkgs[i].to;
    for (size_t k = 0; p && k < p->n_conf; k++)
      if (!strcmp(p->conf[k].path, path)) return &p->conf[k];
  }
  return NULL;
}

int diff_system_apt_name(char **out, const diff_system *s, const dpkg_pkg *p) {
  const dpkg_db *db = &s->dpkg[1];
  const char *native = NULL;
  for (size_t i = 0; i < db->n && !native; i++)
    if (!strcmp(db->p[i].name, "dpkg")) native = db->p[i].arch;
  bool plain = !strcmp(p->arch, "all") || !native || !strcmp(p->arch, native);
  *out = plain ? strdup(p->name) : NULL;
  if (!plain && asprintf(out, "%s:%s", p->name, p->arch) < 0) *out = NULL;
  return *out ? 0 : -ENOMEM;
}

void diff_system_clear(diff_system *s) {
  for (int i = 0; i < 2; i++) {
    dpkg_db_clear(&s->dpkg[i]);
    acct_db_clear(&s->acct[i]);
  }
  free(s->pkgs);
  for (size_t i = 0; i < s->n_units; i++) free(s->units[i].name);
  free(s->units);
  for (size_t i = 0; i < s->n_users; i++) free(s->users[i].groups);
  free(s->users);
  free(s->groups);
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; i < s->lists[k].n; i++) free(s->lists[k].v[i]);
    free(s->lists[k].v);
  }
  *s = (diff_system){0};
}
