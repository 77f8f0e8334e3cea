/* SPDX-License-Identifier: MIT */
/*
 * Sandboxes trust qvm's SSH CAs (include/qvm/cert.h, vm/ca_guest.h):
 * - the seed of a sandbox writes the user CA, the KRL as it is at creation,
 *   a host certificate for the host key qvm pinned, and an sshd drop-in
 *   (write_files runs before cloud-init's ssh module and before sshd);
 * - on every later boot a bootcmd replaces the KRL with the user CA's own
 *   public key: sshd then refuses every certificate of that CA (RevokedKeys
 *   may be a plain key list; a listed CA key revokes what it signed) until
 *   qvm pushes the current KRL (qvm up, qvm cert push, qvm cert revoke). A
 *   sandbox that was stopped while certificates were revoked thus never
 *   boots into a KRL that misses them; qvm's own logins (session CA) still work;
 * - the push pipes the KRL through an exec (stdin) to a root shell that
 *   writes it to a fresh mktemp file in /etc/ssh and renames it into place:
 *   the login user is not root, so an SFTP upload would need a staging file
 *   the guest user controls, which root would then read.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include <qvm/text.h>
#include <qvm/vm.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"
#include "vm/audit.h"
#include "vm/ca_guest.h"
#include "vm/handle.h"

#define KRL_MAX (16u << 20)
#define PUSH_TIMEOUT_MS 30000
#define OUT_MAX 512

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

void vm_ca_seed_clear(vm_ca_seed *seed) {
  if (!seed) return;
  free(seed->ca_line), free(seed->cas_lines), free(seed->cert_line), free(seed->dropin);
  free(seed->krl), free(seed->principals), free(seed->principals_path);
  *seed = (vm_ca_seed){0};
}

static int host_cert_issue(char **out, qvm_cert_ca *ca, const vm_spec *s, const char *public_line,
                           qvm_error **err) {
  const char *principals[] = {s->name, VM_GUEST_HOST_PRINCIPAL, NULL};
  int64_t now_us = qvm_realtime_us();
  int64_t until_us = s->expires_at_us > now_us ? s->expires_at_us : now_us;
  qvm_cert_options o = QVM_CERT_OPTIONS_INIT;
  o.kind = QVM_CERT_HOST;
  o.public_line = public_line;
  o.vm = s->name;
  o.principals = principals;
  o.ttl_ms = (until_us - now_us) / 1000 + (int64_t)VM_GUEST_HOST_CERT_SLACK_S * 1000;
  qvm_cert *cert = NULL;
  int r = qvm_cert_issue(&cert, ca, &o, err);
  if (r < 0) return r;
  r = asprintf(out, "%s\n", qvm_cert_line(cert)) < 0 ? oom(err) : 0;
  qvm_cert_free(cert);
  return r;
}

static int seed_texts(vm_ca_seed *out, qvm_cert_ca *ca, const vm_spec *s, const char *public_line,
                      qvm_error **err) {
  int r = qvm_read_file(&out->krl, &out->krl_len, qvm_cert_ca_krl_path(ca), KRL_MAX, err);
  if (r < 0) return r;
  if (asprintf(&out->ca_line, "%s\n", qvm_cert_ca_public_line(ca, QVM_CERT_USER)) < 0) {
    out->ca_line = NULL;
    return oom(err);
  }
  if (asprintf(&out->cas_lines, "%s\n%s\n", qvm_cert_ca_public_line(ca, QVM_CERT_USER),
               vm_ca_session_public_line(ca)) < 0) {
    out->cas_lines = NULL;
    return oom(err);
  }
  /* sshd takes the first value it reads, and Debian's sshd_config includes
   * sshd_config.d/ at its top, in name order: these win over the image's
   * own lines and its later drop-ins. */
  if (asprintf(&out->dropin,
               "# Written by qvm when sandbox '%s' was created: sshd trusts qvm's user CA\n"
               "# and its session CA (qvm's own logins), refuses what qvm revoked, shows a\n"
               "# host certificate of qvm's host CA, and reads no authorized_keys: a\n"
               "# short-lived certificate is the only way in, for the principals listed\n"
               "# in " VM_GUEST_PRINCIPALS_DIR "/USER.\n"
               "TrustedUserCAKeys " VM_GUEST_TRUSTED_CAS "\n"
               "RevokedKeys " VM_GUEST_KRL "\n"
               "HostCertificate " VM_GUEST_HOST_CERT "\n"
               "AuthorizedKeysFile none\n"
               "AuthorizedPrincipalsFile " VM_GUEST_PRINCIPALS_DIR "/%%u\n",
               s->name) < 0) {
    out->dropin = NULL;
    return oom(err);
  }
  if (asprintf(&out->principals, "%s\n" VM_SESSION_PRINCIPAL_PREFIX "%s\n", s->user, s->name) < 0 ||
      asprintf(&out->principals_path, VM_GUEST_PRINCIPALS_DIR "/%s", s->user) < 0) {
    out->principals = out->principals_path = NULL;
    return oom(err);
  }
  return host_cert_issue(&out->cert_line, ca, s, public_line, err);
}

