/* SPDX-License-Identifier: MIT */
/* image/build's options: the distribution table, validation, and the host's
 * apt sources for a suite (what tests/guests/cloud/build.sh did in awk). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image/build.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strbuf.h"

static const img_distro distros[] = {
    {"debian-12", "bookworm", "Debian GNU/Linux 12"},
    {"debian-13", "trixie", "Debian GNU/Linux 13"},
};

/* What Debian's own cloud images use, minus everything heavy. */
const char *const img_build_base_packages[] = {
    "systemd-sysv",
    "udev",
    "dbus",
    "linux-image-cloud-amd64",
    "grub-pc",
    "cloud-init",
    "cloud-guest-utils",
    "fdisk",
    "e2fsprogs",
    "netplan.io",
    "systemd-resolved",
    "iproute2",
    "netbase",
    "openssh-server",
    "openssh-sftp-server",
    "sudo",
    "qemu-guest-agent",
    NULL,
};

const img_distro *img_distro_find(const char *name) {
  for (size_t i = 0; name && i < QVM_ARRAY_SIZE(distros); i++)
    if (!strcmp(distros[i].name, name)) return &distros[i];
  return NULL;
}

const img_distro *img_distro_at(size_t i) {
  return i < QVM_ARRAY_SIZE(distros) ? &distros[i] : NULL;
}

bool img_package_name_valid(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > 128) return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'))) return false;
  for (size_t i = 1; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '.' || c == '-'))
      return false;
  }
  return true;
}

int img_build_mirror_check(const char *mirror, qvm_error **err) {
  static const char *const schemes[] = {"http://", "https://", "file://", "copy://"};
  size_t n = strnlen(mirror, IMG_BUILD_MIRROR_MAX + 1);
  if (n > IMG_BUILD_MIRROR_MAX)
    return qvm_error_set(err, QVM_EINVAL, "mirror url is longer than %d bytes",
                         IMG_BUILD_MIRROR_MAX);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)mirror[i];
    if (c <= ' ' || c == 0x7f || c == '[' || c == ']')
      return qvm_error_set(err, QVM_EINVAL,
                           "mirror url '%.64s' has a space, bracket or control byte", mirror);
  }
  for (size_t i = 0; i < QVM_ARRAY_SIZE(schemes); i++) {
    size_t k = strlen(schemes[i]);
    if (!strncmp(mirror, schemes[i], k) && mirror[k]) return 0;
  }
  return qvm_error_set(err, QVM_EINVAL,
                       "mirror url '%.64s' is not http://, https://, file:// or copy://", mirror);
}

int img_build_opts_check(const img_build_opts *o, qvm_error **err) {
  if (!o->distro || !img_distro_find(o->distro)) {
    qvm_strbuf known = QVM_STRBUF_INIT;
    for (size_t i = 0; i < QVM_ARRAY_SIZE(distros); i++)
      qvm_strbuf_printf(&known, "%s%s", i ? ", " : "", distros[i].name);
    int r = qvm_error_set(err, QVM_EINVAL, "unknown distribution '%.64s' (known: %s)",
                          o->distro ? o->distro : "", known.buf ? known.buf : "");
    qvm_strbuf_free(&known);
    return r;
  }
  if (o->n_packages > IMG_BUILD_PACKAGES_MAX)
    return qvm_error_set(err, QVM_EINVAL, "%zu extra packages, more than %d", o->n_packages,
                         IMG_BUILD_PACKAGES_MAX);
  for (size_t i = 0; i < o->n_packages; i++)
    if (!img_package_name_valid(o->packages[i]))
      return qvm_error_set(err, QVM_EINVAL,
                           "package name '%.64s' is invalid (want [a-z0-9][a-z0-9+.-]*)",
                           o->packages[i] ? o->packages[i] : "");
  uint64_t size = o->size ? o->size : IMG_BUILD_SIZE_DEFAULT;
  if (size < IMG_BUILD_SIZE_MIN || size > IMG_BUILD_SIZE_MAX)
    return qvm_error_set(err, QVM_EINVAL,
                         "disk size %" PRIu64 " bytes is out of range (1 GiB to 2 TiB - 1 MiB)",
                         size);
  if (size % (UINT64_C(1) << 20))
    return qvm_error_set(err, QVM_EINVAL, "disk size %" PRIu64 " bytes is not a multiple of 1 MiB",
                         size);
  if (o->mirror) return img_build_mirror_check(o->mirror, err);
  return 0;
}

