/* SPDX-License-Identifier: MIT */
#ifndef QVM_NET_LEASE_DB_H
#define QVM_NET_LEASE_DB_H

/*
 * The per-bridge lease file, shared by every shim serving a VM on that
 * bridge. A change is lock (flock on "<path>.lock", since the data file's
 * inode is replaced by every atomic write) -> read -> modify -> atomic write
 * -> unlock. Readers need no lock: rename makes every read see a whole file.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#include "util/error.h"

typedef enum lease_state {
  LEASE_BOUND,    /* given to mac until expires */
  LEASE_RELEASED, /* released, kept so the mac gets the same ip next time */
  LEASE_DECLINED, /* a client found the ip in use: not offered until expires */
} lease_state;

typedef struct lease_record {
  lease_state state;
  uint8_t mac[6];
  uint32_t ip; /* host byte order */
  int64_t expires;
  char hostname[QVM_NET_HOSTNAME_MAX];
} lease_record;

typedef struct lease_table {
  lease_record *v;
  size_t n, cap;
} lease_table;

#define LEASE_DB_MAX_BYTES (4u << 20)

void lease_table_free(lease_table *t);
/* The mac's bound or released record, or NULL. */
lease_record *lease_table_find_mac(lease_table *t, const uint8_t mac[6]);
/* Whether ip is held by someone other than mac at time now: bound and
 * unexpired by another mac, or declined and unexpired. */
bool lease_table_ip_held(const lease_table *t, uint32_t ip, const uint8_t mac[6], int64_t now);
/* Whether any record (of any state) names ip. */
bool lease_table_ip_recorded(const lease_table *t, uint32_t ip);
/* Drops every record of ip, then of mac (except declined), then appends rec. */
int lease_table_put(lease_table *t, const lease_record *rec);
/* How many unexpired declined records mac has. */
size_t lease_table_declined_count(const lease_table *t, const uint8_t mac[6], int64_t now);
/* Drops declined records that have expired; returns how many. */
size_t lease_table_prune_declined(lease_table *t, int64_t now);

/* Parses the file's text; invalid lines are skipped. */
int lease_table_parse(lease_table *out, const char *text);
/* Serializes; the caller frees. NULL if out of memory. */
char *lease_table_format(const lease_table *t);

/* Exclusive flock on "<path>.lock" (0600). *out is the lock fd. */
int lease_db_lock(int *out, const char *path, qvm_error **err);
/* A missing file is an empty table. */
int lease_db_read(lease_table *out, const char *path, qvm_error **err);
/* Atomic rewrite, mode 0600: the file names every VM's MAC, IP and hostname. */
int lease_db_write(const lease_table *t, const char *path, qvm_error **err);
/* Best effort: takes group and other bits off an existing db (one an older
 * qvm wrote 0644) and its lock file. */
void lease_db_restrict(const char *path);

#endif
