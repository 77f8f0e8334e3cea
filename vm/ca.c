/* SPDX-License-Identifier: MIT */
/*
 * The SSH CA store (include/qvm/cert.h): STATE/ca/ holds
 *   lock                  flock: creation, serials and revocation, one at a time
 *   user_ca, host_ca      ed25519 private keys (0600), and their .pub files
 *   session_ca            the same: it signs only qvm's own logins into
 *                         sandboxes (vm_ca_session_issue), never a
 *                         certificate that leaves the process
 *   serial                the last serial handed out ("N\n"; never decreases)
 *   issued                one line per live certificate:
 *                         "SERIAL user|host VM VALID_BEFORE 0|1(revoked)"
 *   revoked.krl           the user CA's KRL, rebuilt from `issued`
 * Lines of certificates expired for more than a day are dropped when the file
 * is rewritten: sshd refuses those anyway, so the KRL need not list them.
 * The encodings are ssh/cert.c and ssh/krl.c; this file is files and locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <qvm/cert.h>
#include <qvm/vm.h>

#include "ssh/cert.h"
#include "ssh/ssh_internal.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "vm/audit.h"
#include "vm/ca_guest.h"
#include "vm/state.h"

#define SKEW_S 30
#define FORGET_AFTER_S (24 * 3600)
#define MAX_ISSUED_FILE (32u << 20)
#define MAX_ACTOR 64
#define ACTOR_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@+-"

struct qvm_cert_ca {
  char *dir, *lock, *serial, *issued, *krl;
  qvm_ssh_key *keys[3]; /* [0] user, [1] host, [2] session */
};

struct qvm_cert {
  char *line, *key_id;
  uint64_t serial;
  int64_t valid_after, valid_before;
};

typedef struct issued_entry {
  uint64_t serial;
  uint32_t type;
  char vm[64];
  int64_t valid_before;
  bool revoked;
} issued_entry;

typedef struct issued_list {
  issued_entry *v;
  size_t n, cap;
} issued_list;

QVM_DEFINE_CLEANUP(qvm_cert_ca, qvm_cert_ca_free)
QVM_DEFINE_CLEANUP(qvm_cert, qvm_cert_free)

void qvm_cert_ca_free(qvm_cert_ca *ca) {
  if (!ca) return;
  free(ca->dir), free(ca->lock), free(ca->serial), free(ca->issued), free(ca->krl);
  qvm_ssh_key_free(ca->keys[0]);
  qvm_ssh_key_free(ca->keys[1]);
  qvm_ssh_key_free(ca->keys[2]);
  free(ca);
}

void qvm_cert_free(qvm_cert *cert) {
  if (!cert) return;
  free(cert->line);
  free(cert->key_id);
  free(cert);
}

static const char *key_name(int i) {
  static const char *const names[] = {"user_ca", "host_ca", "session_ca"};
  return names[i];
}

static int ca_lock(int *out, const qvm_cert_ca *ca, qvm_error **err) {
  int fd = open(ca->lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open ca lock '%s'", ca->lock);
  while (flock(fd, LOCK_EX) < 0)
    if (errno != EINTR) {
      int e = errno;
      close(fd);
      return qvm_error_set_errno(err, e, "cannot lock '%s'", ca->lock);
    }
  *out = fd;
  return 0;
}

/* Loads the CA key, or creates it if its file does not exist. */
static int ca_key_load_or_create(qvm_cert_ca *ca, int i, qvm_error **err) {
  _cleanup_free_ char *path = NULL;
  struct stat st;
  if (asprintf(&path, "%s/%s", ca->dir, key_name(i)) < 0)
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  if (lstat(path, &st) == 0) {
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
      return qvm_error_set(err, QVM_EINVAL,
                           "ca key '%s' must be a regular file of this user with mode 0600", path);
    int r = qvm_ssh_key_load(&ca->keys[i], path, err);
    return r < 0 ? qvm_error_prefix(err,
                                    "ca key '%s' is unusable (restore it from a backup; "
                                    "certificates it signed depend on it)",
                                    path)
                 : 0;
  }
  if (errno != ENOENT) return qvm_error_set_errno(err, errno, "cannot stat '%s'", path);
  static const char *const comments[] = {"qvm-user-ca", "qvm-host-ca", "qvm-session-ca"};
  int r = qvm_ssh_key_generate(&ca->keys[i], comments[i], err);
  return r < 0 ? r : qvm_ssh_key_write(ca->keys[i], path, NULL, err);
}

static int ca_paths(qvm_cert_ca *ca, const char *dir, qvm_error **err) {
  _cleanup_free_ char *root = NULL;
  if (!dir) {
    int r = vm_state_root(&root, err);
    if (r < 0) return r;
    if (asprintf(&ca->dir, "%s/ca", root) < 0) ca->dir = NULL;
  } else {
    ca->dir = strdup(dir);
  }
  if (!ca->dir || asprintf(&ca->lock, "%s/lock", ca->dir) < 0 ||
      asprintf(&ca->serial, "%s/serial", ca->dir) < 0 ||
      asprintf(&ca->issued, "%s/issued", ca->dir) < 0 ||
      asprintf(&ca->krl, "%s/revoked.krl", ca->dir) < 0)
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  return 0;
}

/* ---- issued ---------------------------------------------------------------- */

static void issued_clear(issued_list *l) { free(l->v); }

static int issued_add(issued_list *l, const issued_entry *e, qvm_error **err) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    issued_entry *v = realloc(l->v, cap * sizeof *v);
    if (!v) return qvm_error_set(err, QVM_ESYS, "out of memory");
    l->v = v, l->cap = cap;
  }
  l->v[l->n++] = *e;
  return 0;
}

