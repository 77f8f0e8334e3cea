/* SPDX-License-Identifier: MIT */
#ifndef QVM_SSH_H
#define QVM_SSH_H

/*
 * qvm's SSH client: everything qvm does inside a guest goes through here.
 *
 * - Keys: ed25519 pairs from libsodium, written as OpenSSH files.
 * - Host keys are pinned in a per-VM known_hosts file that qvm owns. The
 *   match is on the key, not on the address (see ssh/README.md). Host-key
 *   checking cannot be switched off; a changed key is QVM_EAUTH unless the
 *   caller explicitly asks to re-pin.
 * - Sessions are non-blocking libssh2 driven by poll(), with deadlines.
 * - exec, interactive shell (pty), SFTP copy, provisioners.
 *
 * Errors carry a class (qvm_error_class()) so callers can tell failures
 * apart without parsing messages: "ConnectionRefused", "Timeout",
 * "AuthFailed", "HostKeyMismatch", "HostKeyUnknown", "Protocol".
 * Nothing here prints.
 *
 * Contract (and include/qvm/error.h for what every header shares):
 * - Ownership: a qvm_ssh_key and a qvm_ssh are the caller's (qvm_ssh_key_free,
 *   qvm_ssh_free); the strings they return are borrowed from them; strings
 *   through char **out are the caller's, free(). Options are only read
 *   during the call.
 * - Threads: one qvm_ssh is used by one thread at a time (one exec or copy
 *   at a time on it); different sessions may run in different threads once
 *   the first session exists (libssh2's global init is not thread-safe).
 *   Output callbacks run in the calling thread.
 * - Errors: QVM_EINVAL, QVM_ENOTFOUND, QVM_ESYS/QVM_EPERM (local files,
 *   sockets), QVM_ETIMEOUT, QVM_EAUTH, QVM_EPROTO, QVM_EEXISTS (downloads),
 *   QVM_EGUEST (a provision step exited non-zero), with the classes above.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <qvm/error.h>
#include <qvm/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- keys ---------------------------------------------------------------- */

typedef struct qvm_ssh_key qvm_ssh_key;

/* A fresh ed25519 key pair. comment may be NULL (""), must hold no newline. */
QVM_API int qvm_ssh_key_generate(qvm_ssh_key **out, const char *comment, qvm_error **err);
/* Loads an unencrypted OpenSSH ed25519 private key (as written by qvm or by
 * `ssh-keygen -t ed25519 -N ''`). An encrypted key or another type is
 * QVM_EINVAL saying which, and that ssh-agent (--agent) can use it. */
QVM_API int qvm_ssh_key_load(qvm_ssh_key **out, const char *private_path, qvm_error **err);
QVM_API void qvm_ssh_key_free(qvm_ssh_key *key);

/* "-----BEGIN OPENSSH PRIVATE KEY-----\n...": openssh-key-v1, unencrypted. */
QVM_API const char *qvm_ssh_key_private_text(const qvm_ssh_key *key);
/* "ssh-ed25519 AAAA... comment" (no newline). */
QVM_API const char *qvm_ssh_key_public_line(const qvm_ssh_key *key);
/* "SHA256:..." as OpenSSH prints it. */
QVM_API const char *qvm_ssh_key_fingerprint(const qvm_ssh_key *key);

/* Writes private_path (0600) and public_path (0644; NULL = private_path
 * ".pub"). Each file is created with its final mode in a temp file and
 * renamed into place: never readable by others, never torn. */
QVM_API int qvm_ssh_key_write(const qvm_ssh_key *key, const char *private_path,
                              const char *public_path, qvm_error **err);

/* Fingerprint "SHA256:..." of a public key line "type base64 [comment]". */
QVM_API int qvm_ssh_public_line_fingerprint(char **out, const char *public_line, qvm_error **err);

/* Checks one authorized_keys-style public key line, "type base64 [comment]"
 * (no options prefix): a known key type whose base64 blob decodes and names
 * the same type. QVM_EINVAL with a message saying what is wrong (a private
 * key, not a key line, bad base64); the caller adds the file and line. */
QVM_API int qvm_ssh_public_line_check(const char *line, qvm_error **err);

/* ---- pinned host keys ------------------------------------------------------ */

/* Writes known_hosts (atomically, 0600) holding exactly one entry:
 * "<alias> <public key line without comment>". alias names the VM
 * ([A-Za-z0-9._-], it is also OpenSSH's HostKeyAlias). Replaces the file. */
