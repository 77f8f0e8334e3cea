/* SPDX-License-Identifier: MIT */
/* The VM record and its one JSON codec (docs/vm-json.md). vm.json can be
 * edited by a user: every member read back is type- and range-checked, and
 * a bad one is named in the error. */
#include "vm/record.h"
#include "vm/cpu.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"

#ifndef QVM_VERSION
#define QVM_VERSION "unknown"
#endif

#define TEXT_LIMIT 65536
#define PATH_LIMIT 4096
#define LIST_LIMIT 64

/* --- freeing -------------------------------------------------------------- */

static void strv_clear(vm_strv *v) {
  for (size_t i = 0; i < v->n; i++) free(v->v[i]);
  free(v->v);
  *v = (vm_strv){0};
}

void vm_runtime_clear(vm_runtime *rt) {
  free(rt->accel_warning);
  free(rt->cpu);
  *rt = (vm_runtime){0};
}

void vm_exit_clear(vm_exit *x) {
  free(x->reason);
  free(x->detail);
  free(x->shutdown_reason);
  *x = (vm_exit){0};
}

void vm_up_clear(vm_up *u) {
  char **strs[] = {&u->image,    &u->kernel,       &u->initrd,  &u->append, &u->net,
                   &u->firmware, &u->accel,        &u->machine, &u->user,   &u->hostname,
                   &u->hostkey,  &u->image_format, &u->cpu};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(strs); i++) free(*strs[i]);
  vm_strv *lists[] = {&u->cloud_config, &u->ssh_keys, &u->ports,
                      &u->provision,    &u->drives,   &u->cdroms};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(lists); i++) strv_clear(lists[i]);
  *u = (vm_up){0};
}

void vm_record_free(vm_record *rec) {
  if (!rec) return;
  vm_spec_free(rec->spec);
  vm_runtime_clear(&rec->runtime);
  vm_exit_clear(&rec->last_exit);
  vm_up_clear(&rec->up);
  free(rec->snapshots);
  free(rec);
}

