/* SPDX-License-Identifier: MIT */
/* qvm.yaml: one or more VMs for `qvm up -f` / `qvm down -f` (see
 * include/qvm/up.h for the schema). Parsed with libyaml's document loader;
 * only the fixed schema is walked, so aliases cannot make the walk blow up. */
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"
#include "vm/config.h"

#include <qvm/text.h>
#include <qvm/up.h>

#define FILE_MAX (1u << 20)
#define LIST_MAX 256

typedef struct strlist {
  char **v;
  size_t n;
} strlist;

typedef struct entry {
  char *name;
  qvm_vm_create_options opts;
  qvm_image_pull_options pull; /* image_sha256 / image_checksums */
  bool has_pull;
  char *image_sha256, *image_checksums;
  char *image, *image_format, *kernel, *initrd, *append, *firmware, *net, *accel, *user, *hostname;
  char *cpu;
  strlist cloud_configs, ssh_keys;
  qvm_vm_publish *ports;
  size_t n_ports;
  qvm_vm_step *steps;
  size_t n_steps;
} entry;

struct qvm_vm_file {
  entry *vms;
  size_t n;
};

typedef struct loader {
  const char *path;
  char *dir; /* the file's directory, for relative paths */
  yaml_document_t doc;
} loader;

static void strlist_clear(strlist *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  *l = (strlist){0};
}

static void entry_clear(entry *e) {
  char **owned[] = {&e->name,   &e->image,        &e->kernel,       &e->initrd,
                    &e->append, &e->firmware,     &e->accel,        &e->hostname,
                    &e->user,   &e->image_format, &e->image_sha256, &e->image_checksums,
                    &e->cpu};
  for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) free(*owned[i]);
  strlist_clear(&e->cloud_configs);
  strlist_clear(&e->ssh_keys);
  free(e->ports);
  for (size_t i = 0; i < e->n_steps; i++) qvm_vm_step_clear(&e->steps[i]);
  free(e->steps);
}

void qvm_vm_file_free(qvm_vm_file *f) {
  if (!f) return;
  for (size_t i = 0; i < f->n; i++) entry_clear(&f->vms[i]);
  free(f->vms);
  free(f);
}

QVM_DEFINE_CLEANUP(qvm_vm_file, qvm_vm_file_free)

size_t qvm_vm_file_count(const qvm_vm_file *f) { return f ? f->n : 0; }
const char *qvm_vm_file_name(const qvm_vm_file *f, size_t i) { return f->vms[i].name; }
const qvm_vm_create_options *qvm_vm_file_options(const qvm_vm_file *f, size_t i) {
  return &f->vms[i].opts;
}

ssize_t qvm_vm_file_find(const qvm_vm_file *f, const char *name) {
  for (size_t i = 0; f && name && i < f->n; i++)
    if (!strcmp(f->vms[i].name, name)) return (ssize_t)i;
  return -1;
}

/* --- errors with positions ---------------------------------------------- */

