/* SPDX-License-Identifier: MIT */
#ifndef QVM_SSH_INTERNAL_H
#define QVM_SSH_INTERNAL_H

#include <stdint.h>

#include <libssh2.h>
#include <libssh2_sftp.h>

#include <qvm/ssh.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/strbuf.h"

struct qvm_ssh {
  int fd;
  LIBSSH2_SESSION *session;
  LIBSSH2_SFTP *sftp; /* opened on first use */
  char *vm_name;
  char host_fingerprint[64];
};

QVM_DEFINE_CLEANUP(qvm_ssh_key, qvm_ssh_key_free)
QVM_DEFINE_CLEANUP(qvm_ssh, qvm_ssh_free)

/* Waits for the session socket in the direction libssh2 is blocked on, until
 * deadline_ms (monotonic; -1 forever). QVM_ETIMEOUT names `what`. */
int ssh_wait_socket(qvm_ssh *ssh, int64_t deadline_ms, const char *what, qvm_error **err);
/* Turns the session's last libssh2 error into a qvm error about `what`. */
int ssh_session_error(qvm_ssh *ssh, int code, const char *what, qvm_error **err);
int64_t ssh_deadline(int timeout_ms);

/* "SHA256:<base64 no padding>" of a key blob into buf (>= 64 bytes). */
void ssh_blob_fingerprint(char *buf, size_t size, const unsigned char *blob, size_t len);
/* base64 (with padding) of data; NULL on OOM. */
char *ssh_base64(const unsigned char *data, size_t len);
/* Decodes standard base64 (padding optional); caller frees *out. */
int ssh_base64_decode(unsigned char **out, size_t *out_len, const char *text, size_t text_len);

/* JSON string literal (with quotes) appended to sb. */
void ssh_json_string(qvm_strbuf *sb, const char *s);
/* Single-quotes s for a POSIX shell and appends it. */
void ssh_shell_quote(qvm_strbuf *sb, const char *s);

/* *o = *opts, also for a version 1 caller (the fields it lacks zeroed);
 * QVM_EINVAL for another version or half a certificate login. */
int ssh_options_copy(qvm_ssh_options *o, const qvm_ssh_options *opts, qvm_error **err);

/* Host key check per policy (known_hosts.c). */
int ssh_check_host_key(qvm_ssh *ssh, const qvm_ssh_options *opts, qvm_error **err);
/* The "ssh-ed25519,..." preference list for the entries in known_hosts, or
 * NULL if it has none (or cannot be read; check reports that later). */
char *ssh_known_hosts_algorithms(const char *path);
/* The host-key algorithms offered when nothing is pinned yet. */
const char *ssh_tofu_algorithms(void);
/* The known_hosts host pattern (and OpenSSH HostKeyAlias) for opts. */
const char *ssh_host_alias(const qvm_ssh_options *opts);

#endif
