/* SPDX-License-Identifier: MIT */
#include "net/lease_db.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <libgen.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/dhcp_codec.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"

static const char *const state_names[] = {"bound", "released", "declined"};

void lease_table_free(lease_table *t) {
  free(t->v);
  *t = (lease_table){0};
}

lease_record *lease_table_find_mac(lease_table *t, const uint8_t mac[6]) {
  for (size_t i = 0; i < t->n; i++)
    if (t->v[i].state != LEASE_DECLINED && memcmp(t->v[i].mac, mac, 6) == 0) return &t->v[i];
  return NULL;
}

bool lease_table_ip_held(const lease_table *t, uint32_t ip, const uint8_t mac[6], int64_t now) {
  for (size_t i = 0; i < t->n; i++) {
    const lease_record *r = &t->v[i];
    if (r->ip != ip || r->expires <= now) continue;
    if (r->state == LEASE_DECLINED) return true;
    if (r->state == LEASE_BOUND && memcmp(r->mac, mac, 6) != 0) return true;
  }
  return false;
}

bool lease_table_ip_recorded(const lease_table *t, uint32_t ip) {
  for (size_t i = 0; i < t->n; i++)
    if (t->v[i].ip == ip) return true;
  return false;
}

int lease_table_put(lease_table *t, const lease_record *rec) {
  size_t kept = 0;
  for (size_t i = 0; i < t->n; i++) {
    const lease_record *r = &t->v[i];
    bool same_ip = r->ip == rec->ip;
    bool same_mac = r->state != LEASE_DECLINED && memcmp(r->mac, rec->mac, 6) == 0;
    if (!same_ip && !(same_mac && rec->state != LEASE_DECLINED)) t->v[kept++] = *r;
  }
  t->n = kept;
  if (t->n == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 16;
    lease_record *v = realloc(t->v, cap * sizeof *v);
    if (!v) return -ENOMEM;
    t->v = v;
    t->cap = cap;
  }
  t->v[t->n++] = *rec;
  return 0;
}

size_t lease_table_declined_count(const lease_table *t, const uint8_t mac[6], int64_t now) {
  size_t n = 0;
  for (size_t i = 0; i < t->n; i++)
    if (t->v[i].state == LEASE_DECLINED && t->v[i].expires > now && !memcmp(t->v[i].mac, mac, 6))
      n++;
  return n;
}

size_t lease_table_prune_declined(lease_table *t, int64_t now) {
  size_t kept = 0, n = t->n;
  for (size_t i = 0; i < n; i++)
    if (t->v[i].state != LEASE_DECLINED || t->v[i].expires > now) t->v[kept++] = t->v[i];
  t->n = kept;
  return n - kept;
}

static bool parse_state(lease_state *out, const char *s) {
  for (size_t i = 0; i < QVM_ARRAY_SIZE(state_names); i++)
    if (strcmp(s, state_names[i]) == 0) return *out = (lease_state)i, true;
  return false;
}

static bool parse_line(lease_record *out, char *line) {
  char *save = NULL;
  char *f[5];
  for (int i = 0; i < 5; i++)
    if (!(f[i] = strtok_r(i ? NULL : line, " \t", &save))) return false;
  if (strtok_r(NULL, " \t", &save)) return false;
  memset(out, 0, sizeof *out);
  struct in_addr a;
  if (!parse_state(&out->state, f[0])) return false;
  if (qvm_net_mac_parse(out->mac, f[1], NULL) < 0) return false;
  if (inet_pton(AF_INET, f[2], &a) != 1) return false;
  out->ip = ntohl(a.s_addr);
  char *end = NULL;
  errno = 0;
  long long exp = strtoll(f[3], &end, 10);
  if (errno || *end || exp < 0) return false;
  out->expires = exp;
  if (strcmp(f[4], "-") != 0 && !dhcp_hostname_sanitize(out->hostname, f[4], strlen(f[4])))
    return false;
  return true;
}

int lease_table_parse(lease_table *out, const char *text) {
  *out = (lease_table){0};
  _cleanup_free_ char *copy = strdup(text);
  if (!copy) return -ENOMEM;
  char *save = NULL;
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lease_record rec;
    if (line[0] == '#' || !parse_line(&rec, line)) continue;
    if (lease_table_put(out, &rec) < 0) {
      lease_table_free(out);
      return -ENOMEM;
    }
  }
  return 0;
}

char *lease_table_format(const lease_table *t) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_puts(&sb, "# qvm leases: state mac ip expires hostname\n");
  for (size_t i = 0; i < t->n; i++) {
    const lease_record *r = &t->v[i];
    char mac[QVM_NET_MAC_STR_MAX], ip[INET_ADDRSTRLEN];
    struct in_addr a = {.s_addr = htonl(r->ip)};
    qvm_net_mac_format(mac, r->mac);
    inet_ntop(AF_INET, &a, ip, sizeof ip);
    qvm_strbuf_printf(&sb, "%s %s %s %" PRId64 " %s\n", state_names[r->state], mac, ip, r->expires,
                      r->hostname[0] ? r->hostname : "-");
  }
  return qvm_strbuf_steal(&sb);
}

