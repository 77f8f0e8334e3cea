/* SPDX-License-Identifier: MIT */
/* The review page's static files (web/, installed to DATADIR/qvm/web;
 * --web-dir): GET and HEAD of "/" (index.html) and "/ui/PATH". They hold no
 * data, so no token is asked for; the page calls the API with the token the
 * user types. Served only from under the dir: every segment is plain
 * ([A-Za-z0-9._-], no leading dot, so no ".." either), opened one at a time
 * with openat and O_NOFOLLOW (no symlink is followed, in or out), a regular
 * file of at most WEB_FILE_MAX bytes with a known extension, whose content
 * type is fixed by it. Strict headers (http.c): a Content-Security-Policy
 * of default-src 'self', nosniff, no framing, no referrer. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qvmd.h"

#define WEB_FILE_MAX (4u << 20)
#define WEB_PATH_MAX 256
#define WEB_DEPTH_MAX 8

static const char *web_dir = QVMD_WEB_DIR;

void qvmd_web_set_dir(const char *dir) { web_dir = dir; }
const char *qvmd_web_get_dir(void) { return web_dir; }

bool qvmd_web_path(const char *url) {
  return !strcmp(url, "/") || !strcmp(url, "/ui") || !strncmp(url, "/ui/", 4);
}

static const struct {
  const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *type_for(const char *name) {
  const char *dot = strrchr(name, '.');
  for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
    if (!strcmp(dot, types[i].ext)) return types[i].type;
  return NULL;
}

static bool segment_ok(const char *s, size_t n) {
  if (n == 0 || n > 128 || s[0] == '.') return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}

static void not_found(qvmd_reply *out) { qvmd_problem(out, 404, "NotFound", "no such file"); }

void qvmd_web_serve(qvmd_reply *out, const char *method, const char *url) {
  out->web = true;
  if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
    qvmd_problem(out, 405, "MethodNotAllowed", "this resource takes GET, HEAD");
    snprintf(out->allow, sizeof out->allow, "GET, HEAD");
    return;
  }
  const char *rel =
      !strcmp(url, "/") || !strcmp(url, "/ui") || !strcmp(url, "/ui/") ? "index.html" : url + 4;
  if (strlen(rel) > WEB_PATH_MAX) {
    not_found(out);
    return;
  }
  int fd = open(web_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    qvmd_problem(out, 404, "NotFound", "the page is not installed (--web-dir)");
    return;
  }
  const char *seg = rel;
  for (int depth = 0;; depth++) {
    size_t n = strcspn(seg, "/");
    if (!segment_ok(seg, n) || depth >= WEB_DEPTH_MAX) {
      close(fd);
      not_found(out);
      return;
    }
    char name[129];
    memcpy(name, seg, n);
    name[n] = '\0';
    bool last = seg[n] == '\0';
    int next = openat(
        fd, name, (last ? O_RDONLY | O_NONBLOCK : O_RDONLY | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC);
    close(fd);
    if (next < 0) { /* absent, or a symlink (ELOOP) */
      not_found(out);
      return;
    }
    fd = next;
    if (last) break;
    seg += n + 1;
  }
  const char *type = type_for(rel);
  struct stat st;
  if (!type || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > WEB_FILE_MAX) {
    close(fd);
    not_found(out);
    return;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  size_t len = 0;
  while (buf && len < (size_t)st.st_size) {
    ssize_t k = read(fd, buf + len, (size_t)st.st_size - len);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    len += (size_t)k;
  }
  close(fd);
  if (!buf || len != (size_t)st.st_size) {
    free(buf);
    qvmd_problem(out, 500, "ESYS", "a file of the page cannot be read");
    return;
  }
  buf[len] = '\0';
  out->status = 200;
  out->body = buf;
  out->body_len = len;
  out->content_type = type;
}
