/* SPDX-License-Identifier: MIT */
#ifndef QVM_NET_NET_H
#define QVM_NET_NET_H

/*
 * Bridge mode networking for one VM: the bridge and the VM's tap (rtnetlink
 * through libmnl and /dev/net/tun, never `ip`), a DHCP server that answers
 * only the VM's MAC, a lease database shared by every shim on a bridge, and a
 * passive lease watcher for bridges served by someone else's DHCP.
 *
 * Everything acts in the calling thread's network namespace. Nothing here
 * prints, and nothing spawns threads: the server and the watcher each expose
 * one fd for the caller's poll loop plus a handle_readable() call.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <qvm/error.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QVM_NET_IFNAME_MAX 16 /* IFNAMSIZ, with the NUL */
#define QVM_NET_IP_MAX 16     /* "255.255.255.255" + NUL */
#define QVM_NET_MAC_STR_MAX 18
#define QVM_NET_HOSTNAME_MAX 64

/* --- names and addresses derived from a VM ------------------------------ */

/* A deterministic MAC from the VM's uuid ("8-4-4-4-12" hex, or 32 hex
 * digits): 0a:<5 bytes of the uuid>. 0x0a has the locally administered bit
 * set and the multicast bit clear, so it never collides with a vendor OUI
 * (QEMU's 52:54:00 included). */
int qvm_net_mac_from_uuid(uint8_t out[6], const char *uuid, qvm_error **err);
/* The same scheme's other choices for when a MAC is taken on the bridge:
 * candidate n (0 <= n < QVM_NET_MAC_CANDIDATES) is 0a: + the 5 bytes of the
 * uuid's 16 that start at byte n. Candidate 0 is qvm_net_mac_from_uuid's. */
#define QVM_NET_MAC_CANDIDATES 12
int qvm_net_mac_candidate(uint8_t out[6], const char *uuid, unsigned n, qvm_error **err);
/* "qvm-" + the first 8 hex digits of the uuid: 12 chars, under IFNAMSIZ. */
int qvm_net_tap_name_from_uuid(char out[QVM_NET_IFNAME_MAX], const char *uuid, qvm_error **err);
int qvm_net_mac_parse(uint8_t out[6], const char *text, qvm_error **err);
void qvm_net_mac_format(char out[QVM_NET_MAC_STR_MAX], const uint8_t mac[6]);

/* --- links (CAP_NET_ADMIN) ---------------------------------------------- */

typedef struct qvm_net_bridge_options {
  const char *name;    /* "qvm0" */
  const char *address; /* the bridge's own IPv4 address with prefix */
} qvm_net_bridge_options;

#define QVM_NET_BRIDGE_OPTIONS_INIT                                                                \
  { .name = "qvm0", .address = "10.77.0.1/24" }

/* Creates the bridge unless it exists, sets it up and adds the address
 * unless it is there. An existing link of that name that is not a bridge is
 * QVM_EEXISTS. opts may be NULL for the defaults. */
int qvm_net_bridge_ensure(const qvm_net_bridge_options *opts, qvm_error **err);
/* Deletes any link by name (bridge, tap, veth). QVM_ENOTFOUND if absent. */
int qvm_net_link_delete(const char *ifname, qvm_error **err);
/* Deletes the link with this ifindex, never another that took its name
 * since. QVM_ENOTFOUND if it is gone. */
int qvm_net_link_delete_index(unsigned idx, qvm_error **err);
/* Enslaves ifname to bridge and sets it up. */
int qvm_net_link_enslave(const char *ifname, const char *bridge, qvm_error **err);
int qvm_net_link_set_up(const char *ifname, qvm_error **err);
/* ifindex, or QVM_ENOTFOUND. */
int qvm_net_link_index(unsigned *out, const char *ifname, qvm_error **err);

enum {
  QVM_NET_TAP_VNET_HDR = 1u << 0, /* IFF_VNET_HDR: for QEMU's vnet_hdr=on */
};

/* Creates tap `name` (not persistent: it disappears when the last fd on it
 * closes), enslaves it to bridge (if not NULL) and sets it up. *out is the
 * tap's fd (O_CLOEXEC) for the caller to hand to QEMU. */
int qvm_net_tap_create(int *out, const char *name, const char *bridge, unsigned flags,
                       qvm_error **err);

/* --- NAT (--nat) --------------------------------------------------------- */
/* Runs nft commands in one libnftables context: 0, or -1 with nft's first
 * line of error in why (nat.c and isolate.c). */
int qvm_net_nft_run(const char *cmd, char why[200]);