static bool parse_u64(const char *s, uint64_t *out) {
  char *end;
  if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 19) return false;
  errno = 0;
  *out = strtoull(s, &end, 10);
  return errno == 0 && !*end;
}

static bool parse_issued_line(issued_entry *e, char *line) {
  char *f[6], *save = NULL;
  size_t n = 0;
  uint64_t vb = 0;
  for (char *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
    if (n == 5) return false;
    f[n++] = t;
  }
  if (n != 5 || !parse_u64(f[0], &e->serial) || e->serial == 0 || !parse_u64(f[3], &vb) ||
      vb > INT64_MAX || qvm_vm_name_check(f[2], NULL) < 0 || strlen(f[2]) >= sizeof e->vm)
    return false;
  if (!strcmp(f[1], "user"))
    e->type = SSH_CERT_USER;
  else if (!strcmp(f[1], "host"))
    e->type = SSH_CERT_HOST;
  else
    return false;
  if (strcmp(f[4], "0") && strcmp(f[4], "1")) return false;
  strcpy(e->vm, f[2]);
  e->valid_before = (int64_t)vb;
  e->revoked = f[4][0] == '1';
  return true;
}

/* Reads a file that may not exist yet: 1 and *out set, 0 if missing. */
static int read_optional(char **out, size_t *len, const char *path, size_t max, qvm_error **err) {
  qvm_error *e = NULL;
  int r = qvm_read_file(out, len, path, max, &e);
  if (r == QVM_ENOTFOUND) {
    qvm_error_free(e);
    return 0;
  }
  return r < 0 ? qvm_error_propagate(err, e) : 1;
}

/* Reads `issued`, dropping entries expired for more than a day before now. */
static int issued_read(issued_list *out, const qvm_cert_ca *ca, int64_t now, qvm_error **err) {
  _cleanup_free_ char *text = NULL;
  size_t len = 0, lineno = 0;
  int r = read_optional(&text, &len, ca->issued, MAX_ISSUED_FILE, err);
  if (r <= 0) return r;
  if (strlen(text) != len)
    return qvm_error_set(err, QVM_EINVAL, "ca file '%s' holds a NUL byte", ca->issued);
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    issued_entry e = {0};
    lineno++;
    if (!parse_issued_line(&e, line))
      return qvm_error_set(err, QVM_EINVAL, "ca file '%s' line %zu is malformed", ca->issued,
                           lineno);
    if (e.valid_before + FORGET_AFTER_S < now) continue;
    if ((r = issued_add(out, &e, err)) < 0) return r;
  }
  return 0;
}

static int issued_write(const qvm_cert_ca *ca, const issued_list *l, qvm_error **err) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  for (size_t i = 0; i < l->n; i++)
    qvm_strbuf_printf(&sb, "%" PRIu64 " %s %s %" PRId64 " %d\n", l->v[i].serial,
                      l->v[i].type == SSH_CERT_USER ? "user" : "host", l->v[i].vm,
                      l->v[i].valid_before, l->v[i].revoked);
  if (sb.oom) {
    qvm_strbuf_free(&sb);
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  }
  int r = qvm_write_file_atomic(ca->issued, sb.buf ? sb.buf : "", sb.len, 0600, err);
  qvm_strbuf_free(&sb);
  return r;
}

