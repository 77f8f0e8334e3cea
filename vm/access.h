/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_ACCESS_H
#define QVM_VM_ACCESS_H

/*
 * Guest access at create time: the user, hostname, host-key policy, the
 * user's cloud-config parts, extra keys and provision steps go into the spec
 * (checked: files exist, YAML parses, steps are well formed); then the VM's
 * client key, the guest's host key (pinned in known_hosts before the first
 * boot) and seed.iso are written into the VM's directory.
 */
#include "util/error.h"
#include "vm/defaults.h"
#include "vm/spec.h"
#include <qvm/vm.h>

#define VM_CLIENT_KEY "id_ed25519"
#define VM_KNOWN_HOSTS "known_hosts"
#define VM_SEED_ISO "seed.iso"

/* Options -> spec->{cloud_init,user,hostname,hostkey_tofu,cloud_configs,
 * authorized_keys,steps} and, with cloud-init, spec->seed_iso = "seed.iso". */
int vm_access_spec(vm_spec *spec, const qvm_vm_create_options *opts, qvm_error **err);
/* With spec->cloud_init: keys, known_hosts and seed.iso in dir (the VM's
 * directory, or the temporary one it is built in). */
int vm_access_populate(const char *dir, const vm_spec *spec, bool partition_grown, qvm_error **err);
/* qvm_vm_ssh_target for a login (a whole current-version struct): as user
 * (NULL: the VM's), and for a sandbox a session key and certificate valid
 * cert_ttl_s (vm/ca_guest.h), lent until vm_spec_lent_credentials_clear or
 * the spec is freed. */
int vm_ssh_login_target(qvm_ssh_options *out, qvm_vm *vm, const char *user, int timeout_ms,
                        int64_t cert_ttl_s, qvm_error **err);

/* qvm_vm_ssh_connect whose first handshake is on fd, a connection to the
 * VM's ssh port the caller made (up's banner probe); -1: none. fd is closed
 * on every path (or owned by *out). */
int vm_ssh_connect_on(qvm_ssh **out, qvm_vm *vm, const qvm_vm_ssh_options *opts, int fd,
                      qvm_error **err);

/* "[a-z_][a-z0-9_-]{0,31}" */
bool vm_user_name_valid(const char *name);
/* 1-63 of [A-Za-z0-9.-], starting with a letter or digit. */
bool vm_hostname_valid(const char *name);

#endif
