/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_AUDIT_LOG_H
#define QVM_VM_AUDIT_LOG_H

/* What vm/audit.c (the writer) and vm/audit_read.c (verify, list) share. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "util/error.h"

/* Every line ends with `,"hash":"<64 hex>"}`. */
#define AUDIT_HASH_SUFFIX_LEN 75

/* STATE/audit/audit.jsonl; with prepare, STATE and STATE/audit are made
 * (0700, checked as the state dir is). */
int audit_log_path(char **out, bool prepare, qvm_error **err);
/* text[0..len) as exactly one JSON object (strict, valid UTF-8); -1 if not. */
int audit_parse_object(struct json_object **out, const char *text, size_t len);
/* The seq of a record line; -1 if it does not parse or has none. */
int audit_line_seq(uint64_t *out, const char *line, size_t len);

#endif