/* Masquerades the subnet of `subnet` (the bridge's address with prefix,
 * "10.77.0.1/24") when it leaves through any link but the bridge, i.e. the
 * uplink, and enables IPv4 forwarding. libnftables: table `ip qvm`, chain
 * "nat_<bridge>", rewritten in one transaction (idempotent). */
int qvm_net_nat_ensure(const char *bridge, const char *subnet, qvm_error **err);
/* Deletes that chain; QVM_ENOTFOUND if there is none. */
int qvm_net_nat_remove(const char *bridge, qvm_error **err);
/* `list table ip qvm` as nft prints it (caller frees); QVM_ENOTFOUND if absent. */
int qvm_net_nat_list(char **out, qvm_error **err);

/* --- isolated ports (sandboxes) ------------------------------------------ */

/* One egress allow-list entry: "A.B.C.D[/N]:PORT[/tcp|/udp]" (tcp when no
 * protocol; no DNS names). addr is the network, host order. */
typedef struct qvm_net_egress {
  uint32_t addr;
  uint8_t prefix; /* 0..32 */
  uint16_t port;  /* 1..65535 */
  bool udp;
} qvm_net_egress;
#define QVM_NET_EGRESS_MAX 32
#define QVM_NET_EGRESS_STR_MAX 32 /* "255.255.255.255/32:65535/tcp" + NUL */
/* QVM_EINVAL names the entry and what is wrong with it. */
int qvm_net_egress_parse(qvm_net_egress *out, const char *text, qvm_error **err);
/* The canonical form, "A.B.C.D/N:PORT/proto", which parse reads back. */
void qvm_net_egress_format(char out[QVM_NET_EGRESS_STR_MAX], const qvm_net_egress *e);

/* Packets from an isolated tap carry mark BASE + the tap's ifindex from the
 * bridge family to the ip family (docs/ARCHITECTURE.md, "Sandboxes"). */
#define QVM_NET_ISOLATE_MARK_BASE 0x71760000u
#define QVM_NET_ISOLATE_INDEX_MAX 0xffffu

typedef struct qvm_net_isolate_options {
  const char *tap;
  unsigned tap_index;   /* the tap's ifindex, 1..QVM_NET_ISOLATE_INDEX_MAX */
  uint8_t mac[6];       /* the VM's MAC: any other source MAC is dropped */
  const char *subnet;   /* the bridge's address with prefix: never routed to */
  const char *bound_ip; /* the guest's address from qvm's DHCP; NULL: none yet */
  const qvm_net_egress *egress;
  size_t n_egress; /* <= QVM_NET_EGRESS_MAX */
} qvm_net_isolate_options;

/* Writes tables `bridge qvm_iso_<tap>` and `ip qvm_iso_<tap>` (the tap's
 * name with '_' for '-') in one transaction, replacing any before: the tap
 * reaches no other bridge port; the host only for DHCP, ARP and replies of
 * connections the host opened; routed destinations only in egress (new
 * connections) and replies. */
int qvm_net_isolate_apply(const qvm_net_isolate_options *opts, qvm_error **err);
/* The only source address (IPv4 and ARP) the tap may use from now on. */
int qvm_net_isolate_bind(const char *tap, const char *ip, qvm_error **err);
/* Deletes both tables; 0 when they are already gone. */
int qvm_net_isolate_remove(const char *tap, qvm_error **err);

/* --- lease database ----------------------------------------------------- */

/* One text file per bridge, e.g. STATE_DIR/qvm0.leases, one lease a line:
 *   <state> <mac> <ip> <expires unix s> <hostname or ->
 * Every change takes flock() on "<path>.lock" and rewrites the file with
 * qvm_write_file_atomic(), so shims on one bridge share it safely. The
 * address given to a MAC stays with it after a release or a restart. */
typedef struct qvm_net_lease {
  char ip[QVM_NET_IP_MAX];
  char mac[QVM_NET_MAC_STR_MAX];
  int64_t expires;                     /* unix seconds */
  char hostname[QVM_NET_HOSTNAME_MAX]; /* validated [a-z0-9-], or "" */
} qvm_net_lease;

/* The active (bound, unexpired) lease for mac. QVM_ENOTFOUND if none. */
int qvm_net_lease_lookup(qvm_net_lease *out, const char *db_path, const uint8_t mac[6],
                         qvm_error **err);
/* Answers at once if an active lease exists, else waits on inotify events on
 * the db's directory until one appears. timeout_ms -1 = forever;
 * QVM_ETIMEOUT names the MAC. out is a QVM_NET_IP_MAX buffer. */
int qvm_net_lease_wait(char *out, const char *db_path, const uint8_t mac[6], int timeout_ms,
                       qvm_error **err);

/* --- DHCP server -------------------------------------------------------- */

