/* SPDX-License-Identifier: MIT */
/* qvmd: options, the listening sockets, signals. docs/qvmd.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "activation.h"
#include "auth.h"
#include "http.h"

#ifndef QVM_VERSION
#define QVM_VERSION "0"
#endif

typedef struct options {
  const char *socket_path; /* NULL: the runtime dir's qvmd.sock */
  bool no_socket;
  const char *listen; /* ADDR:PORT */
  const char *tokens;
  bool insecure;
  const char *socket_group; /* GROUP[:read] */
  const char *tls_cert, *tls_key;
  unsigned timeout_s, max_connections, rate, max_work;
  const char *web_dir; /* NULL: the installed one */
} options;

static void usage(FILE *f) {
  fprintf(f, "usage: qvmd [OPTIONS]\n"
             "The qvm REST API (docs/qvmd.md) on a UNIX socket and, optionally, on TCP.\n"
             "  --socket PATH          the UNIX socket (default: $QVM_RUNTIME_DIR, else\n"
             "                         $XDG_RUNTIME_DIR/qvm, else /run/qvm as root: qvmd.sock);\n"
             "                         env QVM_QVMD_SOCKET\n"
             "  --no-socket            no UNIX socket (TCP only)\n"
             "  --socket-group GROUP[:read]\n"
             "                         let GROUP's members use the UNIX socket (made 0660, that\n"
             "                         group's), with full access or, with ':read', read-only;\n"
             "                         env QVM_QVMD_SOCKET_GROUP\n"
             "  --listen ADDR:PORT     also serve TCP on an IPv4 address (bearer tokens);\n"
             "                         env QVM_QVMD_LISTEN, or VM_PROVISIONER_PORT (127.0.0.1)\n"
             "  --tokens FILE          bearer tokens for TCP, one 'SECRET SCOPE' a line (scope:\n"
             "                         read, full or agent:ID); the file must be 0600 and\n"
             "                         qvmd's user's; env QVM_QVMD_TOKENS\n"
             "  --tls-cert FILE        serve TCP over TLS (1.2, 1.3) with this PEM certificate\n"
             "                         chain; env QVM_QVMD_TLS_CERT\n"
             "  --tls-key FILE         its PEM private key (0600 or stricter, qvmd's user's or\n"
             "                         root's); env QVM_QVMD_TLS_KEY\n"
             "  --insecure             allow TCP beyond loopback without TLS (tokens then cross\n"
             "                         the network in clear text)\n"
             "  --timeout SECONDS      idle connection, header and body timeout (default 30)\n"
             "  --max-connections N    per listener (default 256; on TCP a quarter of them\n"
             "                         per client address)\n"
             "  --rate-limit N         requests a second per token, as a burst too (default 20;\n"
             "                         0: none)\n"
             "  --max-work N           blocking operations at once, then 503 (default 16)\n"
             "  --web-dir DIR          the review page's files, served at / and /ui/\n"
             "                         (default " QVMD_WEB_DIR ")\n"
             "  --routes               print the route table (METHOD PATH) and exit\n"
             "  --version, --help\n");
}

static int parse_uint(unsigned *out, const char *what, const char *text, unsigned min,
                      unsigned max) {
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  if (errno || end == text || *end || text[0] == '-' || v < min || v > max) {
    fprintf(stderr, "qvmd: %s must be a number from %u to %u, not '%s'\n", what, min, max, text);
    return -1;
  }
  *out = (unsigned)v;
  return 0;
}

