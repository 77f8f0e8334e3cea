/* SPDX-License-Identifier: MIT */
/*
 * user-data: qvm's cloud-config, emitted with libyaml, and when the user has
 * their own cloud-config or script, a MIME multipart message that puts the
 * user's parts first and qvm's last, each cloud-config part carrying
 * Merge-Type list(append)+dict(no_replace,recurse_list)+str(): lists (users,
 * runcmd, write_files, ssh_authorized_keys) are appended in part order, and
 * for a scalar both set the user's (earlier) value is kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seed/seed_internal.h"
#include "seed/yaml_out.h"
#include "util/cleanup.h"
#include "util/strbuf.h"

static void emit_user(yaml_out *y, const qvm_seed_user *u) {
  yaml_out_map_begin(y);
  yaml_out_kv(y, "name", u->name);
  yaml_out_kv(y, "groups", u->groups);
  yaml_out_kv(y, "sudo", u->sudo);
  yaml_out_kv(y, "shell", u->shell);
  yaml_out_kv_bool(y, "lock_passwd", u->lock_passwd);
  yaml_out_kv_list(y, "ssh_authorized_keys", u->ssh_authorized_keys, u->n_ssh_authorized_keys);
  yaml_out_map_end(y);
}

static void emit_host_keys(yaml_out *y, const qvm_seed_spec *spec) {
  if (!spec->n_host_keys) return;
  yaml_out_key(y, "ssh_keys");
  yaml_out_map_begin(y);
  for (size_t i = 0; i < spec->n_host_keys; i++) {
    const qvm_seed_host_key *k = &spec->host_keys[i];
    char key[64];
    snprintf(key, sizeof key, "%s_private", k->type);
    yaml_out_key(y, key);
    yaml_out_text(y, k->private_key, strlen(k->private_key));
    snprintf(key, sizeof key, "%s_public", k->type);
    yaml_out_kv(y, key, k->public_key);
  }
  yaml_out_map_end(y);
}

static bool is_text(const void *data, size_t len) {
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++)
    if (p[i] == 0 || (p[i] < 0x20 && p[i] != '\n' && p[i] != '\t')) return false;
  /* libyaml refuses invalid UTF-8: such content goes base64 as well. */
  yaml_event_t ev;
  if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)data, (int)len, 1, 1,
                                    YAML_PLAIN_SCALAR_STYLE))
    return false;
  yaml_event_delete(&ev);
  return true;
}

static int emit_write_file(yaml_out *y, const qvm_seed_write_file *f) {
  yaml_out_map_begin(y);
  yaml_out_kv(y, "path", f->path);
  const char *content = f->content ? f->content : "";
  if (is_text(content, f->content_len)) {
    yaml_out_key(y, "content");
    yaml_out_text(y, content, f->content_len);
  } else {
    _cleanup_free_ char *b64 = seed_base64(content, f->content_len);
    if (!b64) return -1;
    yaml_out_kv(y, "encoding", "b64");
    yaml_out_kv(y, "content", b64);
  }
  yaml_out_kv(y, "permissions", f->permissions);
  yaml_out_kv(y, "owner", f->owner);
  yaml_out_map_end(y);
  return 0;
}

/* ssh_pwauth makes cloud-init's config stage (set_passwords) write
 * "PasswordAuthentication no" (or yes) and restart sshd when that changed the
 * file, which it always did on a first boot: sshd had started with the
 * image's default a few seconds before. That restart cost the config stage
 * 3 s under TCG and left a moment with no sshd. Since cloud-init 23.1 (and
 * Debian's 22.4), with sshd_config including the .conf files of
 * sshd_config.d as Debian, Ubuntu and Fedora do, the file it writes is
 * sshd_config.d/50-cloud-init.conf (0600). write_files runs in the init
 * stage, before ssh.service starts: appending the same line to that file
 * there leaves set_passwords nothing to change, and sshd starts once, with
 * the setting. Without the include, or with an older cloud-init, the file
 * is not read and set_passwords restarts sshd as before. Only without the
 * user's own cloud-config, whose ssh_pwauth would win the merge (qvm's value
 * is then not the final one). The leading newline keeps a file without a
 * final newline intact. */
