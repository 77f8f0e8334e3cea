/* SPDX-License-Identifier: MIT */
/*
 * A public key added to a seed image after it was written (a stopped VM's:
 * qvm_vm_authorize_key). The image keeps its user-data as it was made, under
 * SEED_PRISTINE, and every key added so far, under SEED_KEYS; user-data
 * becomes a multipart of the pristine user-data and one cloud-config part
 * that runs the same command from bootcmd (every boot: a guest that booted
 * before, whose cloud-init reads the seed again but runs no per-instance
 * module) and from runcmd (the first boot, after the user is made). The
 * command appends each key the user's authorized_keys lacks. Its keys are
 * also plain YAML list items, one per line, so that a guest that reads keys
 * from the seed itself (the test suite's mini guest) finds them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/strbuf.h"
#include <qvm/seed.h>

#define SEED_PRISTINE "qvm-user-data"
#define SEED_KEYS "qvm-authorized-keys"
#define KEY_LINE_MAX 16384u
#define KEYS_MAX 64u

static const char add_script[] =
    "u=$1; shift; h=$(getent passwd \"$u\" | cut -d: -f6); "
    "[ -n \"$h\" ] && [ -d \"$h\" ] || exit 0; d=$h/.ssh; f=$d/authorized_keys; umask 077; "
    "if [ -L \"$d\" ] || [ -L \"$f\" ]; then exit 1; fi; mkdir -p \"$d\" || exit 1; "
    "for k in \"$@\"; do grep -qxF -e \"$k\" \"$f\" 2>/dev/null || printf '%s\\n' \"$k\" >>\"$f\" "
    "|| exit 1; done; chown \"$u\": \"$d\" \"$f\"";

static void yaml_quoted(qvm_strbuf *sb, const char *s) {
  qvm_strbuf_putc(sb, '"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') qvm_strbuf_putc(sb, '\\');
    qvm_strbuf_putc(sb, *s);
  }
  qvm_strbuf_putc(sb, '"');
}

static void command_yaml(qvm_strbuf *sb, const char *key, const char *user, const char *keys) {
  qvm_strbuf_printf(sb, "%s:\n  - - sh\n    - -c\n    - ", key);
  yaml_quoted(sb, add_script);
  qvm_strbuf_printf(sb, "\n    - qvm-keys\n    - %s\n", user);
  for (const char *l = keys; *l;) {
    size_t n = strcspn(l, "\n");
    _cleanup_free_ char *line = strndup(l, n);
    if (line && *line) {
      qvm_strbuf_puts(sb, "    - ");
      yaml_quoted(sb, line);
      qvm_strbuf_putc(sb, '\n');
    }
    l += n + (l[n] == '\n');
  }
}

/* The pristine user-data as one part of a multipart: a MIME document as it
 * is, else with the header its first line calls for. */
static int pristine_part(qvm_strbuf *sb, const char *data, size_t len, qvm_error **err) {
  static const char head[] = "MIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\n\n";
  if (len >= 13 && !strncasecmp(data, "Content-Type:", 13)) {
  } else if (len >= 13 && !memcmp(data, "#cloud-config", 13)) {
    qvm_strbuf_printf(sb, "Content-Type: text/cloud-config; charset=\"utf-8\"\n%s", head);
  } else if (len >= 2 && !memcmp(data, "#!", 2)) {
    qvm_strbuf_printf(sb, "Content-Type: text/x-shellscript; charset=\"utf-8\"\n%s", head);
  } else {
    return qvm_error_set(err, QVM_EINVAL,
                         "the seed's user-data is neither cloud-config, a script nor MIME: no key "
                         "part can be added to it");
  }
  qvm_strbuf_append(sb, data, len);
  if (!len || data[len - 1] != '\n') qvm_strbuf_putc(sb, '\n');
  return 0;
}

static int render_user_data(char **out, size_t *out_len, const qvm_seed_file *pristine,
                            const char *user, const char *keys, qvm_error **err) {
  qvm_strbuf part = QVM_STRBUF_INIT;
  qvm_strbuf_puts(&part, "Content-Type: text/cloud-config; charset=\"utf-8\"\nMIME-Version: 1.0\n"
                         "Content-Transfer-Encoding: 8bit\n"
                         "Content-Disposition: attachment; filename=\"qvm-keys.yaml\"\n"
                         "Merge-Type: list(append)+dict(no_replace,recurse_list)+str()\n\n"
                         "#cloud-config\n");
  command_yaml(&part, "bootcmd", user, keys);
  command_yaml(&part, "runcmd", user, keys);
  _cleanup_free_ char *part_text = qvm_strbuf_steal(&part);
  if (!part_text) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  char boundary[64];
  for (unsigned n = 0;; n++) {
    int blen = snprintf(boundary, sizeof boundary, "==qvm-keys-boundary-%u==", n);
    if (!memmem(pristine->data, pristine->len, boundary, (size_t)blen) &&
        !strstr(part_text, boundary))
      break;
  }
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_printf(&sb,
                    "Content-Type: multipart/mixed; boundary=\"%s\"\nMIME-Version: 1.0\n\n--%s\n",
                    boundary, boundary);
  int r = pristine_part(&sb, (const char *)pristine->data, pristine->len, err);
  qvm_strbuf_printf(&sb, "--%s\n%s--%s--\n", boundary, part_text, boundary);
  *out_len = sb.len;
  *out = qvm_strbuf_steal(&sb);
  if (r >= 0 && !*out) r = qvm_error_set_errno(err, ENOMEM, "out of memory");
  return r;
}

