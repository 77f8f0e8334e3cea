/* SPDX-License-Identifier: MIT */
/*
 * Reaching a running VM over SSH: where it listens (user net: the forwarded
 * loopback port; bridge: its IP), as whom, with which pinned key; and running
 * its recorded provision steps.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ssh/session_key.h"
#include "util/cleanup.h"
#include "vm/access.h"
#include "vm/audit.h"
#include "vm/ca_guest.h"
#include "vm/handle.h"

const char *qvm_vm_dir(const qvm_vm *vm) { return vm->paths.dir; }

const char *qvm_vm_user(const qvm_vm *vm) {
  return vm->spec && vm->spec->user ? vm->spec->user : "root";
}

size_t qvm_vm_provision_count(const qvm_vm *vm) { return vm->spec ? vm->spec->n_steps : 0; }

static int not_running(qvm_vm *vm, qvm_vm_state st, qvm_error **err) {
  qvm_error_set(err, QVM_ECONFLICT, "vm '%s' is %s, not running", vm->name, qvm_vm_state_name(st));
  return qvm_error_set_hint(err, QVM_ECONFLICT, "VmNotRunning", vm->name);
}

static int runtime_ssh_port(int *out, qvm_vm *vm, qvm_error **err) {
  if (!vm->rec->has_runtime || !vm->rec->runtime.ssh_port) {
    qvm_error_set(err, QVM_EINVAL, "vm '%s' has no ssh port forward recorded", vm->name);
    return qvm_error_set_hint(err, QVM_EINVAL, "NoSshForward", vm->name);
  }
  *out = vm->rec->runtime.ssh_port;
  return 0;
}

/* *host is malloc'd. qvm_vm_ip may re-read vm.json, which replaces vm->spec:
 * nothing here may hold on to the spec across that call. */
static int target_address(char **host, qvm_vm *vm, int *port, int timeout_ms, qvm_error **err) {
  const vm_spec *s = vm->spec;
  switch (s->net) {
  case VM_NET_USER:
    if (!s->ssh_forward)
      return qvm_error_set(err, QVM_EINVAL, "vm '%s' forwards no ssh port", vm->name);
    if (!(*host = strdup("127.0.0.1"))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
    return runtime_ssh_port(port, vm, err);
  case VM_NET_BRIDGE: {
    char *ip = NULL, *source = NULL;
    int r = qvm_vm_ip(&ip, &source, vm, timeout_ms, err);
    free(source);
    if (r < 0) return r;
    *host = ip;
    *port = 22;
    return 0;
  }
  case VM_NET_NONE: break;
  }
  qvm_error_set(err, QVM_EINVAL, "vm '%s' has no network: ssh cannot reach it", vm->name);
  return qvm_error_set_hint(err, QVM_EINVAL, "NoNetwork", vm->name);
}

/* The host's address as the guest sees qvm's connections: user net NATs
 * them from 10.0.2.2 (QEMU's slirp host address); on a bridge it is the
 * address the kernel picks to reach the guest (a UDP socket connected to
 * it, which sends nothing). */
static int source_address(char *out, size_t size, const vm_spec *s, qvm_error **err) {
  if (s->net == VM_NET_USER) return snprintf(out, size, "10.0.2.2"), 0;
  struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST}, *ai = NULL;
  if (getaddrinfo(s->lent_host, "22", &hints, &ai) != 0 || !ai)
    return qvm_error_set(err, QVM_EINVAL, "vm address '%s' is not numeric", s->lent_host);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;
  if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
      getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
      getnameinfo((struct sockaddr *)&ss, len, out, size, NULL, 0, NI_NUMERICHOST) != 0)
    r = qvm_error_set_errno(err, errno, "cannot tell the host's address towards %s", s->lent_host);
  if (fd >= 0) close(fd);
  freeaddrinfo(ai);
  return r;
}

/* A session key and a certificate of the session CA for it (vm/ca_guest.h)
 * for `user`, valid ttl_s, lent to the caller like the paths: freed (the
 * key wiped) with the spec or by vm_spec_lent_credentials_clear. */