/* Why packets were dropped, and what was answered. */
typedef struct qvm_dhcp_stats {
  uint64_t received;          /* packets given to the parser */
  uint64_t truncated;         /* shorter than the BOOTP header + cookie */
  uint64_t bad_header;        /* op, htype or hlen not Ethernet BOOTP */
  uint64_t bad_cookie;        /* magic cookie missing */
  uint64_t option_overrun;    /* an option's length runs past the end */
  uint64_t option_overload;   /* option 52 (sname/file overload) */
  uint64_t missing_end;       /* no END option */
  uint64_t bad_option_length; /* a fixed-size option with a wrong length */
  uint64_t duplicate_option;  /* a single-valued option given twice */
  uint64_t bad_message_type;  /* option 53 outside 1..8, or absent */
  uint64_t bad_frame;         /* Ethernet/IPv4/UDP framing broken */
  uint64_t foreign_mac;       /* chaddr or Ethernet source is not the VM */
  uint64_t not_for_us;        /* server-id of another server, replies, relays */
  uint64_t offers, acks, naks, releases, declines, informs;
  uint64_t rate_limited;     /* over the message or change rate: dropped unanswered */
  uint64_t declines_refused; /* a DECLINE of an address not bound to the VM, or over the cap */
  uint64_t lease_writes;     /* lease-db rewrites (each one fsyncs) */
  uint64_t from_guest;       /* watcher: a "server reply" the guest itself sent */
} qvm_dhcp_stats;

enum qvm_dhcp_lease_kind {
  QVM_DHCP_LEASE_ACK = 1, /* the ACK was just sent: the guest has ip */
  QVM_DHCP_LEASE_RELEASE,
  QVM_DHCP_LEASE_DECLINE,
};

typedef struct qvm_dhcp_lease_event {
  enum qvm_dhcp_lease_kind kind;
  char ip[QVM_NET_IP_MAX];
  char mac[QVM_NET_MAC_STR_MAX];
  uint32_t lease_seconds;
  int64_t timestamp_us;                /* CLOCK_REALTIME */
  char hostname[QVM_NET_HOSTNAME_MAX]; /* validated [a-z0-9-], or "" */
} qvm_dhcp_lease_event;

typedef void (*qvm_dhcp_lease_cb)(const qvm_dhcp_lease_event *event, void *userdata);

/* A token bucket: at most `burst` at once, refilled at `per_minute`. */
typedef struct qvm_dhcp_rate {
  unsigned burst;
  unsigned per_minute;
} qvm_dhcp_rate;

/* The defaults: a DHCP client sends a handful of messages at boot and one
 * renewal per half lease, and changes its lease a few times in a VM's life. */
#define QVM_DHCP_MESSAGE_RATE_DEFAULT                                                              \
  { .burst = 20, .per_minute = 120 }
#define QVM_DHCP_CHANGE_RATE_DEFAULT                                                               \
  { .burst = 10, .per_minute = 6 }
/* At most this many addresses one MAC has declined are held out of the pool
 * at once (each for an hour); further DECLINEs are refused. */
#define QVM_DHCP_DECLINES_PER_MAC 4

typedef struct qvm_dhcp_server_options {
  const char *ifname; /* interface to serve on: the VM's tap; NULL: no socket */
  /* The bridge ifname is a port of (NULL: ifname is the bridge itself).
   * Replies come from the bridge's MAC, and the port-67 sink is bound to
   * it, because the server speaks as the bridge's address. */
  const char *bridge;
  uint8_t client_mac[6];  /* the only MAC answered */
  const char *server_ip;  /* the bridge's address: server-id and reply source */
  unsigned prefix_len;    /* of the subnet */
  const char *pool_start; /* NULL: .10 of the subnet (or the first host) */
  const char *pool_end;   /* NULL: the last host of the subnet */
  const char *router;     /* NULL: server_ip; "": none sent */
  const char *dns[3];     /* NULL-terminated if shorter; none: server_ip is not sent */
  uint32_t lease_seconds;
  uint16_t mtu;         /* 0: not sent */
  const char *hostname; /* option 12 in OFFER/ACK: [a-z0-9-] label; NULL: not sent */
  const char *lease_db; /* lease file path (0600); its directory must exist (make it 0700) */
  qvm_dhcp_lease_cb on_lease;
  void *userdata;
  /* Flood limits ({0}: the defaults above). Messages from the VM beyond
   * message_rate are dropped unanswered. Each lease-db write and each lease
   * event but the first ACK takes a token of change_rate: without one, a new
   * binding, RELEASE or DECLINE is dropped unanswered, and a new guest
   * hostname is kept in memory until a later ACK can store it. Both count in
   * stats.rate_limited. */
  qvm_dhcp_rate message_rate;
  qvm_dhcp_rate change_rate;
} qvm_dhcp_server_options;

