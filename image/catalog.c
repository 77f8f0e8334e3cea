/* SPDX-License-Identifier: MIT */
/* Image aliases (built in + a user YAML file) and checksum-file parsing. */
#include "image/catalog.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include <qvm/text.h>

#include "image/store.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define CATALOG_MAX (1u << 20)
#define FIELD_MAX 4096

/* Only URLs whose exact current form is known: each vendor's "latest"
 * directory, whose checksum file is rewritten with each new build. */
#define DEBIAN(n, code, desc)                                                                      \
  {                                                                                                \
    "debian-" n,                                                                                   \
        "https://cloud.debian.org/images/cloud/" code "/latest/debian-" n "-generic-amd64.qcow2",  \
        "https://cloud.debian.org/images/cloud/" code "/latest/SHA512SUMS", desc                   \
  }
#define UBUNTU(n, code, desc)                                                                      \
  {                                                                                                \
    "ubuntu-" n,                                                                                   \
        "https://cloud-images.ubuntu.com/releases/" code "/release/ubuntu-" n                      \
        "-server-cloudimg-amd64.img",                                                              \
        "https://cloud-images.ubuntu.com/releases/" code "/release/SHA256SUMS", desc               \
  }

static const struct {
  const char *alias, *url, *checksums, *description;
} builtin[] = {
    DEBIAN("11", "bullseye", "Debian 11 (bullseye) generic cloud image, amd64"),
    DEBIAN("12", "bookworm", "Debian 12 (bookworm) generic cloud image, amd64"),
    DEBIAN("13", "trixie", "Debian 13 (trixie) generic cloud image, amd64"),
    UBUNTU("20.04", "focal", "Ubuntu 20.04 LTS (focal) server cloud image, amd64"),
    UBUNTU("22.04", "jammy", "Ubuntu 22.04 LTS (jammy) server cloud image, amd64"),
    UBUNTU("24.04", "noble", "Ubuntu 24.04 LTS (noble) server cloud image, amd64"),
    {"almalinux-9",
     "https://repo.almalinux.org/almalinux/9/cloud/x86_64/images/"
     "AlmaLinux-9-GenericCloud-latest.x86_64.qcow2",
     "https://repo.almalinux.org/almalinux/9/cloud/x86_64/images/CHECKSUM",
     "AlmaLinux 9 generic cloud image, x86_64"},
};

static void entry_clear(img_catalog_entry *e) {
  free(e->alias);
  free(e->url);
  free(e->checksums);
  free(e->sha256);
  free(e->sha512);
  free(e->description);
  free(e->origin);
  memset(e, 0, sizeof *e);
}

void img_catalog_clear(img_catalog *c) {
  for (size_t i = 0; c && i < c->n; i++) entry_clear(&c->entries[i]);
  if (c) {
    free(c->entries);
    c->entries = NULL;
    c->n = 0;
  }
}

const img_catalog_entry *img_catalog_find(const img_catalog *c, const char *alias) {
  for (size_t i = 0; alias && i < c->n; i++)
    if (!strcmp(c->entries[i].alias, alias)) return &c->entries[i];
  return NULL;
}

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* Adds e (taken) or replaces the entry of the same alias. */
static int put_entry(img_catalog *c, img_catalog_entry *e, qvm_error **err) {
  for (size_t i = 0; i < c->n; i++) {
    if (strcmp(c->entries[i].alias, e->alias)) continue;
    entry_clear(&c->entries[i]);
    c->entries[i] = *e;
    memset(e, 0, sizeof *e);
    return 0;
  }
  img_catalog_entry *v = reallocarray(c->entries, c->n + 1, sizeof *v);
  if (!v) return oom(err);
  c->entries = v;
  v[c->n++] = *e;
  memset(e, 0, sizeof *e);
  return 0;
}

