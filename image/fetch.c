/* SPDX-License-Identifier: MIT */
#include "image/fetch.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <qvm/text.h>

#include "image/fetch_worker.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"

#define USER_AGENT "qvm/" QVM_VERSION
#define MAX_REDIRS 10L
#define BACKOFF_CAP_MS 30000
#define PROGRESS_EVERY_MS 100
#define DEFAULT_MAX_CONTENT (1ull << 40)

/* phases are compared by address */
static const char PHASE_CONNECT[] = "connect";
static const char PHASE_DOWNLOAD[] = "download";
static const char PHASE_DECOMPRESS[] = "decompress";
static const char PHASE_RETRY[] = "retry";

/* ---- shared helpers ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static int curl_ready(qvm_error **err) {
  pthread_once(&curl_once, curl_init);
  if (curl_init_rc != CURLE_OK)
    return qvm_error_set(err, QVM_EUNAVAIL, "cannot initialize libcurl: %s",
                         curl_easy_strerror(curl_init_rc));
  return 0;
}

static void curl_easy_cleanupp(CURL **c) {
  if (*c) curl_easy_cleanup(*c);
}

/* A URL for a message: neutralized, without user:password@. */
static char *url_shown(const char *url) {
  if (!url) return strdup("?");
  const char *auth = strstr(url, "://");
  const char *at = NULL;
  if (auth) {
    auth += 3;
    size_t hostlen = strcspn(auth, "/?#");
    /* the last '@': a password may hold an unencoded one */
    const char *a = memrchr(auth, '@', hostlen);
    if (a) at = a + 1;
  }
  qvm_strbuf sb = QVM_STRBUF_INIT;
  if (at) {
    qvm_strbuf_append(&sb, url, (size_t)(auth - url));
    qvm_strbuf_puts(&sb, at);
  } else {
    qvm_strbuf_puts(&sb, url);
  }
  _cleanup_free_ char *plain = qvm_strbuf_steal(&sb);
  return plain ? qvm_text_for_terminal(plain, strnlen(plain, 2048), 0) : NULL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n); NULL when it decodes to a NUL or a '/' (never a
 * file name) or memory runs out. Malformed escapes stay as they are. */
static char *percent_decode(const char *s, size_t n) {
  char *out = malloc(n + 1);
  if (!out) return NULL;
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0) {
      char c = (char)(hi * 16 + lo);
      if (c == '\0' || c == '/') {
        free(out);
        return NULL;
      }
      out[j++] = c;
      i += 2;
    } else {
      out[j++] = s[i];
    }
  }
  out[j] = '\0';
  return out;
}

char *img_url_filename(const char *url) {
  if (!url) return NULL;
  size_t end = strcspn(url, "?#");
  const char *path = url;
  const char *scheme = strstr(url, "://");
  if (scheme && (size_t)(scheme - url) < end) {
    path = scheme + 3;
    path += strcspn(path, "/?#"); /* skip the authority */
  }
  const char *stop = url + end;
  if (path >= stop) return NULL;
  const char *last = path;
  for (const char *p = path; p < stop; p++)
    if (*p == '/') last = p + 1;
  if (last >= stop) return NULL;
  char *name = percent_decode(last, (size_t)(stop - last));
  if (name && (!*name || !strcmp(name, ".") || !strcmp(name, ".."))) {
    free(name);
    return NULL;
  }
  return name;
}

/* file:///abs or file://localhost/abs → the local path (percent-decoded);
 * an absolute path stays itself; anything else: NULL in *out. */
static int local_source(char **out, const char *source, qvm_error **err) {
  *out = NULL;
  if (source[0] == '/') {
    *out = strdup(source);
    return *out ? 0 : qvm_error_set_errno(err, ENOMEM, "cannot read '%s'", source);
  }
  if (strncasecmp(source, "file://", 7)) return 0;
  const char *p = source + 7;
  if (!strncasecmp(p, "localhost/", 10)) p += 9;
  if (*p != '/' || p[strcspn(p, "?#")] != '\0')
    return qvm_error_set(err, QVM_EINVAL, "file url '%s' is not a local absolute path", source);
  size_t n = strlen(p);
  char *path = malloc(n + 1);
  if (!path) return qvm_error_set_errno(err, ENOMEM, "cannot read '%s'", source);
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (p[i] == '%' && i + 2 < n && (hi = hexval(p[i + 1])) >= 0 && (lo = hexval(p[i + 2])) >= 0) {
      path[j++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      path[j++] = p[i];
    }
  }
  path[j] = '\0';
  if (strlen(path) != j) {
    free(path);
    return qvm_error_set(err, QVM_EINVAL, "file url '%s' holds a NUL byte", source);
  }
  *out = path;
  return 0;
}

