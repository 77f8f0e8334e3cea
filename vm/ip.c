/* SPDX-License-Identifier: MIT */
/*
 * qvm_vm_ip: the guest's address, from (in order) the lease the shim
 * recorded for this run in lease.json (qvm's own ACK, or what the watcher
 * saw; the same lease is also a DHCP_LEASE line in events.jsonl), the QEMU
 * guest agent, and last the host's neighbour table (dhcp=external).
 * Waiting is event-driven: inotify on the VM's directory (the shim renames
 * a new lease.json into it) and QEMU's pidfd. Only the guest agent, which
 * has no events, is asked again on a timer, and only once it has answered
 * at all.
 *
 * Ordering: a lease older than this run's QEMU spawn (runtime.started_at_us)
 * is history, whatever file it is in; a release or decline recorded after
 * the lease means no address.
 *
 * The neighbour table is a last resort, asked only when there is nothing
 * else to wait for (timeout 0, or at the deadline): a DHCP server such as
 * dnsmasq adds the neighbour entry itself before it unicasts its OFFER, so
 * an entry can exist before the guest has accepted the address.
 *
 * Every address, from any of these, is parsed with inet_pton and re-written
 * with inet_ntop (vm_net_ip_canonical) before it is used; anything else is
 * skipped. lease.json is read whole but bounded, so a long events.jsonl (or
 * a rotated one) never hides the newest lease.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net.h"

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"
#include "vm/handle.h"
#include "vm/net.h"

#define LEASE_FILE_MAX 4096
#define QGA_QUERY_MS 1000
#define QGA_COMMAND_SYNC_MS 5000 /* vm_qga_command's sync */
#define QGA_NOW_MS 300           /* timeout 0: do not hold up an immediate answer */
#define QGA_RETRY_MS 2000
/* A guest agent's reply is guest-controlled: bounded in bytes, and only so
 * many interfaces and addresses of each are looked at. */
#define QGA_REPLY_MAX (1u << 20)
#define QGA_IFACES_MAX 256
#define QGA_ADDRS_MAX 64

typedef struct ip_search {
  qvm_vm *vm;
  int64_t started_us; /* this run's QEMU spawn: older leases are history */
  char ip[QVM_NET_IP_MAX];
  char source[16];
  uint8_t mac[6];
  bool agent_answered;
  unsigned agent_rejected; /* addresses the agent gave that were not IPv4 */
  int wake_fd;             /* the VM dir's inotify: a lease cuts an agent query short */
} ip_search;

/* A member that is a JSON string, else "" (a JSON null, a number, or nothing:
 * agent replies and lease records are not trusted to be well typed). */
static const char *str_member(struct json_object *o, const char *key) {
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
    return "";
  return json_object_get_string(v);
}

/* --- lease.json ------------------------------------------------------------------ */

static const char *lease_source(const char *src) {
  const enum qvm_net_ip_source known[] = {QVM_NET_IP_SOURCE_DHCP_SERVER,
                                          QVM_NET_IP_SOURCE_DHCP_SNOOP};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (!strcmp(src, qvm_net_ip_source_name(known[i]))) return qvm_net_ip_source_name(known[i]);
  return NULL;
}

/* The shim's record of this run's newest lease (written atomically). */
static bool look_lease(ip_search *s) {
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  struct json_object *o = NULL, *v = NULL;
  if (qvm_read_file(&text, &len, s->vm->paths.lease, LEASE_FILE_MAX, NULL) < 0 ||
      vm_doc_parse(&o, text, len, "lease.json", NULL) < 0)
    return false;
  int64_t at = json_object_object_get_ex(o, "at_us", &v) && json_object_is_type(v, json_type_int)
                   ? json_object_get_int64(v)
                   : 0;
  const char *src = lease_source(str_member(o, "source"));
  bool ok = at >= s->started_us && src && !strcmp(str_member(o, "event"), "DHCP_LEASE") &&
            vm_net_ip_canonical(s->ip, str_member(o, "ip"));
  if (ok) snprintf(s->source, sizeof s->source, "%s", src);
  json_object_put(o);
  return ok;
}

/* --- the guest agent ---------------------------------------------------------- */

/* Waits for fd (events); false on the deadline, or when wake_fd (a new file
 * in the VM's directory) says a lease may have arrived meanwhile. */
