/* SPDX-License-Identifier: MIT */
/* qvm_diff_ansible: a diff as an Ansible playbook (docs/ARCHITECTURE.md,
 * "Diff"). Written with libyaml's emitter; every string that came from the
 * guest is a double-quoted scalar tagged !unsafe, so that Ansible never
 * templates it ('{{ lookup("pipe", ...) }}' in a file name stays text), and
 * task names are also neutralized for the terminal ansible-playbook prints
 * them on. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <qvm/text.h>

#include "diff/internal.h"
#include "diff/playbook.h"
#include "util/cleanup.h"
#include "util/fs.h"

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

/* Whether Ansible would rewrite s where a module takes a path: its 'path'
 * arguments (file's path and src, copy's dest, user's home) go through
 * os.path.expandvars and expanduser on the target, !unsafe or not, so a
 * guest directory named "/$HOME" would be the target's /root there. */
static bool ansible_expands(const char *s, size_t len) {
  return memchr(s, '$', len) != NULL || (len > 0 && s[0] == '~');
}

/* A guest string the playbook cannot carry: not UTF-8 (YAML is UTF-8), or
 * one that Ansible's path handling would turn into another path. */
static int check_name(const char *what, const char *path, const char *s, size_t len,
                      qvm_error **err) {
  bool utf8 = pb_utf8_valid(s, len);
  if (utf8 && !ansible_expands(s, len)) return 0;
  _cleanup_free_ char *shown = qvm_text_for_terminal(path, strlen(path), 0);
  return qvm_error_set(err, QVM_EINVAL,
                       "the %s of '%s' %s: a playbook cannot name it exactly "
                       "(leave it out with an ignore glob)",
                       what, shown ? shown : "?",
                       utf8 ? "holds '$' or starts with '~', which Ansible expands on the target"
                            : "is not valid UTF-8");
}

static int check_change(const qvm_diff_change *c, qvm_error **err) {
  int r = check_name("path", c->path, c->path, c->path_len, err);
  if (r >= 0 && c->to.present && c->to.target)
    r = check_name("symlink target", c->path, c->to.target, c->to.target_len, err);
  if (r < 0 || !c->to.present || strchr("fdl", c->to.type)) return r;
  _cleanup_free_ char *shown = qvm_text_for_terminal(c->path, c->path_len, 0);
  static const char *const names[] = {
      ['c'] = "a character device", ['b'] = "a block device", ['p'] = "a fifo", ['s'] = "a socket"};
  const char *what =
      (unsigned char)c->to.type < QVM_ARRAY_SIZE(names) && names[(unsigned char)c->to.type]
          ? names[(unsigned char)c->to.type]
          : "of an unknown type";
  return qvm_error_set(err, QVM_EINVAL,
                       "'%s' is %s, which the playbook cannot create (leave it out with an "
                       "ignore glob)",
                       shown ? shown : "?", what);
}

static void owner_mode(playbook *p, const qvm_diff_file *f, bool with_mode) {
  char buf[16];
  if (with_mode) {
    snprintf(buf, sizeof buf, "%04o", f->mode);
    pb_kv(p, "mode", buf);
  }
  snprintf(buf, sizeof buf, "%u", f->uid);
  pb_kv(p, "owner", buf);
  snprintf(buf, sizeof buf, "%u", f->gid);
  pb_kv(p, "group", buf);
}

static void task_delete(playbook *p, const qvm_diff_change *c) {
  pb_task_begin(p, "delete", c->path, c->path_len, "ansible.builtin.file");
  pb_kv_unsafe(p, "path", c->path, c->path_len);
  pb_kv(p, "state", "absent");
  pb_task_end(p);
}

static void task_directory(playbook *p, const qvm_diff_change *c) {
  pb_task_begin(p, "directory", c->path, c->path_len, "ansible.builtin.file");
  pb_kv_unsafe(p, "path", c->path, c->path_len);
  pb_kv(p, "state", "directory");
  owner_mode(p, &c->to, true);
  pb_task_end(p);
}

