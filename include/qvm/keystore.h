/* SPDX-License-Identifier: MIT */
#ifndef QVM_KEYSTORE_H
#define QVM_KEYSTORE_H

/*
 * qvm's SSH key store: named key pairs that users and their tools keep on
 * the host and add to VMs (qvmd's /api/v1/ssh-keys and Datamancy
 * vm-provisioner's /api/ssh-keys, issue 16). Not qvm's own keys (each VM's
 * id_ed25519, the CAs): those are never listed here.
 *
 * - The store is a directory (NULL: the state dir's ssh-keys/), 0700 and
 *   the caller's; a key NAME is the files NAME (the private key, 0600,
 *   created exclusively: never replaced) and NAME.pub (0644). Names follow
 *   the VM-name rule ([a-z0-9][a-z0-9-]{0,62}).
 * - Types: ed25519 (libsodium; the OpenSSH private key format) and
 *   rsa-4096 (OpenSSL; PKCS#8 PEM, which OpenSSH reads).
 * - The private key never leaves these files: nothing here returns it.
 *
 * Contract (include/qvm/error.h): strings through char **out are the
 * caller's (free()). Errors: QVM_EINVAL (a bad name, type or comment; a
 * .pub that does not parse, naming it), QVM_EEXISTS (the name is taken),
 * QVM_ENOTFOUND, QVM_ESYS/QVM_EPERM (files).
 */
#include <qvm/error.h>
#include <qvm/export.h>
#include <qvm/vm.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qvm_key_type {
  QVM_KEY_ED25519 = 1,
  QVM_KEY_RSA4096 = 2,
} qvm_key_type;

/* "ed25519" or "rsa-4096" (also "rsa", for vm-provisioner's requests). */
QVM_API int qvm_key_type_parse(qvm_key_type *out, const char *text, qvm_error **err);

/* A new key pair. comment: NULL (the name) or at most 128 printable
 * characters. *out_json: {"name","type","fingerprint","public_key",
 * "private_key_path","public_key_path"}. */
QVM_API int qvm_keystore_generate(char **out_json, const char *dir, const char *name,
                                  qvm_key_type type, const char *comment, qvm_error **err);
/* [{"name","type","fingerprint","public_key"}], sorted by name; a NAME.pub
 * without its NAME, or one that does not parse, is left out. */
QVM_API int qvm_keystore_list(char **out_json, const char *dir, qvm_error **err);
/* The public key line of key `name`. */
QVM_API int qvm_keystore_public(char **out_line, const char *dir, const char *name,
                                qvm_error **err);

/* Adds public_line to the authorized_keys of vm's user (an "ssh-key-add"
 * audit record), once however often it is called: over SSH when the VM
 * runs; else, under the VM's lock, into its seed (qvm_seed_add_authorized_key),
 * whose cloud-init adds it at the next boot, the first or a later one. A VM
 * with no seed of qvm's that is not running is QVM_ECONFLICT, class
 * "VmNotRunning"; a sandbox, whose sshd takes certificates only, is
 * QVM_ECONFLICT, class "CertificatesOnly" (issue one with qvm cert issue). */
QVM_API int qvm_vm_authorize_key(qvm_vm *vm, const char *public_line, qvm_error **err);
/* The same, and on success *out_via says how the key went in: "ssh" or
 * "seed" (static strings; the VM's state may change between calls). */
QVM_API int qvm_vm_authorize_key_via(qvm_vm *vm, const char *public_line, const char **out_via,
                                     qvm_error **err);

#ifdef __cplusplus
}
#endif
#endif
