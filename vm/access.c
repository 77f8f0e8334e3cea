/* SPDX-License-Identifier: MIT */
/*
 * Guest access in the spec: provision steps, the "access" member of vm.json,
 * and the create options that fill them (checked at create, so a typo fails
 * `qvm create`, not the first boot).
 */
#include "vm/access.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include <qvm/seed.h>
#include <qvm/ssh.h>

#define STEP_TEXT_MAX 65536
#define ACCESS_LIST_MAX 64
#define KEY_FILE_MAX (64u << 10)

/* --- names ------------------------------------------------------------------ */

bool vm_user_name_valid(const char *name) {
  if (!name || !name[0] || strlen(name) > 32) return false;
  if (!islower((unsigned char)name[0]) && name[0] != '_') return false;
  for (const char *p = name; *p; p++)
    if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_' && *p != '-')
      return false;
  return true;
}

bool vm_hostname_valid(const char *name) {
  size_t len = name ? strlen(name) : 0, label = 0;
  if (!len || len > 253 || !isalnum((unsigned char)name[0]) ||
      !isalnum((unsigned char)name[len - 1]))
    return false;
  for (const char *p = name; *p; p++) {
    if (*p == '.') {
      if (p[1] == '.' || p[-1] == '-' || p[1] == '-') return false;
      label = 0;
    } else if ((!isalnum((unsigned char)*p) && *p != '-') || ++label > 63) {
      return false;
    }
  }
  return true;
}

/* --- steps ------------------------------------------------------------------ */

static const char step_usage[] =
    "use shell:CMD, script:PATH or file:SRC:DST, optionally prefixed sudo:";

const char *vm_step_kind_name(vm_step_kind kind) {
  switch (kind) {
  case VM_STEP_SHELL: return "shell";
  case VM_STEP_SCRIPT: return "script";
  case VM_STEP_FILE: return "file";
  }
  return "?";
}

int vm_step_kind_parse(vm_step_kind *out, const char *text, qvm_error **err) {
  if (!strcmp(text, "shell"))
    *out = VM_STEP_SHELL;
  else if (!strcmp(text, "script"))
    *out = VM_STEP_SCRIPT;
  else if (!strcmp(text, "file"))
    *out = VM_STEP_FILE;
  else
    return qvm_error_set(err, QVM_EINVAL, "provision step kind '%s' is unknown: %s", text,
                         step_usage);
  return 0;
}

void vm_step_clear(vm_step *step) {
  free(step->text);
  free(step->destination);
  *step = (vm_step){0};
}

/* At most 60 bytes of text for a message, control bytes as '?'. */
static void shown(char out[72], const char *text) {
  size_t j = 0;
  for (size_t i = 0; text[i] && j < 60; i++)
    out[j++] = (unsigned char)text[i] < 0x20 ? '?' : text[i];
  strcpy(out + j, text[j] ? "..." : "");
}

int vm_step_parse(vm_step *out, const char *text, qvm_error **err) {
  char show[72];
  shown(show, text ? text : "");
  if (!text || !text[0])
    return qvm_error_set(err, QVM_EINVAL, "provision step is empty: %s", step_usage);
  if (strlen(text) > STEP_TEXT_MAX)
    return qvm_error_set(err, QVM_EINVAL, "provision step '%s' is too long", show);
  vm_step s = {0};
  const char *p = text;
  if (!strncmp(p, "sudo:", 5)) s.sudo = true, p += 5;
  const char *colon = strchr(p, ':');
  if (!colon)
    return qvm_error_set(err, QVM_EINVAL, "provision step '%s' is invalid: %s", show, step_usage);
  _cleanup_free_ char *kind = strndup(p, (size_t)(colon - p));
  if (!kind) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = vm_step_kind_parse(&s.kind, kind, err);
  if (r < 0) {
    qvm_error_prefix(err, "provision step '%s'", show); /* 0 when err is NULL */
    return r;
  }
  const char *rest = colon + 1, *dst = NULL;
  if (s.kind == VM_STEP_FILE) {
    dst = strchr(rest, ':');
    if (!dst || dst == rest || !dst[1])
      return qvm_error_set(err, QVM_EINVAL,
                           "provision step '%s' is invalid: a file step is file:SRC:DST (SRC is "
                           "a local file or directory, DST the path in the guest)",
                           show);
  }
  if (!rest[0])
    return qvm_error_set(err, QVM_EINVAL, "provision step '%s' has nothing after '%s:': %s", show,
                         kind, step_usage);
  s.text = dst ? strndup(rest, (size_t)(dst - rest)) : strdup(rest);
  s.destination = dst ? strdup(dst + 1) : NULL;
  if (!s.text || (dst && !s.destination)) {
    vm_step_clear(&s);
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  *out = s;
  return 0;
}

char *vm_step_format(const vm_step *step) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_printf(&sb, "%s%s:%s", step->sudo ? "sudo:" : "", vm_step_kind_name(step->kind),
                    step->text ? step->text : "");
  if (step->kind == VM_STEP_FILE) qvm_strbuf_printf(&sb, ":%s", step->destination);
  return qvm_strbuf_steal(&sb);
}