static int parse_args(options *o, int argc, char **argv) {
  static const struct option longopts[] = {{"socket", 1, 0, 's'},
                                           {"no-socket", 0, 0, 'S'},
                                           {"listen", 1, 0, 'l'},
                                           {"tokens", 1, 0, 't'},
                                           {"insecure", 0, 0, 'I'},
                                           {"socket-group", 1, 0, 'g'},
                                           {"tls-cert", 1, 0, 'C'},
                                           {"tls-key", 1, 0, 'K'},
                                           {"timeout", 1, 0, 'T'},
                                           {"max-connections", 1, 0, 'c'},
                                           {"rate-limit", 1, 0, 'r'},
                                           {"max-work", 1, 0, 'w'},
                                           {"routes", 0, 0, 'R'},
                                           {"version", 0, 0, 'V'},
                                           {"help", 0, 0, 'h'},
                                           {"web-dir", 1, 0, 'W'},
                                           {0, 0, 0, 0}};
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    int r = 0;
    switch (c) {
    case 's': o->socket_path = optarg; break;
    case 'S': o->no_socket = true; break;
    case 'l': o->listen = optarg; break;
    case 't': o->tokens = optarg; break;
    case 'I': o->insecure = true; break;
    case 'g': o->socket_group = optarg; break;
    case 'C': o->tls_cert = optarg; break;
    case 'K': o->tls_key = optarg; break;
    case 'T': r = parse_uint(&o->timeout_s, "--timeout", optarg, 1, 3600); break;
    case 'c': r = parse_uint(&o->max_connections, "--max-connections", optarg, 1, 65536); break;
    case 'r': r = parse_uint(&o->rate, "--rate-limit", optarg, 0, 1000000); break;
    case 'w': r = parse_uint(&o->max_work, "--max-work", optarg, 1, 1024); break;
    case 'W': o->web_dir = optarg; break;
    case 'R':
      for (size_t i = 0; i < qvmd_n_routes; i++)
        if (!(qvmd_routes[i].flags & QVMD_ROUTE_UNLISTED))
          printf("%s %s\n", qvmd_routes[i].method, qvmd_routes[i].pattern);
      exit(0);
    case 'V': printf("qvmd %s\n", QVM_VERSION); exit(0);
    case 'h': usage(stdout); exit(0);
    case ':': fprintf(stderr, "qvmd: option '%s' needs a value\n", argv[optind - 1]); return -1;
    default:
      fprintf(stderr, "qvmd: unknown option '%s' (qvmd --help)\n", argv[optind - 1]);
      return -1;
    }
    if (r < 0) return -1;
  }
  if (optind < argc) {
    fprintf(stderr, "qvmd: unexpected argument '%s'\n", argv[optind]);
    return -1;
  }
  return 0;
}

static void env_defaults(options *o) {
  static char listen_buf[32];
  if (!o->socket_path) o->socket_path = getenv("QVM_QVMD_SOCKET");
  if (!o->tokens) o->tokens = getenv("QVM_QVMD_TOKENS");
  if (!o->listen) o->listen = getenv("QVM_QVMD_LISTEN");
  if (!o->socket_group) o->socket_group = getenv("QVM_QVMD_SOCKET_GROUP");
  if (!o->tls_cert) o->tls_cert = getenv("QVM_QVMD_TLS_CERT");
  if (!o->tls_key) o->tls_key = getenv("QVM_QVMD_TLS_KEY");
  const char *port = getenv("VM_PROVISIONER_PORT");
  if (!o->listen && port && *port && strlen(port) < 8) {
    snprintf(listen_buf, sizeof listen_buf, "127.0.0.1:%s", port);
    o->listen = listen_buf;
  }
}

/* A socket group's members need to reach the socket: its dir must let
 * them search it (x for the group when it is that group's, else for
 * others). Only a warning: an ACL or a dir further up may be the plan. */
static void group_dir_warning(const char *path, gid_t group) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  struct stat st;
  if (stat(dir, &st) < 0) return;
  bool ok = (st.st_gid == group && (st.st_mode & S_IXGRP)) || (st.st_mode & S_IXOTH);
  if (!ok)
    fprintf(stderr,
            "qvmd: warning: the socket group's members cannot reach '%s': its dir '%s' (mode "
            "%04o) does not let them search it; use a --socket in a dir they may enter\n",
            path, dir, (unsigned)(st.st_mode & 07777));
}

/* GROUP or GROUP:read into the UNIX listener. */
static int parse_group(qvmd_listener *l, const char *text) {
  char name[256];
  const char *colon = strchr(text, ':');
  size_t n = colon ? (size_t)(colon - text) : strlen(text);
  l->group_scope = QVMD_SCOPE_FULL;
  if (colon && strcmp(colon + 1, "read") == 0)
    l->group_scope = QVMD_SCOPE_READ;
  else if (colon && strcmp(colon + 1, "full") != 0)
    n = 0;
  if (n == 0 || n >= sizeof name) {
    fprintf(stderr, "qvmd: --socket-group takes GROUP, GROUP:read or GROUP:full, not '%s'\n", text);
    return -1;
  }
  memcpy(name, text, n);
  name[n] = '\0';
  struct group gr, *res = NULL;
  char buf[16384];
  char *end = NULL;
  unsigned long gid = strtoul(name, &end, 10);
  if (getgrnam_r(name, &gr, buf, sizeof buf, &res) == 0 && res) {
    l->group = res->gr_gid;
  } else if (end != name && !*end && gid < (unsigned long)(gid_t)-1) {
    l->group = (gid_t)gid;
  } else {
    fprintf(stderr, "qvmd: --socket-group: no group '%s'\n", name);
    return -1;
  }
  if (l->group == 0) {
    fprintf(stderr, "qvmd: --socket-group: not group 0 (root's): name a group made for qvmd\n");
    return -1;
  }
  l->group_set = true;
  return 0;
}