static void task_symlink(playbook *p, const qvm_diff_change *c) {
  pb_task_begin(p, "symlink", c->path, c->path_len, "ansible.builtin.file");
  pb_kv_unsafe(p, "path", c->path, c->path_len);
  pb_kv_unsafe(p, "src", c->to.target, c->to.target_len);
  pb_kv(p, "state", "link");
  pb_kv_bool(p, "force", true);
  pb_kv_bool(p, "follow", false);
  owner_mode(p, &c->to, false); /* a symlink's own mode means nothing on Linux */
  pb_task_end(p);
}

static void task_copy(playbook *p, const qvm_diff_change *c) {
  char src[128];
  snprintf(src, sizeof src, "{{ playbook_dir }}/files/%s", c->to.sha256);
  pb_task_begin(p, "file", c->path, c->path_len, "ansible.builtin.copy");
  pb_kv(p, "src", src);
  pb_kv_unsafe(p, "dest", c->path, c->path_len);
  owner_mode(p, &c->to, true);
  pb_task_end(p);
}

/* Mode or owner only, the content and type unchanged. */
static void task_attributes(playbook *p, const qvm_diff_change *c) {
  if (c->to.type == 'l') return task_symlink(p, c);
  pb_task_begin(p, "attributes of", c->path, c->path_len, "ansible.builtin.file");
  pb_kv_unsafe(p, "path", c->path, c->path_len);
  pb_kv(p, "state", c->to.type == 'd' ? "directory" : "file");
  owner_mode(p, &c->to, true);
  pb_task_end(p);
}

static void tasks_groups(playbook *p, const qvm_diff *d, bool present) {
  for (size_t i = 0; i < qvm_diff_group_count(d); i++) {
    qvm_diff_group g;
    qvm_diff_group_get(&g, d, i);
    if ((g.kind == QVM_DIFF_DELETED) == present) continue;
    char gid[16];
    snprintf(gid, sizeof gid, "%u", g.gid);
    pb_task_begin(p, present ? "group" : "remove group", g.name, strlen(g.name),
                  "ansible.builtin.group");
    pb_kv_unsafe(p, "name", g.name, strlen(g.name));
    if (present) pb_kv(p, "gid", gid);
    pb_kv(p, "state", present ? "present" : "absent");
    pb_task_end(p);
  }
}

/* The name of gid in the new /etc/group, else the number. */
static const char *group_name(const qvm_diff *d, uint32_t gid, char buf[16]) {
  const acct_db *db = &d->sys.acct[1];
  for (size_t i = 0; i < db->n_g; i++)
    if (db->g[i].gid == gid) return db->g[i].name;
  snprintf(buf, 16, "%u", gid);
  return buf;
}

static void task_user(playbook *p, const qvm_diff *d, const qvm_diff_user *u) {
  char uid[16], gbuf[16];
  snprintf(uid, sizeof uid, "%u", u->uid);
  const char *group = group_name(d, u->gid, gbuf);
  pb_task_begin(p, "user", u->name, strlen(u->name), "ansible.builtin.user");
  pb_kv_unsafe(p, "name", u->name, strlen(u->name));
  pb_kv(p, "uid", uid);
  pb_kv_unsafe(p, "group", group, strlen(group));
  if (u->n_groups) {
    pb_key(p, "groups");
    pb_seq_begin(p);
    for (size_t k = 0; k < u->n_groups; k++) pb_unsafe(p, u->groups[k], strlen(u->groups[k]));
    pb_seq_end(p);
  }
  pb_kv_bool(p, "append", false);
  pb_kv_unsafe(p, "comment", u->gecos, strlen(u->gecos));
  pb_kv_unsafe(p, "home", u->home, strlen(u->home));
  pb_kv_unsafe(p, "shell", u->shell, strlen(u->shell));
  pb_kv_bool(p, "create_home", false); /* the home's files are file tasks */
  pb_kv(p, "state", "present");
  pb_task_end(p);
}

static void tasks_users(playbook *p, const qvm_diff *d, bool present) {
  for (size_t i = 0; i < qvm_diff_user_count(d); i++) {
    qvm_diff_user u;
    qvm_diff_user_get(&u, d, i);
    if ((u.kind == QVM_DIFF_DELETED) == present) continue;
    if (present) {
      task_user(p, d, &u);
      continue;
    }
    pb_task_begin(p, "remove user", u.name, strlen(u.name), "ansible.builtin.user");
    pb_kv_unsafe(p, "name", u.name, strlen(u.name));
    pb_kv(p, "state", "absent");
    pb_task_end(p);
  }
}

