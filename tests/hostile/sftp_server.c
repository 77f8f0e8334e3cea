/* SPDX-License-Identifier: MIT */
/*
 * A hostile SFTP v3 server for tests/hostile/sftp_download.c: sshd runs it
 * as its `Subsystem sftp`, so it speaks the SFTP framing on stdin/stdout.
 * It serves a small made-up tree in which every top-level path is one
 * attack (see `nodes` below and the special cases in readdir_reply and
 * read_reply):
 *
 *   /modes          setuid, setgid, sticky and world-writable modes
 *   /tree           an ordinary tree (the test plants symlinks locally)
 *   /dots           "." and ".." listed as directories, and a file
 *   /esc-*          names carrying terminal escapes, in error paths
 *   /endless-dots   a READDIR that lists "." and ".." forever
 *   /endless-names  a READDIR that lists new empty files forever
 *   /endless-file   a file whose READs never reach EOF
 *   /stall-quiet    a deep tree whose handles never answer CLOSE
 *   /stall-noisy    the same, and once a CLOSE is left unanswered the
 *                   server keeps the socket busy with stray replies
 *   /merge777/.     directories with mode 0777 and 0000 whose content a
 *   /merge000/.     download merges into its destination ("." at the end)
 *
 * "Forever" has a safety stop far beyond what the client may accept, so a
 * client without caps fails its test instead of filling the disk.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
  FXP_INIT = 1,
  FXP_VERSION = 2,
  FXP_OPEN = 3,
  FXP_CLOSE = 4,
  FXP_READ = 5,
  FXP_LSTAT = 7,
  FXP_FSTAT = 8,
  FXP_OPENDIR = 11,
  FXP_READDIR = 12,
  FXP_REALPATH = 16,
  FXP_STAT = 17,
  FXP_STATUS = 101,
  FXP_HANDLE = 102,
  FXP_DATA = 103,
  FXP_NAME = 104,
  FXP_ATTRS = 105,
};
enum {
  FX_OK = 0,
  FX_EOF = 1,
  FX_NO_SUCH_FILE = 2,
  FX_PERMISSION_DENIED = 3,
  FX_FAILURE = 4,
  FX_OP_UNSUPPORTED = 8
};
enum { ATTR_SIZE = 1, ATTR_PERMISSIONS = 4, ATTR_ACMODTIME = 8 };

#define MTIME 981173106u /* 2001-02-03 04:05:06 UTC */
#define ESC_NAME                                                                                   \
  "\x1b]0;pwned\x07\x1b[2J\x9b"                                                                    \
  "31m\xc2\x9b"                                                                                    \
  "1m\xe2\x80\xae"                                                                                 \
  "evil"
#define ENDLESS_FILE_STOP (1ull << 30) /* 1 GiB */
#define ENDLESS_NAMES_STOP 200000u
#define ENDLESS_DOTS_STOP 20000000u

typedef enum { PLAIN, OPEN_FAILS, ENDLESS_FILE, ENDLESS_DOTS, ENDLESS_NAMES } kind;

typedef struct node {
  const char *dir, *name; /* path = dir "/" name; top level: dir "" */
  unsigned mode;
  kind kind;
} node;