/* A PEM file for TLS into *out (NUL-terminated, at most 64 KiB). A key
 * must be a regular file of qvmd's user (or root) that nobody else may
 * read. */
static int read_pem(char **out, const char *path, bool secret) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    fprintf(stderr, "qvmd: cannot open '%s': %s\n", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  const char *why = NULL;
  if (!S_ISREG(st.st_mode))
    why = "is not a regular file";
  else if (st.st_size <= 0 || st.st_size > (64 << 10))
    why = "is empty or over 64 KiB";
  else if (secret && st.st_uid != geteuid() && st.st_uid != 0)
    why = "is not qvmd's user's";
  else if (secret && (st.st_mode & 077))
    why = "may be read by others (chmod 600 it)";
  char *buf = why ? NULL : calloc(1, (size_t)st.st_size + 1);
  if (!why && !buf) why = "cannot be read: out of memory";
  if (!why && read(fd, buf, (size_t)st.st_size) != st.st_size) why = "cannot be read whole";
  close(fd);
  if (why) {
    fprintf(stderr, "qvmd: the TLS %s '%s' %s\n", secret ? "key" : "certificate", path, why);
    if (buf) sodium_memzero(buf, (size_t)st.st_size);
    free(buf);
    return -1;
  }
  *out = buf;
  return 0;
}

/* The default socket path, as libqvm picks the runtime dir. */
static int default_socket(char *out, size_t size) {
  const char *dir = getenv("QVM_RUNTIME_DIR");
  char buf[PATH_MAX];
  if (!dir || !*dir) {
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg) {
      snprintf(buf, sizeof buf, "%s/qvm", xdg);
      dir = buf;
    } else if (geteuid() == 0) {
      dir = "/run/qvm";
    } else {
      fprintf(stderr, "qvmd: no runtime dir: set QVM_RUNTIME_DIR or XDG_RUNTIME_DIR, or give "
                      "--socket PATH\n");
      return -1;
    }
  }
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    fprintf(stderr, "qvmd: cannot make the runtime dir '%s': %s\n", dir, strerror(errno));
    return -1;
  }
  if ((size_t)snprintf(out, size, "%s/qvmd.sock", dir) >= size) {
    fprintf(stderr, "qvmd: the runtime dir '%s' is too long for a socket path\n", dir);
    return -1;
  }
  return 0;
}

/* A socket at path that nothing answers on is stale: removed. One that
 * answers is another qvmd: refused. Anything else there: refused. */
static int clear_stale(const char *path, const struct sockaddr_un *sa) {
  struct stat st;
  if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISSOCK(st.st_mode)) {
    fprintf(stderr, "qvmd: '%s' exists and is not a socket; not replacing it\n", path);
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int r = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
  int e = errno;
  close(fd);
  if (r == 0) {
    fprintf(stderr, "qvmd: another qvmd answers on '%s'\n", path);
    return -1;
  }
  if (e != ECONNREFUSED) {
    fprintf(stderr, "qvmd: cannot tell whether '%s' is in use: %s\n", path, strerror(e));
    return -1;
  }
  if (unlink(path) < 0 && errno != ENOENT) {
    fprintf(stderr, "qvmd: cannot remove the stale socket '%s': %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}

static int listen_unix(const char *path, const qvmd_listener *l, ino_t *out_ino) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    fprintf(stderr, "qvmd: the socket path '%s' is over %zu bytes\n", path, sizeof sa.sun_path - 1);
    return -1;
  }
  strcpy(sa.sun_path, path);
  if (clear_stale(path, &sa) < 0) return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  mode_t want = l->group_set ? 0660 : 0600;
  mode_t old = umask(07777 & ~want);
  int r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  /* The mode from the umask at bind: no chmod by path afterwards, which
   * would follow a symlink swapped in meanwhile (a root qvmd would make any
   * file 0600); lchown for the group (a swapped-in symlink would be changed
   * itself, not what it points at); lstat, so a swapped path is seen as
   * what it is */
  /* The backlog as deep as the kernel allows: on a UNIX socket a full
   * backlog fails a non-blocking connect at once (EAGAIN) instead of making
   * it wait, so a burst of clients while qvmd starts threads for earlier
   * ones would be refused (seen with 128, 200 clients, under ASan). */
  struct stat st;
  if (r < 0 || listen(fd, SOMAXCONN) < 0 ||
      (l->group_set && lchown(path, (uid_t)-1, l->group) < 0) || lstat(path, &st) < 0) {
    fprintf(stderr, "qvmd: cannot listen on '%s': %s\n", path, strerror(errno));
    if (fd >= 0) close(fd);
    if (r == 0) unlink(path);
    return -1;
  }
  if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != want ||
      (l->group_set && st.st_gid != l->group)) {
    fprintf(stderr, "qvmd: '%s' is not the %04o socket qvmd made: it changed meanwhile\n", path,
            (unsigned)want);
    close(fd);
    return -1;
  }
  if (l->group_set) group_dir_warning(path, l->group);
  *out_ino = st.st_ino;
  return fd;
}

