/* SPDX-License-Identifier: MIT */
/*
 * The audit log's writer: STATE/audit/audit.jsonl (include/qvm/audit.h,
 * docs/cli.md "qvm audit"). Each append locks the log (flock), reads the last record
 * for its seq and line hash, and writes the new line with one write(2).
 */
#include "vm/audit.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "util/cleanup.h"
#include "util/time.h"
#include "vm/audit_log.h"
#include "vm/state.h"
#include <qvm/audit.h>
#include <qvm/vm.h>

void vm_audit_sha256_hex(char out[65], const void *bytes, size_t len) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, bytes, len);
  sodium_bin2hex(out, 65, h, sizeof h);
}

int audit_log_path(char **out, bool prepare, qvm_error **err) {
  _cleanup_free_ char *root = NULL, *dir = NULL;
  int r = vm_state_root(&root, err);
  if (r < 0) return r;
  if (asprintf(&dir, "%s/audit", root) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if (prepare && ((r = vm_private_dir(root, err)) < 0 || (r = vm_private_dir(dir, err)) < 0))
    return r;
  if (asprintf(out, "%s/audit.jsonl", dir) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

int qvm_audit_path(char **out, qvm_error **err) { return audit_log_path(out, false, err); }

/* ---- strings ---------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs,
 * surrogates or code points past U+10FFFF), 0 if there is none. */
static size_t utf8_seq(const unsigned char *p, size_t left) {
  unsigned char b = p[0], lo = 0x80, hi = 0xbf;
  size_t n;
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf)
    n = 2;
  else if (b >= 0xe0 && b <= 0xef)
    n = 3, lo = b == 0xe0 ? 0xa0 : 0x80, hi = b == 0xed ? 0x9f : 0xbf;
  else if (b >= 0xf0 && b <= 0xf4)
    n = 4, lo = b == 0xf0 ? 0x90 : 0x80, hi = b == 0xf4 ? 0x8f : 0xbf;
  else
    return 0;
  if (left < n || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if (p[i] < 0x80 || p[i] > 0xbf) return 0;
  return n;
}

struct json_object *vm_audit_string(const char *s, size_t max, bool *cut) {
  if (!s) return NULL;
  const unsigned char *p = (const unsigned char *)s;
  size_t len = strlen(s), o = 0;
  char *out = malloc(max + 1);
  if (!out) return json_object_new_string("");
  for (size_t i = 0; i < len;) {
    size_t n = utf8_seq(p + i, len - i);
    const char *src = n ? s + i : "\xef\xbf\xbd"; /* U+FFFD */
    size_t w = n ? n : 3;
    if (o + w > max) {
      if (cut) *cut = true;
      break;
    }
    memcpy(out + o, src, w);
    o += w;
    i += n ? n : 1;
  }
  struct json_object *j = json_object_new_string_len(out, (int)o);
  free(out);
  return j;
}

/* All argv words together, before JSON escaping (which can make a byte six):
 * 64 words of 1024 bytes escaped could pass the record's limit, and a
 * record that is refused would leave the command unlogged. */
#define VM_AUDIT_ARGV_BUDGET (24u << 10)

void vm_audit_add_argv(struct json_object *details, const char *const *argv) {
  struct json_object *a = json_object_new_array();
  bool cut = false;
  size_t n = 0, budget = VM_AUDIT_ARGV_BUDGET;
  crypto_hash_sha256_state h;
  crypto_hash_sha256_init(&h);
  for (; argv && argv[n]; n++) {
    size_t len = strlen(argv[n]);
    crypto_hash_sha256_update(&h, (const unsigned char *)argv[n],
                              len + 1); /* with its NUL: words stay apart */
    size_t max = budget < VM_AUDIT_ARG_MAX ? budget : VM_AUDIT_ARG_MAX;
    if (n < VM_AUDIT_ARGS_MAX && (max > 0 || len == 0)) {
      struct json_object *w = vm_audit_string(argv[n], max, &cut);
      budget -= (size_t)json_object_get_string_len(w);
      json_object_array_add(a, w);
    } else {
      cut = true;
    }
  }
  unsigned char md[crypto_hash_sha256_BYTES];
  char hex[65];
  crypto_hash_sha256_final(&h, md);
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  json_object_object_add(details, "argv", a);
  json_object_object_add(details, "argc", json_object_new_int64((int64_t)n));
  /* The whole argv, however much of it is shown: sha256 of its words, each
   * with its NUL. */
  json_object_object_add(details, "argv_sha256", json_object_new_string(hex));
  if (cut) json_object_object_add(details, "argv_truncated", json_object_new_boolean(true));
}

bool qvm_audit_agent_valid(const char *agent) {
  if (!agent || !isalnum((unsigned char)agent[0])) return false;
  size_t n = strlen(agent);
  return n <= QVM_AUDIT_AGENT_MAX &&
         strspn(agent, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                       "0123456789._@:+=-") == n;
}

static bool action_valid(const char *a) {
  size_t n = a ? strlen(a) : 0;
  return n >= 1 && n <= 32 && a[0] >= 'a' && a[0] <= 'z' &&
         strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* ---- the record --------------------------------------------------------------- */

static _Thread_local char thread_agent[QVM_AUDIT_AGENT_MAX + 1];

int qvm_audit_set_thread_agent(const char *agent, qvm_error **err) {
  if (!agent) {
    thread_agent[0] = '\0';
    return 0;
  }
  if (!qvm_audit_agent_valid(agent))
    return qvm_error_set(err, QVM_EINVAL,
                         "an agent id must be 1 to %d bytes of [A-Za-z0-9._@:+=-], starting with "
                         "a letter or digit",
                         QVM_AUDIT_AGENT_MAX);
  snprintf(thread_agent, sizeof thread_agent, "%s", agent);
  return 0;
}

static _Thread_local int64_t thread_peer = -1;

void qvm_audit_set_thread_peer(int64_t uid) { thread_peer = uid < 0 ? -1 : uid; }

const char *vm_audit_current_agent(void) {
  const char *agent = thread_agent[0] ? thread_agent : getenv("QVM_AGENT");
  return agent && qvm_audit_agent_valid(agent) ? agent : NULL;
}

/* {"uid":U,"user":NAME|null} into a. */
static void add_user(struct json_object *a, uid_t uid) {
  json_object_object_add(a, "uid", json_object_new_int64((int64_t)uid));
  struct passwd pw, *res = NULL;
  char buf[4096];
  bool named = getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res;
  json_object_object_add(a, "user", named ? vm_audit_string(pw.pw_name, 256, NULL) : NULL);
}

static struct json_object *actor_json(void) {
  struct json_object *a = json_object_new_object();
  add_user(a, getuid());
  /* The caller's own claim, bounded and escaped; qvm --agent checks it. */
  const char *agent = thread_agent[0] ? thread_agent : getenv("QVM_AGENT");
  if (agent && agent[0])
    json_object_object_add(a, "agent", vm_audit_string(agent, QVM_AUDIT_AGENT_MAX, NULL));
  if (thread_peer >= 0) {
    struct json_object *peer = json_object_new_object();
    add_user(peer, (uid_t)thread_peer);
    json_object_object_add(a, "peer", peer);
  }
  return a;
}

static void time_ms(char out[32]) {
  int64_t us = qvm_realtime_us();
  time_t secs = (time_t)(us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03dZ", (int)(us / 1000 % 1000));
}

/* The line for seq after prev, with its own hash appended. */
static int record_line(char **out, size_t *out_len, uint64_t seq, const char *prev, const char *vm,
                       const char *action, struct json_object *details, qvm_error **err) {
  char when[32];
  time_ms(when);
  struct json_object *rec = json_object_new_object();
  json_object_object_add(rec, "seq", json_object_new_int64((int64_t)seq));
  json_object_object_add(rec, "time", json_object_new_string(when));
  json_object_object_add(rec, "actor", actor_json());
  json_object_object_add(rec, "vm", vm_audit_string(vm, 64, NULL));
  json_object_object_add(rec, "action", json_object_new_string(action));
  json_object_object_add(rec, "details", json_object_get(details));
  json_object_object_add(rec, "prev", json_object_new_string(prev));
  size_t len = 0;
  const char *text = json_object_to_json_string_length(
      rec, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  int r = 0;
  if (!text || len < 2 || text[len - 1] != '}')
    r = qvm_error_set_errno(err, ENOMEM, "cannot format an audit record");
  else if (len + AUDIT_HASH_SUFFIX_LEN + 1 > QVM_AUDIT_LINE_MAX)
    r = qvm_error_set(err, QVM_EINVAL, "audit record of %zu bytes is too large", len);
  char hash[65];
  if (r >= 0) {
    vm_audit_sha256_hex(hash, text, len - 1);
    if (asprintf(out, "%.*s,\"hash\":\"%s\"}\n", (int)(len - 1), text, hash) < 0)
      r = qvm_error_set_errno(err, ENOMEM, "out of memory");
    else
      *out_len = len - 1 + AUDIT_HASH_SUFFIX_LEN + 1;
  }
  json_object_put(rec);
  return r;
}

/* The last `want` bytes of the log into *buf (the caller frees). */
static int read_end(char **buf, size_t want, int fd, off_t size, const char *path,
                    qvm_error **err) {
  char *b = realloc(*buf, want);
  if (!b) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  *buf = b;
  ssize_t n = pread(fd, b, want, size - (off_t)want);
  if (n != (ssize_t)want)
    return qvm_error_set_errno(err, n < 0 ? errno : EIO, "cannot read '%s'", path);
  return 0;
}

/* seq and line hash of the last record (0 and zeros for an empty log). The
 * end is read 4 KiB first, more only for a longer last line. */
static int log_tail(uint64_t *seq, char prev[65], int fd, off_t size, const char *path,
                    qvm_error **err) {
  *seq = 0;
  memset(prev, '0', 64);
  prev[64] = '\0';
  if (size == 0) return 0;
  _cleanup_free_ char *buf = NULL;
  size_t max = (uint64_t)size < QVM_AUDIT_LINE_MAX + 1 ? (size_t)size : QVM_AUDIT_LINE_MAX + 1;
  size_t want = max < 4096 ? max : 4096, start = 0;
  for (;; want = want * 4 < max ? want * 4 : max) {
    int r = read_end(&buf, want, fd, size, path, err);
    if (r < 0) return r;
    if (buf[want - 1] != '\n')
      return qvm_error_set(err, QVM_EPROTO, "audit log '%s' ends in a cut-short record", path);
    for (start = want - 1; start > 0 && buf[start - 1] != '\n';) start--;
    if (start > 0 || want == (size_t)size) break; /* a whole line, or the whole file */
    if (want == max)
      return qvm_error_set(err, QVM_EPROTO, "the last record of audit log '%s' is too long", path);
  }
  uint64_t s = 0;
  if (audit_line_seq(&s, buf + start, want - 1 - start) < 0)
    return qvm_error_set(err, QVM_EPROTO, "the last record of audit log '%s' is damaged", path);
  *seq = s;
  vm_audit_sha256_hex(prev, buf + start, want - 1 - start);
  return 0;
}

static int log_open(int *out, const char *path, qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0)
    return qvm_error_set_errno(err, errno, "cannot open audit log '%s'", path);
  if (!S_ISREG(st.st_mode) || st.st_uid != geteuid())
    return qvm_error_set(err, QVM_EINVAL, "audit log '%s' is not a regular file of yours", path);
  if ((st.st_mode & 077) && fchmod(fd, 0600) < 0)
    return qvm_error_set_errno(err, errno, "cannot make audit log '%s' private (0600)", path);
  while (flock(fd, LOCK_EX) < 0)
    if (errno != EINTR) return qvm_error_set_errno(err, errno, "cannot lock audit log '%s'", path);
  *out = TAKE_FD(fd);
  return 0;
}

/* One write(2); a short one (a full disk) is cut off again, so that no
 * partial line stays to break the chain. */
static int log_write(int fd, off_t size, const char *line, size_t len, const char *path,
                     qvm_error **err) {
  ssize_t n;
  do n = write(fd, line, len);
  while (n < 0 && errno == EINTR);
  if (n == (ssize_t)len) {
    if (fdatasync(fd) < 0)
      return qvm_error_set_errno(err, errno, "cannot sync audit log '%s'", path);
    return 0;
  }
  int e = n < 0 ? errno : ENOSPC;
  if (n > 0 && ftruncate(fd, size) < 0) {
  }
  return qvm_error_set_errno(err, e, "cannot append to audit log '%s'", path);
}

int vm_audit_append(const char *vm, const char *action, struct json_object *details,
                    qvm_error **err) {
  _cleanup_free_ char *path = NULL, *line = NULL;
  _cleanup_close_ int fd = -1;
  if (!details) details = json_object_new_object();
  int r = audit_log_path(&path, true, err);
  if (r >= 0) r = log_open(&fd, path, err);
  struct stat st;
  if (r >= 0 && fstat(fd, &st) < 0) r = qvm_error_set_errno(err, errno, "cannot stat '%s'", path);
  uint64_t seq = 0;
  char prev[65];
  size_t len = 0;
  if (r >= 0) r = log_tail(&seq, prev, fd, st.st_size, path, err);
  if (r >= 0) r = record_line(&line, &len, seq + 1, prev, vm, action, details, err);
  if (r >= 0) r = log_write(fd, st.st_size, line, len, path, err);
  json_object_put(details);
  return r; /* closing fd releases the lock */
}

void vm_audit_note(const char *vm, const char *action, int r, const qvm_error *const *err,
                   struct json_object *details) {
  if (!details) details = json_object_new_object();
  if (r < 0) {
    json_object_object_add(details, "error", json_object_new_string(qvm_error_code_name(r)));
    if (err && *err)
      json_object_object_add(details, "message",
                             vm_audit_string(qvm_error_message(*err), VM_AUDIT_PATH_MAX, NULL));
  }
  vm_audit_append(vm, action, details, NULL);
}

void vm_audit_snapshot(const char *vm, const char *what, const char *snapshot, int r,
                       const qvm_error *const *err) {
  const char *action = !strcmp(what, "snapshot create")    ? "snapshot-create"
                       : !strcmp(what, "snapshot restore") ? "snapshot-restore"
                                                           : "snapshot-rm";
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "snapshot", vm_audit_string(snapshot, VM_AUDIT_ARG_MAX, NULL));
  vm_audit_note(vm, action, r, err, d);
}

int qvm_audit_append(const char *vm, const char *action, const char *details_json,
                     qvm_error **err) {
  if (vm && !qvm_vm_name_valid(vm)) return qvm_error_set(err, QVM_EINVAL, "vm name is invalid");
  if (!action_valid(action))
    return qvm_error_set(err, QVM_EINVAL, "audit action is invalid: use [a-z][a-z0-9-]{0,31}");
  struct json_object *details = NULL;
  if (details_json) {
    size_t len = strnlen(details_json, QVM_AUDIT_DETAILS_MAX + 1);
    if (len > QVM_AUDIT_DETAILS_MAX)
      return qvm_error_set(err, QVM_EINVAL, "audit details are longer than %u bytes",
                           QVM_AUDIT_DETAILS_MAX);
    if (audit_parse_object(&details, details_json, len) < 0)
      return qvm_error_set(err, QVM_EINVAL, "audit details are not one JSON object");
  }
  return vm_audit_append(vm, action, details, err);
}
