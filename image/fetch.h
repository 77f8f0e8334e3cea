/* SPDX-License-Identifier: MIT */
#ifndef QVM_IMAGE_FETCH_H
#define QVM_IMAGE_FETCH_H

/*
 * Download (libcurl) + hash (OpenSSL's libcrypto: image/hash.h) + decompress (libarchive), in one
 * pass over the bytes, with resume.
 *
 * The network bytes go to `part_path` as they arrive (the download thread
 * never waits for hashing). A worker thread follows that file as it grows:
 * it hashes the downloaded bytes (sha256, and sha512 when asked) and, for a
 * compressed download, decompresses them into `out_path`, hashing what it
 * writes (content_sha256). So the wall time is about max(download, hash),
 * not their sum.
 *
 * Resume: when `part_path` already holds bytes (an earlier attempt, or an
 * earlier call that failed), the next attempt asks for the rest with a
 * Range request; the worker reads the file from offset 0 anyway, so hashes
 * and decompression cover every byte. A server that ignores Range (200
 * instead of 206), or whose reply does not fit (Content-Range start !=
 * the part's size), restarts from byte 0 (the part file is truncated).
 * A retry (connect error, timeout, 5xx, a cut connection) resumes the same
 * way, after a backoff that doubles (backoff_ms, 2x, 4x, ... capped at 30 s).
 * 4xx is final (no retry): 404 is QVM_ENOTFOUND, others QVM_EPROTO, with the
 * status and URL in the message.
 *
 * Sources: http://, https:// (TLS verification always on), file://, or an
 * absolute local path (file:// urls and paths are read directly, no curl,
 * no part file; "downloaded" then counts the bytes read). Redirects are followed (at most 10,
 * http/https only: a redirect to file:// or anything else is refused). Proxy variables (http_proxy,
 * https_proxy, no_proxy) work as curl's do.
 *
 * Compression is detected from the first bytes (magic), never from the
 * name: xz, gzip, zstd, bzip2 raw streams, and tar archives (plain or
 * compressed) holding the disk as one member: the member is the only
 * regular file, or else the one named disk.raw, or else the one whose name
 * ends in .raw, .img or .qcow2 (more than one candidate, or none: an error
 * listing at most 5 member names, neutralized). Only the member's data is
 * written; tar paths never reach the file system. The content is capped at
 * max_content bytes (a decompression bomb is an error, not a full disk);
 * the download at max_content + max_content/16 + 1 MiB (a compressed image
 * is smaller than its content), checked against Content-Length at once;
 * the members a tarball skips at 2 * max_content in all.
 *
 * Everything created is 0600. On failure `out_path` is removed; `part_path`
 * is kept unless the failure says its bytes are wrong (checksum mismatch
 * is decided by the caller, which removes it). On success `part_path` is
 * gone: an uncompressed download is renamed to `out_path` (copied when
 * they are on two file systems), a compressed one is removed.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct img_progress {
  const char *phase; /* "connect", "download", "decompress", "retry" */
  uint64_t done;     /* bytes of the download received so far (all attempts) */
  uint64_t total;    /* bytes of the download; 0: unknown */
  uint64_t rate;     /* bytes per second, smoothed over ~2 s; 0: unknown */
  int64_t eta_ms;    /* -1: unknown */
  unsigned attempt;  /* 1, 2, ... */
  const char *note;  /* phase "retry": why ("HTTP 503", "connection reset", ...) */
} img_progress;

/* Called from the calling thread only, at most ~10 times a second plus once
 * at each phase change. */
typedef void img_progress_fn(const img_progress *p, void *userdata);

/* Polled from the calling thread (with each curl progress tick, about 10
 * times a second, and between attempts): true stops the fetch. */
typedef bool img_cancel_fn(void *userdata);

typedef struct img_fetch_opts {
  const char *source;    /* URL or absolute path */
  const char *part_path; /* the download as it arrives (kept for resume) */
  const char *out_path;  /* the content: decompressed, or the download itself */
  bool want_sha512;
  int connect_timeout_ms; /* 0: 15000 */
  int stall_timeout_ms;   /* no byte for this long ends an attempt; 0: 30000 */
  unsigned retries;       /* further attempts after the first; tests set 0 */
  int backoff_ms;         /* 0: 1000 */
  uint64_t max_content;   /* 0: 1 TiB */
  img_progress_fn *progress;
  void *userdata;
  img_cancel_fn *cancelled; /* NULL: never */
  void *cancel_userdata;
} img_fetch_opts;

typedef struct img_fetch_result {
  char sha256[65];         /* hex, of the downloaded bytes */
  char sha512[129];        /* hex, when want_sha512; else "" */
  char content_sha256[65]; /* hex, of out_path's bytes (== sha256 when not compressed) */
  uint64_t size;           /* bytes of the download */
  uint64_t transferred;    /* bytes received by this call (less than size after a resume) */
  uint64_t content_size;   /* bytes of out_path */
  const char *compression; /* static: "none", "xz", "gzip", "zstd", "bzip2" */
  char *tar_member;        /* the member taken from a tarball, neutralized; NULL: not a tar */
  char *final_url;         /* after redirects; NULL for a local path */
  unsigned attempts;
} img_fetch_result;

void img_fetch_result_clear(img_fetch_result *r);

/* QVM_ENOTFOUND (404, no such file), QVM_ETIMEOUT (connect or stall after
 * the retries), QVM_EPROTO (other HTTP errors, bad redirects, a broken
 * archive), QVM_EINVAL (bad URL scheme, content too big, tar member
 * ambiguous), QVM_ESYS (ENOSPC and other I/O errors on part/out: the message
 * says which file; ECANCELED, class "Cancelled": opts->cancelled said so,
 * and then part_path and out_path are both removed). */
int img_fetch(img_fetch_result *out, const img_fetch_opts *opts, qvm_error **err);

/* A small document (a checksum file, at most `max` bytes: more is
 * QVM_EINVAL) into memory, NUL-terminated, same sources, timeouts and
 * redirect rules as img_fetch, no resume. */
int img_fetch_small(char **out, size_t *out_len, const char *source, size_t max, int timeout_ms,
                    qvm_error **err);

/* The file name a checksum file lists for this URL: its path's last
 * component, percent-decoded, without query or fragment. NULL if empty. */
char *img_url_filename(const char *url);

#endif