QVM_API int qvm_ssh_known_hosts_pin(const char *known_hosts, const char *alias,
                                    const char *public_line, qvm_error **err);

/* ---- sessions ------------------------------------------------------------ */

typedef struct qvm_ssh qvm_ssh;

typedef enum qvm_ssh_hostkey_policy {
  /* The host key must match an entry in known_hosts; a missing or empty file
   * is an error (HostKeyUnknown). Use when qvm generated the host key. */
  QVM_SSH_HOSTKEY_PINNED = 0,
  /* Trust on first use: if known_hosts has no entry, pin the key presented
   * now; otherwise check strictly, like PINNED. */
  QVM_SSH_HOSTKEY_TOFU,
  /* Explicit re-pin: accept the key presented now and replace the file. */
  QVM_SSH_HOSTKEY_REPIN,
} qvm_ssh_hostkey_policy;

/* Every options struct starts with `unsigned version`, which its _INIT macro
 * sets; the library refuses a version it does not know with QVM_EINVAL
 * naming the struct. Start from the _INIT macro, then set members. */
#define QVM_SSH_OPTIONS_VERSION 3 /* 1: without identity_pem and certificate; 2: without fd */
typedef struct qvm_ssh_options {
  unsigned version;        /* QVM_SSH_OPTIONS_VERSION */
  const char *host;        /* numeric address, e.g. "127.0.0.1" or "::1" */
  int port;                /* default 22 */
  const char *user;        /* default "root" */
  const char *vm_name;     /* display name in errors; also the known_hosts alias */
  const char *known_hosts; /* per-VM file qvm owns; required */
  qvm_ssh_hostkey_policy hostkey_policy;
  const char *identity; /* private key file; NULL means use_agent */
  bool use_agent;       /* try ssh-agent ($SSH_AUTH_SOCK) identities */
  int timeout_ms;       /* overall, for connect + handshake + auth; default 30000 */
  int retry_initial_ms; /* first backoff between connect attempts; default 50 */
  int retry_max_ms;     /* backoff cap; default 1000 */
  /* Version 2. A certificate login with a key held in memory, instead of
   * identity and the agent: identity_pem is the private key (PEM, an ECDSA
   * P-256 key: libssh2 1.10 cannot log in with an ed25519 certificate),
   * certificate its "ecdsa-sha2-nistp256-cert-v01@openssh.com BASE64
   * [comment]" line. Both or neither. With identity set too, a server that
   * refuses the certificate is asked again with that key (on the same
   * connection); use_agent is then not tried. */
  const char *identity_pem;
  const char *certificate;
  /* Version 3. A connected stream socket to the server (non-blocking), used
   * for the first handshake instead of connecting: one whose banner the
   * caller saw with MSG_PEEK, say. -1: none. Once the options are accepted
   * the connection owns it (closes it on failure, or qvm_ssh_free does); if
   * its handshake fails the way a booting server's does, the next attempts
   * connect to host and port as usual. */
  int fd;
} qvm_ssh_options;

#define QVM_SSH_OPTIONS_INIT                                                                       \
  {                                                                                                \
    .version = QVM_SSH_OPTIONS_VERSION, .port = 22, .user = "root", .timeout_ms = 30000,           \
    .retry_initial_ms = 50, .retry_max_ms = 1000, .fd = -1                                         \
  }

/* Connects (retrying refused/reset connections with backoff until the
 * timeout), verifies the host key against known_hosts, authenticates.
 * Failures: QVM_ESYS/"ConnectionRefused", QVM_ETIMEOUT/"Timeout",
 * QVM_EAUTH/"AuthFailed", QVM_EAUTH/"HostKeyMismatch" (names the VM and shows
 * both fingerprints), QVM_EAUTH/"HostKeyUnknown", QVM_EPROTO/"Protocol". */
QVM_API int qvm_ssh_connect(qvm_ssh **out, const qvm_ssh_options *opts, qvm_error **err);
QVM_API void qvm_ssh_free(qvm_ssh *ssh);
/* "SHA256:..." of the host key the server presented. */
QVM_API const char *qvm_ssh_host_fingerprint(const qvm_ssh *ssh);

/* ---- exec and shell ------------------------------------------------------ */

enum { QVM_SSH_STDOUT = 1, QVM_SSH_STDERR = 2 };