int vm_ca_seed_make(vm_ca_seed *out, const vm_spec *s, const char *host_public_line,
                    qvm_error **err) {
  qvm_cert_ca *ca = NULL;
  *out = (vm_ca_seed){0};
  int r = qvm_cert_ca_open(&ca, NULL, err);
  if (r >= 0) r = seed_texts(out, ca, s, host_public_line, err);
  qvm_cert_ca_free(ca);
  if (r < 0) {
    vm_ca_seed_clear(out);
    return qvm_error_prefix(err, "cannot make sandbox '%s' trust qvm's ssh ca", s->name);
  }
  const struct {
    const char *path, *text;
    size_t len;
  } f[] = {{VM_GUEST_USER_CA, out->ca_line, strlen(out->ca_line)},
           {VM_GUEST_TRUSTED_CAS, out->cas_lines, strlen(out->cas_lines)},
           {VM_GUEST_KRL, out->krl, out->krl_len},
           {VM_GUEST_HOST_CERT, out->cert_line, strlen(out->cert_line)},
           {out->principals_path, out->principals, strlen(out->principals)},
           {VM_GUEST_SSHD_DROPIN, out->dropin, strlen(out->dropin)}};
  for (size_t i = 0; i < sizeof f / sizeof *f; i++)
    out->files[out->n_files++] = (qvm_seed_write_file){.path = f[i].path,
                                                       .content = f[i].text,
                                                       .content_len = f[i].len,
                                                       .permissions = "0644",
                                                       .owner = "root:root"};
  /* bootcmd runs before write_files on the first boot (which then writes
   * the real KRL), and on every later boot before sshd starts. */
  out->bootcmd[out->n_bootcmd++] =
      "if [ -f " VM_GUEST_USER_CA " ]; then cp --remove-destination " VM_GUEST_USER_CA
      " " VM_GUEST_KRL "; fi";
  return 0;
}

/* ---- the push --------------------------------------------------------------- */

/* Run as root in the guest; stdin is the new content of $1, one of qvm's
 * files in /etc/ssh. Exit 3 (NO_DROPIN_EXIT): the guest has no drop-in. */
#define NO_DROPIN_EXIT 3
static const char push_script[] = "set -e; umask 077; "
                                  "if [ ! -f " VM_GUEST_SSHD_DROPIN " ] && "
                                  "[ ! -f " VM_GUEST_SSHD_DROPIN_OLD " ]; then cat >/dev/null; "
                                  "exit 3; fi; "
                                  "t=$(mktemp /etc/ssh/.qvm-push.XXXXXXXX); "
                                  "trap 'rm -f \"$t\"' EXIT; "
                                  "cat > \"$t\"; chown root:root \"$t\"; chmod 0644 \"$t\"; "
                                  "mv -f -T \"$t\" \"$1\"; trap - EXIT; "
                                  "sha256sum < \"$1\"";

typedef struct push_output {
  char out[OUT_MAX], err[OUT_MAX];
  size_t out_len, err_len;
} push_output;

static int push_collect(void *ctx, int stream, const void *data, size_t len) {
  push_output *p = ctx;
  char *buf = stream == QVM_SSH_STDOUT ? p->out : p->err;
  size_t *n = stream == QVM_SSH_STDOUT ? &p->out_len : &p->err_len;
  size_t take = len < OUT_MAX - 1 - *n ? len : OUT_MAX - 1 - *n;
  memcpy(buf + *n, data, take);
  *n += take;
  buf[*n] = 0;
  return 0;
}

static int data_memfd(int *out, char hex[65], const char *data, size_t len, qvm_error **err) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)data, len);
  sodium_bin2hex(hex, 65, h, sizeof h);
  int fd = memfd_create("qvm-push", MFD_CLOEXEC);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot make a memfd");
  if (qvm_write_all(fd, data, len) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
    int e = errno;
    close(fd);
    return qvm_error_set_errno(err, e, "cannot fill a memfd");
  }
  *out = fd;
  return 0;
}

