/* SPDX-License-Identifier: MIT */
#include "net/dhcp_codec.h"

#include <string.h>

static uint32_t get_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static void put_be16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

enum parse_result { PARSE_OK, PARSE_BAD_LENGTH, PARSE_OVERLOAD, PARSE_BAD_TYPE };

/* Length rules of the options qvm reads: exact size, or a multiple of `unit`
 * with at least one unit. 0 means any length is acceptable. */
static bool option_length_ok(uint8_t code, uint8_t len) {
  switch (code) {
  case DHCP_OPT_MESSAGE_TYPE: return len == 1;
  case DHCP_OPT_MTU:
  case DHCP_OPT_MAX_SIZE: return len == 2;
  case DHCP_OPT_SUBNET_MASK:
  case DHCP_OPT_BROADCAST:
  case DHCP_OPT_REQUESTED_IP:
  case DHCP_OPT_LEASE_TIME:
  case DHCP_OPT_SERVER_ID:
  case DHCP_OPT_T1:
  case DHCP_OPT_T2: return len == 4;
  case DHCP_OPT_ROUTER:
  case DHCP_OPT_DNS: return len >= 4 && len % 4 == 0;
  case DHCP_OPT_HOSTNAME: return len >= 1;
  case DHCP_OPT_CLIENT_ID: return len >= 2;
  case DHCP_OPT_OVERLOAD: return len == 1;
  default: return true;
  }
}

static bool option_single_valued(uint8_t code) {
  switch (code) {
  case DHCP_OPT_MESSAGE_TYPE:
  case DHCP_OPT_SERVER_ID:
  case DHCP_OPT_REQUESTED_IP:
  case DHCP_OPT_LEASE_TIME:
  case DHCP_OPT_CLIENT_ID:
  case DHCP_OPT_HOSTNAME: return true;
  default: return false;
  }
}

static void store_addresses(dhcp_msg *m, uint8_t code, const uint8_t *v, uint8_t len) {
  if (code == DHCP_OPT_ROUTER) {
    m->router = get_be32(v);
    return;
  }
  m->dns_count = 0;
  for (size_t i = 0; i + 4 <= len && m->dns_count < DHCP_MAX_DNS; i += 4)
    m->dns[m->dns_count++] = get_be32(v + i);
}

static enum parse_result store_option(dhcp_msg *m, uint8_t code, const uint8_t *v, uint8_t len) {
  if (!option_length_ok(code, len)) return PARSE_BAD_LENGTH;
  switch (code) {
  case DHCP_OPT_OVERLOAD: return PARSE_OVERLOAD;
  case DHCP_OPT_MESSAGE_TYPE:
    if (v[0] < DHCP_DISCOVER || v[0] > DHCP_INFORM) return PARSE_BAD_TYPE;
    m->type = v[0];
    break;
  case DHCP_OPT_SUBNET_MASK: m->has_subnet_mask = true, m->subnet_mask = get_be32(v); break;
  case DHCP_OPT_BROADCAST: m->has_broadcast = true, m->broadcast = get_be32(v); break;
  case DHCP_OPT_REQUESTED_IP: m->has_requested_ip = true, m->requested_ip = get_be32(v); break;
  case DHCP_OPT_LEASE_TIME: m->has_lease_time = true, m->lease_time = get_be32(v); break;
  case DHCP_OPT_SERVER_ID: m->has_server_id = true, m->server_id = get_be32(v); break;
  case DHCP_OPT_T1: m->has_t1 = true, m->t1 = get_be32(v); break;
  case DHCP_OPT_T2: m->has_t2 = true, m->t2 = get_be32(v); break;
  case DHCP_OPT_MTU: m->has_mtu = true, m->mtu = get_be16(v); break;
  case DHCP_OPT_MAX_SIZE: m->has_max_size = true, m->max_size = get_be16(v); break;
  case DHCP_OPT_ROUTER:
  case DHCP_OPT_DNS: store_addresses(m, code, v, len); break;
  case DHCP_OPT_HOSTNAME:
    memcpy(m->hostname, v, len);
    m->hostname[len] = '\0';
    m->hostname_len = len;
    break;
  case DHCP_OPT_CLIENT_ID:
    memcpy(m->client_id, v, len);
    m->client_id_len = len;
    break;
  case DHCP_OPT_MESSAGE: {
    size_t n = len < sizeof m->message - 1 ? len : sizeof m->message - 1;
    memcpy(m->message, v, n);
    m->message[n] = '\0';
    break;
  }
  default: break; /* unknown options are skipped */
  }
  return PARSE_OK;
}