static void emit_pwauth_line(yaml_out *y, bool pwauth) {
  yaml_out_map_begin(y);
  yaml_out_kv(y, "path", "/etc/ssh/sshd_config.d/50-cloud-init.conf");
  yaml_out_kv(y, "content",
              pwauth ? "\nPasswordAuthentication yes\n" : "\nPasswordAuthentication no\n");
  yaml_out_kv(y, "permissions", "0600");
  yaml_out_kv(y, "owner", "root:root");
  yaml_out_kv_bool(y, "append", true);
  yaml_out_map_end(y);
}

/* On every boot, the last bootcmd opens and closes QVM_SEED_READY_PORT, and
 * QEMU tells qvm (VSERPORT_CHANGE): sshd is next. bootcmd runs in
 * cloud-init's init stage, which ssh.service is ordered after, a few seconds
 * before sshd listens; qvm up then probes for sshd's banner every 50 ms
 * instead of backing off to a second. Announcing before sshd rather than
 * after it (a unit ordered after ssh.service) is faster: such a unit ran
 * 0.4-0.9 s after sshd listened under TCG (systemd's job, a fork and exec
 * competing with sshd's own first connection), a 50 ms probe finds sshd
 * within 50 ms, and a probe made before sshd listens costs the guest one
 * TCP reset. No port (a VM from an older qvm): nothing happens, and qvm up
 * backs off as before. */
#define READY_PORT_LINE                                                                            \
  "[ -c /dev/virtio-ports/" QVM_SEED_READY_PORT " ] && : >/dev/virtio-ports/" QVM_SEED_READY_PORT  \
  " || true"

static void emit_bootcmd(yaml_out *y, const qvm_seed_spec *spec) {
  if (!spec->n_bootcmd && !spec->ready_marker) return;
  yaml_out_key(y, "bootcmd");
  yaml_out_seq_begin(y, false);
  for (size_t i = 0; i < spec->n_bootcmd; i++) yaml_out_str(y, spec->bootcmd[i]);
  if (spec->ready_marker) {
    yaml_out_seq_begin(y, true);
    yaml_out_str(y, "sh");
    yaml_out_str(y, "-c");
    yaml_out_str(y, READY_PORT_LINE);
    yaml_out_seq_end(y);
  }
  yaml_out_seq_end(y);
}

static void emit_runcmd(yaml_out *y, const qvm_seed_spec *spec) {
  if (!spec->n_runcmd && !spec->ready_marker) return;
  yaml_out_key(y, "runcmd");
  yaml_out_seq_begin(y, false);
  for (size_t i = 0; i < spec->n_runcmd; i++) yaml_out_str(y, spec->runcmd[i]);
  if (spec->ready_marker) {
    /* instance_id was checked to be [A-Za-z0-9._:-]: safe inside quotes. */
    char line[320];
    snprintf(line, sizeof line,
             "echo '" QVM_SEED_READY_MARKER " %s' > /dev/ttyS0 2>/dev/null || true",
             spec->instance_id);
    yaml_out_seq_begin(y, true);
    yaml_out_str(y, "sh");
    yaml_out_str(y, "-c");
    yaml_out_str(y, line);
    yaml_out_seq_end(y);
  }
  yaml_out_seq_end(y);
}

