/* SPDX-License-Identifier: MIT */
#include "diff/dpkg.h"
#include "util/strbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

/* Debian policy 5.6.1: lower case letters, digits, '+', '-', '.'; at least
 * two characters, starting with a letter or digit. */
bool dpkg_name_valid(const char *s) {
  size_t n = strlen(s);
  if (n < 2 || n > 128 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || strchr("+-.", s[i])))
      return false;
  return true;
}

/* Policy 5.6.12: [epoch:]upstream[-revision], alphanumerics and . + ~ - :
 * (checked as a character set; a version starts with a digit). */
bool dpkg_version_valid(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 256 || !(s[0] >= '0' && s[0] <= '9')) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || strchr(".+~-:", s[i])))
      return false;
  return true;
}

static bool arch_valid(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 32) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
      return false;
  return true;
}

typedef struct stanza {
  char *name, *arch, *version, *status;
  dpkg_conffile *conf;
  size_t n_conf, cap_conf;
  bool any, in_conf;
  size_t line; /* where it starts */
} stanza;

typedef struct parser {
  dpkg_db db;
  size_t cap;
  stanza s;
  size_t line;
  qvm_error **err;
} parser;

static void pkg_free(dpkg_pkg *p) {
  free(p->name);
  free(p->arch);
  free(p->version);
  for (size_t i = 0; i < p->n_conf; i++) free(p->conf[i].path);
  free(p->conf);
}

static void stanza_clear(stanza *s) {
  dpkg_pkg p = {s->name, s->arch, s->version, s->conf, s->n_conf};
  pkg_free(&p);
  free(s->status);
  *s = (stanza){0};
}

static int bad(parser *ps, const char *why) {
  return qvm_error_set(ps->err, QVM_EINVAL, "line %zu: %s", ps->line, why);
}

static bool installed(const char *status) {
  /* "want flag status", e.g. "install ok installed" */
  const char *last = strrchr(status, ' ');
  return last && !strcmp(last + 1, "installed") &&
         !strncmp(status + strcspn(status, " "), " ok ", 4);
}

static int finish(parser *ps) {
  stanza *s = &ps->s;
  if (!s->any) return 0;
  if (!s->name) return bad(ps, "a paragraph without a Package field ends here");
  if (!s->status || !installed(s->status)) {
    stanza_clear(s);
    return 0;
  }
  if (!s->version || !dpkg_version_valid(s->version))
    return bad(ps, "an installed package without a valid Version ends here");
  if (!s->arch && !(s->arch = strdup("all"))) return oom(ps->err);
  if (ps->db.n >= DPKG_MAX_PACKAGES) return bad(ps, "more installed packages than qvm reads");
  if (ps->db.n == ps->cap) {
    size_t cap = ps->cap ? ps->cap * 2 : 256;
    dpkg_pkg *p = realloc(ps->db.p, cap * sizeof *p);
    if (!p) return oom(ps->err);
    ps->db.p = p, ps->cap = cap;
  }
  ps->db.p[ps->db.n++] = (dpkg_pkg){s->name, s->arch, s->version, s->conf, s->n_conf};
  free(s->status);
  *s = (stanza){0};
  return 0;
}

static int conffile(parser *ps, const char *v, size_t n) {
  stanza *s = &ps->s;
  while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
  while (n && (*v == ' ' || *v == '\t')) v++, n--;
  if (!n) return 0;
  /* "/path md5 [obsolete|remove-on-upgrade]..." */
  bool obsolete = false;
  const char *sp;
  for (;;) {
    sp = memrchr(v, ' ', n);
    if (!sp) return bad(ps, "a Conffiles line without an md5sum");
    size_t tl = n - (size_t)(sp + 1 - v);
    if (!((tl == 8 && !memcmp(sp + 1, "obsolete", 8)) ||
          (tl == 17 && !memcmp(sp + 1, "remove-on-upgrade", 17))))
      break;
    obsolete = true;
    n = (size_t)(sp - v);
  }
  size_t ml = n - (size_t)(sp + 1 - v), pl = (size_t)(sp - v);
  if (ml > 32 || pl == 0 || v[0] != '/' || pl > DPKG_MAX_FIELD)
    return bad(ps, "a Conffiles line is not '/path md5sum'");
  if (obsolete) return 0;
  if (s->n_conf >= DPKG_MAX_CONFFILES) return bad(ps, "more conffiles than qvm reads");
  if (s->n_conf == s->cap_conf) {
    size_t cap = s->cap_conf ? s->cap_conf * 2 : 8;
    dpkg_conffile *c = realloc(s->conf, cap * sizeof *c);
    if (!c) return oom(ps->err);
    s->conf = c, s->cap_conf = cap;
  }
  dpkg_conffile *c = &s->conf[s->n_conf];
  *c = (dpkg_conffile){.path = qvm_strndup(v, pl)};
  if (!c->path) return oom(ps->err);
  s->n_conf++;
  bool hex = ml == 32; /* the text is not NUL-terminated: no str* calls on it */
  for (size_t i = 0; hex && i < 32; i++) hex = strchr("0123456789abcdef", sp[1 + i]) && sp[1 + i];
  if (hex) memcpy(c->md5, sp + 1, 32);
  return 0;
}