static int drop(uint64_t *counter) {
  (*counter)++;
  return -1;
}

static int parse_header(dhcp_msg *m, const uint8_t *d, size_t len, qvm_dhcp_stats *stats) {
  if (len < DHCP_HEADER_LEN) return drop(&stats->truncated);
  if ((d[0] != DHCP_BOOTREQUEST && d[0] != DHCP_BOOTREPLY) || d[1] != 1 || d[2] != 6)
    return drop(&stats->bad_header);
  if (get_be32(d + DHCP_FIXED_LEN) != DHCP_MAGIC) return drop(&stats->bad_cookie);
  m->op = d[0];
  m->hops = d[3];
  m->xid = get_be32(d + 4);
  m->secs = get_be16(d + 8);
  m->flags = get_be16(d + 10);
  m->ciaddr = get_be32(d + 12);
  m->yiaddr = get_be32(d + 16);
  m->siaddr = get_be32(d + 20);
  m->giaddr = get_be32(d + 24);
  memcpy(m->chaddr, d + 28, 6);
  return 0;
}

static int parse_options(dhcp_msg *m, const uint8_t *d, size_t len, qvm_dhcp_stats *stats) {
  bool seen[256] = {false};
  size_t i = DHCP_HEADER_LEN;
  while (i < len) {
    uint8_t code = d[i];
    if (code == DHCP_OPT_PAD) {
      i++;
      continue;
    }
    if (code == DHCP_OPT_END) return 0;
    if (i + 2 > len || i + 2 + (size_t)d[i + 1] > len) return drop(&stats->option_overrun);
    uint8_t olen = d[i + 1];
    if (seen[code] && option_single_valued(code)) return drop(&stats->duplicate_option);
    seen[code] = true;
    switch (store_option(m, code, d + i + 2, olen)) {
    case PARSE_OK: break;
    case PARSE_BAD_LENGTH: return drop(&stats->bad_option_length);
    case PARSE_OVERLOAD: return drop(&stats->option_overload);
    case PARSE_BAD_TYPE: return drop(&stats->bad_message_type);
    }
    i += 2 + (size_t)olen;
  }
  return drop(&stats->missing_end);
}

int dhcp_msg_parse(dhcp_msg *out, const uint8_t *data, size_t len, qvm_dhcp_stats *stats) {
  memset(out, 0, sizeof *out);
  stats->received++;
  if (parse_header(out, data, len, stats) < 0) return -1;
  return parse_options(out, data, len, stats);
}

/* --- building ------------------------------------------------------------ */

typedef struct opt_writer {
  uint8_t *buf;
  size_t cap, pos;
  bool overflow;
} opt_writer;

static void put_option(opt_writer *w, uint8_t code, const void *value, uint8_t len) {
  /* Keep room for the END byte. */
  if (w->overflow || w->pos + 2 + (size_t)len + 1 > w->cap) {
    w->overflow = true;
    return;
  }
  w->buf[w->pos++] = code;
  w->buf[w->pos++] = len;
  memcpy(w->buf + w->pos, value, len);
  w->pos += len;
}

static void put_u32_option(opt_writer *w, uint8_t code, uint32_t v) {
  uint8_t b[4];
  put_be32(b, v);
  put_option(w, code, b, 4);
}

static void put_u16_option(opt_writer *w, uint8_t code, uint16_t v) {
  uint8_t b[2];
  put_be16(b, v);
  put_option(w, code, b, 2);
}