/* Rebuilds revoked.krl from the revoked user certificates in l. */
static int krl_write(const qvm_cert_ca *ca, const issued_list *l, qvm_error **err) {
  _cleanup_free_ uint64_t *serials = calloc(l->n ? l->n : 1, sizeof *serials);
  size_t n = 0;
  qvm_strbuf sb = QVM_STRBUF_INIT;
  if (!serials) return qvm_error_set(err, QVM_ESYS, "out of memory");
  for (size_t i = 0; i < l->n; i++)
    if (l->v[i].revoked && l->v[i].type == SSH_CERT_USER) serials[n++] = l->v[i].serial;
  int64_t now_us = qvm_realtime_us();
  int r = ssh_krl_build(&sb, ssh_key_public_bytes(ca->keys[0]), serials, n, (uint64_t)now_us,
                        (uint64_t)(now_us / 1000000), err);
  if (r >= 0) r = qvm_write_file_atomic(ca->krl, sb.buf, sb.len, 0644, err);
  qvm_strbuf_free(&sb);
  return r < 0 ? qvm_error_prefix(err, "cannot write krl '%s'", ca->krl) : 0;
}

/* ---- open ------------------------------------------------------------------ */

int qvm_cert_ca_open(qvm_cert_ca **out, const char *dir, qvm_error **err) {
  _cleanup_(qvm_cert_ca_freep) qvm_cert_ca *ca = calloc(1, sizeof *ca);
  _cleanup_close_ int lock = -1;
  struct stat st;
  if (!ca) return qvm_error_set(err, QVM_ESYS, "out of memory");
  int r = ca_paths(ca, dir, err);
  if (r >= 0) r = vm_private_dir(ca->dir, err);
  if (r >= 0) r = ca_lock(&lock, ca, err);
  for (int i = 0; r >= 0 && i < 3; i++) r = ca_key_load_or_create(ca, i, err);
  if (r >= 0 && lstat(ca->krl, &st) < 0) {
    issued_list l = {0};
    r = issued_read(&l, ca, time(NULL), err);
    if (r >= 0) r = krl_write(ca, &l, err);
    issued_clear(&l);
  }
  if (r < 0) return r;
  *out = TAKE_PTR(ca);
  return 0;
}

const char *qvm_cert_ca_public_line(const qvm_cert_ca *ca, qvm_cert_kind kind) {
  return qvm_ssh_key_public_line(ca->keys[kind == QVM_CERT_HOST ? 1 : 0]);
}

const char *qvm_cert_ca_krl_path(const qvm_cert_ca *ca) { return ca->krl; }

/* ---- issue ----------------------------------------------------------------- */

static int read_serial(uint64_t *out, const qvm_cert_ca *ca, qvm_error **err) {
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  *out = 0;
  int r = read_optional(&text, &len, ca->serial, 64, err);
  if (r <= 0) return r;
  if (len && text[len - 1] == '\n') text[--len] = 0;
  if (strlen(text) != len || !parse_u64(text, out) || *out >= UINT64_MAX - 1)
    return qvm_error_set(err, QVM_EINVAL,
                         "ca file '%s' is corrupt (not a serial number): fix it by hand with a "
                         "number above every serial issued",
                         ca->serial);
  return 0;
}

static int write_serial(const qvm_cert_ca *ca, uint64_t serial, qvm_error **err) {
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%" PRIu64 "\n", serial);
  return qvm_write_file_atomic(ca->serial, buf, (size_t)n, 0600, err);
}

static int actor_default(char **out, qvm_error **err) {
  struct passwd pw, *res = NULL;
  char buf[4096];
  if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) == 0 && res && *res->pw_name &&
      strlen(res->pw_name) <= MAX_ACTOR &&
      strspn(res->pw_name, ACTOR_CHARS) == strlen(res->pw_name))
    *out = strdup(res->pw_name);
  else if (asprintf(out, "uid%u", (unsigned)geteuid()) < 0)
    *out = NULL;
  return *out ? 0 : qvm_error_set(err, QVM_ESYS, "out of memory");
}

