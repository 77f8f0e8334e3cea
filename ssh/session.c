/* SPDX-License-Identifier: MIT */
/*
 * Connecting: TCP with retry and backoff (a booting guest refuses or resets
 * connections for a while), SSH handshake, host-key check, authentication.
 * libssh2 runs non-blocking; every wait is a poll() on the socket in the
 * direction libssh2 says it is blocked on, bounded by a deadline.
 */
#include <fcntl.h>
#include <stddef.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "ssh/ssh_internal.h"
#include "util/time.h"

int64_t ssh_deadline(int timeout_ms) { return timeout_ms < 0 ? -1 : qvm_now_ms() + timeout_ms; }

static int set_class(qvm_error **err, int code, const char *cls) {
  if (err && *err) qvm_error_set_class(*err, cls);
  return code;
}

int ssh_wait_socket(qvm_ssh *ssh, int64_t deadline_ms, const char *what, qvm_error **err) {
  int dirs = libssh2_session_block_directions(ssh->session);
  struct pollfd pfd = {.fd = ssh->fd, .events = 0};
  if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND) pfd.events |= POLLIN;
  if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND) pfd.events |= POLLOUT;
  if (!pfd.events) pfd.events = POLLIN;
  for (;;) {
    int n = poll(&pfd, 1, qvm_deadline_left_ms(deadline_ms));
    if (n > 0) return 0;
    if (n == 0)
      return set_class(err, qvm_error_set(err, QVM_ETIMEOUT, "timed out %s", what), "Timeout");
    if (errno != EINTR) return qvm_error_set_errno(err, errno, "poll failed while %s", what);
  }
}

int ssh_session_error(qvm_ssh *ssh, int code, const char *what, qvm_error **err) {
  char *msg = NULL;
  libssh2_session_last_error(ssh->session, &msg, NULL, 0);
  return set_class(
      err, qvm_error_set(err, QVM_EPROTO, "%s: %s (libssh2 %d)", what, msg ? msg : "?", code),
      "Protocol");
}

/* Frees a session for sure: non-blocking libssh2_session_free() may return
 * EAGAIN and free nothing, so finish in blocking mode with a short timeout. */
static void session_free(LIBSSH2_SESSION *session, LIBSSH2_SFTP *sftp, bool goodbye) {
  if (!session) return;
  libssh2_session_set_timeout(session, 2000);
  libssh2_session_set_blocking(session, 1);
  if (sftp) libssh2_sftp_shutdown(sftp);
  if (goodbye) libssh2_session_disconnect(session, "bye");
  libssh2_session_free(session);
}

void qvm_ssh_free(qvm_ssh *ssh) {
  if (!ssh) return;
  session_free(ssh->session, ssh->sftp, true);
  if (ssh->fd >= 0) close(ssh->fd);
  free(ssh->vm_name);
  free(ssh);
}

const char *qvm_ssh_host_fingerprint(const qvm_ssh *ssh) { return ssh->host_fingerprint; }

/* One non-blocking TCP connect; *refused tells the caller to retry. */
static int tcp_connect(int *out, const struct addrinfo *ai, int64_t deadline, int *out_errno) {
  _cleanup_close_ int fd =
      socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
  if (fd < 0) return *out_errno = errno, -1;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    if (errno != EINPROGRESS) return *out_errno = errno, -1;
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int n;
    do n = poll(&pfd, 1, qvm_deadline_left_ms(deadline));
    while (n < 0 && errno == EINTR);
    if (n <= 0) return *out_errno = n == 0 ? ETIMEDOUT : errno, -1;
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (soerr) return *out_errno = soerr, -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
  *out = TAKE_FD(fd);
  return 0;
}

/* libssh2_session_init() would call libssh2_init() itself the first time,
 * which is not thread-safe (a counter and the crypto backend's setup):
 * callers on several threads start sessions at once, so it runs once here. */
static pthread_once_t libssh2_once = PTHREAD_ONCE_INIT;
static int libssh2_init_rc;
static void libssh2_init_once(void) { libssh2_init_rc = libssh2_init(0); }

