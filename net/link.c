/* SPDX-License-Identifier: MIT */
/*
 * Bridge and tap management over rtnetlink (libmnl) and /dev/net/tun: the
 * same requests `ip link`/`ip addr` send, without running them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

#include "net/net.h"

#include "net/netlink.h"
#include "util/cleanup.h"
#include "util/error.h"

static void mnl_socket_closep(struct mnl_socket **nl) {
  if (*nl) mnl_socket_close(*nl);
}

int nl_open(struct mnl_socket **out, qvm_error **err) {
  struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (!nl) return qvm_error_set_errno(err, errno, "cannot open rtnetlink socket");
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    int e = errno;
    mnl_socket_close(nl);
    return qvm_error_set_errno(err, e, "cannot bind rtnetlink socket");
  }
  /* A kernel that never answers must not hang a shim. */
  struct timeval tv = {.tv_sec = 10};
  setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  *out = nl;
  return 0;
}

/* Sends one request and reads until its ACK (or a dump until DONE), calling
 * cb for every data message. Returns 0 or -errno from the kernel. */
int nl_talk(struct mnl_socket *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data) {
  uint32_t seq = (uint32_t)time(NULL) ^ (uint32_t)rand();
  nlh->nlmsg_seq = seq;
  /* NLM_F_EXCL shares its bit with NLM_F_MATCH: a dump is a GET with both
   * NLM_F_ROOT and NLM_F_MATCH. Everything else asks for an ACK. */
  bool dump = (nlh->nlmsg_type & 3) == 2 && (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  if (!dump) nlh->nlmsg_flags |= NLM_F_ACK;
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return -errno;
  char buf[MNL_SOCKET_BUFFER_SIZE];
  uint32_t portid = mnl_socket_get_portid(nl);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
    if (n < 0) return -errno;
    int r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
    if (r < 0) return -errno;
    if (r == MNL_CB_STOP) return 0;
  }
}

static struct nlmsghdr *link_request(char *buf, uint16_t type, uint16_t flags, int ifindex) {
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof *ifi);
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  return nlh;
}

static int check_ifname(const char *ifname, qvm_error **err) {
  size_t len = ifname ? strlen(ifname) : 0;
  if (len == 0 || len >= IFNAMSIZ || strchr(ifname, '/') || strchr(ifname, ' '))
    return qvm_error_set(err, QVM_EINVAL, "interface name '%s' is invalid", ifname ? ifname : "");
  return 0;
}

int qvm_net_link_index(unsigned *out, const char *ifname, qvm_error **err) {
  if (check_ifname(ifname, err) < 0) return QVM_EINVAL;
  unsigned idx = if_nametoindex(ifname);
  if (idx == 0)
    return qvm_error_set_code_errno(err, QVM_ENOTFOUND, errno, "interface '%s' not found", ifname);
  *out = idx;
  return 0;
}

static int link_simple(struct nlmsghdr *nlh, const char *what, const char *ifname,
                       qvm_error **err) {
  _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
  int r = nl_open(&nl, err);
  if (r < 0) return r;
  r = nl_talk(nl, nlh, NULL, NULL);
  if (r == -ENODEV) return qvm_error_set(err, QVM_ENOTFOUND, "interface '%s' not found", ifname);
  if (r == -EEXIST) return qvm_error_set(err, QVM_EEXISTS, "interface '%s' already exists", ifname);
  if (r < 0) return qvm_error_set_errno(err, -r, "cannot %s '%s'", what, ifname);
  return 0;
}

int qvm_net_link_set_up(const char *ifname, qvm_error **err) {
  unsigned idx = 0;
  int r = qvm_net_link_index(&idx, ifname, err);
  if (r < 0) return r;
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *nlh = link_request(buf, RTM_NEWLINK, 0, (int)idx);
  struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  return link_simple(nlh, "set up", ifname, err);
}

int qvm_net_link_enslave(const char *ifname, const char *bridge, qvm_error **err) {
  unsigned idx = 0, master = 0;
  int r = qvm_net_link_index(&idx, ifname, err);
  if (r < 0) return r;
  if ((r = qvm_net_link_index(&master, bridge, err)) < 0) return r;
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *nlh = link_request(buf, RTM_NEWLINK, 0, (int)idx);
  mnl_attr_put_u32(nlh, IFLA_MASTER, master);
  r = link_simple(nlh, "enslave", ifname, err);
  if (r < 0) {
    qvm_error_prefix(err, "bridge '%s'", bridge);
    return r;
  }
  return qvm_net_link_set_up(ifname, err);
}

int qvm_net_link_delete(const char *ifname, qvm_error **err) {
  if (check_ifname(ifname, err) < 0) return QVM_EINVAL;
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *nlh = link_request(buf, RTM_DELLINK, 0, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
  return link_simple(nlh, "delete", ifname, err);
}

int qvm_net_link_delete_index(unsigned idx, qvm_error **err) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  char what[32];
  snprintf(what, sizeof what, "#%u", idx);
  return link_simple(link_request(buf, RTM_DELLINK, 0, (int)idx), "delete", what, err);
}

/* --- bridge --------------------------------------------------------------- */

static int link_kind_cb(const struct nlmsghdr *nlh, void *data) {
  char *kind = data;
  struct nlattr *attr;
  mnl_attr_for_each(attr, nlh, sizeof(struct ifinfomsg)) {
    if (mnl_attr_get_type(attr) != IFLA_LINKINFO) continue;
    struct nlattr *inner;
    mnl_attr_for_each_nested(inner, attr) {
      if (mnl_attr_get_type(inner) == IFLA_INFO_KIND &&
          mnl_attr_validate(inner, MNL_TYPE_STRING) == 0)
        snprintf(kind, 32, "%s", mnl_attr_get_str(inner));
    }
  }
  return MNL_CB_OK;
}

