/* SPDX-License-Identifier: MIT */
/*
 * The passive lease watcher for dhcp=external: it sniffs DHCP replies on the
 * VM's tap and learns the address from the DHCPACK for the VM's MAC. The
 * neighbour table is the fallback once the guest has talked to the host.
 *
 * The guest is hostile and can send anything, a DHCPACK included. On the tap,
 * a frame the guest sends is received by the host (PACKET_HOST, _BROADCAST,
 * _MULTICAST or _OTHERHOST), while a frame the bridge forwards to the guest,
 * the real server's ACK among them, is transmitted (PACKET_OUTGOING). Only
 * the latter is believed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

#include "net/net.h"

#include "net/dhcp_codec.h"
#include "net/dhcp_frame.h"
#include "net/netlink.h"
#include "util/cleanup.h"
#include "util/error.h"

struct qvm_net_watcher {
  int fd;
  uint8_t mac[6];
  qvm_dhcp_stats stats;
};

int qvm_net_watcher_new(qvm_net_watcher **out, const char *ifname, const uint8_t mac[6],
                        qvm_error **err) {
  unsigned idx = 0;
  int r = qvm_net_link_index(&idx, ifname, err);
  if (r < 0) return r;
  qvm_net_watcher *w = calloc(1, sizeof *w);
  if (!w) return qvm_error_set_errno(err, ENOMEM, "oom");
  memcpy(w->mac, mac, 6);
  r = dhcp_packet_socket(&w->fd, idx, DHCP_CLIENT_PORT, true, err);
  if (r < 0) {
    free(w);
    qvm_error_prefix(err, "cannot watch dhcp on '%s'", ifname);
    return r;
  }
  *out = w;
  return 0;
}

void qvm_net_watcher_free(qvm_net_watcher *watcher) {
  if (!watcher) return;
  close(watcher->fd);
  free(watcher);
}

int qvm_net_watcher_fd(const qvm_net_watcher *watcher) { return watcher->fd; }

void qvm_net_watcher_stats(qvm_dhcp_stats *out, const qvm_net_watcher *watcher) {
  *out = watcher->stats;
}

/* 1 if the frame is a DHCPACK giving the watched MAC an address, sent
 * towards the guest by someone else. */
static int watch_frame(char *out, qvm_net_watcher *w, const uint8_t *frame, size_t len,
                       unsigned char pkttype) {
  dhcp_frame f;
  if (dhcp_frame_parse(&f, frame, len) < 0 || f.src_port != DHCP_SERVER_PORT ||
      f.dst_port != DHCP_CLIENT_PORT) {
    w->stats.bad_frame++;
    return 0;
  }
  if (pkttype != PACKET_OUTGOING || memcmp(f.src_mac, w->mac, 6) == 0) {
    w->stats.from_guest++;
    return 0;
  }
  dhcp_msg m;
  if (dhcp_msg_parse(&m, f.payload, f.payload_len, &w->stats) < 0) return 0;
  if (memcmp(m.chaddr, w->mac, 6) != 0) {
    w->stats.foreign_mac++;
    return 0;
  }
  if (m.op != DHCP_BOOTREPLY || m.type != DHCP_ACK || m.yiaddr == 0) {
    w->stats.not_for_us++; /* an OFFER, a NAK, or an ACK to an INFORM */
    return 0;
  }
  w->stats.acks++;
  struct in_addr a = {.s_addr = htonl(m.yiaddr)};
  inet_ntop(AF_INET, &a, out, QVM_NET_IP_MAX);
  return 1;
}

int qvm_net_watcher_handle_readable(char *out, qvm_net_watcher *watcher, qvm_error **err) {
  int found = 0;
  for (int i = 0; i < 64; i++) {
    uint8_t frame[2048];
    struct sockaddr_ll from = {0};
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(watcher->fd, frame, sizeof frame, MSG_DONTWAIT | MSG_TRUNC,
                         (struct sockaddr *)&from, &fromlen);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      return qvm_error_set_errno(err, errno, "cannot receive dhcp frame");
    }
    if ((size_t)n > sizeof frame) {
      watcher->stats.bad_frame++;
      continue;
    }
    if (watch_frame(out, watcher, frame, (size_t)n, from.sll_pkttype))
      found = 1; /* the latest ACK wins */
  }
  return found;
}

/* --- neighbour table ------------------------------------------------------ */

typedef struct neigh_search {
  const uint8_t *mac;
  unsigned ifindex;
  char *out;
  bool found;
} neigh_search;

static int neigh_cb(const struct nlmsghdr *nlh, void *data) {
  neigh_search *s = data;
  const struct ndmsg *nd = mnl_nlmsg_get_payload(nlh);
  if (nd->ndm_family != AF_INET || (s->ifindex && (unsigned)nd->ndm_ifindex != s->ifindex))
    return MNL_CB_OK;
  if (nd->ndm_state & (NUD_FAILED | NUD_INCOMPLETE | NUD_NOARP)) return MNL_CB_OK;
  const struct nlattr *dst = NULL, *lladdr = NULL;
  struct nlattr *attr;
  mnl_attr_for_each(attr, nlh, sizeof *nd) {
    if (mnl_attr_get_type(attr) == NDA_DST && mnl_attr_get_payload_len(attr) == 4) dst = attr;
    if (mnl_attr_get_type(attr) == NDA_LLADDR && mnl_attr_get_payload_len(attr) == 6) lladdr = attr;
  }
  if (dst && lladdr && memcmp(mnl_attr_get_payload(lladdr), s->mac, 6) == 0) {
    inet_ntop(AF_INET, mnl_attr_get_payload(dst), s->out, QVM_NET_IP_MAX);
    s->found = true;
  }
  return MNL_CB_OK;
}

int qvm_net_neigh_lookup(char *out, const uint8_t mac[6], unsigned ifindex, qvm_error **err) {
  struct mnl_socket *nl = NULL;
  int r = nl_open(&nl, err);
  if (r < 0) return r;
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_GETNEIGH;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  struct ndmsg *nd = mnl_nlmsg_put_extra_header(nlh, sizeof *nd);
  nd->ndm_family = AF_INET;
  nd->ndm_ifindex = (int)ifindex;
  neigh_search s = {.mac = mac, .ifindex = ifindex, .out = out};
  r = nl_talk(nl, nlh, neigh_cb, &s);
  mnl_socket_close(nl);
  if (r < 0) return qvm_error_set_errno(err, -r, "cannot read the neighbour table");
  char mac_text[QVM_NET_MAC_STR_MAX];
  qvm_net_mac_format(mac_text, mac);
  if (!s.found) return qvm_error_set(err, QVM_ENOTFOUND, "no neighbour entry for '%s'", mac_text);
  return 0;
}
