/* SPDX-License-Identifier: MIT */
/* Isolated bridge ports: what a sandbox's tap may send, enforced by the
 * host with libnftables. Each tap has two tables of its own, `bridge
 * qvm_iso_<id>` and `ip qvm_iso_<id>`, written whole in one transaction
 * and deleted in one, so taps never share a rule another shim could flush
 * and a removal never races another tap's apply.
 *
 * Why two families: the bridge family sees the port a frame came in by
 * (iifname is the tap there), but conntrack in the bridge family needs
 * nf_conntrack_bridge, which some kernels lack (`ct state` then fails with
 * EPROTO). So the bridge table checks layer 2 and marks what it lets up
 * (mark = QVM_NET_ISOLATE_MARK_BASE + the tap's ifindex), and the ip table
 * decides by that mark with the ip family's conntrack: replies of
 * connections the host opened, DHCP to the host, the allow-list. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nftables/libnftables.h>

#include "net/net.h"

#include "util/cleanup.h"
#include "util/error.h"
#include "util/strbuf.h"

/* --- HOST:PORT[/tcp|/udp] -------------------------------------------------- */

static int egress_bad(const char *text, const char *why, qvm_error **err) {
  return qvm_error_set(err, QVM_EINVAL, "egress entry '%.60s' is invalid: %s", text ? text : "",
                       why);
}

static bool all_digits(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i])) return false;
  return true;
}

int qvm_net_egress_parse(qvm_net_egress *out, const char *text, qvm_error **err) {
  char buf[64];
  if (!text || strnlen(text, sizeof buf) >= sizeof buf) return egress_bad(text, "too long", err);
  strcpy(buf, text);
  qvm_net_egress e = {.prefix = 32};
  char *proto = strchr(buf, ':') ? strchr(strchr(buf, ':'), '/') : NULL;
  if (proto) {
    *proto++ = '\0';
    if (!strcmp(proto, "udp"))
      e.udp = true;
    else if (strcmp(proto, "tcp"))
      return egress_bad(text, "the protocol is tcp or udp", err);
  }
  char *colon = strrchr(buf, ':');
  if (!colon) return egress_bad(text, "use HOST:PORT[/tcp|/udp]", err);
  *colon = '\0';
  if (!all_digits(colon + 1, 5) || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
    return egress_bad(text, "the port is 1 to 65535", err);
  e.port = (uint16_t)atoi(colon + 1);
  char *slash = strchr(buf, '/');
  if (slash) {
    *slash = '\0';
    if (!all_digits(slash + 1, 2) || atoi(slash + 1) > 32)
      return egress_bad(text, "the prefix is 0 to 32", err);
    e.prefix = (uint8_t)atoi(slash + 1);
  }
  struct in_addr a;
  if (inet_pton(AF_INET, buf, &a) != 1)
    return egress_bad(text, "HOST is an IPv4 address or CIDR (no DNS names)", err);
  uint32_t mask = e.prefix == 0 ? 0 : ~0u << (32 - e.prefix);
  e.addr = ntohl(a.s_addr) & mask; /* the network: nft refuses host bits in a prefix */
  *out = e;
  return 0;
}

void qvm_net_egress_format(char out[QVM_NET_EGRESS_STR_MAX], const qvm_net_egress *e) {
  struct in_addr a = {.s_addr = htonl(e->addr)};
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, ip, sizeof ip);
  snprintf(out, QVM_NET_EGRESS_STR_MAX, "%s/%u:%u/%s", ip, e->prefix & 63u, e->port,
           e->udp ? "udp" : "tcp");
}

/* --- rules ----------------------------------------------------------------- */

/* The tables' suffix: the tap's name with '-' as '_' (nft identifiers). */
static int table_id(char out[QVM_NET_IFNAME_MAX], const char *tap, qvm_error **err) {
  size_t len = tap ? strlen(tap) : 0;
  if (len == 0 || len >= QVM_NET_IFNAME_MAX)
    return qvm_error_set(err, QVM_EINVAL, "tap name '%.20s' is invalid", tap ? tap : "");
  for (size_t i = 0; i < len; i++) {
    if (!isalnum((unsigned char)tap[i]) && tap[i] != '-' && tap[i] != '_')
      return qvm_error_set(err, QVM_EINVAL, "tap name '%.20s' is invalid", tap);
    out[i] = tap[i] == '-' ? '_' : tap[i];
  }
  out[len] = '\0';
  return 0;
}

/* "10.77.0.1/24" -> "10.77.0.0/24" and "10.77.0.1"; false if it is not
 * that. */
static bool subnet_network(char out[32], char host[QVM_NET_IP_MAX], const char *cidr) {
  char buf[32];
  if (!cidr || strlen(cidr) >= sizeof buf) return false;
  strcpy(buf, cidr);
  char *slash = strchr(buf, '/');
  if (!slash || !all_digits(slash + 1, 2) || atoi(slash + 1) < 1 || atoi(slash + 1) > 32)
    return false;
  *slash = '\0';
  unsigned prefix = (unsigned)atoi(slash + 1);
  struct in_addr a;
  if (inet_pton(AF_INET, buf, &a) != 1) return false;
  inet_ntop(AF_INET, &a, host, QVM_NET_IP_MAX);
  a.s_addr = htonl(ntohl(a.s_addr) & (prefix == 32 ? ~0u : ~((1u << (32 - prefix)) - 1)));
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, ip, sizeof ip);
  snprintf(out, 32, "%s/%u", ip, prefix);
  return true;
}