/* --- spec members ----------------------------------------------------------- */

static void strv_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

void vm_spec_lent_credentials_clear(vm_spec *s) {
  if (s->lent_pem) sodium_memzero(s->lent_pem, s->lent_pem_len);
  free(s->lent_pem);
  free(s->lent_cert);
  s->lent_pem = s->lent_cert = NULL;
  s->lent_pem_len = 0;
}

void vm_spec_access_clear(vm_spec *s) {
  vm_spec_lent_credentials_clear(s);
  free(s->user);
  free(s->hostname);
  strv_free(s->cloud_configs, s->n_cloud_configs);
  strv_free(s->authorized_keys, s->n_authorized_keys);
  for (size_t i = 0; i < s->n_steps; i++) vm_step_clear(&s->steps[i]);
  free(s->steps);
  free(s->lent_host);
  free(s->lent_known_hosts);
  free(s->lent_identity);
  s->user = s->hostname = NULL;
  s->cloud_configs = s->authorized_keys = NULL;
  s->n_cloud_configs = s->n_authorized_keys = s->n_steps = 0;
  s->steps = NULL;
  s->lent_host = s->lent_known_hosts = s->lent_identity = NULL;
}

static int strv_add(char ***v, size_t *n, const char *s, qvm_error **err) {
  char **nv = reallocarray(*v, *n + 1, sizeof *nv);
  if (!nv) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  *v = nv;
  if (!(nv[*n] = strdup(s))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  (*n)++;
  return 0;
}

static int steps_add(vm_spec *s, vm_step *step, qvm_error **err) {
  vm_step *v = reallocarray(s->steps, s->n_steps + 1, sizeof *v);
  if (!v) {
    vm_step_clear(step);
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  s->steps = v;
  s->steps[s->n_steps++] = *step;
  *step = (vm_step){0};
  return 0;
}

/* --- JSON --------------------------------------------------------------------- */

static void put_str(struct json_object *o, const char *key, const char *v) {
  if (v) json_object_object_add(o, key, json_object_new_string(v));
}

static struct json_object *strv_to_json(char *const *v, size_t n) {
  struct json_object *a = json_object_new_array();
  for (size_t i = 0; i < n; i++) json_object_array_add(a, json_object_new_string(v[i]));
  return a;
}

static struct json_object *step_to_json(const vm_step *st) {
  struct json_object *o = json_object_new_object();
  put_str(o, "kind", vm_step_kind_name(st->kind));
  json_object_object_add(o, "sudo", json_object_new_boolean(st->sudo));
  put_str(o, st->kind == VM_STEP_SHELL ? "run" : "source", st->text);
  put_str(o, "destination", st->destination);
  return o;
}

struct json_object *vm_access_to_json(const vm_spec *s) {
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "cloud_init", json_object_new_boolean(s->cloud_init));
  /* Written only when true: older vm.json files read as before. */
  if (s->grow_partition) json_object_object_add(o, "grow_partition", json_object_new_boolean(true));
  put_str(o, "user", s->user);
  put_str(o, "hostname", s->hostname);
  put_str(o, "hostkey", s->hostkey_tofu ? "tofu" : "pinned");
  json_object_object_add(o, "cloud_configs", strv_to_json(s->cloud_configs, s->n_cloud_configs));
  json_object_object_add(o, "authorized_keys",
                         strv_to_json(s->authorized_keys, s->n_authorized_keys));
  struct json_object *steps = json_object_new_array();
  for (size_t i = 0; i < s->n_steps; i++) json_object_array_add(steps, step_to_json(&s->steps[i]));
  json_object_object_add(o, "provision", steps);
  return o;
}

/* A string member without NUL bytes, at most max bytes; absent/null: NULL. */
static int json_str(const char **out, struct json_object *o, const char *key, size_t max,
                    qvm_error **err) {
  struct json_object *v = NULL;
  *out = NULL;
  if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) return 0;
  if (!json_object_is_type(v, json_type_string))
    return qvm_error_set(err, QVM_EINVAL, "'access.%s' is not a string", key);
  const char *s = json_object_get_string(v);
  size_t len = (size_t)json_object_get_string_len(v);
  if (strlen(s) != len || len > max || len == 0)
    return qvm_error_set(err, QVM_EINVAL, "'access.%s' is empty, too long or holds a NUL byte",
                         key);
  *out = s;
  return 0;
}