static bool qga_poll(int fd, short events, int wake_fd, int64_t deadline) {
  struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = wake_fd, .events = POLLIN}};
  return poll(p, 2, qvm_deadline_left_ms(deadline)) > 0 && !p[1].revents;
}

static int qga_send(int fd, int wake_fd, const char *cmd, int64_t deadline) {
  size_t len = strlen(cmd), done = 0;
  while (done < len) {
    if (!qga_poll(fd, POLLOUT, wake_fd, deadline)) return -1;
    ssize_t n = send(fd, cmd + done, len - done, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
    if (n > 0) done += (size_t)n;
  }
  return 0;
}

/* The next JSON object the agent sends, skipping the 0xff sync delimiter. */
static struct json_object *qga_read(int fd, int wake_fd, int64_t deadline) {
  json_tokener *tok = json_tokener_new_ex(16);
  struct json_object *obj = NULL;
  size_t total = 0;
  while (tok && !obj && total < QGA_REPLY_MAX) {
    if (!qga_poll(fd, POLLIN, wake_fd, deadline)) break;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    total += (size_t)n;
    char *start = memrchr(buf, 0xff, (size_t)n);
    if (start) json_tokener_reset(tok);
    char *from = start ? start + 1 : buf;
    obj = json_tokener_parse_ex(tok, from, (int)(buf + n - from));
    enum json_tokener_error e = json_tokener_get_error(tok);
    if (!obj && e != json_tokener_continue) json_tokener_reset(tok);
  }
  json_tokener_free(tok);
  return obj;
}

static bool qga_sync(int fd, int wake_fd, int64_t deadline) {
  unsigned id = 0;
  if (getrandom(&id, sizeof id, 0) != sizeof id) id = (unsigned)qvm_now_us();
  id &= 0x7fffffff;
  char cmd[128];
  snprintf(cmd, sizeof cmd,
           "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%u}}\n", id);
  if (qga_send(fd, wake_fd, cmd, deadline) < 0) return false;
  for (;;) {
    struct json_object *r = qga_read(fd, wake_fd, deadline), *v = NULL;
    if (!r) return false;
    bool ok = json_object_object_get_ex(r, "return", &v) && json_object_is_type(v, json_type_int) &&
              (unsigned)json_object_get_int64(v) == id;
    json_object_put(r);
    if (ok) return true;
  }
}

/* The first IPv4 address of the interface with the VM's MAC. An address
 * that does not parse is counted and skipped, never used or shown. */
static bool qga_pick(ip_search *s, struct json_object *ifaces) {
  char mac[QVM_NET_MAC_STR_MAX];
  qvm_net_mac_format(mac, s->mac);
  size_t n = json_object_array_length(ifaces);
  for (size_t i = 0; i < n && i < QGA_IFACES_MAX; i++) {
    struct json_object *itf = json_object_array_get_idx(ifaces, i), *addrs = NULL;
    if (strcasecmp(str_member(itf, "hardware-address"), mac) ||
        !json_object_object_get_ex(itf, "ip-addresses", &addrs) ||
        !json_object_is_type(addrs, json_type_array))
      continue;
    size_t na = json_object_array_length(addrs);
    for (size_t j = 0; j < na && j < QGA_ADDRS_MAX; j++) {
      struct json_object *a = json_object_array_get_idx(addrs, j);
      if (strcmp(str_member(a, "ip-address-type"), "ipv4")) continue;
      if (!vm_net_ip_canonical(s->ip, str_member(a, "ip-address"))) {
        s->agent_rejected++;
        continue;
      }
      strcpy(s->source, qvm_net_ip_source_name(QVM_NET_IP_SOURCE_GUEST_AGENT));
      return true;
    }
  }
  return false;
}

static bool ask_agent(ip_search *s, int timeout_ms) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->vm->paths.qga_sock);
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return false;
  int64_t deadline = qvm_now_ms() + timeout_ms;
  if (!qga_sync(fd, s->wake_fd, deadline)) return false;
  s->agent_answered = true;
  s->agent_rejected = 0; /* this answer's count */
  if (qga_send(fd, s->wake_fd, "{\"execute\":\"guest-network-get-interfaces\"}\n", deadline) < 0)
    return false;
  struct json_object *r = qga_read(fd, s->wake_fd, deadline), *ret = NULL;
  bool found = r && json_object_object_get_ex(r, "return", &ret) &&
               json_object_is_type(ret, json_type_array) && qga_pick(s, ret);
  json_object_put(r);
  return found;
}

