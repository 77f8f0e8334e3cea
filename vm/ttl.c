/* SPDX-License-Identifier: MIT */
/* A sandbox's deadline: durations, the shim's timer and what it does at
 * expiry, and the check every reconcile makes for a deadline that passed
 * while nothing ran (docs/ARCHITECTURE.md, "Sandboxes"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qvm/sandbox.h>

#include "util/time.h"
#include "vm/audit.h"
#include "vm/shim.h"
#include "vm/ttl.h"

/* QVM_TEST_MIN_TTL_S: tests may lower the minimum (1..QVM_SANDBOX_TTL_MIN_S). */
static int64_t ttl_min_s(void) {
  const char *env = getenv("QVM_TEST_MIN_TTL_S");
  if (!env || !*env) return QVM_SANDBOX_TTL_MIN_S;
  char *end = NULL;
  errno = 0;
  long v = strtol(env, &end, 10);
  if (errno || *end || v < 1 || v > QVM_SANDBOX_TTL_MIN_S) return QVM_SANDBOX_TTL_MIN_S;
  return v;
}

int vm_ttl_check(int64_t seconds, qvm_error **err) {
  int64_t min = ttl_min_s();
  if (seconds < min || seconds > QVM_SANDBOX_TTL_MAX_S)
    return qvm_error_set(err, QVM_EINVAL,
                         "a sandbox lifetime of %lld s is out of range (%llds..7d)",
                         (long long)seconds, (long long)min);
  return 0;
}

int qvm_sandbox_duration_parse(int64_t *out_s, const char *text, qvm_error **err) {
  size_t n = text ? strlen(text) : 0;
  int64_t v = 0, unit = 0;
  bool ok = n >= 2 && n <= 12;
  for (size_t i = 0; ok && i + 1 < n; i++) {
    ok = text[i] >= '0' && text[i] <= '9';
    v = v * 10 + (text[i] - '0');
  }
  if (ok) {
    char u = text[n - 1];
    unit = u == 's' ? 1 : u == 'm' ? 60 : u == 'h' ? 3600 : u == 'd' ? 86400 : 0;
    ok = unit != 0;
  }
  if (!ok) {
    bool quotable = text && n <= 64;
    for (size_t i = 0; quotable && i < n; i++)
      quotable = (unsigned char)text[i] >= 0x20 && (unsigned char)text[i] < 0x7f;
    return qvm_error_set(err, QVM_EINVAL, "duration '%s' is invalid: use Ns, Nm, Nh or Nd (10m)",
                         quotable ? text : "?");
  }
  /* at most 11 digits: v * 86400 stays far below INT64_MAX */
  int r = vm_ttl_check(v * unit, err);
  if (r < 0) return qvm_error_prefix(err, "duration '%s'", text), r;
  *out_s = v * unit;
  return 0;
}

bool vm_spec_expired(const vm_spec *s, int64_t now_us) {
  return s->sandbox && s->expires_at_us > 0 && now_us >= s->expires_at_us;
}

/* --- the shim's timer ------------------------------------------------------ */

int shim_ttl_load(shim *s, qvm_error **err) {
  vm_record *rec = NULL;
  int r = vm_record_read(&rec, s->vm->paths.json, err);
  if (r < 0) return r;
  s->expires_at_us = rec->spec->sandbox ? rec->spec->expires_at_us : 0;
  vm_record_free(rec);
  struct json_object *d = json_object_new_object();
  char at[32];
  qvm_format_rfc3339(at, s->expires_at_us);
  json_object_object_add(d, "expires_at", s->expires_at_us ? json_object_new_string(at) : NULL);
  json_object_object_add(d, "expires_at_us", json_object_new_int64(s->expires_at_us));
  shim_event(s, "qvm-expiry-set", d);
  return 0;
}

#define SHIM_TTL_LOOK_MS 60000

