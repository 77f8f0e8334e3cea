/* SPDX-License-Identifier: MIT */
/* --nat: masquerade a bridge's subnet to the uplink with libnftables, and
 * filter what is forwarded across the bridge. One table `ip qvm` holds a
 * postrouting chain and a forward chain per bridge and the set of NAT
 * bridges, rewritten in one transaction each time, so ensuring it twice
 * never duplicates a rule. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nftables/libnftables.h>

#include "net/net.h"

#include "util/cleanup.h"
#include "util/error.h"
#include "util/strbuf.h"

static bool ifname_safe(const char *name) {
  size_t len = name ? strlen(name) : 0;
  if (len == 0 || len >= QVM_NET_IFNAME_MAX) return false;
  for (size_t i = 0; i < len; i++)
    if (!isalnum((unsigned char)name[i]) && !strchr("-_.", name[i])) return false;
  return true;
}

/* "10.77.0.1/24" -> "10.77.0.0/24" */
static int network_of(char out[32], const char *cidr, qvm_error **err) {
  char buf[32], addr[INET_ADDRSTRLEN];
  unsigned prefix = 0;
  struct in_addr a;
  if (!cidr || strlen(cidr) >= sizeof buf) goto bad;
  strcpy(buf, cidr);
  char *slash = strchr(buf, '/');
  if (!slash) goto bad;
  *slash = '\0';
  char *end = NULL;
  prefix = (unsigned)strtoul(slash + 1, &end, 10);
  if (*end || slash[1] == '\0' || prefix < 1 || prefix > 32 || inet_pton(AF_INET, buf, &a) != 1)
    goto bad;
  uint32_t mask = prefix == 32 ? ~0u : ~((1u << (32 - prefix)) - 1);
  a.s_addr = htonl(ntohl(a.s_addr) & mask);
  inet_ntop(AF_INET, &a, addr, sizeof addr);
  snprintf(out, 32, "%s/%u", addr, prefix & 63);
  return 0;
bad:
  return qvm_error_set(err, QVM_EINVAL, "subnet '%.40s' is not ipv4/prefix", cidr ? cidr : "");
}

static int enable_forwarding(qvm_error **err) {
  _cleanup_close_ int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, "1\n", 2) != 2)
    return qvm_error_set_errno(err, errno, "cannot enable ipv4 forwarding");
  return 0;
}

int qvm_net_nft_run(const char *cmd, char why[200]) {
  struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!nft) {
    snprintf(why, 200, "cannot create an nftables context");
    return -1;
  }
  nft_ctx_buffer_output(nft);
  nft_ctx_buffer_error(nft);
  int r = 0;
  if (nft_run_cmd_from_buffer(nft, cmd) != 0) {
    const char *msg = nft_ctx_get_error_buffer(nft);
    snprintf(why, 200, "%s", msg && msg[0] ? msg : "no message");
    why[strcspn(why, "\n")] = '\0';
    r = -1;
  }
  nft_ctx_free(nft);
  return r;
}

/* The bridge's chains. Forwarding: replies come back in, new connections
 * go out (with a source of the subnet: a guest cannot spoof another; never
 * to link-local addresses, where a cloud host's metadata service hands out
 * the host's credentials), guests on one bridge reach each other as on any
 * switch (seen here only with br_netfilter, as on Docker hosts), and
 * nothing else crosses the bridge, in particular nothing from the outside
 * or another NAT bridge into it, and nothing from it into another qvm
 * bridge (set `bridges`). Each base chain sees every forwarded packet, so
 * a drop here holds whatever the host's other chains accept. */