int vm_qga_set_time_send(int *out_fd, unsigned *out_id, const vm_paths *p, qvm_error **err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p->qga_sock);
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return qvm_error_set_errno(err, errno, "cannot reach the guest agent's socket");
  unsigned id = 0;
  if (getrandom(&id, sizeof id, 0) != sizeof id) id = (unsigned)qvm_now_us();
  id &= 0x7fffffff;
  /* Both at once: the agent answers the sync (its parser reset by 0xff),
   * then sets the time, while the caller does something else. */
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%u}}\n"
           "{\"execute\":\"guest-set-time\",\"arguments\":{\"time\":%lld}}\n",
           id, (long long)qvm_realtime_us() * 1000);
  if (qga_send(fd, -1, cmd, qvm_now_ms() + QGA_QUERY_MS) < 0)
    return qvm_error_set(err, QVM_ETIMEOUT, "cannot send to the guest agent");
  *out_fd = TAKE_FD(fd);
  *out_id = id;
  return 0;
}

/* The agent's answers as lines (it ends each with a newline; the sync's
 * starts with 0xff): several may come in one read. 1 when the sync's and
 * then the set-time's were seen, 0 for more, -1 for an error reply. */
static int set_time_lines(char *buf, size_t *len, unsigned id, bool *synced) {
  char *start = buf, *nl;
  int rc = 0;
  while (rc == 0 && (nl = memchr(start, '\n', (size_t)(buf + *len - start)))) {
    *nl = '\0';
    char *line = start;
    start = nl + 1;
    while (*line == '\xff') line++;
    struct json_object *r = json_tokener_parse(line), *v = NULL;
    if (!r) continue;
    if (!*synced)
      *synced = json_object_object_get_ex(r, "return", &v) &&
                json_object_is_type(v, json_type_int) && (unsigned)json_object_get_int64(v) == id;
    else
      rc = json_object_object_get_ex(r, "error", NULL) ? -1 : 1;
    json_object_put(r);
  }
  *len -= (size_t)(start - buf);
  memmove(buf, start, *len);
  return rc;
}

int vm_qga_set_time_wait(int fd, unsigned id, int timeout_ms, qvm_error **err) {
  int64_t deadline = qvm_now_ms() + timeout_ms;
  enum { CAP = 64 << 10 };
  _cleanup_free_ char *buf = malloc(CAP);
  if (!buf) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  size_t len = 0;
  bool synced = false;
  for (;;) {
    if (!qga_poll(fd, POLLIN, -1, deadline))
      return qvm_error_set(err, QVM_ETIMEOUT, "the guest agent did not answer within %d ms",
                           timeout_ms);
    if (len == CAP) len = 0; /* a line this long is no answer of ours */
    ssize_t n = recv(fd, buf + len, CAP - len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return qvm_error_set(err, QVM_EPROTO, "the guest agent's socket closed");
    len += (size_t)n;
    int rc = set_time_lines(buf, &len, id, &synced);
    if (rc > 0) return 0;
    if (rc < 0) return qvm_error_set(err, QVM_EPROTO, "the guest agent refused guest-set-time");
  }
}

int vm_qga_set_time(const vm_paths *p, int timeout_ms, qvm_error **err) {
  int fd = -1;
  unsigned id = 0;
  int r = vm_qga_set_time_send(&fd, &id, p, err);
  if (r == 0) r = vm_qga_set_time_wait(fd, id, timeout_ms, err);
  if (fd >= 0) close(fd);
  return r;
}

int vm_qga_command(const vm_paths *p, const char *execute, int timeout_ms, qvm_error **err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p->qga_sock);
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return qvm_error_set_errno(err, errno, "cannot reach the guest agent's socket");
  /* A guest without an agent never answers the sync: that wait is short,
   * and nothing was sent yet that could take effect later. */
  int sync_ms = timeout_ms < QGA_COMMAND_SYNC_MS ? timeout_ms : QGA_COMMAND_SYNC_MS;
  if (!qga_sync(fd, -1, qvm_now_ms() + sync_ms))
    return qvm_error_set(err, QVM_EUNAVAIL, "the guest agent did not answer within %d ms", sync_ms);
  int64_t deadline = qvm_now_ms() + timeout_ms;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "{\"execute\":\"%s\"}\n", execute);
  if (qga_send(fd, -1, cmd, deadline) < 0)
    return qvm_error_set(err, QVM_ETIMEOUT, "cannot send to the guest agent");
  struct json_object *r = qga_read(fd, -1, deadline);
  bool answered = r != NULL, ok = r && json_object_object_get_ex(r, "return", NULL);
  json_object_put(r);
  if (ok) return 0;
  return answered
             ? qvm_error_set(err, QVM_EPROTO, "the guest agent refused %s", execute)
             : qvm_error_set(err, QVM_ETIMEOUT, "the guest agent did not answer %s within %d ms",
                             execute, timeout_ms);
}