static int handshake(qvm_ssh *ssh, const qvm_ssh_options *opts, int64_t deadline, qvm_error **err) {
  pthread_once(&libssh2_once, libssh2_init_once);
  if (libssh2_init_rc != 0) return qvm_error_set(err, QVM_ESYS, "libssh2 failed to initialize");
  _cleanup_free_ char *pinned = ssh_known_hosts_algorithms(opts->known_hosts);
  const char *algos =
      pinned && opts->hostkey_policy != QVM_SSH_HOSTKEY_REPIN ? pinned : ssh_tofu_algorithms();
  ssh->session = libssh2_session_init();
  if (!ssh->session) return qvm_error_set(err, QVM_ESYS, "cannot create ssh session");
  libssh2_session_set_blocking(ssh->session, 0);
  if (libssh2_session_method_pref(ssh->session, LIBSSH2_METHOD_HOSTKEY, algos) < 0)
    return qvm_error_set(err, QVM_EINVAL, "host key types '%s' are not supported", algos);
  for (;;) {
    int rc = libssh2_session_handshake(ssh->session, ssh->fd);
    if (rc == 0) return 0;
    if (rc != LIBSSH2_ERROR_EAGAIN) return rc;
    int r = ssh_wait_socket(ssh, deadline, "waiting for the ssh handshake", err);
    if (r < 0)
      return qvm_error_prefix(err, "vm '%s' at %s:%d", ssh_host_alias(opts), opts->host,
                              opts->port);
  }
}

/* A handshake error the server may stop making once it has booted. */
static bool handshake_retryable(int rc) {
  return rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || rc == LIBSSH2_ERROR_SOCKET_RECV ||
         rc == LIBSSH2_ERROR_BANNER_RECV || rc == LIBSSH2_ERROR_SOCKET_SEND ||
         rc == LIBSSH2_ERROR_KEX_FAILURE;
}

static void session_reset(qvm_ssh *ssh) {
  session_free(ssh->session, NULL, false);
  ssh->session = NULL;
  if (ssh->fd >= 0) close(ssh->fd);
  ssh->fd = -1;
}

/* One TCP connect + handshake: 0 done, 1 retry, negative: failed (err set). */
static int attempt(qvm_ssh *ssh, const qvm_ssh_options *opts, const struct addrinfo *ai,
                   int64_t deadline, int *last_errno, qvm_error **err) {
  /* ssh->fd is set already on the first attempt with the caller's socket */
  if (ssh->fd < 0 && tcp_connect(&ssh->fd, ai, deadline, last_errno) < 0) {
    if (*last_errno == ECONNREFUSED || *last_errno == ECONNRESET || *last_errno == ETIMEDOUT ||
        *last_errno == ENETUNREACH || *last_errno == EHOSTUNREACH)
      return 1;
    return qvm_error_set_errno(err, *last_errno, "cannot connect to vm '%s' at %s:%d",
                               ssh_host_alias(opts), opts->host, opts->port);
  }
  qvm_error *local = NULL;
  int rc = handshake(ssh, opts, deadline, &local);
  if (rc == 0) return 0;
  if (local) return qvm_error_propagate(err, local);
  if (handshake_retryable(rc)) {
    *last_errno = ECONNRESET;
    session_reset(ssh);
    return 1;
  }
  return ssh_session_error(ssh, rc, "ssh handshake failed", err);
}

static int connect_error(const qvm_ssh_options *opts, int last_errno, int64_t started,
                         qvm_error **err) {
  const char *vm = ssh_host_alias(opts);
  int64_t spent = qvm_now_ms() - started;
  if (last_errno == ECONNREFUSED)
    return set_class(err,
                     qvm_error_set_code_errno(err, QVM_ESYS, ECONNREFUSED,
                                              "connection to vm '%s' at %s:%d refused (retried "
                                              "for %lld ms)",
                                              vm, opts->host, opts->port, (long long)spent),
                     "ConnectionRefused");
  if (last_errno == ETIMEDOUT || last_errno == ECONNRESET || last_errno == 0)
    return set_class(err,
                     qvm_error_set(err, QVM_ETIMEOUT,
                                   "timed out connecting to vm '%s' at %s:%d after %lld ms%s", vm,
                                   opts->host, opts->port, (long long)spent,
                                   last_errno == ECONNRESET ? " (connection reset)" : ""),
                     "Timeout");
  return qvm_error_set_errno(err, last_errno, "cannot connect to vm '%s' at %s:%d", vm, opts->host,
                             opts->port);
}