static bool hex_ok(const char *s, size_t n) {
  if (strlen(s) != n) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

static bool url_ok(const char *u) {
  return !strncmp(u, "https://", 8) || !strncmp(u, "http://", 7) || !strncmp(u, "file:///", 8);
}

/* ---- the user file ---- */

typedef struct yaml_ctx {
  const char *file;
  yaml_document_t *doc;
} yaml_ctx;

static int at(const yaml_ctx *y, const yaml_node_t *n, qvm_error **err, const char *fmt,
              const char *arg) {
  char msg[512];
  _cleanup_free_ char *safe = arg ? qvm_text_for_terminal(arg, strlen(arg), 0) : NULL;
  snprintf(msg, sizeof msg, fmt, safe ? safe : "");
  return qvm_error_set(err, QVM_EINVAL, "%s:%zu: %s", y->file, n->start_mark.line + 1, msg);
}

static const char *scalar(const yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int entry_field(img_catalog_entry *e, const yaml_ctx *y, const yaml_node_t *kn,
                       const yaml_node_t *vn, qvm_error **err) {
  const char *k = scalar(kn), *v = scalar(vn);
  if (!k) return at(y, kn, err, "a key must be a string", NULL);
  if (!v || strlen(v) > FIELD_MAX) return at(y, vn, err, "'%s' must be a short string", k);
  char **slot = !strcmp(k, "url")           ? &e->url
                : !strcmp(k, "checksums")   ? &e->checksums
                : !strcmp(k, "sha256")      ? &e->sha256
                : !strcmp(k, "sha512")      ? &e->sha512
                : !strcmp(k, "description") ? &e->description
                                            : NULL;
  if (!slot)
    return at(y, kn, err, "unknown key '%s' (url, checksums, sha256, sha512, description)", k);
  if (*slot) return at(y, kn, err, "'%s' is given twice", k);
  if ((slot == &e->url || slot == &e->checksums) && !url_ok(v))
    return at(y, vn, err, "'%s' must be an http://, https:// or file:/// url", k);
  if (slot == &e->sha256 && !hex_ok(v, 64))
    return at(y, vn, err, "'%s' must be 64 lowercase hex digits", k);
  if (slot == &e->sha512 && !hex_ok(v, 128))
    return at(y, vn, err, "'%s' must be 128 lowercase hex digits", k);
  for (const char *p = v; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      return at(y, vn, err, "'%s' holds a control character", k);
  return (*slot = strdup(v)) ? 0 : oom(err);
}

static int user_entry(img_catalog *c, const yaml_ctx *y, const yaml_node_t *kn,
                      const yaml_node_t *vn, qvm_error **err) {
  const char *alias = scalar(kn);
  if (!alias || !img_name_valid(alias))
    return at(y, kn, err, "alias '%s' is invalid: it must match [a-z0-9][a-z0-9._-]{0,63}",
              alias ? alias : "?");
  if (vn->type != YAML_MAPPING_NODE) return at(y, vn, err, "entry '%s' must be a mapping", alias);
  img_catalog_entry e = {0};
  int r = 0;
  for (yaml_node_pair_t *p = vn->data.mapping.pairs.start; r == 0 && p < vn->data.mapping.pairs.top;
       p++)
    r = entry_field(&e, y, yaml_document_get_node(y->doc, p->key),
                    yaml_document_get_node(y->doc, p->value), err);
  int sums = !!e.checksums + !!e.sha256 + !!e.sha512;
  if (r == 0 && !e.url) r = at(y, vn, err, "entry '%s' has no url", alias);
  if (r == 0 && sums != 1)
    r = at(y, vn, err, "entry '%s' needs exactly one of checksums, sha256, sha512", alias);
  if (r == 0 && (!(e.alias = strdup(alias)) || !(e.origin = strdup(y->file)))) r = oom(err);
  if (r == 0) r = put_entry(c, &e, err);
  entry_clear(&e);
  return r;
}

static int user_doc(img_catalog *c, const yaml_ctx *y, qvm_error **err) {
  yaml_node_t *root = yaml_document_get_root_node(y->doc);
  if (!root) return 0; /* an empty file */
  if (root->type != YAML_MAPPING_NODE)
    return at(y, root, err, "the catalog must be a mapping with 'images:'", NULL);
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
       p++) {
    yaml_node_t *kn = yaml_document_get_node(y->doc, p->key);
    yaml_node_t *vn = yaml_document_get_node(y->doc, p->value);
    const char *k = scalar(kn);
    if (!k || strcmp(k, "images")) return at(y, kn, err, "unknown key '%s' (images)", k ? k : "?");
    if (vn->type == YAML_SCALAR_NODE && !*scalar(vn)) continue; /* "images:" and nothing */
    if (vn->type != YAML_MAPPING_NODE) return at(y, vn, err, "'images' must be a mapping", NULL);
    for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top; q++) {
      int r = user_entry(c, y, yaml_document_get_node(y->doc, q->key),
                         yaml_document_get_node(y->doc, q->value), err);
      if (r < 0) return r;
    }
  }
  return 0;
}

static int load_user(img_catalog *c, const char *file, qvm_error **err) {
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  qvm_error *e = NULL;
  int r = qvm_read_file(&text, &len, file, CATALOG_MAX, &e);
  if (r == QVM_ENOTFOUND) {
    qvm_error_free(e);
    return 0;
  }
  if (r < 0) return qvm_error_propagate(err, e);
  if (strlen(text) != len)
    return qvm_error_set(err, QVM_EINVAL, "%s: the catalog holds a NUL byte", file);
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) return oom(err);
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  if (!yaml_parser_load(&parser, &doc)) {
    r = qvm_error_set(err, QVM_EINVAL, "%s:%zu: %s", file, parser.problem_mark.line + 1,
                      parser.problem ? parser.problem : "invalid yaml");
    yaml_parser_delete(&parser);
    return r;
  }
  yaml_ctx y = {file, &doc};
  r = user_doc(c, &y, err);
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return r;
}