int vm_strv_add(vm_strv *v, const char *s, qvm_error **err) {
  char **grown = realloc(v->v, (v->n + 1) * sizeof *grown);
  if (!grown) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  v->v = grown;
  if (!(v->v[v->n] = strdup(s))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  v->n++;
  return 0;
}

static int dup_opt(char **out, const char *s, qvm_error **err) {
  *out = NULL;
  if (s && !(*out = strdup(s))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

int vm_up_copy(vm_up *out, const vm_up *src, qvm_error **err) {
  vm_up u = *src;
  char **strs[] = {&u.image,    &u.kernel,       &u.initrd,  &u.append, &u.net,
                   &u.firmware, &u.accel,        &u.machine, &u.user,   &u.hostname,
                   &u.hostkey,  &u.image_format, &u.cpu};
  vm_strv *lists[] = {&u.cloud_config, &u.ssh_keys, &u.ports, &u.provision, &u.drives, &u.cdroms};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(strs); i++) *strs[i] = NULL;
  for (size_t i = 0; i < QVM_ARRAY_SIZE(lists); i++) *lists[i] = (vm_strv){0};
  const char *const from_strs[] = {src->image, src->kernel,   src->initrd,  src->append,
                                   src->net,   src->firmware, src->accel,   src->machine,
                                   src->user,  src->hostname, src->hostkey, src->image_format,
                                   src->cpu};
  const vm_strv *from_lists[] = {&src->cloud_config, &src->ssh_keys, &src->ports,
                                 &src->provision,    &src->drives,   &src->cdroms};
  int r = 0;
  for (size_t i = 0; r >= 0 && i < QVM_ARRAY_SIZE(strs); i++)
    r = dup_opt(strs[i], from_strs[i], err);
  for (size_t i = 0; r >= 0 && i < QVM_ARRAY_SIZE(lists); i++)
    for (size_t j = 0; r >= 0 && j < from_lists[i]->n; j++)
      r = vm_strv_add(lists[i], from_lists[i]->v[j], err);
  vm_up_clear(out);
  *out = u;
  if (r < 0) vm_up_clear(out);
  return r;
}

/* --- names ---------------------------------------------------------------- */

const char *vm_run_status_name(vm_run_status s) {
  static const char *const names[] = {"starting", "running", "stopping"};
  return (unsigned)s < QVM_ARRAY_SIZE(names) ? names[s] : "unknown";
}

static const char *const exit_reasons[] = {"stopped", "shutdown", "killed", "forced",
                                           "signal",  "error",    "lost",   "expired"};

/* --- to JSON ------------------------------------------------------------- */

/* An empty string is left out like NULL: the reader refuses empty strings. */
static void put_str(struct json_object *o, const char *key, const char *v) {
  if (v && *v) json_object_object_add(o, key, json_object_new_string(v));
}

/* The up record keeps unset members as null: the diff reports them. */
static void put_nullable(struct json_object *o, const char *key, const char *v) {
  json_object_object_add(o, key, v && *v ? json_object_new_string(v) : NULL);
}

static void put_int64(struct json_object *o, const char *key, int64_t v) {
  json_object_object_add(o, key, json_object_new_int64(v));
}

static struct json_object *strv_to_json(const vm_strv *v) {
  struct json_object *a = json_object_new_array();
  for (size_t i = 0; i < v->n; i++) json_object_array_add(a, json_object_new_string(v->v[i]));
  return a;
}

struct json_object *vm_timings_to_json(const vm_timings *t) {
  struct json_object *o = json_object_new_object();
  put_int64(o, "shim_start_us", t->shim_start_us);
  put_int64(o, "qemu_spawn_us", t->qemu_spawn_us);
  if (t->qmp_ready_us) put_int64(o, "qmp_ready_us", t->qmp_ready_us);
  return o;
}

struct json_object *vm_runtime_to_json(const vm_runtime *rt) {
  struct json_object *o = json_object_new_object();
  put_str(o, "status", vm_run_status_name(rt->status));
  if (rt->has_shim) json_object_object_add(o, "shim", vm_proc_to_json(&rt->shim));
  json_object_object_add(o, "adopted", json_object_new_boolean(rt->adopted));
  if (rt->has_qemu) json_object_object_add(o, "qemu", vm_proc_to_json(&rt->qemu));
  if (rt->has_accelerator) put_str(o, "accelerator", vm_accel_name(rt->accelerator));
  put_str(o, "accel_warning", rt->accel_warning);
  put_str(o, "cpu", rt->cpu);
  if (rt->ssh_port) json_object_object_add(o, "ssh_port", json_object_new_int(rt->ssh_port));
  if (rt->started_at_us) put_int64(o, "started_at_us", rt->started_at_us);
  if (rt->has_timings) json_object_object_add(o, "timings", vm_timings_to_json(&rt->timings));
  return o;
}

struct json_object *vm_exit_to_json(const vm_exit *x) {
  struct json_object *o = json_object_new_object();
  put_str(o, "reason", x->reason);
  json_object_object_add(o, "clean", json_object_new_boolean(x->clean));
  put_str(o, "detail", x->detail && *x->detail ? x->detail : x->reason);
  if (x->has_exit_code) json_object_object_add(o, "exit_code", json_object_new_int(x->exit_code));
  if (x->signal) json_object_object_add(o, "signal", json_object_new_int(x->signal));
  put_str(o, "shutdown_reason", x->shutdown_reason);
  json_object_object_add(o, "run_status", json_object_new_int(x->run_status));
  put_str(o, "at", x->at);
  if (x->at_us) put_int64(o, "at_us", x->at_us);
  return o;
}

/* The reader takes 0..INT64_MAX: a larger value (no parser makes one) is
 * written as unset rather than as a negative number that would leave
 * vm.json unreadable. */
static void put_size(struct json_object *o, const char *key, bool has, uint64_t v) {
  json_object_object_add(o, key, has && v <= INT64_MAX ? json_object_new_int64((int64_t)v) : NULL);
}

/* The members in the order `qvm up` reports differences in. */
struct json_object *vm_up_request_to_json(const vm_up *u) {
  struct json_object *o = json_object_new_object();
  put_nullable(o, "image", u->image);
  put_nullable(o, "kernel", u->kernel);
  put_nullable(o, "initrd", u->initrd);
  put_size(o, "memory", u->has_memory, u->memory);
  put_size(o, "disk", u->has_disk, u->disk);
  json_object_object_add(o, "cloud_config", strv_to_json(&u->cloud_config));
  json_object_object_add(o, "ssh_keys", strv_to_json(&u->ssh_keys));
  put_nullable(o, "append", u->append);
  /* 0 is unset (a record without up.cpus reads as 0): written as null,
   * which reads back as 0, never as "cpus":0, which the reader refuses. */
  json_object_object_add(o, "cpus", u->cpus ? json_object_new_int((int)u->cpus) : NULL);
  put_nullable(o, "net", u->net);
  put_nullable(o, "firmware", u->firmware);
  put_nullable(o, "accel", u->accel);
  put_nullable(o, "machine", u->machine);
  put_nullable(o, "user", u->user);
  put_nullable(o, "hostname", u->hostname);
  put_nullable(o, "hostkey", u->hostkey);
  put_nullable(o, "image_format", u->image_format); /* null: detected at create */
  /* Only when not auto: a record from before --cpu reads as auto. */
  if (u->cpu) json_object_object_add(o, "cpu", json_object_new_string(u->cpu));
  if (u->allow_backing) json_object_object_add(o, "allow_backing", json_object_new_boolean(true));
  /* Only when true, like allow_backing: schema-1 records have neither. */
  if (u->nat) json_object_object_add(o, "nat", json_object_new_boolean(true));
  json_object_object_add(o, "cloud_init", json_object_new_boolean(u->cloud_init));
  json_object_object_add(o, "ports", strv_to_json(&u->ports));
  json_object_object_add(o, "provision", strv_to_json(&u->provision));
  json_object_object_add(o, "drives", strv_to_json(&u->drives));
  json_object_object_add(o, "cdroms", strv_to_json(&u->cdroms));
  return o;
}

static struct json_object *up_to_json(const vm_up *u) {
  struct json_object *o = vm_up_request_to_json(u);
  if (u->provisioned) json_object_object_add(o, "provisioned", json_object_new_boolean(true));
  if (u->ready) json_object_object_add(o, "ready", json_object_new_boolean(true));
  return o;
}

struct json_object *vm_snapshot_to_json(const vm_snapshot *sn) {
  struct json_object *o = json_object_new_object();
  put_str(o, "name", sn->name);
  put_str(o, "created_at", sn->created_at);
  json_object_object_add(o, "ram", json_object_new_boolean(sn->ram));
  put_str(o, "vm_state", sn->vm_state);
  put_int64(o, "vm_state_size", (int64_t)sn->vm_state_size);
  put_int64(o, "disk_bytes", (int64_t)sn->disk_bytes);
  json_object_object_add(o, "parent", sn->parent[0] ? json_object_new_string(sn->parent) : NULL);
  return o;
}

struct json_object *vm_record_to_json(const vm_record *rec) {
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "schema", json_object_new_int(VM_RECORD_SCHEMA));
  put_str(o, "created_at", rec->created_at[0] ? rec->created_at : NULL);
  json_object_object_add(o, "spec", vm_spec_to_json(rec->spec));
  if (rec->has_runtime) json_object_object_add(o, "runtime", vm_runtime_to_json(&rec->runtime));
  if (rec->has_last_exit) json_object_object_add(o, "last_exit", vm_exit_to_json(&rec->last_exit));
  if (rec->has_up) json_object_object_add(o, "up", up_to_json(&rec->up));
  if (rec->n_snapshots) {
    struct json_object *a = json_object_new_array();
    for (size_t i = 0; i < rec->n_snapshots; i++)
      json_object_array_add(a, vm_snapshot_to_json(&rec->snapshots[i]));
    json_object_object_add(o, "snapshots", a);
  }
  put_str(o, "snapshot_current", rec->snapshot_current);
  return o;
}

/* --- the up diff ---------------------------------------------------------- */

/* A size as the user writes it: the largest binary suffix that keeps it
 * exact (1073741824 -> "1G", 1610612736 -> "1536M"). */
static void size_text(char *out, size_t size, uint64_t v) {
  static const char suffixes[] = "KMGT";
  int unit = -1;
  while (v && unit < 3 && v % 1024 == 0) {
    v /= 1024;
    unit++;
  }
  snprintf(out, size, "%" PRIu64 "%.*s", v, unit >= 0 ? 1 : 0, unit >= 0 ? &suffixes[unit] : "");
}

static const char *diff_value(char *buf, size_t size, const char *key, struct json_object *v) {
  if (!v) return "unset";
  if ((!strcmp(key, "memory") || !strcmp(key, "disk")) && json_object_is_type(v, json_type_int)) {
    size_text(buf, size, (uint64_t)json_object_get_int64(v));
    return buf;
  }
  return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

char *vm_up_diff(const vm_up *was_up, const vm_up *now_up) {
  struct json_object *was = vm_up_request_to_json(was_up), *now = vm_up_request_to_json(now_up);
  qvm_strbuf sb = QVM_STRBUF_INIT;
  json_object_object_foreach(now, key, value) {
    struct json_object *old = NULL;
    json_object_object_get_ex(was, key, &old);
    if (json_object_equal(old, value)) continue;
    char a[32], b[32];
    qvm_strbuf_printf(&sb, "\n  %s: was %s, now %s", key, diff_value(a, sizeof a, key, old),
                      diff_value(b, sizeof b, key, value));
  }
  json_object_put(was);
  json_object_put(now);
  return qvm_strbuf_steal(&sb);
}

/* --- from JSON ------------------------------------------------------------ */

/* Optional string: absent or null is NULL; anything else must be a string
 * without NUL bytes, not empty and not longer than max. */
static int get_str(char **out, struct json_object *o, const char *key, size_t max, bool required,
                   qvm_error **err) {
  struct json_object *v = NULL;
  *out = NULL;
  if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
    return required ? qvm_error_set(err, QVM_EINVAL, "'%s' is missing", key) : 0;
  if (!json_object_is_type(v, json_type_string))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not a string", key);
  const char *s = json_object_get_string(v);
  size_t len = (size_t)json_object_get_string_len(v);
  if (strlen(s) != len || len > max || len == 0)
    return qvm_error_set(err, QVM_EINVAL, "'%s' is empty, too long or holds a NUL byte", key);
  return dup_opt(out, s, err);
}

/* Optional integer in [min, max]; *present tells whether it was there. */
static int get_int(int64_t *out, bool *present, struct json_object *o, const char *key, int64_t min,
                   int64_t max, qvm_error **err) {
  struct json_object *v = NULL;
  *out = 0;
  if (present) *present = false;
  if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
    if (present) return 0;
    return qvm_error_set(err, QVM_EINVAL, "'%s' is missing", key);
  }
  if (!json_object_is_type(v, json_type_int))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not a number", key);
  errno = 0;
  int64_t n = json_object_get_int64(v);
  if (errno || n < min || n > max)
    return qvm_error_set(err, QVM_EINVAL, "'%s' is out of range (%" PRId64 "..%" PRId64 ")", key,
                         min, max);
  *out = n;
  if (present) *present = true;
  return 0;
}

static int get_bool(bool *out, struct json_object *o, const char *key, qvm_error **err) {
  struct json_object *v = NULL;
  *out = false;
  if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) return 0;
  if (!json_object_is_type(v, json_type_boolean))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not a boolean", key);
  *out = json_object_get_boolean(v);
  return 0;
}