static int push_check(const push_output *p, const qvm_ssh_exec_result *res, const char *hex,
                      const char *dest, qvm_error **err) {
  if (res->exit_code == NO_DROPIN_EXIT && !res->signaled)
    return qvm_error_set(err, QVM_ENOTFOUND,
                         "the guest has no " VM_GUEST_SSHD_DROPIN
                         ": its sshd does not trust qvm's ca (its image did not run the seed's "
                         "write_files)");
  if (res->exit_code != 0 || res->signaled) {
    _cleanup_free_ char *why = qvm_text_for_terminal(p->err, p->err_len, 0);
    return qvm_error_set(err, QVM_EPROTO, "writing %s in the guest failed (exit %d): %s", dest,
                         res->exit_code, why && *why ? why : "no message");
  }
  if (p->out_len < 64 || memcmp(p->out, hex, 64) != 0)
    return qvm_error_set(err, QVM_EPROTO,
                         "the guest's %s does not have the pushed bytes' sha256 after the push",
                         dest);
  return 0;
}

/* data to dest in the guest (one of qvm's files in /etc/ssh), as root. */
static int push_file(qvm_vm *vm, qvm_ssh *ssh, const char *dest, const char *data, size_t len,
                     qvm_error **err) {
  _cleanup_close_ int fd = -1;
  char hex[65];
  int r = data_memfd(&fd, hex, data, len, err);
  if (r < 0) return r;
  bool root = !strcmp(qvm_vm_user(vm), "root");
  const char *sudo_argv[] = {"sudo", "-n", "sh", "-c", push_script, "qvm-push", dest, NULL};
  const char *const *argv = root ? sudo_argv + 2 : sudo_argv;
  push_output p = {0};
  qvm_ssh_exec_result res = {0};
  qvm_ssh_exec_options o = QVM_SSH_EXEC_OPTIONS_INIT;
  o.argv = argv;
  o.stdin_fd = fd;
  o.on_output = push_collect;
  o.ctx = &p;
  o.timeout_ms = PUSH_TIMEOUT_MS;
  r = qvm_vm_exec(&res, vm, ssh, &o, err);
  if (r >= 0) r = push_check(&p, &res, hex, dest, err);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "path", json_object_new_string(dest));
  json_object_object_add(d, "sha256", json_object_new_string(hex));
  vm_audit_note(vm->name, strcmp(dest, VM_GUEST_KRL) ? "host-cert-push" : "krl-push", r,
                (const qvm_error *const *)err, d);
  return r;
}

/* Pushes run unlocked, several at once (up, fork, push, revoke): one that
 * read the KRL before a revoke rewrote it may land after the revoke's own
 * push. So each push reads the KRL again once its copy is in place, and
 * pushes again while it changed: the last copy to land is the newest. */
#define KRL_PUSH_ROUNDS 4

int vm_ca_push_krl(qvm_vm *vm, qvm_ssh *ssh, const qvm_cert_ca *ca, qvm_error **err) {
  _cleanup_free_ char *krl = NULL;
  size_t len = 0;
  int r = qvm_read_file(&krl, &len, qvm_cert_ca_krl_path(ca), KRL_MAX, err);
  for (int round = 0; r >= 0; round++) {
    r = push_file(vm, ssh, VM_GUEST_KRL, krl, len, err);
    _cleanup_free_ char *now = NULL;
    size_t now_len = 0;
    if (r >= 0) r = qvm_read_file(&now, &now_len, qvm_cert_ca_krl_path(ca), KRL_MAX, err);
    if (r < 0 || (now_len == len && !memcmp(now, krl, len))) break;
    if (round + 1 == KRL_PUSH_ROUNDS) {
      r = qvm_error_set(err, QVM_EBUSY, "the krl kept changing while it was pushed");
      break;
    }
    free(krl);
    krl = TAKE_PTR(now);
    len = now_len;
  }
  return r < 0 ? qvm_error_prefix(err, "cannot push the krl to vm '%s'", vm->name) : 0;
}

/* ---- forks ------------------------------------------------------------------- */

static bool has(const char *dir, const char *mark) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, mark);
  return access(path, F_OK) == 0;
}

static bool has_mark(const char *dir) { return has(dir, VM_CA_TRUST_MARK); }

