/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_NET_H
#define QVM_VM_NET_H

/*
 * Bridge networking glue between the VM lifecycle and net/: validating the
 * typed network options into the spec (the syntax is vm/syntax.c's), and
 * the shim's side: the bridge, the VM's tap, qvm's DHCP server (or the
 * passive watcher) in the shim's poll loop, DHCP_LEASE events, and removing
 * the tap.
 */
#include <stdbool.h>
#include <stddef.h>

#include "net/net.h"

#include "util/error.h"
#include "vm/defaults.h"
#include "vm/handle.h"

/* Fills s->net, net_restrict, bridge, bridge_address, dhcp_external, nat
 * and (for a bridge) s->mac from the uuid, checking every member of n. */
int vm_net_spec_fill(vm_spec *s, const qvm_vm_net *n, qvm_error **err);
/* A bridge VM's MAC (s->mac): 0a: + 5 bytes of its uuid, the first of
 * qvm_net_mac_candidate's choices that no other VM on s->bridge has, by its
 * vm.json or the bridge's lease db. QVM_EEXISTS when all are taken. */
int vm_net_mac_assign(vm_spec *s, qvm_error **err);
/* For vm.json: the same checks on stored values. */
int vm_net_bridge_name_check(const char *name, qvm_error **err);
int vm_net_subnet_check(const char *cidr, qvm_error **err);
/* Whether this process has CAP_NET_ADMIN (in its user namespace). */
bool vm_net_admin_capable(void);

/* STATE/net/<bridge>.leases (caller frees). */
int vm_net_lease_db_path(char **out, const char *bridge, qvm_error **err);

/* The shim's networking for one run. */
typedef struct vm_net vm_net;

/* Spawn mode (create_tap): ensures the bridge (and NAT), creates the tap and
 * returns its fd in *out_tap_fd for QEMU. Adopt mode: the tap is QEMU's
 * already. Both start the DHCP server or the watcher, which report to
 * events_fd. */
int vm_net_start(vm_net **out, int *out_tap_fd, qvm_vm *vm, bool create_tap, int events_fd,
                 qvm_error **err);
/* The fd for the shim's poll loop (-1 when none) and its handler. */
int vm_net_fd(const vm_net *n);
void vm_net_handle_readable(vm_net *n);
/* Closes the server or watcher (the tap goes with QEMU's last fd on it). */
void vm_net_free(vm_net *n);

/* Parses an IPv4 address from any source (a lease, the watcher, the guest
 * agent, the neighbour table) with inet_pton and re-formats it with
 * inet_ntop into out; false (out "") for anything else. */
bool vm_net_ip_canonical(char out[QVM_NET_IP_MAX], const char *text);

/* qvm_vm_ip without re-reading vm.json (vm/ip.c). */
int vm_net_ip_find(char **out_ip, char **out_source, qvm_vm *vm, int timeout_ms, qvm_error **err);

/* After QEMU is gone (reconcile, rm): removes the VM's tap if it exists. */
void vm_net_remove_tap(const vm_spec *s);
/* Removes the tap this vm_net created or adopted, by its ifindex: a tap of
 * the same name made since by the VM's next start is never touched. For the
 * shim, which exits without the VM's lock. */
void vm_net_remove_own_tap(vm_net *n);

#endif