static int options_check(const qvm_cert_options *o, qvm_error **err) {
  int r = QVM_OPTIONS_CHECK(o, qvm_cert_options, QVM_CERT_OPTIONS_VERSION, err);
  if (r < 0) return r;
  if (!o || !o->public_line || !o->vm)
    return qvm_error_set(err, QVM_EINVAL, "a certificate needs a public key and a vm name");
  if (o->kind != QVM_CERT_USER && o->kind != QVM_CERT_HOST)
    return qvm_error_set(err, QVM_EINVAL, "certificate kind %d is unknown", (int)o->kind);
  if ((r = qvm_vm_name_check(o->vm, err)) < 0) return r;
  if (o->actor) {
    size_t n = strnlen(o->actor, MAX_ACTOR + 1);
    if (n == 0 || n > MAX_ACTOR || strspn(o->actor, ACTOR_CHARS) != n)
      return qvm_error_set(err, QVM_EINVAL,
                           "actor must be 1 to %d characters of letters, digits and ._@+-",
                           MAX_ACTOR);
  }
  if (o->ttl_ms <= 0)
    return qvm_error_set(err, QVM_EINVAL,
                         "certificate lifetime must be positive, not %" PRId64 " ms", o->ttl_ms);
  if (o->kind == QVM_CERT_USER && (!o->principals || !o->principals[0]))
    return qvm_error_set(err, QVM_EINVAL, "a user certificate needs a principal (the guest user)");
  return 0;
}

static int spec_init(ssh_cert_spec *spec, const qvm_cert_options *o, const unsigned char *ecdsa_q,
                     qvm_error **err) {
  int64_t now = o->now ? o->now : (int64_t)time(NULL);
  *spec = (ssh_cert_spec){.type = o->kind == QVM_CERT_HOST ? SSH_CERT_HOST : SSH_CERT_USER,
                          .principals = o->principals,
                          .source_address = o->source_address};
  int64_t ttl_s = o->ttl_ms / 1000 + (o->ttl_ms % 1000 != 0);
  if (now < SKEW_S || ttl_s > INT64_MAX - now)
    return qvm_error_set(err, QVM_EINVAL, "certificate validity is out of range");
  spec->valid_after = (uint64_t)(now - SKEW_S);
  spec->valid_before = (uint64_t)(now + ttl_s);
  if (o->principals)
    while (spec->n_principals <= SSH_CERT_MAX_PRINCIPALS && o->principals[spec->n_principals])
      spec->n_principals++;
  if (ecdsa_q) { /* a session certificate: valid from the epoch (vm/ca_guest.h) */
    spec->ecdsa_q = ecdsa_q;
    spec->valid_after = 0;
    return 0;
  }
  return ssh_ed25519_from_line(spec->key, o->public_line, err);
}

static int cert_render(qvm_cert **out, const ssh_cert_spec *spec, const unsigned char *blob,
                       size_t len, qvm_error **err) {
  _cleanup_(qvm_cert_freep) qvm_cert *cert = calloc(1, sizeof *cert);
  _cleanup_free_ char *b64 = ssh_base64(blob, len);
  if (!cert || !b64 || !(cert->key_id = strdup(spec->key_id)) ||
      asprintf(&cert->line, "%s %s %s",
               spec->ecdsa_q ? SSH_CERT_ECDSA_P256_TYPE : SSH_CERT_ED25519_TYPE, b64,
               spec->key_id) < 0)
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  cert->serial = spec->serial;
  cert->valid_after = (int64_t)spec->valid_after;
  cert->valid_before = (int64_t)spec->valid_before;
  *out = TAKE_PTR(cert);
  return 0;
}

/* Under the lock: the next serial, signed, persisted, recorded (a session
 * certificate, signed by key 2, is not: nothing ever revokes one). */
static int issue_locked(qvm_cert **out, qvm_cert_ca *ca, ssh_cert_spec *spec,
                        const qvm_cert_options *o, const char *actor, int signer_key,
                        qvm_error **err) {
  _cleanup_free_ char *key_id = NULL;
  _cleanup_free_ unsigned char *blob = NULL;
  issued_list l = {0};
  size_t len = 0;
  uint64_t last = 0;
  int r = read_serial(&last, ca, err);
  if (r < 0) return r;
  spec->serial = last + 1;
  if (asprintf(&key_id, "qvm:%s:%s:%" PRIu64, actor, o->vm, spec->serial) < 0)
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  spec->key_id = key_id;
  bool record = signer_key != 2;
  r = ssh_cert_sign(&blob, &len, spec, ssh_key_secret_bytes(ca->keys[signer_key]), err);
  if (r >= 0 && record) r = issued_read(&l, ca, (int64_t)time(NULL), err);
  issued_entry e = {
      .serial = spec->serial, .type = spec->type, .valid_before = (int64_t)spec->valid_before};
  snprintf(e.vm, sizeof e.vm, "%s", o->vm);
  if (r >= 0 && record) r = issued_add(&l, &e, err);
  /* The serial first: a crash after it wastes a number, never repeats one. */
  if (r >= 0) r = write_serial(ca, spec->serial, err);
  if (r >= 0 && record) r = issued_write(ca, &l, err);
  if (r >= 0) r = cert_render(out, spec, blob, len, err);
  spec->key_id = NULL;
  issued_clear(&l);
  return r;
}

