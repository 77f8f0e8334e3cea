/* SPDX-License-Identifier: MIT */
/*
 * The user's own cloud-config is untrusted input: it must parse as exactly
 * one YAML document whose top is a mapping, before it is merged. libyaml's
 * event parser never expands aliases, so a "billion laughs" file costs only
 * its own size; nesting is capped anyway.
 */
#include <stdio.h>
#include <string.h>

#include <yaml.h>

#include "seed/seed_internal.h"

#define MAX_DEPTH 64
#define MAX_EVENTS 1000000

typedef struct check_state {
  yaml_parser_t parser;
  const char *kind; /* "cloud-config", "meta-data", ... */
  const char *name;
  size_t depth;
  size_t documents;
} check_state;

static int parse_error(check_state *s, qvm_error **err) {
  const yaml_parser_t *p = &s->parser;
  const char *problem = p->problem ? p->problem : "invalid yaml";
  if (p->context)
    return qvm_error_set(err, QVM_EINVAL, "%s '%s' line %zu: %s %s (line %zu)", s->kind, s->name,
                         p->problem_mark.line + 1, problem, p->context, p->context_mark.line + 1);
  return qvm_error_set(err, QVM_EINVAL, "%s '%s' line %zu: %s", s->kind, s->name,
                       p->problem_mark.line + 1, problem);
}

/* Looks at one event; returns 1 at the end of the stream. */
static int check_event(check_state *s, const yaml_event_t *ev, qvm_error **err) {
  size_t line = ev->start_mark.line + 1;
  switch (ev->type) {
  case YAML_STREAM_END_EVENT: return 1;
  case YAML_DOCUMENT_START_EVENT:
    if (++s->documents > 1)
      return qvm_error_set(err, QVM_EINVAL, "%s '%s' line %zu: a second document is not allowed",
                           s->kind, s->name, line);
    return 0;
  case YAML_MAPPING_START_EVENT:
  case YAML_SEQUENCE_START_EVENT:
    if (s->depth == 0 && ev->type != YAML_MAPPING_START_EVENT)
      return qvm_error_set(err, QVM_EINVAL, "%s '%s' line %zu: the top is not a mapping", s->kind,
                           s->name, line);
    if (++s->depth > MAX_DEPTH)
      return qvm_error_set(err, QVM_EINVAL, "%s '%s' line %zu: nested deeper than %d", s->kind,
                           s->name, line, MAX_DEPTH);
    return 0;
  case YAML_MAPPING_END_EVENT:
  case YAML_SEQUENCE_END_EVENT: s->depth--; return 0;
  case YAML_SCALAR_EVENT:
  case YAML_ALIAS_EVENT:
    if (s->depth == 0)
      return qvm_error_set(err, QVM_EINVAL, "%s '%s' line %zu: the top is not a mapping", s->kind,
                           s->name, line);
    return 0;
  default: return 0;
  }
}

int seed_check_yaml_mapping(const char *data, size_t len, const char *kind, const char *name,
                            qvm_error **err) {
  check_state s = {.kind = kind, .name = name ? name : "(input)"};
  if (!yaml_parser_initialize(&s.parser))
    return qvm_error_set(err, QVM_ESYS, "cannot initialize the yaml parser");
  yaml_parser_set_input_string(&s.parser, (const unsigned char *)data, len);
  int r = 0;
  for (size_t n = 0; r == 0; n++) {
    yaml_event_t ev;
    if (n > MAX_EVENTS) {
      r = qvm_error_set(err, QVM_EINVAL, "%s '%s' is too complex", s.kind, s.name);
      break;
    }
    if (!yaml_parser_parse(&s.parser, &ev)) {
      r = parse_error(&s, err);
      break;
    }
    r = check_event(&s, &ev, err);
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&s.parser);
  if (r < 0) return r;
  if (s.documents == 0) return qvm_error_set(err, QVM_EINVAL, "%s '%s' is empty", s.kind, s.name);
  return 0;
}

int qvm_seed_check_user_config(const char *data, size_t len, const char *name, qvm_error **err) {
  return seed_check_yaml_mapping(data, len, "cloud-config", name ? name : "user cloud-config", err);
}