#define QVM_DHCP_SERVER_OPTIONS_INIT                                                               \
  { .server_ip = "10.77.0.1", .prefix_len = 24, .lease_seconds = 3600 }

typedef struct qvm_dhcp_server qvm_dhcp_server;

/* With opts->ifname set, opens an AF_PACKET socket bound to it (and a UDP
 * port 67 socket on the bridge that only keeps the kernel from answering
 * ICMP port-unreachable to unicast renewals). On a bridge port (the tap) the
 * socket sees the guest's frames as they enter the port, before the bridge
 * forwards them, and replies go out of that port only, i.e. to the guest. Without, the server is
 * fed with qvm_dhcp_server_handle_packet() only. */
int qvm_dhcp_server_new(qvm_dhcp_server **out, const qvm_dhcp_server_options *opts,
                        qvm_error **err);
void qvm_dhcp_server_free(qvm_dhcp_server *server);
/* -1 without a socket. POLLIN means: call handle_readable. */
int qvm_dhcp_server_fd(const qvm_dhcp_server *server);
/* Reads every pending frame, answers, reports leases. Malformed input is
 * counted, never an error; errors are the socket's or the lease db's.
 * on_lease is called only when the lease changed: the first ACK of this
 * server, an ACK with another address or a newly stored guest hostname, the
 * first ACK after a RELEASE or DECLINE, and each accepted RELEASE or
 * DECLINE. A renewal that changes nothing reports nothing and writes
 * nothing. A DECLINE counts only for the address bound to the VM's MAC. */
int qvm_dhcp_server_handle_readable(qvm_dhcp_server *server, qvm_error **err);
/* Handles one DHCP payload (UDP data) from Ethernet source src_mac. If there
 * is a reply, it is written to reply (cap >= 576) and *out its length; *out
 * = 0 if the packet is ignored. *out_broadcast tells where it goes (RFC 2131
 * §4.1) when not NULL. */
int qvm_dhcp_server_handle_packet(size_t *out, bool *out_broadcast, qvm_dhcp_server *server,
                                  const uint8_t *packet, size_t len, const uint8_t src_mac[6],
                                  uint8_t *reply, size_t cap, qvm_error **err);
void qvm_dhcp_server_stats(qvm_dhcp_stats *out, const qvm_dhcp_server *server);

/* --- passive lease watcher (dhcp=external) ------------------------------ */

enum qvm_net_ip_source {
  QVM_NET_IP_SOURCE_DHCP_SERVER = 1, /* qvm's own server sent the ACK */
  QVM_NET_IP_SOURCE_DHCP_SNOOP,      /* the watcher saw someone's ACK */
  QVM_NET_IP_SOURCE_NEIGH,           /* the host's neighbour table */
  QVM_NET_IP_SOURCE_GUEST_AGENT,     /* the QEMU guest agent (vm/ asks it) */
};
/* "qvm-dhcp", "dhcp-watch", "neighbour", "guest-agent" */
const char *qvm_net_ip_source_name(enum qvm_net_ip_source source);

typedef struct qvm_net_watcher qvm_net_watcher;

/* AF_PACKET on ifname (the VM's tap) with a classic BPF filter for UDP
 * 67->68, learning the VM's IP from the DHCPACK for mac. Only frames the host
 * sends out of ifname towards the guest count (PACKET_OUTGOING on the tap):
 * whatever the guest sends itself (a forged ACK) enters the tap as received
 * traffic and is ignored, as is any frame from the VM's own MAC. ifname must
 * therefore be the VM's own port (its tap), not the bridge. */
int qvm_net_watcher_new(qvm_net_watcher **out, const char *ifname, const uint8_t mac[6],
                        qvm_error **err);
void qvm_net_watcher_free(qvm_net_watcher *watcher);
int qvm_net_watcher_fd(const qvm_net_watcher *watcher);
/* Drains the socket. Returns 1 and fills out (QVM_NET_IP_MAX) once an ACK for
 * the MAC was seen, 0 if not yet. */
int qvm_net_watcher_handle_readable(char *out, qvm_net_watcher *watcher, qvm_error **err);
void qvm_net_watcher_stats(qvm_dhcp_stats *out, const qvm_net_watcher *watcher);

/* The fallback: an IPv4 neighbour entry (RTM_GETNEIGH) with lladdr mac, on
 * ifindex (0: any link). QVM_ENOTFOUND if none. */
int qvm_net_neigh_lookup(char *out, const uint8_t mac[6], unsigned ifindex, qvm_error **err);

#ifdef __cplusplus
}
#endif
#endif
