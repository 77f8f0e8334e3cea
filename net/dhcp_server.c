/* SPDX-License-Identifier: MIT */
/*
 * A DHCP server for exactly one client MAC (RFC 2131/2132). The message logic
 * works on parsed structs and is fed either from memory (tests, fuzzing) or
 * from an AF_PACKET socket on the VM's tap (or a bridge), because a client
 * without an address can only be answered with hand-built Ethernet frames.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"

#include "net/dhcp_codec.h"
#include "net/dhcp_frame.h"
#include "net/lease_db.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/time.h"

#define DECLINE_HOLD_SECONDS 3600
#define RATE_UNIT 60000 /* one token, in (tokens per minute) x ms */

/* A token bucket (see qvm_dhcp_rate), in RATE_UNITs. */
typedef struct rate_bucket {
  int64_t units, last_ms;
  unsigned burst, per_minute;
} rate_bucket;

struct qvm_dhcp_server {
  uint8_t mac[6];
  uint32_t server_ip, netmask, pool_start, pool_end, router;
  uint32_t dns[DHCP_MAX_DNS];
  uint8_t dns_count;
  uint32_t lease_seconds;
  uint16_t mtu;
  char hostname[QVM_NET_HOSTNAME_MAX]; /* "" : not sent */
  char *lease_db;
  qvm_dhcp_lease_cb on_lease;
  void *userdata;
  qvm_dhcp_stats stats;
  rate_bucket messages, changes;
  char guest_hostname[QVM_NET_HOSTNAME_MAX]; /* the last one the guest sent */
  /* What the last ACK event said: a renewal that changes none of it is not
   * reported again. Cleared by a RELEASE or DECLINE. */
  bool reported;
  uint32_t reported_ip;
  char reported_hostname[QVM_NET_HOSTNAME_MAX];
  int fd, udp_fd;
  unsigned ifindex;
  uint8_t if_mac[6];
};

/* What handling one message produced: maybe a reply, maybe a lease event. */
typedef struct dhcp_outcome {
  bool reply;
  bool broadcast;
  dhcp_msg msg;
  bool has_event;
  qvm_dhcp_lease_event event;
} dhcp_outcome;

/* --- options ------------------------------------------------------------- */

static int parse_ip(uint32_t *out, const char *what, const char *text, qvm_error **err) {
  struct in_addr a;
  if (!text || inet_pton(AF_INET, text, &a) != 1)
    return qvm_error_set(err, QVM_EINVAL, "%s '%s' is not an ipv4 address", what,
                         text ? text : "(null)");
  *out = ntohl(a.s_addr);
  return 0;
}

static void format_ip(char out[QVM_NET_IP_MAX], uint32_t ip) {
  struct in_addr a = {.s_addr = htonl(ip)};
  inet_ntop(AF_INET, &a, out, QVM_NET_IP_MAX);
}

static void bucket_init(rate_bucket *b, qvm_dhcp_rate rate, qvm_dhcp_rate fallback) {
  b->burst = rate.burst ? rate.burst : fallback.burst;
  b->per_minute = rate.per_minute ? rate.per_minute : fallback.per_minute;
  b->units = (int64_t)b->burst * RATE_UNIT;
  b->last_ms = qvm_now_ms();
}

/* Takes a token if more than `reserve` are there after refilling. */
static bool bucket_take_reserving(rate_bucket *b, unsigned reserve) {
  int64_t cap = (int64_t)b->burst * RATE_UNIT, now = qvm_now_ms();
  int64_t elapsed = now - b->last_ms, fill_ms = cap / b->per_minute + 1;
  b->last_ms = now;
  if (elapsed > fill_ms) elapsed = fill_ms; /* no overflow: the bucket is full by then */
  if (elapsed > 0) b->units += elapsed * b->per_minute;
  if (b->units > cap) b->units = cap;
  if (b->units < (int64_t)(1 + reserve) * RATE_UNIT) return false;
  b->units -= RATE_UNIT;
  return true;
}

static bool bucket_take(rate_bucket *b) { return bucket_take_reserving(b, 0); }

