/* SPDX-License-Identifier: MIT */
/* qvm's SSH key store (include/qvm/keystore.h): files in one private
 * directory, and adding a stored public key to a running VM. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include <qvm/keystore.h>
#include <qvm/seed.h>
#include <qvm/ssh.h>

#include "ssh/rsa_key.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "vm/audit.h"
#include "vm/ca_guest.h"
#include "vm/handle.h"
#include "vm/state.h"

#define PUB_MAX (16u << 10)
#define KEYS_MAX 4096
#define COMMENT_MAX 128

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

int qvm_key_type_parse(qvm_key_type *out, const char *text, qvm_error **err) {
  if (text && !strcmp(text, "ed25519")) return *out = QVM_KEY_ED25519, 0;
  if (text && (!strcmp(text, "rsa-4096") || !strcmp(text, "rsa"))) return *out = QVM_KEY_RSA4096, 0;
  return qvm_error_set(err, QVM_EINVAL, "key type '%.32s' is unknown: ed25519 or rsa-4096",
                       text ? text : "");
}

static const char *type_name(const char *line) {
  return !strncmp(line, "ssh-rsa ", 8)        ? "rsa-4096"
         : !strncmp(line, "ssh-ed25519 ", 12) ? "ed25519"
                                              : "other";
}

static int store_dir(char **out, const char *dir, qvm_error **err) {
  if (dir) {
    if (!(*out = strdup(dir))) return oom(err);
  } else {
    _cleanup_free_ char *root = NULL;
    int r = vm_state_root(&root, err);
    if (r < 0) return r;
    if (asprintf(out, "%s/ssh-keys", root) < 0) return *out = NULL, oom(err);
    if ((r = vm_private_dir(root, err)) < 0) return r;
  }
  return vm_private_dir(*out, err);
}

static int name_check(const char *name, qvm_error **err) {
  if (qvm_vm_name_check(name, NULL) < 0)
    return qvm_error_set(err, QVM_EINVAL,
                         "key name '%.64s' is invalid: 1 to 63 of a-z, 0-9 and '-', starting "
                         "with a letter or digit",
                         name ? name : "");
  return 0;
}

static int comment_check(const char *c, qvm_error **err) {
  size_t n = strnlen(c, COMMENT_MAX + 1);
  if (n > COMMENT_MAX)
    return qvm_error_set(err, QVM_EINVAL, "a key comment is at most %d characters", COMMENT_MAX);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)c[i] < 0x20 || (unsigned char)c[i] >= 0x7f)
      return qvm_error_set(err, QVM_EINVAL, "a key comment holds printable ASCII only");
  return 0;
}

/* Creates path with data, 0600 or 0644, exclusively (never replaces). */
static int write_new(const char *path, const char *data, size_t len, mode_t mode, qvm_error **err) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0)
    return errno == EEXIST ? qvm_error_set(err, QVM_EEXISTS, "'%s' exists", path)
                           : qvm_error_set_errno(err, errno, "cannot create '%s'", path);
  int r = qvm_write_all(fd, data, len) < 0 || fchmod(fd, mode) < 0 || fsync(fd) < 0 ? -errno : 0;
  close(fd);
  if (r < 0) {
    unlink(path);
    return qvm_error_set_errno(err, -r, "cannot write '%s'", path);
  }
  return 0;
}

/* The private key text and public line of a new key. */
static int make_pair(char **priv, size_t *priv_len, char **pub, qvm_key_type type,
                     const char *comment, qvm_error **err) {
  if (type == QVM_KEY_RSA4096) {
    ssh_rsa_key k;
    int r = ssh_rsa_generate(&k, 4096, comment, err);
    if (r < 0) return r;
    *priv = TAKE_PTR(k.pem), *priv_len = k.pem_len, *pub = TAKE_PTR(k.public_line);
    ssh_rsa_key_clear(&k);
    return 0;
  }
  qvm_ssh_key *k = NULL;
  int r = qvm_ssh_key_generate(&k, comment, err);
  if (r < 0) return r;
  const char *t = qvm_ssh_key_private_text(k);
  *priv_len = strlen(t);
  if (!(*priv = strdup(t)) || !(*pub = strdup(qvm_ssh_key_public_line(k)))) {
    free(*priv), *priv = NULL;
    r = oom(err);
  }
  qvm_ssh_key_free(k);
  return r;
}

