/* SPDX-License-Identifier: MIT */
/*
 * A public key added to a seed image after it was written (a stopped VM's:
 * qvm_vm_authorize_key). The image keeps its user-data as it was made, under
 * SEED_PRISTINE, and every key added so far, under SEED_KEYS; user-data
 * becomes a multipart of the pristine user-data and one cloud-config part
 * that runs the same command from bootcmd (every boot: a guest that booted
 * before, whose cloud-init reads the seed again but runs no per-instance
 * module) and from runcmd (the first boot, after the user is made). The
 * command adds each key once per instance (add_script). Its keys are also
 * plain YAML list items, one per line, so that a guest that reads keys from
 * the seed itself (the test suite's mini guest) finds them. There is no
 * removal: a key is taken back inside the guest, and stays out.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <strings.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/strbuf.h"
#include <qvm/seed.h>

#define SEED_PRISTINE "qvm-user-data"
#define SEED_KEYS "qvm-authorized-keys"
#define KEY_LINE_MAX 16384u
#define KEYS_MAX 64u

/* As root, for each key not yet added to this instance (the list in
 * cloud-init's per-instance directory, so a key its admin removed is not
 * put back at the next boot, and a clone's instance starts afresh): the
 * user's own shell appends it (runuser, else su), so that nothing the user
 * owns (a symlinked ~/.ssh) is written or chowned by root. A user that does
 * not exist yet (bootcmd on the first boot) is left for runcmd. */
static const char add_script[] =
    "u=$1; shift; h=$(getent passwd \"$u\" | cut -d: -f6); "
    "[ -n \"$h\" ] && [ -d \"$h\" ] || exit 0; umask 077; m=/var/lib/cloud/instance/qvm-seed-keys; "
    "add='h=$1; k=$2; umask 077; d=$h/.ssh; f=$d/authorized_keys; mkdir -p \"$d\" || exit 1; "
    "if [ -s \"$f\" ] && [ -n \"$(tail -c 1 \"$f\")\" ]; then echo >>\"$f\" || exit 1; fi; "
    "grep -qxF -e \"$k\" \"$f\" 2>/dev/null || printf \"%s\\n\" \"$k\" >>\"$f\"'; "
    "for k in \"$@\"; do grep -qxF -e \"$k\" \"$m\" 2>/dev/null && continue; "
    "if command -v runuser >/dev/null; then runuser -u \"$u\" -- sh -c \"$add\" qvm-keys \"$h\" "
    "\"$k\"; else su -s /bin/sh -c \"$add\" \"$u\" qvm-keys \"$h\" \"$k\"; fi || exit 1; "
    "printf '%s\\n' \"$k\" >>\"$m\" || exit 1; done";

static void yaml_quoted(qvm_strbuf *sb, const char *s, size_t len) {
  qvm_strbuf_putc(sb, '"');
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '"' || s[i] == '\\') qvm_strbuf_putc(sb, '\\');
    qvm_strbuf_putc(sb, s[i]);
  }
  qvm_strbuf_putc(sb, '"');
}

static void command_yaml(qvm_strbuf *sb, const char *key, const char *user, const char *keys,
                         size_t keys_len) {
  qvm_strbuf_printf(sb, "%s:\n  - - sh\n    - -c\n    - ", key);
  yaml_quoted(sb, add_script, sizeof add_script - 1);
  qvm_strbuf_puts(sb, "\n    - qvm-keys\n    - ");
  yaml_quoted(sb, user, strlen(user)); /* "on", "no", "null" are names too, not YAML's booleans */
  qvm_strbuf_putc(sb, '\n');
  for (size_t off = 0; off < keys_len;) {
    const char *l = keys + off, *nl = memchr(l, '\n', keys_len - off);
    size_t n = nl ? (size_t)(nl - l) : keys_len - off;
    if (n) {
      qvm_strbuf_puts(sb, "    - ");
      yaml_quoted(sb, l, n);
      qvm_strbuf_putc(sb, '\n');
    }
    off += n + 1;
  }
}

/* cloud-init's own test (user_data.py): a document with "mime-version:" in
 * its first 4096 bytes is MIME. */
static bool is_mime(const char *data, size_t len) {
  static const char needle[] = "mime-version:";
  size_t n = len < 4096 ? len : 4096, m = sizeof needle - 1;
  for (size_t i = 0; i + m <= n; i++)
    if (!strncasecmp(data + i, needle, m)) return true;
  return false;
}

/* The pristine user-data as the first part: a MIME document as it is;
 * gzip as such (cloud-init unpacks it); anything else as
 * text/x-not-multipart, whose kind cloud-init tells from its first line as
 * it does for a whole user-data (#cloud-config, #!, #include, ...). */
static int render_user_data(char **out, size_t *out_len, const qvm_seed_file *pristine,
                            const char *user, const char *keys, size_t keys_len, qvm_error **err) {
  qvm_strbuf part = QVM_STRBUF_INIT;
  qvm_strbuf_puts(&part, "#cloud-config\n");
  command_yaml(&part, "bootcmd", user, keys, keys_len);
  command_yaml(&part, "runcmd", user, keys, keys_len);
  size_t part_len = part.len;
  _cleanup_free_ char *part_text = qvm_strbuf_steal(&part);
  if (!part_text) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  const char *data = pristine->data;
  size_t len = pristine->len;
  const char *type = is_mime(data, len) ? NULL
                     : len >= 2 && (uint8_t)data[0] == 0x1f && (uint8_t)data[1] == 0x8b
                         ? "application/gzip"
                         : "text/x-not-multipart";
  qvm_seed_part parts[] = {{type, NULL, false, data, len},
                           {"text/cloud-config", "qvm-keys.yaml", true, part_text, part_len}};
  return qvm_seed_render_multipart(out, out_len, "qvm-keys-boundary", parts, 2, err);
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
  if (!iso_path || !user || !key_line)
    return qvm_error_set(err, QVM_EINVAL, "a seed path, a user name and a key line are needed");
  if (!user_name_ok(user))
    return qvm_error_set(err, QVM_EINVAL, "'%.40s' is not a user name a seed can carry", user);
  if (!key_line_ok(key_line))
    return qvm_error_set(err, QVM_EINVAL,
                         "a key line for a seed is one line of printable ASCII (at most %u "
                         "bytes): this one is empty, longer, or holds a newline, a control "
                         "character or other text",
                         KEY_LINE_MAX);
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
  r = render_user_data(&user_data, &ud_len, pristine, user, key_text, key_len, err);
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
