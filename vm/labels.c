/* SPDX-License-Identifier: MIT */
/* Labels, agent id and the sandbox mark of a VM: their rules, the create
 * options' copy, the JSON members of the spec (vm.json is a user file:
 * everything read back is checked like a command line), and the accessors
 * of include/qvm/vm.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/cleanup.h"
#include "util/time.h"
#include "vm/handle.h"
#include "vm/spec.h"

static bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '/' ||
         c == '-';
}

static bool agent_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         strchr("._@:-", c);
}

/* Quoted in messages only when it is printable: a key or agent that is not
 * is named by its length. */
static bool printable(const char *s, size_t max) {
  size_t n = 0;
  for (; s[n]; n++)
    if (n >= max || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e) return false;
  return true;
}

int qvm_vm_label_check(const char *key, const char *value, qvm_error **err) {
  if (!key || !value) return qvm_error_set(err, QVM_EINVAL, "a label needs a key and a value");
  size_t n = strlen(key);
  bool ok = n >= 1 && n <= QVM_VM_LABEL_KEY_MAX;
  for (size_t i = 0; ok && i < n; i++) ok = key_char(key[i]);
  if (!ok && printable(key, 256))
    return qvm_error_set(err, QVM_EINVAL, "label key '%s' is invalid: use [a-z0-9._/-]{1,63}", key);
  if (!ok)
    return qvm_error_set(err, QVM_EINVAL,
                         "a label key (%zu bytes) is invalid: use [a-z0-9._/-]{1,63}", n);
  if (!printable(value, QVM_VM_LABEL_VALUE_MAX))
    return qvm_error_set(err, QVM_EINVAL,
                         "label '%s': the value must be printable ASCII of at most %d bytes", key,
                         QVM_VM_LABEL_VALUE_MAX);
  return 0;
}

int qvm_vm_agent_check(const char *agent, qvm_error **err) {
  size_t n = agent ? strlen(agent) : 0;
  bool ok = n >= 1 && n <= QVM_VM_AGENT_MAX;
  for (size_t i = 0; ok && i < n; i++) ok = agent_char(agent[i]);
  if (ok) return 0;
  if (agent && printable(agent, 256))
    return qvm_error_set(err, QVM_EINVAL, "agent id '%s' is invalid: use [A-Za-z0-9._@:-]{1,128}",
                         agent);
  return qvm_error_set(err, QVM_EINVAL,
                       "an agent id (%zu bytes) is invalid: use [A-Za-z0-9._@:-]{1,128}", n);
}

int qvm_vm_label_parse(qvm_vm_label *out, const char *text, qvm_error **err) {
  *out = (qvm_vm_label){0};
  const char *eq = text ? strchr(text, '=') : NULL;
  if (!eq) {
    if (text && printable(text, 256))
      return qvm_error_set(err, QVM_EINVAL, "label '%s' is not KEY=VALUE", text);
    return qvm_error_set(err, QVM_EINVAL, "a label is not KEY=VALUE");
  }
  _cleanup_free_ char *key = strndup(text, (size_t)(eq - text));
  _cleanup_free_ char *value = strdup(eq + 1);
  if (!key || !value) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = qvm_vm_label_check(key, value, err);
  if (r < 0) return r;
  out->key = TAKE_PTR(key);
  out->value = TAKE_PTR(value);
  return 0;
}

void qvm_vm_label_clear(qvm_vm_label *label) {
  if (!label) return;
  free((char *)label->key);
  free((char *)label->value);
  *label = (qvm_vm_label){0};
}

/* --- the spec's copy ------------------------------------------------------- */

void vm_spec_tags_clear(vm_spec *s) {
  for (size_t i = 0; i < s->n_labels; i++) {
    free(s->labels[i].key);
    free(s->labels[i].value);
  }
  free(s->labels);
  free(s->agent);
  s->labels = NULL;
  s->n_labels = 0;
  s->agent = NULL;
  s->sandbox = false;
  s->expires_at_us = 0;
  s->checkpoint_each = false;
}

static int label_cmp(const void *a, const void *b) {
  return strcmp(((const vm_label *)a)->key, ((const vm_label *)b)->key);
}

/* Checked, sorted, each key once. */
static int labels_set(vm_spec *s, const qvm_vm_label *labels, size_t n, qvm_error **err) {
  if (n > QVM_VM_LABELS_MAX)
    return qvm_error_set(err, QVM_EINVAL, "%zu labels: at most %d are allowed", n,
                         QVM_VM_LABELS_MAX);
  if (n && !labels) return qvm_error_set(err, QVM_EINVAL, "%zu labels given without a list", n);
  if (n && !(s->labels = calloc(n, sizeof *s->labels)))
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    int r = qvm_vm_label_check(labels[i].key, labels[i].value, err);
    if (r < 0) return r;
    if (!(s->labels[i].key = strdup(labels[i].key)) ||
        !(s->labels[i].value = strdup(labels[i].value)))
      return qvm_error_set_errno(err, ENOMEM, "out of memory");
    s->n_labels = i + 1;
  }
  if (n) qsort(s->labels, n, sizeof *s->labels, label_cmp);
  for (size_t i = 1; i < n; i++)
    if (!strcmp(s->labels[i].key, s->labels[i - 1].key))
      return qvm_error_set(err, QVM_EINVAL, "label '%s' is given twice", s->labels[i].key);
  return 0;
}

