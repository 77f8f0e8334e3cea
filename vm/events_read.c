/* SPDX-License-Identifier: MIT */
/*
 * qvm_vm_events_read: the VM's events.jsonl for readers other than the
 * shim (qvmd's event stream). The shim appends each line in one write
 * (vm/shim.c, vm_events_append) and rotates the file by a rename to
 * events.jsonl.1; a cursor names the file by its inode, so a reader that
 * fell behind a rotation finishes the old file before it starts the new
 * one. Nothing here trusts the content: lines are bounded and handed out
 * as bytes, the caller parses them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "vm/handle.h"

/* Reads fd from c->offset up to size, handing complete lines to fn. */
static int read_lines(int fd, uint64_t size, qvm_vm_events_cursor *c, qvm_vm_event_fn fn, void *ctx,
                      int *count, qvm_error **err) {
  const size_t cap = QVM_VM_EVENT_LINE_MAX + 1;
  _cleanup_free_ char *buf = malloc(cap);
  if (!buf) return qvm_error_set_errno(err, ENOMEM, "reading events.jsonl");
  uint64_t pos = c->offset; /* file offset of buf[0] */
  size_t have = 0;
  bool skipping = false; /* in a line over the cap, up to its '\n' */
  while (pos + have < size && *count < QVM_VM_EVENTS_READ_MAX) {
    size_t want = cap - have;
    if (size - (pos + have) < want) want = (size_t)(size - (pos + have));
    ssize_t n = pread(fd, buf + have, want, (off_t)(pos + have));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return qvm_error_set_errno(err, errno, "cannot read events.jsonl");
    if (n == 0) break;
    have += (size_t)n;
    size_t start = 0;
    char *nl;
    while (*count < QVM_VM_EVENTS_READ_MAX && (nl = memchr(buf + start, '\n', have - start))) {
      size_t len = (size_t)(nl - (buf + start));
      c->offset = pos + start + len + 1;
      bool skip = skipping || len == 0;
      skipping = false;
      if (!skip) {
        ++*count;
        int r = fn(ctx, buf + start, len, c);
        if (r) return r;
      }
      start += len + 1;
    }
    if (*count >= QVM_VM_EVENTS_READ_MAX) return 0;
    memmove(buf, buf + start, have - start);
    pos += start;
    have -= start;
    if (have == cap) { /* no '\n' in a whole buffer: over the cap */
      skipping = true;
      pos += have;
      have = 0;
    }
  }
  if (skipping) c->offset = pos; /* past the part of the long line there is */
  return 0;
}

static int open_log(int *out, struct stat *st, const char *path, qvm_error **err) {
  *out = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (*out < 0) {
    if (errno == ENOENT) return 0;
    return qvm_error_set_errno(err, errno, "cannot open %s", path);
  }
  if (fstat(*out, st) < 0 || !S_ISREG(st->st_mode)) {
    int e = errno;
    close(*out);
    *out = -1;
    return qvm_error_set_errno(err, S_ISREG(st->st_mode) ? e : EINVAL, "%s is not a regular file",
                               path);
  }
  return 0;
}

int qvm_vm_events_read(qvm_vm *vm, qvm_vm_events_cursor *cursor, qvm_vm_event_fn fn, void *ctx,
                       qvm_error **err) {
  if (!vm || !cursor || !fn) return qvm_error_set(err, QVM_EINVAL, "no vm, cursor or callback");
  const char *path = vm->paths.events;
  _cleanup_close_ int fd = -1;
  struct stat st;
  int r = open_log(&fd, &st, path, err);
  if (r < 0 || fd < 0) return r;
  int count = 0;
  if (cursor->file && cursor->file != (uint64_t)st.st_ino) {
    /* rotated since: the rest of the cursor's file, if it is still there */
    _cleanup_free_ char *old = NULL;
    if (asprintf(&old, "%s.1", path) < 0) return qvm_error_set_errno(err, ENOMEM, "events");
    _cleanup_close_ int ofd = -1;
    struct stat ost;
    r = open_log(&ofd, &ost, old, err);
    if (r < 0) return r;
    if (ofd >= 0 && (uint64_t)ost.st_ino == cursor->file &&
        cursor->offset <= (uint64_t)ost.st_size) {
      r = read_lines(ofd, (uint64_t)ost.st_size, cursor, fn, ctx, &count, err);
      if (r) return r;
      if (count >= QVM_VM_EVENTS_READ_MAX) return count;
    }
    *cursor = (qvm_vm_events_cursor){.file = (uint64_t)st.st_ino, .offset = 0};
  }
  if (!cursor->file || cursor->offset > (uint64_t)st.st_size)
    *cursor = (qvm_vm_events_cursor){.file = (uint64_t)st.st_ino, .offset = 0};
  r = read_lines(fd, (uint64_t)st.st_size, cursor, fn, ctx, &count, err);
  return r ? r : count;
}

int qvm_vm_events_end(qvm_vm_events_cursor *out, qvm_vm *vm, qvm_error **err) {
  if (!vm || !out) return qvm_error_set(err, QVM_EINVAL, "no vm or cursor");
  *out = (qvm_vm_events_cursor){0};
  _cleanup_close_ int fd = -1;
  struct stat st;
  int r = open_log(&fd, &st, vm->paths.events, err);
  if (r < 0 || fd < 0) return r;
  *out = (qvm_vm_events_cursor){.file = (uint64_t)st.st_ino, .offset = (uint64_t)st.st_size};
  return 0;
}