/* Layer 2, in the bridge family. Forward: nothing crosses the bridge to or
 * from the tap (no other VM, isolated or not, broadcasts included). Input
 * (frames to the host itself, including what the host will route): the
 * source MAC must be the VM's (a guest that changes it is cut off), ARP
 * and IPv4 must come from the address qvm's DHCP gave it (set `src`,
 * filled on the lease; before it only DHCP and 0.0.0.0 ARP probes), and
 * nothing else (IPv6, other ethertypes) goes up. What goes up carries the
 * tap's mark. */
static void bridge_rules(qvm_strbuf *sb, const char *id, const char *tap, const char *mac,
                         uint32_t mark, const char *bound_ip) {
  qvm_strbuf_printf(
      sb,
      "add table bridge qvm_iso_%1$s\n"
      "flush table bridge qvm_iso_%1$s\n"
      "add set bridge qvm_iso_%1$s src { type ipv4_addr; }\n"
      "flush set bridge qvm_iso_%1$s src\n"
      "add chain bridge qvm_iso_%1$s forward { type filter hook forward priority -200; "
      "policy accept; }\n"
      "add rule bridge qvm_iso_%1$s forward iifname \"%2$s\" drop\n"
      "add rule bridge qvm_iso_%1$s forward oifname \"%2$s\" drop\n"
      "add chain bridge qvm_iso_%1$s input { type filter hook input priority -200; "
      "policy accept; }\n"
      "add rule bridge qvm_iso_%1$s input iifname != \"%2$s\" accept\n"
      "add rule bridge qvm_iso_%1$s input ether saddr != %3$s drop\n"
      "add rule bridge qvm_iso_%1$s input ether type arp arp saddr ether != %3$s drop\n"
      "add rule bridge qvm_iso_%1$s input ether type arp arp saddr ip @src accept\n"
      "add rule bridge qvm_iso_%1$s input ether type arp arp saddr ip 0.0.0.0 accept\n"
      "add rule bridge qvm_iso_%1$s input ether type ip ip saddr 0.0.0.0 udp sport 68 "
      "udp dport 67 meta mark set 0x%4$08x accept\n"
      "add rule bridge qvm_iso_%1$s input ether type ip ip saddr @src "
      "meta mark set 0x%4$08x accept\n"
      "add rule bridge qvm_iso_%1$s input drop\n",
      id, tap, mac, (unsigned)mark);
  if (bound_ip) qvm_strbuf_printf(sb, "add element bridge qvm_iso_%s src { %s }\n", id, bound_ip);
}

/* Layer 3, in the ip family, for packets with the tap's mark: to the host,
 * replies of what the host opened and DHCP; routed, replies and the
 * allow-list, never the bridge's own subnet (the other sandboxes) nor
 * link-local (a cloud host's metadata service). DHCP only to the bridge's
 * address (qvm's server) or broadcast: not to another DHCP server on the
 * host. The allow-list is for routed destinations: the host itself is
 * never one. */
static void ip_rules(qvm_strbuf *sb, const char *id, uint32_t mark, const char *net,
                     const char *host, const qvm_net_egress *egress, size_t n,
                     const char *bound_ip) {
  /* A packet is the guest's when it has the mark or the guest's address
   * (set `src`, as in the bridge table): a host rule that rewrites the
   * mark in prerouting (wg-quick's, a connmark restore) must not let the
   * guest's packets pass unfiltered. Output: only qvm's own user opens
   * connections to the guest (its SSH, DHCP replies); another local user's
   * process must not reach a guest cut off from everything else (at
   * priority 0, after conntrack's -200 in the same hook: ct state is set). */
  qvm_strbuf_printf(
      sb,
      "add table ip qvm_iso_%1$s\n"
      "flush table ip qvm_iso_%1$s\n"
      "add set ip qvm_iso_%1$s src { type ipv4_addr; }\n"
      "flush set ip qvm_iso_%1$s src\n"
      "add chain ip qvm_iso_%1$s input { type filter hook input priority -200; "
      "policy accept; }\n"
      "add rule ip qvm_iso_%1$s input meta mark != 0x%2$08x ip saddr != @src accept\n"
      "add rule ip qvm_iso_%1$s input ct state established,related accept\n"
      "add rule ip qvm_iso_%1$s input ip daddr { %4$s, 255.255.255.255 } udp sport 68 "
      "udp dport 67 accept\n"
      "add rule ip qvm_iso_%1$s input drop\n"
      "add chain ip qvm_iso_%1$s output { type filter hook output priority 0; "
      "policy accept; }\n"
      "add rule ip qvm_iso_%1$s output ip daddr @src ct state new meta skuid != %5$u drop\n"
      "add chain ip qvm_iso_%1$s forward { type filter hook forward priority -200; "
      "policy accept; }\n"
      "add rule ip qvm_iso_%1$s forward meta mark != 0x%2$08x ip saddr != @src accept\n"
      "add rule ip qvm_iso_%1$s forward ct state established,related accept\n"
      "add rule ip qvm_iso_%1$s forward ip daddr { %3$s, 169.254.0.0/16 } drop\n",
      id, (unsigned)mark, net, host, (unsigned)getuid());
  if (bound_ip) qvm_strbuf_printf(sb, "add element ip qvm_iso_%s src { %s }\n", id, bound_ip);
  for (size_t i = 0; i < n; i++) {
    struct in_addr a = {.s_addr = htonl(egress[i].addr)};
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, ip, sizeof ip);
    const char *proto = egress[i].udp ? "udp" : "tcp";
    qvm_strbuf_printf(sb,
                      "add rule ip qvm_iso_%s forward ip daddr %s/%u %s dport %u ct state new "
                      "accept\n",
                      id, ip, egress[i].prefix & 63u, proto, egress[i].port);
  }
  qvm_strbuf_printf(sb, "add rule ip qvm_iso_%s forward drop\n", id);
}

