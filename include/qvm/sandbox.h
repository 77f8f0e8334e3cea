/* SPDX-License-Identifier: MIT */
#ifndef QVM_SANDBOX_H
#define QVM_SANDBOX_H

/*
 * Sandboxes: VMs with a deadline (docs/cli.md, "Sandboxes"). A sandbox is a
 * VM whose spec says so ("sandbox") and that has an expires_at; its own shim
 * stops and removes it at that time (event qvm-expired, exit reason
 * "expired"), and any qvm command that finds one whose deadline passed
 * while nothing ran removes it (qvm_vm_reconcile, qvm_vm_list).
 *
 * Contract as include/qvm/vm.h: nothing prints; strings handed out are the
 * caller's (free()); errors QVM_EINVAL (names, durations, labels),
 * QVM_ENOTFOUND (no such VM, golden, snapshot), QVM_EEXISTS (a taken
 * name), QVM_ECONFLICT (not a sandbox: class "NotSandbox"; expired:
 * "SandboxExpired"), and those of qvm_vm_up / qvm_vm_clone.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <qvm/error.h>
#include <qvm/export.h>
#include <qvm/snapshot.h>
#include <qvm/ssh.h>
#include <qvm/up.h>
#include <qvm/vm.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QVM_SANDBOX_TTL_DEFAULT_S (30 * 60)
#define QVM_SANDBOX_TTL_MIN_S 10
#define QVM_SANDBOX_TTL_MAX_S (7 * 24 * 3600)

/* "Ns", "Nm", "Nh", "Nd" (N a decimal integer, no sign) into seconds, in
 * QVM_SANDBOX_TTL_MIN_S..QVM_SANDBOX_TTL_MAX_S. The environment variable
 * QVM_TEST_MIN_TTL_S (tests only) lowers the minimum, never below 1 s. */
QVM_API int qvm_sandbox_duration_parse(int64_t *out_s, const char *text, qvm_error **err);

typedef enum qvm_sandbox_net {
  QVM_SANDBOX_NET_ISOLATED, /* user-mode networking, restrict=on: only the SSH forward */
  QVM_SANDBOX_NET_USER,     /* user-mode networking with outbound NAT */
  /* A port of a bridge (bridge, or qvm0) with qvm's DHCP and NAT, isolated
   * by the host's nftables: no other VM, the host only for DHCP, ARP and
   * replies of connections the host opened (SSH), the outside only
   * allow_egress. Needs root or CAP_NET_ADMIN (QVM_EUNAVAIL). */
  QVM_SANDBOX_NET_ISOLATED_BRIDGE,
} qvm_sandbox_net;

#define QVM_SANDBOX_CREATE_OPTIONS_VERSION 3
typedef struct qvm_sandbox_create_options {
  unsigned version; /* QVM_SANDBOX_CREATE_OPTIONS_VERSION */
  /* What to start from: "VM:SNAP" (a clone of VM's snapshot SNAP), a VM
   * name (a clone of its current disk), else an image: a store name, a
   * digest, a catalog alias, a URL or a path (qvm_vm_up with that image). A
   * VM of the name wins over an image of the same name. */
  const char *from;
  int64_t ttl_s;              /* 0: QVM_SANDBOX_TTL_DEFAULT_S; checked as by duration_parse */
  const char *agent;          /* NULL: none */
  const qvm_vm_label *labels; /* n_labels of them */
  size_t n_labels;
  qvm_sandbox_net net;
  const qvm_up_options *up; /* NULL: defaults (timeout, cloud-init wait) */
  /* QVM_SANDBOX_NET_ISOLATED_BRIDGE only (version 2): the bridge (NULL:
   * qvm0), and the destinations the guest may open connections to,
   * "A.B.C.D[/N]:PORT[/tcp|/udp]" (IPv4 only, no DNS names; at most
   * QVM_VM_EGRESS_MAX). A bad entry is QVM_EINVAL naming it. */
  const char *bridge;
  const char *const *allow_egress;
  size_t n_allow_egress;
  /* Version 3: every user command run in the sandbox (qvm_vm_exec_command)
   * takes a checkpoint first; kept in vm.json ("sandbox":
   * {"checkpoint_each": true}). */
  bool checkpoint_each;
} qvm_sandbox_create_options;
#define QVM_SANDBOX_CREATE_OPTIONS_INIT                                                            \
  { .version = QVM_SANDBOX_CREATE_OPTIONS_VERSION }

