/* SPDX-License-Identifier: MIT */
#ifndef QVM_NET_DHCP_CODEC_H
#define QVM_NET_DHCP_CODEC_H

/*
 * A pure DHCP codec (RFC 2131/2132): bytes -> struct and struct -> bytes.
 * Parsing is strictly bounds-checked in the manner of systemd's
 * dhcp-packet.c/dhcp-option.c and OpenBSD vmd's dhcp.c: anything truncated,
 * overrunning, overloaded, unterminated or with a fixed-size option of the
 * wrong length is dropped, and the reason is counted in qvm_dhcp_stats.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

enum {
  DHCP_BOOTREQUEST = 1,
  DHCP_BOOTREPLY = 2,
};

enum dhcp_message_type {
  DHCP_DISCOVER = 1,
  DHCP_OFFER = 2,
  DHCP_REQUEST = 3,
  DHCP_DECLINE = 4,
  DHCP_ACK = 5,
  DHCP_NAK = 6,
  DHCP_RELEASE = 7,
  DHCP_INFORM = 8,
};

enum dhcp_option {
  DHCP_OPT_PAD = 0,
  DHCP_OPT_SUBNET_MASK = 1,
  DHCP_OPT_ROUTER = 3,
  DHCP_OPT_DNS = 6,
  DHCP_OPT_HOSTNAME = 12,
  DHCP_OPT_MTU = 26,
  DHCP_OPT_BROADCAST = 28,
  DHCP_OPT_REQUESTED_IP = 50,
  DHCP_OPT_LEASE_TIME = 51,
  DHCP_OPT_OVERLOAD = 52,
  DHCP_OPT_MESSAGE_TYPE = 53,
  DHCP_OPT_SERVER_ID = 54,
  DHCP_OPT_PARAM_REQUEST = 55,
  DHCP_OPT_MESSAGE = 56,
  DHCP_OPT_MAX_SIZE = 57,
  DHCP_OPT_T1 = 58,
  DHCP_OPT_T2 = 59,
  DHCP_OPT_CLIENT_ID = 61,
  DHCP_OPT_END = 255,
};

#define DHCP_FIXED_LEN 236  /* op .. file */
#define DHCP_HEADER_LEN 240 /* + magic cookie */
#define DHCP_MIN_LEN 300    /* BOOTP minimum; some clients drop shorter replies */
#define DHCP_MAX_LEN 576    /* what every client must accept (RFC 2131 §2) */
#define DHCP_MAGIC 0x63825363u
#define DHCP_FLAG_BROADCAST 0x8000u
#define DHCP_MAX_DNS 3

/* Addresses are host byte order throughout. A field's has_ flag says whether
 * the option was present (parse) or is to be written (build). */
typedef struct dhcp_msg {
  uint8_t op;
  uint8_t hops;
  uint32_t xid;
  uint16_t secs;
  uint16_t flags;
  uint32_t ciaddr, yiaddr, siaddr, giaddr;
  uint8_t chaddr[6];
  uint8_t type; /* option 53; 0 for plain BOOTP */
  bool has_requested_ip, has_server_id, has_lease_time, has_t1, has_t2;
  bool has_subnet_mask, has_broadcast, has_mtu, has_max_size;
  uint32_t requested_ip, server_id, lease_time, t1, t2, subnet_mask, broadcast;
  uint16_t mtu, max_size;
  uint32_t router; /* 0: none */
  uint32_t dns[DHCP_MAX_DNS];
  uint8_t dns_count;
  uint8_t hostname_len; /* raw, untrusted bytes: sanitize before any use */
  char hostname[256];
  uint8_t client_id_len;
  uint8_t client_id[255];
  char message[64]; /* option 56 for a NAK, "" for none */
} dhcp_msg;

/* Parses one DHCP payload. Returns 0, or -1 with the reason counted in stats
 * (stats->received is counted either way). */
int dhcp_msg_parse(dhcp_msg *out, const uint8_t *data, size_t len, qvm_dhcp_stats *stats);
/* Writes msg into buf (cap >= DHCP_MAX_LEN), padded to DHCP_MIN_LEN. Returns
 * the length, or 0 if it does not fit. */
size_t dhcp_msg_build(uint8_t *buf, size_t cap, const dhcp_msg *msg);

/* Copies a guest-supplied hostname into out if, after lowercasing and
 * dropping a domain part, it is [a-z0-9-]{1,63} not starting or ending with
 * '-'; else out = "". Returns whether it was kept. */
bool dhcp_hostname_sanitize(char out[QVM_NET_HOSTNAME_MAX], const char *raw, size_t len);

const char *dhcp_message_type_name(uint8_t type);

#endif