static int mark(const char *dir, const char *name, qvm_error **err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return qvm_write_file_atomic(path, "", 0, 0600, err);
}

bool vm_ca_trusted(const qvm_vm *vm) { return vm->spec->sandbox || has_mark(vm->paths.dir); }

bool vm_ca_session_login(const qvm_vm *vm) { return has(vm->paths.dir, VM_CA_SESSION_MARK); }

int vm_ca_session_mark(const char *dir, const char *name, qvm_error **err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/" VM_CA_SESSION_MARK, dir);
  return qvm_write_file_atomic(path, name, strlen(name), 0600, err);
}

/* The mark's content: a VM name, or "" (the caller's own name then). */
static void session_principal_read(char *out, size_t size, const char *dir) {
  char path[4096];
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  out[0] = 0;
  snprintf(path, sizeof path, "%s/" VM_CA_SESSION_MARK, dir);
  if (qvm_read_file(&text, &len, path, 128, NULL) < 0 || len >= size) return;
  memcpy(out, text, len);
  out[len] = 0;
  if (qvm_vm_name_check(out, NULL) < 0) out[0] = 0;
}

const char *vm_ca_session_principal(qvm_vm *vm) {
  static _Thread_local char name[QVM_VM_NAME_MAX + 1];
  session_principal_read(name, sizeof name, vm->paths.dir);
  return name[0] ? name : vm->name;
}

int vm_ca_fork_mark(const qvm_vm *src, const char *dir, qvm_error **err) {
  if (!vm_ca_trusted(src)) return 0;
  int r = mark(dir, VM_CA_TRUST_MARK, err);
  /* The fork's guest is SRC's: it takes what SRC's takes, SRC's principal
   * included. */
  if (r >= 0 && vm_ca_session_login(src)) {
    char name[QVM_VM_NAME_MAX + 1];
    session_principal_read(name, sizeof name, src->paths.dir);
    r = vm_ca_session_mark(dir, name[0] ? name : src->name, err);
  }
  return r;
}

/* The fork's pinned host key (SRC's): "NAME TYPE BASE64" -> "TYPE BASE64". */
static int pinned_key(char **out, const qvm_vm *vm, qvm_error **err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/known_hosts", vm->paths.dir);
  _cleanup_free_ char *text = NULL;
  int r = qvm_read_file(&text, NULL, path, 64 << 10, err);
  if (r < 0) return r;
  text[strcspn(text, "\n")] = 0;
  char *sp = strchr(text, ' ');
  if (!sp || !sp[1])
    return qvm_error_set(err, QVM_ENOTFOUND, "vm '%s' has no pinned host key", vm->name);
  return (*out = strdup(sp + 1)) ? 0 : oom(err);
}

int vm_ca_fork_trust(qvm_vm *vm, qvm_ssh *ssh, qvm_error **err) {
  if (!has_mark(vm->paths.dir)) return 0;
  _cleanup_free_ char *key = NULL, *cert = NULL;
  qvm_cert_ca *ca = NULL;
  qvm_error *e = NULL;
  int r = pinned_key(&key, vm, &e);
  if (r >= 0) r = qvm_cert_ca_open(&ca, NULL, &e);
  if (r >= 0) r = host_cert_issue(&cert, ca, vm->spec, key, &e);
  if (r >= 0) r = push_file(vm, ssh, VM_GUEST_HOST_CERT, cert, strlen(cert), &e);
  if (r >= 0) r = vm_ca_push_krl(vm, ssh, ca, &e);
  qvm_cert_ca_free(ca);
  if (r == QVM_ENOTFOUND) { /* no drop-in in the guest: it trusts no certificate */
    qvm_error_free(e);
    return 0;
  }
  if (r < 0) {
    qvm_error_propagate(err, e);
    return qvm_error_prefix(err, "fork '%s': cannot give it its host certificate", vm->name);
  }
  return 0;
}

/* ---- qvm_cert_push ----------------------------------------------------------- */

static int push_one(qvm_vm *vm, const qvm_cert_ca *ca, qvm_error **err) {
  qvm_vm_ssh_options so = QVM_VM_SSH_OPTIONS_INIT;
  so.timeout_ms = PUSH_TIMEOUT_MS;
  qvm_ssh *ssh = NULL;
  int r = qvm_vm_ssh_connect(&ssh, vm, &so, err);
  if (r >= 0)
    r = vm_ca_push_krl(vm, ssh, ca, err);
  else
    qvm_error_prefix(err, "cannot push the krl to vm '%s'", vm->name);
  qvm_ssh_free(ssh);
  return r;
}