static bool is_http(const char *source) {
  return !strncasecmp(source, "http://", 7) || !strncasecmp(source, "https://", 8);
}

/* The options every transfer shares (img_fetch and img_fetch_small). */
static int curl_common(CURL *c, const char *url, int connect_timeout_ms, qvm_error **err) {
  CURLcode r = CURLE_OK;
#define SET(opt, val)                                                                              \
  if (r == CURLE_OK) r = curl_easy_setopt(c, opt, val)
  SET(CURLOPT_URL, url);
  /* the first URL is http(s): file:// and paths are read without curl */
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_FOLLOWLOCATION, 1L);
  SET(CURLOPT_MAXREDIRS, MAX_REDIRS);
  SET(CURLOPT_FAILONERROR, 0L);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_CONNECTTIMEOUT_MS, (long)connect_timeout_ms);
  SET(CURLOPT_USERAGENT, USER_AGENT);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  SET(CURLOPT_ACCEPT_ENCODING, NULL); /* the bytes as stored, never a transfer encoding */
#undef SET
  if (r != CURLE_OK)
    return qvm_error_set(err, QVM_EUNAVAIL, "libcurl refuses an option: %s", curl_easy_strerror(r));
  return 0;
}

/* ---- img_fetch ---- */

typedef enum { RESP_NONE, RESP_ACCEPT, RESP_DISCARD, RESP_REDO, RESP_FAIL } resp_kind;

typedef struct fetch {
  const img_fetch_opts *o;
  img_fetch_result *res;
  char *shown; /* the source for messages */
  int part_fd;
  int part_rd;
  uint64_t part_size;   /* bytes in the part file */
  uint64_t flushed;     /* bytes of it whose write-back was started */
  uint64_t total;       /* of the download, 0: unknown */
  uint64_t cap;         /* the download's size limit */
  uint64_t max_content; /* effective */
  fetch_worker w;
  CURL *curl;
  /* this attempt */
  long status;
  char content_range[128];
  resp_kind resp;
  bool complete; /* a 416 said the part is whole */
  bool stalled;
  int64_t last_byte_ms;
  int fail_rc; /* a final failure found in a callback */
  qvm_error *fail_err;
  bool cancel; /* opts->cancelled said so */
  /* progress */
  unsigned attempt;
  const char *phase;
  int64_t last_progress_ms, rate_ms;
  uint64_t rate_done, rate;
} fetch;

static void progress_emit(fetch *f, const char *phase, const char *note, bool force) {
  int64_t now = qvm_now_ms();
  uint64_t done = f->part_size;
  if (f->rate_ms == 0) {
    f->rate_ms = now;
    f->rate_done = done;
  } else if (now - f->rate_ms >= 200 || done < f->rate_done) {
    int64_t dt = now - f->rate_ms;
    uint64_t inst = done >= f->rate_done ? (done - f->rate_done) * 1000 / (uint64_t)dt : 0;
    double k = dt >= 2000 ? 1.0 : (double)dt / 2000.0;
    f->rate = f->rate ? (uint64_t)((double)f->rate + ((double)inst - (double)f->rate) * k) : inst;
    f->rate_ms = now;
    f->rate_done = done;
  }
  bool change = phase != f->phase;
  f->phase = phase;
  if (!f->o->progress || (!change && !force && now - f->last_progress_ms < PROGRESS_EVERY_MS))
    return;
  f->last_progress_ms = now;
  img_progress p = {.phase = phase,
                    .done = done,
                    .total = f->total,
                    .rate = f->rate,
                    .eta_ms = -1,
                    .attempt = f->attempt,
                    .note = note};
  if (f->total > done && f->rate > 0) p.eta_ms = (int64_t)((f->total - done) * 1000 / f->rate);
  f->o->progress(&p, f->o->userdata);
}

static bool cancel_asked(fetch *f) {
  if (!f->cancel && f->o->cancelled && f->o->cancelled(f->o->cancel_userdata)) f->cancel = true;
  return f->cancel;
}