static void key_json(struct json_object *o, const char *name, const char *line, const char *fp) {
  json_object_object_add(o, "name", json_object_new_string(name));
  json_object_object_add(o, "type", json_object_new_string(type_name(line)));
  json_object_object_add(o, "fingerprint", fp ? json_object_new_string(fp) : NULL);
  json_object_object_add(o, "public_key", json_object_new_string(line));
}

static int to_text(char **out, struct json_object *o, qvm_error **err) {
  const char *t = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;
  *out = t ? strdup(t) : NULL;
  json_object_put(o);
  return *out ? 0 : oom(err);
}

int qvm_keystore_generate(char **out_json, const char *dir, const char *name, qvm_key_type type,
                          const char *comment, qvm_error **err) {
  _cleanup_free_ char *d = NULL, *priv_path = NULL, *pub_path = NULL, *priv = NULL, *pub = NULL,
                      *line = NULL, *fp = NULL;
  size_t priv_len = 0;
  if (!comment) comment = name;
  int r = name_check(name, err);
  if (r >= 0 && type != QVM_KEY_ED25519 && type != QVM_KEY_RSA4096)
    r = qvm_error_set(err, QVM_EINVAL, "key type %d is unknown", (int)type);
  if (r >= 0) r = comment_check(comment, err);
  if (r >= 0) r = store_dir(&d, dir, err);
  if (r < 0) return r;
  if (asprintf(&priv_path, "%s/%s", d, name) < 0 || asprintf(&pub_path, "%s/%s.pub", d, name) < 0)
    return oom(err);
  if (access(priv_path, F_OK) == 0 || access(pub_path, F_OK) == 0)
    return qvm_error_set_hint(err, qvm_error_set(err, QVM_EEXISTS, "ssh key '%s' exists", name),
                              "KeyExists", name);
  if ((r = make_pair(&priv, &priv_len, &pub, type, comment, err)) < 0) return r;
  r = write_new(priv_path, priv, priv_len, 0600, err);
  sodium_memzero(priv, priv_len);
  if (r == QVM_EEXISTS) return qvm_error_set(err, QVM_EEXISTS, "ssh key '%s' exists", name);
  if (r < 0) return r;
  if (asprintf(&line, "%s\n", pub) < 0) return oom(err);
  if ((r = write_new(pub_path, line, strlen(line), 0644, err)) < 0) {
    unlink(priv_path);
    return r;
  }
  qvm_ssh_public_line_fingerprint(&fp, pub, NULL);
  struct json_object *o = json_object_new_object();
  key_json(o, name, pub, fp);
  json_object_object_add(o, "private_key_path", json_object_new_string(priv_path));
  json_object_object_add(o, "public_key_path", json_object_new_string(pub_path));
  return out_json ? to_text(out_json, o, err) : (json_object_put(o), 0);
}

/* The public line of NAME.pub in d, checked. */
static int read_public(char **out, const char *d, const char *name, qvm_error **err) {
  _cleanup_free_ char *path = NULL, *priv = NULL, *text = NULL;
  struct stat st;
  if (asprintf(&path, "%s/%s.pub", d, name) < 0 || asprintf(&priv, "%s/%s", d, name) < 0)
    return oom(err);
  if (lstat(priv, &st) < 0 || !S_ISREG(st.st_mode))
    return qvm_error_set_hint(err,
                              qvm_error_set(err, QVM_ENOTFOUND, "ssh key '%s' not found", name),
                              "KeyNotFound", name);
  int r = qvm_read_file(&text, NULL, path, PUB_MAX, err);
  if (r < 0) return r;
  text[strcspn(text, "\r\n")] = 0;
  if ((r = qvm_ssh_public_line_check(text, err)) < 0) return qvm_error_prefix(err, "'%s'", path);
  *out = TAKE_PTR(text);
  return 0;
}