int vm_ca_repush(qvm_vm *vm, qvm_error **err) {
  if (!vm_ca_trusted(vm) || qvm_vm_get_state(vm) != QVM_VM_RUNNING) return 0;
  qvm_cert_ca *ca = NULL;
  qvm_error *e = NULL;
  int r = qvm_cert_ca_open(&ca, NULL, &e);
  if (r >= 0) r = push_one(vm, ca, &e);
  qvm_cert_ca_free(ca);
  if (r == QVM_ENOTFOUND) { /* no drop-in in the guest: it trusts no certificate */
    qvm_error_free(e);
    return 0;
  }
  return r < 0 ? qvm_error_propagate(err, e) : 0;
}

/* A guest without qvm's drop-in (QVM_ENOTFOUND) trusts no certificate of
 * qvm's: skipped, not failed. */
static void push_entry(struct json_object *a, const char *name, int r, qvm_error *e) {
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "vm", json_object_new_string(name));
  json_object_object_add(o, "pushed", json_object_new_boolean(r >= 0));
  json_object_object_add(o, "error", r < 0 ? json_object_new_string(qvm_error_message(e)) : NULL);
  if (r == QVM_ENOTFOUND) json_object_object_add(o, "skipped", json_object_new_boolean(true));
  json_object_array_add(a, o);
}

/* One VM: a running sandbox gets the KRL; others are not listed. */
static void push_vm(struct json_object *a, size_t *failed, const char *name, const qvm_cert_ca *ca,
                    bool named) {
  qvm_vm *vm = NULL;
  qvm_error *e = NULL;
  int r = qvm_vm_open(&vm, name, &e);
  if (r >= 0 && !vm_ca_trusted(vm) && named)
    r = qvm_error_set(&e, QVM_ECONFLICT, "vm '%s' is not a sandbox", name);
  else if (r >= 0 && vm_ca_trusted(vm) && qvm_vm_get_state(vm) != QVM_VM_RUNNING && named)
    r = qvm_error_set(&e, QVM_ECONFLICT, "sandbox '%s' is not running", name);
  else if (r >= 0 && (!vm_ca_trusted(vm) || qvm_vm_get_state(vm) != QVM_VM_RUNNING)) {
    qvm_vm_free(vm);
    return;
  }
  if (r >= 0) r = push_one(vm, ca, &e);
  push_entry(a, name, r, e);
  if (r < 0 && r != QVM_ENOTFOUND) (*failed)++;
  qvm_error_free(e);
  qvm_vm_free(vm);
}

int qvm_cert_push(char **out_json, size_t *out_failed, const qvm_cert_ca *ca, const char *vm,
                  qvm_error **err) {
  char **names = NULL;
  size_t n = 0, failed = 0;
  int r = vm ? qvm_vm_name_check(vm, err) : qvm_vm_list(&names, &n, err);
  if (r < 0) return r;
  struct json_object *a = json_object_new_array();
  if (!a) {
    qvm_vm_names_free(names, n);
    return oom(err);
  }
  if (vm) push_vm(a, &failed, vm, ca, true);
  for (size_t i = 0; i < n; i++) push_vm(a, &failed, names[i], ca, false);
  qvm_vm_names_free(names, n);
  const char *t = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN);
  *out_json = t ? strdup(t) : NULL;
  json_object_put(a);
  if (!*out_json) return oom(err);
  if (out_failed) *out_failed = failed;
  return 0;
}

/* ---- known_hosts --------------------------------------------------------------- */

int qvm_cert_known_hosts_line(char **out, const qvm_cert_ca *ca, const char *pattern,
                              qvm_error **err) {
  if (!pattern) pattern = QVM_CERT_KNOWN_HOSTS_PATTERN;
  size_t n = strlen(pattern);
  if (!n || n > 1024 || strpbrk(pattern, " \t\r\n#") || pattern[0] == '@')
    return qvm_error_set(err, QVM_EINVAL,
                         "known_hosts pattern '%s' is invalid: host patterns separated by commas, "
                         "without spaces",
                         pattern);
  for (const char *p = pattern; *p; p++)
    if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
      return qvm_error_set(err, QVM_EINVAL, "known_hosts pattern holds a non-printable byte");
  if (asprintf(out, "@cert-authority %s %s", pattern, qvm_cert_ca_public_line(ca, QVM_CERT_HOST)) <
      0)
    return oom(err);
  return 0;
}
