/* SPDX-License-Identifier: MIT */
/* The guest CPU model: what a VM's "cpu" means at each start. */
#include <string.h>

#include "vm/cpu.h"

/* Under TCG: a Debian 12 cloud guest on max costs 1.14x the QEMU CPU time
 * of qemu64 to cloud-init done, and reaches SSH 1.10x later
 * (bench/vm/bench_cpu.sh; figures in docs/ARCHITECTURE.md, "CPU model"):
 * with SSE4.2 and POPCNT in CPUID, glibc and the kernel likely take code
 * paths TCG emulates slowly. qemu64 is also migratable, which RAM
 * snapshots and forks need.
 * A guest built for x86-64-v2 or later (RHEL 9 and its rebuilds) needs
 * --cpu (e.g. Nehalem or max). Under KVM, the host's model. */
#define TCG_DEFAULT "qemu64"
#define KVM_DEFAULT "host"
#define TCG_LEGACY "max"

static bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

/* [A-Za-z0-9_.-]+ from p up to end; false if empty or another byte. */
static bool word(const char *p, const char *end) {
  if (p == end) return false;
  for (; p < end; p++)
    if (!word_char(*p)) return false;
  return true;
}

static bool feature(const char *p, const char *end) {
  if (p < end && (*p == '+' || *p == '-')) return word(p + 1, end);
  const char *eq = memchr(p, '=', (size_t)(end - p));
  return eq ? word(p, eq) && word(eq + 1, end) : word(p, end);
}

int vm_cpu_check(const char *text, qvm_error **err) {
  if (!text || !*text)
    return qvm_error_set(err, QVM_EINVAL, "cpu model is empty: use auto or a QEMU model");
  size_t len = strlen(text);
  if (len > VM_CPU_MAX_LEN)
    return qvm_error_set(err, QVM_EINVAL, "cpu model is longer than %d bytes", VM_CPU_MAX_LEN);
  const char *end = text + len, *comma = memchr(text, ',', len);
  const char *model_end = comma ? comma : end;
  bool features = comma != NULL;
  bool ok = word(text, model_end) && text[0] != '-';
  for (const char *p = comma; ok && p; p = comma) {
    p++;
    comma = memchr(p, ',', (size_t)(end - p));
    ok = feature(p, comma ? comma : end);
  }
  if (!ok)
    return qvm_error_set(err, QVM_EINVAL,
                         "cpu model '%.*s' is invalid: use MODEL[,+FEATURE|,-FEATURE|,KEY=VALUE]..."
                         " of letters, digits, '_', '.' and '-' (qemu-system-x86_64 -cpu help "
                         "lists the models)",
                         VM_CPU_MAX_LEN, text);
  size_t model_len = (size_t)(model_end - text);
  /* "help" makes QEMU list its models and exit; "memory" is a link to a
   * QOM path and x-* are QEMU's debug knobs: none is a CPU choice. */
  if (model_len == 4 && !strncmp(text, "help", 4))
    return qvm_error_set(err, QVM_EINVAL,
                         "cpu model 'help': 'qemu-system-x86_64 -cpu help' lists the models");
  for (const char *p = strchr(text, ','); p; p = strchr(p + 1, ',')) {
    const char *k = p[1] == '+' || p[1] == '-' ? p + 2 : p + 1;
    if (!strncmp(k, "x-", 2) || (!strncmp(k, "memory", 6) && (k[6] == '=' || !k[6] || k[6] == ',')))
      return qvm_error_set(err, QVM_EINVAL,
                           "cpu property '%.*s' is not allowed: only CPU features and settings",
                           (int)strcspn(k, ",="), k);
  }
  bool special = (model_len == strlen(VM_CPU_AUTO) && !strncmp(text, VM_CPU_AUTO, model_len)) ||
                 (model_len == strlen(VM_CPU_LEGACY) && !strncmp(text, VM_CPU_LEGACY, model_len));
  if (special && features)
    return qvm_error_set(err, QVM_EINVAL, "cpu '%.*s' takes no features", (int)model_len, text);
  return 0;
}

int vm_cpu_usable(const char *cpu, vm_accel accel, const char *name, qvm_error **err) {
  const char *m = vm_cpu_model(cpu, accel, NULL);
  size_t len = strcspn(m, ",");
  if (accel == VM_ACCEL_TCG && len == 4 && !strncmp(m, "host", 4))
    return qvm_error_set(err, QVM_EINVAL,
                         "cpu model 'host' needs KVM and vm '%s' would run under TCG: make its "
                         "cpu model auto or a named one",
                         name);
  return 0;
}

const char *vm_cpu_model(const char *cpu, vm_accel accel, const char **why) {
  const char *w = NULL, *m = NULL;
  bool kvm = accel == VM_ACCEL_KVM;
  if (!cpu || !strcmp(cpu, VM_CPU_LEGACY)) {
    m = kvm ? KVM_DEFAULT : TCG_LEGACY;
    w = kvm ? "KVM: the host's model (legacy record)"
            : "made by a qvm before qemu64 was the TCG default: kept so its RAM snapshots and "
              "forks load (a cpu model of auto changes it)";
  } else if (!strcmp(cpu, VM_CPU_AUTO)) {
    m = kvm ? KVM_DEFAULT : TCG_DEFAULT;
    w = kvm ? "KVM: the host's model" : "TCG default: boots fastest under TCG, migratable";
  } else {
    m = cpu;
    w = "chosen with --cpu";
  }
  if (why) *why = w;
  return m;
}