/* One apt task installs (exact versions, dependencies listed as packages
 * of their own, so no recommends), one removes. */
static void tasks_packages(playbook *p, const qvm_diff *d, bool install) {
  size_t n = 0;
  for (size_t i = 0; i < d->sys.n_pkgs; i++) n += (d->sys.pkgs[i].to != NULL) == install;
  if (!n) return;
  pb_task_begin(p, install ? "install packages" : "remove packages", NULL, 0,
                "ansible.builtin.apt");
  pb_key(p, "name");
  pb_seq_begin(p);
  for (size_t i = 0; i < d->sys.n_pkgs; i++) {
    const diff_package *dp = &d->sys.pkgs[i];
    if ((dp->to != NULL) != install) continue;
    const dpkg_pkg *pk = install ? dp->to : dp->from;
    char *name = NULL, *item = NULL;
    if (diff_system_apt_name(&name, &d->sys, pk) < 0 ||
        (install ? asprintf(&item, "%s=%s", name, pk->version) : asprintf(&item, "%s", name)) < 0) {
      free(name);
      p->failed = true;
      snprintf(p->problem, sizeof p->problem, "out of memory");
      break;
    }
    pb_str(p, item); /* checked: [a-z0-9+.-] names, [A-Za-z0-9.+~:-] versions */
    free(name);
    free(item);
  }
  pb_seq_end(p);
  pb_kv(p, "state", install ? "present" : "absent");
  if (install) {
    pb_kv_bool(p, "update_cache", true);
    pb_kv(p, "cache_valid_time", "3600");
    pb_kv_bool(p, "install_recommends", false);
    pb_kv_bool(p, "allow_downgrade", true);
  }
  pb_task_end(p);
}

/* Unmask first, then enable or disable, then mask. */
static void tasks_units(playbook *p, const qvm_diff *d) {
  static const qvm_diff_unit_change order[] = {QVM_DIFF_UNIT_UNMASKED, QVM_DIFF_UNIT_ENABLED,
                                               QVM_DIFF_UNIT_DISABLED, QVM_DIFF_UNIT_MASKED};
  bool first = true;
  for (size_t k = 0; k < QVM_ARRAY_SIZE(order); k++)
    for (size_t i = 0; i < qvm_diff_unit_count(d); i++) {
      qvm_diff_unit u;
      qvm_diff_unit_get(&u, d, i);
      if (u.change != order[k]) continue;
      pb_task_begin(p, qvm_diff_unit_change_name(u.change), u.name, strlen(u.name),
                    "ansible.builtin.systemd");
      pb_kv_unsafe(p, "name", u.name, strlen(u.name));
      bool masking = u.change == QVM_DIFF_UNIT_MASKED || u.change == QVM_DIFF_UNIT_UNMASKED;
      pb_kv_bool(p, masking ? "masked" : "enabled",
                 u.change == QVM_DIFF_UNIT_MASKED || u.change == QVM_DIFF_UNIT_ENABLED);
      if (first) pb_kv_bool(p, "daemon_reload", true); /* unit files were copied */
      first = false;
      pb_task_end(p);
    }
}

/* Deletions, deepest first (a path sorts after its directory), and the old
 * side of a change of type, which must go before the new is made. */
static void tasks_deletions(playbook *p, const qvm_diff *d, const bool *skip) {
  for (size_t i = qvm_diff_count(d); i-- > 0;) {
    qvm_diff_change c;
    qvm_diff_get(&c, d, i);
    if (skip[i]) continue;
    if (c.kind == QVM_DIFF_DELETED || (c.kind == QVM_DIFF_MODIFIED && (c.what & QVM_DIFF_TYPE)))
      task_delete(p, &c);
  }
}

/* Additions and modifications in path order: a directory before what it
 * holds. */
