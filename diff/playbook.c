/* SPDX-License-Identifier: MIT */
#include "diff/playbook.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/text.h>

bool pb_utf8_valid(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  for (size_t i = 0; i < len;) {
    unsigned c = s[i];
    size_t n;
    uint32_t cp, min;
    if (c == 0) return false;
    if (c < 0x80) {
      i++;
      continue;
    }
    if ((c & 0xE0) == 0xC0)
      n = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
      n = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
      n = 4, cp = c & 0x07, min = 0x10000;
    else
      return false;
    if (len - i < n) return false;
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

static int sb_write(void *data, unsigned char *buffer, size_t size) {
  qvm_strbuf *sb = data;
  qvm_strbuf_append(sb, buffer, size);
  return !sb->oom;
}

static void emit(playbook *p, yaml_event_t *ev, bool init_ok) {
  if (p->failed) {
    if (init_ok) yaml_event_delete(ev);
    return;
  }
  if (!init_ok) {
    p->failed = true;
    snprintf(p->problem, sizeof p->problem, "a value is not valid utf-8");
    return;
  }
  if (!yaml_emitter_emit(&p->emitter, ev)) { /* the emitter frees ev */
    p->failed = true;
    snprintf(p->problem, sizeof p->problem, "%s",
             p->emitter.problem ? p->emitter.problem : "emitter failed");
  }
}

static void scalar(playbook *p, const char *tag, const char *s, size_t len,
                   yaml_scalar_style_t style) {
  yaml_event_t ev;
  if (len > INT32_MAX) {
    p->failed = true;
    snprintf(p->problem, sizeof p->problem, "a value is too long");
    return;
  }
  emit(p, &ev,
       yaml_scalar_event_initialize(&ev, NULL, (yaml_char_t *)tag, (yaml_char_t *)s, (int)len, !tag,
                                    !tag, style));
}

static void map_begin(playbook *p) {
  yaml_event_t ev;
  emit(p, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
}

static void map_end(playbook *p) {
  yaml_event_t ev;
  emit(p, &ev, yaml_mapping_end_event_initialize(&ev));
}

void pb_seq_begin(playbook *p) {
  yaml_event_t ev;
  emit(p, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE));
}

void pb_seq_end(playbook *p) {
  yaml_event_t ev;
  emit(p, &ev, yaml_sequence_end_event_initialize(&ev));
}

void pb_key(playbook *p, const char *key) {
  scalar(p, NULL, key, strlen(key), YAML_PLAIN_SCALAR_STYLE);
}

void pb_str(playbook *p, const char *value) {
  scalar(p, NULL, value, strlen(value), YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

void pb_unsafe(playbook *p, const char *value, size_t len) {
  scalar(p, "!unsafe", value, len, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

void pb_kv(playbook *p, const char *key, const char *value) {
  pb_key(p, key);
  pb_str(p, value);
}

void pb_kv_bool(playbook *p, const char *key, bool v) {
  pb_key(p, key);
  scalar(p, NULL, v ? "true" : "false", v ? 4 : 5, YAML_PLAIN_SCALAR_STYLE);
}

void pb_kv_unsafe(playbook *p, const char *key, const char *value, size_t len) {
  pb_key(p, key);
  pb_unsafe(p, value, len);
}

void pb_begin(playbook *p, const char *hosts) {
  memset(p, 0, sizeof *p);
  qvm_strbuf_puts(&p->sb, "# Written by qvm diff --ansible: the changes of a diff, to apply to a\n"
                          "# machine that starts from the diff's base state.\n");
  if (!yaml_emitter_initialize(&p->emitter)) {
    p->failed = true;
    snprintf(p->problem, sizeof p->problem, "cannot initialize the emitter");
    return;
  }
  yaml_emitter_set_output(&p->emitter, sb_write, &p->sb);
  yaml_emitter_set_unicode(&p->emitter, 1);
  yaml_emitter_set_width(&p->emitter, -1);
  yaml_emitter_set_indent(&p->emitter, 2);
  yaml_event_t ev;
  emit(p, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
  emit(p, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0));
  pb_seq_begin(p);
  map_begin(p);
  pb_kv(p, "name", "changes from qvm diff");
  pb_key(p, "hosts");
  pb_str(p, hosts);
  pb_kv_bool(p, "become", true);
  pb_kv_bool(p, "gather_facts", false);
  pb_key(p, "tasks");
  pb_seq_begin(p);
}

int pb_finish(playbook *p, char **out, size_t *out_len, qvm_error **err) {
  yaml_event_t ev;
  pb_seq_end(p); /* tasks */
  map_end(p);    /* the play */
  pb_seq_end(p); /* the plays */
  emit(p, &ev, yaml_document_end_event_initialize(&ev, 1));
  emit(p, &ev, yaml_stream_end_event_initialize(&ev));
  if (!p->failed && !yaml_emitter_flush(&p->emitter)) p->failed = true;
  int r = 0;
  if (p->failed || p->sb.oom) {
    r = qvm_error_set(err, QVM_EINVAL, "cannot write the playbook: %s",
                      p->sb.oom ? "out of memory" : p->problem);
  } else {
    *out_len = p->sb.len;
    *out = qvm_strbuf_steal(&p->sb);
  }
  yaml_emitter_delete(&p->emitter);
  qvm_strbuf_free(&p->sb);
  return r;
}

void pb_task_begin(playbook *p, const char *verb, const char *subject, size_t subject_len,
                   const char *module) {
  char *shown = subject ? qvm_text_for_terminal(subject, subject_len, 0) : NULL;
  char *name = NULL;
  if ((subject && !shown) ||
      asprintf(&name, "%s%s%s", verb, shown ? " " : "", shown ? shown : "") < 0) {
    p->failed = true;
    snprintf(p->problem, sizeof p->problem, "out of memory");
    name = NULL;
  }
  map_begin(p);
  pb_key(p, "name");
  if (name) pb_unsafe(p, name, strlen(name));
  pb_key(p, module);
  map_begin(p);
  free(name);
  free(shown);
  p->tasks++;
}

void pb_task_end(playbook *p) {
  map_end(p); /* the module's arguments */
  map_end(p); /* the task */
}