int64_t shim_ttl_next_ms(const shim *s) {
  if (!s->expires_at_us || s->expired) return -1;
  int64_t left_us = s->expires_at_us - qvm_realtime_us();
  int64_t left_ms = left_us <= 0 ? 0 : (left_us + 999) / 1000;
  return qvm_now_ms() + (left_ms < SHIM_TTL_LOOK_MS ? left_ms : SHIM_TTL_LOOK_MS);
}

void shim_ttl_check(shim *s) {
  if (!s->expires_at_us || s->expired || qvm_realtime_us() < s->expires_at_us) return;
  s->expired = true;
  char at[32];
  qvm_format_rfc3339(at, s->expires_at_us);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "expires_at", json_object_new_string(at));
  json_object_object_add(d, "expires_at_us", json_object_new_int64(s->expires_at_us));
  if (s->vm->spec->agent)
    json_object_object_add(d, "agent", json_object_new_string(s->vm->spec->agent));
  vm_audit_note(s->vm->name, "expire", 0, NULL, json_object_get(d));
  shim_event(s, "qvm-expired", d);
  if (s->phase == SHIM_RUNNING) {
    shim_stop_begin(s, SHIM_TTL_STOP_MS);
  } else if (s->phase == SHIM_POWERDOWN) {
    /* a stop with a longer grace period is under way: the deadline wins */
    int64_t soon = qvm_now_ms() + SHIM_TTL_STOP_MS;
    if (s->deadline_ms < 0 || s->deadline_ms > soon) s->deadline_ms = soon;
  }
}

void shim_ttl_remove(shim *s) {
  qvm_error *e = NULL;
  if (qvm_vm_remove(s->vm->name, false, &e) < 0) {
    /* events.jsonl is still there: say why it is (the next reconcile removes it) */
    shim_event(s, "qvm-expired-remove-failed", json_object_new_string(qvm_error_message(e)));
    qvm_error_free(e);
  }
}

/* --- a deadline that passed while nothing ran -------------------------------- */

int vm_expire_locked(qvm_vm *vm, qvm_error **err) {
  if (!vm_spec_expired(vm->spec, qvm_realtime_us())) return 0;
  vm_runtime_view rv;
  vm_runtime_view_read(&rv, vm->rec);
  if (rv.present && (rv.qemu_alive || rv.shim_alive)) return 0;
  char at[32];
  qvm_format_rfc3339(at, vm->spec->expires_at_us);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "expires_at", json_object_new_string(at));
  json_object_object_add(d, "found_by", json_object_new_string("reconcile"));
  if (vm->spec->agent) json_object_object_add(d, "agent", json_object_new_string(vm->spec->agent));
  vm_audit_note(vm->name, "expire", 0, NULL, d);
  int r = vm_remove_locked(vm, err);
  if (r < 0) return qvm_error_prefix(err, "sandbox '%s' expired at %s", vm->name, at), r;
  char up_lock[4200]; /* vm/up.c's; nothing of the VM stays */
  if (snprintf(up_lock, sizeof up_lock, "%s/.%s.up.lock", vm->paths.vms, vm->name) <
      (int)sizeof up_lock)
    unlink(up_lock);
  qvm_error_set(err, QVM_ENOTFOUND, "vm '%s' was a sandbox that expired at %s: it is removed",
                vm->name, at);
  return qvm_error_set_hint(err, QVM_ENOTFOUND, "SandboxExpired", vm->name);
}

bool vm_expire_sweep(const char *name) {
  qvm_vm *vm = NULL;
  bool removed = false;
  if (qvm_vm_open(&vm, name, NULL) < 0) return false;
  int fd = -1;
  if (vm_spec_expired(vm->spec, qvm_realtime_us()) &&
      vm_lock_acquire(&fd, &vm->paths, "expire", 0, NULL) >= 0) {
    qvm_error *e = NULL;
    int r = vm_reconcile_locked(vm, &e);
    if (r >= 0) r = vm_expire_locked(vm, &e);
    removed = r == QVM_ENOTFOUND;
    qvm_error_free(e);
    vm_lock_release(fd);
  }
  qvm_vm_free(vm);
  return removed;
}
