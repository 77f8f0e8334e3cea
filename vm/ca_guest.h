/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_CA_GUEST_H
#define QVM_VM_CA_GUEST_H

/*
 * A sandbox's guest trusts qvm's CAs (vm/ca_guest.c): its seed installs the
 * user CA, the current KRL, a host certificate for the host key qvm pinned,
 * and an sshd drop-in naming them; the KRL is pushed again to running
 * sandboxes when it changes.
 */
#include <stdbool.h>
#include <stddef.h>

#include <qvm/cert.h>
#include <qvm/seed.h>
#include <qvm/ssh.h>

#include "util/error.h"
#include "vm/spec.h"

#define VM_GUEST_USER_CA "/etc/ssh/qvm_user_ca.pub"
/* sshd's TrustedUserCAKeys: the user CA and the session CA. The user CA
 * alone stays in VM_GUEST_USER_CA, which the boot-time KRL copies. */
#define VM_GUEST_TRUSTED_CAS "/etc/ssh/qvm_trusted_cas.pub"
#define VM_GUEST_KRL "/etc/ssh/qvm_revoked.krl"
/* Not "ssh_host_*": cloud-init's ssh module deletes /etc/ssh/ssh_host_*key*
 * after write_files ran. */
#define VM_GUEST_HOST_CERT "/etc/ssh/qvm_host_ed25519_key-cert.pub"
/* 00-: sshd keeps the first value it reads, and the drop-ins are read in
 * name order (an image's 50-cloud-init.conf after it). Sandboxes made
 * before had qvm.conf: the push and a clone's bootcmd know both. */
#define VM_GUEST_SSHD_DROPIN "/etc/ssh/sshd_config.d/00-qvm.conf"
#define VM_GUEST_SSHD_DROPIN_OLD "/etc/ssh/sshd_config.d/qvm.conf"
/* AuthorizedPrincipalsFile: /etc/ssh/qvm_principals/USER lists USER (the
 * user CA's certificates, qvm cert issue) and "qvm-session:NAME" (qvm's
 * own logins into this sandbox only). */
#define VM_GUEST_PRINCIPALS_DIR "/etc/ssh/qvm_principals"
#define VM_SESSION_PRINCIPAL_PREFIX "qvm-session:"
/* The host certificate's principals besides the VM's name: what plain
 * `ssh -p PORT 127.0.0.1` checks (OpenSSH checks the host name as typed, or
 * HostKeyAlias, without the port). */
#define VM_GUEST_HOST_PRINCIPAL "127.0.0.1"
/* How long a host certificate outlives the sandbox's deadline (an extend
 * moves the deadline by at most this much at a time). */
#define VM_GUEST_HOST_CERT_SLACK_S (7 * 24 * 3600)

typedef struct vm_ca_seed {
  qvm_seed_write_file files[6];
  size_t n_files;
  const char *bootcmd[1];
  size_t n_bootcmd;
  char *ca_line, *cas_lines, *cert_line, *dropin, *krl, *principals, *principals_path;
  size_t krl_len;
} vm_ca_seed;

/* The seed parts of sandbox s whose guest host key is host_public_line: a
 * host certificate is issued (principals: s->name and 127.0.0.1). */
int vm_ca_seed_make(vm_ca_seed *out, const vm_spec *s, const char *host_public_line,
                    qvm_error **err);
void vm_ca_seed_clear(vm_ca_seed *seed);

/* Writes ca's KRL to VM_GUEST_KRL in the guest on ssh (a session of vm's
 * user; sudo -n unless it is root): a fresh temp file in /etc/ssh, root's,
 * 0644, renamed over the old one; the guest's sha256 of the result must be
 * the host's. A guest without VM_GUEST_SSHD_DROPIN (an image that ignored
 * the seed's write_files) is QVM_ENOTFOUND: it trusts no certificate. */
int vm_ca_push_krl(qvm_vm *vm, qvm_ssh *ssh, const qvm_cert_ca *ca, qvm_error **err);
/* After a running sandbox went back to a snapshot's RAM and disk: its
 * /etc/ssh holds the KRL of that moment, and no boot replaced it, so a
 * certificate revoked since would log in again. Pushes the current KRL
 * (0: not a running sandbox, or a guest that trusts no certificate). */
int vm_ca_repush(qvm_vm *vm, qvm_error **err);

/* Forks (vm/fork.c): a fork of a VM whose guest trusts the CA (a sandbox,
 * or a fork of one) gets the mark VM_CA_TRUST_MARK in its directory, so that
 * qvm cert push reaches it too; once it answers over SSH it gets a host
 * certificate of its own (its name and 127.0.0.1, for SRC's host key, which
 * its memory holds) and the current KRL. */
#define VM_CA_TRUST_MARK "ca-trust"
bool vm_ca_trusted(const qvm_vm *vm);
int vm_ca_fork_mark(const qvm_vm *src, const char *dir, qvm_error **err);
int vm_ca_fork_trust(qvm_vm *vm, qvm_ssh *ssh, qvm_error **err);

/* ---- qvm's own logins into sandboxes (vm/ca.c, vm/access_ssh.c) ----
 * A sandbox's guest trusts a third CA of qvm's, the session CA, and no
 * authorized_keys file (its sshd drop-in says AuthorizedKeysFile none): qvm
 * logs in with a certificate of that CA for an ECDSA key made for that one
 * connection and kept in memory (ssh/session_key.h): valid from the epoch
 * (a guest whose clock went back with a snapshot restore must still take
 * it) to VM_CA_SESSION_TTL_S from now, principal "qvm-session:NAME" (the
 * guest's principals file lists it for the guest user: the certificate
 * logs in to that sandbox and its forks only), key id
 * "qvm:ACTOR:VM:SERIAL", source-address the host's address as the guest
 * sees it. The boot-time KRL (the user CA's key) does not touch the session
 * CA, so qvm can always log in to push the real KRL. The VM directory of
 * such a sandbox (and of its forks) holds VM_CA_SESSION_MARK, whose content
 * is NAME (a fork's: its source's, whose files its guest has); a sandbox
 * made before has none and keeps its static key. */
#define VM_CA_SESSION_MARK "ca-session"
#define VM_CA_SESSION_TTL_S 300
bool vm_ca_session_login(const qvm_vm *vm);
/* NAME of the VM's principal (its mark's content); vm's own name if the
 * mark holds no valid name. Borrowed from vm until the next call. */
const char *vm_ca_session_principal(qvm_vm *vm);
/* Marks the VM directory dir (a new sandbox's, named name). */
int vm_ca_session_mark(const char *dir, const char *name, qvm_error **err);
int vm_ca_session_issue(char **out_line, qvm_cert_ca *ca, const unsigned char *ecdsa_q,
                        const char *vm, const char *principal_vm, const char *source_address,
                        int64_t ttl_s, qvm_error **err);
const char *vm_ca_session_public_line(const qvm_cert_ca *ca);

#endif