static int field(parser *ps, const char *l, size_t n) {
  stanza *s = &ps->s;
  const char *colon = memchr(l, ':', n);
  if (!colon || colon == l) return bad(ps, "not 'Field: value'");
  size_t kl = (size_t)(colon - l);
  const char *v = colon + 1;
  size_t vl = n - kl - 1;
  while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
  while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
  if (!s->any) s->line = ps->line;
  s->any = true;
  s->in_conf = kl == 9 && !strncasecmp(l, "Conffiles", 9);
  if (s->in_conf) return vl ? conffile(ps, v, vl) : 0;
  static const char *const keys[] = {"Package", "Architecture", "Version", "Status"};
  char **slots[] = {&s->name, &s->arch, &s->version, &s->status};
  for (int i = 0; i < 4; i++) {
    if (strlen(keys[i]) != kl || strncasecmp(l, keys[i], kl)) continue;
    if (*slots[i]) return bad(ps, "a field appears twice in one paragraph");
    if (vl > DPKG_MAX_FIELD) return bad(ps, "a field is too long");
    if (!(*slots[i] = qvm_strndup(v, vl))) return oom(ps->err);
    if (i == 0 && !dpkg_name_valid(s->name)) return bad(ps, "an invalid package name");
    if (i == 1 && !arch_valid(s->arch)) return bad(ps, "an invalid architecture");
  }
  return 0;
}

static int by_name_arch(const void *a, const void *b) {
  const dpkg_pkg *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->arch, y->arch);
}

static int parse(parser *ps, const char *text, size_t len) {
  if (len > DPKG_MAX_STATUS) return qvm_error_set(ps->err, QVM_EINVAL, "it is too large");
  if (memchr(text, '\0', len)) return qvm_error_set(ps->err, QVM_EINVAL, "it holds a NUL byte");
  int r = 0;
  for (size_t at = 0; r >= 0 && at < len;) {
    const char *l = text + at, *nl = memchr(l, '\n', len - at);
    size_t n = nl ? (size_t)(nl - l) : len - at;
    at += n + 1;
    ps->line++;
    if (n && l[n - 1] == '\r') n--;
    if (n == 0)
      r = finish(ps);
    else if (l[0] == ' ' || l[0] == '\t')
      r = !ps->s.any      ? bad(ps, "a continuation line begins a paragraph")
          : ps->s.in_conf ? conffile(ps, l, n)
                          : 0;
    else
      r = field(ps, l, n);
  }
  if (r >= 0) r = finish(ps);
  if (r < 0) return r;
  if (ps->db.n) qsort(ps->db.p, ps->db.n, sizeof *ps->db.p, by_name_arch);
  for (size_t i = 1; i < ps->db.n; i++)
    if (!by_name_arch(&ps->db.p[i - 1], &ps->db.p[i]))
      return qvm_error_set(ps->err, QVM_EINVAL, "package '%s' (%s) is installed twice",
                           ps->db.p[i].name, ps->db.p[i].arch);
  return 0;
}

int dpkg_status_parse(dpkg_db *out, const char *text, size_t len, qvm_error **err) {
  parser ps = {.err = err};
  int r = parse(&ps, text, len);
  stanza_clear(&ps.s);
  if (r < 0) {
    dpkg_db_clear(&ps.db);
    return r;
  }
  *out = ps.db;
  return 0;
}

const dpkg_pkg *dpkg_find(const dpkg_db *db, const char *name, const char *arch) {
  dpkg_pkg key = {.name = (char *)name, .arch = (char *)arch};
  return !db->n ? NULL : bsearch(&key, db->p, db->n, sizeof *db->p, by_name_arch);
}

void dpkg_db_clear(dpkg_db *db) {
  for (size_t i = 0; i < db->n; i++) pkg_free(&db->p[i]);
  free(db->p);
  *db = (dpkg_db){0};
}