static bool user_name_ok(const char *u) {
  if (!u || !*u || strlen(u) > 32 || !(*u == '_' || (*u >= 'a' && *u <= 'z'))) return false;
  return strspn(u, "abcdefghijklmnopqrstuvwxyz0123456789_-") == strlen(u);
}

static bool key_line_ok(const char *k) {
  size_t n = strlen(k);
  if (!n || n > KEY_LINE_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)k[i] < 0x20 || (unsigned char)k[i] > 0x7e) return false;
  return true;
}

static bool has_line(const char *text, size_t len, const char *line) {
  size_t n = strlen(line);
  for (size_t off = 0; off < len;) {
    const char *nl = memchr(text + off, '\n', len - off);
    size_t l = nl ? (size_t)(nl - (text + off)) : len - off;
    if (l == n && !memcmp(text + off, line, n)) return true;
    off += l + 1;
  }
  return false;
}

int qvm_seed_add_authorized_key(const char *iso_path, const char *user, const char *key_line,
                                bool *added, qvm_error **err) {
  if (added) *added = false;
  if (!iso_path || !user_name_ok(user) || !key_line || !key_line_ok(key_line))
    return qvm_error_set(err, QVM_EINVAL,
                         "a seed path, a user name and one printable public key line are needed");
  qvm_seed_file *files = NULL;
  size_t n = 0;
  int r = qvm_seed_read_iso(&files, &n, iso_path, err);
  if (r < 0) return r;
  const qvm_seed_file *ud = NULL, *pristine = NULL, *keys = NULL;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(files[i].name, "user-data")) ud = &files[i];
    if (!strcmp(files[i].name, SEED_PRISTINE)) pristine = &files[i];
    if (!strcmp(files[i].name, SEED_KEYS)) keys = &files[i];
  }
  if (!pristine) pristine = ud;
  size_t n_keys = 0;
  for (size_t i = 0; keys && i < keys->len; i++) n_keys += ((const char *)keys->data)[i] == '\n';
  _cleanup_free_ char *user_data = NULL, *key_text = NULL;
  size_t ud_len = 0;
  qvm_strbuf kb = QVM_STRBUF_INIT;
  if (!ud) {
    r = qvm_error_set(err, QVM_EINVAL, "seed '%s' has no user-data", iso_path);
  } else if (keys && has_line((const char *)keys->data, keys->len, key_line)) {
    goto done; /* there already */
  } else if (n_keys >= KEYS_MAX) {
    r = qvm_error_set(err, QVM_ECONFLICT, "seed '%s' holds %u added keys already", iso_path,
                      KEYS_MAX);
  } else if (memchr(pristine->data, '\0', pristine->len)) {
    r = qvm_error_set(err, QVM_EINVAL, "the seed's user-data holds a NUL byte");
  }
  if (r < 0) goto done;
  if (keys) qvm_strbuf_append(&kb, keys->data, keys->len);
  qvm_strbuf_printf(&kb, "%s\n", key_line);
  size_t key_len = kb.len;
  if (!(key_text = qvm_strbuf_steal(&kb))) {
    r = qvm_error_set_errno(err, ENOMEM, "out of memory");
    goto done;
  }
  /* pristine may point into files[]: render before anything is replaced */
  r = render_user_data(&user_data, &ud_len, pristine, user, key_text, err);
  if (r < 0) goto done;
  qvm_seed_file out[QVM_SEED_READ_FILES_MAX + 3];
  size_t m = 0;
  for (size_t i = 0; i < n && m < QVM_SEED_READ_FILES_MAX + 3; i++)
    if (strcmp(files[i].name, "user-data") && strcmp(files[i].name, SEED_PRISTINE) &&
        strcmp(files[i].name, SEED_KEYS))
      out[m++] = files[i];
  out[m++] = (qvm_seed_file){"user-data", user_data, ud_len};
  out[m++] = (qvm_seed_file){SEED_PRISTINE, pristine->data, pristine->len};
  out[m++] = (qvm_seed_file){SEED_KEYS, key_text, key_len};
  r = qvm_seed_write_iso(iso_path, out, m, QVM_SEED_EPOCH_DEFAULT, 0600, err);
  if (r >= 0 && added) *added = true;
done:
  qvm_strbuf_free(&kb);
  qvm_seed_files_free(files, n);
  return r;
}
