/* SPDX-License-Identifier: MIT */
/*
 * The first boot's keys and seed: the VM's client key, the guest's host key
 * pinned in known_hosts before the guest ever runs, and seed.iso built from
 * them with the user's cloud-config parts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "vm/access.h"
#include "vm/ca_guest.h"
#include "vm/mount.h"
#include <qvm/seed.h>
#include <qvm/ssh.h>

#define KEY_FILE_MAX (64u << 10)
#define SUDO_ALL "ALL=(ALL) NOPASSWD:ALL"

static void keyp_free(qvm_ssh_key **k) {
  if (*k) qvm_ssh_key_free(*k);
}

typedef struct seed_inputs {
  char **keys; /* public key lines: ours, then the user's */
  size_t n_keys;
  char **parts; /* the user's cloud-config parts, read */
  size_t *part_lens;
  size_t n_parts;
} seed_inputs;

static void seed_inputs_clear(seed_inputs *in) {
  for (size_t i = 0; i < in->n_keys; i++) free(in->keys[i]);
  for (size_t i = 0; i < in->n_parts; i++) free(in->parts[i]);
  free(in->keys);
  free(in->parts);
  free(in->part_lens);
}

static int add_key(seed_inputs *in, const char *line, size_t len, qvm_error **err) {
  char **v = reallocarray(in->keys, in->n_keys + 1, sizeof *v);
  if (!v) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  in->keys = v;
  if (!(v[in->n_keys] = strndup(line, len)))
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  in->n_keys++;
  return 0;
}

static int read_key_file(seed_inputs *in, const char *path, qvm_error **err) {
  _cleanup_free_ char *data = NULL;
  int r = qvm_read_file(&data, NULL, path, KEY_FILE_MAX, err);
  for (char *save = NULL, *l = r < 0 ? NULL : strtok_r(data, "\r\n", &save); l && r >= 0;
       l = strtok_r(NULL, "\r\n", &save)) {
    while (*l == ' ' || *l == '\t') l++;
    if (*l && *l != '#') r = add_key(in, l, strlen(l), err);
  }
  return r < 0 ? qvm_error_prefix(err, "public key file '%s'", path) : 0;
}

static int read_parts(seed_inputs *in, const vm_spec *s, qvm_error **err) {
  if (!s->n_cloud_configs) return 0;
  in->parts = calloc(s->n_cloud_configs, sizeof *in->parts);
  in->part_lens = calloc(s->n_cloud_configs, sizeof *in->part_lens);
  if (!in->parts || !in->part_lens) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < s->n_cloud_configs; i++) {
    int r = qvm_read_file(&in->parts[i], &in->part_lens[i], s->cloud_configs[i],
                          QVM_SEED_MAX_USER_FILE, err);
    if (r < 0) return r;
    in->n_parts++;
  }
  return 0;
}

static bool is_script(const char *data, size_t len) { return len >= 2 && !memcmp(data, "#!", 2); }

/* Keys: the client key (written to dir) and the host key (pinned in dir). */
static int make_keys(seed_inputs *in, qvm_ssh_key **out_host, const char *dir, const vm_spec *s,
                     qvm_error **err) {
  __attribute__((cleanup(keyp_free))) qvm_ssh_key *client = NULL;
  char path[4096], comment[128];
  snprintf(comment, sizeof comment, "qvm@%s", s->name);
  int r = qvm_ssh_key_generate(&client, comment, err);
  snprintf(path, sizeof path, "%s/%s", dir, VM_CLIENT_KEY);
  if (r >= 0) r = qvm_ssh_key_write(client, path, NULL, err);
  if (r >= 0)
    r = add_key(in, qvm_ssh_key_public_line(client), strlen(qvm_ssh_key_public_line(client)), err);
  /* A sandbox's sshd reads no authorized_keys (its drop-in): qvm logs in
   * with a certificate of its session CA (vm/ca_guest.h). The key above is
   * for a guest whose SSH server ignores the drop-in (the test suite's
   * dropbear guest): it takes no certificate either. */
  if (r >= 0 && s->sandbox) r = vm_ca_session_mark(dir, s->name, err);
  snprintf(comment, sizeof comment, "root@%s", s->name);
  if (r >= 0) r = qvm_ssh_key_generate(out_host, comment, err);
  snprintf(path, sizeof path, "%s/%s", dir, VM_KNOWN_HOSTS);
  if (r >= 0) r = qvm_ssh_known_hosts_pin(path, s->name, qvm_ssh_key_public_line(*out_host), err);
  return r;
}