/* Creates sandbox `name` (NULL: "sb-" + 8 random hex digits) from
 * opts->from and brings it up. The deadline (now + ttl) is in vm.json from
 * the moment the VM exists, so a sandbox never outlives it, even if this
 * call fails half-way (a sandbox that did not come up stays for inspection
 * until then, as a VM after a failed up does). *out_json (may be NULL):
 * {"name","from","kind" ("image", "vm" or "snapshot"),"agent","labels",
 * "expires_at","expires_at_us","ttl_s","net","ssh_port","state",
 * "checkpoint_each"}. */
QVM_API int qvm_sandbox_create(char **out_json, const char *name,
                               const qvm_sandbox_create_options *opts, qvm_error **err);

/* The sandboxes (agent NULL: all; else only that agent's), as a JSON array
 * of {"name","state","agent","labels","expires_at","expires_at_us",
 * "expires_in_s","checkpoint_each"}, sorted by name. Removes expired sandboxes whose QEMU is
 * gone first (as qvm_vm_list does). */
QVM_API int qvm_sandbox_list(char **out_json, const char *agent, qvm_error **err);

/* What an agent (qvmd's agent tokens, qvm mcp --agent) may start a sandbox
 * from: an image in the store (name or sha256:...), a catalog alias, one of
 * its own sandboxes, or a VM labelled golden=true (VM or VM:SNAP); never a
 * path, a URL or another VM. The one check both front ends use: the caller
 * answers every refusal alike, so that it tells no names apart. */
QVM_API bool qvm_sandbox_agent_may_start_from(const char *from, const char *agent);

/* Removes sandbox `name` whatever it is doing (qvm_vm_remove with force).
 * A VM that is not a sandbox: QVM_ECONFLICT, class "NotSandbox". */
QVM_API int qvm_sandbox_destroy(const char *name, qvm_error **err);

/* Moves the deadline to (the current deadline + by_s), at most
 * QVM_SANDBOX_TTL_MAX_S from now: vm.json under the VM's lock, then the
 * running shim re-reads it (ctl.sock "expiry"). *out_expires_at_us (may be
 * NULL) gets the new deadline. A sandbox whose deadline passed:
 * QVM_ECONFLICT, class "SandboxExpired". */
QVM_API int qvm_sandbox_extend(int64_t *out_expires_at_us, const char *name, int64_t by_s,
                               qvm_error **err);

/* ---- user commands (vm/checkpoint.c) ---------------------------------------- */

/* Flags of qvm_vm_exec_command. */
#define QVM_VM_EXEC_CHECKPOINT 0x1u /* a checkpoint first, whatever the VM (exec --checkpoint) */

/* Runs a user's command in the VM (qvm exec, qvmd's exec routes: every
 * caller that runs what a person or an agent asked for): qvm_vm_exec on
 * ssh, after a checkpoint (qvm_vm_checkpoint, the default count kept) when
 * flags has QVM_VM_EXEC_CHECKPOINT or the VM is a sandbox created with
 * checkpoint_each. The exec's audit records ("exec-start", "exec") name it
 * ("checkpoint": "ckpt-N", null when none was taken). A checkpoint that
 * cannot be taken fails the call and the command does not run: the error
 * says so (class "CheckpointFailed"; one "exec" audit record with the
 * error). *out_checkpoint (may be NULL) gets the checkpoint's name, "" when
 * none was taken. qvm_vm_exec itself never takes one: qvm's own commands in
 * the guest (the KRL push) and qvm ssh / cp use it or its siblings. */
QVM_API int qvm_vm_exec_command(qvm_ssh_exec_result *out,
                                char out_checkpoint[QVM_VM_CHECKPOINT_NAME_MAX], qvm_vm *vm,
                                qvm_ssh *ssh, const qvm_ssh_exec_options *opts, unsigned flags,
                                qvm_error **err);
/* Whether every user command in the VM takes a checkpoint first (a sandbox
 * created with checkpoint_each), as the handle last read vm.json. */
QVM_API bool qvm_vm_checkpoint_each(const qvm_vm *vm);

#ifdef __cplusplus
}
#endif
#endif