/* suite, suite-updates or suite-security */
static bool suite_matches(const char *word, size_t n, const char *suite) {
  size_t s = strlen(suite);
  if (n < s || strncmp(word, suite, s)) return false;
  word += s;
  n -= s;
  return n == 0 || (n == 8 && !strncmp(word, "-updates", 8)) ||
         (n == 9 && !strncmp(word, "-security", 9));
}

static int append(char **out, qvm_strbuf *sb) {
  char *add = qvm_strbuf_steal(sb);
  if (!add) return -1;
  if (!*add) {
    free(add);
    return 0;
  }
  char *joined = NULL;
  if (asprintf(&joined, "%s%s", *out ? *out : "", add) < 0) {
    free(add);
    return -1;
  }
  free(add);
  free(*out);
  *out = joined;
  return 0;
}

/* Words of a line, at most 64. */
static size_t split_words(const char *line, size_t len, const char *w[], size_t wl[]) {
  size_t n = 0, i = 0;
  while (i < len && n < 64) {
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i >= len) break;
    w[n] = line + i;
    while (i < len && line[i] != ' ' && line[i] != '\t') i++;
    wl[n] = (size_t)(line + i - w[n]);
    n++;
  }
  return n;
}

int img_apt_sources_from_list(char **out, const char *text, const char *suite) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    const char *hash = memchr(p, '#', len);
    size_t used = hash ? (size_t)(hash - p) : len;
    const char *w[64];
    size_t wl[64];
    size_t n = split_words(p, used, w, wl);
    if (n >= 4 && wl[0] == 3 && !strncmp(w[0], "deb", 3)) {
      size_t i = 1;
      if (w[1][0] == '[') {
        while (i < n && w[i][wl[i] - 1] != ']') i++;
        i++;
      }
      if (i + 2 < n && suite_matches(w[i + 1], wl[i + 1], suite)) {
        for (size_t k = 0; k < n; k++)
          qvm_strbuf_printf(&sb, "%s%.*s", k ? " " : "", (int)wl[k], w[k]);
        qvm_strbuf_putc(&sb, '\n');
      }
    }
    p += len + (nl ? 1 : 0);
  }
  return append(out, &sb);
}

typedef struct deb822_stanza {
  char *types, *uris, *suites, *components, *signed_by, *enabled;
} deb822_stanza;

static void stanza_clear(deb822_stanza *s) {
  free(s->types);
  free(s->uris);
  free(s->suites);
  free(s->components);
  free(s->signed_by);
  free(s->enabled);
  *s = (deb822_stanza){0};
}

static bool has_word(const char *list, const char *word) {
  const char *w[64];
  size_t wl[64];
  size_t n = list ? split_words(list, strlen(list), w, wl) : 0;
  for (size_t i = 0; i < n; i++)
    if (wl[i] == strlen(word) && !strncmp(w[i], word, wl[i])) return true;
  return false;
}

static void stanza_emit(qvm_strbuf *sb, const deb822_stanza *s, const char *suite) {
  if (!has_word(s->types, "deb") || !s->uris || !s->suites || !s->components) return;
  if (s->enabled && !strcasecmp(s->enabled, "no")) return;
  const char *u[64], *su[64];
  size_t ul[64], sul[64];
  size_t nu = split_words(s->uris, strlen(s->uris), u, ul);
  size_t ns = split_words(s->suites, strlen(s->suites), su, sul);
  /* Only a keyring file: an inline key (multi-line) cannot go on one line. */
  bool key = s->signed_by && s->signed_by[0] == '/' && !strpbrk(s->signed_by, " \t]");
  for (size_t i = 0; i < nu; i++)
    for (size_t k = 0; k < ns; k++) {
      if (!suite_matches(su[k], sul[k], suite)) continue;
      qvm_strbuf_puts(sb, "deb ");
      if (key) qvm_strbuf_printf(sb, "[signed-by=%s] ", s->signed_by);
      qvm_strbuf_printf(sb, "%.*s %.*s %s\n", (int)ul[i], u[i], (int)sul[k], su[k], s->components);
    }
}