/* ecdsa_q: a session certificate for that key (opts->public_line unused),
 * signed by the session CA. */
static int cert_issue(qvm_cert **out, qvm_cert_ca *ca, const qvm_cert_options *opts,
                      const unsigned char *ecdsa_q, qvm_error **err) {
  _cleanup_free_ char *actor = NULL;
  _cleanup_close_ int lock = -1;
  const char *host_principals[] = {opts ? opts->vm : NULL, NULL};
  qvm_cert_options o;
  ssh_cert_spec spec;
  int r = options_check(opts, err);
  if (r < 0) return r;
  o = *opts;
  if (o.kind == QVM_CERT_HOST && (!o.principals || !o.principals[0]))
    o.principals = host_principals;
  if ((r = spec_init(&spec, &o, ecdsa_q, err)) < 0) return r;
  if (!o.actor && (r = actor_default(&actor, err)) < 0) return r;
  /* Checked before a serial is spent: the key id gets the longest serial. */
  char probe[SSH_CERT_MAX_KEY_ID + 2];
  int n = snprintf(probe, sizeof probe, "qvm:%s:%s:%" PRIu64, o.actor ? o.actor : actor, o.vm,
                   UINT64_MAX);
  if (n < 0 || n > SSH_CERT_MAX_KEY_ID)
    return qvm_error_set(err, QVM_EINVAL, "certificate key id would be longer than %d characters",
                         SSH_CERT_MAX_KEY_ID);
  spec.key_id = probe;
  spec.serial = 1;
  if ((r = ssh_cert_spec_check(&spec, err)) < 0) return r;
  if ((r = ca_lock(&lock, ca, err)) < 0) return r;
  return issue_locked(out, ca, &spec, &o, o.actor ? o.actor : actor,
                      ecdsa_q                      ? 2
                      : spec.type == SSH_CERT_HOST ? 1
                                                   : 0,
                      err);
}

const char *qvm_cert_line(const qvm_cert *cert) { return cert->line; }
const char *qvm_cert_key_id(const qvm_cert *cert) { return cert->key_id; }
uint64_t qvm_cert_serial(const qvm_cert *cert) { return cert->serial; }
int64_t qvm_cert_valid_after(const qvm_cert *cert) { return cert->valid_after; }
int64_t qvm_cert_valid_before(const qvm_cert *cert) { return cert->valid_before; }

int qvm_cert_write(const qvm_cert *cert, const char *path, qvm_error **err) {
  _cleanup_free_ char *text = NULL;
  if (asprintf(&text, "%s\n", cert->line) < 0) return qvm_error_set(err, QVM_ESYS, "out of memory");
  int r = qvm_write_file_atomic(path, text, strlen(text), 0644, err);
  return r < 0 ? qvm_error_prefix(err, "cannot write certificate '%s'", path) : 0;
}

/* ---- revoke ---------------------------------------------------------------- */

static int revoke_mark(size_t *count, issued_list *l, const char *vm, uint64_t serial,
                       qvm_error **err) {
  bool found = false;
  for (size_t i = 0; i < l->n; i++) {
    issued_entry *e = &l->v[i];
    if (strcmp(e->vm, vm) || (serial && e->serial != serial)) continue;
    if (serial && e->type != SSH_CERT_USER)
      return qvm_error_set(err, QVM_EINVAL,
                           "serial %" PRIu64 " is a host certificate; the krl revokes user "
                           "certificates",
                           serial);
    if (e->type != SSH_CERT_USER) continue;
    found = true;
    if (!e->revoked) e->revoked = true, (*count)++;
  }
  if (serial && !found)
    return qvm_error_set(err, QVM_ENOTFOUND,
                         "no live certificate with serial %" PRIu64 " was issued for vm '%s'",
                         serial, vm);
  return 0;
}

