/* SPDX-License-Identifier: MIT */
#ifndef QVM_QMP_READER_H
#define QVM_QMP_READER_H

/*
 * QMP framing, with no I/O: bytes in, JSON objects out.
 *
 * QEMU writes each message as one line of compact JSON ended by "\r\n". The
 * reader splits the stream on '\n', drops a trailing '\r' and blank lines,
 * and parses each line on its own: a line must be valid UTF-8 (checked here,
 * strictly) holding exactly one JSON object no deeper than max_depth. A line
 * longer than max_message is refused as soon as its bytes arrive, so memory
 * stays bounded by max_message plus what one feed adds.
 *
 * Errors are QVM_EPROTO. After one, the reader is broken: every later call
 * fails with the same kind of error, so a caller cannot resynchronize by
 * accident in the middle of someone else's message.
 */
#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "util/error.h"

typedef struct qmp_reader qmp_reader;

/* For _cleanup_(qmp_json_putp) struct json_object *obj = NULL; */
static inline void qmp_json_putp(struct json_object **obj) {
  if (*obj) json_object_put(*obj);
}

/* Upper bounds accepted for the limits themselves. */
#define QMP_READER_MAX_MESSAGE ((size_t)1 << 30)
#define QMP_READER_MAX_DEPTH ((size_t)10000)

int qmp_reader_new(qmp_reader **out, size_t max_message, size_t max_depth, qvm_error **err);
void qmp_reader_free(qmp_reader *reader);

/* Appends bytes from the peer. Fails once the unterminated line exceeds
 * max_message; complete lines are kept until qmp_reader_next() takes them. */
int qmp_reader_feed(qmp_reader *reader, const void *data, size_t len, qvm_error **err);

/* Takes the next complete message: returns 1 with *out set (owned by the
 * caller), 0 when no complete line is buffered, or a negative code. */
int qmp_reader_next(struct json_object **out, qmp_reader *reader, qvm_error **err);

/* The peer closed the stream: fails if part of a message is still buffered
 * (EOF in the middle of a message). Complete lines must be taken first. */
int qmp_reader_finish(qmp_reader *reader, qvm_error **err);

/* Bytes buffered that do not yet form a complete line. */
size_t qmp_reader_partial_len(const qmp_reader *reader);
/* True when a complete line is buffered (qmp_reader_next will return it). */
bool qmp_reader_has_line(const qmp_reader *reader);
bool qmp_reader_broken(const qmp_reader *reader);

/* Strict UTF-8 check (no overlongs, surrogates or code points past
 * U+10FFFF). Returns the offset of the first bad byte, or len if valid. */
size_t qmp_utf8_check(const unsigned char *s, size_t len);

#endif