int qvm_keystore_public(char **out_line, const char *dir, const char *name, qvm_error **err) {
  _cleanup_free_ char *d = NULL;
  int r = name_check(name, err);
  if (r >= 0) r = store_dir(&d, dir, err);
  return r < 0 ? r : read_public(out_line, d, name, err);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int qvm_keystore_list(char **out_json, const char *dir, qvm_error **err) {
  _cleanup_free_ char *d = NULL;
  int r = store_dir(&d, dir, err);
  if (r < 0) return r;
  DIR *dp = opendir(d);
  if (!dp) return qvm_error_set_errno(err, errno, "cannot read '%s'", d);
  char *names[KEYS_MAX];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(dp)) && n < KEYS_MAX) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".pub")) continue;
    char name[64];
    if (len - 4 >= sizeof name) continue;
    memcpy(name, e->d_name, len - 4);
    name[len - 4] = 0;
    if (qvm_vm_name_check(name, NULL) < 0 || !(names[n] = strdup(name))) continue;
    n++;
  }
  closedir(dp);
  qsort(names, n, sizeof *names, cmp_str);
  struct json_object *a = json_object_new_array();
  for (size_t i = 0; i < n; i++) {
    char *line = NULL, *fp = NULL;
    if (read_public(&line, d, names[i], NULL) >= 0) {
      qvm_ssh_public_line_fingerprint(&fp, line, NULL);
      struct json_object *o = json_object_new_object();
      key_json(o, names[i], line, fp);
      json_object_array_add(a, o);
    }
    free(line), free(fp), free(names[i]);
  }
  return to_text(out_json, a, err);
}

/* ---- adding a key to a VM ------------------------------------------------------ */

/* stdin: the key line. Appended once; ~/.ssh made private first. */
static const char add_script[] =
    "set -e; umask 077; k=$(head -c 16384); "
    "mkdir -p \"$HOME/.ssh\"; chmod 700 \"$HOME/.ssh\"; f=\"$HOME/.ssh/authorized_keys\"; "
    "touch \"$f\"; chmod 600 \"$f\"; "
    "if ! grep -qxF -- \"$k\" \"$f\"; then printf '%s\\n' \"$k\" >> \"$f\"; fi";

static int key_memfd(int *out, const char *line, qvm_error **err) {
  int fd = memfd_create("qvm-key", MFD_CLOEXEC);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot make a memfd");
  if (qvm_write_all(fd, line, strlen(line)) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
    int e = errno;
    close(fd);
    return qvm_error_set_errno(err, e, "cannot fill a memfd");
  }
  *out = fd;
  return 0;
}

/* A VM that is not running gets the key through its seed, under the VM's
 * lock (no start can begin meanwhile): the guest's cloud-init adds it at
 * the next boot, the first one or a later one (qvm_seed_add_authorized_key). */
