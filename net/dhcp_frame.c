/* SPDX-License-Identifier: MIT */
#include "net/dhcp_frame.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/cleanup.h"

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v) {
  wr16(p, (uint16_t)(v >> 16));
  wr16(p + 2, (uint16_t)v);
}

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += rd16(p + i);
  if (len & 1) sum += (uint32_t)p[len - 1] << 8;
  return sum;
}

static uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

int dhcp_frame_parse(dhcp_frame *out, const uint8_t *frame, size_t len) {
  memset(out, 0, sizeof *out);
  if (len < DHCP_FRAME_OVERHEAD || rd16(frame + 12) != ETH_P_IP) return -1;
  memcpy(out->dst_mac, frame, 6);
  memcpy(out->src_mac, frame + 6, 6);
  const uint8_t *ip = frame + 14;
  size_t ip_room = len - 14;
  size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
  if ((ip[0] >> 4) != 4 || ihl < 20 || ihl + 8 > ip_room) return -1;
  size_t total = rd16(ip + 2);
  if (total < ihl + 8 || total > ip_room) return -1;
  if ((rd16(ip + 6) & 0x3fff) != 0 || ip[9] != IPPROTO_UDP) return -1; /* MF or offset */
  if (csum_fold(csum_add(0, ip, ihl)) != 0) return -1;
  const uint8_t *udp = ip + ihl;
  size_t udp_len = rd16(udp + 4);
  if (udp_len < 8 || udp_len > total - ihl) return -1;
  out->src_ip = rd32(ip + 12);
  out->dst_ip = rd32(ip + 16);
  out->src_port = rd16(udp);
  out->dst_port = rd16(udp + 2);
  out->payload = udp + 8;
  out->payload_len = udp_len - 8;
  return 0;
}

static void build_ip(uint8_t *ip, const dhcp_frame *f, size_t udp_len) {
  memset(ip, 0, 20);
  ip[0] = 0x45;
  ip[1] = 0x10; /* low delay, as dhcpd and dnsmasq do */
  wr16(ip + 2, (uint16_t)(20 + udp_len));
  ip[8] = 64;
  ip[9] = IPPROTO_UDP;
  wr32(ip + 12, f->src_ip);
  wr32(ip + 16, f->dst_ip);
  wr16(ip + 10, csum_fold(csum_add(0, ip, 20)));
}

static void build_udp(uint8_t *udp, const dhcp_frame *f) {
  size_t udp_len = 8 + f->payload_len;
  wr16(udp, f->src_port);
  wr16(udp + 2, f->dst_port);
  wr16(udp + 4, (uint16_t)udp_len);
  wr16(udp + 6, 0);
  memcpy(udp + 8, f->payload, f->payload_len);
  uint8_t pseudo[12];
  wr32(pseudo, f->src_ip);
  wr32(pseudo + 4, f->dst_ip);
  pseudo[8] = 0;
  pseudo[9] = IPPROTO_UDP;
  wr16(pseudo + 10, (uint16_t)udp_len);
  uint16_t sum = csum_fold(csum_add(csum_add(0, pseudo, 12), udp, udp_len));
  wr16(udp + 6, sum ? sum : 0xffff);
}

size_t dhcp_frame_build(uint8_t *buf, size_t cap, const dhcp_frame *f) {
  size_t len = DHCP_FRAME_OVERHEAD + f->payload_len;
  if (len > cap || len > DHCP_FRAME_MAX) return 0;
  memcpy(buf, f->dst_mac, 6);
  memcpy(buf + 6, f->src_mac, 6);
  wr16(buf + 12, ETH_P_IP);
  build_ip(buf + 14, f, 8 + f->payload_len);
  build_udp(buf + 34, f);
  return len;
}

int dhcp_packet_socket(int *out, unsigned ifindex, uint16_t dst_port, bool outgoing_too,
                       qvm_error **err) {
  /* IPv4, UDP, not a fragment, UDP destination port == dst_port. */
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 8),
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 6),
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 20),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 4, 0),
      BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),
      BPF_STMT(BPF_LD | BPF_H | BPF_IND, 16),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, dst_port, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0x40000),
      BPF_STMT(BPF_RET | BPF_K, 0),
  };
  struct sock_fprog prog = {.len = QVM_ARRAY_SIZE(code), .filter = code};
  /* Only ETH_P_ALL sockets see frames the host sends out of the interface. */
  uint16_t proto = htons(outgoing_too ? ETH_P_ALL : ETH_P_IP);
  _cleanup_close_ int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open packet socket");
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0)
    return qvm_error_set_errno(err, errno, "cannot attach dhcp filter");
  struct sockaddr_ll sll = {
      .sll_family = AF_PACKET, .sll_protocol = proto, .sll_ifindex = (int)ifindex};
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0)
    return qvm_error_set_errno(err, errno, "cannot bind packet socket to ifindex %u", ifindex);
  *out = TAKE_FD(fd);
  return 0;
}

int dhcp_interface_mac(uint8_t out[6], const char *ifname, qvm_error **err) {
  struct ifreq ifr = {0};
  if (strlen(ifname) >= sizeof ifr.ifr_name)
    return qvm_error_set(err, QVM_EINVAL, "interface name '%s' is too long", ifname);
  strcpy(ifr.ifr_name, ifname);
  _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return qvm_error_set_errno(err, errno, "cannot open socket");
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
    return qvm_error_set_errno(err, errno, "cannot read mac of '%s'", ifname);
  memcpy(out, ifr.ifr_hwaddr.sa_data, 6);
  return 0;
}
