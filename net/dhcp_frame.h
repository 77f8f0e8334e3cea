/* SPDX-License-Identifier: MIT */
#ifndef QVM_NET_DHCP_FRAME_H
#define QVM_NET_DHCP_FRAME_H

/*
 * Ethernet + IPv4 + UDP framing for DHCP over AF_PACKET, where the client has
 * no address yet: parsing received frames and building replies with correct
 * IP and UDP checksums (dhclient checks the UDP one).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DHCP_FRAME_OVERHEAD (14 + 20 + 8)
#define DHCP_FRAME_MAX 1514

typedef struct dhcp_frame {
  uint8_t src_mac[6], dst_mac[6];
  uint32_t src_ip, dst_ip; /* host byte order */
  uint16_t src_port, dst_port;
  const uint8_t *payload;
  size_t payload_len;
} dhcp_frame;

/* Validates the Ethernet, IPv4 (header checksum, no fragments) and UDP
 * headers; -1 if broken. The UDP checksum is not checked: frames from a
 * local socket seen on a veth may still carry a partial one (offload). */
int dhcp_frame_parse(dhcp_frame *out, const uint8_t *frame, size_t len);
/* Builds a frame around f->payload into buf. Returns its length, 0 if cap is
 * too small. */
size_t dhcp_frame_build(uint8_t *buf, size_t cap, const dhcp_frame *f);

/* An AF_PACKET socket on ifindex (non-blocking, O_CLOEXEC) with a classic
 * BPF filter passing only IPv4 UDP to dst_port. outgoing_too: also the frames
 * the host transmits on ifindex (what the watcher needs on a tap). */
int dhcp_packet_socket(int *out, unsigned ifindex, uint16_t dst_port, bool outgoing_too,
                       qvm_error **err);
/* The interface's MAC address (SIOCGIFHWADDR). */
int dhcp_interface_mac(uint8_t out[6], const char *ifname, qvm_error **err);

#endif