/* Receives output as it arrives. Return 0, or a negative QVM_E* to abort. */
typedef int (*qvm_ssh_output_fn)(void *ctx, int stream, const void *data, size_t len);
/* Asked for the terminal size when winch_fd becomes readable. */
typedef void (*qvm_ssh_size_fn)(void *ctx, int *cols, int *rows);

#define QVM_SSH_EXEC_OPTIONS_VERSION 1
typedef struct qvm_ssh_exec_options {
  unsigned version;            /* QVM_SSH_EXEC_OPTIONS_VERSION */
  const char *const *argv;     /* quoted for the remote POSIX shell, or */
  const char *command;         /* a raw shell command line (exactly one of the two) */
  const char *const *env;      /* NULL-terminated "K=V" list, K a shell name */
  int stdin_fd;                /* forwarded until EOF, then EOF is sent; -1: none */
  int stdout_fd, stderr_fd;    /* output goes here (if >= 0) ... */
  qvm_ssh_output_fn on_output; /* ... and/or here */
  void *ctx;
  int timeout_ms;        /* whole exec; -1 none */
  const char *audit_log; /* JSONL file to append one line to; NULL: none */
  /* pty (interactive): stdout and stderr arrive merged on stdout. */
  bool pty;
  const char *term; /* default "xterm" */
  int cols, rows;   /* default 80x24 */
  int winch_fd;     /* readable = window changed (drained, then size_fn); -1 */
  qvm_ssh_size_fn size_fn;
} qvm_ssh_exec_options;

#define QVM_SSH_EXEC_OPTIONS_INIT                                                                  \
  {                                                                                                \
    .version = QVM_SSH_EXEC_OPTIONS_VERSION, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1,     \
    .timeout_ms = -1, .winch_fd = -1                                                               \
  }

typedef struct qvm_ssh_exec_result {
  int exit_code;   /* the remote exit status; 128+n-style never invented */
  bool signaled;   /* the remote process died of a signal ... */
  char signal[32]; /* ... named like "TERM" */
  uint64_t bytes_out, bytes_err;
  int64_t duration_ms;
} qvm_ssh_exec_result;

/* Runs a command (or, with neither argv nor command and pty=true, a login
 * shell) on a new channel of the session. Returns 0 whatever the exit code;
 * errors are transport errors, timeouts (QVM_ETIMEOUT) and callback aborts. */
QVM_API int qvm_ssh_exec(qvm_ssh_exec_result *out, qvm_ssh *ssh, const qvm_ssh_exec_options *opts,
                         qvm_error **err);

/* Quotes argv for a POSIX shell: each arg in single quotes ('\'' for a
 * quote, '' for empty), prefixed by K='V' assignments from env. */
QVM_API int qvm_ssh_quote_command(char **out, const char *const *argv, const char *const *env,
                                  qvm_error **err);

/* ---- files (SFTP) ---------------------------------------------------------- */

/* Defaults of a download's bounds. A guest can serve an endless file or an
 * endless directory listing; a download stops at these. Generous: an
 * ordinary copy of a whole guest tree stays far below them. An upload has
 * no default time limit (a large file over a slow link may take hours). */
#define QVM_SSH_COPY_TIMEOUT_MS_DEFAULT (60 * 60 * 1000)    /* 1 hour, downloads */
#define QVM_SSH_COPY_MAX_BYTES_DEFAULT (UINT64_C(64) << 30) /* 64 GiB */
#define QVM_SSH_COPY_MAX_FILES_DEFAULT UINT64_C(1000000)

#define QVM_SSH_COPY_OPTIONS_VERSION 1
typedef struct qvm_ssh_copy_options {
  unsigned version; /* QVM_SSH_COPY_OPTIONS_VERSION */
  bool recursive;   /* directories; symlinks, devices and FIFOs are refused */
  bool preserve;    /* mode and mtime; default true. A download keeps only the
                       permission bits (never setuid, setgid or sticky), less
                       the process's umask, as OpenSSH's sftp does */
  int timeout_ms;   /* whole copy; 0: the default, QVM_SSH_COPY_TIMEOUT_MS_DEFAULT
                       for a download, none for an upload; -1: none. Closing
                       the guest's handles may take 10 s more in all.
                       QVM_ETIMEOUT, class "Timeout" */
  /* Downloads only: file data received in all, and directory entries the
   * guest lists in all ("." and ".." included). 0: the default; UINT64_MAX:
   * no cap. Over a cap: QVM_EINVAL, class "TooLarge" / "TooManyFiles". */
  uint64_t max_bytes, max_files;
  uint64_t *out_bytes; /* if set, receives bytes of file data copied */
} qvm_ssh_copy_options;