static int configure_pool(qvm_dhcp_server *s, const qvm_dhcp_server_options *o, qvm_error **err) {
  if (o->prefix_len < 8 || o->prefix_len > 30)
    return qvm_error_set(err, QVM_EINVAL, "prefix length %u is not in 8..30", o->prefix_len);
  s->netmask = ~0u << (32 - o->prefix_len);
  uint32_t net = s->server_ip & s->netmask, bcast = net | ~s->netmask;
  uint32_t first = net + 10 < bcast ? net + 10 : net + 1;
  s->pool_start = first;
  s->pool_end = bcast - 1;
  if (o->pool_start && parse_ip(&s->pool_start, "pool start", o->pool_start, err) < 0) return -1;
  if (o->pool_end && parse_ip(&s->pool_end, "pool end", o->pool_end, err) < 0) return -1;
  if ((s->pool_start & s->netmask) != net || (s->pool_end & s->netmask) != net ||
      s->pool_start > s->pool_end || s->pool_start == net || s->pool_end == bcast)
    return qvm_error_set(err, QVM_EINVAL, "address pool is not inside the server's subnet");
  return 0;
}

static int configure(qvm_dhcp_server *s, const qvm_dhcp_server_options *o, qvm_error **err) {
  memcpy(s->mac, o->client_mac, 6);
  if (parse_ip(&s->server_ip, "server address", o->server_ip, err) < 0) return QVM_EINVAL;
  if (configure_pool(s, o, err) < 0) return QVM_EINVAL;
  s->router = s->server_ip;
  if (o->router && !*o->router)
    s->router = 0;
  else if (o->router && parse_ip(&s->router, "router", o->router, err) < 0)
    return QVM_EINVAL;
  for (size_t i = 0; i < DHCP_MAX_DNS && o->dns[i]; i++)
    if (parse_ip(&s->dns[s->dns_count++], "dns server", o->dns[i], err) < 0) return QVM_EINVAL;
  s->lease_seconds = o->lease_seconds ? o->lease_seconds : 3600;
  s->mtu = o->mtu;
  if (o->hostname && (strchr(o->hostname, '.') ||
                      !dhcp_hostname_sanitize(s->hostname, o->hostname, strlen(o->hostname))))
    return qvm_error_set(err, QVM_EINVAL,
                         "hostname '%.64s' is invalid: use 1 to 63 of a-z, 0-9 and '-', not at "
                         "either end",
                         o->hostname);
  s->on_lease = o->on_lease;
  s->userdata = o->userdata;
  bucket_init(&s->messages, o->message_rate, (qvm_dhcp_rate)QVM_DHCP_MESSAGE_RATE_DEFAULT);
  bucket_init(&s->changes, o->change_rate, (qvm_dhcp_rate)QVM_DHCP_CHANGE_RATE_DEFAULT);
  if (!o->lease_db) return qvm_error_set(err, QVM_EINVAL, "no lease database path given");
  s->lease_db = strdup(o->lease_db);
  if (!s->lease_db) return qvm_error_set_errno(err, ENOMEM, "oom");
  return 0;
}

/* --- address choice and lease db changes ---------------------------------- */

static bool in_pool(const qvm_dhcp_server *s, uint32_t ip) {
  return ip >= s->pool_start && ip <= s->pool_end && ip != s->server_ip;
}

static bool available(const qvm_dhcp_server *s, const lease_table *t, uint32_t ip, int64_t now) {
  return in_pool(s, ip) && !lease_table_ip_held(t, ip, s->mac, now);
}

/* The mac's previous address, the requested one, a never used one, then one
 * whose holder let it go, in that order. 0 if the pool is exhausted. */
static uint32_t choose_address(const qvm_dhcp_server *s, lease_table *t, uint32_t requested,
                               int64_t now) {
  lease_record *own = lease_table_find_mac(t, s->mac);
  if (own && available(s, t, own->ip, now)) return own->ip;
  if (requested && available(s, t, requested, now) && !lease_table_ip_recorded(t, requested))
    return requested;
  for (uint32_t ip = s->pool_start; ip <= s->pool_end && ip != 0; ip++)
    if (in_pool(s, ip) && !lease_table_ip_recorded(t, ip)) return ip;
  for (uint32_t ip = s->pool_start; ip <= s->pool_end && ip != 0; ip++)
    if (available(s, t, ip, now)) return ip;
  return 0;
}

typedef int (*lease_change_fn)(qvm_dhcp_server *s, lease_table *t, void *arg, int64_t now);

