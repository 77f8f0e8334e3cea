/* SPDX-License-Identifier: MIT */
#ifndef QVM_TESTS_NET_TESTLIB_H
#define QVM_TESTS_NET_TESTLIB_H

/*
 * Helpers for the net tests: the committed corpus, and network namespaces
 * that a test creates and that are deleted at exit (atexit, and on SIGTERM/
 * SIGINT/SIGABRT), with every process left in them killed first. Names carry
 * the pid, so parallel runs never collide.
 */
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define NET_TEST_VM_MAC "0a:11:22:33:44:55"
#define NET_TEST_BRIDGE "qvmbr0"
#define NET_TEST_SERVER_IP "10.77.0.1"

uint8_t *net_test_corpus_file(size_t *out_len, const char *dir, const char *name);
/* Sum of every drop counter. */
uint64_t net_test_drops(const qvm_dhcp_stats *st);

/* Creates netns "qvmt-<tag>-<pid>" (name into out, 32 bytes) with lo up. */
void net_test_netns_create(char *out, const char *tag);
/* Moves the calling (single-threaded) process into netns name. */
void net_test_netns_enter(const char *name);
/* Back to the netns the process started in. */
void net_test_netns_leave(void);

/* host netns with bridge NET_TEST_BRIDGE (10.77.0.1/24, made by qvm's
 * library) and veth "vh" enslaved to it; guest netns with the peer "vg"
 * (MAC NET_TEST_VM_MAC), up. The process is left in the host netns. */
typedef struct net_test_topology {
  char host[32], guest[32];
} net_test_topology;
void net_test_topology_create(net_test_topology *out, const char *tag);

/* Runs a shell command in netns ns in the background; returns its pid, which
 * is killed at exit if still alive. */
int net_test_spawn(const char *ns, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void net_test_kill(int pid);

#endif