static int tcp_and_handshake(qvm_ssh *ssh, const qvm_ssh_options *opts, int64_t deadline,
                             qvm_error **err) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  struct addrinfo *ai = NULL;
  char port[16];
  snprintf(port, sizeof(port), "%d", opts->port);
  int gai = getaddrinfo(opts->host, port, &hints, &ai);
  if (gai != 0)
    return qvm_error_set(err, QVM_EINVAL, "cannot resolve '%s': %s", opts->host, gai_strerror(gai));
  int64_t started = qvm_now_ms();
  int backoff = opts->retry_initial_ms > 0 ? opts->retry_initial_ms : 50, last_errno = 0, r;
  int cap = opts->retry_max_ms > 0 ? opts->retry_max_ms : 1000;
  while ((r = attempt(ssh, opts, ai, deadline, &last_errno, err)) == 1) {
    int left = qvm_deadline_left_ms(deadline);
    if (left == 0) {
      r = connect_error(opts, last_errno, started, err);
      break;
    }
    poll(NULL, 0, left < 0 || backoff < left ? backoff : left);
    backoff = backoff * 2 > cap ? cap : backoff * 2;
  }
  freeaddrinfo(ai);
  return r;
}

static int auth_error(qvm_ssh *ssh, const qvm_ssh_options *opts, const char *how, qvm_error **err) {
  char *msg = NULL;
  libssh2_session_last_error(ssh->session, &msg, NULL, 0);
  return set_class(err,
                   qvm_error_set(err, QVM_EAUTH,
                                 "vm '%s' refused authentication as '%s' with %s: %s",
                                 ssh_host_alias(opts), opts->user, how, msg ? msg : "?"),
                   "AuthFailed");
}

static int auth_key_file(qvm_ssh *ssh, const qvm_ssh_options *opts, int64_t deadline,
                         qvm_error **err) {
  _cleanup_free_ char *how = NULL;
  if (asprintf(&how, "key '%s'", opts->identity) < 0) return QVM_ESYS;
  for (;;) {
    int rc = libssh2_userauth_publickey_fromfile_ex(
        ssh->session, opts->user, (unsigned)strlen(opts->user), NULL, opts->identity, NULL);
    if (rc == 0) return 0;
    if (rc == LIBSSH2_ERROR_FILE)
      return qvm_error_set(err, QVM_EINVAL, "cannot use ssh key '%s' (missing or unsupported)",
                           opts->identity);
    if (rc != LIBSSH2_ERROR_EAGAIN) return auth_error(ssh, opts, how, err);
    int r = ssh_wait_socket(ssh, deadline, "waiting for ssh authentication", err);
    if (r < 0) return qvm_error_prefix(err, "vm '%s'", ssh_host_alias(opts));
  }
}

static int agent_try(qvm_ssh *ssh, LIBSSH2_AGENT *agent, struct libssh2_agent_publickey *id,
                     const qvm_ssh_options *opts, int64_t deadline, qvm_error **err) {
  for (;;) {
    int rc = libssh2_agent_userauth(agent, opts->user, id);
    if (rc != LIBSSH2_ERROR_EAGAIN) return rc == 0 ? 0 : 1;
    int r = ssh_wait_socket(ssh, deadline, "waiting for ssh agent authentication", err);
    if (r < 0) return r;
  }
}

static int auth_agent(qvm_ssh *ssh, const qvm_ssh_options *opts, int64_t deadline,
                      qvm_error **err) {
  LIBSSH2_AGENT *agent = libssh2_agent_init(ssh->session);
  struct libssh2_agent_publickey *id = NULL, *prev = NULL;
  int r = 1;
  if (!agent) return qvm_error_set(err, QVM_ESYS, "cannot create ssh agent client");
  if (libssh2_agent_connect(agent) != 0 || libssh2_agent_list_identities(agent) != 0)
    r = qvm_error_set(err, QVM_ENOTFOUND, "cannot reach ssh-agent (is SSH_AUTH_SOCK set?)");
  while (r == 1 && libssh2_agent_get_identity(agent, &id, prev) == 0) {
    r = agent_try(ssh, agent, id, opts, deadline, err);
    prev = id;
  }
  libssh2_agent_disconnect(agent);
  libssh2_agent_free(agent);
  if (r == 1) return auth_error(ssh, opts, "every ssh-agent key", err);
  return r;
}

/* A certificate login: the key and its certificate from memory. */
static int auth_cert(qvm_ssh *ssh, const qvm_ssh_options *opts, int64_t deadline, qvm_error **err) {
  for (;;) {
    int rc = libssh2_userauth_publickey_frommemory(
        ssh->session, opts->user, strlen(opts->user), opts->certificate, strlen(opts->certificate),
        opts->identity_pem, strlen(opts->identity_pem), NULL);
    if (rc == 0) return 0;
    if (rc == LIBSSH2_ERROR_FILE)
      return qvm_error_set(err, QVM_EINVAL, "the session key or its certificate is unusable");
    if (rc != LIBSSH2_ERROR_EAGAIN) return auth_error(ssh, opts, "a certificate", err);
    int r = ssh_wait_socket(ssh, deadline, "waiting for ssh authentication", err);
    if (r < 0) return qvm_error_prefix(err, "vm '%s'", ssh_host_alias(opts));
  }
}