/* Runs change under the db lock; writes the table back if it returns 1. */
static int lease_db_change(qvm_dhcp_server *s, lease_change_fn change, void *arg, qvm_error **err) {
  _cleanup_close_ int lock = -1;
  int r = lease_db_lock(&lock, s->lease_db, err);
  if (r < 0) return r;
  lease_table t = {0};
  r = lease_db_read(&t, s->lease_db, err);
  if (r < 0) return r;
  int64_t now = (int64_t)time(NULL);
  r = change(s, &t, arg, now);
  if (r == 1) {
    lease_table_prune_declined(&t, now);
    if (lease_db_write(&t, s->lease_db, err) < 0)
      r = QVM_ESYS;
    else
      s->stats.lease_writes++;
  }
  lease_table_free(&t);
  return r;
}

typedef struct lease_request {
  uint32_t ip;                                /* in: wanted (0: choose); out: chosen */
  const char *hostname;                       /* in: the guest's, "" for none */
  char stored_hostname[QVM_NET_HOSTNAME_MAX]; /* out: what the db has for the mac now */
  bool ok;                                    /* the address is (or was) the mac's to have */
  bool limited; /* a write was needed, but the change rate was used up */
} lease_request;

/* Whether the change may be written now; else the request is marked. */
static bool change_allowed(qvm_dhcp_server *s, lease_request *req) {
  req->limited = !bucket_take(&s->changes);
  return !req->limited;
}

/* A RELEASE or DECLINE leaves one change for the binding that follows it: a
 * guest that releases at every shutdown (systemd-networkd, udhcpc -R) and
 * reboots quickly must still get its address at once. Dropping one is
 * harmless: the binding just stays. */
static bool unbind_allowed(qvm_dhcp_server *s, lease_request *req) {
  req->limited = !bucket_take_reserving(&s->changes, 1);
  return !req->limited;
}

static int change_offer(qvm_dhcp_server *s, lease_table *t, void *arg, int64_t now) {
  lease_request *req = arg;
  req->ip = choose_address(s, t, req->ip, now);
  req->ok = req->ip != 0;
  return 0;
}

/* A renewal of a binding whose stored expiry is still more than half a lease
 * away needs no write (and no fsync): a client renews at T1 = lease/2, so the
 * stored expiry never passes while it keeps renewing on time. */
static bool binding_current(const qvm_dhcp_server *s, const lease_record *old, uint32_t ip,
                            int64_t now) {
  return old->state == LEASE_BOUND && old->ip == ip &&
         old->expires - now >= (int64_t)s->lease_seconds / 2;
}

/* A current binding with only a new guest hostname is rewritten when the
 * change rate allows; otherwise the name waits in memory for a later ACK, so
 * a guest that renames itself in a loop costs no fsync per packet. */
static int change_bind(qvm_dhcp_server *s, lease_table *t, void *arg, int64_t now) {
  lease_request *req = arg;
  req->ok = available(s, t, req->ip, now);
  if (!req->ok) return 0;
  lease_record rec = {.state = LEASE_BOUND, .ip = req->ip, .expires = now + s->lease_seconds};
  memcpy(rec.mac, s->mac, 6);
  lease_record *old = lease_table_find_mac(t, s->mac);
  if (old) memcpy(rec.hostname, old->hostname, sizeof rec.hostname);
  bool new_name = req->hostname[0] && strcmp(req->hostname, rec.hostname) != 0;
  bool current = old && binding_current(s, old, req->ip, now);
  memcpy(req->stored_hostname, rec.hostname, sizeof rec.hostname);
  if (current && !new_name) return 0;
  if (!change_allowed(s, req)) {
    req->ok = current; /* only the name waits; a new binding is refused for now */
    return 0;
  }
  if (new_name) memcpy(rec.hostname, req->hostname, sizeof rec.hostname);
  memcpy(req->stored_hostname, rec.hostname, sizeof rec.hostname);
  return lease_table_put(t, &rec) < 0 ? QVM_ESYS : 1;
}

static int change_release(qvm_dhcp_server *s, lease_table *t, void *arg, int64_t now) {
  (void)now;
  lease_request *req = arg;
  lease_record *own = lease_table_find_mac(t, s->mac);
  req->ok = own && own->ip == req->ip && own->state == LEASE_BOUND;
  if (!req->ok || !unbind_allowed(s, req)) return 0;
  own->state = LEASE_RELEASED;
  own->expires = 0;
  return 1;
}