/* More parts than qvm_seed_build takes (one cloud-config, one script): the
 * same multipart, built here with every part in the user's order. */
static int write_multipart(const char *iso, const qvm_seed_spec *spec, const seed_inputs *in,
                           const vm_spec *s, qvm_error **err) {
  _cleanup_free_ char *ours = NULL, *meta = NULL, *net = NULL;
  size_t ours_len = 0, meta_len = 0, net_len = 0;
  int r = qvm_seed_render_user_data(&ours, &ours_len, spec, err);
  if (r >= 0) r = qvm_seed_render_meta_data(&meta, &meta_len, spec, err);
  if (r >= 0 && spec->network) r = qvm_seed_render_network_config(&net, &net_len, spec, err);
  if (r < 0) return r;
  qvm_seed_part *parts = calloc(in->n_parts + 1, sizeof *parts);
  char(*names)[80] = calloc(in->n_parts + 1, sizeof *names);
  if (!parts || !names) {
    free(parts), free(names);
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  for (size_t i = 0; i <= in->n_parts; i++) {
    const char *body = i < in->n_parts ? in->parts[i] : ours;
    size_t len = i < in->n_parts ? in->part_lens[i] : ours_len;
    bool script = is_script(body, len);
    /* Distinct names: cloud-init stores script parts under them. */
    snprintf(names[i], sizeof names[i], "part-%03zu-%s", i + 1,
             i < in->n_parts ? strrchr(s->cloud_configs[i], '/') + 1 : "qvm.yaml");
    parts[i] = (qvm_seed_part){script ? "text/x-shellscript" : "text/cloud-config", names[i],
                               !script, body, len};
  }
  _cleanup_free_ char *user = NULL;
  size_t user_len = 0;
  r = qvm_seed_render_multipart(&user, &user_len, "qvm-vm-boundary", parts, in->n_parts + 1, err);
  free(parts), free(names);
  if (r < 0) return r;
  qvm_seed_file files[3] = {{"user-data", user, user_len}, {"meta-data", meta, meta_len}};
  size_t n = 2;
  if (net) files[n++] = (qvm_seed_file){"network-config", net, net_len};
  return qvm_seed_write_iso(iso, files, n, spec->epoch, 0600, err);
}

static int build_seed(const char *dir, const vm_spec *s, const seed_inputs *in,
                      const qvm_ssh_key *host, const vm_ca_seed *ca, char *const *mounts,
                      bool partition_grown, qvm_error **err) {
  bool root = !strcmp(s->user, "root");
  qvm_seed_user user = {.name = s->user,
                        .sudo = root ? NULL : SUDO_ALL,
                        .shell = root ? NULL : "/bin/bash",
                        .lock_passwd = true,
                        .ssh_authorized_keys = (const char *const *)in->keys,
                        .n_ssh_authorized_keys = in->n_keys};
  qvm_seed_host_key hk = {.type = "ed25519",
                          .private_key = qvm_ssh_key_private_text(host),
                          .public_key = qvm_ssh_key_public_line(host)};
  qvm_seed_network net = {.mac = s->mac, .dhcp4 = true};
  qvm_seed_spec spec = QVM_SEED_SPEC_INIT;
  spec.instance_id = s->uuid; /* stable across restarts: cloud-init runs once */
  /* "web.example": hostname web, fqdn web.example */
  char short_name[64];
  snprintf(short_name, sizeof short_name, "%.*s", (int)strcspn(s->hostname, "."), s->hostname);
  spec.hostname = short_name;
  spec.fqdn = strchr(s->hostname, '.') ? s->hostname : NULL;
  spec.users = &user;
  spec.n_users = 1;
  spec.host_keys = &hk;
  spec.n_host_keys = 1;
  spec.disable_root = !root; /* else cloud-init makes root's keys print "login as ..." */
  spec.network = s->net == VM_NET_NONE ? NULL : &net;
  spec.growpart_off = partition_grown; /* create grew it (vm/image_grow.c) */
  spec.write_files = ca->files;        /* a sandbox's trust in qvm's CAs; none otherwise */
  spec.n_write_files = ca->n_files;
  spec.bootcmd = ca->bootcmd;
  spec.n_bootcmd = ca->n_bootcmd;
  /* A VM that is not a sandbox trusts none of qvm's certificates, also when
   * its disk is a sandbox's (a plain clone): it would get no KRL pushes. */
  static const char *const untrust[] = {"rm -f " VM_GUEST_SSHD_DROPIN " " VM_GUEST_SSHD_DROPIN_OLD};
  if (!s->sandbox) spec.bootcmd = untrust, spec.n_bootcmd = 1;
  /* Host folder mounts, mounted at every boot before sshd starts. */
  const char *cmds[2 + QVM_VM_MOUNTS_MAX] = {0};
  size_t n_cmds = 0;
  for (size_t i = 0; i < spec.n_bootcmd && n_cmds < 2; i++) cmds[n_cmds++] = spec.bootcmd[i];
  for (size_t i = 0; mounts && mounts[i] && n_cmds < QVM_ARRAY_SIZE(cmds); i++)
    cmds[n_cmds++] = mounts[i];
  spec.bootcmd = cmds, spec.n_bootcmd = n_cmds;
  char iso[4096];
  snprintf(iso, sizeof iso, "%s/%s", dir, VM_SEED_ISO);
  size_t configs = 0, scripts = 0;
  for (size_t i = 0; i < in->n_parts; i++) {
    bool script = is_script(in->parts[i], in->part_lens[i]);
    scripts += script, configs += !script;
    if (script)
      spec.user_script = in->parts[i], spec.user_script_len = in->part_lens[i],
      spec.user_script_path = NULL;
    else
      spec.user_config = in->parts[i], spec.user_config_len = in->part_lens[i],
      spec.user_config_name = s->cloud_configs[i];
  }
  if (configs > 1 || scripts > 1) {
    spec.user_config = spec.user_script = NULL;
    spec.user_config_len = spec.user_script_len = 0;
    return write_multipart(iso, &spec, in, s, err);
  }
  return qvm_seed_build(iso, &spec, err);
}

int vm_access_populate(const char *dir, const vm_spec *s, bool partition_grown, qvm_error **err) {
  if (!s->cloud_init) return 0;
  seed_inputs in = {0};
  __attribute__((cleanup(keyp_free))) qvm_ssh_key *host = NULL;
  int r = make_keys(&in, &host, dir, s, err);
  for (size_t i = 0; r >= 0 && i < s->n_authorized_keys; i++)
    r = read_key_file(&in, s->authorized_keys[i], err);
  if (r >= 0) r = read_parts(&in, s, err);
  vm_ca_seed ca = {0};
  if (r >= 0 && s->sandbox) r = vm_ca_seed_make(&ca, s, qvm_ssh_key_public_line(host), err);
  char **mounts = NULL;
  if (r >= 0) r = vm_mount_bootcmd(&mounts, s, err);
  if (r >= 0) r = build_seed(dir, s, &in, host, &ca, mounts, partition_grown, err);
  vm_mount_bootcmd_free(mounts);
  vm_ca_seed_clear(&ca);
  seed_inputs_clear(&in);
  return r;
}
