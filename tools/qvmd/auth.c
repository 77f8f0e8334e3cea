/* SPDX-License-Identifier: MIT */
/* Bearer tokens for TCP (the --tokens file), compared in constant time, and
 * a rate limit per token. File format (docs/qvmd.md): one token a line,
 * "SECRET SCOPE", SCOPE one of read, full, agent:ID; '#' starts a comment.
 * The file must be a regular file owned by qvmd's user with no group or
 * other permission bits (0600 or stricter), or qvmd refuses to start. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <qvm/vm.h>

#include "auth.h"

#define TOKENS_MAX 1024
#define TOKEN_MIN 16
#define TOKEN_MAX 256
#define TOKENS_FILE_MAX (1u << 20)

struct qvmd_token {
  unsigned char hash[crypto_generichash_BYTES];
  qvmd_scope scope;
  char agent[QVM_VM_AGENT_MAX + 1];
  double bucket; /* requests allowed now */
  int64_t refilled_ns;
};

static qvmd_token tokens[TOKENS_MAX];
static size_t n_tokens;
static unsigned char hash_key[crypto_generichash_KEYBYTES];
static unsigned rate_per_s = 20;
static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;

static void token_hash(unsigned char *out, const char *secret, size_t len) {
  crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *)secret, len, hash_key,
                     sizeof hash_key);
}

static bool secret_valid(const char *s, size_t len) {
  if (len < TOKEN_MIN || len > TOKEN_MAX) return false;
  for (size_t i = 0; i < len; i++)
    if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+/=-", s[i]))
      return false;
  return true;
}

static int parse_line(char *line, unsigned lineno, const char *path, char *msg, size_t size) {
  char *save = NULL;
  char *secret = strtok_r(line, " \t\r", &save);
  char *scope = strtok_r(NULL, " \t\r", &save), *extra = strtok_r(NULL, " \t\r", &save);
  if (!secret) return 0;
  if (!scope || extra) {
    snprintf(msg, size, "%s:%u: expected 'SECRET SCOPE'", path, lineno);
    return -1;
  }
  if (!secret_valid(secret, strlen(secret))) {
    snprintf(msg, size, "%s:%u: a token must be %d to %d characters of [A-Za-z0-9._~+/=-]", path,
             lineno, TOKEN_MIN, TOKEN_MAX);
    return -1;
  }
  if (n_tokens == TOKENS_MAX) {
    snprintf(msg, size, "%s: more than %d tokens", path, TOKENS_MAX);
    return -1;
  }
  qvmd_token *t = &tokens[n_tokens];
  memset(t, 0, sizeof *t);
  if (!strcmp(scope, "read")) {
    t->scope = QVMD_SCOPE_READ;
  } else if (!strcmp(scope, "full")) {
    t->scope = QVMD_SCOPE_FULL;
  } else if (!strncmp(scope, "agent:", 6) && qvm_vm_agent_check(scope + 6, NULL) == 0) {
    t->scope = QVMD_SCOPE_AGENT;
    snprintf(t->agent, sizeof t->agent, "%s", scope + 6);
  } else {
    snprintf(msg, size, "%s:%u: the scope must be read, full or agent:ID (ID as an agent id)", path,
             lineno);
    return -1;
  }
  token_hash(t->hash, secret, strlen(secret));
  sodium_memzero(secret, strlen(secret));
  t->bucket = rate_per_s;
  n_tokens++;
  return 0;
}

static int read_all(int fd, char *buf, size_t size, size_t *out_len) {
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, buf + len, size - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    len += (size_t)r;
    if (len == size) return -1;
  }
  *out_len = len;
  return 0;
}

int qvmd_tokens_load(const char *path, char *msg, size_t size) {
  if (sodium_init() < 0) {
    snprintf(msg, size, "libsodium did not initialize");
    return -1;
  }
  randombytes_buf(hash_key, sizeof hash_key);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    snprintf(msg, size, "cannot open the token file '%s': %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  int r = -1;
  char *buf = NULL;
  size_t len = 0;
  if (!S_ISREG(st.st_mode)) {
    snprintf(msg, size, "the token file '%s' is not a regular file", path);
  } else if (st.st_uid != geteuid()) {
    snprintf(msg, size, "the token file '%s' is owned by uid %u, not by qvmd's user (uid %u)", path,
             (unsigned)st.st_uid, (unsigned)geteuid());
  } else if (st.st_mode & 077) {
    snprintf(msg, size, "the token file '%s' has mode %04o: it must be 0600 (chmod 600 it)", path,
             (unsigned)(st.st_mode & 07777));
  } else if (!(buf = malloc(TOKENS_FILE_MAX + 1)) || read_all(fd, buf, TOKENS_FILE_MAX, &len) < 0) {
    snprintf(msg, size, "cannot read the token file '%s' (at most %u bytes)", path,
             TOKENS_FILE_MAX);
  } else {
    buf[len] = '\0';
    r = 0;
    unsigned lineno = 0;
    if (memchr(buf, '\0', len)) {
      snprintf(msg, size, "the token file '%s' holds a NUL byte", path);
      r = -1;
    }
    for (char *p = buf; r == 0 && *p;) {
      char *end = strchr(p, '\n');
      if (end) *end = '\0';
      lineno++;
      char *hash = strchr(p, '#');
      if (hash) *hash = '\0';
      r = parse_line(p, lineno, path, msg, size);
      if (!end) break;
      p = end + 1;
    }
    if (r == 0 && n_tokens == 0) {
      snprintf(msg, size, "the token file '%s' has no token", path);
      r = -1;
    }
  }
  if (buf) {
    sodium_memzero(buf, TOKENS_FILE_MAX + 1);
    free(buf);
  }
  close(fd);
  return r;
}

void qvmd_tokens_set_rate(unsigned per_s) { rate_per_s = per_s; }

const qvmd_token *qvmd_token_find(const char *secret) {
  size_t len = strlen(secret);
  if (len > TOKEN_MAX) return NULL;
  unsigned char h[crypto_generichash_BYTES];
  token_hash(h, secret, len);
  const qvmd_token *found = NULL;
  /* Every token is compared, the match or not: the time taken says nothing
   * about which one matched or how much of one. */
  for (size_t i = 0; i < n_tokens; i++) {
    bool same = sodium_memcmp(h, tokens[i].hash, sizeof h) == 0;
    found = same ? &tokens[i] : found;
  }
  return found;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool qvmd_token_admit(const qvmd_token *ct) {
  if (rate_per_s == 0) return true;
  qvmd_token *t = &tokens[ct - tokens];
  pthread_mutex_lock(&rate_lock);
  int64_t now = now_ns();
  if (t->refilled_ns) t->bucket += (double)(now - t->refilled_ns) * rate_per_s / 1e9;
  if (t->bucket > rate_per_s) t->bucket = rate_per_s;
  t->refilled_ns = now;
  bool ok = t->bucket >= 1.0;
  if (ok) t->bucket -= 1.0;
  pthread_mutex_unlock(&rate_lock);
  return ok;
}

void qvmd_token_caller(qvmd_caller *out, const qvmd_token *t) {
  out->scope = t->scope;
  out->agent = t->scope == QVMD_SCOPE_AGENT ? t->agent : NULL;
  out->token = t;
  out->uid = -1;
}
