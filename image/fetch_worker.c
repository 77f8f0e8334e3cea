/* SPDX-License-Identifier: MIT */
#include "image/fetch_worker.h"

#include <archive.h>
#include <archive_entry.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <qvm/text.h>

#include "util/cleanup.h"
#include "util/fs.h"

#define SRC_BUF (1u << 20)
#define SNIFF_LEN 512
#define MAX_LISTED 5

static const unsigned char zeros[65536];

void fetch_hex(char *out, const unsigned char *bytes, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  out[2 * n] = '\0';
}

void fetch_worker_init(fetch_worker *w) {
  memset(w, 0, sizeof(*w));
  w->src_fd = -1;
  w->out_fd = -1;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
}

/* Sets the worker's error once (the first failure wins). */
static int werr(fetch_worker *w, int rc, qvm_error *e) {
  if (w->err) {
    qvm_error_free(e);
    return w->rc;
  }
  w->err = e;
  w->rc = rc;
  return rc;
}

/* "<what> '<path>': strerror"; set once like werr(). */
static int werr_errno(fetch_worker *w, int errnum, const char *what, const char *path) {
  qvm_error *e = NULL;
  int rc = qvm_error_set_errno(&e, errnum, "%s '%s'", what, path);
  return werr(w, rc, e);
}

/* Reads src at `off` (never past what the producer announced), waiting for
 * bytes; hashes what lies beyond the hashed prefix. 0 at the end, -1 when
 * stopped or failed (w->err set). Reads are sequential from 0 per pass. */
static ssize_t src_read(fetch_worker *w, uint64_t off, void *buf, size_t len) {
  pthread_mutex_lock(&w->mu);
  while (!w->stop && w->avail <= off && !w->eof) pthread_cond_wait(&w->cv, &w->mu);
  bool stop = w->stop;
  uint64_t avail = w->avail;
  pthread_mutex_unlock(&w->mu);
  if (stop) return -1;
  if (avail <= off) return 0;
  if (len > avail - off) len = (size_t)(avail - off);
  ssize_t n;
  do n = pread(w->src_fd, buf, len, (off_t)off);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    return werr_errno(w, errno, "cannot read", w->src_name), -1;
  }
  if (n == 0) {
    qvm_error *e = NULL;
    int rc = qvm_error_set(&e, QVM_EPROTO, "'%s' shrank while it was read", w->src_name);
    return werr(w, rc, e), -1;
  }
  if (off + (uint64_t)n > w->hashed) {
    assert(off <= w->hashed);
    size_t skip = (size_t)(w->hashed - off);
    img_hash_update(&w->h256, (const unsigned char *)buf + skip, (size_t)n - skip);
    if (w->want_sha512)
      img_hash_update(&w->h512, (const unsigned char *)buf + skip, (size_t)n - skip);
    w->hashed = off + (uint64_t)n;
    pthread_mutex_lock(&w->mu);
    w->pos = w->hashed;
    pthread_mutex_unlock(&w->mu);
  }
  return n;
}

static int oom(fetch_worker *w) { return werr_errno(w, ENOMEM, "cannot read", w->src_name); }

static int too_big(fetch_worker *w) {
  qvm_error *e = NULL;
  int rc = qvm_error_set(&e, QVM_EINVAL, "content of '%s' is larger than %llu bytes", w->src_name,
                         (unsigned long long)w->max_content);
  return werr(w, rc, e);
}