static int authorize_in_seed(qvm_vm *vm, const char *line, qvm_error **err) {
  if (!vm->spec->cloud_init || !vm->spec->seed_iso) {
    qvm_error_set(err, QVM_ECONFLICT,
                  "vm '%s' is not running and has no seed of qvm's to carry the key: start it, "
                  "then add the key over SSH",
                  vm->name);
    return qvm_error_set_hint(err, QVM_ECONFLICT, "VmNotRunning", vm->name);
  }
  int fd = -1;
  int r = vm_lock_acquire(&fd, &vm->paths, "ssh-key-add", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = vm_reload(vm, err);
  qvm_vm_state st = r >= 0 ? qvm_vm_get_state(vm) : QVM_VM_CREATED;
  if (r >= 0 && (st == QVM_VM_RUNNING || st == QVM_VM_STARTING || st == QVM_VM_STOPPING)) {
    qvm_error_set(err, QVM_ECONFLICT, "vm '%s' started or stopped meanwhile: try again", vm->name);
    r = qvm_error_set_hint(err, QVM_ECONFLICT, "VmBusy", vm->name);
  }
  char iso[4096];
  if (r >= 0 &&
      (size_t)snprintf(iso, sizeof iso, "%s/%s", vm->paths.dir, vm->spec->seed_iso) >= sizeof iso)
    r = qvm_error_set(err, QVM_EINVAL, "the seed's path is too long");
  if (r >= 0)
    r = qvm_seed_add_authorized_key(iso, vm->spec->user ? vm->spec->user : "root", line, NULL, err);
  vm_lock_release(fd);
  return r < 0 ? qvm_error_prefix(err, "cannot add the key to the seed of vm '%s'", vm->name) : 0;
}

static int authorize(qvm_vm *vm, const char *line, const char **via, qvm_error **err) {
  if (strchr(line, '\n') || strchr(line, '\r'))
    return qvm_error_set(err, QVM_EINVAL, "a public key line holds no newline");
  int r = qvm_ssh_public_line_check(line, err);
  if (r < 0) return r;
  if (vm_ca_session_login(vm)) {
    qvm_error_set(err, QVM_ECONFLICT,
                  "sandbox '%s' takes short-lived certificates only, no authorized key: issue "
                  "one with qvm cert issue %s",
                  vm->name, vm->name);
    return qvm_error_set_hint(err, QVM_ECONFLICT, "CertificatesOnly", vm->name);
  }
  if (qvm_vm_get_state(vm) != QVM_VM_RUNNING) {
    *via = "seed";
    return authorize_in_seed(vm, line, err);
  }
  *via = "ssh";
  _cleanup_close_ int fd = -1;
  qvm_ssh *ssh = NULL;
  if ((r = key_memfd(&fd, line, err)) < 0 || (r = qvm_vm_ssh_connect(&ssh, vm, NULL, err)) < 0)
    return r;
  const char *argv[] = {"sh", "-c", add_script, NULL};
  qvm_ssh_exec_options o = QVM_SSH_EXEC_OPTIONS_INIT;
  o.argv = argv;
  o.stdin_fd = fd;
  o.timeout_ms = 30000;
  qvm_ssh_exec_result res = {0};
  r = qvm_vm_exec(&res, vm, ssh, &o, err);
  qvm_ssh_free(ssh);
  if (r >= 0 && (res.exit_code != 0 || res.signaled))
    r = qvm_error_set(err, QVM_EGUEST, "adding the key in the guest failed (exit %d)",
                      res.exit_code);
  return r;
}

int qvm_vm_authorize_key(qvm_vm *vm, const char *public_line, qvm_error **err) {
  return qvm_vm_authorize_key_via(vm, public_line, NULL, err);
}

int qvm_vm_authorize_key_via(qvm_vm *vm, const char *public_line, const char **out_via,
                             qvm_error **err) {
  if (out_via) *out_via = NULL;
  if (!vm || !public_line) return qvm_error_set(err, QVM_EINVAL, "a vm and a key line are needed");
  const char *via = NULL;
  int r = authorize(vm, public_line, &via, err);
  if (out_via && r >= 0) *out_via = via;
  _cleanup_free_ char *fp = NULL;
  qvm_ssh_public_line_fingerprint(&fp, public_line, NULL);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "fingerprint", fp ? json_object_new_string(fp) : NULL);
  if (via) json_object_object_add(d, "via", json_object_new_string(via));
  vm_audit_note(vm->name, "ssh-key-add", r, (const qvm_error *const *)err, d);
  return r;
}
