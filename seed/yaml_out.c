/* SPDX-License-Identifier: MIT */
#include "seed/yaml_out.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int sb_write(void *data, unsigned char *buffer, size_t size) {
  qvm_strbuf *sb = data;
  qvm_strbuf_append(sb, buffer, size);
  return !sb->oom;
}

static void emit(yaml_out *y, yaml_event_t *ev, bool init_ok) {
  if (y->failed) {
    if (init_ok) yaml_event_delete(ev);
    return;
  }
  if (!init_ok) {
    y->failed = true;
    snprintf(y->problem, sizeof y->problem, "a value is not valid utf-8");
    return;
  }
  if (!yaml_emitter_emit(&y->emitter, ev)) { /* the emitter frees ev */
    y->failed = true;
    snprintf(y->problem, sizeof y->problem, "%s",
             y->emitter.problem ? y->emitter.problem : "emitter failed");
  }
}

void yaml_out_begin(yaml_out *y, const char *header) {
  memset(y, 0, sizeof *y);
  if (header) qvm_strbuf_puts(&y->sb, header);
  if (!yaml_emitter_initialize(&y->emitter)) {
    y->failed = true;
    snprintf(y->problem, sizeof y->problem, "cannot initialize the emitter");
    return;
  }
  yaml_emitter_set_output(&y->emitter, sb_write, &y->sb);
  yaml_emitter_set_unicode(&y->emitter, 1);
  yaml_emitter_set_width(&y->emitter, -1); /* never fold: keys stay on one line */
  yaml_emitter_set_indent(&y->emitter, 2);
  yaml_event_t ev;
  emit(y, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
  emit(y, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
}

int yaml_out_finish(yaml_out *y, char **out, size_t *out_len, const char *what, qvm_error **err) {
  yaml_event_t ev;
  emit(y, &ev, yaml_document_end_event_initialize(&ev, 1));
  emit(y, &ev, yaml_stream_end_event_initialize(&ev));
  if (!y->failed && !yaml_emitter_flush(&y->emitter)) y->failed = true;
  if (y->failed || y->sb.oom) {
    int r = qvm_error_set(err, QVM_EINVAL, "cannot write %s: %s", what,
                          y->sb.oom ? "out of memory" : y->problem);
    yaml_out_free(y);
    return r;
  }
  *out_len = y->sb.len;
  *out = qvm_strbuf_steal(&y->sb);
  yaml_out_free(y);
  return 0;
}

void yaml_out_free(yaml_out *y) {
  yaml_emitter_delete(&y->emitter);
  qvm_strbuf_free(&y->sb);
}

void yaml_out_map_begin(yaml_out *y) {
  yaml_event_t ev;
  emit(y, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
}

void yaml_out_map_end(yaml_out *y) {
  yaml_event_t ev;
  emit(y, &ev, yaml_mapping_end_event_initialize(&ev));
}

void yaml_out_seq_begin(yaml_out *y, bool flow) {
  yaml_event_t ev;
  emit(y, &ev,
       yaml_sequence_start_event_initialize(
           &ev, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE));
}

void yaml_out_seq_end(yaml_out *y) {
  yaml_event_t ev;
  emit(y, &ev, yaml_sequence_end_event_initialize(&ev));
}

static void scalar(yaml_out *y, const char *s, size_t len, yaml_scalar_style_t style) {
  yaml_event_t ev;
  emit(y, &ev,
       yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, 1, 1, style));
}

/* YAML 1.1 resolves these (any case) to null or booleans. */
static bool yaml11_special(const char *s, size_t len) {
  static const char *const words[] = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (strlen(words[i]) == len && strncasecmp(words[i], s, len) == 0) return true;
  return false;
}

bool yaml_plain_safe(const char *s, size_t len) {
  if (len == 0 || len > 200) return false;
  unsigned char c0 = (unsigned char)s[0];
  /* A letter or '/' first: never a number, date, indicator or anchor. */
  if (!((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') || c0 == '/')) return false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '/' || c == '@' || c == '+' || c == '=';
    if (!ok) return false;
  }
  return !yaml11_special(s, len);
}

void yaml_out_key(yaml_out *y, const char *key) {
  scalar(y, key, strlen(key), YAML_PLAIN_SCALAR_STYLE);
}

void yaml_out_strn(yaml_out *y, const char *s, size_t len) {
  if (len > INT32_MAX) {
    if (!y->failed) snprintf(y->problem, sizeof y->problem, "a value is too long");
    y->failed = true;
    return;
  }
  scalar(y, s, len,
         yaml_plain_safe(s, len) ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

void yaml_out_str(yaml_out *y, const char *s) { yaml_out_strn(y, s, strlen(s)); }

void yaml_out_text(yaml_out *y, const char *s, size_t len) {
  if (!memchr(s, '\n', len) || len > INT32_MAX) {
    yaml_out_strn(y, s, len);
    return;
  }
  /* libyaml falls back to double quotes when a literal cannot hold it. */
  scalar(y, s, len, YAML_LITERAL_SCALAR_STYLE);
}

void yaml_out_bool(yaml_out *y, bool v) {
  scalar(y, v ? "true" : "false", v ? 4 : 5, YAML_PLAIN_SCALAR_STYLE);
}

void yaml_out_kv(yaml_out *y, const char *key, const char *value) {
  if (!value) return;
  yaml_out_key(y, key);
  yaml_out_str(y, value);
}

void yaml_out_kv_bool(yaml_out *y, const char *key, bool v) {
  yaml_out_key(y, key);
  yaml_out_bool(y, v);
}

void yaml_out_kv_list(yaml_out *y, const char *key, const char *const *items, size_t n) {
  if (!n) return;
  yaml_out_key(y, key);
  yaml_out_seq_begin(y, false);
  for (size_t i = 0; i < n; i++) yaml_out_str(y, items[i]);
  yaml_out_seq_end(y);
}