#define QVM_SSH_COPY_OPTIONS_INIT                                                                  \
  {                                                                                                \
    .version = QVM_SSH_COPY_OPTIONS_VERSION, .recursive = true, .preserve = true, .timeout_ms = 0, \
    .max_bytes = QVM_SSH_COPY_MAX_BYTES_DEFAULT, .max_files = QVM_SSH_COPY_MAX_FILES_DEFAULT       \
  }

/* cp semantics: if the destination is an existing directory, the source is
 * copied into it under its own base name. opts may be NULL.
 *
 * A download trusts nothing from the guest: names must be single path
 * components (not "", ".", ".." and without '/' or NUL: QVM_EPROTO); below
 * the destination directory it never follows a symlink (one in the way is
 * QVM_EEXISTS; the entry DEST names may be the caller's own symlink, which
 * is followed); it enters no existing directory owned by another user
 * (QVM_EEXISTS) and never changes the mode or times of a directory that
 * existed; each file is written unnamed (O_TMPFILE, else a temp name),
 * synced and renamed into place, so a failed or killed download leaves no
 * partial file; guest text in messages is passed through
 * qvm_text_for_terminal(). */
QVM_API int qvm_ssh_upload(qvm_ssh *ssh, const char *local, const char *remote,
                           const qvm_ssh_copy_options *opts, qvm_error **err);
QVM_API int qvm_ssh_download(qvm_ssh *ssh, const char *remote, const char *local,
                             const qvm_ssh_copy_options *opts, qvm_error **err);

/* ---- provisioners ---------------------------------------------------------- */

typedef enum qvm_ssh_step_kind {
  QVM_SSH_STEP_INLINE = 0, /* shell text run with sh -c */
  QVM_SSH_STEP_SCRIPT,     /* local script uploaded to /tmp/qvm-provision-<n>.sh, run */
  QVM_SSH_STEP_FILE,       /* local file or directory uploaded to destination */
} qvm_ssh_step_kind;

typedef struct qvm_ssh_step {
  qvm_ssh_step_kind kind;
  const char *name;        /* for headers and errors; NULL: "step <n>" */
  const char *inline_text; /* INLINE */
  const char *source;      /* SCRIPT, FILE: local path */
  const char *destination; /* FILE: remote path */
  bool sudo;               /* run (or install) with `sudo -n` */
} qvm_ssh_step;

#define QVM_SSH_PROVISION_OPTIONS_VERSION 1
typedef struct qvm_ssh_provision_options {
  unsigned version; /* QVM_SSH_PROVISION_OPTIONS_VERSION */
  const qvm_ssh_step *steps;
  size_t n_steps;
  const char *log_path;        /* provision.log, appended, made 0600; NULL: none */
  const char *audit_log;       /* passed to each exec */
  qvm_ssh_output_fn on_output; /* live output of every step */
  void *ctx;
  int step_timeout_ms; /* -1 none */
} qvm_ssh_provision_options;

#define QVM_SSH_PROVISION_OPTIONS_INIT                                                             \
  { .version = QVM_SSH_PROVISION_OPTIONS_VERSION, .step_timeout_ms = -1 }

/* Runs the steps in order and stops at the first failure. A non-zero exit is
 * QVM_EGUEST (class "StepFailed") naming the step and its exit code; *out_failed (may be NULL)
 * gets the failed step's 1-based number, 0 on success. */
QVM_API int qvm_ssh_provision(size_t *out_failed, qvm_ssh *ssh,
                              const qvm_ssh_provision_options *opts, qvm_error **err);

/* ---- OpenSSH equivalents --------------------------------------------------- */

/* A shell-quoted `ssh ...` command line using the same key, known_hosts and
 * StrictHostKeyChecking=yes. */
QVM_API int qvm_ssh_openssh_command(char **out, const qvm_ssh_options *opts, qvm_error **err);
/* An ssh_config stanza "Host <host_alias>" with the same settings. */
QVM_API int qvm_ssh_openssh_config(char **out, const char *host_alias, const qvm_ssh_options *opts,
                                   qvm_error **err);

#ifdef __cplusplus
}
#endif
#endif