static bool ip_valid(const char *ip) {
  struct in_addr a;
  return ip && strlen(ip) < QVM_NET_IP_MAX && inet_pton(AF_INET, ip, &a) == 1;
}

int qvm_net_isolate_apply(const qvm_net_isolate_options *o, qvm_error **err) {
  char id[QVM_NET_IFNAME_MAX], net[32], host[QVM_NET_IP_MAX], mac[QVM_NET_MAC_STR_MAX], why[200];
  int r = table_id(id, o->tap, err);
  if (r < 0) return r;
  if (o->tap_index == 0 || o->tap_index > QVM_NET_ISOLATE_INDEX_MAX)
    return qvm_error_set(err, QVM_EINVAL, "tap '%s' has ifindex %u, out of the marks' range",
                         o->tap, o->tap_index);
  if (!subnet_network(net, host, o->subnet))
    return qvm_error_set(err, QVM_EINVAL, "subnet '%.40s' is not ipv4/prefix",
                         o->subnet ? o->subnet : "");
  if (o->n_egress > QVM_NET_EGRESS_MAX)
    return qvm_error_set(err, QVM_EINVAL, "at most %d egress entries", QVM_NET_EGRESS_MAX);
  if (o->bound_ip && !ip_valid(o->bound_ip))
    return qvm_error_set(err, QVM_EINVAL, "address '%.20s' is invalid", o->bound_ip);
  qvm_net_mac_format(mac, o->mac);
  uint32_t mark = QVM_NET_ISOLATE_MARK_BASE + o->tap_index;
  qvm_strbuf sb = QVM_STRBUF_INIT;
  bridge_rules(&sb, id, o->tap, mac, mark, o->bound_ip);
  ip_rules(&sb, id, mark, net, host, o->egress, o->n_egress, o->bound_ip);
  _cleanup_free_ char *cmd = qvm_strbuf_steal(&sb);
  if (!cmd) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if (qvm_net_nft_run(cmd, why) < 0)
    return qvm_error_set(err, QVM_ESYS,
                         "cannot add the isolation rules for tap '%s' (%s): it needs root or "
                         "CAP_NET_ADMIN and nf_tables with the bridge family in the kernel",
                         o->tap, why);
  return 0;
}

int qvm_net_isolate_bind(const char *tap, const char *ip, qvm_error **err) {
  char id[QVM_NET_IFNAME_MAX], cmd[512], why[200];
  int r = table_id(id, tap, err);
  if (r < 0) return r;
  if (!ip_valid(ip))
    return qvm_error_set(err, QVM_EINVAL, "address '%.20s' is invalid", ip ? ip : "");
  snprintf(cmd, sizeof cmd,
           "flush set bridge qvm_iso_%1$s src\nadd element bridge qvm_iso_%1$s src { %2$s }\n"
           "flush set ip qvm_iso_%1$s src\nadd element ip qvm_iso_%1$s src { %2$s }\n",
           id, ip);
  if (qvm_net_nft_run(cmd, why) < 0)
    return qvm_error_set(err, QVM_ESYS, "cannot bind tap '%s' to %s (%s)", tap, ip, why);
  return 0;
}

/* add-then-delete in one transaction: atomic, and no error when a table
 * is already gone. */
int qvm_net_isolate_remove(const char *tap, qvm_error **err) {
  char id[QVM_NET_IFNAME_MAX], cmd[256], why[200];
  int r = table_id(id, tap, err);
  if (r < 0) return r;
  snprintf(cmd, sizeof cmd,
           "add table bridge qvm_iso_%1$s\ndelete table bridge qvm_iso_%1$s\n"
           "add table ip qvm_iso_%1$s\ndelete table ip qvm_iso_%1$s\n",
           id);
  if (qvm_net_nft_run(cmd, why) < 0)
    return qvm_error_set(err, QVM_ESYS, "cannot remove the isolation rules of tap '%s' (%s)", tap,
                         why);
  return 0;
}