static const node nodes[] = {
    {"", "modes", 042777, PLAIN},
    {"/modes", "suid", 0104755, PLAIN},
    {"/modes", "sgid", 0102755, PLAIN},
    {"/modes", "all", 0107777, PLAIN},
    {"/modes", "ww", 0100666, PLAIN},
    {"/modes", "sub", 041777, PLAIN},
    {"/modes/sub", "inner", 0104777, PLAIN},
    {"", "tree", 040755, PLAIN},
    {"/tree", "f", 0100644, PLAIN},
    {"/tree", "sub", 040755, PLAIN},
    {"/tree/sub", "g", 0100644, PLAIN},
    {"", "dots", 040755, PLAIN},
    {"/dots", ".", 040777, PLAIN},
    {"/dots", "..", 040777, PLAIN},
    {"/dots", "x", 0100644, PLAIN},
    {"", "esc-type", 040755, PLAIN},
    {"/esc-type", ESC_NAME, 0120777, PLAIN}, /* a symlink: refused, named */
    {"", "esc-open", 040755, PLAIN},
    {"/esc-open", ESC_NAME, 0100644, OPEN_FAILS},
    {"", "esc-slash", 040755, PLAIN},
    {"/esc-slash", "a/" ESC_NAME, 0100644, PLAIN},
    {"", "esc-local", 040755, PLAIN},
    {"/esc-local", ESC_NAME, 0100644, PLAIN}, /* the test plants a symlink of that name */
    {"", "endless-dots", 040755, ENDLESS_DOTS},
    {"", "endless-names", 040755, ENDLESS_NAMES},
    {"", "endless-file", 0100644, ENDLESS_FILE},
    {"", "stall-quiet", 040755, PLAIN},
    {"/stall-quiet", "a", 040755, PLAIN},
    {"/stall-quiet/a", "b", 040755, PLAIN},
    {"/stall-quiet/a/b", "c", 040755, PLAIN},
    {"/stall-quiet/a/b/c", "f", 0100644, PLAIN},
    {"", "stall-noisy", 040755, PLAIN},
    {"/stall-noisy", "a", 040755, PLAIN},
    {"/stall-noisy/a", "b", 040755, PLAIN},
    {"/stall-noisy/a/b", "f", 0100644, PLAIN},
    {"", "merge777", 040777, PLAIN},
    {"/merge777", "x", 0100644, PLAIN},
    {"", "merge000", 040000, PLAIN},
    {"/merge000", "x", 0100644, PLAIN},
};
#define N_NODES (sizeof nodes / sizeof nodes[0])
static const char CONTENT[] = "hostile\n";

/* ---- framing ---- */

typedef struct buf {
  unsigned char *p;
  size_t len, cap;
} buf;

static void put(buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2 + 256;
    b->p = realloc(b->p, b->cap);
    if (!b->p) exit(2);
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
}
static void put_u8(buf *b, unsigned v) { put(b, &(unsigned char){(unsigned char)v}, 1); }
static void put_u32(buf *b, uint32_t v) {
  unsigned char x[4] = {v >> 24, v >> 16, v >> 8, v};
  put(b, x, 4);
}
static void put_u64(buf *b, uint64_t v) {
  put_u32(b, (uint32_t)(v >> 32));
  put_u32(b, (uint32_t)v);
}
static void put_str(buf *b, const void *s, size_t n) {
  put_u32(b, (uint32_t)n);
  put(b, s, n);
}
static void put_cstr(buf *b, const char *s) { put_str(b, s, strlen(s)); }

static void put_attrs(buf *b, const node *n) {
  put_u32(b, ATTR_SIZE | ATTR_PERMISSIONS | ATTR_ACMODTIME);
  put_u64(b, (n->mode & 0170000) == 0100000 ? sizeof CONTENT - 1 : 4096);
  put_u32(b, n->mode);
  put_u32(b, MTIME);
  put_u32(b, MTIME);
}