static int alias_cmp(const void *a, const void *b) {
  return strcmp(((const img_catalog_entry *)a)->alias, ((const img_catalog_entry *)b)->alias);
}

int img_catalog_load(img_catalog *out, const char *user_file, qvm_error **err) {
  img_catalog c = {0};
  int r = 0;
  for (size_t i = 0; r == 0 && i < QVM_ARRAY_SIZE(builtin); i++) {
    img_catalog_entry e = {.alias = strdup(builtin[i].alias),
                           .url = strdup(builtin[i].url),
                           .checksums = strdup(builtin[i].checksums),
                           .description = dup_or_null(builtin[i].description),
                           .origin = strdup("builtin")};
    r = e.alias && e.url && e.checksums && e.description && e.origin ? put_entry(&c, &e, err)
                                                                     : oom(err);
    entry_clear(&e);
  }
  if (r == 0 && user_file) r = load_user(&c, user_file, err);
  if (r < 0) {
    img_catalog_clear(&c);
    return r;
  }
  if (c.n) qsort(c.entries, c.n, sizeof *c.entries, alias_cmp);
  *out = c;
  return 0;
}

/* ---- checksum files ---- */

static size_t hex_run(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                   (s[i] >= 'A' && s[i] <= 'F')))
    i++;
  return i;
}

/* One line: its digest and the name it lists, or false for a line of
 * neither form (comments, PGP armor, blank). */
static bool parse_line(const char **hex, size_t *hex_len, const char **name, size_t *name_len,
                       const char *l, size_t n) {
  size_t h = hex_run(l, n);
  if ((h == 64 || h == 128) && n > h + 2 && l[h] == ' ' && (l[h + 1] == ' ' || l[h + 1] == '*')) {
    *hex = l, *hex_len = h, *name = l + h + 2, *name_len = n - h - 2;
    return true;
  }
  /* BSD: "SHA256 (name) = hex" */
  const char *open = memchr(l, '(', n);
  if (!open || open == l || open[-1] != ' ') return false;
  const char *eq = NULL;
  for (const char *p = l + n; p-- > open;)
    if (p[0] == ')' && p + 4 <= l + n && !memcmp(p, ") = ", 4)) {
      eq = p;
      break;
    }
  if (!eq) return false;
  const char *d = eq + 4;
  size_t dn = (size_t)(l + n - d);
  if ((dn != 64 && dn != 128) || hex_run(d, dn) != dn) return false;
  *hex = d, *hex_len = dn, *name = open + 1, *name_len = (size_t)(eq - open - 1);
  return true;
}

int img_checksums_find(char out_hex[129], const char **out_alg, const char *text, size_t len,
                       const char *filename, qvm_error **err) {
  size_t fl = strlen(filename);
  char found[129] = "";
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    const char *l = p;
    p = nl ? nl + 1 : end;
    if (n && l[n - 1] == '\r') n--;
    const char *hex, *name;
    size_t hl, nlen;
    if (!parse_line(&hex, &hl, &name, &nlen, l, n)) continue;
    if (nlen != fl || memcmp(name, filename, fl)) continue;
    char h[129];
    for (size_t i = 0; i < hl; i++) h[i] = (char)(hex[i] | 0x20); /* lowercase */
    h[hl] = '\0';
    if (found[0] && strcmp(found, h)) {
      _cleanup_free_ char *safe = qvm_text_for_terminal(filename, fl, 0);
      return qvm_error_set(err, QVM_EINVAL,
                           "the checksum file lists '%s' twice with different digests",
                           safe ? safe : "?");
    }
    memcpy(found, h, hl + 1);
  }
  if (!found[0]) {
    _cleanup_free_ char *safe = qvm_text_for_terminal(filename, fl, 0);
    return qvm_error_set(err, QVM_ENOTFOUND, "the checksum file has no entry for '%s'",
                         safe ? safe : "?");
  }
  memcpy(out_hex, found, strlen(found) + 1);
  *out_alg = strlen(found) == 64 ? "sha256" : "sha512";
  return 0;
}