/* Only the address bound to this MAC can be declined (a guest must not take
 * other VMs' addresses out of the pool), and only QVM_DHCP_DECLINES_PER_MAC
 * of a MAC's are held at once (it must not walk through the pool). */
static int change_decline(qvm_dhcp_server *s, lease_table *t, void *arg, int64_t now) {
  lease_request *req = arg;
  lease_record *own = lease_table_find_mac(t, s->mac);
  req->ok = own && own->state == LEASE_BOUND && own->ip == req->ip && in_pool(s, req->ip) &&
            lease_table_declined_count(t, s->mac, now) < QVM_DHCP_DECLINES_PER_MAC;
  if (!req->ok || !unbind_allowed(s, req)) return 0;
  lease_record rec = {
      .state = LEASE_DECLINED, .ip = req->ip, .expires = now + DECLINE_HOLD_SECONDS};
  memcpy(rec.mac, s->mac, 6);
  return lease_table_put(t, &rec) < 0 ? QVM_ESYS : 1;
}

/* --- replies ------------------------------------------------------------- */

static void reply_init(dhcp_msg *out, const qvm_dhcp_server *s, const dhcp_msg *req, uint8_t type) {
  memset(out, 0, sizeof *out);
  out->op = DHCP_BOOTREPLY;
  out->type = type;
  out->xid = req->xid;
  out->flags = req->flags & DHCP_FLAG_BROADCAST;
  memcpy(out->chaddr, req->chaddr, 6);
  out->has_server_id = true;
  out->server_id = s->server_ip;
  /* RFC 6842: a client identifier is echoed back. */
  out->client_id_len = req->client_id_len;
  memcpy(out->client_id, req->client_id, req->client_id_len);
}

static void reply_config(dhcp_msg *out, const qvm_dhcp_server *s) {
  out->has_subnet_mask = true;
  out->subnet_mask = s->netmask;
  out->has_broadcast = true;
  out->broadcast = (s->server_ip & s->netmask) | ~s->netmask;
  out->router = s->router;
  out->dns_count = s->dns_count;
  memcpy(out->dns, s->dns, sizeof out->dns);
  out->has_mtu = s->mtu != 0;
  out->mtu = s->mtu;
}

static void reply_lease(dhcp_msg *out, const qvm_dhcp_server *s, uint32_t ip) {
  out->yiaddr = ip;
  out->has_lease_time = out->has_t1 = out->has_t2 = true;
  out->lease_time = s->lease_seconds;
  out->t1 = s->lease_seconds / 2;
  out->t2 = (uint32_t)((uint64_t)s->lease_seconds * 7 / 8);
  reply_config(out, s);
  /* The name qvm gave the VM, so that a guest without cloud-init (or one
   * that asks before cloud-init runs) takes the same hostname. */
  out->hostname_len = (uint8_t)strlen(s->hostname);
  memcpy(out->hostname, s->hostname, out->hostname_len);
}

/* RFC 2131 §4.1 (no relays here): NAKs are broadcast; a client with an
 * address gets unicast to ciaddr; else the broadcast bit decides. */
static bool reply_broadcast(const dhcp_msg *reply) {
  if (reply->type == DHCP_NAK) return true;
  if (reply->ciaddr) return false;
  return (reply->flags & DHCP_FLAG_BROADCAST) != 0;
}

static void outcome_reply(dhcp_outcome *o) {
  o->reply = true;
  o->broadcast = reply_broadcast(&o->msg);
}

static void outcome_event(dhcp_outcome *o, const qvm_dhcp_server *s, enum qvm_dhcp_lease_kind kind,
                          uint32_t ip, const char *hostname) {
  o->has_event = true;
  qvm_dhcp_lease_event *e = &o->event;
  e->kind = kind;
  format_ip(e->ip, ip);
  qvm_net_mac_format(e->mac, s->mac);
  e->lease_seconds = kind == QVM_DHCP_LEASE_ACK ? s->lease_seconds : 0;
  e->timestamp_us = qvm_realtime_us();
  snprintf(e->hostname, sizeof e->hostname, "%s", hostname ? hostname : "");
}

static void nak(dhcp_outcome *o, qvm_dhcp_server *s, const dhcp_msg *req, const char *why) {
  reply_init(&o->msg, s, req, DHCP_NAK);
  snprintf(o->msg.message, sizeof o->msg.message, "%s", why);
  outcome_reply(o);
  s->stats.naks++;
}