static int at(const loader *L, const yaml_node_t *n, qvm_error **err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int at(const loader *L, const yaml_node_t *n, qvm_error **err, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return qvm_error_set(err, QVM_EINVAL, "%s:%zu:%zu: %s", L->path, n ? n->start_mark.line + 1 : 0,
                       n ? n->start_mark.column + 1 : 0, msg);
}

static const char *kind(const yaml_node_t *n) {
  switch (n ? n->type : YAML_NO_NODE) {
  case YAML_SCALAR_NODE: return "a scalar";
  case YAML_SEQUENCE_NODE: return "a list";
  case YAML_MAPPING_NODE: return "a mapping";
  default: return "nothing";
  }
}

/* --- scalars ------------------------------------------------------------- */

/* A scalar's text, which must be NUL-free and printable enough to quote. */
static int scalar(const char **out, const loader *L, const yaml_node_t *n, const char *key,
                  qvm_error **err) {
  if (!n || n->type != YAML_SCALAR_NODE)
    return at(L, n, err, "'%s' must be a single value, not %s", key, kind(n));
  const char *s = (const char *)n->data.scalar.value;
  if (strlen(s) != n->data.scalar.length) return at(L, n, err, "'%s' contains a NUL byte", key);
  *out = s;
  return 0;
}

static int dup_scalar(char **out, const loader *L, const yaml_node_t *n, const char *key,
                      qvm_error **err) {
  const char *s = NULL;
  int r = scalar(&s, L, n, key, err);
  if (r < 0) return r;
  if (!s[0]) return at(L, n, err, "'%s' is empty", key);
  free(*out);
  if (!(*out = strdup(s))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

/* A path: relative ones are taken from the file's directory; "~/" is $HOME. */
static int dup_path(char **out, const loader *L, const yaml_node_t *n, const char *key,
                    qvm_error **err) {
  const char *s = NULL;
  int r = scalar(&s, L, n, key, err);
  if (r < 0) return r;
  if (!s[0]) return at(L, n, err, "'%s' is an empty path", key);
  free(*out);
  *out = NULL;
  const char *home = getenv("HOME");
  int r2;
  if (s[0] == '/')
    r2 = (*out = strdup(s)) ? 0 : -1;
  else if (!strncmp(s, "~/", 2) && home && home[0] == '/')
    r2 = asprintf(out, "%s/%s", home, s + 2);
  else if (s[0] == '~')
    return at(L, n, err, "'%s': only '~/' is expanded, to $HOME", s);
  else
    r2 = asprintf(out, "%s/%s", L->dir, s);
  if (r2 < 0) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

/* image: a path (relative to the file) when it has a '/', starts with '.'
 * or '~', or names a file beside qvm.yaml; else a store name, digest,
 * alias or URL, kept as written (qvm_image_resolve). */
static int dup_image(char **out, const loader *L, const yaml_node_t *n, const char *key,
                     qvm_error **err) {
  const char *s = NULL;
  int r = scalar(&s, L, n, key, err);
  if (r < 0) return r;
  if (!s[0]) return at(L, n, err, "'%s' is an empty path", key);
  bool ref = strstr(s, "://") || !strncmp(s, "sha256:", 7);
  if (!ref && !strchr(s, '/') && s[0] != '.' && s[0] != '~') {
    _cleanup_free_ char *beside = NULL;
    if (asprintf(&beside, "%s/%s", L->dir, s) < 0)
      return qvm_error_set_errno(err, ENOMEM, "out of memory");
    ref = access(beside, F_OK) != 0;
  }
  if (!ref) return dup_path(out, L, n, key, err);
  free(*out);
  if (!(*out = strdup(s))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

static int list_push(strlist *l, char *s, qvm_error **err) {
  if (!s) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  char **v = realloc(l->v, (l->n + 1) * sizeof *v);
  if (!v) {
    free(s);
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  l->v = v;
  l->v[l->n++] = s;
  return 0;
}

typedef int (*item_fn)(char **out, const loader *L, const yaml_node_t *n, const char *key,
                       qvm_error **err);

/* A value or a list of values. */
static int one_or_list(strlist *l, const loader *L, yaml_node_t *n, const char *key, item_fn fn,
                       qvm_error **err) {
  strlist_clear(l);
  if (n->type == YAML_SCALAR_NODE) {
    char *s = NULL;
    int r = fn(&s, L, n, key, err);
    return r < 0 ? r : list_push(l, s, err);
  }
  if (n->type != YAML_SEQUENCE_NODE)
    return at(L, n, err, "'%s' must be a value or a list of values, not %s", key, kind(n));
  size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  if (count > LIST_MAX) return at(L, n, err, "'%s' has more than %d items", key, LIST_MAX);
  for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
    char *s = NULL;
    int r = fn(&s, L, yaml_document_get_node((yaml_document_t *)&L->doc, *it), key, err);
    if (r >= 0) r = list_push(l, s, err);
    if (r < 0) return r;
  }
  return 0;
}

static int parse_uint(unsigned *out, const loader *L, const yaml_node_t *n, const char *key,
                      unsigned max, qvm_error **err) {
  const char *s = NULL;
  int r = scalar(&s, L, n, key, err);
  if (r < 0) return r;
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (!s[0] || *end || errno || s[0] == '-' || s[0] == '+' || v < 1 || v > max)
    return at(L, n, err, "'%s' must be a whole number from 1 to %u, not '%s'", key, max, s);
  *out = (unsigned)v;
  return 0;
}

/* A size with a binary suffix ("1G", "512M"): the library's grammar. */
static int parse_size(uint64_t *out, const loader *L, const yaml_node_t *n, const char *key,
                      qvm_error **err) {
  const char *s = NULL;
  int r = scalar(&s, L, n, key, err);
  if (r < 0) return r;
  qvm_error *e = NULL;
  if (qvm_vm_size_parse(out, key, s, &e) < 0) {
    r = at(L, n, err, "%s", qvm_error_message(e));
    qvm_error_free(e);
  }
  return r;
}

/* --- provision steps ---------------------------------------------------- */

/* The key of `allowed` ("a, b, c") nearest to `key`, within two edits (or
 * differing only in '-' for '_'), as "did you mean 'X'? " into out, or "". */
static void did_you_mean(char *out, size_t size, const char *key, const char *allowed) {
  char best[32] = "", word[32];
  size_t best_d = 3, klen = strlen(key);
  for (const char *p = allowed; *p;) {
    size_t n = strcspn(p, ", ");
    if (n && n < sizeof word) {
      memcpy(word, p, n);
      word[n] = '\0';
      char alt[65];
      snprintf(alt, sizeof alt, "%s", key);
      for (char *c = alt; *c; c++)
        if (*c == '-') *c = '_';
      size_t d = strcmp(alt, word) ? qvm_text_edit_distance(key, strlen(key), word) : 0;
      if (d < best_d && d < klen) {
        best_d = d;
        memcpy(best, word, n + 1);
      }
    }
    p += n;
    p += strspn(p, ", ");
  }
  if (best[0])
    snprintf(out, size, "did you mean '%s'? ", best);
  else if (size)
    out[0] = '\0';
}

static const char STEP_KEYS[] = "shell, script, file, to, sudo";

static int parse_bool(bool *out, const loader *L, const yaml_node_t *n, const char *key,
                      qvm_error **err) {
  const char *b = NULL;
  int r = scalar(&b, L, n, key, err);
  if (r < 0) return r;
  if (!strcmp(b, "true") || !strcmp(b, "yes") || !strcmp(b, "false") || !strcmp(b, "no")) {
    *out = b[0] == 't' || b[0] == 'y';
    return 0;
  }
  return at(L, n, err, "'%s' must be true or false, not '%s'", key, b);
}

/* One step as a mapping {shell|script|file: ..., [to: DST], [sudo: bool]},
 * straight into the typed step. */
static int provision_step(qvm_vm_step *out, const loader *L, const yaml_node_t *n,
                          qvm_error **err) {
  if (n->type != YAML_MAPPING_NODE)
    return at(L, n, err,
              "a provision step must be a mapping like '{shell: CMD}', '{script: FILE}' or "
              "'{file: SRC, to: DST}', not %s",
              kind(n));
  const char *kind_name = NULL;
  _cleanup_free_ char *value = NULL, *to = NULL;
  qvm_vm_step st = {0};
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node((yaml_document_t *)&L->doc, p->key);
    yaml_node_t *v = yaml_document_get_node((yaml_document_t *)&L->doc, p->value);
    const char *name = NULL;
    int r = scalar(&name, L, k, "provision step key", err);
    if (r < 0) return r;
    if (!strcmp(name, "shell") || !strcmp(name, "script") || !strcmp(name, "file")) {
      if (kind_name)
        return at(L, k, err, "a provision step has both '%s' and '%s': use one per step", kind_name,
                  name);
      kind_name = !strcmp(name, "shell") ? "shell" : !strcmp(name, "script") ? "script" : "file";
      st.kind = !strcmp(name, "shell")    ? QVM_VM_STEP_SHELL
                : !strcmp(name, "script") ? QVM_VM_STEP_SCRIPT
                                          : QVM_VM_STEP_FILE;
      r = !strcmp(name, "shell") ? dup_scalar(&value, L, v, name, err)
                                 : dup_path(&value, L, v, name, err);
    } else if (!strcmp(name, "to")) {
      r = dup_scalar(&to, L, v, name, err);
    } else if (!strcmp(name, "sudo")) {
      r = parse_bool(&st.sudo, L, v, name, err);
    } else {
      char hint[64];
      did_you_mean(hint, sizeof hint, name, STEP_KEYS);
      return at(L, k, err, "unknown provision step key '%s': %suse %s", name, hint, STEP_KEYS);
    }
    if (r < 0) return r;
  }
  if (!kind_name) return at(L, n, err, "a provision step needs one of shell, script or file");
  if ((st.kind == QVM_VM_STEP_FILE) != !!to)
    return at(L, n, err,
              to ? "'to' belongs only to a 'file' step"
                 : "a 'file' step needs 'to: DESTINATION' (a path in the guest)");
  st.text = TAKE_PTR(value);
  st.destination = TAKE_PTR(to);
  *out = st;
  return 0;
}

static int parse_steps(entry *e, const loader *L, yaml_node_t *n, qvm_error **err) {
  if (n->type != YAML_SEQUENCE_NODE)
    return at(L, n, err, "'provision' must be a list of steps, not %s", kind(n));
  size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  if (count > LIST_MAX) return at(L, n, err, "'provision' has more than %d items", LIST_MAX);
  for (size_t i = 0; i < e->n_steps; i++) qvm_vm_step_clear(&e->steps[i]);
  free(e->steps);
  e->n_steps = 0;
  if (!(e->steps = calloc(count ? count : 1, sizeof *e->steps)))
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
    int r = provision_step(&e->steps[e->n_steps], L,
                           yaml_document_get_node((yaml_document_t *)&L->doc, *it), err);
    if (r < 0) return r;
    e->n_steps++;
  }
  return 0;
}

/* --- ports and net --------------------------------------------------------- */

static const char PORT_KEYS[] = "host, guest, addr, proto";

static int parse_port_number(uint16_t *out, const loader *L, const yaml_node_t *n, const char *key,
                             qvm_error **err) {
  unsigned v = 0;
  int r = parse_uint(&v, L, n, key, 65535, err);
  *out = (uint16_t)v;
  return r;
}

/* {host: 8080, guest: 80, [addr: 0.0.0.0], [proto: udp]} */
static int port_mapping(qvm_vm_publish *out, const loader *L, const yaml_node_t *n,
                        qvm_error **err) {
  qvm_vm_publish p = {0};
  for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
    yaml_node_t *k = yaml_document_get_node((yaml_document_t *)&L->doc, pr->key);
    yaml_node_t *v = yaml_document_get_node((yaml_document_t *)&L->doc, pr->value);
    const char *name = NULL, *s = NULL;
    struct in_addr a;
    int r = scalar(&name, L, k, "port key", err);
    if (r < 0) return r;
    if (!strcmp(name, "host")) {
      r = parse_port_number(&p.host_port, L, v, name, err);
    } else if (!strcmp(name, "guest")) {
      r = parse_port_number(&p.guest_port, L, v, name, err);
    } else if (!strcmp(name, "addr")) {
      if ((r = scalar(&s, L, v, name, err)) < 0) return r;
      if (strlen(s) >= sizeof p.addr || inet_pton(AF_INET, s, &a) != 1)
        return at(L, v, err, "'addr' must be an IPv4 address, not '%.40s'", s);
      snprintf(p.addr, sizeof p.addr, "%s", s);
    } else if (!strcmp(name, "proto")) {
      if ((r = scalar(&s, L, v, name, err)) < 0) return r;
      if (strcmp(s, "tcp") && strcmp(s, "udp"))
        return at(L, v, err, "'proto' must be tcp or udp, not '%.40s'", s);
      p.proto = !strcmp(s, "udp") ? QVM_VM_PROTO_UDP : QVM_VM_PROTO_TCP;
    } else {
      char hint[64];
      did_you_mean(hint, sizeof hint, name, PORT_KEYS);
      return at(L, k, err, "unknown port key '%s': %suse %s", name, hint, PORT_KEYS);
    }
    if (r < 0) return r;
  }
  if (!p.host_port || !p.guest_port)
    return at(L, n, err, "a port needs 'host: PORT' and 'guest: PORT'");
  *out = p;
  return 0;
}

static int port_item(qvm_vm_publish *out, const loader *L, const yaml_node_t *n, qvm_error **err) {
  if (n && n->type == YAML_MAPPING_NODE) return port_mapping(out, L, n, err);
  if (!n || n->type != YAML_SCALAR_NODE)
    return at(L, n, err,
              "a port must be a single value like '8080:80' or a mapping like "
              "'{host: 8080, guest: 80}', not %s",
              kind(n));
  const char *s = NULL;
  int r = scalar(&s, L, n, "ports", err);
  qvm_error *e = NULL;
  if (r >= 0 && qvm_vm_publish_parse(out, s, &e) < 0) {
    r = at(L, n, err, "%s", qvm_error_message(e));
    qvm_error_free(e);
  }
  return r;
}

/* One port (a value or a mapping) or a list of them. */
static int parse_ports(entry *e, const loader *L, yaml_node_t *n, qvm_error **err) {
  bool list = n->type == YAML_SEQUENCE_NODE;
  size_t count = list ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start) : 1;
  if (count > LIST_MAX) return at(L, n, err, "'ports' has more than %d items", LIST_MAX);
  free(e->ports);
  e->n_ports = 0;
  if (!(e->ports = calloc(count ? count : 1, sizeof *e->ports)))
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < count; i++) {
    yaml_node_t *item =
        list ? yaml_document_get_node((yaml_document_t *)&L->doc, n->data.sequence.items.start[i])
             : n;
    int r = port_item(&e->ports[i], L, item, err);
    if (r < 0) return r;
    e->n_ports++;
  }
  return 0;
}

static const char NET_KEYS[] = "mode, bridge, dhcp, subnet, nat, restrict";

static int net_member(qvm_vm_net *net, const loader *L, const char *name, yaml_node_t *k,
                      yaml_node_t *v, qvm_error **err) {
  const char *s = NULL;
  int r = 0;
  if (!strcmp(name, "nat")) return parse_bool(&net->nat, L, v, name, err);
  if (!strcmp(name, "restrict")) return parse_bool(&net->restricted, L, v, name, err);
  if (strcmp(name, "mode") && strcmp(name, "bridge") && strcmp(name, "dhcp") &&
      strcmp(name, "subnet")) {
    char hint[64];
    did_you_mean(hint, sizeof hint, name, NET_KEYS);
    return at(L, k, err, "unknown net key '%s': %suse %s", name, hint, NET_KEYS);
  }
  if ((r = scalar(&s, L, v, name, err)) < 0) return r;
  if (!strcmp(name, "mode")) {
    if (!strcmp(s, "user") || !strcmp(s, "none") || !strcmp(s, "bridge"))
      net->mode = s[0] == 'u' ? QVM_VM_NET_USER : s[0] == 'n' ? QVM_VM_NET_NONE : QVM_VM_NET_BRIDGE;
    else
      return at(L, v, err, "'mode' must be user, none or bridge, not '%.40s'", s);
  } else if (!strcmp(name, "dhcp")) {
    if (strcmp(s, "qvm") && strcmp(s, "external"))
      return at(L, v, err, "'dhcp' must be qvm or external, not '%.40s'", s);
    net->dhcp_external = !strcmp(s, "external");
  } else {
    char *dst = !strcmp(name, "bridge") ? net->bridge : net->subnet;
    size_t size = !strcmp(name, "bridge") ? sizeof net->bridge : sizeof net->subnet;
    if (!s[0] || strlen(s) >= size)
      return at(L, v, err, "'%s' must be 1 to %zu characters, not '%.40s'", name, size - 1, s);
    memcpy(dst, s, strlen(s) + 1);
  }
  return 0;
}

/* `net: bridge=br0,dhcp=external` (the --net syntax) or
 * `net: {mode: bridge, bridge: br0, dhcp: external, subnet: ..., nat: true}`;
 * names and subnets are checked by create. */
static int parse_net(qvm_vm_net *net, const loader *L, yaml_node_t *n, qvm_error **err) {
  if (n->type == YAML_MAPPING_NODE) {
    *net = (qvm_vm_net){.mode = QVM_VM_NET_USER};
    bool mode = false;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
      yaml_node_t *k = yaml_document_get_node((yaml_document_t *)&L->doc, p->key);
      yaml_node_t *v = yaml_document_get_node((yaml_document_t *)&L->doc, p->value);
      const char *name = NULL;
      int r = scalar(&name, L, k, "net key", err);
      if (r >= 0) r = net_member(net, L, name, k, v, err);
      if (r < 0) return r;
      mode = mode || !strcmp(name, "mode");
    }
    if (!mode) return at(L, n, err, "'net' needs 'mode: user|none|bridge'");
    return 0;
  }
  const char *s = NULL;
  int r = scalar(&s, L, n, "net", err);
  qvm_error *e = NULL;
  if (r >= 0 && qvm_vm_net_parse(net, s, &e) < 0) {
    r = at(L, n, err, "%s", qvm_error_message(e));
    qvm_error_free(e);
  }
  return r;
}