static void tasks_files(playbook *p, const qvm_diff *d, const bool *skip) {
  for (size_t i = 0; i < qvm_diff_count(d); i++) {
    qvm_diff_change c;
    qvm_diff_get(&c, d, i);
    if (skip[i] || c.kind == QVM_DIFF_DELETED) continue;
    bool whole =
        c.kind == QVM_DIFF_ADDED || (c.what & (QVM_DIFF_TYPE | QVM_DIFF_CONTENT | QVM_DIFF_TARGET));
    if (!whole)
      task_attributes(p, &c);
    else if (c.to.type == 'd')
      task_directory(p, &c);
    else if (c.to.type == 'l')
      task_symlink(p, &c);
    else
      task_copy(p, &c);
  }
}

static int build(char **out, size_t *out_len, const qvm_diff *d, const bool *skip,
                 const char *hosts, qvm_error **err) {
  playbook p;
  pb_begin(&p, hosts);
  tasks_groups(&p, d, true);
  tasks_users(&p, d, true);
  tasks_packages(&p, d, true);
  tasks_packages(&p, d, false);
  tasks_deletions(&p, d, skip);
  tasks_files(&p, d, skip);
  tasks_units(&p, d);
  tasks_users(&p, d, false);
  tasks_groups(&p, d, false);
  return pb_finish(&p, out, out_len, err);
}

/* dir: created 0700, or an existing empty directory (never a symlink). */
static int open_out_dir(int *out, bool *created, const char *dir, qvm_error **err) {
  *created = mkdir(dir, 0700) == 0;
  if (!*created && errno != EEXIST)
    return qvm_error_set_errno(err, errno, "cannot create directory '%s'", dir);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
    return qvm_error_set(err, QVM_EEXISTS, "'%s' exists and is not a directory (or a symlink)",
                         dir);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open directory '%s'", dir);
  int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  DIR *ds = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
  if (!ds) {
    if (dup_fd >= 0) close(dup_fd);
    close(fd);
    return qvm_error_set_errno(err, errno, "cannot read directory '%s'", dir);
  }
  bool empty = true;
  for (struct dirent *e; empty && (e = readdir(ds));)
    empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
  closedir(ds);
  if (!empty) {
    close(fd);
    return qvm_error_set(err, QVM_EEXISTS, "directory '%s' is not empty", dir);
  }
  *out = fd;
  return 0;
}

static int copy_content(int src_dir, int dst_dir, const char *name, qvm_error **err) {
  _cleanup_close_ int in = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0) return qvm_error_set_errno(err, errno, "cannot open the kept content %s", name);
  _cleanup_close_ int o =
      openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (o < 0 && errno == EEXIST) return 0; /* the same content for another path */
  if (o < 0) return qvm_error_set_errno(err, errno, "cannot create files/%s", name);
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return qvm_error_set_errno(err, errno, "cannot read the kept content %s", name);
    if (n == 0) break;
    if (qvm_write_all(o, buf, (size_t)n) < 0)
      return qvm_error_set_errno(err, errno, "cannot write files/%s", name);
  }
  if (fsync(o) < 0) return qvm_error_set_errno(err, errno, "cannot write files/%s", name);
  return 0;
}