static int cancelled_error(fetch *f, qvm_error **err) {
  qvm_error_set_code_errno(err, QVM_ESYS, ECANCELED, "download of '%s' was cancelled", f->shown);
  return qvm_error_set_hint(err, QVM_ESYS, "Cancelled", NULL);
}

static int fail_set(fetch *f, int rc) {
  assert(f->fail_err);
  f->fail_rc = rc;
  return rc;
}

/* Truncates the part file and restarts the worker on it from byte 0. */
static int restart_from_zero(fetch *f) {
  fetch_worker_cancel(&f->w);
  if (ftruncate(f->part_fd, 0) < 0)
    return fail_set(
        f, qvm_error_set_errno(&f->fail_err, errno, "cannot truncate '%s'", f->o->part_path));
  f->part_size = f->flushed = 0;
  f->total = 0;
  if (fetch_worker_start(&f->w, 0, &f->fail_err) < 0) return fail_set(f, QVM_ESYS);
  return 0;
}

/* "bytes A-B/T" or "bytes *\/T" (416); T may be "*" (then 0). */
static bool parse_content_range(const char *s, int64_t *a, int64_t *b, uint64_t *t) {
  unsigned long long x = 0, y = 0, z = 0;
  int n = 0;
  *a = *b = -1;
  *t = 0;
  if (sscanf(s, "bytes */%llu%n", &z, &n) == 1 && s[n] == '\0') {
    *t = z;
    return true;
  }
  n = 0;
  if (sscanf(s, "bytes %llu-%llu/%n", &x, &y, &n) != 2 || n == 0 || x > y || y >= INT64_MAX)
    return false;
  *a = (int64_t)x;
  *b = (int64_t)y;
  const char *rest = s + n;
  if (!strcmp(rest, "*")) return true;
  n = 0;
  if (sscanf(rest, "%llu%n", &z, &n) != 1 || rest[n] != '\0' || z <= y) return false;
  *t = z;
  return true;
}

static int too_big_download(fetch *f, uint64_t size) {
  qvm_error_set(&f->fail_err, QVM_EINVAL, "download '%s' is %" PRIu64 " bytes, more than %" PRIu64,
                f->shown, size, f->cap);
  return fail_set(f, QVM_EINVAL);
}

