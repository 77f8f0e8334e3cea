/* SPDX-License-Identifier: MIT */
/*
 * Reading the audit log: qvm_audit_verify walks the chain, qvm_audit_list
 * filters the records. The log is read a bounded line at a time.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "util/cleanup.h"
#include "util/strbuf.h"
#include "vm/audit.h"
#include "vm/audit_log.h"
#include <qvm/audit.h>

int audit_parse_object(struct json_object **out, const char *text, size_t len) {
  struct json_tokener *tok = json_tokener_new_ex(32);
  if (!tok) return -1;
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  struct json_object *o = len <= INT32_MAX ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
  bool whole = o && json_tokener_get_error(tok) == json_tokener_success &&
               json_tokener_get_parse_end(tok) == len;
  json_tokener_free(tok);
  if (!whole || !json_object_is_type(o, json_type_object)) {
    json_object_put(o);
    return -1;
  }
  *out = o;
  return 0;
}

static bool record_seq(uint64_t *out, struct json_object *rec) {
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(rec, "seq", &v) || !json_object_is_type(v, json_type_int))
    return false;
  int64_t s = json_object_get_int64(v);
  if (s < 1) return false;
  *out = (uint64_t)s;
  return true;
}

int audit_line_seq(uint64_t *out, const char *line, size_t len) {
  struct json_object *rec = NULL;
  if (audit_parse_object(&rec, line, len) < 0) return -1;
  bool ok = record_seq(out, rec);
  json_object_put(rec);
  return ok ? 0 : -1;
}

/* ---- a bounded line reader ------------------------------------------------------ */

typedef struct line_reader {
  FILE *f;
  qvm_strbuf sb;
  uint64_t number; /* 1-based, of the line just read */
  bool newline;    /* it ended with '\n' */
  bool too_long;   /* it was longer than QVM_AUDIT_LINE_MAX (the rest skipped) */
} line_reader;

/* 1: a line in sb; 0: end of file. */
static int next_line(line_reader *lr) {
  qvm_strbuf_reset(&lr->sb);
  lr->newline = lr->too_long = false;
  int c;
  size_t n = 0;
  while ((c = getc_unlocked(lr->f)) != EOF) {
    if (c == '\n') {
      lr->newline = true;
      break;
    }
    if (++n > QVM_AUDIT_LINE_MAX)
      lr->too_long = true;
    else
      qvm_strbuf_putc(&lr->sb, (char)c);
  }
  if (c == EOF && n == 0) return 0;
  lr->number++;
  return 1;
}

static int log_open_read(FILE **out, const char *path, qvm_error **err) {
  FILE *f = fopen(path, "re");
  if (!f) {
    if (errno == ENOENT) return *out = NULL, 0;
    return qvm_error_set_errno(err, errno, "cannot open audit log '%s'", path);
  }
  struct stat st;
  if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return qvm_error_set(err, QVM_EINVAL, "audit log '%s' is not a regular file", path);
  }
  /* Shared: an append in progress (under the writers' exclusive lock) is
   * not read half-written. Held until fclose. Without it (a lock that
   * cannot be had) the read goes on: a reader must not be shut out. */
  while (flock(fileno(f), LOCK_SH) < 0 && errno == EINTR) {
  }
  *out = f;
  return 0;
}

/* ---- verify ----------------------------------------------------------------------- */