static int out_open(fetch_worker *w) {
  if (w->out_fd >= 0) return 0;
  w->out_fd =
      open(w->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
  if (w->out_fd < 0) {
    return werr_errno(w, errno, "cannot create", w->out_path);
  }
  return 0;
}

/* Decompressed content can be far larger than its download (a bomb, or a
 * hostile server's body before the checksum is known): every 64 MiB, stop
 * before the file system keeps less than 5% free. */
#define FREE_CHECK_BYTES (64u << 20)
static int out_room(fetch_worker *w, size_t len) {
  w->unchecked += len;
  if (w->unchecked < FREE_CHECK_BYTES) return 0;
  w->unchecked = 0;
  struct statvfs fs;
  if (fstatvfs(w->out_fd, &fs) < 0) return 0;
  uint64_t avail = (uint64_t)fs.f_bavail * fs.f_frsize, size = (uint64_t)fs.f_blocks * fs.f_frsize;
  if (avail >= size / 20 + FREE_CHECK_BYTES) return 0;
  qvm_error *e = NULL;
  int rc = qvm_error_set_code_errno(&e, QVM_ESYS, ENOSPC,
                                    "stopped writing '%s' at %llu bytes: its file system would "
                                    "keep less than 5%% free",
                                    w->out_path, (unsigned long long)w->content_size);
  return werr(w, rc, e);
}

static int out_write(fetch_worker *w, const void *buf, size_t len, uint64_t off) {
  const char *p = buf;
  if (out_room(w, len) < 0) return w->rc;
  while (len > 0) {
    ssize_t n = pwrite(w->out_fd, p, len, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return werr_errno(w, n < 0 ? errno : EIO, "cannot write", w->out_path);
    }
    p += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

static void content_zeros(fetch_worker *w, uint64_t n) {
  while (n > 0) {
    size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
    img_hash_update(&w->c256, zeros, k);
    n -= k;
  }
}

/* The rest of src, hashed (and copied to out when copy_plain). */
static int drain(fetch_worker *w, bool copy, bool capped) {
  _cleanup_free_ unsigned char *buf = malloc(SRC_BUF);
  if (!buf) return oom(w);
  uint64_t off = w->hashed;
  for (;;) {
    ssize_t n = src_read(w, off, buf, SRC_BUF);
    if (n < 0) return w->rc ? w->rc : QVM_ESYS;
    if (n == 0) return 0;
    if (capped && off + (uint64_t)n > w->max_content) return too_big(w);
    if (copy && out_write(w, buf, (size_t)n, off) < 0) return w->rc;
    off += (uint64_t)n;
  }
}

/* ---- libarchive over src ---- */

typedef struct ar_src {
  fetch_worker *w;
  uint64_t off;
  unsigned char *buf;
} ar_src;

static la_ssize_t ar_read(struct archive *a, void *ud, const void **out) {
  ar_src *s = ud;
  ssize_t n = src_read(s->w, s->off, s->buf, SRC_BUF);
  if (n < 0) {
    archive_set_error(a, EIO, "read aborted");
    return -1;
  }
  s->off += (uint64_t)n;
  *out = s->buf;
  return n;
}

static int ar_error(fetch_worker *w, struct archive *a, const char *what) {
  if (w->err) return w->rc; /* the read callback's own failure */
  const char *msg = archive_error_string(a);
  _cleanup_free_ char *shown = qvm_text_for_terminal(msg ? msg : "?", strlen(msg ? msg : "?"), 0);
  qvm_error *e = NULL;
  int rc = qvm_error_set(&e, QVM_EPROTO, "%s '%s': %s", what, w->src_name,
                         shown ? shown : "out of memory");
  return werr(w, rc, e);
}

static int ar_support_filter(struct archive *a, const char *compression) {
  if (!strcmp(compression, "xz")) return archive_read_support_filter_xz(a);
  if (!strcmp(compression, "gzip")) return archive_read_support_filter_gzip(a);
  if (!strcmp(compression, "zstd")) return archive_read_support_filter_zstd(a);
  if (!strcmp(compression, "bzip2")) return archive_read_support_filter_bzip2(a);
  return archive_read_support_filter_none(a);
}

static void ar_freep(struct archive **a) {
  if (*a) archive_read_free(*a);
}

/* A pass over src from offset 0, decompressing with the detected filter
 * only (no external programs: anything but ARCHIVE_OK is refused). */
static int ar_open(struct archive **out, fetch_worker *w, ar_src *src, bool tar) {
  _cleanup_(ar_freep) struct archive *a = archive_read_new();
  if (!a) return oom(w);
  src->off = 0;
  if (ar_support_filter(a, w->compression) != ARCHIVE_OK ||
      (tar ? archive_read_support_format_tar(a) : archive_read_support_format_raw(a)) !=
          ARCHIVE_OK) {
    qvm_error *e = NULL;
    int rc = qvm_error_set(&e, QVM_EUNAVAIL, "libarchive cannot read %s", w->compression);
    return werr(w, rc, e);
  }
  if (archive_read_open(a, src, NULL, ar_read, NULL) != ARCHIVE_OK)
    return ar_error(w, a, "cannot decompress");
  /* the magic matched but the filter did not take the stream */
  if (strcmp(w->compression, "none") && archive_filter_code(a, 0) == ARCHIVE_FILTER_NONE) {
    qvm_error *e = NULL;
    int rc = qvm_error_set(&e, QVM_EPROTO, "cannot decompress '%s': it starts like %s but is not",
                           w->src_name, w->compression);
    return werr(w, rc, e);
  }
  *out = TAKE_PTR(a);
  return 0;
}

/* Reads the current entry's data; writes it to out (from offset 0) when
 * `write`, else only bounds it. Sparse entries (holes) become holes. */
static int entry_data(fetch_worker *w, struct archive *a, struct archive_entry *ent, bool write,
                      uint64_t *budget) {
  uint64_t cur = 0;
  if (write) {
    if (out_open(w) < 0 || ftruncate(w->out_fd, 0) < 0) {
      return w->err ? w->rc : werr_errno(w, errno, "cannot truncate", w->out_path);
    }
    if (!img_hash_begin(&w->c256, false)) return oom(w);
  }
  for (;;) {
    const void *buf;
    size_t size;
    la_int64_t offset;
    int r = archive_read_data_block(a, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return ar_error(w, a, "cannot decompress");
    if (offset < 0 || (uint64_t)offset < cur) return ar_error(w, a, "bad block offsets in");
    uint64_t end = (uint64_t)offset + size;
    if (end > w->max_content || end - cur > *budget) return too_big(w);
    *budget -= end - cur;
    if (write) {
      content_zeros(w, (uint64_t)offset - cur);
      img_hash_update(&w->c256, buf, size);
      if (out_write(w, buf, size, (uint64_t)offset) < 0) return w->rc;
    }
    cur = end;
  }
  if (write && ent && archive_entry_size_is_set(ent) && archive_entry_size(ent) > 0 &&
      (uint64_t)archive_entry_size(ent) > cur) {
    uint64_t size = (uint64_t)archive_entry_size(ent);
    if (size > w->max_content) return too_big(w);
    content_zeros(w, size - cur);
    cur = size;
  }
  if (write) {
    if (ftruncate(w->out_fd, (off_t)cur) < 0) {
      return werr_errno(w, errno, "cannot write", w->out_path);
    }
    w->content_size = cur;
  }
  return 0;
}

static int sniff_decompressed(fetch_worker *w, ar_src *src, bool *is_tar) {
  _cleanup_(ar_freep) struct archive *a = NULL;
  if (ar_open(&a, w, src, false) < 0) return w->rc;
  struct archive_entry *ent;
  if (archive_read_next_header(a, &ent) != ARCHIVE_OK) return ar_error(w, a, "cannot decompress");
  unsigned char head[SNIFF_LEN];
  size_t got = 0;
  while (got < sizeof(head)) {
    la_ssize_t n = archive_read_data(a, head + got, sizeof(head) - got);
    if (n < 0) return ar_error(w, a, "cannot decompress");
    if (n == 0) break;
    got += (size_t)n;
  }
  *is_tar = got >= 263 && !memcmp(head + 257, "ustar", 5);
  return 0;
}

static int rank_of(const char *name) {
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  if (!strcmp(base, "disk.raw")) return 3;
  size_t n = strlen(base);
  static const char *const sfx[] = {".raw", ".img", ".qcow2"};
  for (size_t i = 0; i < QVM_ARRAY_SIZE(sfx); i++) {
    size_t k = strlen(sfx[i]);
    if (n > k && !strcmp(base + n - k, sfx[i])) return 2;
  }
  return 1;
}

static char *shown_name(const char *name) {
  return qvm_text_for_terminal(name, strnlen(name, 4096), 0);
}

/* Streams the tarball once. Each regular member that ranks above what was
 * written so far is written (replacing it); at the end the counts per rank
 * say whether the written one is the member the rules choose. */
static int extract_tar(fetch_worker *w, struct archive *a) {
  unsigned count[4] = {0};
  unsigned total = 0, best = 0;
  char *listed[MAX_LISTED] = {0};
  int rc = 0;
  uint64_t budget = w->max_content > UINT64_MAX / 2 ? UINT64_MAX : 2 * w->max_content;
  for (;;) {
    struct archive_entry *ent;
    int r = archive_read_next_header(a, &ent);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      rc = ar_error(w, a, "cannot read the tarball");
      goto out;
    }
    const char *name = archive_entry_pathname(ent);
    bool regular = archive_entry_filetype(ent) == AE_IFREG && !archive_entry_hardlink(ent) && name;
    int rank = regular ? rank_of(name) : 0;
    if (regular) {
      if (total < MAX_LISTED) listed[total] = shown_name(name);
      total++;
      count[rank]++;
    }
    bool take = regular && (int)best < rank;
    if (take) {
      best = (unsigned)rank;
      free(w->tar_member);
      w->tar_member = shown_name(name);
    }
    if ((rc = entry_data(w, a, regular ? ent : NULL, take, &budget)) < 0) goto out;
  }
  if (total == 1 || count[3] == 1 || (count[3] == 0 && count[2] == 1)) goto out;
  char names[600] = "";
  for (unsigned i = 0; i < total && i < MAX_LISTED; i++) {
    size_t len = strlen(names);
    snprintf(names + len, sizeof(names) - len, "%s'%s'", i ? ", " : "",
             listed[i] ? listed[i] : "?");
  }
  qvm_error *e = NULL;
  rc = qvm_error_set(&e, QVM_EINVAL,
                     total == 0 ? "tarball '%s' holds no regular file%s"
                                : "tarball '%s' holds no single disk image: %s%s",
                     w->src_name, names, total > MAX_LISTED ? ", ..." : "");
  werr(w, rc, e);
out:
  for (size_t i = 0; i < MAX_LISTED; i++) free(listed[i]);
  return rc;
}

static int decompress(fetch_worker *w, bool tar) {
  _cleanup_free_ unsigned char *buf = malloc(SRC_BUF);
  if (!buf) return oom(w);
  ar_src src = {.w = w, .buf = buf};
  bool is_tar = tar;
  if (!tar && sniff_decompressed(w, &src, &is_tar) < 0) return w->rc;
  _cleanup_(ar_freep) struct archive *a = NULL;
  if (ar_open(&a, w, &src, is_tar) < 0) return w->rc;
  if (is_tar) {
    if (extract_tar(w, a) < 0) return w->rc;
  } else {
    struct archive_entry *ent;
    if (archive_read_next_header(a, &ent) != ARCHIVE_OK) return ar_error(w, a, "cannot decompress");
    uint64_t budget = UINT64_MAX;
    if (entry_data(w, a, NULL, true, &budget) < 0) return w->rc;
  }
  /* bytes after the compressed stream are hashed too */
  return drain(w, false, false);
}

static const char *magic(const unsigned char *h, size_t n) {
  if (n >= 6 && !memcmp(h,
                        "\xfd"
                        "7zXZ\0",
                        6))
    return "xz";
  if (n >= 2 && h[0] == 0x1f && h[1] == 0x8b) return "gzip";
  if (n >= 4 && !memcmp(h, "\x28\xb5\x2f\xfd", 4)) return "zstd";
  if (n >= 3 && !memcmp(h, "BZh", 3)) return "bzip2";
  return "none";
}

static int run(fetch_worker *w) {
  unsigned char head[SNIFF_LEN];
  size_t got = 0;
  while (got < sizeof(head)) {
    ssize_t n = src_read(w, got, head + got, sizeof(head) - got);
    if (n < 0) return w->rc ? w->rc : QVM_ESYS;
    if (n == 0) break;
    got += (size_t)n;
  }
  w->compression = magic(head, got);
  bool tar = got >= 263 && !memcmp(head + 257, "ustar", 5);
  if (strcmp(w->compression, "none") || tar) return decompress(w, tar);
  w->plain = true;
  if (got > w->max_content) return too_big(w);
  if (w->copy_plain && (out_open(w) < 0 || out_write(w, head, got, 0) < 0)) return w->rc;
  if (drain(w, w->copy_plain, true) < 0) return w->rc;
  w->content_size = w->hashed;
  return 0;
}

static void *thread_main(void *arg) {
  fetch_worker *w = arg;
  int rc = run(w);
  if (rc < 0 && !w->err) {
    qvm_error *e = NULL;
    rc = qvm_error_set(&e, rc, "reading '%s' was stopped", w->src_name);
    werr(w, rc, e);
  }
  pthread_mutex_lock(&w->mu);
  if (rc < 0 && !w->rc) w->rc = rc;
  w->finished = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static void reset_results(fetch_worker *w) {
  qvm_error_free(w->err);
  w->err = NULL;
  w->rc = 0;
  img_hash_free(&w->h256);
  img_hash_free(&w->h512);
  img_hash_free(&w->c256);
  w->hashed = w->content_size = w->pos = 0;
  w->compression = "none";
  w->plain = false;
  free(w->tar_member);
  w->tar_member = NULL;
  if (w->out_fd >= 0) close(w->out_fd);
  w->out_fd = -1;
}

int fetch_worker_start(fetch_worker *w, uint64_t avail, qvm_error **err) {
  assert(!w->running);
  reset_results(w);
  if (!img_hash_begin(&w->h256, false) || !img_hash_begin(&w->h512, true) ||
      !img_hash_begin(&w->c256, false))
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  w->avail = avail;
  w->eof = w->stop = w->finished = false;
  /* The worker takes no signal: the caller's handling (a signalfd, a
   * SIGINT handler) stays the calling thread's. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int r = pthread_create(&w->thread, NULL, thread_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r != 0) return qvm_error_set_errno(err, r, "cannot start the hashing thread");
  w->running = true;
  return 0;
}

void fetch_worker_produced(fetch_worker *w, uint64_t avail) {
  pthread_mutex_lock(&w->mu);
  w->avail = avail;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

void fetch_worker_eof(fetch_worker *w) {
  pthread_mutex_lock(&w->mu);
  w->eof = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

bool fetch_worker_failed(fetch_worker *w) {
  pthread_mutex_lock(&w->mu);
  bool failed = w->finished && w->rc < 0;
  pthread_mutex_unlock(&w->mu);
  return failed;
}

uint64_t fetch_worker_pos(fetch_worker *w) {
  pthread_mutex_lock(&w->mu);
  uint64_t pos = w->pos;
  pthread_mutex_unlock(&w->mu);
  return pos;
}

bool fetch_worker_wait(fetch_worker *w, int timeout_ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&w->mu);
  while (!w->finished)
    if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) break;
  bool done = w->finished;
  pthread_mutex_unlock(&w->mu);
  return done;
}

void fetch_worker_join(fetch_worker *w) {
  if (!w->running) return;
  pthread_join(w->thread, NULL);
  w->running = false;
}

void fetch_worker_cancel(fetch_worker *w) {
  pthread_mutex_lock(&w->mu);
  w->stop = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  fetch_worker_join(w);
}

void fetch_worker_destroy(fetch_worker *w) {
  fetch_worker_cancel(w);
  reset_results(w);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
}