/* --- one VM ------------------------------------------------------------- */

static const char VM_KEYS[] = "image, image_format, image_sha256, image_checksums, "
                              "allow_backing, cpus, memory, disk, net, "
                              "ports, user, hostname, cloud_config, ssh_keys, provision, "
                              "firmware, accel, cpu, kernel, initrd, append";

static int parse_vm(entry *e, const loader *L, yaml_node_t *n, qvm_error **err) {
  if (n->type != YAML_MAPPING_NODE)
    return at(L, n, err, "vm '%s' must be a mapping of settings (%s), not %s", e->name, VM_KEYS,
              kind(n));
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node((yaml_document_t *)&L->doc, p->key);
    yaml_node_t *v = yaml_document_get_node((yaml_document_t *)&L->doc, p->value);
    const char *key = NULL;
    int r = scalar(&key, L, k, "key", err);
    if (r < 0) return r;
    if (!strcmp(key, "image"))
      r = dup_image(&e->image, L, v, key, err);
    else if (!strcmp(key, "image_sha256"))
      r = dup_scalar(&e->image_sha256, L, v, key, err);
    else if (!strcmp(key, "image_checksums"))
      r = dup_scalar(&e->image_checksums, L, v, key, err);
    else if (!strcmp(key, "image_format"))
      r = dup_scalar(&e->image_format, L, v, key, err);
    else if (!strcmp(key, "allow_backing"))
      r = parse_bool(&e->opts.allow_backing, L, v, key, err);
    else if (!strcmp(key, "kernel"))
      r = dup_path(&e->kernel, L, v, key, err);
    else if (!strcmp(key, "initrd"))
      r = dup_path(&e->initrd, L, v, key, err);
    else if (!strcmp(key, "append"))
      r = dup_scalar(&e->append, L, v, key, err);
    else if (!strcmp(key, "cpus"))
      r = parse_uint(&e->opts.cpus, L, v, key, 255, err);
    else if (!strcmp(key, "memory"))
      r = parse_size(&e->opts.memory, L, v, key, err);
    else if (!strcmp(key, "disk"))
      r = parse_size(&e->opts.disk, L, v, key, err);
    else if (!strcmp(key, "net"))
      r = parse_net(&e->opts.net, L, v, err);
    else if (!strcmp(key, "firmware"))
      r = dup_scalar(&e->firmware, L, v, key, err);
    else if (!strcmp(key, "accel"))
      r = dup_scalar(&e->accel, L, v, key, err);
    else if (!strcmp(key, "cpu"))
      r = dup_scalar(&e->cpu, L, v, key, err);
    else if (!strcmp(key, "user"))
      r = dup_scalar(&e->user, L, v, key, err);
    else if (!strcmp(key, "hostname"))
      r = dup_scalar(&e->hostname, L, v, key, err);
    else if (!strcmp(key, "ports"))
      r = parse_ports(e, L, v, err);
    else if (!strcmp(key, "cloud_config"))
      r = one_or_list(&e->cloud_configs, L, v, key, dup_path, err);
    else if (!strcmp(key, "ssh_keys"))
      r = one_or_list(&e->ssh_keys, L, v, key, dup_path, err);
    else if (!strcmp(key, "provision"))
      r = parse_steps(e, L, v, err);
    else {
      char hint[64];
      did_you_mean(hint, sizeof hint, key, VM_KEYS);
      return at(L, k, err, "unknown key '%s' in vm '%s': %sallowed are %s", key, e->name, hint,
                VM_KEYS);
    }
    if (r < 0) return r;
  }
  /* Each value is checked again (sizes, modes, paths) by qvm_vm_create. */
  if (!e->image && !e->kernel)
    return at(L, n, err, "vm '%s' needs 'image: PATH' (or 'kernel: PATH')", e->name);
  qvm_vm_create_options *o = &e->opts;
  o->version = QVM_VM_CREATE_OPTIONS_VERSION;
  o->image = e->image;
  o->image_format = e->image_format;
  if (e->image_sha256 || e->image_checksums) {
    e->pull = (qvm_image_pull_options)QVM_IMAGE_PULL_OPTIONS_INIT;
    e->pull.sha256 = e->image_sha256;
    e->pull.checksums = e->image_checksums;
    e->has_pull = true;
  }
  o->kernel = e->kernel;
  o->initrd = e->initrd;
  o->append = e->append;
  o->firmware = e->firmware;
  o->accel = e->accel;
  o->cpu = e->cpu;
  o->user = e->user;
  o->hostname = e->hostname;
  o->publish = e->ports;
  o->n_publish = e->n_ports;
  o->cloud_configs = (const char *const *)e->cloud_configs.v;
  o->n_cloud_configs = e->cloud_configs.n;
  o->authorized_keys = (const char *const *)e->ssh_keys.v;
  o->n_authorized_keys = e->ssh_keys.n;
  o->provision = e->steps;
  o->n_provision = e->n_steps;
  return 0;
}