static struct json_object *json_array(struct json_object *o, const char *key, qvm_error **err,
                                      int *r) {
  struct json_object *a = NULL;
  *r = 0;
  if (!json_object_object_get_ex(o, key, &a) || json_object_is_type(a, json_type_null)) return NULL;
  if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > ACCESS_LIST_MAX) {
    *r = qvm_error_set(err, QVM_EINVAL, "'access.%s' is not an array of at most %d entries", key,
                       ACCESS_LIST_MAX);
    return NULL;
  }
  return a;
}

static int paths_from_json(char ***v, size_t *n, struct json_object *o, const char *key,
                           qvm_error **err) {
  int r;
  struct json_object *a = json_array(o, key, err, &r);
  for (size_t i = 0; a && r >= 0 && i < json_object_array_length(a); i++) {
    struct json_object *e = json_object_array_get_idx(a, i);
    const char *s = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
    if (!s || s[0] != '/' || strlen(s) != (size_t)json_object_get_string_len(e) ||
        strlen(s) > PATH_MAX)
      return qvm_error_set(err, QVM_EINVAL, "'access.%s' entry %zu is not an absolute path", key,
                           i + 1);
    r = strv_add(v, n, s, err);
  }
  return r;
}

static int step_from_json(vm_spec *s, struct json_object *e, size_t i, qvm_error **err) {
  const char *kind = NULL, *text = NULL, *dst = NULL;
  vm_step st = {0};
  if (!json_object_is_type(e, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "'access.provision' entry %zu is not an object", i);
  int r = json_str(&kind, e, "kind", 16, err);
  if (r >= 0 && !kind) r = qvm_error_set(err, QVM_EINVAL, "provision step %zu has no kind", i);
  if (r >= 0) r = vm_step_kind_parse(&st.kind, kind, err);
  if (r >= 0)
    r = json_str(&text, e, st.kind == VM_STEP_SHELL ? "run" : "source", STEP_TEXT_MAX, err);
  if (r >= 0 && st.kind == VM_STEP_FILE) r = json_str(&dst, e, "destination", PATH_MAX, err);
  if (r >= 0 && (!text || (st.kind == VM_STEP_FILE && !dst)))
    r = qvm_error_set(err, QVM_EINVAL, "provision step %zu (%s) is incomplete", i, kind);
  if (r >= 0 && st.kind != VM_STEP_SHELL && text[0] != '/')
    r = qvm_error_set(err, QVM_EINVAL, "provision step %zu: source '%s' is not absolute", i, text);
  if (r < 0) return r;
  struct json_object *sudo = NULL;
  st.sudo = json_object_object_get_ex(e, "sudo", &sudo) &&
            json_object_is_type(sudo, json_type_boolean) && json_object_get_boolean(sudo);
  st.text = strdup(text);
  st.destination = dst ? strdup(dst) : NULL;
  if (!st.text || (dst && !st.destination)) {
    vm_step_clear(&st);
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  return steps_add(s, &st, err);
}

static int access_scalars_from_json(vm_spec *s, struct json_object *o, qvm_error **err) {
  const char *user = NULL, *host = NULL, *hostkey = NULL;
  struct json_object *ci = NULL;
  s->cloud_init = json_object_object_get_ex(o, "cloud_init", &ci) &&
                  json_object_is_type(ci, json_type_boolean) && json_object_get_boolean(ci);
  s->grow_partition = json_object_object_get_ex(o, "grow_partition", &ci) &&
                      json_object_is_type(ci, json_type_boolean) && json_object_get_boolean(ci);
  int r = json_str(&user, o, "user", 32, err);
  if (r >= 0 && user && !vm_user_name_valid(user))
    r = qvm_error_set(err, QVM_EINVAL, "'access.user' '%s' is not a valid user name", user);
  if (r >= 0) r = json_str(&host, o, "hostname", 253, err); /* as vm_hostname_valid */
  if (r >= 0 && host && !vm_hostname_valid(host))
    r = qvm_error_set(err, QVM_EINVAL, "'access.hostname' '%s' is not a valid hostname", host);
  if (r >= 0) r = json_str(&hostkey, o, "hostkey", 16, err);
  if (r >= 0 && hostkey && strcmp(hostkey, "pinned") && strcmp(hostkey, "tofu"))
    r = qvm_error_set(err, QVM_EINVAL, "'access.hostkey' '%s' is unknown: use pinned or tofu",
                      hostkey);
  if (r < 0) return r;
  /* Without qvm's seed nothing was pinned before the first boot. */
  s->hostkey_tofu = hostkey ? !strcmp(hostkey, "tofu") : !s->cloud_init;
  if ((user && !(s->user = strdup(user))) || (host && !(s->hostname = strdup(host))))
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

int vm_access_from_json(vm_spec *s, struct json_object *o, qvm_error **err) {
  if (!o || json_object_is_type(o, json_type_null)) {
    s->hostkey_tofu = true; /* a VM from before qvm pinned host keys */
    return 0;
  }
  if (!json_object_is_type(o, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "'access' is not an object");
  int r = access_scalars_from_json(s, o, err);
  if (r >= 0) r = paths_from_json(&s->cloud_configs, &s->n_cloud_configs, o, "cloud_configs", err);
  if (r >= 0)
    r = paths_from_json(&s->authorized_keys, &s->n_authorized_keys, o, "authorized_keys", err);
  struct json_object *steps = r >= 0 ? json_array(o, "provision", err, &r) : NULL;
  for (size_t i = 0; steps && r >= 0 && i < json_object_array_length(steps); i++)
    r = step_from_json(s, json_object_array_get_idx(steps, i), i + 1, err);
  return r;
}

/* --- create options -> spec ----------------------------------------------------- */

/* realpath of an existing file (dir_ok: or directory) readable by us. */
static int local_path(char **out, const char *what, const char *path, bool dir_ok,
                      qvm_error **err) {
  char buf[PATH_MAX];
  struct stat st;
  if (!path || !path[0]) return qvm_error_set(err, QVM_EINVAL, "%s path is empty", what);
  if (!realpath(path, buf) || stat(buf, &st) < 0)
    return qvm_error_set(err, QVM_ENOTFOUND, "%s '%s' not found: check the path", what, path);
  if (!S_ISREG(st.st_mode) && !(dir_ok && S_ISDIR(st.st_mode)))
    return qvm_error_set(err, QVM_EINVAL, "%s '%s' is not a %s", what, path,
                         dir_ok ? "file or directory" : "file");
  if (access(buf, R_OK) < 0)
    return qvm_error_set_errno(err, errno, "%s '%s' is not readable", what, path);
  if (!(*out = strdup(buf))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

static int check_cloud_config(const char *abs, const char *given, qvm_error **err) {
  _cleanup_free_ char *data = NULL;
  size_t len = 0;
  int r = qvm_read_file(&data, &len, abs, QVM_SEED_MAX_USER_FILE, err);
  if (r < 0) {
    qvm_error_prefix(err, "cloud-config '%s'", given);
    return r;
  }
  if (len >= 2 && !memcmp(data, "#!", 2)) return 0; /* a script part */
  r = qvm_seed_check_user_config(data, len, given, err);
  if (r < 0)
    qvm_error_prefix(err,
                     "cloud-config '%s' is not a usable cloud-config (a YAML mapping, or a "
                     "script starting with '#!')",
                     given);
  return r;
}

/* Every non-comment line of a public key file must be a key. */
static int check_key_file(const char *abs, const char *given, qvm_error **err) {
  _cleanup_free_ char *data = NULL;
  int r = qvm_read_file(&data, NULL, abs, KEY_FILE_MAX, err);
  size_t keys = 0;
  if (r < 0) {
    qvm_error_prefix(err, "public key file '%s'", given);
    return r;
  }
  for (char *save = NULL, *l = strtok_r(data, "\r\n", &save); l;
       l = strtok_r(NULL, "\r\n", &save)) {
    while (*l == ' ' || *l == '\t') l++;
    if (!*l || *l == '#') continue;
    _cleanup_free_ char *fp = NULL;
    if (qvm_ssh_public_line_fingerprint(&fp, l, NULL) < 0)
      return qvm_error_set(err, QVM_EINVAL,
                           "public key file '%s' holds a line that is not an ssh public key (a "
                           "private key?)",
                           given);
    keys++;
  }
  if (!keys)
    return qvm_error_set(err, QVM_EINVAL, "public key file '%s' holds no public key", given);
  return 0;
}

/* A step as given: its kind and strings checked as the parser checks them,
 * local paths made absolute. */
static int spec_step(vm_spec *s, size_t i, const qvm_vm_step *given, qvm_error **err) {
  /* the step as the user would write it: "[sudo:]kind:text" */
  static const char *const kinds[] = {"shell", "script", "file"};
  char show[72], as_written[80];
  snprintf(as_written, sizeof as_written, "%s%s:%.70s", given->sudo ? "sudo:" : "",
           (unsigned)given->kind <= QVM_VM_STEP_FILE ? kinds[given->kind] : "?",
           given->text ? given->text : "");
  shown(show, as_written);
  int r = 0;
  if ((unsigned)given->kind > QVM_VM_STEP_FILE)
    r = qvm_error_set(err, QVM_EINVAL, "step kind %d is unknown", (int)given->kind);
  else if (!given->text || !given->text[0] || strlen(given->text) > STEP_TEXT_MAX)
    r = qvm_error_set(err, QVM_EINVAL, "is empty or too long: %s", step_usage);
  else if ((given->kind == QVM_VM_STEP_FILE) !=
           (given->destination && given->destination[0] && strlen(given->destination) <= PATH_MAX))
    r = qvm_error_set(err, QVM_EINVAL,
                      given->destination ? "a destination belongs only to a file step, and is "
                                           "at most PATH_MAX bytes"
                                         : "a file step needs a destination (DST, the path in "
                                           "the guest)");
  vm_step st = {.kind = (vm_step_kind)given->kind, .sudo = given->sudo};
  if (r >= 0 && given->kind == QVM_VM_STEP_SHELL && !(st.text = strdup(given->text)))
    r = qvm_error_set_errno(err, ENOMEM, "out of memory");
  if (r >= 0 && given->kind != QVM_VM_STEP_SHELL)
    r = local_path(&st.text, given->kind == QVM_VM_STEP_SCRIPT ? "script" : "file", given->text,
                   given->kind == QVM_VM_STEP_FILE, err);
  if (r >= 0 && given->destination && !(st.destination = strdup(given->destination)))
    r = qvm_error_set_errno(err, ENOMEM, "out of memory");
  if (r < 0) {
    vm_step_clear(&st);
    qvm_error_prefix(err, "provision step %zu '%s'", i + 1, show);
    return r;
  }
  return steps_add(s, &st, err);
}

static int spec_lists(vm_spec *s, const qvm_vm_create_options *o, qvm_error **err) {
  int r = 0;
  if (o->n_cloud_configs + o->n_authorized_keys + o->n_provision > 3 * ACCESS_LIST_MAX ||
      o->n_cloud_configs > ACCESS_LIST_MAX || o->n_authorized_keys > ACCESS_LIST_MAX ||
      o->n_provision > ACCESS_LIST_MAX)
    return qvm_error_set(err, QVM_EINVAL,
                         "too many cloud-configs, public key files or provision steps: at most "
                         "%d of each",
                         ACCESS_LIST_MAX);
  for (size_t i = 0; r >= 0 && i < o->n_cloud_configs; i++) {
    _cleanup_free_ char *abs = NULL;
    r = local_path(&abs, "cloud-config", o->cloud_configs[i], false, err);
    if (r >= 0) r = check_cloud_config(abs, o->cloud_configs[i], err);
    if (r >= 0) r = strv_add(&s->cloud_configs, &s->n_cloud_configs, abs, err);
  }
  for (size_t i = 0; r >= 0 && i < o->n_authorized_keys; i++) {
    _cleanup_free_ char *abs = NULL;
    r = local_path(&abs, "public key file", o->authorized_keys[i], false, err);
    if (r >= 0) r = check_key_file(abs, o->authorized_keys[i], err);
    if (r >= 0) r = strv_add(&s->authorized_keys, &s->n_authorized_keys, abs, err);
  }
  for (size_t i = 0; r >= 0 && i < o->n_provision; i++) r = spec_step(s, i, &o->provision[i], err);
  return r;
}

int vm_access_spec(vm_spec *s, const qvm_vm_create_options *o, qvm_error **err) {
  bool seed_given = o->seed_iso != NULL;
  s->cloud_init = !o->no_cloud_init && !seed_given;
  if (!s->cloud_init && (o->n_cloud_configs || o->n_authorized_keys || o->hostname)) {
    qvm_error_set(err, QVM_EINVAL,
                  "cloud-configs, public key files and a hostname go into the seed qvm builds, "
                  "and qvm builds none %s",
                  o->no_cloud_init ? "without cloud-init" : "when a seed image is given");
    return qvm_error_set_hint(
        err, QVM_EINVAL, o->no_cloud_init ? "SeedUnusedNoCloudInit" : "SeedUnusedSeedIso", NULL);
  }
  if (o->user && !vm_user_name_valid(o->user))
    return qvm_error_set(err, QVM_EINVAL,
                         "user '%s' is invalid: use up to 32 of a-z, 0-9, '_' and '-', starting "
                         "with a letter or '_'",
                         o->user);
  if (o->hostname && !vm_hostname_valid(o->hostname))
    return qvm_error_set(err, QVM_EINVAL,
                         "hostname '%s' is invalid: use labels of up to 63 of A-Z, a-z, 0-9 and "
                         "'-', joined by '.', starting and ending with a letter or digit",
                         o->hostname);
  if (o->hostkey && strcmp(o->hostkey, "pinned") && strcmp(o->hostkey, "tofu"))
    return qvm_error_set(err, QVM_EINVAL, "host key policy '%s' is unknown: use pinned or tofu",
                         o->hostkey);
  s->hostkey_tofu = o->hostkey ? !strcmp(o->hostkey, "tofu") : !s->cloud_init;
  const char *user = o->user ? o->user : s->cloud_init ? VM_DEFAULT_USER : NULL;
  if (user && !(s->user = strdup(user))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if (s->cloud_init) {
    if (!(s->hostname = strdup(o->hostname ? o->hostname : s->name)))
      return qvm_error_set_errno(err, ENOMEM, "out of memory");
    /* A VM name may end in '-', a hostname may not. */
    for (size_t n = strlen(s->hostname); n > 1 && s->hostname[n - 1] == '-'; n--)
      s->hostname[n - 1] = '\0';
    free(s->seed_iso);
    if (!(s->seed_iso = strdup(VM_SEED_ISO)))
      return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  return spec_lists(s, o, err);
}
