/* SPDX-License-Identifier: MIT */
/*
 * NoCloud files a user wrote and qvm copies into the seed as they are
 * (qvm seed build --user-data/--meta-data/--network-config). cloud-init
 * silently ignores a file it cannot read, and the guest then boots without
 * keys or network: so each is checked here first, for what can be checked
 * without running cloud-init. Errors name the file and the line.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "seed/seed_internal.h"

/* The first line without its end; *out_len excludes "\n". */
static const char *first_line(const char *data, size_t len, size_t *out_len) {
  const char *nl = memchr(data, '\n', len);
  *out_len = nl ? (size_t)(nl - data) : len;
  return data;
}

static bool starts_with_ci(const char *s, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && strncasecmp(s, prefix, n) == 0;
}

/* The line's text is exactly word, up to trailing blanks (and a CR). */
static bool line_is(const char *line, size_t len, const char *word) {
  size_t n = strlen(word);
  if (len < n || memcmp(line, word, n) != 0) return false;
  for (size_t i = n; i < len; i++)
    if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') return false;
  return true;
}

static size_t line_of(const char *data, const char *at) {
  size_t line = 1;
  for (const char *p = data; p < at; p++) line += *p == '\n';
  return line;
}

static int check_script(const char *data, size_t len, const char *name, qvm_error **err) {
  size_t n;
  const char *line = first_line(data, len, &n);
  const char *nul = memchr(data, '\0', len);
  size_t i = 2;
  while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
  if (i >= n || line[i] != '/')
    return qvm_error_set(err, QVM_EINVAL,
                         "user-data '%s' line 1: the #! line names no absolute interpreter "
                         "(write e.g. '#!/bin/sh')",
                         name);
  if (line[n - 1] == '\r')
    return qvm_error_set(err, QVM_EINVAL,
                         "user-data '%s' line 1: the #! line ends in a carriage return (windows "
                         "line ends), so the script cannot run: convert it with dos2unix",
                         name);
  if (nul)
    return qvm_error_set(err, QVM_EINVAL, "user-data '%s' line %zu: a NUL byte in a script", name,
                         line_of(data, nul));
  return 0;
}

/* A header's value, unfolded (continuation lines start with a blank), into
 * buf; NULL if the header block has no such header. */
static const char *mime_header(char *buf, size_t size, const char *data, size_t len,
                               const char *header, size_t *out_line) {
  const char *p = data, *end = data + len;
  size_t hl = strlen(header), line = 1;
  while (p < end && *p != '\n' && !(*p == '\r' && p + 1 < end && p[1] == '\n')) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *eol = nl ? nl : end;
    if ((size_t)(eol - p) > hl && starts_with_ci(p, hl, header) && p[hl] == ':') {
      size_t used = 0;
      const char *v = p + hl + 1;
      *out_line = line;
      for (;;) {
        size_t n = (size_t)(eol - v);
        if (n && v[n - 1] == '\r') n--;
        if (used + n + 1 < size) memcpy(buf + used, v, n), used += n, buf[used++] = ' ';
        if (!nl || nl + 1 >= end || (nl[1] != ' ' && nl[1] != '\t')) break;
        v = nl + 1;
        nl = memchr(v, '\n', (size_t)(end - v));
        eol = nl ? nl : end;
      }
      buf[used] = 0;
      return buf;
    }
    p = nl ? nl + 1 : end;
    line++;
  }
  return NULL;
}

/* boundary=B or boundary="B" from a Content-Type value. */
static bool mime_boundary(char *out, size_t size, const char *value) {
  const char *b = strcasestr(value, "boundary=");
  if (!b) return false;
  b += strlen("boundary=");
  bool quoted = *b == '"';
  b += quoted;
  size_t n = quoted ? strcspn(b, "\"") : strcspn(b, "; \t");
  if (n == 0 || n > 70 || n + 1 > size) return false;
  memcpy(out, b, n);
  out[n] = 0;
  return true;
}

/* Finds a line that is exactly delim (up to trailing blanks). */
static bool has_line(const char *data, size_t len, const char *delim) {
  for (const char *p = data, *end = data + len; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *eol = nl ? nl : end;
    if (line_is(p, (size_t)(eol - p), delim)) return true;
    p = nl ? nl + 1 : end;
  }
  return false;
}