static int parse_root(qvm_vm_file *f, const loader *L, qvm_error **err) {
  yaml_node_t *root = yaml_document_get_root_node((yaml_document_t *)&L->doc);
  if (!root)
    return qvm_error_set(err, QVM_EINVAL, "%s: the file is empty: it needs 'vms:'", L->path);
  if (root->type != YAML_MAPPING_NODE)
    return at(L, root, err, "the top level must be a mapping with 'vms:', not %s", kind(root));
  yaml_node_t *vms = NULL;
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
       p++) {
    yaml_node_t *k = yaml_document_get_node((yaml_document_t *)&L->doc, p->key);
    const char *key = NULL;
    int r = scalar(&key, L, k, "key", err);
    if (r < 0) return r;
    if (strcmp(key, "vms")) {
      char hint[64];
      did_you_mean(hint, sizeof hint, key, "vms");
      return at(L, k, err, "unknown top-level key '%s': %sallowed is vms", key, hint);
    }
    vms = yaml_document_get_node((yaml_document_t *)&L->doc, p->value);
  }
  if (!vms) return at(L, root, err, "no 'vms:' mapping");
  if (vms->type != YAML_MAPPING_NODE)
    return at(L, vms, err, "'vms' must map VM names to their settings, not %s", kind(vms));
  size_t count = (size_t)(vms->data.mapping.pairs.top - vms->data.mapping.pairs.start);
  if (!count) return at(L, vms, err, "'vms' is empty: describe at least one VM");
  if (count > LIST_MAX) return at(L, vms, err, "more than %d VMs", LIST_MAX);
  if (!(f->vms = calloc(count, sizeof *f->vms)))
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  for (yaml_node_pair_t *p = vms->data.mapping.pairs.start; p < vms->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node((yaml_document_t *)&L->doc, p->key);
    yaml_node_t *v = yaml_document_get_node((yaml_document_t *)&L->doc, p->value);
    entry *e = &f->vms[f->n];
    int r = dup_scalar(&e->name, L, k, "vm name", err);
    if (r < 0) return r;
    f->n++;
    if (!qvm_vm_name_valid(e->name))
      return at(L, k, err, "vm name '%s' is invalid: use [a-z0-9][a-z0-9-]{0,62}", e->name);
    if (qvm_vm_file_find(f, e->name) != (ssize_t)(f->n - 1))
      return at(L, k, err, "vm '%s' is described twice", e->name);
    if ((r = parse_vm(e, L, v, err)) < 0) return r;
  }
  return 0;
}