static int session_credentials(qvm_vm *vm, vm_spec *s, int64_t ttl_s, qvm_error **err) {
  char from[INET6_ADDRSTRLEN + 8];
  ssh_session_key key = {0};
  qvm_cert_ca *ca = NULL;
  vm_spec_lent_credentials_clear(s);
  int r = source_address(from, sizeof from, s, err);
  if (r >= 0) r = ssh_session_key_generate(&key, err);
  if (r >= 0) r = qvm_cert_ca_open(&ca, NULL, err);
  if (r >= 0)
    r = vm_ca_session_issue(&s->lent_cert, ca, key.q, vm->name, vm_ca_session_principal(vm), from,
                            ttl_s, err);
  qvm_cert_ca_free(ca);
  if (r >= 0) s->lent_pem = TAKE_PTR(key.pem), s->lent_pem_len = key.pem_len;
  ssh_session_key_clear(&key);
  return r < 0 ? qvm_error_prefix(err, "cannot make a login certificate for sandbox '%s'", vm->name)
               : 0;
}

/* Where and as whom; no credentials minted. o is a whole current-version
 * struct. */
static int ssh_target(qvm_ssh_options *out, qvm_vm *vm, int timeout_ms, qvm_error **err) {
  int r = vm_reload(vm, err); /* the runtime's port is the newest run's */
  if (r < 0) return r;
  qvm_vm_state st = qvm_vm_get_state(vm);
  if (st != QVM_VM_RUNNING) return not_running(vm, st, err);
  int port = 22;
  char *host = NULL;
  r = target_address(&host, vm, &port, timeout_ms, err);
  if (r < 0) {
    free(host);
    return r;
  }
  vm_spec *s = vm->spec; /* only now: target_address may have replaced it */
  free(s->lent_host);
  s->lent_host = host;
  free(s->lent_known_hosts);
  free(s->lent_identity);
  s->lent_known_hosts = s->lent_identity = NULL;
  if (asprintf(&s->lent_known_hosts, "%s/%s", vm->paths.dir, VM_KNOWN_HOSTS) < 0 ||
      asprintf(&s->lent_identity, "%s/%s", vm->paths.dir, VM_CLIENT_KEY) < 0) {
    s->lent_known_hosts = s->lent_identity = NULL;
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  qvm_ssh_options o = QVM_SSH_OPTIONS_INIT;
  o.host = s->lent_host;
  o.port = port;
  o.user = qvm_vm_user(vm);
  o.vm_name = vm->name;
  o.known_hosts = s->lent_known_hosts;
  o.hostkey_policy = s->hostkey_tofu ? QVM_SSH_HOSTKEY_TOFU : QVM_SSH_HOSTKEY_PINNED;
  if (access(s->lent_identity, R_OK) == 0)
    o.identity = s->lent_identity;
  else if (!vm_ca_session_login(vm))
    o.use_agent = true; /* no key of its own (--no-cloud-init, --seed) */
  if (timeout_ms > 0) o.timeout_ms = timeout_ms;
  *out = o;
  return 0;
}

/* The public call fills a version 1 struct (its callers may have been built
 * against that header: writing more would run past their struct), without
 * a certificate: a caller that prints an OpenSSH command gets the key file,
 * which a sandbox's sshd does not take (qvm cert issue is for that). */
int qvm_vm_ssh_target(qvm_ssh_options *out, qvm_vm *vm, int timeout_ms, qvm_error **err) {
  qvm_ssh_options o;
  int r = ssh_target(&o, vm, timeout_ms, err);
  if (r < 0) return r;
  o.version = 1;
  memcpy(out, &o, offsetof(qvm_ssh_options, identity_pem));
  return 0;
}

int vm_ssh_login_target(qvm_ssh_options *out, qvm_vm *vm, const char *user, int timeout_ms,
                        int64_t cert_ttl_s, qvm_error **err) {
  int r = ssh_target(out, vm, timeout_ms, err);
  if (r < 0) return r;
  if (user) out->user = user;
  if (!vm_ca_session_login(vm)) return 0;
  vm_spec *s = vm->spec;
  if ((r = session_credentials(vm, s, cert_ttl_s, err)) < 0) return r;
  out->identity_pem = s->lent_pem;
  out->certificate = s->lent_cert;
  return 0;
}

int qvm_vm_ssh_connect(qvm_ssh **out, qvm_vm *vm, const qvm_vm_ssh_options *opts, qvm_error **err) {
  return vm_ssh_connect_on(out, vm, opts, -1, err);
}

int vm_ssh_connect_on(qvm_ssh **out, qvm_vm *vm, const qvm_vm_ssh_options *opts, int fd,
                      qvm_error **err) {
  _cleanup_close_ int on = fd;
  qvm_vm_ssh_options none = QVM_VM_SSH_OPTIONS_INIT;
  if (!opts) opts = &none;
  int rc = QVM_OPTIONS_CHECK(opts, qvm_vm_ssh_options, QVM_VM_SSH_OPTIONS_VERSION, err);
  if (rc < 0) return rc;
  int timeout = opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
  qvm_ssh_options o;
  /* A key or the agent the caller names is used as given: no certificate. */
  int r = opts->identity || opts->use_agent
              ? ssh_target(&o, vm, timeout, err)
              : vm_ssh_login_target(&o, vm, opts->user, timeout, VM_CA_SESSION_TTL_S, err);
  if (r < 0) return r;
  if (opts->repin) o.hostkey_policy = QVM_SSH_HOSTKEY_REPIN;
  if (opts->user) o.user = opts->user;
  if (opts->identity) o.identity = opts->identity, o.use_agent = false;
  if (opts->use_agent) o.identity = NULL, o.use_agent = true;
  if (!o.identity && !o.use_agent && !o.certificate)
    return qvm_error_set(err, QVM_EAUTH, "vm '%s' has no key of its own: give an identity",
                         vm->name);
  o.fd = TAKE_FD(on);
  r = qvm_ssh_connect(out, &o, err);
  vm_spec_lent_credentials_clear(vm->spec); /* the key is needed no longer */
  return r;
}

/* "shell 'echo hi'", "script setup.sh", "file app -> /opt/app" */
static char *step_name(const vm_step *st) {
  char *name = NULL;
  const char *base = st->text ? strrchr(st->text, '/') : NULL;
  base = base && base[1] ? base + 1 : st->text;
  int n = -1;
  switch (st->kind) {
  case VM_STEP_SHELL:
    n = asprintf(&name, "shell '%.60s%s'", st->text, strlen(st->text) > 60 ? "..." : "");
    break;
  case VM_STEP_SCRIPT: n = asprintf(&name, "script %s", base); break;
  case VM_STEP_FILE: n = asprintf(&name, "file %s -> %s", base, st->destination); break;
  }
  if (n < 0) return NULL;
  for (char *p = name; *p; p++)
    if ((unsigned char)*p < 0x20) *p = ' ';
  return name;
}

int qvm_vm_provision(size_t *out_failed, qvm_vm *vm, qvm_ssh *ssh, qvm_ssh_output_fn on_output,
                     void *ctx, qvm_error **err) {
  if (out_failed) *out_failed = 0;
  const vm_spec *s = vm->spec;
  if (!s->n_steps) return 0;
  qvm_ssh_step *steps = calloc(s->n_steps, sizeof *steps);
  char **names = calloc(s->n_steps, sizeof *names);
  _cleanup_free_ char *log = NULL, *audit = NULL;
  int r = 0;
  if (!steps || !names || asprintf(&log, "%s/%s", vm->paths.dir, QVM_VM_PROVISION_LOG) < 0 ||
      asprintf(&audit, "%s/%s", vm->paths.dir, QVM_VM_AUDIT_LOG) < 0)
    r = qvm_error_set_errno(err, ENOMEM, "out of memory");
  bool as_root = !strcmp(qvm_vm_user(vm), "root");
  for (size_t i = 0; r >= 0 && i < s->n_steps; i++) {
    const vm_step *st = &s->steps[i];
    if (!(names[i] = step_name(st))) r = qvm_error_set_errno(err, ENOMEM, "out of memory");
    steps[i] = (qvm_ssh_step){
        .kind = st->kind == VM_STEP_SHELL    ? QVM_SSH_STEP_INLINE
                : st->kind == VM_STEP_SCRIPT ? QVM_SSH_STEP_SCRIPT
                                             : QVM_SSH_STEP_FILE,
        .name = names[i],
        .inline_text = st->kind == VM_STEP_SHELL ? st->text : NULL,
        .source = st->kind == VM_STEP_SHELL ? NULL : st->text,
        .destination = st->destination,
        .sudo = st->sudo && !as_root, /* root has no use for sudo (and may lack it) */
    };
  }
  if (r >= 0) {
    qvm_ssh_provision_options po = {.version = QVM_SSH_PROVISION_OPTIONS_VERSION,
                                    .steps = steps,
                                    .n_steps = s->n_steps,
                                    .log_path = log,
                                    .audit_log = audit,
                                    .on_output = on_output,
                                    .ctx = ctx,
                                    .step_timeout_ms = -1};
    r = qvm_ssh_provision(out_failed, ssh, &po, err);
    vm_audit_provision(vm->name, s->n_steps, out_failed, r, (const qvm_error *const *)err);
    if (r < 0) qvm_error_prefix(err, "vm '%s'", vm->name);
  }
  for (size_t i = 0; names && i < s->n_steps; i++) free(names[i]);
  free(names);
  free(steps);
  return r;
}
