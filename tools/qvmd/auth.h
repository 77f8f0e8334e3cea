/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_QVMD_AUTH_H
#define QVM_TOOLS_QVMD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "qvmd.h"

typedef struct qvmd_token qvmd_token;

/* Loads the token file, checking its owner and mode; -1 with msg set. */
int qvmd_tokens_load(const char *path, char *msg, size_t size);
/* Requests a second per token (burst: as many); 0: no limit. */
void qvmd_tokens_set_rate(unsigned per_s);
/* The token whose secret this is (constant time over all tokens); NULL: none. */
const qvmd_token *qvmd_token_find(const char *secret);
/* Whether the token may make one more request now (its rate limit). */
bool qvmd_token_admit(const qvmd_token *t);
void qvmd_token_caller(qvmd_caller *out, const qvmd_token *t);

#endif