int vm_file_parse(qvm_vm_file **out, const char *label, const char *dir, const char *text,
                  size_t len, qvm_error **err) {
  if (strlen(text) != len) return qvm_error_set(err, QVM_EINVAL, "%s: contains a NUL byte", label);
  loader L = {.path = label};
  if (!(L.dir = strdup(dir))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) {
    free(L.dir);
    return qvm_error_set_errno(err, ENOMEM, "cannot start the YAML parser");
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  int r;
  if (!yaml_parser_load(&parser, &L.doc)) {
    r = qvm_error_set(err, QVM_EINVAL, "%s:%zu:%zu: invalid YAML: %s", label,
                      parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                      parser.problem ? parser.problem : "parse error");
    yaml_parser_delete(&parser);
    free(L.dir);
    return r;
  }
  /* A second document is a mistake worth naming, not something to ignore. */
  yaml_document_t extra;
  bool more = false;
  if (yaml_parser_load(&parser, &extra)) {
    more = yaml_document_get_root_node(&extra) != NULL;
    yaml_document_delete(&extra);
  }
  yaml_parser_delete(&parser);
  _cleanup_(qvm_vm_file_freep) qvm_vm_file *f = calloc(1, sizeof *f);
  if (!f)
    r = qvm_error_set_errno(err, ENOMEM, "out of memory");
  else if (more)
    r = qvm_error_set(err, QVM_EINVAL, "%s: has more than one YAML document: keep one", label);
  else
    r = parse_root(f, &L, err);
  yaml_document_delete(&L.doc);
  free(L.dir);
  if (r < 0) return r;
  /* The entries no longer move: point each one's options at its checksums. */
  for (size_t i = 0; i < f->n; i++)
    if (f->vms[i].has_pull) f->vms[i].opts.image_pull = &f->vms[i].pull;
  *out = TAKE_PTR(f);
  return 0;
}

int qvm_vm_file_load(qvm_vm_file **out, const char *path, qvm_error **err) {
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  int r = qvm_read_file(&text, &len, path, FILE_MAX, err);
  if (r < 0) return r;
  char abs[PATH_MAX];
  if (!realpath(path, abs)) return qvm_error_set_errno(err, errno, "cannot resolve '%s'", path);
  return vm_file_parse(out, path, dirname(abs), text, len, err);
}