/* --- the search ------------------------------------------------------------------- */

static bool look_now(ip_search *s) { return look_lease(s); }

static bool look_neighbours(ip_search *s) {
  char found[QVM_NET_IP_MAX];
  if (s->vm->spec->dhcp_external && qvm_net_neigh_lookup(found, s->mac, 0, NULL) == 0 &&
      vm_net_ip_canonical(s->ip, found)) {
    strcpy(s->source, qvm_net_ip_source_name(QVM_NET_IP_SOURCE_NEIGH));
    return true;
  }
  s->ip[0] = '\0';
  return false;
}

static int not_reachable(qvm_vm *vm, qvm_error **err) {
  const vm_spec *sp = vm->spec;
  if (sp->net == VM_NET_NONE) {
    qvm_error_set(err, QVM_EINVAL, "vm '%s' has no network", vm->name);
    return qvm_error_set_hint(err, QVM_EINVAL, "NoNetwork", vm->name);
  }
  if (vm->rec->has_runtime && vm->rec->runtime.ssh_port)
    qvm_error_set(err, QVM_EINVAL,
                  "vm '%s' uses user-mode networking: its address is not reachable from the "
                  "host; the guest is reached at 127.0.0.1:%d",
                  vm->name, vm->rec->runtime.ssh_port);
  else
    qvm_error_set(err, QVM_EINVAL,
                  "vm '%s' uses user-mode networking: its address is not reachable from the "
                  "host; the guest is reached on a forwarded 127.0.0.1 port",
                  vm->name);
  return qvm_error_set_hint(err, QVM_EINVAL, "UserNetwork", vm->name);
}

static int64_t run_started_us(qvm_vm *vm) {
  return vm->rec->has_runtime ? vm->rec->runtime.started_at_us : 0;
}

static int timed_out(const ip_search *s, int timeout_ms, qvm_error **err) {
  const vm_spec *sp = s->vm->spec;
  char mac[QVM_NET_MAC_STR_MAX];
  qvm_net_mac_format(mac, s->mac);
  char agent[96] = " (no guest agent answered)";
  if (s->agent_rejected)
    snprintf(agent, sizeof agent, "; the guest agent's %u address%s skipped: not ipv4 addresses",
             s->agent_rejected, s->agent_rejected == 1 ? " was" : "es were");
  else if (s->agent_answered)
    snprintf(agent, sizeof agent, "; the guest agent answered with no ipv4 address");
  qvm_error_set(err, QVM_ETIMEOUT,
                "vm '%s' has no address after %d ms: waited for %s for %s on bridge '%s'%s",
                s->vm->name, timeout_ms,
                sp->dhcp_external ? "the external dhcp server's ack (dhcp-watch) or a neighbour "
                                    "entry"
                                  : "a lease from qvm's dhcp server",
                mac, sp->bridge, agent);
  return qvm_error_set_hint(err, QVM_ETIMEOUT, "NoLease", s->vm->name);
}

typedef struct ip_waiters {
  int ino, pidfd;
} ip_waiters;

static int waiters_open(ip_waiters *w, ip_search *s, const vm_proc *qemu, qvm_error **err) {
  /* The directory, not a file: lease.json is renamed into it, and nothing
   * there is written often (serial.log's writes are IN_MODIFY, not watched). */
  w->ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (w->ino < 0 || inotify_add_watch(w->ino, s->vm->paths.dir, IN_MOVED_TO | IN_CREATE) < 0)
    return qvm_error_set_errno(err, errno, "cannot watch '%s'", s->vm->paths.dir);
  w->pidfd = vm_proc_pidfd(qemu);
  return 0;
}

