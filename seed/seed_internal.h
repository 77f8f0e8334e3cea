/* SPDX-License-Identifier: MIT */
#ifndef QVM_SEED_INTERNAL_H
#define QVM_SEED_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <qvm/seed.h>

#include "util/error.h"

/* spec.c: checks every field that ends up in a file name, a shell command
 * or a key the guest interprets. Values that are only data are emitted
 * safely and need no check. */
int seed_spec_check(const qvm_seed_spec *spec, qvm_error **err);
/* spec->growpart_off, read only from a version 2 (or later) spec. */
bool seed_spec_growpart_off(const qvm_seed_spec *spec);

/* spec.c: the user's cloud-config and script as bytes (read from their
 * paths if given); *out is NULL when there is none. */
int seed_user_part(char **out, size_t *out_len, const char **out_name, const char *data, size_t len,
                   const char *name, const char *path, qvm_error **err);

/* user_config.c: one YAML document whose top is a mapping; errors read
 * "<kind> '<name>' line N: ...". */
int seed_check_yaml_mapping(const char *data, size_t len, const char *kind, const char *name,
                            qvm_error **err);

/* base64 (RFC 4648, no line breaks). */
char *seed_base64(const void *data, size_t len);

#endif