static char *nat_rules(const char *br, const char *net) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_printf(&sb,
                    "add table ip qvm\n"
                    "add set ip qvm bridges { type ifname; }\n"
                    "add element ip qvm bridges { \"%1$s\" }\n"
                    "add chain ip qvm nat_%1$s { type nat hook postrouting priority srcnat; "
                    "policy accept; }\n"
                    "flush chain ip qvm nat_%1$s\n"
                    "add rule ip qvm nat_%1$s ip saddr %2$s oifname != \"%1$s\" masquerade\n"
                    "add chain ip qvm fwd_%1$s { type filter hook forward priority filter; "
                    "policy accept; }\n"
                    "flush chain ip qvm fwd_%1$s\n"
                    "add rule ip qvm fwd_%1$s iifname \"%1$s\" oifname \"%1$s\" accept\n"
                    "add rule ip qvm fwd_%1$s oifname \"%1$s\" ct state established,related "
                    "accept\n"
                    "add rule ip qvm fwd_%1$s oifname \"%1$s\" drop\n"
                    "add rule ip qvm fwd_%1$s iifname \"%1$s\" oifname @bridges drop\n"
                    "add rule ip qvm fwd_%1$s iifname \"%1$s\" ip saddr != %2$s drop\n"
                    "add rule ip qvm fwd_%1$s iifname \"%1$s\" ip daddr 169.254.0.0/16 drop\n"
                    "add rule ip qvm fwd_%1$s iifname \"%1$s\" ct state new,established,related "
                    "accept\n"
                    "add rule ip qvm fwd_%1$s iifname \"%1$s\" drop\n",
                    br, net);
  return qvm_strbuf_steal(&sb);
}

int qvm_net_nat_ensure(const char *bridge, const char *subnet, qvm_error **err) {
  char net[32], why[200];
  if (!ifname_safe(bridge))
    return qvm_error_set(err, QVM_EINVAL, "bridge name '%.20s' is invalid", bridge ? bridge : "");
  int r = network_of(net, subnet, err);
  if (r < 0) return r;
  if ((r = enable_forwarding(err)) < 0) return r;
  _cleanup_free_ char *cmd = nat_rules(bridge, net);
  if (!cmd) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if (qvm_net_nft_run(cmd, why) < 0)
    return qvm_error_set(err, QVM_ESYS,
                         "cannot add the masquerade and forwarding rules for bridge '%s' (%s): "
                         "nat needs root or CAP_NET_ADMIN and nf_tables in the kernel",
                         bridge, why);
  return 0;
}

/* Each part on its own: a table from before the forwarding chains has
 * only the nat chain. */
int qvm_net_nat_remove(const char *bridge, qvm_error **err) {
  if (!ifname_safe(bridge))
    return qvm_error_set(err, QVM_EINVAL, "bridge name '%.20s' is invalid", bridge ? bridge : "");
  char cmd[3][96], why[200];
  snprintf(cmd[0], sizeof cmd[0], "delete chain ip qvm nat_%s\n", bridge);
  snprintf(cmd[1], sizeof cmd[1], "delete chain ip qvm fwd_%s\n", bridge);
  snprintf(cmd[2], sizeof cmd[2], "delete element ip qvm bridges { \"%s\" }\n", bridge);
  bool any = false;
  for (size_t i = 0; i < 3; i++) any |= qvm_net_nft_run(cmd[i], why) == 0;
  if (!any) return qvm_error_set(err, QVM_ENOTFOUND, "bridge '%s' has no masquerade rule", bridge);
  return 0;
}

int qvm_net_nat_list(char **out, qvm_error **err) {
  struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!nft) return qvm_error_set_errno(err, ENOMEM, "cannot create an nftables context");
  nft_ctx_buffer_output(nft);
  nft_ctx_buffer_error(nft);
  int r = 0;
  if (nft_run_cmd_from_buffer(nft, "list table ip qvm") != 0)
    r = qvm_error_set(err, QVM_ENOTFOUND, "there is no nftables table 'ip qvm'");
  else if (!(*out = strdup(nft_ctx_get_output_buffer(nft))))
    r = qvm_error_set_errno(err, ENOMEM, "out of memory");
  nft_ctx_free(nft);
  return r;
}
