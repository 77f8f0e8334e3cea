/* SPDX-License-Identifier: MIT */
/* Bridge networking for one VM: the --net option, and the shim's side of it
 * (bridge, tap, DHCP server or watcher, DHCP_LEASE events, tap removal). */
#include "vm/net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"

/* --- parsing -------------------------------------------------------------- */

int vm_net_bridge_name_check(const char *name, qvm_error **err) {
  size_t len = name ? strlen(name) : 0;
  bool ok = len >= 1 && len < QVM_NET_IFNAME_MAX && name[0] != '-' && name[0] != '.';
  for (size_t i = 0; ok && i < len; i++)
    ok = isalnum((unsigned char)name[i]) || name[i] == '-' || name[i] == '_' || name[i] == '.';
  if (ok) return 0;
  return qvm_error_set(err, QVM_EINVAL,
                       "bridge name '%.20s' is invalid: use 1 to 15 characters of a-z, A-Z, 0-9, "
                       "'-', '_' and '.'",
                       name ? name : "");
}

static int subnet_parse(uint32_t *out_addr, unsigned *out_prefix, const char *cidr) {
  char buf[32];
  if (!cidr || strlen(cidr) >= sizeof buf) return -1;
  strcpy(buf, cidr);
  char *slash = strchr(buf, '/');
  if (!slash || !isdigit((unsigned char)slash[1])) return -1;
  *slash = '\0';
  char *end = NULL;
  unsigned long prefix = strtoul(slash + 1, &end, 10);
  struct in_addr a;
  if (*end || prefix < 8 || prefix > 30 || inet_pton(AF_INET, buf, &a) != 1) return -1;
  uint32_t addr = ntohl(a.s_addr), host = (uint32_t)((1ull << (32 - prefix)) - 1);
  if ((addr & host) == 0 || (addr & host) == host) return -1; /* network or broadcast */
  *out_addr = addr;
  *out_prefix = (unsigned)prefix;
  return 0;
}

int vm_net_subnet_check(const char *cidr, qvm_error **err) {
  uint32_t a;
  unsigned p;
  if (subnet_parse(&a, &p, cidr) == 0) return 0;
  return qvm_error_set(err, QVM_EINVAL,
                       "subnet '%.40s' is invalid: give the bridge's own address with a prefix "
                       "of 8 to 30, such as 10.77.0.1/24",
                       cidr ? cidr : "");
}

bool vm_net_admin_capable(void) {
  _cleanup_free_ char *status = NULL;
  if (qvm_read_file(&status, NULL, "/proc/self/status", 1 << 16, NULL) < 0) return false;
  const char *eff = strstr(status, "\nCapEff:");
  if (!eff) return false;
  unsigned long long caps = strtoull(eff + 8, NULL, 16);
  return (caps >> 12) & 1; /* CAP_NET_ADMIN */
}