static int write_files(int dfd, const qvm_diff *d, const bool *skip, const char *text, size_t len,
                       qvm_error **err) {
  if (mkdirat(dfd, "files", 0700) < 0)
    return qvm_error_set_errno(err, errno, "cannot create files/");
  _cleanup_close_ int files = openat(dfd, "files", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  _cleanup_close_ int kept = open(d->content_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (files < 0 || kept < 0) return qvm_error_set_errno(err, errno, "cannot open files/");
  for (size_t i = 0; i < d->n; i++) {
    if (skip[i] || !diff_change_needs_content(&d->c[i])) continue;
    char hex[65];
    diff_sha_hex(hex, d->c[i].to->sha);
    int r = copy_content(kept, files, hex, err);
    if (r < 0) return r;
  }
  _cleanup_close_ int o =
      openat(dfd, "playbook.yml", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (o < 0 || qvm_write_all(o, text, len) < 0 || fsync(o) < 0)
    return qvm_error_set_errno(err, errno, "cannot write playbook.yml");
  return 0;
}

static bool account_file(const char *path) {
  static const char *const files[] = {"/etc/passwd",  "/etc/group",  "/etc/shadow",
                                      "/etc/gshadow", "/etc/subuid", "/etc/subgid"};
  size_t n = strlen(path);
  if (n && path[n - 1] == '-') n--; /* the backups shadow's tools keep */
  for (size_t i = 0; i < QVM_ARRAY_SIZE(files); i++)
    if (strlen(files[i]) == n && !memcmp(files[i], path, n)) return true;
  return false;
}

/* What the playbook leaves to others: apt makes a package's files (and
 * removes those of a package removed or upgraded); the user
 * and group tasks write the account files (a copy would overwrite every
 * other account and password of the target). */
static int make_skip(bool **out, const qvm_diff *d, qvm_error **err) {
  bool *skip = calloc(d->n ? d->n : 1, sizeof *skip);
  if (!skip) return oom(err);
  for (size_t i = 0; i < d->n; i++) {
    const diff_change *c = &d->c[i];
    skip[i] = diff_change_by_package(d, c) ||
              (c->kind != QVM_DIFF_DELETED && d->sys.have_acct && account_file(c->to->path));
  }
  *out = skip;
  return 0;
}

static int check_all(const qvm_diff *d, const bool *skip, qvm_error **err) {
  if (!d->content_dir)
    return qvm_error_set(err, QVM_EINVAL, "the diff was made without keep_content");
  for (size_t i = 0; i < qvm_diff_count(d); i++) {
    qvm_diff_change c;
    qvm_diff_get(&c, d, i);
    int r = skip[i] ? 0 : check_change(&c, err);
    if (r >= 0 && !skip[i] && diff_change_needs_content(&d->c[i]) && !d->c[i].kept)
      r = qvm_error_set(err, QVM_EINVAL, "a content was not kept");
    if (r < 0) return r;
  }
  for (size_t i = 0; i < qvm_diff_user_count(d); i++) {
    qvm_diff_user u;
    qvm_diff_user_get(&u, d, i);
    const char *fields[] = {u.gecos, u.home, u.shell}, *names[] = {"gecos", "home", "shell"};
    for (int k = 0; k < 3; k++) {
      if (!pb_utf8_valid(fields[k], strlen(fields[k])))
        return qvm_error_set(err, QVM_EINVAL,
                             "the %s of user '%s' is not valid UTF-8: a playbook cannot give it",
                             names[k], u.name);
      if (k > 0 && ansible_expands(fields[k], strlen(fields[k])))
        return qvm_error_set(err, QVM_EINVAL,
                             "the %s of user '%s' holds '$' or starts with '~', which Ansible "
                             "expands on the target: a playbook cannot give it exactly",
                             names[k], u.name);
    }
  }
  return 0;
}

int qvm_diff_ansible(const qvm_diff *d, const char *dir, const qvm_diff_ansible_options *o,
                     qvm_error **err) {
  int r = QVM_OPTIONS_CHECK(o, qvm_diff_ansible_options, QVM_DIFF_ANSIBLE_OPTIONS_VERSION, err);
  if (r < 0) return r;
  if (!d || !dir || !dir[0]) return qvm_error_set(err, QVM_EINVAL, "no diff or directory given");
  const char *hosts = o && o->hosts ? o->hosts : "all";
  if (!hosts[0] || !pb_utf8_valid(hosts, strlen(hosts)))
    return qvm_error_set(err, QVM_EINVAL, "the hosts pattern is empty or not UTF-8");
  _cleanup_free_ bool *skip = NULL;
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  if ((r = make_skip(&skip, d, err)) < 0) return r;
  if ((r = check_all(d, skip, err)) < 0 || (r = build(&text, &len, d, skip, hosts, err)) < 0)
    return qvm_error_prefix(err, "cannot write a playbook");
  bool created = false;
  _cleanup_close_ int dfd = -1;
  if ((r = open_out_dir(&dfd, &created, dir, err)) < 0)
    return qvm_error_prefix(err, "cannot write a playbook");
  if ((r = write_files(dfd, d, skip, text, len, err)) < 0) {
    /* leave dir as it was: removed if made here, else empty */
    if (created) {
      qvm_rm_rf(dir, NULL);
    } else {
      _cleanup_free_ char *files = NULL;
      if (asprintf(&files, "%s/files", dir) >= 0) qvm_rm_rf(files, NULL);
      unlinkat(dfd, "playbook.yml", 0);
    }
    return qvm_error_prefix(err, "cannot write a playbook in '%s'", dir);
  }
  return 0;
}