static int cert_revoke(size_t *out_revoked, qvm_cert_ca *ca, const char *vm, uint64_t serial,
                       qvm_error **err) {
  _cleanup_close_ int lock = -1;
  issued_list l = {0};
  size_t count = 0;
  int r = qvm_vm_name_check(vm, err);
  if (r >= 0) r = ca_lock(&lock, ca, err);
  if (r >= 0) r = issued_read(&l, ca, (int64_t)time(NULL), err);
  if (r >= 0) r = revoke_mark(&count, &l, vm, serial, err);
  /* The record first: a KRL that failed to be written is rebuilt from it
   * by the next revoke (which always rewrites the KRL). */
  if (r >= 0) r = issued_write(ca, &l, err);
  if (r >= 0) r = krl_write(ca, &l, err);
  issued_clear(&l);
  if (r >= 0 && out_revoked) *out_revoked = count;
  return r;
}

/* The audit log's records (issue 14): every certificate handed out or revoked. */
static int issue_audited(qvm_cert **out, qvm_cert_ca *ca, const qvm_cert_options *opts,
                         const unsigned char *ecdsa_q, qvm_error **err) {
  int r = cert_issue(out, ca, opts, ecdsa_q, err);
  struct json_object *d = json_object_new_object();
  if (r >= 0) {
    json_object_object_add(d, "kind",
                           json_object_new_string(ecdsa_q                       ? "session"
                                                  : opts->kind == QVM_CERT_HOST ? "host"
                                                                                : "user"));
    json_object_object_add(d, "serial", json_object_new_uint64((*out)->serial));
    json_object_object_add(d, "key_id", vm_audit_string((*out)->key_id, 256, NULL));
    json_object_object_add(d, "valid_after", json_object_new_int64((*out)->valid_after));
    json_object_object_add(d, "valid_before", json_object_new_int64((*out)->valid_before));
  }
  vm_audit_note(opts && opts->vm ? opts->vm : NULL, "cert-issue", r, (const qvm_error *const *)err,
                d);
  return r;
}

int qvm_cert_issue(qvm_cert **out, qvm_cert_ca *ca, const qvm_cert_options *opts, qvm_error **err) {
  return issue_audited(out, ca, opts, NULL, err);
}

int vm_ca_session_issue(char **out_line, qvm_cert_ca *ca, const unsigned char *ecdsa_q,
                        const char *vm, const char *principal_vm, const char *source_address,
                        int64_t ttl_s, qvm_error **err) {
  char principal[SSH_CERT_MAX_PRINCIPAL + 1];
  int n = snprintf(principal, sizeof principal, VM_SESSION_PRINCIPAL_PREFIX "%s", principal_vm);
  if (n < 0 || (size_t)n >= sizeof principal || ttl_s <= 0 || ttl_s > 24 * 3600)
    return qvm_error_set(err, QVM_EINVAL, "session certificate: bad principal or lifetime");
  const char *principals[] = {principal, NULL};
  qvm_cert_options o = QVM_CERT_OPTIONS_INIT;
  o.public_line = "";
  o.vm = vm;
  o.principals = principals;
  o.source_address = source_address;
  o.ttl_ms = ttl_s * 1000;
  /* The key id names the agent the login is for, when its id fits there
   * (no ':'); else the Unix user, as for qvm cert issue. */
  const char *agent = vm_audit_current_agent();
  if (agent && strlen(agent) <= MAX_ACTOR && strspn(agent, ACTOR_CHARS) == strlen(agent))
    o.actor = agent;
  qvm_cert *cert = NULL;
  int r = issue_audited(&cert, ca, &o, ecdsa_q, err);
  if (r >= 0 && !(*out_line = strdup(cert->line)))
    r = qvm_error_set(err, QVM_ESYS, "out of memory");
  qvm_cert_free(cert);
  return r;
}

const char *vm_ca_session_public_line(const qvm_cert_ca *ca) {
  return qvm_ssh_key_public_line(ca->keys[2]);
}

int qvm_cert_revoke(size_t *out_revoked, qvm_cert_ca *ca, const char *vm, uint64_t serial,
                    qvm_error **err) {
  size_t n = 0;
  int r = cert_revoke(&n, ca, vm, serial, err);
  if (r >= 0 && out_revoked) *out_revoked = n;
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "serial", serial ? json_object_new_uint64(serial) : NULL);
  json_object_object_add(d, "all", json_object_new_boolean(serial == 0));
  if (r >= 0) json_object_object_add(d, "revoked", json_object_new_uint64(n));
  vm_audit_note(vm, "cert-revoke", r, (const qvm_error *const *)err, d);
  return r;
}