static int set_str(char **dst, const char *v, qvm_error **err) {
  free(*dst);
  if (!(*dst = strdup(v))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

/* Whether another VM on s's bridge has mac: in its vm.json, or in the
 * bridge's lease db (which also remembers removed VMs). At create the uuid
 * is new, so any record of the MAC is someone else's. */
static bool mac_taken(const char *root, const vm_spec *s, const char *mac) {
  _cleanup_free_ char *db = NULL, *leases = NULL, *vms = NULL;
  char needle[QVM_NET_MAC_STR_MAX + 2];
  snprintf(needle, sizeof needle, " %s ", mac);
  if (vm_net_lease_db_path(&db, s->bridge, NULL) == 0 &&
      qvm_read_file(&leases, NULL, db, 4u << 20, NULL) == 0 && strstr(leases, needle))
    return true;
  if (asprintf(&vms, "%s/vms", root) < 0) return false;
  DIR *d = opendir(vms);
  bool taken = false;
  for (struct dirent *e; d && !taken && (e = readdir(d));) {
    if (e->d_name[0] == '.' || !strcmp(e->d_name, s->name)) continue;
    _cleanup_free_ char *path = NULL;
    /* Read leniently, not through vm/record.h: a vm.json the codec refuses
     * (damaged, edited, newer) still names a MAC that must not be reused. */
    struct json_object *doc = NULL, *spec = NULL, *net = NULL, *v = NULL, *b = NULL;
    if (asprintf(&path, "%s/%s/vm.json", vms, e->d_name) < 0 || vm_doc_read(&doc, path, NULL) < 0)
      continue;
    taken = json_object_object_get_ex(doc, "spec", &spec) &&
            json_object_object_get_ex(spec, "mac", &v) &&
            json_object_is_type(v, json_type_string) && !strcmp(json_object_get_string(v), mac) &&
            json_object_object_get_ex(spec, "network", &net) &&
            json_object_object_get_ex(net, "bridge", &b) &&
            json_object_is_type(b, json_type_string) &&
            !strcmp(json_object_get_string(b), s->bridge);
    json_object_put(doc);
  }
  if (d) closedir(d);
  return taken;
}

int vm_net_mac_assign(vm_spec *s, qvm_error **err) {
  _cleanup_free_ char *root = NULL;
  int r = vm_state_root(&root, err);
  if (r < 0) return r;
  for (unsigned n = 0; n < QVM_NET_MAC_CANDIDATES; n++) {
    uint8_t mac[6];
    if ((r = qvm_net_mac_candidate(mac, s->uuid, n, err)) < 0) return r;
    qvm_net_mac_format(s->mac, mac);
    if (!mac_taken(root, s, s->mac)) return 0;
  }
  return qvm_error_set(err, QVM_EEXISTS,
                       "every mac derived from uuid '%s' is taken on bridge '%s': create the vm "
                       "again (a new uuid)",
                       s->uuid, s->bridge);
}

/* The allow-list, parsed into s->egress; each bad entry is named. */
static int isolated_fill(vm_spec *s, const qvm_vm_net *n, qvm_error **err) {
  if (n->n_allow_egress && !n->isolated)
    return qvm_error_set(err, QVM_EINVAL, "an egress allow-list needs an isolated port");
  if (!n->isolated) return 0;
  if (s->dhcp_external)
    return qvm_error_set(err, QVM_EINVAL,
                         "an isolated port needs qvm's dhcp: its lease is the only source "
                         "address the port may use");
  if (n->n_allow_egress > QVM_VM_EGRESS_MAX)
    return qvm_error_set(err, QVM_EINVAL, "%zu egress entries: at most %d", n->n_allow_egress,
                         QVM_VM_EGRESS_MAX);
  s->isolated = true;
  free(s->egress);
  s->egress = NULL;
  s->n_egress = 0;
  if (n->n_allow_egress && !(s->egress = calloc(n->n_allow_egress, sizeof *s->egress)))
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < n->n_allow_egress; i++) {
    int r = qvm_net_egress_parse(&s->egress[i], n->allow_egress[i], err);
    if (r < 0) return r;
    s->n_egress = i + 1;
  }
  return 0;
}

int vm_net_spec_fill(vm_spec *s, const qvm_vm_net *n, qvm_error **err) {
  static const vm_net_mode modes[] = {[QVM_VM_NET_USER] = VM_NET_USER,
                                      [QVM_VM_NET_NONE] = VM_NET_NONE,
                                      [QVM_VM_NET_BRIDGE] = VM_NET_BRIDGE};
  if ((unsigned)n->mode >= QVM_ARRAY_SIZE(modes))
    return qvm_error_set(err, QVM_EINVAL, "network mode %d is unknown", (int)n->mode);
  s->net = modes[n->mode];
  if (n->restricted && s->net != VM_NET_USER)
    return qvm_error_set(err, QVM_EINVAL, "restrict belongs to user networking");
  s->net_restrict = n->restricted;
  if (s->net != VM_NET_BRIDGE) {
    if (n->nat) return qvm_error_set(err, QVM_EINVAL, "nat needs bridge networking");
    if (n->isolated || n->n_allow_egress)
      return qvm_error_set(err, QVM_EINVAL, "isolated and allow-egress need bridge networking");
    if (n->bridge[0] || n->subnet[0] || n->dhcp_external)
      return qvm_error_set(err, QVM_EINVAL, "bridge, subnet and dhcp belong to bridge networking");
    return 0;
  }
  /* The struct is the caller's: check its strings are terminated. */
  if (!memchr(n->bridge, 0, sizeof n->bridge) || !memchr(n->subnet, 0, sizeof n->subnet))
    return qvm_error_set(err, QVM_EINVAL, "bridge name or subnet is not terminated");
  const char *name = n->bridge[0] ? n->bridge : VM_NET_DEFAULT_BRIDGE;
  int r = vm_net_bridge_name_check(name, err);
  if (r >= 0) r = set_str(&s->bridge, name, err);
  if (r < 0) return r;
  s->dhcp_external = n->dhcp_external;
  if (n->dhcp_external && n->subnet[0])
    return qvm_error_set(err, QVM_EINVAL,
                         "subnet= and dhcp=external exclude each other: with an external dhcp "
                         "server the bridge's addresses are not qvm's");
  if (!n->dhcp_external) {
    const char *subnet = n->subnet[0] ? n->subnet : VM_NET_DEFAULT_SUBNET;
    if ((r = vm_net_subnet_check(subnet, err)) < 0 ||
        (r = set_str(&s->bridge_address, subnet, err)) < 0)
      return r;
  }
  if (n->nat && s->dhcp_external)
    return qvm_error_set(err, QVM_EINVAL,
                         "nat needs qvm's dhcp on the bridge: it masquerades the subnet of "
                         "subnet=, not of an external network");
  s->nat = n->nat;
  if ((r = isolated_fill(s, n, err)) < 0) return r;
  if ((r = vm_net_mac_assign(s, err)) < 0) return r;
  if (s->isolated && !vm_net_admin_capable()) {
    qvm_error_set(err, QVM_EUNAVAIL,
                  "an isolated bridge port needs root or CAP_NET_ADMIN: its nftables rules are "
                  "the host's");
    return qvm_error_set_hint(err, QVM_EUNAVAIL, "IsolatedNeedsAdmin", NULL);
  }
  if (!vm_net_admin_capable()) {
    qvm_error_set(err, QVM_EUNAVAIL, "network mode 'bridge' needs root or CAP_NET_ADMIN");
    return qvm_error_set_hint(err, QVM_EUNAVAIL, "BridgeNeedsAdmin", NULL);
  }
  return 0;
}

int vm_net_lease_db_path(char **out, const char *bridge, qvm_error **err) {
  _cleanup_free_ char *root = NULL;
  int r = vm_state_root(&root, err);
  if (r < 0) return r;
  if ((r = vm_net_bridge_name_check(bridge, err)) < 0) return r;
  if (asprintf(out, "%s/net/%s.leases", root, bridge) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  return 0;
}

/* --- the shim's side ------------------------------------------------------- */

struct vm_net {
  qvm_dhcp_server *server;
  qvm_net_watcher *watcher;
  int events_fd;
  char *lease_path; /* lease.json */
  uint8_t mac[6];
  char tap[QVM_NET_IFNAME_MAX];
  unsigned tap_index; /* the tap this shim's QEMU holds, 0 if unknown */
  bool isolated;      /* the tap has isolation tables (net/isolate.c) */
  /* The last lease event recorded, from either source: only a change is
   * recorded again, so a guest that repeats itself cannot grow the log. */
  const char *last_event;
  char last_ip[QVM_NET_IP_MAX];
};

bool vm_net_ip_canonical(char out[QVM_NET_IP_MAX], const char *text) {
  struct in_addr a;
  out[0] = '\0';
  if (!text || strnlen(text, QVM_NET_IP_MAX) >= QVM_NET_IP_MAX ||
      inet_pton(AF_INET, text, &a) != 1 || !inet_ntop(AF_INET, &a, out, QVM_NET_IP_MAX)) {
    out[0] = '\0';
    return false;
  }
  return true;
}

static void lease_event(int events_fd, const char *event, const char *source, const char *ip,
                        const char *mac, int64_t at_us, uint32_t lease_s, const char *hostname) {
  struct json_object *ev = json_object_new_object();
  json_object_object_add(ev, "event", json_object_new_string(event));
  json_object_object_add(ev, "ip", json_object_new_string(ip));
  json_object_object_add(ev, "mac", json_object_new_string(mac));
  json_object_object_add(ev, "source", json_object_new_string(source));
  json_object_object_add(ev, "at_us", json_object_new_int64(at_us));
  if (lease_s) json_object_object_add(ev, "lease_seconds", json_object_new_int64(lease_s));
  if (hostname && hostname[0])
    json_object_object_add(ev, "hostname", json_object_new_string(hostname));
  vm_events_append(events_fd, ev);
}

/* lease.json, which `qvm ip` reads instead of scanning events.jsonl: the
 * newest lease of this run, or its release. Written before the event line,
 * atomically and 0600. */
static void lease_record(const vm_net *n, const char *event, const char *source, const char *ip,
                         int64_t at_us) {
  char mac[QVM_NET_MAC_STR_MAX];
  qvm_net_mac_format(mac, n->mac);
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "event", json_object_new_string(event));
  json_object_object_add(o, "ip", json_object_new_string(ip));
  json_object_object_add(o, "mac", json_object_new_string(mac));
  json_object_object_add(o, "source", json_object_new_string(source));
  json_object_object_add(o, "at_us", json_object_new_int64(at_us));
  size_t len = 0;
  const char *text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
  qvm_write_file_atomic(n->lease_path, text, len, 0600, NULL);
  json_object_put(o);
}

/* Records a lease event unless it repeats the last one; a release or decline
 * of the current address also clears lease.json. ip is canonical. */
static void lease_changed(vm_net *n, const char *event, const char *source, const char *ip,
                          int64_t at_us, uint32_t lease_s, const char *hostname) {
  bool lease = !strcmp(event, "DHCP_LEASE");
  if (n->last_event && !strcmp(n->last_event, event) && !strcmp(n->last_ip, ip)) return;
  if (lease || !strcmp(ip, n->last_ip)) lease_record(n, event, source, ip, at_us);
  n->last_event = event;
  snprintf(n->last_ip, sizeof n->last_ip, "%s", ip);
  char mac[QVM_NET_MAC_STR_MAX];
  qvm_net_mac_format(mac, n->mac);
  lease_event(n->events_fd, event, source, ip, mac, at_us, lease_s, hostname);
}

static struct json_object *isolate_error_event(const char *message) {
  struct json_object *ev = json_object_new_object();
  json_object_object_add(ev, "event", json_object_new_string("qvm-isolate-error"));
  json_object_object_add(ev, "message", json_object_new_string(message));
  return ev;
}

static void on_lease(const qvm_dhcp_lease_event *e, void *userdata) {
  vm_net *n = userdata;
  const char *name = e->kind == QVM_DHCP_LEASE_ACK       ? "DHCP_LEASE"
                     : e->kind == QVM_DHCP_LEASE_RELEASE ? "DHCP_RELEASE"
                                                         : "DHCP_DECLINE";
  char ip[QVM_NET_IP_MAX];
  if (!vm_net_ip_canonical(ip, e->ip)) return; /* not an address: never recorded */
  if (n->isolated && e->kind == QVM_DHCP_LEASE_ACK) {
    /* The port's only source address from now on. A failure leaves the
     * old one (or none): the guest is cut off, never let through. */
    qvm_error *be = NULL;
    if (qvm_net_isolate_bind(n->tap, ip, &be) < 0)
      vm_events_append(n->events_fd, isolate_error_event(qvm_error_message(be)));
    qvm_error_free(be);
  }
  lease_changed(n, name, qvm_net_ip_source_name(QVM_NET_IP_SOURCE_DHCP_SERVER), ip, e->timestamp_us,
                e->lease_seconds, e->hostname);
}

/* The first nameserver of the host's resolv.conf that a guest can reach
 * (not loopback), or "" when there is none. */
static void host_dns(char out[QVM_NET_IP_MAX]) {
  out[0] = '\0';
  _cleanup_free_ char *conf = NULL;
  if (qvm_read_file(&conf, NULL, "/etc/resolv.conf", 1 << 16, NULL) < 0) return;
  for (char *save = NULL, *line = strtok_r(conf, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char ip[64];
    struct in_addr a;
    if (sscanf(line, " nameserver %63s", ip) != 1 || inet_pton(AF_INET, ip, &a) != 1) continue;
    if ((ntohl(a.s_addr) >> 24) == 127) continue;
    inet_ntop(AF_INET, &a, out, QVM_NET_IP_MAX);
    return;
  }
}

static int start_server(vm_net *n, const vm_spec *s, qvm_error **err) {
  _cleanup_free_ char *db = NULL, *dir = NULL;
  int r = vm_net_lease_db_path(&db, s->bridge, err);
  if (r < 0) return r;
  if (!(dir = strdup(db))) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  *strrchr(dir, '/') = '\0';
  if ((r = qvm_mkdir_p(dir, 0700, err)) < 0) return r;
  char server_ip[32], dns[QVM_NET_IP_MAX];
  snprintf(server_ip, sizeof server_ip, "%s", s->bridge_address);
  char *slash = strchr(server_ip, '/');
  unsigned prefix = slash ? (unsigned)atoi(slash + 1) : 24;
  if (slash) *slash = '\0';
  qvm_dhcp_server_options o = QVM_DHCP_SERVER_OPTIONS_INIT;
  /* On the VM's tap (its bridge port): the server sees only its guest's
   * frames, and its replies reach only that guest. */
  o.ifname = n->tap;
  o.bridge = s->bridge;
  memcpy(o.client_mac, n->mac, 6);
  o.server_ip = server_ip;
  o.prefix_len = prefix;
  host_dns(dns);
  if (s->nat && dns[0]) o.dns[0] = dns;
  /* Option 12: the guest's hostname (its first label), else the VM's name;
   * a name may end in '-', which a hostname may not. */
  char host[QVM_NET_HOSTNAME_MAX];
  const char *from = s->hostname ? s->hostname : s->name;
  size_t hl = strcspn(from, ".");
  if (hl >= sizeof host) hl = sizeof host - 1;
  memcpy(host, from, hl);
  while (hl > 1 && host[hl - 1] == '-') hl--;
  host[hl] = '\0';
  bool valid = hl > 0 && host[0] != '-';
  for (size_t i = 0; i < hl; i++)
    valid = valid &&
            (islower((unsigned char)host[i]) || isdigit((unsigned char)host[i]) || host[i] == '-');
  o.hostname = valid ? host : NULL; /* a name qvm did not check is not sent */
  o.lease_db = db;
  o.on_lease = on_lease;
  o.userdata = n;
  return qvm_dhcp_server_new(&n->server, &o, err);
}

/* The tap's tables (net/isolate.c), with the source address of the
 * guest's lease when the bridge's lease db has one (a restarted shim). */
static int isolate_apply(vm_net *n, const vm_spec *s, qvm_error **err) {
  qvm_net_isolate_options o = {.tap = n->tap,
                               .tap_index = n->tap_index,
                               .subnet = s->bridge_address,
                               .egress = s->egress,
                               .n_egress = s->n_egress};
  memcpy(o.mac, n->mac, 6);
  qvm_net_lease lease;
  _cleanup_free_ char *db = NULL;
  if (vm_net_lease_db_path(&db, s->bridge, NULL) == 0 &&
      qvm_net_lease_lookup(&lease, db, n->mac, NULL) == 0)
    o.bound_ip = lease.ip;
  n->isolated = true; /* removed on the way out, even when half made */
  int r = qvm_net_isolate_apply(&o, err);
  if (r < 0) qvm_error_prefix(err, "cannot isolate the vm's port");
  return r;
}

static int setup_links(int *out_tap_fd, vm_net *n, const vm_spec *s, qvm_error **err) {
  qvm_net_bridge_options b = {.name = s->bridge,
                              .address = s->dhcp_external ? NULL : s->bridge_address};
  unsigned idx = 0;
  int r = 0;
  /* An external network's bridge is usually the user's own: use it as it is. */
  if (!s->dhcp_external || qvm_net_link_index(&idx, s->bridge, NULL) < 0)
    r = qvm_net_bridge_ensure(&b, err);
  if (r >= 0 && s->nat) r = qvm_net_nat_ensure(s->bridge, s->bridge_address, err);
  if (r >= 0) r = qvm_net_tap_create(out_tap_fd, n->tap, s->bridge, 0, err);
  if (r >= 0) r = qvm_net_link_index(&n->tap_index, n->tap, err);
  /* Before QEMU has the tap: no frame of the guest's passes unfiltered. */
  if (r >= 0 && s->isolated) r = isolate_apply(n, s, err);
  return r;
}

int vm_net_start(vm_net **out, int *out_tap_fd, qvm_vm *vm, bool create_tap, int events_fd,
                 qvm_error **err) {
  const vm_spec *s = vm->spec;
  *out = NULL;
  if (out_tap_fd) *out_tap_fd = -1;
  if (s->net != VM_NET_BRIDGE) return 0;
  vm_net *n = calloc(1, sizeof *n);
  if (!n) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  n->events_fd = events_fd;
  if (!(n->lease_path = strdup(vm->paths.lease))) {
    free(n);
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  }
  /* A new QEMU: the last run's lease is history (an adopted one keeps it). */
  if (create_tap) unlink(n->lease_path);
  int r = qvm_net_mac_parse(n->mac, s->mac, err);
  if (r >= 0) r = qvm_net_tap_name_from_uuid(n->tap, s->uuid, err);
  if (r >= 0 && create_tap) r = setup_links(out_tap_fd, n, s, err);
  /* Adopted: the running QEMU holds the tap of that name. Its tables are
   * written again (the same, in one transaction). */
  if (r >= 0 && !create_tap) (void)qvm_net_link_index(&n->tap_index, n->tap, NULL);
  if (r >= 0 && !create_tap && s->isolated) r = isolate_apply(n, s, err);
  if (r >= 0 && !s->dhcp_external) r = start_server(n, s, err);
  if (r >= 0 && s->dhcp_external) r = qvm_net_watcher_new(&n->watcher, n->tap, n->mac, err);
  if (r < 0) {
    if (out_tap_fd && *out_tap_fd >= 0) close(*out_tap_fd);
    if (out_tap_fd) *out_tap_fd = -1;
    if (n->isolated && create_tap) (void)qvm_net_isolate_remove(n->tap, NULL);
    vm_net_free(n);
    if (qvm_error_errno(*err) == EPERM || qvm_error_errno(*err) == EACCES)
      qvm_error_prefix(err, "bridge network needs root or CAP_NET_ADMIN");
    return qvm_error_prefix(err, "cannot set up bridge '%s'", s->bridge);
  }
  *out = n;
  return 0;
}

int vm_net_fd(const vm_net *n) {
  if (!n) return -1;
  return n->server    ? qvm_dhcp_server_fd(n->server)
         : n->watcher ? qvm_net_watcher_fd(n->watcher)
                      : -1;
}

void vm_net_handle_readable(vm_net *n) {
  qvm_error *e = NULL;
  if (n->server) {
    qvm_dhcp_server_handle_readable(n->server, &e); /* leases are reported by on_lease */
  } else if (n->watcher) {
    char seen[QVM_NET_IP_MAX], ip[QVM_NET_IP_MAX];
    int64_t at = qvm_realtime_us();
    /* Only a changed address is recorded (lease_changed), and only one that
     * parses: the ACK came from whoever is on the bridge. */
    if (qvm_net_watcher_handle_readable(seen, n->watcher, &e) == 1 && vm_net_ip_canonical(ip, seen))
      lease_changed(n, "DHCP_LEASE", qvm_net_ip_source_name(QVM_NET_IP_SOURCE_DHCP_SNOOP), ip, at,
                    0, NULL);
  }
  qvm_error_free(e); /* a socket error here must not end the VM */
}

static void remove_tap(const char *tap) {
  qvm_error *e = NULL;
  qvm_net_link_delete(tap, &e);
  qvm_error_free(e);
}

void vm_net_free(vm_net *n) {
  if (!n) return;
  qvm_dhcp_server_free(n->server);
  qvm_net_watcher_free(n->watcher);
  free(n->lease_path);
  free(n);
}

void vm_net_remove_own_tap(vm_net *n) {
  if (!n || !n->tap_index) return;
  qvm_error *e = NULL;
  qvm_net_link_delete_index(n->tap_index, &e);
  qvm_error_free(e);
  /* The tables match the tap by name, so a next start's tap would inherit
   * them; that start writes its own first (setup_links), and the tables of
   * a tap of the same name are this VM's anyway (the name is its uuid's). */
  if (n->isolated) (void)qvm_net_isolate_remove(n->tap, NULL);
  n->tap_index = 0;
}

void vm_net_remove_tap(const vm_spec *s) {
  char tap[QVM_NET_IFNAME_MAX];
  if (s->net != VM_NET_BRIDGE || qvm_net_tap_name_from_uuid(tap, s->uuid, NULL) < 0) return;
  unsigned idx = 0;
  if (qvm_net_link_index(&idx, tap, NULL) == 0) remove_tap(tap);
  if (s->isolated) (void)qvm_net_isolate_remove(tap, NULL);
}
