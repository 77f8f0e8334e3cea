/* SPDX-License-Identifier: MIT */
#ifndef QVM_DIFF_PLAYBOOK_H
#define QVM_DIFF_PLAYBOOK_H

/* A playbook written with libyaml's emitter (events, never printf): one play
 * whose tasks are added in order. Guest strings go through the _unsafe
 * calls: a double-quoted scalar tagged !unsafe (Ansible never templates
 * it). The first failure sticks; pb_finish() reports it. */
#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

#include "util/error.h"
#include "util/strbuf.h"

typedef struct playbook {
  yaml_emitter_t emitter;
  qvm_strbuf sb;
  bool failed;
  char problem[160];
  size_t tasks;
} playbook;

/* Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF,
 * and no NUL. */
bool pb_utf8_valid(const char *s, size_t len);

void pb_begin(playbook *p, const char *hosts);
int pb_finish(playbook *p, char **out, size_t *out_len, qvm_error **err);

/* "- name: <verb> <subject, neutralized>\n  <module>:" and its argument map;
 * subject may be NULL. */
void pb_task_begin(playbook *p, const char *verb, const char *subject, size_t subject_len,
                   const char *module);
void pb_task_end(playbook *p);
/* Keys and values qvm chose (plain or double-quoted as needed). */
void pb_kv(playbook *p, const char *key, const char *value);
void pb_kv_bool(playbook *p, const char *key, bool v);
/* A guest string value: !unsafe "...". */
void pb_kv_unsafe(playbook *p, const char *key, const char *value, size_t len);
void pb_key(playbook *p, const char *key);
void pb_seq_begin(playbook *p);
void pb_seq_end(playbook *p);
void pb_str(playbook *p, const char *value);
void pb_unsafe(playbook *p, const char *value, size_t len);

#endif