static int check_mime(const char *data, size_t len, const char *name, qvm_error **err) {
  char value[1024], boundary[80], delim[96];
  size_t line = 1;
  if (!mime_header(value, sizeof value, data, len, "Content-Type", &line))
    return qvm_error_set(err, QVM_EINVAL,
                         "user-data '%s' line 1: a MIME message without a Content-Type header "
                         "(before the first empty line)",
                         name);
  const char *v = value + strspn(value, " \t");
  if (strncasecmp(v, "multipart/", strlen("multipart/")) != 0) return 0;
  if (!mime_boundary(boundary, sizeof boundary, v))
    return qvm_error_set(err, QVM_EINVAL,
                         "user-data '%s' line %zu: a multipart Content-Type without a valid "
                         "boundary=",
                         name, line);
  snprintf(delim, sizeof delim, "--%s", boundary);
  if (!has_line(data, len, delim))
    return qvm_error_set(err, QVM_EINVAL, "user-data '%s': no part starts with '%s'", name, delim);
  snprintf(delim, sizeof delim, "--%s--", boundary);
  if (!has_line(data, len, delim))
    return qvm_error_set(err, QVM_EINVAL,
                         "user-data '%s': the closing '%s' line is missing (truncated file?)", name,
                         delim);
  return 0;
}

/* Other user-data types cloud-init knows by their first line. */
static const char *const other_types[] = {
    "#include",     "#include-once",         "#cloud-boothook",     "#part-handler",
    "#upstart-job", "#cloud-config-archive", "#cloud-config-jsonp", "## template: jinja",
};

int qvm_seed_check_user_data(qvm_seed_user_data_kind *out, const char *data, size_t len,
                             const char *name, qvm_error **err) {
  size_t n;
  const char *line = first_line(data, len, &n);
  if (len == 0) return qvm_error_set(err, QVM_EINVAL, "user-data '%s' is empty", name);
  if (line_is(line, n, "#cloud-config")) {
    *out = QVM_SEED_USER_DATA_CLOUD_CONFIG;
    return seed_check_yaml_mapping(data, len, "user-data", name, err);
  }
  if (n >= 2 && !memcmp(line, "#!", 2)) {
    *out = QVM_SEED_USER_DATA_SCRIPT;
    return check_script(data, len, name, err);
  }
  if (starts_with_ci(line, n, "Content-Type:") || starts_with_ci(line, n, "MIME-Version:")) {
    *out = QVM_SEED_USER_DATA_MULTIPART;
    return check_mime(data, len, name, err);
  }
  bool gzip = len >= 2 && (unsigned char)data[0] == 0x1f && (unsigned char)data[1] == 0x8b;
  for (size_t i = 0; !gzip && i < sizeof other_types / sizeof other_types[0]; i++)
    gzip = starts_with_ci(line, n, other_types[i]);
  if (gzip) {
    *out = QVM_SEED_USER_DATA_OTHER;
    return 0;
  }
  return qvm_error_set(err, QVM_EINVAL,
                       "user-data '%s' line 1: not a type cloud-init reads (it would be ignored): "
                       "start it with '#cloud-config' (YAML), '#!' (a script) or a MIME "
                       "multipart header",
                       name);
}

int qvm_seed_check_meta_data(const char *data, size_t len, const char *name, qvm_error **err) {
  return seed_check_yaml_mapping(data, len, "meta-data", name, err);
}

/* The value node of key in a mapping node, or NULL. */
static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key) {
  if (!map || map->type != YAML_MAPPING_NODE) return NULL;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(key) &&
        !memcmp(k->data.scalar.value, key, strlen(key)))
      return yaml_document_get_node(doc, p->value);
  }
  return NULL;
}

static bool scalar_is(const yaml_node_t *n, const char *s) {
  return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == strlen(s) &&
         !memcmp(n->data.scalar.value, s, strlen(s));
}

static int check_version(yaml_document_t *doc, const char *name, qvm_error **err) {
  yaml_node_t *root = yaml_document_get_root_node(doc);
  yaml_node_t *net = map_get(doc, root, "network");
  yaml_node_t *top = net && net->type == YAML_MAPPING_NODE ? net : root;
  yaml_node_t *v = map_get(doc, top, "version");
  if (!v && scalar_is(map_get(doc, top, "config"), "disabled")) return 0;
  if (!v)
    return qvm_error_set(err, QVM_EINVAL,
                         "network-config '%s' line %zu: no 'version' key: add 'version: 2' "
                         "(netplan style) or 'version: 1'",
                         name, top->start_mark.line + 1);
  if (scalar_is(v, "1") || scalar_is(v, "2")) return 0;
  return qvm_error_set(err, QVM_EINVAL,
                       "network-config '%s' line %zu: 'version' must be 1 or 2 (cloud-init "
                       "reads no other)",
                       name, v->start_mark.line + 1);
}

int qvm_seed_check_network_config(const char *data, size_t len, const char *name, qvm_error **err) {
  int r = seed_check_yaml_mapping(data, len, "network-config", name, err);
  if (r < 0) return r;
  /* Checked above: one document, a mapping, bounded nesting. Aliases stay
   * references in libyaml's document model (never expanded). */
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser))
    return qvm_error_set(err, QVM_ESYS, "cannot initialize the yaml parser");
  yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
  if (!yaml_parser_load(&parser, &doc)) {
    yaml_parser_delete(&parser);
    return qvm_error_set(err, QVM_EINVAL, "network-config '%s' cannot be loaded", name);
  }
  r = check_version(&doc, name, err);
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return r;
}