static int get_strv(vm_strv *out, struct json_object *o, const char *key, size_t max,
                    qvm_error **err) {
  struct json_object *a = NULL;
  if (!json_object_object_get_ex(o, key, &a) || json_object_is_type(a, json_type_null)) return 0;
  if (!json_object_is_type(a, json_type_array))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not an array", key);
  size_t n = json_object_array_length(a);
  if (n > LIST_LIMIT) return qvm_error_set(err, QVM_EINVAL, "'%s' has too many entries", key);
  for (size_t i = 0; i < n; i++) {
    struct json_object *v = json_object_array_get_idx(a, i);
    const char *s = json_object_get_string(v);
    if (!json_object_is_type(v, json_type_string) ||
        strlen(s) != (size_t)json_object_get_string_len(v) || strlen(s) > max)
      return qvm_error_set(err, QVM_EINVAL, "'%s' holds an entry that is not a string", key);
    int r = vm_strv_add(out, s, err);
    if (r < 0) return r;
  }
  return 0;
}

/* A member that must be an object when present. */
static int get_object(struct json_object **out, struct json_object *o, const char *key,
                      qvm_error **err) {
  *out = NULL;
  if (!json_object_object_get_ex(o, key, out) || json_object_is_type(*out, json_type_null)) {
    *out = NULL;
    return 0;
  }
  if (!json_object_is_type(*out, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not an object", key);
  return 0;
}

/* RFC 3339 as qvm writes it: digits and -:.TZ+ only. */
static int get_timestamp(char *out, size_t size, struct json_object *o, const char *key,
                         bool required, qvm_error **err) {
  _cleanup_free_ char *s = NULL;
  int r = get_str(&s, o, key, size - 1, required, err);
  if (r < 0 || !s) return r;
  if (strspn(s, "0123456789-:.TZ+") != strlen(s))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not a timestamp", key);
  snprintf(out, size, "%s", s);
  return 0;
}

static int get_proc(vm_proc *out, bool *present, struct json_object *o, const char *key,
                    qvm_error **err) {
  struct json_object *v = NULL;
  int r = get_object(&v, o, key, err);
  *present = v != NULL;
  if (r < 0 || !v) return r;
  if ((r = vm_proc_from_json(out, v, err)) < 0) qvm_error_prefix(err, "'%s'", key);
  return r;
}

static int timings_from_json(vm_timings *t, struct json_object *o, qvm_error **err) {
  bool has = false;
  int r = get_int(&t->shim_start_us, &has, o, "shim_start_us", 0, INT64_MAX, err);
  if (r >= 0) r = get_int(&t->qemu_spawn_us, &has, o, "qemu_spawn_us", 0, INT64_MAX, err);
  if (r >= 0) r = get_int(&t->qmp_ready_us, &has, o, "qmp_ready_us", 0, INT64_MAX, err);
  return r;
}

static int runtime_from_json(vm_runtime *rt, struct json_object *o, qvm_error **err) {
  _cleanup_free_ char *status = NULL, *accel = NULL;
  struct json_object *timings = NULL;
  int64_t port = 0;
  bool has = false;
  int r = get_str(&status, o, "status", 16, true, err);
  for (int s = VM_RUN_STARTING; r >= 0 && s <= VM_RUN_STOPPING; s++)
    if (!strcmp(status, vm_run_status_name((vm_run_status)s))) {
      rt->status = (vm_run_status)s;
      status[0] = '\0';
    }
  if (r >= 0 && status[0])
    r = qvm_error_set(err, QVM_EINVAL, "'status' is '%s': not starting, running or stopping",
                      status);
  if (r >= 0) r = get_proc(&rt->shim, &rt->has_shim, o, "shim", err);
  if (r >= 0) r = get_proc(&rt->qemu, &rt->has_qemu, o, "qemu", err);
  if (r >= 0) r = get_bool(&rt->adopted, o, "adopted", err);
  if (r >= 0) r = get_str(&accel, o, "accelerator", 8, false, err);
  if (r >= 0 && accel) {
    rt->has_accelerator = true;
    if (!strcmp(accel, "kvm"))
      rt->accelerator = VM_ACCEL_KVM;
    else if (!strcmp(accel, "tcg"))
      rt->accelerator = VM_ACCEL_TCG;
    else
      r = qvm_error_set(err, QVM_EINVAL, "'accelerator' is '%s': not kvm or tcg", accel);
  }
  if (r >= 0) r = get_str(&rt->accel_warning, o, "accel_warning", 1024, false, err);
  if (r >= 0) r = get_str(&rt->cpu, o, "cpu", VM_CPU_MAX_LEN, false, err);
  if (r >= 0) r = get_int(&port, &has, o, "ssh_port", 1, 65535, err);
  rt->ssh_port = (uint16_t)port;
  if (r >= 0) r = get_int(&rt->started_at_us, &has, o, "started_at_us", 0, INT64_MAX, err);
  if (r >= 0) r = get_object(&timings, o, "timings", err);
  rt->has_timings = timings != NULL;
  if (r >= 0 && timings) r = timings_from_json(&rt->timings, timings, err);
  return r;
}

static int exit_from_json(vm_exit *x, struct json_object *o, qvm_error **err) {
  int64_t n = 0;
  bool has = false;
  int r = get_str(&x->reason, o, "reason", 16, true, err);
  bool known = false;
  for (size_t i = 0; r >= 0 && i < QVM_ARRAY_SIZE(exit_reasons); i++)
    known = known || !strcmp(x->reason, exit_reasons[i]);
  if (r >= 0 && !known) r = qvm_error_set(err, QVM_EINVAL, "'reason' '%s' is unknown", x->reason);
  if (r >= 0) r = get_bool(&x->clean, o, "clean", err);
  if (r >= 0) r = get_str(&x->detail, o, "detail", TEXT_LIMIT, false, err);
  if (r >= 0) r = get_int(&n, &x->has_exit_code, o, "exit_code", 0, 255, err);
  x->exit_code = (int)n;
  if (r >= 0) r = get_int(&n, &has, o, "signal", 1, 64, err);
  x->signal = (int)n;
  if (r >= 0) r = get_str(&x->shutdown_reason, o, "shutdown_reason", 64, false, err);
  if (r >= 0) r = get_int(&n, NULL, o, "run_status", 0, 255, err);
  x->run_status = (int)n;
  if (r >= 0) r = get_timestamp(x->at, sizeof x->at, o, "at", true, err);
  if (r >= 0) r = get_int(&x->at_us, &has, o, "at_us", 0, INT64_MAX, err);
  return r;
}

static int up_from_json(vm_up *u, struct json_object *o, qvm_error **err) {
  struct {
    char **out;
    const char *key;
    size_t max;
  } strs[] = {{&u->image, "image", PATH_LIMIT},
              {&u->kernel, "kernel", PATH_LIMIT},
              {&u->initrd, "initrd", PATH_LIMIT},
              {&u->append, "append", TEXT_LIMIT},
              {&u->net, "net", 256},
              {&u->firmware, "firmware", 16},
              {&u->accel, "accel", 16},
              {&u->machine, "machine", 16},
              {&u->user, "user", 64},
              {&u->hostname, "hostname", 256},
              {&u->hostkey, "hostkey", 16},
              {&u->image_format, "image_format", 32},
              {&u->cpu, "cpu", 128}};
  struct {
    vm_strv *out;
    const char *key;
  } lists[] = {
      {&u->cloud_config, "cloud_config"}, {&u->ssh_keys, "ssh_keys"}, {&u->ports, "ports"},
      {&u->provision, "provision"},       {&u->drives, "drives"},     {&u->cdroms, "cdroms"}};
  int64_t cpus = 0, mem = 0, disk = 0;
  bool has = false;
  int r = 0;
  /* qvm before the record stored an empty option (--append '') as "": unset. */
  for (size_t i = 0; r >= 0 && i < QVM_ARRAY_SIZE(strs); i++) {
    struct json_object *v = NULL;
    if (json_object_object_get_ex(o, strs[i].key, &v) && json_object_is_type(v, json_type_string) &&
        json_object_get_string_len(v) == 0)
      continue;
    r = get_str(strs[i].out, o, strs[i].key, strs[i].max, false, err);
  }
  for (size_t i = 0; r >= 0 && i < QVM_ARRAY_SIZE(lists); i++)
    r = get_strv(lists[i].out, o, lists[i].key, PATH_LIMIT + 128, err);
  if (r >= 0) r = get_int(&cpus, &has, o, "cpus", 1, 255, err);
  u->cpus = (unsigned)cpus;
  if (r >= 0) r = get_int(&mem, &u->has_memory, o, "memory", 0, INT64_MAX, err);
  if (r >= 0) r = get_int(&disk, &u->has_disk, o, "disk", 0, INT64_MAX, err);
  u->memory = (uint64_t)mem;
  u->disk = (uint64_t)disk;
  if (r >= 0) r = get_bool(&u->allow_backing, o, "allow_backing", err);
  if (r >= 0) r = get_bool(&u->cloud_init, o, "cloud_init", err);
  if (r >= 0) r = get_bool(&u->nat, o, "nat", err);
  if (r >= 0) r = get_bool(&u->provisioned, o, "provisioned", err);
  if (r >= 0) r = get_bool(&u->ready, o, "ready", err);
  return r;
}

/* 2, or 1 for a file from before the record ("version": 1, or neither). */
/* A snapshot name (the VM-name rule) into a fixed buffer; "" when absent
 * and not required. */
static int get_snapshot_name(char out[64], struct json_object *o, const char *key, bool required,
                             qvm_error **err) {
  _cleanup_free_ char *s = NULL;
  int r = get_str(&s, o, key, 63, required, err);
  if (r < 0) return r;
  out[0] = '\0';
  if (!s) return 0;
  if (!qvm_vm_name_valid(s))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not a valid snapshot name", key);
  snprintf(out, 64, "%s", s);
  return 0;
}

static int snapshot_from_json(vm_snapshot *sn, struct json_object *o, qvm_error **err) {
  if (!json_object_is_type(o, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "an entry is not an object");
  _cleanup_free_ char *state = NULL;
  int64_t n = 0;
  bool has = false;
  int r = get_snapshot_name(sn->name, o, "name", true, err);
  if (r >= 0) r = get_timestamp(sn->created_at, sizeof sn->created_at, o, "created_at", false, err);
  if (r >= 0) r = get_bool(&sn->ram, o, "ram", err);
  if (r >= 0) r = get_str(&state, o, "vm_state", sizeof sn->vm_state - 1, false, err);
  if (r >= 0 && state) {
    if (strspn(state, "abcdefghijklmnopqrstuvwxyz") != strlen(state))
      return qvm_error_set(err, QVM_EINVAL, "'vm_state' is not a state name");
    snprintf(sn->vm_state, sizeof sn->vm_state, "%s", state);
  }
  if (r >= 0) r = get_int(&n, &has, o, "vm_state_size", 0, INT64_MAX, err);
  if (r >= 0) sn->vm_state_size = (uint64_t)n;
  if (r >= 0) r = get_int(&n, &has, o, "disk_bytes", 0, INT64_MAX, err);
  if (r >= 0) sn->disk_bytes = (uint64_t)n;
  if (r >= 0) r = get_snapshot_name(sn->parent, o, "parent", false, err);
  return r;
}

static int snapshots_from_json(vm_record *rec, struct json_object *doc, qvm_error **err) {
  struct json_object *a = NULL;
  if (!json_object_object_get_ex(doc, "snapshots", &a) || json_object_is_type(a, json_type_null))
    return 0;
  if (!json_object_is_type(a, json_type_array))
    return qvm_error_set(err, QVM_EINVAL, "'snapshots' is not an array");
  size_t n = json_object_array_length(a);
  if (n > VM_SNAPSHOT_MAX)
    return qvm_error_set(err, QVM_EINVAL, "'snapshots' has more than %d entries", VM_SNAPSHOT_MAX);
  if (n && !(rec->snapshots = calloc(n, sizeof *rec->snapshots)))
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++, rec->n_snapshots++) {
    int r = snapshot_from_json(&rec->snapshots[i], json_object_array_get_idx(a, i), err);
    for (size_t j = 0; r >= 0 && j < i; j++)
      if (!strcmp(rec->snapshots[j].name, rec->snapshots[i].name))
        r = qvm_error_set(err, QVM_EINVAL, "'name' '%s' is there twice", rec->snapshots[i].name);
    if (r < 0) return qvm_error_prefix(err, "'snapshots'[%zu]", i), r;
  }
  return get_snapshot_name(rec->snapshot_current, doc, "snapshot_current", false, err);
}

static int schema_of(int *out, struct json_object *doc, qvm_error **err) {
  struct json_object *v = NULL;
  if (json_object_object_get_ex(doc, "schema", &v)) {
    if (!json_object_is_type(v, json_type_int))
      return qvm_error_set(err, QVM_EINVAL, "'schema' is not a number");
    int64_t n = json_object_get_int64(v);
    if (n > VM_RECORD_SCHEMA)
      return qvm_error_set(err, QVM_EINVAL,
                           "schema %" PRId64 " is newer than qvm %s reads (schema %d): a newer "
                           "qvm wrote it",
                           n, QVM_VERSION, VM_RECORD_SCHEMA);
    if (n < 1) return qvm_error_set(err, QVM_EINVAL, "schema %" PRId64 " is unknown", n);
    *out = (int)n;
    return 0;
  }
  if (json_object_object_get_ex(doc, "version", &v) &&
      (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 1))
    return qvm_error_set(err, QVM_EINVAL, "'version' is not 1 (and there is no 'schema')");
  *out = 1;
  return 0;
}

/* Schema 1 has the members schema 2 has, with the same meaning: migrating is
 * reading it with the same checks; the next write stores "schema": 2. */
int vm_record_from_json(vm_record **out, struct json_object *doc, qvm_error **err) {
  if (!doc || !json_object_is_type(doc, json_type_object))
    return qvm_error_set(err, QVM_EINVAL, "vm.json is not a json object");
  _cleanup_(vm_record_freep) vm_record *rec = calloc(1, sizeof *rec);
  if (!rec) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  struct json_object *spec = NULL, *rt = NULL, *last = NULL, *up = NULL;
  int r = schema_of(&rec->schema_read, doc, err);
  if (r >= 0)
    r = get_timestamp(rec->created_at, sizeof rec->created_at, doc, "created_at", false, err);
  if (r >= 0) r = get_object(&spec, doc, "spec", err);
  if (r >= 0 && !spec) r = qvm_error_set(err, QVM_EINVAL, "'spec' is missing");
  if (r >= 0) r = vm_spec_from_json(&rec->spec, spec, err);
  if (r >= 0) r = get_object(&rt, doc, "runtime", err);
  if (r >= 0 && (rec->has_runtime = rt) && (r = runtime_from_json(&rec->runtime, rt, err)) < 0)
    qvm_error_prefix(err, "'runtime'");
  if (r >= 0) r = get_object(&last, doc, "last_exit", err);
  if (r >= 0 && (rec->has_last_exit = last) && (r = exit_from_json(&rec->last_exit, last, err)) < 0)
    qvm_error_prefix(err, "'last_exit'");
  if (r >= 0) r = get_object(&up, doc, "up", err);
  if (r >= 0 && (rec->has_up = up) && (r = up_from_json(&rec->up, up, err)) < 0)
    qvm_error_prefix(err, "'up'");
  if (r >= 0) r = snapshots_from_json(rec, doc, err);
  if (r < 0) return r;
  *out = TAKE_PTR(rec);
  return 0;
}

int vm_record_parse(vm_record **out, const char *text, size_t len, const char *what,
                    qvm_error **err) {
  struct json_object *doc = NULL;
  int r = vm_doc_parse(&doc, text, len, what, err);
  if (r < 0) return r;
  if ((r = vm_record_from_json(out, doc, err)) < 0) qvm_error_prefix(err, "'%s'", what);
  json_object_put(doc);
  return r;
}

int vm_record_read(vm_record **out, const char *path, qvm_error **err) {
  struct json_object *doc = NULL;
  int r = vm_doc_read(&doc, path, err);
  if (r < 0) return r;
  if ((r = vm_record_from_json(out, doc, err)) < 0) qvm_error_prefix(err, "'%s'", path);
  json_object_put(doc);
  return r;
}

int vm_record_write(const char *path, const vm_record *rec, qvm_error **err) {
  struct json_object *doc = vm_record_to_json(rec);
  size_t len = 0;
  const char *s = json_object_to_json_string_length(
      doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  _cleanup_free_ char *buf = NULL;
  int r = asprintf(&buf, "%s\n", s);
  json_object_put(doc);
  if (r < 0) return qvm_error_set_errno(err, ENOMEM, "cannot write '%s'", path);
  return qvm_write_file_atomic(path, buf, len + 1, 0600, err);
}

/* --- typed updates ------------------------------------------------------- */

static int record_lock_wait_ms = -1;

void vm_record_set_lock_wait(int ms) { record_lock_wait_ms = ms < 0 ? -1 : ms; }

int vm_record_update(const vm_paths *p, vm_record_update_fn fn, void *ctx, qvm_error **err) {
  _cleanup_close_ int dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return errno == ENOENT ? qvm_error_set(err, QVM_ENOTFOUND, "'%s' not found", p->dir)
                           : qvm_error_set_errno(err, errno, "cannot open '%s'", p->dir);
  int wait_ms = record_lock_wait_ms;
  int64_t deadline = wait_ms >= 0 ? qvm_now_ms() + wait_ms : -1;
  while (flock(dfd, LOCK_EX | (wait_ms >= 0 ? LOCK_NB : 0)) < 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK || wait_ms < 0)
      return qvm_error_set_errno(err, errno, "cannot lock '%s'", p->dir);
    if (qvm_now_ms() >= deadline)
      return qvm_error_set(err, QVM_EBUSY,
                           "vm.json in '%s' stayed locked by another process for %d ms: the "
                           "update was not made",
                           p->dir, wait_ms);
    usleep(20000);
  }
  _cleanup_(vm_record_freep) vm_record *rec = NULL;
  int r = vm_record_read(&rec, p->json, err);
  if (r >= 0) r = fn(rec, ctx, err);
  if (r >= 0) r = vm_record_write(p->json, rec, err);
  return r; /* closing dfd drops the flock */
}

static int runtime_copy(vm_runtime *out, const vm_runtime *rt, qvm_error **err) {
  vm_runtime copy = *rt;
  copy.cpu = NULL;
  int r = dup_opt(&copy.accel_warning, rt->accel_warning, err);
  if (r >= 0 && (r = dup_opt(&copy.cpu, rt->cpu, err)) < 0) free(copy.accel_warning);
  if (r < 0) return r;
  vm_runtime_clear(out);
  *out = copy;
  return 0;
}

static int set_runtime_cb(vm_record *rec, void *ctx, qvm_error **err) {
  int r = runtime_copy(&rec->runtime, ctx, err);
  if (r >= 0) rec->has_runtime = true;
  return r;
}

int vm_record_set_runtime(const vm_paths *p, const vm_runtime *rt, qvm_error **err) {
  return vm_record_update(p, set_runtime_cb, (void *)rt, err);
}

typedef struct status_change {
  vm_run_status status;
  const vm_proc *shim;
  bool adopted;
} status_change;

static int set_status_cb(vm_record *rec, void *ctx, qvm_error **err) {
  (void)err;
  const status_change *c = ctx;
  if (!rec->has_runtime) {
    vm_runtime_clear(&rec->runtime);
    rec->has_runtime = true;
  }
  rec->runtime.status = c->status;
  if (c->shim) {
    rec->runtime.shim = *c->shim;
    rec->runtime.has_shim = true;
  }
  rec->runtime.adopted = c->adopted;
  return 0;
}

int vm_record_set_status(const vm_paths *p, vm_run_status status, const vm_proc *shim, bool adopted,
                         qvm_error **err) {
  status_change c = {.status = status, .shim = shim, .adopted = adopted};
  return vm_record_update(p, set_status_cb, &c, err);
}

static int exit_cb(vm_record *rec, void *ctx, qvm_error **err) {
  const vm_exit *x = ctx;
  vm_exit copy = *x;
  copy.reason = copy.detail = copy.shutdown_reason = NULL;
  int r = dup_opt(&copy.reason, x->reason, err);
  if (r >= 0) r = dup_opt(&copy.detail, x->detail, err);
  if (r >= 0) r = dup_opt(&copy.shutdown_reason, x->shutdown_reason, err);
  if (r < 0) {
    vm_exit_clear(&copy);
    return r;
  }
  vm_exit_clear(&rec->last_exit);
  rec->last_exit = copy;
  rec->has_last_exit = true;
  vm_runtime_clear(&rec->runtime);
  rec->has_runtime = false;
  return 0;
}

int vm_record_exit(const vm_paths *p, const vm_exit *x, qvm_error **err) {
  return vm_record_update(p, exit_cb, (void *)x, err);
}

static int set_up_cb(vm_record *rec, void *ctx, qvm_error **err) {
  int r = vm_up_copy(&rec->up, ctx, err);
  if (r >= 0) rec->has_up = true;
  return r;
}

int vm_record_set_up(const vm_paths *p, const vm_up *up, qvm_error **err) {
  return vm_record_update(p, set_up_cb, (void *)up, err);
}

typedef struct up_marks {
  bool provisioned, ready;
} up_marks;

static int mark_up_cb(vm_record *rec, void *ctx, qvm_error **err) {
  (void)err;
  const up_marks *m = ctx;
  if (!rec->has_up) return 0;
  rec->up.provisioned = rec->up.provisioned || m->provisioned;
  rec->up.ready = rec->up.ready || m->ready;
  return 0;
}

int vm_record_mark_up(const vm_paths *p, bool provisioned, bool ready, qvm_error **err) {
  up_marks m = {.provisioned = provisioned, .ready = ready};
  return vm_record_update(p, mark_up_cb, &m, err);
}