int lease_db_lock(int *out, const char *path, qvm_error **err) {
  _cleanup_free_ char *lock_path = NULL;
  if (asprintf(&lock_path, "%s.lock", path) < 0) return qvm_error_set_errno(err, ENOMEM, "oom");
  _cleanup_close_ int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open lease lock '%s'", lock_path);
  while (flock(fd, LOCK_EX) < 0)
    if (errno != EINTR) return qvm_error_set_errno(err, errno, "cannot lock '%s'", lock_path);
  *out = TAKE_FD(fd);
  return 0;
}

int lease_db_read(lease_table *out, const char *path, qvm_error **err) {
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  _cleanup_(qvm_error_freep) qvm_error *e = NULL;
  int r = qvm_read_file(&text, &len, path, LEASE_DB_MAX_BYTES, &e);
  if (r == QVM_ENOTFOUND || (r < 0 && qvm_error_errno(e) == ENOENT)) {
    *out = (lease_table){0};
    return 0;
  }
  if (r < 0) return qvm_error_propagate(err, TAKE_PTR(e));
  if (lease_table_parse(out, text) < 0) return qvm_error_set_errno(err, ENOMEM, "oom");
  return 0;
}

int lease_db_write(const lease_table *t, const char *path, qvm_error **err) {
  _cleanup_free_ char *text = lease_table_format(t);
  if (!text) return qvm_error_set_errno(err, ENOMEM, "cannot format lease db '%s'", path);
  return qvm_write_file_atomic(path, text, strlen(text), 0600, err);
}

static void restrict_file(const char *path) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
    (void)fchmod(fd, st.st_mode & 0600);
}

void lease_db_restrict(const char *path) {
  _cleanup_free_ char *lock_path = NULL;
  restrict_file(path);
  if (asprintf(&lock_path, "%s.lock", path) >= 0) restrict_file(lock_path);
}

/* --- public lookup and wait ---------------------------------------------- */

int qvm_net_lease_lookup(qvm_net_lease *out, const char *db_path, const uint8_t mac[6],
                         qvm_error **err) {
  lease_table t = {0};
  int r = lease_db_read(&t, db_path, err);
  if (r < 0) return r;
  lease_record *rec = lease_table_find_mac(&t, mac);
  int64_t now = (int64_t)time(NULL);
  char mac_text[QVM_NET_MAC_STR_MAX];
  qvm_net_mac_format(mac_text, mac);
  if (!rec || rec->state != LEASE_BOUND || rec->expires <= now) {
    lease_table_free(&t);
    return qvm_error_set(err, QVM_ENOTFOUND, "no active lease for '%s' in '%s'", mac_text, db_path);
  }
  struct in_addr a = {.s_addr = htonl(rec->ip)};
  memset(out, 0, sizeof *out);
  inet_ntop(AF_INET, &a, out->ip, sizeof out->ip);
  memcpy(out->mac, mac_text, sizeof out->mac);
  out->expires = rec->expires;
  memcpy(out->hostname, rec->hostname, sizeof out->hostname);
  lease_table_free(&t);
  return 0;
}

static int lease_watch_dir(int *out, const char *db_path, qvm_error **err) {
  _cleanup_free_ char *copy = strdup(db_path);
  if (!copy) return qvm_error_set_errno(err, ENOMEM, "oom");
  const char *dir = dirname(copy);
  _cleanup_close_ int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot create inotify instance");
  if (inotify_add_watch(fd, dir, IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE) < 0)
    return qvm_error_set_errno(err, errno, "cannot watch '%s'", dir);
  *out = TAKE_FD(fd);
  return 0;
}

static int lease_try(char *out, const char *db_path, const uint8_t mac[6], qvm_error **err) {
  qvm_net_lease lease;
  _cleanup_(qvm_error_freep) qvm_error *e = NULL;
  int r = qvm_net_lease_lookup(&lease, db_path, mac, &e);
  if (r == QVM_ENOTFOUND) return 0;
  if (r < 0) return qvm_error_propagate(err, TAKE_PTR(e));
  memcpy(out, lease.ip, QVM_NET_IP_MAX);
  return 1;
}

int qvm_net_lease_wait(char *out, const char *db_path, const uint8_t mac[6], int timeout_ms,
                       qvm_error **err) {
  _cleanup_close_ int ifd = -1;
  /* Watch before the first look, so a write in between is not missed. */
  int r = lease_watch_dir(&ifd, db_path, err);
  if (r < 0) return r;
  int64_t deadline = timeout_ms < 0 ? -1 : qvm_now_ms() + timeout_ms;
  for (;;) {
    r = lease_try(out, db_path, mac, err);
    if (r != 0) return r < 0 ? r : 0;
    int left = qvm_deadline_left_ms(deadline);
    if (left == 0) break;
    struct pollfd p = {.fd = ifd, .events = POLLIN};
    if (poll(&p, 1, left) < 0 && errno != EINTR)
      return qvm_error_set_errno(err, errno, "cannot wait for lease db '%s'", db_path);
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (read(ifd, buf, sizeof buf) > 0) {
    }
  }
  char mac_text[QVM_NET_MAC_STR_MAX];
  qvm_net_mac_format(mac_text, mac);
  return qvm_error_set(err, QVM_ETIMEOUT, "no dhcp lease for '%s' appeared in '%s' within %d ms",
                       mac_text, db_path, timeout_ms);
}