static int bridge_create(struct mnl_socket *nl, const char *name, qvm_error **err) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *nlh = link_request(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
  struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
  mnl_attr_nest_end(nlh, info);
  int r = nl_talk(nl, nlh, NULL, NULL);
  if (r == -EEXIST) {
    char kind[32] = "";
    nlh = link_request(buf, RTM_GETLINK, 0, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    r = nl_talk(nl, nlh, link_kind_cb, kind);
    if (r == 0 && strcmp(kind, "bridge") != 0)
      return qvm_error_set(err, QVM_EEXISTS, "interface '%s' exists and is not a bridge", name);
  }
  if (r < 0) return qvm_error_set_errno(err, -r, "cannot create bridge '%s'", name);
  return 0;
}

static int parse_cidr(struct in_addr *out, unsigned *out_prefix, const char *cidr,
                      qvm_error **err) {
  char ip[INET_ADDRSTRLEN] = "";
  const char *slash = strchr(cidr, '/');
  char *end = NULL;
  unsigned long prefix = slash ? strtoul(slash + 1, &end, 10) : 99;
  size_t iplen = slash ? (size_t)(slash - cidr) : 0;
  if (!slash || iplen >= sizeof ip || *end || prefix < 1 || prefix > 30 || end == slash + 1)
    return qvm_error_set(err, QVM_EINVAL, "address '%s' is not ipv4/prefix", cidr);
  memcpy(ip, cidr, iplen);
  if (inet_pton(AF_INET, ip, out) != 1)
    return qvm_error_set(err, QVM_EINVAL, "address '%s' is not ipv4/prefix", cidr);
  *out_prefix = (unsigned)prefix;
  return 0;
}

static int address_add(struct mnl_socket *nl, unsigned idx, const char *cidr, qvm_error **err) {
  struct in_addr addr;
  unsigned prefix = 0;
  int r = parse_cidr(&addr, &prefix, cidr, err);
  if (r < 0) return r;
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWADDR;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
  struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof *ifa);
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = (unsigned char)prefix;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = idx;
  mnl_attr_put_u32(nlh, IFA_LOCAL, addr.s_addr);
  mnl_attr_put_u32(nlh, IFA_ADDRESS, addr.s_addr);
  uint32_t bcast = addr.s_addr | htonl(~(~0u << (32 - prefix)));
  mnl_attr_put_u32(nlh, IFA_BROADCAST, bcast);
  r = nl_talk(nl, nlh, NULL, NULL);
  if (r < 0 && r != -EEXIST) return qvm_error_set_errno(err, -r, "cannot add address '%s'", cidr);
  return 0;
}

int qvm_net_bridge_ensure(const qvm_net_bridge_options *opts, qvm_error **err) {
  static const qvm_net_bridge_options defaults = QVM_NET_BRIDGE_OPTIONS_INIT;
  if (!opts) opts = &defaults;
  if (check_ifname(opts->name, err) < 0) return QVM_EINVAL;
  struct in_addr addr;
  unsigned prefix = 0;
  if (opts->address && parse_cidr(&addr, &prefix, opts->address, err) < 0) return QVM_EINVAL;
  _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
  int r = nl_open(&nl, err);
  if (r < 0) return r;
  if ((r = bridge_create(nl, opts->name, err)) < 0) return r;
  if ((r = qvm_net_link_set_up(opts->name, err)) < 0) return r;
  unsigned idx = 0;
  if ((r = qvm_net_link_index(&idx, opts->name, err)) < 0) return r;
  if (opts->address && (r = address_add(nl, idx, opts->address, err)) < 0) {
    qvm_error_prefix(err, "bridge '%s'", opts->name);
    return r;
  }
  return 0;
}

/* --- tap ------------------------------------------------------------------ */

int qvm_net_tap_create(int *out, const char *name, const char *bridge, unsigned flags,
                       qvm_error **err) {
  if (check_ifname(name, err) < 0) return QVM_EINVAL;
  _cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open '/dev/net/tun'");
  struct ifreq ifr = {0};
  /* IFF_TUN_EXCL: never attach to a tap of that name that still exists. A
   * killed QEMU's tap may still be going away; attached to it, our fd would
   * be detached under QEMU ("File descriptor in bad state"). The name is the
   * VM's own, so a leftover is removed and the create tried again. */
  ifr.ifr_flags = (short)(IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL); /* 0x8000: the sign bit */
  if (flags & QVM_NET_TAP_VNET_HDR) ifr.ifr_flags |= IFF_VNET_HDR;
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  int tries = 0;
  while (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    if (errno != EBUSY || ++tries > 100)
      return qvm_error_set_errno(err, errno, "cannot create tap '%s'", name);
    qvm_net_link_delete(name, NULL);
    usleep(20 * 1000);
  }
  /* Not persistent: the tap goes away with the last fd (QEMU's or ours). */
  if (ioctl(fd, TUNSETPERSIST, 0) < 0)
    return qvm_error_set_errno(err, errno, "cannot make tap '%s' non-persistent", name);
  int r = bridge ? qvm_net_link_enslave(name, bridge, err) : qvm_net_link_set_up(name, err);
  if (r < 0) {
    qvm_error_prefix(err, "tap '%s'", name);
    return r;
  }
  *out = TAKE_FD(fd);
  return 0;
}