/* An ACK is news on the first ACK of this server, after a RELEASE or
 * DECLINE, for another address, or once a new hostname is stored. */
static void report_ack(dhcp_outcome *o, qvm_dhcp_server *s, uint32_t ip, const char *hostname) {
  if (s->reported && s->reported_ip == ip && strcmp(s->reported_hostname, hostname) == 0) return;
  outcome_event(o, s, QVM_DHCP_LEASE_ACK, ip, hostname);
  s->reported = true;
  s->reported_ip = ip;
  snprintf(s->reported_hostname, sizeof s->reported_hostname, "%s", hostname);
}

/* --- message handling ---------------------------------------------------- */

static int on_discover(dhcp_outcome *o, qvm_dhcp_server *s, const dhcp_msg *req, qvm_error **err) {
  lease_request lr = {.ip = req->has_requested_ip ? req->requested_ip : 0};
  int r = lease_db_change(s, change_offer, &lr, err);
  if (r < 0 || !lr.ok) return r;
  reply_init(&o->msg, s, req, DHCP_OFFER);
  reply_lease(&o->msg, s, lr.ip);
  outcome_reply(o);
  s->stats.offers++;
  return 0;
}

/* Selecting (server-id + requested ip), init-reboot (requested ip only) and
 * renewing/rebinding (ciaddr) all end in binding one address or a NAK. */
static int on_request(dhcp_outcome *o, qvm_dhcp_server *s, const dhcp_msg *req, qvm_error **err) {
  if (req->has_server_id && req->server_id != s->server_ip) {
    s->stats.not_for_us++; /* the client chose another server's offer */
    return 0;
  }
  uint32_t ip = req->has_requested_ip ? req->requested_ip : req->ciaddr;
  if (!ip) {
    s->stats.not_for_us++;
    return 0;
  }
  char hostname[QVM_NET_HOSTNAME_MAX];
  if (dhcp_hostname_sanitize(hostname, req->hostname, req->hostname_len))
    memcpy(s->guest_hostname, hostname, sizeof hostname);
  lease_request lr = {.ip = ip, .hostname = s->guest_hostname};
  int r = lease_db_change(s, change_bind, &lr, err);
  if (r < 0) return r;
  if (lr.limited && !lr.ok) {
    s->stats.rate_limited++;
    return 0;
  }
  if (!lr.ok) {
    nak(o, s, req, "requested address is not available");
    return 0;
  }
  reply_init(&o->msg, s, req, DHCP_ACK);
  o->msg.ciaddr = req->ciaddr;
  reply_lease(&o->msg, s, ip);
  outcome_reply(o);
  s->stats.acks++;
  if (lr.limited) s->stats.rate_limited++; /* the new hostname waits */
  report_ack(o, s, ip, lr.stored_hostname);
  return 0;
}

static int on_release(dhcp_outcome *o, qvm_dhcp_server *s, const dhcp_msg *req, qvm_error **err) {
  lease_request lr = {.ip = req->ciaddr, .hostname = ""};
  int r = lease_db_change(s, change_release, &lr, err);
  if (r < 0 || !lr.ok) return r;
  if (lr.limited) {
    s->stats.rate_limited++;
    return 0;
  }
  outcome_event(o, s, QVM_DHCP_LEASE_RELEASE, lr.ip, NULL);
  s->reported = false;
  s->stats.releases++;
  return 0;
}

static int on_decline(dhcp_outcome *o, qvm_dhcp_server *s, const dhcp_msg *req, qvm_error **err) {
  if (!req->has_requested_ip) {
    s->stats.not_for_us++;
    return 0;
  }
  lease_request lr = {.ip = req->requested_ip, .hostname = ""};
  int r = lease_db_change(s, change_decline, &lr, err);
  if (r < 0) return r;
  if (!lr.ok) {
    s->stats.declines_refused++;
    return 0;
  }
  if (lr.limited) {
    s->stats.rate_limited++;
    return 0;
  }
  outcome_event(o, s, QVM_DHCP_LEASE_DECLINE, lr.ip, NULL);
  s->reported = false;
  s->stats.declines++;
  return 0;
}

static void on_inform(dhcp_outcome *o, qvm_dhcp_server *s, const dhcp_msg *req) {
  reply_init(&o->msg, s, req, DHCP_ACK);
  o->msg.ciaddr = req->ciaddr;
  reply_config(&o->msg, s);
  outcome_reply(o);
  s->stats.informs++;
}

