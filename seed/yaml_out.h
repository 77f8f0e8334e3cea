/* SPDX-License-Identifier: MIT */
#ifndef QVM_SEED_YAML_OUT_H
#define QVM_SEED_YAML_OUT_H

/*
 * A thin layer over libyaml's emitter (events, never printf). Every string
 * value goes through yaml_out_str(), which picks a scalar style that parses
 * back to the same string in YAML 1.1 and 1.2 readers (PyYAML, libyaml):
 * plain only for a conservative set of strings that cannot be read as
 * another type or as structure, double-quoted otherwise. The first failure
 * sticks; yaml_out_finish() reports it.
 */
#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

#include "util/error.h"
#include "util/strbuf.h"

typedef struct yaml_out {
  yaml_emitter_t emitter;
  qvm_strbuf sb;
  bool failed;
  char problem[160];
} yaml_out;

/* Starts a stream and one implicit document; `header` (e.g.
 * "#cloud-config\n") is put before it, or NULL. */
void yaml_out_begin(yaml_out *y, const char *header);
/* Ends the document and stream; on success *out is the text (caller frees). */
int yaml_out_finish(yaml_out *y, char **out, size_t *out_len, const char *what, qvm_error **err);
void yaml_out_free(yaml_out *y);

void yaml_out_map_begin(yaml_out *y);
void yaml_out_map_end(yaml_out *y);
void yaml_out_seq_begin(yaml_out *y, bool flow);
void yaml_out_seq_end(yaml_out *y);
/* A key or token the program chose (an identifier, a number): plain. */
void yaml_out_key(yaml_out *y, const char *key);
/* Any string value, emitted so it round-trips unchanged. */
void yaml_out_str(yaml_out *y, const char *s);
void yaml_out_strn(yaml_out *y, const char *s, size_t len);
/* A multi-line text value: literal block style when libyaml can represent
 * it exactly, double-quoted otherwise. */
void yaml_out_text(yaml_out *y, const char *s, size_t len);
void yaml_out_bool(yaml_out *y, bool v);
/* key: value shorthands; NULL values are skipped. */
void yaml_out_kv(yaml_out *y, const char *key, const char *value);
void yaml_out_kv_bool(yaml_out *y, const char *key, bool v);
void yaml_out_kv_list(yaml_out *y, const char *key, const char *const *items, size_t n);

/* True if s can be emitted plain and read back as the same string. */
bool yaml_plain_safe(const char *s, size_t len);

#endif