static void put_header(uint8_t *buf, const dhcp_msg *m) {
  memset(buf, 0, DHCP_HEADER_LEN);
  buf[0] = m->op;
  buf[1] = 1;
  buf[2] = 6;
  buf[3] = m->hops;
  put_be32(buf + 4, m->xid);
  put_be16(buf + 8, m->secs);
  put_be16(buf + 10, m->flags);
  put_be32(buf + 12, m->ciaddr);
  put_be32(buf + 16, m->yiaddr);
  put_be32(buf + 20, m->siaddr);
  put_be32(buf + 24, m->giaddr);
  memcpy(buf + 28, m->chaddr, 6);
  put_be32(buf + DHCP_FIXED_LEN, DHCP_MAGIC);
}

static void put_lease_options(opt_writer *w, const dhcp_msg *m) {
  if (m->has_requested_ip) put_u32_option(w, DHCP_OPT_REQUESTED_IP, m->requested_ip);
  if (m->has_lease_time) put_u32_option(w, DHCP_OPT_LEASE_TIME, m->lease_time);
  if (m->has_t1) put_u32_option(w, DHCP_OPT_T1, m->t1);
  if (m->has_t2) put_u32_option(w, DHCP_OPT_T2, m->t2);
  if (m->has_subnet_mask) put_u32_option(w, DHCP_OPT_SUBNET_MASK, m->subnet_mask);
  if (m->has_broadcast) put_u32_option(w, DHCP_OPT_BROADCAST, m->broadcast);
  if (m->router) put_u32_option(w, DHCP_OPT_ROUTER, m->router);
  if (m->dns_count > 0) {
    uint8_t b[4 * DHCP_MAX_DNS];
    uint8_t n = m->dns_count < DHCP_MAX_DNS ? m->dns_count : DHCP_MAX_DNS;
    for (uint8_t i = 0; i < n; i++) put_be32(b + 4 * i, m->dns[i]);
    put_option(w, DHCP_OPT_DNS, b, (uint8_t)(4 * n));
  }
  if (m->has_mtu) put_u16_option(w, DHCP_OPT_MTU, m->mtu);
  if (m->has_max_size) put_u16_option(w, DHCP_OPT_MAX_SIZE, m->max_size);
}

size_t dhcp_msg_build(uint8_t *buf, size_t cap, const dhcp_msg *m) {
  if (cap < DHCP_MIN_LEN) return 0;
  put_header(buf, m);
  opt_writer w = {.buf = buf, .cap = cap, .pos = DHCP_HEADER_LEN};
  if (m->type) put_option(&w, DHCP_OPT_MESSAGE_TYPE, &m->type, 1);
  if (m->has_server_id) put_u32_option(&w, DHCP_OPT_SERVER_ID, m->server_id);
  put_lease_options(&w, m);
  if (m->hostname_len) put_option(&w, DHCP_OPT_HOSTNAME, m->hostname, m->hostname_len);
  if (m->client_id_len) put_option(&w, DHCP_OPT_CLIENT_ID, m->client_id, m->client_id_len);
  size_t msg_len = strnlen(m->message, sizeof m->message);
  if (msg_len) put_option(&w, DHCP_OPT_MESSAGE, m->message, (uint8_t)msg_len);
  if (w.overflow) return 0;
  buf[w.pos++] = DHCP_OPT_END;
  if (w.pos < DHCP_MIN_LEN) {
    memset(buf + w.pos, 0, DHCP_MIN_LEN - w.pos);
    w.pos = DHCP_MIN_LEN;
  }
  return w.pos;
}

bool dhcp_hostname_sanitize(char out[QVM_NET_HOSTNAME_MAX], const char *raw, size_t len) {
  out[0] = '\0';
  size_t n = 0;
  while (n < len && raw[n] != '.') n++;
  if (n == 0 || n > QVM_NET_HOSTNAME_MAX - 1) return false;
  char tmp[QVM_NET_HOSTNAME_MAX];
  for (size_t i = 0; i < n; i++) {
    char c = raw[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    tmp[i] = c;
  }
  if (tmp[0] == '-' || tmp[n - 1] == '-') return false;
  memcpy(out, tmp, n);
  out[n] = '\0';
  return true;
}

const char *dhcp_message_type_name(uint8_t type) {
  static const char *const names[] = {"BOOTP", "DISCOVER", "OFFER",   "REQUEST", "DECLINE",
                                      "ACK",   "NAK",      "RELEASE", "INFORM"};
  return type < 9 ? names[type] : "UNKNOWN";
}