static bool addressed_to_us(qvm_dhcp_server *s, const dhcp_msg *req, const uint8_t src_mac[6]) {
  if (memcmp(req->chaddr, s->mac, 6) != 0 || memcmp(src_mac, s->mac, 6) != 0) {
    s->stats.foreign_mac++;
    return false;
  }
  if (req->op != DHCP_BOOTREQUEST || req->giaddr != 0) {
    s->stats.not_for_us++;
    return false;
  }
  if (req->type == 0) {
    s->stats.bad_message_type++; /* plain BOOTP is not served */
    return false;
  }
  bool needs_id = req->type == DHCP_RELEASE || req->type == DHCP_DECLINE;
  if (needs_id && req->has_server_id && req->server_id != s->server_ip) {
    s->stats.not_for_us++;
    return false;
  }
  return true;
}

static int handle_message(dhcp_outcome *o, qvm_dhcp_server *s, const uint8_t *packet, size_t len,
                          const uint8_t src_mac[6], qvm_error **err) {
  memset(o, 0, sizeof *o);
  dhcp_msg req;
  if (dhcp_msg_parse(&req, packet, len, &s->stats) < 0) return 0;
  if (!addressed_to_us(s, &req, src_mac)) return 0;
  if (!bucket_take(&s->messages)) {
    s->stats.rate_limited++; /* a flood: not answered, not looked up */
    return 0;
  }
  switch (req.type) {
  case DHCP_DISCOVER: return on_discover(o, s, &req, err);
  case DHCP_REQUEST: return on_request(o, s, &req, err);
  case DHCP_RELEASE: return on_release(o, s, &req, err);
  case DHCP_DECLINE: return on_decline(o, s, &req, err);
  case DHCP_INFORM: on_inform(o, s, &req); return 0;
  default: s->stats.not_for_us++; return 0;
  }
}

static void report(const qvm_dhcp_server *s, const dhcp_outcome *o) {
  if (o->has_event && s->on_lease) s->on_lease(&o->event, s->userdata);
}

int qvm_dhcp_server_handle_packet(size_t *out, bool *out_broadcast, qvm_dhcp_server *server,
                                  const uint8_t *packet, size_t len, const uint8_t src_mac[6],
                                  uint8_t *reply, size_t cap, qvm_error **err) {
  dhcp_outcome o;
  *out = 0;
  int r = handle_message(&o, server, packet, len, src_mac, err);
  if (r < 0) return r;
  if (o.reply && (*out = dhcp_msg_build(reply, cap, &o.msg)) == 0)
    return qvm_error_set(err, QVM_EINVAL, "dhcp reply does not fit in %zu bytes", cap);
  if (out_broadcast) *out_broadcast = o.broadcast;
  report(server, &o);
  return 0;
}

/* --- socket transport ----------------------------------------------------- */

static int send_reply(qvm_dhcp_server *s, const dhcp_outcome *o, qvm_error **err) {
  uint8_t payload[DHCP_MAX_LEN], frame[DHCP_FRAME_MAX];
  dhcp_frame f = {.src_ip = s->server_ip,
                  .src_port = DHCP_SERVER_PORT,
                  .dst_port = DHCP_CLIENT_PORT,
                  .payload = payload};
  f.payload_len = dhcp_msg_build(payload, sizeof payload, &o->msg);
  memcpy(f.src_mac, s->if_mac, 6);
  if (o->broadcast) {
    memset(f.dst_mac, 0xff, 6);
    f.dst_ip = 0xffffffffu;
  } else {
    memcpy(f.dst_mac, o->msg.chaddr, 6);
    f.dst_ip = o->msg.ciaddr ? o->msg.ciaddr : o->msg.yiaddr;
  }
  size_t len = dhcp_frame_build(frame, sizeof frame, &f);
  struct sockaddr_ll to = {.sll_family = AF_PACKET,
                           .sll_protocol = htons(0x0800),
                           .sll_ifindex = (int)s->ifindex,
                           .sll_halen = 6};
  memcpy(to.sll_addr, f.dst_mac, 6);
  if (len == 0) return qvm_error_set(err, QVM_EINVAL, "dhcp reply frame does not fit");
  if (sendto(s->fd, frame, len, 0, (struct sockaddr *)&to, sizeof to) < 0)
    return qvm_error_set_errno(err, errno, "cannot send dhcp %s",
                               dhcp_message_type_name(o->msg.type));
  return 0;
}