/* Decides, once per response, what its body is. */
static resp_kind response_begin(fetch *f) {
  if (f->resp != RESP_NONE) return f->resp;
  long status = 0;
  curl_off_t cl = -1;
  curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(f->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
  f->status = status;
  f->resp = RESP_DISCARD;
  int64_t a, b;
  uint64_t t;
  if (status == 200) {
    if (f->part_size > 0 && restart_from_zero(f) < 0) return f->resp = RESP_FAIL;
    f->total = cl >= 0 ? (uint64_t)cl : 0;
  } else if (status == 206) {
    if (!parse_content_range(f->content_range, &a, &b, &t) || a < 0 ||
        (cl >= 0 && cl != b - a + 1) || (t && (uint64_t)b + 1 != t))
      return f->resp = RESP_REDO;
    /* the file changed size since the last attempt: start over */
    if (a != 0 && f->total && t && t != f->total) return f->resp = RESP_REDO;
    if ((uint64_t)a != f->part_size) {
      if (a != 0) return f->resp = RESP_REDO;
      if (restart_from_zero(f) < 0) return f->resp = RESP_FAIL;
    }
    f->total = t ? t : (uint64_t)b + 1;
  } else if (status == 416) {
    if (parse_content_range(f->content_range, &a, &b, &t) && a < 0 && t > 0 && t == f->part_size) {
      f->complete = true;
      f->total = t;
    } else {
      f->resp = RESP_REDO;
    }
    return f->resp;
  } else {
    return f->resp; /* an error status: its body is not the file */
  }
  if (f->total > f->cap) {
    too_big_download(f, f->total);
    return f->resp = RESP_FAIL;
  }
  return f->resp = RESP_ACCEPT;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
  fetch *f = ud;
  size_t len = size * n;
  f->last_byte_ms = qvm_now_ms();
  if (len >= 5 && !memcmp(buf, "HTTP/", 5)) {
    /* a new response (after a redirect or 100 Continue) */
    f->resp = RESP_NONE;
    f->content_range[0] = '\0';
  } else if (len > 14 && !strncasecmp(buf, "content-range:", 14)) {
    const char *v = buf + 14;
    size_t vl = len - 14;
    while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
    if (vl >= sizeof(f->content_range)) vl = 0; /* too long: unparsable */
    memcpy(f->content_range, v, vl);
    f->content_range[vl] = '\0';
  }
  return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud) {
  fetch *f = ud;
  size_t len = size * n;
  f->last_byte_ms = qvm_now_ms();
  resp_kind k = response_begin(f);
  if (k == RESP_DISCARD) return len;
  if (k != RESP_ACCEPT) return 0; /* aborts the transfer */
  if (f->part_size + len > f->cap) {
    too_big_download(f, f->part_size + len);
    return 0;
  }
  ssize_t w = qvm_write_all(f->part_fd, buf, len);
  if (w < 0) {
    fail_set(f, qvm_error_set_errno(&f->fail_err, (int)-w, "cannot write '%s'", f->o->part_path));
    return 0;
  }
  f->part_size += len;
  f->res->transferred += len;
  /* Start the write-back of each 32 MiB as it arrives (asynchronous), so
   * that the fsync before the commit has little left to wait for: it took
   * 0.29 s of a 1 s pull of 512 MiB otherwise (bench/image). */
  if (f->part_size - f->flushed >= (32u << 20)) {
    (void)sync_file_range(f->part_fd, (off_t)f->flushed, (off_t)(f->part_size - f->flushed),
                          SYNC_FILE_RANGE_WRITE);
    f->flushed = f->part_size;
  }
  fetch_worker_produced(&f->w, f->part_size);
  if (fetch_worker_failed(&f->w)) return 0;
  if (f->phase != PHASE_DOWNLOAD) progress_emit(f, PHASE_DOWNLOAD, NULL, true);
  return len;
}

static int on_xfer(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow) {
  (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
  fetch *f = ud;
  int stall = f->o->stall_timeout_ms > 0 ? f->o->stall_timeout_ms : 30000;
  if (qvm_now_ms() - f->last_byte_ms > stall) {
    f->stalled = true;
    return 1;
  }
  if (fetch_worker_failed(&f->w) || cancel_asked(f)) return 1;
  progress_emit(f, f->phase, NULL, false);
  return 0;
}

typedef enum { ATTEMPT_OK, ATTEMPT_RETRY, ATTEMPT_FINAL } attempt_outcome;

static attempt_outcome classify(fetch *f, CURLcode cr, char *note, size_t note_len,
                                qvm_error **err) {
  if (f->cancel) {
    cancelled_error(f, err);
    return ATTEMPT_FINAL;
  }
  if (f->fail_rc < 0) {
    qvm_error_propagate(err, TAKE_PTR(f->fail_err));
    return ATTEMPT_FINAL;
  }
  if (fetch_worker_failed(&f->w)) return ATTEMPT_FINAL; /* the caller reports the worker's error */
  if (f->stalled) {
    int stall = f->o->stall_timeout_ms > 0 ? f->o->stall_timeout_ms : 30000;
    snprintf(note, note_len, "no data for %d ms", stall);
    qvm_error_set(err, QVM_ETIMEOUT, "download of '%s' stalled: no data for %d ms", f->shown,
                  stall);
    return ATTEMPT_RETRY;
  }
  switch (cr) {
  case CURLE_OK: break;
  case CURLE_OPERATION_TIMEDOUT:
    snprintf(note, note_len, "timeout");
    qvm_error_set(err, QVM_ETIMEOUT, "download of '%s' timed out: %s", f->shown,
                  curl_easy_strerror(cr));
    return ATTEMPT_RETRY;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
  case CURLE_PARTIAL_FILE:
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_SSL_CONNECT_ERROR:
    snprintf(note, note_len, "%s", curl_easy_strerror(cr));
    qvm_error_set(err, QVM_EPROTO, "download of '%s' failed: %s", f->shown, curl_easy_strerror(cr));
    return ATTEMPT_RETRY;
  case CURLE_UNSUPPORTED_PROTOCOL:
    qvm_error_set(err, QVM_EPROTO,
                  "download of '%s' refused: a redirect to a url that is not "
                  "http or https",
                  f->shown);
    return ATTEMPT_FINAL;
  default:
    qvm_error_set(err, QVM_EPROTO, "download of '%s' failed: %s", f->shown, curl_easy_strerror(cr));
    return ATTEMPT_FINAL;
  }
  long st = f->status;
  if (st == 200 || st == 206 || (st == 416 && f->complete)) return ATTEMPT_OK;
  _cleanup_free_ char *final = NULL;
  char *eff = NULL;
  curl_easy_getinfo(f->curl, CURLINFO_EFFECTIVE_URL, &eff);
  final = url_shown(eff);
  if (st == 404 || st == 410) {
    qvm_error_set(err, QVM_ENOTFOUND, "'%s' not found (HTTP %ld)", final ? final : f->shown, st);
    return ATTEMPT_FINAL;
  }
  qvm_error_set(err, QVM_EPROTO, "HTTP %ld from '%s'", st, final ? final : f->shown);
  if (st >= 500 || st == 429 || st == 408) {
    snprintf(note, note_len, "HTTP %ld", st);
    return ATTEMPT_RETRY;
  }
  return ATTEMPT_FINAL;
}

static attempt_outcome attempt(fetch *f, char *note, size_t note_len, qvm_error **err) {
  for (int redo = 0;; redo++) {
    f->resp = RESP_NONE;
    f->status = 0;
    f->content_range[0] = '\0';
    f->complete = f->stalled = false;
    f->last_byte_ms = qvm_now_ms();
    /* CURLOPT_RANGE, not RESUME_FROM_LARGE: with the latter curl fails a
     * 200 reply itself, and the whole file it brings would be fetched again */
    char range[32];
    snprintf(range, sizeof(range), "%" PRIu64 "-", f->part_size);
    curl_easy_setopt(f->curl, CURLOPT_RANGE, f->part_size ? range : NULL);
    CURLcode cr = curl_easy_perform(f->curl);
    if (cr == CURLE_OK || f->resp == RESP_NONE) response_begin(f);
    if (f->resp != RESP_REDO || f->fail_rc < 0) return classify(f, cr, note, note_len, err);
    /* a Content-Range that does not fit the part: start over from byte 0 */
    if (redo > 0 || f->part_size == 0) {
      _cleanup_free_ char *cr_shown =
          qvm_text_for_terminal(f->content_range, strlen(f->content_range), 0);
      qvm_error_set(err, QVM_EPROTO, "'%s' answered HTTP %ld with content range '%s'", f->shown,
                    f->status, cr_shown ? cr_shown : "?");
      return ATTEMPT_FINAL;
    }
    if (restart_from_zero(f) < 0) return classify(f, cr, note, note_len, err);
  }
}

/* The backoff between attempts, in slices so that a cancel is seen. */
static void sleep_ms(fetch *f, int ms) {
  for (int left = ms; left > 0 && !cancel_asked(f); left -= 100) {
    int slice = left < 100 ? left : 100;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slice * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
  }
}

static int download(fetch *f, qvm_error **err) {
  int r = curl_ready(err);
  if (r < 0) return r;
  f->curl = curl_easy_init();
  if (!f->curl) return qvm_error_set(err, QVM_EUNAVAIL, "cannot create a libcurl handle");
  const img_fetch_opts *o = f->o;
  int connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 15000;
  int stall_ms = o->stall_timeout_ms > 0 ? o->stall_timeout_ms : 30000;
  if ((r = curl_common(f->curl, o->source, connect_ms, err)) < 0) return r;
  curl_easy_setopt(f->curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(f->curl, CURLOPT_HEADERDATA, f);
  curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, f);
  curl_easy_setopt(f->curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(f->curl, CURLOPT_XFERINFOFUNCTION, on_xfer);
  curl_easy_setopt(f->curl, CURLOPT_XFERINFODATA, f);
  curl_easy_setopt(f->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(f->curl, CURLOPT_LOW_SPEED_TIME, (long)(stall_ms + 999) / 1000 + 1);
  curl_easy_setopt(f->curl, CURLOPT_BUFFERSIZE, 512L * 1024);
  int backoff = o->backoff_ms > 0 ? o->backoff_ms : 1000;
  for (f->attempt = 1;; f->attempt++) {
    f->res->attempts = f->attempt;
    if (cancel_asked(f)) return cancelled_error(f, err);
    progress_emit(f, PHASE_CONNECT, NULL, true);
    char note[160] = "";
    _cleanup_(qvm_error_freep) qvm_error *e = NULL;
    attempt_outcome out = attempt(f, note, sizeof(note), &e);
    if (out == ATTEMPT_OK) break;
    if (out == ATTEMPT_FINAL || f->attempt > o->retries) {
      if (!e) return 0; /* the worker failed: img_fetch reports its error */
      return qvm_error_propagate(err, TAKE_PTR(e));
    }
    progress_emit(f, PHASE_RETRY, note, true);
    sleep_ms(f, backoff);
    if (cancel_asked(f)) return cancelled_error(f, err);
    backoff = backoff >= BACKOFF_CAP_MS / 2 ? BACKOFF_CAP_MS : backoff * 2;
  }
  char *eff = NULL;
  curl_easy_getinfo(f->curl, CURLINFO_EFFECTIVE_URL, &eff);
  f->res->final_url = eff ? qvm_text_for_terminal(eff, strnlen(eff, 8192), 0) : NULL;
  if (f->total && f->part_size != f->total)
    return qvm_error_set(err, QVM_EPROTO,
                         "download of '%s' ended at %" PRIu64 " of %" PRIu64 " bytes", f->shown,
                         f->part_size, f->total);
  f->total = f->part_size;
  return 0;
}

static int open_part(fetch *f, qvm_error **err) {
  const char *p = f->o->part_path;
  f->part_fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
  if (f->part_fd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", p);
  f->part_rd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
  if (f->part_rd < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", p);
  struct stat st;
  if (fstat(f->part_fd, &st) < 0) return qvm_error_set_errno(err, errno, "cannot stat '%s'", p);
  if (!S_ISREG(st.st_mode)) return qvm_error_set(err, QVM_EINVAL, "'%s' is not a regular file", p);
  f->part_size = f->flushed = (uint64_t)st.st_size;
  return 0;
}

/* part_path and out_path on different file systems: a copy. */
static int copy_part(fetch *f, qvm_error **err) {
  const char *out = f->o->out_path;
  _cleanup_close_ int fd =
      open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot create '%s'", out);
  _cleanup_free_ char *buf = malloc(1u << 20);
  if (!buf) return qvm_error_set_errno(err, ENOMEM, "cannot copy '%s'", f->o->part_path);
  for (off_t off = 0;;) {
    ssize_t n = pread(f->part_rd, buf, 1u << 20, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return qvm_error_set_errno(err, errno, "cannot read '%s'", f->o->part_path);
    if (n == 0) break;
    ssize_t w = qvm_write_all(fd, buf, (size_t)n);
    if (w < 0) return qvm_error_set_errno(err, (int)-w, "cannot write '%s'", out);
    off += n;
  }
  if (fsync(fd) < 0) return qvm_error_set_errno(err, errno, "cannot write '%s'", out);
  return 0;
}

/* The worker is done: its results, and the content in out_path. */
static int finish(fetch *f, bool download, qvm_error **err) {
  fetch_worker *w = &f->w;
  fetch_worker_join(w);
  if (w->rc < 0 && w->err) return qvm_error_propagate(err, TAKE_PTR(w->err));
  if (w->rc < 0) return qvm_error_set(err, w->rc, "reading '%s' failed", f->w.src_name);
  img_fetch_result *res = f->res;
  unsigned char d256[IMG_HASH_MAX], d512[IMG_HASH_MAX];
  img_hash_final(&w->h256, d256);
  fetch_hex(res->sha256, d256, 32);
  if (f->o->want_sha512) {
    img_hash_final(&w->h512, d512);
    fetch_hex(res->sha512, d512, 64);
  }
  res->size = w->hashed;
  res->compression = w->compression;
  res->tar_member = TAKE_PTR(w->tar_member);
  res->content_size = w->content_size;
  if (w->plain) {
    memcpy(res->content_sha256, res->sha256, sizeof(res->content_sha256));
  } else {
    img_hash_final(&w->c256, d256);
    fetch_hex(res->content_sha256, d256, 32);
  }
  if (w->out_fd >= 0 && fsync(w->out_fd) < 0)
    return qvm_error_set_errno(err, errno, "cannot write '%s'", f->o->out_path);
  if (download && w->plain) {
    /* the download is the content: it becomes out_path */
    if (fsync(f->part_fd) < 0)
      return qvm_error_set_errno(err, errno, "cannot write '%s'", f->o->part_path);
    if (rename(f->o->part_path, f->o->out_path) == 0) return 0;
    if (errno != EXDEV)
      return qvm_error_set_errno(err, errno, "cannot rename '%s' to '%s'", f->o->part_path,
                                 f->o->out_path);
    int r = copy_part(f, err);
    if (r < 0) return r;
    unlink(f->o->part_path);
  } else if (download) {
    unlink(f->o->part_path);
  }
  return 0;
}

/* Waits for the worker after the last byte, with "decompress" progress. */
static void wait_worker(fetch *f, bool local) {
  fetch_worker_eof(&f->w);
  const char *phase = local ? PHASE_DOWNLOAD : PHASE_DECOMPRESS;
  while (!fetch_worker_wait(&f->w, PROGRESS_EVERY_MS)) {
    if (local) f->part_size = fetch_worker_pos(&f->w);
    progress_emit(f, phase, NULL, false);
    if (cancel_asked(f)) {
      fetch_worker_cancel(&f->w);
      break;
    }
  }
  if (local) f->part_size = fetch_worker_pos(&f->w);
}

static int fetch_local(fetch *f, const char *path, qvm_error **err) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT) return qvm_error_set(err, QVM_ENOTFOUND, "'%s' not found", f->shown);
    return qvm_error_set_errno(err, errno, "cannot open '%s'", f->shown);
  }
  struct stat st;
  if (fstat(fd, &st) < 0) return qvm_error_set_errno(err, errno, "cannot stat '%s'", f->shown);
  if (!S_ISREG(st.st_mode))
    return qvm_error_set(err, QVM_EINVAL, "'%s' is not a regular file", f->shown);
  f->total = (uint64_t)st.st_size;
  f->w.src_fd = fd;
  f->w.src_name = f->shown;
  f->w.copy_plain = true;
  f->attempt = f->res->attempts = 1;
  if (cancel_asked(f)) return cancelled_error(f, err);
  progress_emit(f, PHASE_DOWNLOAD, NULL, true);
  int r = fetch_worker_start(&f->w, (uint64_t)st.st_size, err);
  if (r < 0) return r;
  wait_worker(f, true);
  if (f->cancel) return cancelled_error(f, err);
  f->res->transferred = f->part_size;
  return finish(f, false, err);
}

static int fetch_url(fetch *f, qvm_error **err) {
  int r = open_part(f, err);
  if (r < 0) return r;
  f->w.src_fd = f->part_rd;
  f->w.src_name = f->o->part_path;
  if ((r = fetch_worker_start(&f->w, f->part_size, err)) < 0) return r;
  r = download(f, err);
  if (r < 0) return r;
  if (fetch_worker_failed(&f->w)) return finish(f, true, err);
  wait_worker(f, false);
  if (f->cancel) return cancelled_error(f, err);
  return finish(f, true, err);
}

void img_fetch_result_clear(img_fetch_result *r) {
  if (!r) return;
  free(r->tar_member);
  free(r->final_url);
  memset(r, 0, sizeof(*r));
}

int img_fetch(img_fetch_result *out, const img_fetch_opts *opts, qvm_error **err) {
  assert(out && opts && opts->source && opts->part_path && opts->out_path);
  memset(out, 0, sizeof(*out));
  out->compression = "none";
  fetch f = {.o = opts, .res = out, .part_fd = -1, .part_rd = -1};
  f.max_content = opts->max_content ? opts->max_content : DEFAULT_MAX_CONTENT;
  /* a compressed download is smaller than its content, give or take headers */
  uint64_t slack = f.max_content / 16 + (1u << 20);
  f.cap = f.max_content > UINT64_MAX - slack ? UINT64_MAX : f.max_content + slack;
  fetch_worker_init(&f.w);
  f.w.out_path = opts->out_path;
  f.w.want_sha512 = opts->want_sha512;
  f.w.max_content = f.max_content;
  f.shown = url_shown(opts->source);
  _cleanup_free_ char *local = NULL;
  int r = f.shown ? 0 : qvm_error_set_errno(err, ENOMEM, "cannot fetch");
  if (r == 0) r = local_source(&local, opts->source, err);
  if (r == 0 && local)
    r = fetch_local(&f, local, err);
  else if (r == 0 && is_http(opts->source))
    r = fetch_url(&f, err);
  else if (r == 0)
    r = qvm_error_set(err, QVM_EINVAL,
                      "source '%s' is not an http(s) or file url or an "
                      "absolute path",
                      f.shown);
  fetch_worker_destroy(&f.w);
  if (f.curl) curl_easy_cleanup(f.curl);
  qvm_error_free(f.fail_err);
  if (f.part_fd >= 0) close(f.part_fd);
  if (f.part_rd >= 0) close(f.part_rd);
  free(f.shown);
  if (r < 0) {
    unlink(opts->out_path);
    if (f.cancel && !local) unlink(opts->part_path); /* a cancelled download is not resumed */
    img_fetch_result_clear(out);
    out->compression = "none";
    return r;
  }
  return 0;
}

/* ---- img_fetch_small ---- */

typedef struct small_fetch {
  qvm_strbuf sb;
  size_t max;
  bool too_big;
  long status;
  CURL *curl;
} small_fetch;

static size_t small_body(char *buf, size_t size, size_t n, void *ud) {
  small_fetch *s = ud;
  size_t len = size * n;
  curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
  if (s->status != 200) return len;
  if (s->sb.len + len > s->max) {
    s->too_big = true;
    return 0;
  }
  qvm_strbuf_append(&s->sb, buf, len);
  return s->sb.oom ? 0 : len;
}

int img_fetch_small(char **out, size_t *out_len, const char *source, size_t max, int timeout_ms,
                    qvm_error **err) {
  assert(out && source);
  _cleanup_free_ char *local = NULL;
  _cleanup_free_ char *shown = url_shown(source);
  if (!shown) return qvm_error_set_errno(err, ENOMEM, "cannot fetch");
  int r = local_source(&local, source, err);
  if (r < 0) return r;
  if (local) {
    struct stat st;
    if (stat(local, &st) < 0 && errno == ENOENT)
      return qvm_error_set(err, QVM_ENOTFOUND, "'%s' not found", shown);
    return qvm_read_file(out, out_len, local, max, err);
  }
  if (!is_http(source))
    return qvm_error_set(err, QVM_EINVAL,
                         "source '%s' is not an http(s) or file url or an "
                         "absolute path",
                         shown);
  if ((r = curl_ready(err)) < 0) return r;
  _cleanup_(curl_easy_cleanupp) CURL *c = curl_easy_init();
  if (!c) return qvm_error_set(err, QVM_EUNAVAIL, "cannot create a libcurl handle");
  if (timeout_ms <= 0) timeout_ms = 30000;
  small_fetch s = {.max = max, .curl = c};
  if ((r = curl_common(c, source, timeout_ms < 15000 ? timeout_ms : 15000, err)) < 0) return r;
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, small_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
  CURLcode cr = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s.status);
  if (s.too_big) {
    qvm_strbuf_free(&s.sb);
    return qvm_error_set(err, QVM_EINVAL, "'%s' is larger than %zu bytes", shown, max);
  }
  r = 0;
  if (cr == CURLE_OPERATION_TIMEDOUT)
    r = qvm_error_set(err, QVM_ETIMEOUT, "fetching '%s' timed out after %d ms", shown, timeout_ms);
  else if (cr == CURLE_UNSUPPORTED_PROTOCOL)
    r = qvm_error_set(err, QVM_EPROTO,
                      "fetching '%s' refused: a redirect to a url that is not "
                      "http or https",
                      shown);
  else if (cr != CURLE_OK)
    r = qvm_error_set(err, QVM_EPROTO, "fetching '%s' failed: %s", shown, curl_easy_strerror(cr));
  else if (s.status == 404 || s.status == 410)
    r = qvm_error_set(err, QVM_ENOTFOUND, "'%s' not found (HTTP %ld)", shown, s.status);
  else if (s.status != 200)
    r = qvm_error_set(err, QVM_EPROTO, "HTTP %ld from '%s'", s.status, shown);
  if (r < 0) {
    qvm_strbuf_free(&s.sb);
    return r;
  }
  size_t len = s.sb.len;
  char *buf = qvm_strbuf_steal(&s.sb);
  if (!buf) return qvm_error_set_errno(err, ENOMEM, "cannot fetch '%s'", shown);
  *out = buf;
  if (out_len) *out_len = len;
  return 0;
}