static bool is_hex64(const char *s) {
  return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* NULL when the line is good, else why not (into why). */
static const char *check_line(char *why, size_t size, const line_reader *lr, uint64_t want_seq,
                              const char *prev) {
  const char *line = lr->sb.buf ? lr->sb.buf : "";
  size_t len = lr->sb.len;
  if (lr->too_long)
    return snprintf(why, size, "unparsable: longer than %u bytes", QVM_AUDIT_LINE_MAX), why;
  if (!lr->newline) return "unparsable: cut short (no newline at its end)";
  struct json_object *rec = NULL, *v = NULL;
  if (audit_parse_object(&rec, line, len) < 0) return "unparsable: not one JSON object";
  uint64_t seq = 0;
  const char *p = NULL;
  if (json_object_object_get_ex(rec, "prev", &v) && json_object_is_type(v, json_type_string))
    p = json_object_get_string(v);
  if (!record_seq(&seq, rec))
    snprintf(why, size, "unparsable: no seq");
  else if (!p || !is_hex64(p))
    snprintf(why, size, "unparsable: no prev hash");
  else if (seq != want_seq)
    snprintf(why, size, "seq gap: expected %" PRIu64 ", found %" PRIu64 " (a record is missing)",
             want_seq, seq);
  else if (strcmp(p, prev))
    snprintf(why, size,
             "prev does not match the hash of the line before (a line was edited, "
             "removed or added)");
  else
    why[0] = '\0';
  json_object_put(rec);
  if (why[0]) return why;
  /* the line's own hash, over its bytes before `,"hash":"` */
  if (len < AUDIT_HASH_SUFFIX_LEN ||
      strncmp(line + len - AUDIT_HASH_SUFFIX_LEN, ",\"hash\":\"", 9) ||
      strcmp(line + len - 2, "\"}"))
    return "unparsable: no hash at its end";
  char own[65], given[65];
  memcpy(given, line + len - AUDIT_HASH_SUFFIX_LEN + 9, 64);
  given[64] = '\0';
  vm_audit_sha256_hex(own, line, len - AUDIT_HASH_SUFFIX_LEN);
  if (!is_hex64(given)) return "unparsable: no hash at its end";
  if (strcmp(own, given)) return "hash mismatch: the record was edited";
  return NULL;
}

int qvm_audit_verify(qvm_audit_verify_result *out, const char *known_head, qvm_error **err) {
  qvm_audit_verify_result res = {0};
  _cleanup_free_ char *path = NULL;
  _cleanup_fclose_ FILE *f = NULL;
  if (known_head && !is_hex64(known_head))
    return qvm_error_set(err, QVM_EINVAL, "a head is 64 lowercase hex digits");
  int r = audit_log_path(&path, false, err);
  if (r >= 0) r = log_open_read(&f, path, err);
  if (r < 0) return r;
  char prev[65];
  memset(prev, '0', 64);
  prev[64] = '\0';
  line_reader lr = {.f = f};
  while (f && next_line(&lr) > 0) {
    const char *why = check_line(res.reason, sizeof res.reason, &lr, res.records + 1, prev);
    if (why) {
      if (why != res.reason) snprintf(res.reason, sizeof res.reason, "%s", why);
      res.bad_line = lr.number;
      break;
    }
    vm_audit_sha256_hex(prev, lr.sb.buf, lr.sb.len);
    snprintf(res.head, sizeof res.head, "%s", prev);
    res.records++;
    if (known_head && !res.known_head_line && !strcmp(prev, known_head))
      res.known_head_line = lr.number;
  }
  bool failed = f && ferror(f);
  qvm_strbuf_free(&lr.sb);
  if (failed) return qvm_error_set_errno(err, EIO, "cannot read audit log '%s'", path);
  *out = res;
  return 0;
}

/* ---- list ------------------------------------------------------------------------- */

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" as realtime µs; -1 if it is not that. */
static int64_t record_time_us(struct json_object *rec) {
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(rec, "time", &v) || !json_object_is_type(v, json_type_string))
    return -1;
  struct tm tm = {0};
  int ms = 0, n = 0;
  if (sscanf(json_object_get_string(v), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon,
             &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 ||
      n != 24)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000000 + ms * 1000;
}

static bool string_member_is(struct json_object *o, const char *key, const char *want) {
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) &&
         !strcmp(json_object_get_string(v), want);
}

static bool record_matches(struct json_object *rec, const qvm_audit_filter *f) {
  struct json_object *actor = NULL;
  if (f->vm && !string_member_is(rec, "vm", f->vm)) return false;
  if (f->agent && !(json_object_object_get_ex(rec, "actor", &actor) &&
                    string_member_is(actor, "agent", f->agent)))
    return false;
  return !f->since_us || record_time_us(rec) >= f->since_us;
}

int qvm_audit_list(char **out_json, const qvm_audit_filter *filter, qvm_error **err) {
  qvm_audit_filter all = QVM_AUDIT_FILTER_INIT;
  int r = QVM_OPTIONS_CHECK(filter, qvm_audit_filter, QVM_AUDIT_FILTER_VERSION, err);
  if (r < 0) return r;
  if (!filter) filter = &all;
  _cleanup_free_ char *path = NULL;
  _cleanup_fclose_ FILE *f = NULL;
  if ((r = audit_log_path(&path, false, err)) < 0 || (r = log_open_read(&f, path, err)) < 0)
    return r;
  struct json_object *a = json_object_new_array();
  line_reader lr = {.f = f};
  while (f && next_line(&lr) > 0) {
    struct json_object *rec = NULL;
    if (lr.too_long || !lr.newline ||
        audit_parse_object(&rec, lr.sb.buf ? lr.sb.buf : "", lr.sb.len) < 0)
      continue;
    if (record_matches(rec, filter))
      json_object_array_add(a, rec);
    else
      json_object_put(rec);
  }
  qvm_strbuf_free(&lr.sb);
  const char *text =
      json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  char *copy = text ? strdup(text) : NULL;
  json_object_put(a);
  if (!copy) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  *out_json = copy;
  return 0;
}