/* Version 1 and 2 callers (a shorter struct: no identity_pem and
 * certificate, no fd) are accepted. */
int ssh_options_copy(qvm_ssh_options *o, const qvm_ssh_options *opts, qvm_error **err) {
  if (opts && (opts->version == 1 || opts->version == 2)) {
    memset(o, 0, sizeof *o);
    memcpy(o, opts,
           opts->version == 1 ? offsetof(qvm_ssh_options, identity_pem)
                              : offsetof(qvm_ssh_options, fd));
    o->fd = -1;
  } else {
    int rc = QVM_OPTIONS_CHECK(opts, qvm_ssh_options, QVM_SSH_OPTIONS_VERSION, err);
    if (rc < 0) return rc;
    if (!opts) return qvm_error_set(err, QVM_EINVAL, "ssh options are missing");
    *o = *opts;
  }
  if (!o->identity_pem != !o->certificate)
    return qvm_error_set(err, QVM_EINVAL,
                         "a certificate login needs both the key and the certificate");
  return 0;
}

int qvm_ssh_connect(qvm_ssh **out, const qvm_ssh_options *opts, qvm_error **err) {
  qvm_ssh_options o;
  int rc = ssh_options_copy(&o, opts, err);
  if (rc < 0) return rc;
  _cleanup_close_ int adopted = o.fd;
  if (!o.host || !o.known_hosts)
    return qvm_error_set(err, QVM_EINVAL, "ssh connect needs a host and a known_hosts file");
  if (!o.identity && !o.use_agent && !o.certificate)
    return qvm_error_set(err, QVM_EINVAL,
                         "ssh connect needs a key file, a certificate or the agent");
  if (o.identity) {
    /* libssh2 says only "unable to read" for an encrypted or unsupported
     * key; qvm's own loader says which, before any connection is made. */
    _cleanup_(qvm_ssh_key_freep) qvm_ssh_key *key = NULL;
    int lr = qvm_ssh_key_load(&key, o.identity, err);
    if (lr < 0) return lr;
  }
  if (o.port <= 0) o.port = 22;
  if (!o.user) o.user = "root";
  if (o.timeout_ms == 0) o.timeout_ms = 30000;
  _cleanup_(qvm_ssh_freep) qvm_ssh *ssh = calloc(1, sizeof(*ssh));
  if (!ssh) return qvm_error_set(err, QVM_ESYS, "out of memory");
  ssh->fd = TAKE_FD(adopted);
  if (ssh->fd >= 0) {
    int one = 1;
    setsockopt(ssh->fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
  }
  ssh->vm_name = strdup(ssh_host_alias(&o));
  if (!ssh->vm_name) return qvm_error_set(err, QVM_ESYS, "out of memory");
  int64_t deadline = ssh_deadline(o.timeout_ms);
  int r = tcp_and_handshake(ssh, &o, deadline, err);
  if (r >= 0) r = ssh_check_host_key(ssh, &o, err);
  if (r >= 0 && o.certificate) {
    /* With a key file too: it is for a server that takes no certificate
     * (one that refuses it is asked again with the key, on the same
     * connection). */
    qvm_error *cert_err = NULL;
    r = auth_cert(ssh, &o, deadline, o.identity ? &cert_err : err);
    if (r < 0 && o.identity && r == QVM_EAUTH) {
      qvm_error_free(cert_err);
      r = auth_key_file(ssh, &o, deadline, err);
      if (r < 0) /* say both: a sandbox refuses the key by design */
        qvm_error_prefix(err,
                         "vm '%s' refused qvm's session certificate (is the guest's clock "
                         "far ahead of the host's?), then",
                         ssh_host_alias(&o));
    } else if (r < 0 && o.identity) {
      qvm_error_propagate(err, cert_err);
    }
  } else if (r >= 0 && o.identity)
    r = auth_key_file(ssh, &o, deadline, err);
  else if (r >= 0)
    r = auth_agent(ssh, &o, deadline, err);
  if (r < 0) return r;
  *out = TAKE_PTR(ssh);
  return 0;
}
