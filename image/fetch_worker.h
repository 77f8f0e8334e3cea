/* SPDX-License-Identifier: MIT */
#ifndef QVM_IMAGE_FETCH_WORKER_H
#define QVM_IMAGE_FETCH_WORKER_H

/*
 * The worker thread of img_fetch (image/fetch.h): it follows a source file
 * as it grows (the part file, or a local source read in place), hashes
 * every byte from offset 0, detects the compression from the magic and
 * decompresses (libarchive, custom read callback) into out_path. The
 * producer (the download, in the calling thread) announces bytes with
 * fetch_worker_produced() and the end with fetch_worker_eof().
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "image/hash.h"
#include "util/error.h"

typedef struct fetch_worker {
  /* configuration, set before fetch_worker_start() */
  int src_fd;           /* read with pread; not owned */
  const char *src_name; /* for messages */
  const char *out_path; /* created 0600 when the worker writes (decompression, copy) */
  bool copy_plain;      /* uncompressed: copy to out_path (local source) rather than leave it */
  bool want_sha512;
  uint64_t max_content;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t avail; /* bytes of src that may be read */
  bool eof;       /* avail is final */
  bool stop;      /* the caller gives up: reads fail */
  bool finished;  /* the thread is done: rc/err below are final */
  uint64_t pos;   /* bytes hashed so far (for progress) */
  bool running;
  pthread_t thread;

  /* results, valid once finished */
  int rc;
  qvm_error *err;
  img_hash h256; /* of the download */
  img_hash h512; /* of the download, when want_sha512 */
  img_hash c256; /* of the content */
  uint64_t hashed;
  uint64_t content_size;
  const char *compression;
  bool plain;       /* not compressed, not a tar: the content is src itself */
  char *tar_member; /* neutralized */
  int out_fd;
  uint64_t unchecked; /* bytes written since the last free-space check */
} fetch_worker;

void fetch_worker_init(fetch_worker *w);
/* Starts (or, after fetch_worker_cancel(), restarts from offset 0) with
 * `avail` bytes already readable. */
int fetch_worker_start(fetch_worker *w, uint64_t avail, qvm_error **err);
void fetch_worker_produced(fetch_worker *w, uint64_t avail);
void fetch_worker_eof(fetch_worker *w);
/* True when the thread has ended with an error (the producer stops). */
bool fetch_worker_failed(fetch_worker *w);
/* Waits at most timeout_ms for the thread to end; true when it has. */
bool fetch_worker_wait(fetch_worker *w, int timeout_ms);
/* Stops the thread (its reads fail) and joins it. */
void fetch_worker_cancel(fetch_worker *w);
/* Joins a finished thread. */
void fetch_worker_join(fetch_worker *w);
uint64_t fetch_worker_pos(fetch_worker *w);
/* Frees everything; joins first if needed. */
void fetch_worker_destroy(fetch_worker *w);

void fetch_hex(char *out, const unsigned char *bytes, size_t n);

#endif