static int render_cloud_config(char **out, size_t *out_len, const qvm_seed_spec *spec,
                               qvm_error **err) {
  yaml_out y;
  yaml_out_begin(&y, "#cloud-config\n");
  yaml_out_map_begin(&y);
  yaml_out_kv(&y, "hostname", spec->hostname);
  yaml_out_kv(&y, "fqdn", spec->fqdn);
  if (spec->manage_etc_hosts) yaml_out_kv_bool(&y, "manage_etc_hosts", true);
  if (spec->n_users) {
    yaml_out_key(&y, "users");
    yaml_out_seq_begin(&y, false);
    for (size_t i = 0; i < spec->n_users; i++) emit_user(&y, &spec->users[i]);
    yaml_out_seq_end(&y);
  }
  yaml_out_kv_list(&y, "ssh_authorized_keys", spec->ssh_authorized_keys,
                   spec->n_ssh_authorized_keys);
  emit_host_keys(&y, spec);
  yaml_out_kv_bool(&y, "ssh_pwauth", spec->ssh_pwauth);
  yaml_out_kv_bool(&y, "disable_root", spec->disable_root);
  /* The fingerprints qvm pinned before the boot, printed again by a script
   * of ssh-keygen runs that cost the final stage a second under TCG. */
  yaml_out_key(&y, "ssh");
  yaml_out_map_begin(&y);
  yaml_out_kv_bool(&y, "emit_keys_to_console", false);
  yaml_out_map_end(&y);
  /* qvm grew the partition before the boot: growpart would run the
   * partition tools twice (a dry run, then the change) to find nothing. */
  if (seed_spec_growpart_off(spec)) {
    yaml_out_key(&y, "growpart");
    yaml_out_map_begin(&y);
    yaml_out_kv(&y, "mode", "off");
    yaml_out_map_end(&y);
  }
  if (spec->package_update) yaml_out_kv_bool(&y, "package_update", true);
  yaml_out_kv_list(&y, "packages", spec->packages, spec->n_packages);
  bool pwauth_line = !spec->user_config && !spec->user_config_path;
  if (spec->n_write_files || pwauth_line) {
    yaml_out_key(&y, "write_files");
    yaml_out_seq_begin(&y, false);
    for (size_t i = 0; i < spec->n_write_files; i++)
      if (emit_write_file(&y, &spec->write_files[i]) < 0) {
        yaml_out_free(&y);
        return qvm_error_set(err, QVM_EINVAL, "cannot encode '%s'", spec->write_files[i].path);
      }
    if (pwauth_line) emit_pwauth_line(&y, spec->ssh_pwauth);
    yaml_out_seq_end(&y);
  }
  emit_bootcmd(&y, spec);
  emit_runcmd(&y, spec);
  yaml_out_map_end(&y);
  return yaml_out_finish(&y, out, out_len, "user-data", err);
}

int qvm_seed_render_user_data(char **out, size_t *out_len, const qvm_seed_spec *spec,
                              qvm_error **err) {
  int r = seed_spec_check(spec, err);
  if (r < 0) return r;
  _cleanup_free_ char *config = NULL, *script = NULL, *ours = NULL;
  size_t config_len = 0, script_len = 0, ours_len = 0;
  const char *config_name = NULL, *script_name = NULL;
  if ((r = seed_user_part(&config, &config_len, &config_name, spec->user_config,
                          spec->user_config_len, spec->user_config_name, spec->user_config_path,
                          err)) < 0 ||
      (r = seed_user_part(&script, &script_len, &script_name, spec->user_script,
                          spec->user_script_len, NULL, spec->user_script_path, err)) < 0)
    return r;
  if (config && (r = qvm_seed_check_user_config(config, config_len, config_name, err)) < 0)
    return r;
  if (script && (script_len < 2 || memcmp(script, "#!", 2) != 0))
    return qvm_error_set(err, QVM_EINVAL, "script '%s' does not start with '#!'", script_name);
  if ((r = render_cloud_config(&ours, &ours_len, spec, err)) < 0) return r;
  if (!config && !script) {
    *out = TAKE_PTR(ours);
    *out_len = ours_len;
    return 0;
  }
  qvm_seed_part parts[3];
  size_t n = 0;
  if (config)
    parts[n++] = (qvm_seed_part){"text/cloud-config", "user-config.yaml", true, config, config_len};
  if (script)
    parts[n++] = (qvm_seed_part){"text/x-shellscript", "user-script.sh", false, script, script_len};
  parts[n++] = (qvm_seed_part){"text/cloud-config", "qvm.yaml", true, ours, ours_len};
  return qvm_seed_render_multipart(out, out_len, "qvm-seed-boundary", parts, n, err);
}