static int handle_frame(qvm_dhcp_server *s, const uint8_t *frame, size_t len, qvm_error **err) {
  dhcp_frame f;
  if (dhcp_frame_parse(&f, frame, len) < 0 || f.dst_port != DHCP_SERVER_PORT) {
    s->stats.bad_frame++;
    return 0;
  }
  dhcp_outcome o;
  int r = handle_message(&o, s, f.payload, f.payload_len, f.src_mac, err);
  if (r < 0) return r;
  if (o.reply && (r = send_reply(s, &o, err)) < 0) return r;
  report(s, &o);
  return 0;
}

static void drain_udp(int fd) {
  char buf[2048];
  while (fd >= 0 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0) {
  }
}

int qvm_dhcp_server_handle_readable(qvm_dhcp_server *server, qvm_error **err) {
  drain_udp(server->udp_fd);
  for (int i = 0; i < 64; i++) {
    uint8_t frame[2048];
    struct sockaddr_ll from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(server->fd, frame, sizeof frame, MSG_DONTWAIT | MSG_TRUNC,
                         (struct sockaddr *)&from, &fromlen);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return 0;
      return qvm_error_set_errno(err, errno, "cannot receive dhcp frame");
    }
    if (from.sll_pkttype == PACKET_OUTGOING) continue; /* our own replies */
    if ((size_t)n > sizeof frame) {
      server->stats.bad_frame++;
      continue;
    }
    int r = handle_frame(server, frame, (size_t)n, err);
    if (r < 0) return r;
  }
  return 0;
}

/* Without a listener on port 67 the kernel answers unicast renewals with
 * ICMP port-unreachable; this socket is only there to be drained. */
static int open_udp_sink(qvm_dhcp_server *s, const char *ifname) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(DHCP_SERVER_PORT)};
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) < 0 ||
      bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
    close(fd);
    return -1; /* e.g. another server has the port: only a nicety is lost */
  }
  s->udp_fd = fd;
  return 0;
}

static int open_socket(qvm_dhcp_server *s, const char *ifname, const char *bridge,
                       qvm_error **err) {
  s->ifindex = if_nametoindex(ifname);
  if (s->ifindex == 0)
    return qvm_error_set_code_errno(err, QVM_ENOTFOUND, errno, "interface '%s' not found", ifname);
  int r = dhcp_interface_mac(s->if_mac, bridge ? bridge : ifname, err);
  if (r < 0) return r;
  /* On a bridge port, the bridge takes the guest's frames before any
   * protocol-specific packet socket on the port sees them; only ETH_P_ALL
   * taps run first. Our own (outgoing) replies are skipped when read. */
  r = dhcp_packet_socket(&s->fd, s->ifindex, DHCP_SERVER_PORT, bridge != NULL, err);
  if (r < 0) {
    qvm_error_prefix(err, "cannot serve dhcp on '%s'", ifname);
    return r;
  }
  open_udp_sink(s, bridge ? bridge : ifname);
  return 0;
}

int qvm_dhcp_server_new(qvm_dhcp_server **out, const qvm_dhcp_server_options *opts,
                        qvm_error **err) {
  qvm_dhcp_server *s = calloc(1, sizeof *s);
  if (!s) return qvm_error_set_errno(err, ENOMEM, "oom");
  s->fd = s->udp_fd = -1;
  int r = configure(s, opts, err);
  if (r == 0) lease_db_restrict(s->lease_db);
  if (r == 0 && opts->ifname) r = open_socket(s, opts->ifname, opts->bridge, err);
  if (r < 0) {
    qvm_dhcp_server_free(s);
    return r;
  }
  *out = s;
  return 0;
}

void qvm_dhcp_server_free(qvm_dhcp_server *server) {
  if (!server) return;
  if (server->fd >= 0) close(server->fd);
  if (server->udp_fd >= 0) close(server->udp_fd);
  free(server->lease_db);
  free(server);
}

int qvm_dhcp_server_fd(const qvm_dhcp_server *server) { return server->fd; }

void qvm_dhcp_server_stats(qvm_dhcp_stats *out, const qvm_dhcp_server *server) {
  *out = server->stats;
}