static char **stanza_field(deb822_stanza *s, const char *key, size_t n) {
  static const struct {
    const char *name;
    size_t off;
  } fields[] = {
      {"Types", offsetof(deb822_stanza, types)},
      {"URIs", offsetof(deb822_stanza, uris)},
      {"Suites", offsetof(deb822_stanza, suites)},
      {"Components", offsetof(deb822_stanza, components)},
      {"Signed-By", offsetof(deb822_stanza, signed_by)},
      {"Enabled", offsetof(deb822_stanza, enabled)},
  };
  for (size_t i = 0; i < QVM_ARRAY_SIZE(fields); i++)
    if (strlen(fields[i].name) == n && !strncasecmp(fields[i].name, key, n))
      return (char **)((char *)s + fields[i].off);
  return NULL;
}

int img_apt_sources_from_deb822(char **out, const char *text, const char *suite) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  deb822_stanza s = {0};
  for (const char *p = text;;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    size_t blank = strspn(p, " \t");
    if (!*p || blank >= len) { /* end of a stanza */
      stanza_emit(&sb, &s, suite);
      stanza_clear(&s);
    } else if (p[0] != '#' && p[0] != ' ' && p[0] != '\t') {
      const char *colon = memchr(p, ':', len);
      char **field = colon ? stanza_field(&s, p, (size_t)(colon - p)) : NULL;
      if (field) {
        const char *v = colon + 1;
        while (v < p + len && (*v == ' ' || *v == '\t')) v++;
        size_t vl = (size_t)(p + len - v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t' || v[vl - 1] == '\r')) vl--;
        free(*field);
        *field = strndup(v, vl);
      }
    }
    if (!*p) break;
    p += len + (nl ? 1 : 0);
  }
  stanza_clear(&s);
  return append(out, &sb);
}

static int read_sources(char **out, const char *path, bool deb822, const char *suite,
                        qvm_error **err) {
  _cleanup_free_ char *text = NULL;
  int r = qvm_read_file(&text, NULL, path, 1 << 20, err);
  if (r < 0) {
    qvm_error_prefix(err, "cannot read apt sources");
    return r;
  }
  r = deb822 ? img_apt_sources_from_deb822(out, text, suite)
             : img_apt_sources_from_list(out, text, suite);
  return r < 0 ? qvm_error_set_errno(err, ENOMEM, "cannot parse '%s'", path) : 0;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n > k && !strcmp(s + n - k, suffix);
}

int img_host_apt_sources(char **out, const char *etc_apt, const char *suite, qvm_error **err) {
  _cleanup_free_ char *list = NULL, *dir = NULL;
  _cleanup_free_ char *acc = NULL;
  if (asprintf(&list, "%s/sources.list", etc_apt) < 0 ||
      asprintf(&dir, "%s/sources.list.d", etc_apt) < 0)
    return qvm_error_set_errno(err, ENOMEM, "apt sources");
  int r = 0;
  if (access(list, F_OK) == 0 && (r = read_sources(&acc, list, false, suite, err)) < 0) return r;
  struct dirent **ents = NULL;
  int n = scandir(dir, &ents, NULL, alphasort);
  for (int i = 0; i < n; i++) {
    const char *name = ents[i]->d_name;
    bool l = ends_with(name, ".list"), d = ends_with(name, ".sources");
    if (r == 0 && name[0] != '.' && (l || d)) {
      _cleanup_free_ char *path = NULL;
      if (asprintf(&path, "%s/%s", dir, name) < 0)
        r = qvm_error_set_errno(err, ENOMEM, "apt sources");
      else
        r = read_sources(&acc, path, d, suite, err);
    }
    free(ents[i]);
  }
  free(ents);
  if (r < 0) return r;
  if (!acc || !*acc)
    return qvm_error_set(err, QVM_ENOTFOUND, "no apt source on this host is for suite '%s' (%s)",
                         suite, etc_apt);
  *out = TAKE_PTR(acc);
  return 0;
}