static void waiters_close(ip_waiters *w) {
  if (w->ino >= 0) close(w->ino);
  if (w->pidfd >= 0) close(w->pidfd);
}

/* Wakes on a new file in the VM's directory (lease.json), QEMU's exit, the next guest agent try or
 * the deadline. 1: QEMU exited. */
static int wait_once(ip_waiters *w, int64_t deadline, int64_t agent_at) {
  struct pollfd p[2] = {{.fd = w->ino, .events = POLLIN}, {.fd = w->pidfd, .events = POLLIN}};
  int64_t until = deadline;
  if (agent_at >= 0 && (until < 0 || agent_at < until)) until = agent_at;
  int n = poll(p, 2, until < 0 ? -1 : qvm_deadline_left_ms(until));
  if (n <= 0) return 0;
  if (p[0].revents) {
    char buf[4096];
    while (read(w->ino, buf, sizeof buf) > 0) {
    }
  }
  return p[1].revents ? 1 : 0;
}

static int search(ip_search *s, const vm_proc *qemu, int timeout_ms, qvm_error **err) {
  ip_waiters w = {-1, -1};
  int r = waiters_open(&w, s, qemu, err);
  s->wake_fd = w.ino;
  int64_t deadline = timeout_ms < 0 ? -1 : qvm_now_ms() + timeout_ms, agent_at = 0;
  while (r >= 0) {
    if (look_now(s)) break;
    if (agent_at >= 0 && qvm_now_ms() >= agent_at) {
      int left = deadline < 0 ? QGA_QUERY_MS : qvm_deadline_left_ms(deadline);
      if (ask_agent(s, timeout_ms == 0 ? QGA_NOW_MS : left < QGA_QUERY_MS ? left : QGA_QUERY_MS))
        break;
      /* An agent that answered (or a query cut short by a new lease.json)
       * is asked again: the agent has no events. A guest
       * without one is not asked again in this call. */
      struct pollfd woke = {.fd = s->wake_fd, .events = POLLIN};
      bool cut_short = poll(&woke, 1, 0) > 0;
      agent_at = s->agent_answered || cut_short ? qvm_now_ms() + QGA_RETRY_MS : -1;
    }
    if (deadline >= 0 && qvm_now_ms() >= deadline) {
      if (!look_neighbours(s)) r = timed_out(s, timeout_ms, err);
      break;
    }
    if (wait_once(&w, deadline, agent_at) == 1 && !look_now(s)) {
      r = qvm_error_set(err, QVM_ENOTFOUND, "vm '%s' stopped before it had an address",
                        s->vm->name);
      break;
    }
  }
  waiters_close(&w);
  return r;
}

int qvm_vm_ip(char **out_ip, char **out_source, qvm_vm *vm, int timeout_ms, qvm_error **err) {
  *out_ip = NULL;
  if (out_source) *out_source = NULL;
  int r = vm_reload(vm, err);
  return r < 0 ? r : vm_net_ip_find(out_ip, out_source, vm, timeout_ms, err);
}

int vm_net_ip_find(char **out_ip, char **out_source, qvm_vm *vm, int timeout_ms, qvm_error **err) {
  int r = 0;
  if (vm->spec->net != VM_NET_BRIDGE) return not_reachable(vm, err);
  vm_runtime_view rv;
  vm_runtime_view_read(&rv, vm->rec);
  if (!rv.has_qemu || !rv.qemu_alive) {
    qvm_error_set(err, QVM_ENOTFOUND, "vm '%s' is not running, so it has no address", vm->name);
    return qvm_error_set_hint(err, QVM_ENOTFOUND, "VmNotRunning", vm->name);
  }
  ip_search s = {.vm = vm, .started_us = run_started_us(vm)};
  if ((r = qvm_net_mac_parse(s.mac, vm->spec->mac, err)) < 0) return r;
  if ((r = search(&s, &rv.qemu, timeout_ms < -1 ? -1 : timeout_ms, err)) < 0) return r;
  *out_ip = strdup(s.ip);
  if (out_source) *out_source = strdup(s.source);
  if (!*out_ip || (out_source && !*out_source)) {
    free(*out_ip);
    *out_ip = NULL;
    if (out_source) {
      free(*out_source);
      *out_source = NULL;
    }
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  return 0;
}