static bool read_full(void *p, size_t n) {
  for (size_t got = 0; got < n;) {
    ssize_t r = read(0, (char *)p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += (size_t)r;
  }
  return true;
}

static void send_packet(buf *body) {
  unsigned char len[4] = {body->len >> 24, body->len >> 16, body->len >> 8, body->len};
  buf out = {0};
  put(&out, len, 4);
  put(&out, body->p, body->len);
  for (size_t off = 0; off < out.len;) {
    ssize_t w = write(1, out.p + off, out.len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) exit(0);
    off += (size_t)w;
  }
  free(out.p);
  free(body->p);
  *body = (buf){0};
}

typedef struct req {
  const unsigned char *p, *end;
} req;

static uint32_t get_u32(req *r) {
  if (r->end - r->p < 4) exit(3);
  uint32_t v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
  r->p += 4;
  return v;
}
static uint64_t get_u64(req *r) {
  uint64_t hi = get_u32(r);
  return hi << 32 | get_u32(r);
}
static char *get_str(req *r) {
  uint32_t n = get_u32(r);
  if ((uint32_t)(r->end - r->p) < n) exit(3);
  char *s = strndup((const char *)r->p, n);
  r->p += n;
  return s;
}

static void status(uint32_t id, uint32_t code) {
  buf b = {0};
  put_u8(&b, FXP_STATUS);
  put_u32(&b, id);
  put_u32(&b, code);
  put_cstr(&b, code ? "no" : "ok");
  put_cstr(&b, "");
  send_packet(&b);
}

/* ---- the made-up tree ---- */

static node endless_name_node;

/* "/dir/." is "/dir" and "/dir/./x" is "/dir/x" (a merging download asks
 * for them so). */
static char *normalize(char *path) {
  char *dot;
  while ((dot = strstr(path, "/./"))) memmove(dot, dot + 2, strlen(dot + 2) + 1);
  size_t n = strlen(path);
  if (n > 2 && !strcmp(path + n - 2, "/.")) path[n - 2] = '\0';
  return path;
}

static const node *lookup(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return NULL;
  size_t dir_len = (size_t)(slash - path);
  for (size_t i = 0; i < N_NODES; i++)
    if (strlen(nodes[i].dir) == dir_len && !strncmp(nodes[i].dir, path, dir_len) &&
        !strcmp(nodes[i].name, slash + 1))
      return &nodes[i];
  if (!strncmp(path, "/endless-names/", 15)) {
    endless_name_node = (node){"/endless-names", "", 0100644, PLAIN};
    return &endless_name_node;
  }
  return NULL;
}

typedef struct handle {
  bool used;
  char *path;
  const node *node;
  size_t next; /* READDIR: next child index, or count of endless batches */
} handle;
static handle handles[64];

static void send_handle(uint32_t id, char *path, const node *n) {
  for (unsigned i = 0; i < 64; i++) {
    if (handles[i].used) continue;
    handles[i] = (handle){.used = true, .path = path, .node = n};
    char h[16];
    snprintf(h, sizeof h, "h%u", i);
    buf b = {0};
    put_u8(&b, FXP_HANDLE);
    put_u32(&b, id);
    put_cstr(&b, h);
    send_packet(&b);
    return;
  }
  free(path);
  status(id, FX_FAILURE);
}

static handle *find_handle(req *r) {
  char *h = get_str(r);
  unsigned i = 64;
  if (h[0] == 'h') i = (unsigned)atoi(h + 1);
  free(h);
  return i < 64 && handles[i].used ? &handles[i] : NULL;
}

static void name_entry(buf *b, const char *name, size_t len, const node *n) {
  put_str(b, name, len);
  put_str(b, name, len); /* longname */
  put_attrs(b, n);
}

static void readdir_reply(uint32_t id, handle *h) {
  buf b = {0};
  put_u8(&b, FXP_NAME);
  put_u32(&b, id);
  if (h->node->kind == ENDLESS_DOTS && h->next * 1000 < ENDLESS_DOTS_STOP) {
    node dir = {"", "", 040755, PLAIN};
    put_u32(&b, 1000);
    for (int i = 0; i < 1000; i++) name_entry(&b, i % 2 ? ".." : ".", i % 2 ? 2 : 1, &dir);
    h->next++;
    send_packet(&b);
    return;
  }
  if (h->node->kind == ENDLESS_NAMES && h->next * 100 < ENDLESS_NAMES_STOP) {
    node file = {"", "", 0100644, PLAIN};
    put_u32(&b, 100);
    for (int i = 0; i < 100; i++) {
      char name[32];
      int n = snprintf(name, sizeof name, "n%08zu", h->next * 100 + (size_t)i);
      name_entry(&b, name, (size_t)n, &file);
    }
    h->next++;
    send_packet(&b);
    return;
  }
  uint32_t count = 0;
  buf entries = {0};
  for (size_t i = h->next; i < N_NODES && h->node->kind == PLAIN; i++)
    if (!strcmp(nodes[i].dir, h->path))
      name_entry(&entries, nodes[i].name, strlen(nodes[i].name), &nodes[i]), count++;
  h->next = N_NODES;
  free(b.p);
  if (!count) {
    free(entries.p);
    status(id, FX_EOF);
    return;
  }
  b = (buf){0};
  put_u8(&b, FXP_NAME);
  put_u32(&b, id);
  put_u32(&b, count);
  put(&b, entries.p, entries.len);
  free(entries.p);
  send_packet(&b);
}

static void read_reply(uint32_t id, handle *h, uint64_t off, uint32_t len) {
  if (len > 65536) len = 65536;
  buf b = {0};
  if (h->node->kind == ENDLESS_FILE && off < ENDLESS_FILE_STOP) {
    char *data = malloc(len);
    memset(data, 'A', len);
    put_u8(&b, FXP_DATA);
    put_u32(&b, id);
    put_str(&b, data, len);
    free(data);
    send_packet(&b);
    return;
  }
  if (h->node->kind == ENDLESS_FILE || off >= sizeof CONTENT - 1) {
    status(id, FX_EOF);
    return;
  }
  size_t n = sizeof CONTENT - 1 - off < len ? sizeof CONTENT - 1 - off : len;
  put_u8(&b, FXP_DATA);
  put_u32(&b, id);
  put_str(&b, CONTENT + off, n);
  send_packet(&b);
}

static void stat_reply(uint32_t id, const char *path) {
  const node *n = lookup(path);
  if (!n) return status(id, FX_NO_SUCH_FILE);
  buf b = {0};
  put_u8(&b, FXP_ATTRS);
  put_u32(&b, id);
  put_attrs(&b, n);
  send_packet(&b);
}

/* CLOSE of a /stall-noisy handle: never answered, and meanwhile the socket
 * is kept busy with a reply to a request nobody made every 20 ms, for
 * NOISY_S seconds; then the client's requests are read and dropped until
 * it goes. */
#define NOISY_S 120
static void stall_noisily(void) {
  for (uint32_t i = 0; i < NOISY_S * 50; i++) {
    buf b = {0};
    put_u8(&b, FXP_ATTRS);
    put_u32(&b, 0xfffffff0u - i);
    put_u32(&b, 0);
    send_packet(&b);
    nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
  }
  char junk[4096];
  while (read(0, junk, sizeof junk) > 0) continue;
  exit(0);
}

static void handle_request(int type, req *r) {
  uint32_t id = get_u32(r);
  if (type == FXP_STAT || type == FXP_LSTAT) {
    char *path = normalize(get_str(r));
    stat_reply(id, path);
    free(path);
  } else if (type == FXP_OPEN || type == FXP_OPENDIR) {
    char *path = normalize(get_str(r));
    const node *n = lookup(path);
    bool is_dir = n && (n->mode & 0170000) == 040000;
    if (!n || n->kind == OPEN_FAILS || is_dir != (type == FXP_OPENDIR)) {
      status(id, n ? FX_PERMISSION_DENIED : FX_NO_SUCH_FILE);
      free(path);
    } else {
      send_handle(id, path, n);
    }
  } else if (type == FXP_READDIR || type == FXP_READ || type == FXP_CLOSE) {
    handle *h = find_handle(r);
    if (!h) return status(id, FX_FAILURE);
    if (type == FXP_READDIR) return readdir_reply(id, h);
    if (type == FXP_READ) {
      uint64_t off = get_u64(r);
      return read_reply(id, h, off, get_u32(r));
    }
    if (!strncmp(h->path, "/stall-quiet", 12)) return; /* never answered */
    if (!strncmp(h->path, "/stall-noisy", 12)) stall_noisily();
    free(h->path);
    *h = (handle){0};
    status(id, FX_OK);
  } else {
    status(id, FX_OP_UNSUPPORTED);
  }
}

int main(void) {
  for (;;) {
    unsigned char len_bytes[4];
    if (!read_full(len_bytes, 4)) return 0;
    uint32_t len = (uint32_t)len_bytes[0] << 24 | (uint32_t)len_bytes[1] << 16 |
                   (uint32_t)len_bytes[2] << 8 | len_bytes[3];
    if (len < 1 || len > (1u << 20)) return 4;
    unsigned char *body = malloc(len);
    if (!body || !read_full(body, len)) return 0;
    req r = {body + 1, body + len};
    if (body[0] == FXP_INIT) {
      buf b = {0};
      put_u8(&b, FXP_VERSION);
      put_u32(&b, 3);
      send_packet(&b);
    } else {
      handle_request(body[0], &r);
    }
    free(body);
  }
}
