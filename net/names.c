/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "net/net.h"

#include "util/error.h"

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The uuid's 32 hex digits, lowercased, dashes only at 8-4-4-4-12. */
static int uuid_hex(char out[33], const char *uuid, qvm_error **err) {
  size_t n = 0, len = strlen(uuid);
  bool dashed = len == 36;
  if (len != 32 && !dashed) return qvm_error_set(err, QVM_EINVAL, "uuid '%s' is invalid", uuid);
  for (size_t i = 0; i < len; i++) {
    if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
      if (uuid[i] != '-') return qvm_error_set(err, QVM_EINVAL, "uuid '%s' is invalid", uuid);
      continue;
    }
    int v = hex_value(uuid[i]);
    if (v < 0) return qvm_error_set(err, QVM_EINVAL, "uuid '%s' is invalid", uuid);
    out[n++] = "0123456789abcdef"[v];
  }
  out[n] = '\0';
  return 0;
}

int qvm_net_mac_candidate(uint8_t out[6], const char *uuid, unsigned n, qvm_error **err) {
  char hex[33];
  int r = uuid_hex(hex, uuid, err);
  if (r < 0) return r;
  if (n >= QVM_NET_MAC_CANDIDATES)
    return qvm_error_set(err, QVM_EINVAL, "mac candidate %u is out of range", n);
  out[0] = 0x0a; /* locally administered (bit 1), unicast (bit 0 clear) */
  for (unsigned i = 0; i < 5; i++)
    out[1 + i] = (uint8_t)(hex_value(hex[2 * (n + i)]) << 4 | hex_value(hex[2 * (n + i) + 1]));
  return 0;
}

int qvm_net_mac_from_uuid(uint8_t out[6], const char *uuid, qvm_error **err) {
  return qvm_net_mac_candidate(out, uuid, 0, err);
}

int qvm_net_tap_name_from_uuid(char out[QVM_NET_IFNAME_MAX], const char *uuid, qvm_error **err) {
  char hex[33];
  int r = uuid_hex(hex, uuid, err);
  if (r < 0) return r;
  snprintf(out, QVM_NET_IFNAME_MAX, "qvm-%.8s", hex);
  return 0;
}

int qvm_net_mac_parse(uint8_t out[6], const char *text, qvm_error **err) {
  if (strlen(text) != 17) return qvm_error_set(err, QVM_EINVAL, "mac '%s' is invalid", text);
  for (int i = 0; i < 6; i++) {
    int hi = hex_value(text[3 * i]), lo = hex_value(text[3 * i + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && text[3 * i + 2] != ':'))
      return qvm_error_set(err, QVM_EINVAL, "mac '%s' is invalid", text);
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

void qvm_net_mac_format(char out[QVM_NET_MAC_STR_MAX], const uint8_t mac[6]) {
  snprintf(out, QVM_NET_MAC_STR_MAX, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
           mac[3], mac[4], mac[5]);
}

const char *qvm_net_ip_source_name(enum qvm_net_ip_source source) {
  switch (source) {
  case QVM_NET_IP_SOURCE_DHCP_SERVER: return "qvm-dhcp";
  case QVM_NET_IP_SOURCE_DHCP_SNOOP: return "dhcp-watch";
  case QVM_NET_IP_SOURCE_NEIGH: return "neighbour";
  case QVM_NET_IP_SOURCE_GUEST_AGENT: return "guest-agent";
  }
  return "unknown";
}