/* TCP needs tokens, and TLS or --insecure beyond loopback. */
static bool tcp_refused_addr(const options *o, const struct sockaddr_in *sa, const char *shown) {
  bool loopback = (ntohl(sa->sin_addr.s_addr) >> 24) == 127;
  if (!loopback && !o->insecure && !o->tls_cert) {
    fprintf(stderr,
            "qvmd: '%s' is beyond loopback without TLS: bearer tokens would cross the network "
            "in clear text; give --tls-cert and --tls-key, or --insecure to do it anyway\n",
            shown);
    return true;
  }
  if (!o->tokens) {
    fprintf(stderr, "qvmd: TCP needs --tokens FILE (TCP callers authenticate with tokens)\n");
    return true;
  }
  return false;
}

static bool tcp_refused(const options *o, int fd) {
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  char shown[INET_ADDRSTRLEN + 8] = "?";
  if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) return true;
  inet_ntop(AF_INET, &sa.sin_addr, shown, sizeof shown);
  snprintf(shown + strlen(shown), sizeof shown - strlen(shown), ":%u", ntohs(sa.sin_port));
  return tcp_refused_addr(o, &sa, shown);
}

static int listen_tcp(const options *o) {
  char host[64];
  const char *colon = strrchr(o->listen, ':');
  unsigned port = 0;
  struct sockaddr_in sa = {.sin_family = AF_INET};
  if (!colon || (size_t)(colon - o->listen) >= sizeof host) {
    fprintf(stderr, "qvmd: --listen takes ADDR:PORT (IPv4), not '%s'\n", o->listen);
    return -1;
  }
  memcpy(host, o->listen, (size_t)(colon - o->listen));
  host[colon - o->listen] = '\0';
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
      parse_uint(&port, "the --listen port", colon + 1, 1, 65535) < 0) {
    fprintf(stderr, "qvmd: --listen takes ADDR:PORT (IPv4), not '%s'\n", o->listen);
    return -1;
  }
  sa.sin_port = htons((uint16_t)port);
  if (tcp_refused_addr(o, &sa, o->listen)) return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, SOMAXCONN) < 0) {
    fprintf(stderr, "qvmd: cannot listen on '%s': %s\n", o->listen, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

/* The TLS certificate and key, as read at start (the key is wiped at exit);
 * static, as libmicrohttpd keeps pointers to them. */
static char *cert, *key;

static int stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig) {
  int saved = errno;
  unsigned char b = (unsigned char)sig;
  if (write(stop_pipe[1], &b, 1) < 0) {
    /* full: a stop is already pending */
  }
  errno = saved;
}

int main(int argc, char **argv) {
  options o = {.timeout_s = 30, .max_connections = 256, .rate = 20, .max_work = 16};
  if (parse_args(&o, argc, argv) < 0) return 2;
  env_defaults(&o);
  umask(077);
  signal(SIGPIPE, SIG_IGN);
  /* Two malloc arenas rather than one per connection thread (up to 8 per
   * core), each keeping its pages after the burst that made it; and what a
   * burst freed goes back to the kernel once qvmd is idle (the poll below).
   * docs/qvmd.md, "Speed and memory". */
  mallopt(M_ARENA_MAX, 2);
  /* A handler and a pipe rather than a blocked mask: threads inherit a
   * mask, and so would every program libqvm runs from them (qemu-img). */
  if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
    fprintf(stderr, "qvmd: pipe: %s\n", strerror(errno));
    return 1;
  }
  struct sigaction sa = {.sa_handler = on_stop_signal, .sa_flags = SA_RESTART};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);

  char msg[512], sock_buf[PATH_MAX];
  qvmd_tokens_set_rate(o.rate);
  if (o.tokens && qvmd_tokens_load(o.tokens, msg, sizeof msg) < 0) {
    fprintf(stderr, "qvmd: %s\n", msg);
    return 1;
  }
  static qvmd_listener unix_l = {.tcp = false}, tcp_l = {.tcp = true};
  if (o.socket_group && parse_group(&unix_l, o.socket_group) < 0) return 2;
  if (!o.tls_cert != !o.tls_key) {
    fprintf(stderr, "qvmd: --tls-cert and --tls-key go together\n");
    return 2;
  }
  if (o.tls_cert &&
      (read_pem(&cert, o.tls_cert, false) < 0 || read_pem(&key, o.tls_key, true) < 0)) {
    return 1;
  }
  tcp_l.tls_cert = cert;
  tcp_l.tls_key = key;
  qvmd_http_set_work_max((int)o.max_work);
  if (o.web_dir) {
    struct stat wst;
    if (stat(o.web_dir, &wst) < 0 || !S_ISDIR(wst.st_mode)) {
      fprintf(stderr, "qvmd: --web-dir '%s' is not a directory\n", o.web_dir);
      return 2;
    }
    qvmd_web_set_dir(o.web_dir);
  }
  qvmd_http_limits lim = {.timeout_s = o.timeout_s,
                          .max_connections = o.max_connections,
                          .max_connections_per_ip =
                              o.max_connections / 4 ? o.max_connections / 4 : 1};
  int ufd = -1, tfd = -1;
  ino_t ino = 0;
  const char *path = NULL; /* the socket qvmd made (and removes) */
  int activated = qvmd_activation_fds(&ufd, &tfd, msg, sizeof msg);
  if (activated < 0) {
    fprintf(stderr, "qvmd: %s\n", msg);
    return 1;
  }
  if (activated > 0) {
    if (tfd >= 0 && tcp_refused(&o, tfd)) return 1;
  } else {
    if (o.no_socket && !o.listen) {
      fprintf(stderr, "qvmd: --no-socket needs --listen\n");
      return 2;
    }
    if (!o.no_socket) {
      path = o.socket_path;
      if (!path) {
        if (default_socket(sock_buf, sizeof sock_buf) < 0) return 1;
        path = sock_buf;
      }
      if ((ufd = listen_unix(path, &unix_l, &ino)) < 0) return 1;
    }
    if (o.listen && (tfd = listen_tcp(&o)) < 0) {
      if (path) unlink(path);
      return 1;
    }
  }
  /* Before serving: what a qvmd that is gone left running is settled. */
  if (qvmd_ops_init(msg, sizeof msg) < 0)
    fprintf(stderr, "qvmd: operations are not available: %s\n", msg);
  struct MHD_Daemon *ud = ufd >= 0 ? qvmd_http_start(&unix_l, ufd, &lim) : NULL;
  struct MHD_Daemon *td = tfd >= 0 ? qvmd_http_start(&tcp_l, tfd, &lim) : NULL;
  if ((ufd >= 0 && !ud) || (tfd >= 0 && !td)) {
    fprintf(stderr, "qvmd: libmicrohttpd did not start\n");
    if (ud) MHD_stop_daemon(ud);
    if (td) MHD_stop_daemon(td);
    if (path) unlink(path);
    return 1;
  }
  fprintf(stderr, "qvmd: serving%s%s%s%s%s%s\n", activated ? " on systemd's sockets" : "",
          path ? " on " : "", path ? path : "", o.listen && !activated ? " and on " : "",
          o.listen && !activated ? o.listen : "", td && cert ? " (TLS)" : "");
  unsigned char sig = 0;
  struct pollfd pfd = {.fd = stop_pipe[0], .events = POLLIN};
  for (;;) {
    int n = poll(&pfd, 1, 2000);
    if (n > 0 || (n < 0 && errno != EINTR)) break;
    if (n == 0) malloc_trim(0);
  }
  if (read(stop_pipe[0], &sig, 1) != 1) sig = 0;
  fprintf(stderr, "qvmd: signal %u, stopping\n", (unsigned)sig);
  qvmd_ops_stop();
  if (td) MHD_stop_daemon(td);
  if (ud) MHD_stop_daemon(ud);
  struct stat st;
  /* Removed only if it is still ours (not another qvmd's that replaced it). */
  if (path && stat(path, &st) == 0 && st.st_ino == ino) unlink(path);
  if (key) sodium_memzero(key, strlen(key));
  free(key);
  free(cert);
  return 0;
}