int vm_spec_set_tags(vm_spec *s, const qvm_vm_tags *t, qvm_error **err) {
  vm_spec_tags_clear(s);
  int r = labels_set(s, t->labels, t->n_labels, err);
  if (r >= 0 && t->agent) r = qvm_vm_agent_check(t->agent, err);
  if (r >= 0 && t->agent && !(s->agent = strdup(t->agent)))
    r = qvm_error_set_errno(err, ENOMEM, "out of memory");
  if (r >= 0 && t->expires_at_us && !t->sandbox)
    r = qvm_error_set(err, QVM_EINVAL, "a deadline is only for a sandbox");
  if (r >= 0 && t->sandbox && t->expires_at_us <= 0)
    r = qvm_error_set(err, QVM_EINVAL, "a sandbox needs a deadline");
  if (r >= 0 && t->checkpoint_each && !t->sandbox)
    r = qvm_error_set(err, QVM_EINVAL, "a checkpoint before every command is only for a sandbox");
  s->sandbox = t->sandbox;
  s->expires_at_us = t->expires_at_us;
  s->checkpoint_each = t->checkpoint_each;
  if (r < 0) vm_spec_tags_clear(s);
  return r;
}

/* --- RFC 3339 -------------------------------------------------------------- */

static bool digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

int vm_rfc3339_parse(int64_t *out_us, const char *text, qvm_error **err) {
  int Y = 0, M = 0, D = 0, h = 0, m = 0, sec = 0, frac = 0;
  size_t n = text ? strlen(text) : 0;
  const char *t = text;
  bool ok = n >= 20 && n <= 27 && digits(t, 4, &Y) && t[4] == '-' && digits(t + 5, 2, &M) &&
            t[7] == '-' && digits(t + 8, 2, &D) && t[10] == 'T' && digits(t + 11, 2, &h) &&
            t[13] == ':' && digits(t + 14, 2, &m) && t[16] == ':' && digits(t + 17, 2, &sec) &&
            t[n - 1] == 'Z';
  if (ok && n > 20) {
    int places = (int)n - 21; /* between '.' and 'Z' */
    ok = t[19] == '.' && places >= 1 && places <= 6 && digits(t + 20, places, &frac);
    for (int i = places; ok && i < 6; i++) frac *= 10;
  }
  ok = ok && Y >= 1970 && Y <= 9999 && M >= 1 && M <= 12 && D >= 1 && D <= 31 && h <= 23 &&
       m <= 59 && sec <= 59;
  struct tm tm = {
      .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
  time_t secs = ok ? timegm(&tm) : (time_t)-1;
  /* timegm normalizes Feb 31 to Mar 3: such a date is refused */
  if (!ok || secs < 0 || tm.tm_mday != D || tm.tm_mon != M - 1)
    return qvm_error_set(err, QVM_EINVAL,
                         "'%.40s' is not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)",
                         text && printable(text, 64) ? text : "?");
  *out_us = (int64_t)secs * 1000000 + frac;
  return 0;
}

/* --- JSON ------------------------------------------------------------------ */

void vm_tags_to_json(struct json_object *o, const vm_spec *s) {
  if (s->n_labels) {
    struct json_object *l = json_object_new_object();
    for (size_t i = 0; i < s->n_labels; i++)
      json_object_object_add(l, s->labels[i].key, json_object_new_string(s->labels[i].value));
    json_object_object_add(o, "labels", l);
  }
  if (s->agent) json_object_object_add(o, "agent", json_object_new_string(s->agent));
  if (s->sandbox) {
    struct json_object *sb = json_object_new_object();
    char at[32];
    qvm_format_rfc3339(at, s->expires_at_us);
    json_object_object_add(sb, "expires_at", json_object_new_string(at));
    /* only when set: a vm.json without it reads as before */
    if (s->checkpoint_each)
      json_object_object_add(sb, "checkpoint_each", json_object_new_boolean(true));
    json_object_object_add(o, "sandbox", sb);
  }
}

/* A string member without NUL bytes, of at most max bytes. */
static int json_string(const char **out, struct json_object *v, const char *what, size_t max,
                       qvm_error **err) {
  if (!json_object_is_type(v, json_type_string))
    return qvm_error_set(err, QVM_EINVAL, "%s is not a string", what);
  const char *s = json_object_get_string(v);
  size_t len = (size_t)json_object_get_string_len(v);
  if (strlen(s) != len || len > max)
    return qvm_error_set(err, QVM_EINVAL, "%s is too long or holds a NUL byte", what);
  *out = s;
  return 0;
}

static int labels_from_json(vm_spec *s, struct json_object *l, qvm_error **err) {
  if (!json_object_is_type(l, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "'labels' is not an object");
  size_t n = (size_t)json_object_object_length(l);
  if (n > QVM_VM_LABELS_MAX)
    return qvm_error_set(err, QVM_EINVAL, "'labels' has more than %d members", QVM_VM_LABELS_MAX);
  qvm_vm_label tmp[QVM_VM_LABELS_MAX];
  size_t i = 0;
  json_object_object_foreach(l, key, val) {
    int r = json_string(&tmp[i].value, val, "a label value", QVM_VM_LABEL_VALUE_MAX, err);
    if (r < 0) return r;
    tmp[i++].key = key;
  }
  return labels_set(s, tmp, i, err);
}

static int sandbox_from_json(vm_spec *s, struct json_object *sb, qvm_error **err) {
  struct json_object *v = NULL;
  const char *at = NULL;
  if (!json_object_is_type(sb, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "'sandbox' is not an object");
  if (!json_object_object_get_ex(sb, "expires_at", &v))
    return qvm_error_set(err, QVM_EINVAL, "'sandbox': 'expires_at' is missing");
  int r = json_string(&at, v, "'sandbox': 'expires_at'", 40, err);
  if (r >= 0) r = vm_rfc3339_parse(&s->expires_at_us, at, err);
  if (r < 0) return qvm_error_prefix(err, "'sandbox': 'expires_at'"), r;
  if (json_object_object_get_ex(sb, "checkpoint_each", &v) && v) {
    if (!json_object_is_type(v, json_type_boolean))
      return qvm_error_set(err, QVM_EINVAL, "'sandbox': 'checkpoint_each' is not a boolean");
    s->checkpoint_each = json_object_get_boolean(v);
  }
  s->sandbox = true;
  return 0;
}

int vm_tags_from_json(vm_spec *s, struct json_object *o, qvm_error **err) {
  struct json_object *v = NULL;
  int r = 0;
  if (json_object_object_get_ex(o, "labels", &v) && v) r = labels_from_json(s, v, err);
  const char *agent = NULL;
  if (r >= 0 && json_object_object_get_ex(o, "agent", &v) && v) {
    r = json_string(&agent, v, "'agent'", QVM_VM_AGENT_MAX, err);
    if (r >= 0) r = qvm_vm_agent_check(agent, err);
    if (r >= 0 && !(s->agent = strdup(agent)))
      r = qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  if (r >= 0 && json_object_object_get_ex(o, "sandbox", &v) && v) r = sandbox_from_json(s, v, err);
  return r;
}

/* --- accessors ------------------------------------------------------------- */

const char *qvm_vm_agent(const qvm_vm *vm) { return vm->spec->agent; }

const char *qvm_vm_label_value(const qvm_vm *vm, const char *key) {
  for (size_t i = 0; key && i < vm->spec->n_labels; i++)
    if (!strcmp(vm->spec->labels[i].key, key)) return vm->spec->labels[i].value;
  return NULL;
}

bool qvm_vm_matches(const qvm_vm *vm, const qvm_vm_label *labels, size_t n, const char *agent) {
  if (agent && (!vm->spec->agent || strcmp(vm->spec->agent, agent))) return false;
  for (size_t i = 0; i < n; i++) {
    const char *v = qvm_vm_label_value(vm, labels[i].key);
    if (!v || !labels[i].value || strcmp(v, labels[i].value)) return false;
  }
  return true;
}

void vm_tags_info(struct json_object *o, const vm_spec *s, int64_t now_us) {
  struct json_object *l = json_object_new_object();
  for (size_t i = 0; i < s->n_labels; i++)
    json_object_object_add(l, s->labels[i].key, json_object_new_string(s->labels[i].value));
  json_object_object_add(o, "labels", l);
  json_object_object_add(o, "agent", s->agent ? json_object_new_string(s->agent) : NULL);
  json_object_object_add(o, "sandbox", json_object_new_boolean(s->sandbox));
  json_object_object_add(o, "checkpoint_each", json_object_new_boolean(s->checkpoint_each));
  if (!s->sandbox) {
    json_object_object_add(o, "expires_at", NULL);
    json_object_object_add(o, "expires_at_us", NULL);
    json_object_object_add(o, "expires_in_s", NULL);
    return;
  }
  char at[32];
  qvm_format_rfc3339(at, s->expires_at_us);
  int64_t left = s->expires_at_us > now_us ? (s->expires_at_us - now_us + 999999) / 1000000 : 0;
  json_object_object_add(o, "expires_at", json_object_new_string(at));
  json_object_object_add(o, "expires_at_us", json_object_new_int64(s->expires_at_us));
  json_object_object_add(o, "expires_in_s", json_object_new_int64(left));
}
