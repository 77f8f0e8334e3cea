/* SPDX-License-Identifier: MIT */
/* qvm exec, ssh, ssh-config, cp, provision: everything inside a running guest. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <qvm/sandbox.h>
#include <qvm/snapshot.h>
#include <qvm/ssh.h>
#include <qvm/vm.h>

#include "commands.h"

/* qvm exec / qvm ssh: the remote status is qvm's, so qvm's own failures
 * (cannot connect, host key, auth) are 255 as with ssh(1), and a --timeout
 * that ran out is 124 as with timeout(1). */
enum { EXEC_EXIT_QVM = 255, EXEC_EXIT_TIMEOUT = 124 };

#define MAX_ENV 64
#define CONNECT_TIMEOUT_MS 30000

static bool wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
  }
  return false;
}

/* The index of the first "--" (argc if none). */
static int dashdash(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--")) return i;
  return argc;
}

/* --identity FILE / --agent, shared by exec, ssh, cp and provision. */
#define AUTH_LONGOPTS                                                                              \
  {"identity", 1, 0, 'i'}, { "agent", 0, 0, 'A' }
#define AUTH_HELP                                                                                  \
  "  --identity FILE  log in with your own private key (an unencrypted ed25519\n"                  \
  "                   key file) instead of the vm's\n"                                             \
  "  --agent          log in with the keys in ssh-agent ($SSH_AUTH_SOCK); for\n"                   \
  "                   encrypted or non-ed25519 keys: ssh-add them first\n"

/* 1 if c was an auth option (handled), 0 if not, or a usage exit code. */
static int auth_option(const char *verb, qvm_vm_ssh_options *so, int c) {
  if (c != 'i' && c != 'A') return 0;
  if (c == 'i') so->identity = optarg;
  if (c == 'A') so->use_agent = true;
  if (so->identity && so->use_agent)
    return qvm_cli_usage_error(verb, "give --identity or --agent, not both");
  return 1;
}

static const char *auth_hint(const qvm_vm_ssh_options *so) {
  static char hint[512];
  if (so->identity)
    snprintf(hint, sizeof hint,
             "the guest did not accept the key '%s': check that its public half is authorized "
             "for the user (qvm create --ssh-key FILE.pub) and the user (--user)",
             so->identity);
  else if (so->use_agent)
    snprintf(hint, sizeof hint,
             "the guest accepted none of ssh-agent's keys: check 'ssh-add -l' and that the "
             "key is authorized for the user (qvm create --ssh-key FILE.pub)");
  else
    return NULL;
  return hint;
}

static const char *hint_for(const qvm_error *err, const char *name) {
  static char hint[512];
  const char *cls = qvm_error_class(err);
  if (cls && !strcmp(cls, "HostKeyMismatch"))
    snprintf(hint, sizeof hint,
             "if the guest's host key really changed (a re-created or re-imaged guest), accept "
             "and pin the new one with 'qvm ssh %s --repin'",
             name);
  else if (cls && !strcmp(cls, "HostKeyUnknown"))
    snprintf(hint, sizeof hint, "pin the key the guest presents with 'qvm ssh %s --repin'", name);
  else if (cls && !strcmp(cls, "AuthFailed"))
    snprintf(hint, sizeof hint,
             "the guest did not accept the vm's key: check the user (--user) and that the "
             "image runs cloud-init ('qvm logs %s')",
             name);
  else if ((cls && !strcmp(cls, "ConnectionRefused")) || qvm_error_code(err) == QVM_ETIMEOUT)
    snprintf(hint, sizeof hint,
             "the guest's sshd did not answer: is it still booting? see 'qvm logs %s'", name);
  else if (qvm_error_code(err) == QVM_ENOTFOUND)
    return QVM_CLI_HINT_NO_VM;
  else
    return NULL;
  return hint;
}

static int open_and_connect(const char *verb, const char *name, const qvm_vm_ssh_options *so,
                            qvm_vm **out_vm, qvm_ssh **out_ssh, int *out_code) {
  qvm_error *err = NULL;
  if (qvm_cli_open(out_vm, name, &err) < 0 || qvm_vm_ssh_connect(out_ssh, *out_vm, so, &err) < 0) {
    const char *cls = qvm_error_class(err);
    const char *hint = cls && !strcmp(cls, "AuthFailed") && auth_hint(so) ? auth_hint(so)
                       : qvm_error_code(err) == QVM_EINVAL && (so->identity || so->use_agent)
                           ? NULL
                           : hint_for(err, name);
    *out_code = qvm_error_code(err);
    return qvm_cli_fail(verb, err, hint);
  }
  return 0;
}

static char *audit_path(qvm_vm *vm) {
  char *p = NULL;
  return asprintf(&p, "%s/%s", qvm_vm_dir(vm), QVM_VM_AUDIT_LOG) < 0 ? NULL : p;
}

static const struct {
  const char *name;
  int number;
} signals[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ILL", SIGILL},
               {"ABRT", SIGABRT}, {"FPE", SIGFPE},   {"KILL", SIGKILL}, {"SEGV", SIGSEGV},
               {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"USR1", SIGUSR1},
               {"USR2", SIGUSR2}, {"BUS", SIGBUS},   {"TRAP", SIGTRAP}, {"SYS", SIGSYS}};

/* The remote outcome as qvm's exit status: the code, or 128+N for signal N. */
static int remote_status(const char *verb, const char *name, const qvm_ssh_exec_result *res) {
  if (!res->signaled) return res->exit_code & 0xff;
  int n = 0;
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
    if (!strcmp(signals[i].name, res->signal)) n = signals[i].number;
  fprintf(stderr, "qvm %s: the command in vm '%s' was killed by signal %s%s\n", verb, name,
          res->signal, n ? "" : " (unknown number: exit 255)");
  return n ? 128 + n : EXEC_EXIT_QVM;
}

/* --- exec ---------------------------------------------------------------------- */

static const char exec_help[] =
    "usage: qvm exec NAME [OPTIONS] -- CMD [ARGS...]\n\n"
    "Runs CMD in the running vm over SSH (as the vm's user), with each ARG passed\n"
    "exactly as given (quoted for the remote shell). stdout and stderr stay\n"
    "separate and arrive live; stdin is forwarded when it is not a terminal.\n\n"
    "  --env K=V        set an environment variable for CMD; repeatable\n"
    "  --timeout S      stop CMD after S seconds (exit 124)\n"
    "  --user U         log in as U instead of the vm's user\n"
    "  --repin          accept and pin a changed guest host key\n"
    "  --checkpoint     take a checkpoint first (a snapshot, with RAM when the vm\n"
    "                   runs), so that 'qvm rollback NAME' undoes what CMD did; the\n"
    "                   last 5 are kept. A sandbox created with --checkpoint-each\n"
    "                   takes one before every command without it\n" AUTH_HELP "\n"
    "exit status: CMD's; 128+N if it was killed by signal N; 124 when --timeout\n"
    "ran out; 255 when qvm could not run it (no connection, host key, auth).\n";

typedef struct exec_args {
  const char *name;
  const char *env[MAX_ENV + 1];
  size_t n_env;
  int timeout_s;
  bool checkpoint;
  qvm_vm_ssh_options so;
  char **cmd;
  char **argv; /* for messages about options */
} exec_args;

static int parse_timeout(const char *verb, const char *s, int *out) {
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 1 || v > 86400 * 7)
    return qvm_cli_usage_error(verb, "timeout '%s' is invalid: use whole seconds from 1", s);
  *out = (int)v;
  return 0;
}

static int exec_option(exec_args *a, int c) {
  switch (c) {
  case 'e':
    if (a->n_env >= MAX_ENV) return qvm_cli_usage_error("exec", "too many --env");
    if (!strchr(optarg, '=') || optarg[0] == '=')
      return qvm_cli_usage_error("exec", "--env '%s' is not K=V", optarg);
    a->env[a->n_env++] = optarg;
    return 0;
  case 't': return parse_timeout("exec", optarg, &a->timeout_s);
  case 'u': a->so.user = optarg; return 0;
  case 'R': a->so.repin = true; return 0;
  case 'C': a->checkpoint = true; return 0;
  default: {
    int r = auth_option("exec", &a->so, c);
    return r == 1 ? 0 : r ? r : qvm_cli_bad_option("exec", c, a->argv);
  }
  }
}

static int exec_parse(exec_args *a, int argc, char **argv) {
  static const struct option longopts[] = {
      {"env", 1, 0, 'e'},        {"timeout", 1, 0, 't'}, {"user", 1, 0, 'u'}, {"repin", 0, 0, 'R'},
      {"checkpoint", 0, 0, 'C'}, AUTH_LONGOPTS,          {0, 0, 0, 0}};
  int dd = dashdash(argc, argv), c, r;
  a->argv = argv;
  /* With "--", options may come before or after NAME; without, CMD starts
   * at the first word after NAME (so its own options stay its own). */
  int n = dd < argc ? dd : argc;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(n, argv, dd < argc ? ":" : "+:", longopts)) != -1)
    if ((r = exec_option(a, c))) return r;
  if (optind >= n) return qvm_cli_usage_error("exec", "missing the vm name");
  a->name = argv[optind];
  if (dd < argc) {
    if (optind + 1 < n)
      return qvm_cli_usage_error("exec", "unexpected argument '%s' before '--'", argv[optind + 1]);
    a->cmd = argv + dd + 1;
  } else {
    a->cmd = argv + optind + 1;
  }
  if (!a->cmd[0]) return qvm_cli_usage_error("exec", "missing the command (after --)");
  return 0;
}

static int exec_run(int argc, char **argv) {
  bool help = argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
  if (help || (dashdash(argc, argv) < argc && wants_help(argc, argv)))
    return printf("%s", exec_help), QVM_EXIT_OK;
  exec_args a = {.so = QVM_VM_SSH_OPTIONS_INIT};
  int r = exec_parse(&a, argc, argv), code = 0;
  if (r) return r;
  qvm_vm *vm = NULL;
  qvm_ssh *ssh = NULL;
  a.so.timeout_ms = CONNECT_TIMEOUT_MS;
  if (open_and_connect("exec", a.name, &a.so, &vm, &ssh, &code)) {
    qvm_vm_free(vm);
    return EXEC_EXIT_QVM;
  }
  char *audit = audit_path(vm);
  qvm_ssh_exec_options eo = QVM_SSH_EXEC_OPTIONS_INIT;
  eo.argv = (const char *const *)a.cmd;
  eo.env = a.n_env ? a.env : NULL;
  eo.stdin_fd = isatty(STDIN_FILENO) ? -1 : STDIN_FILENO;
  eo.stdout_fd = STDOUT_FILENO;
  eo.stderr_fd = STDERR_FILENO;
  eo.timeout_ms = a.timeout_s ? a.timeout_s * 1000 : -1;
  eo.audit_log = audit;
  qvm_ssh_exec_result res = {0};
  qvm_error *err = NULL;
  char ckpt[QVM_VM_CHECKPOINT_NAME_MAX] = "";
  /* a sandbox made with --checkpoint-each takes one also without the flag */
  if (qvm_vm_exec_command(&res, ckpt, vm, ssh, &eo, a.checkpoint ? QVM_VM_EXEC_CHECKPOINT : 0,
                          &err) < 0) {
    bool timeout = qvm_error_code(err) == QVM_ETIMEOUT && a.timeout_s;
    const char *cls = qvm_error_class(err);
    bool no_ckpt = cls && !strcmp(cls, "CheckpointFailed");
    qvm_cli_fail("exec", err, no_ckpt ? "qvm snapshot ls NAME shows the checkpoints" : NULL);
    r = timeout ? EXEC_EXIT_TIMEOUT : EXEC_EXIT_QVM;
  } else {
    r = remote_status("exec", a.name, &res);
  }
  if (ckpt[0]) fprintf(stderr, "checkpoint %s (undo with: qvm rollback %s)\n", ckpt, a.name);
  free(audit);
  qvm_ssh_free(ssh);
  qvm_vm_free(vm);
  return r;
}

/* --- ssh ----------------------------------------------------------------------- */

static const char ssh_help[] =
    "usage: qvm ssh NAME [--print [--wait S]] [--repin] [--user U] [--identity FILE | --agent]\n"
    "               [-- CMD [ARGS...]]\n\n"
    "An interactive shell in the running vm (a PTY when stdin is a terminal), as the\n"
    "vm's user, with the host key qvm pinned. With CMD, runs it instead.\n\n"
    "  --print      print the equivalent OpenSSH command line (the vm's key, its\n"
    "               known_hosts, StrictHostKeyChecking=yes) instead\n"
    "  --wait S     with --print: wait up to S seconds for a bridged vm's address\n"
    "               (default 30; 0: answer now)\n"
    "  --repin      accept and pin the host key the guest presents now, when it\n"
    "               really changed (a re-created or re-imaged guest)\n"
    "  --user U     log in as U instead of the vm's user\n" AUTH_HELP "\n"
    "exit status: the remote shell's or CMD's; 255 when qvm could not connect.\n";

static volatile sig_atomic_t winch_write_fd = -1;

static void on_winch(int sig) {
  (void)sig;
  int saved = errno;
  if (winch_write_fd >= 0 && write(winch_write_fd, "w", 1) < 0) {
  }
  errno = saved;
}

static void term_size(void *ctx, int *cols, int *rows) {
  (void)ctx;
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row)
    *cols = ws.ws_col, *rows = ws.ws_row;
}

/* --wait S for an address: whole seconds from 0 to a day. */
static int parse_wait(const char *verb, const char *s, int *out_ms) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (!*s || *end || errno || v < 0 || v > 86400)
    return qvm_cli_usage_error(verb, "--wait '%s' is invalid: use seconds from 0 to 86400", s);
  *out_ms = (int)v * 1000;
  return 0;
}

static int ssh_print(const char *name, const qvm_vm_ssh_options *so, int wait_ms) {
  qvm_vm *vm = NULL;
  qvm_error *err = NULL;
  qvm_ssh_options o;
  char *cmd = NULL;
  int r = QVM_EXIT_OK;
  if (qvm_cli_open(&vm, name, &err) < 0 || qvm_vm_ssh_target(&o, vm, wait_ms, &err) < 0)
    r = qvm_cli_fail("ssh", err, hint_for(err, name));
  if (!r && so->user) o.user = so->user;
  if (!r && so->identity) o.identity = so->identity;
  if (!r && qvm_ssh_openssh_command(&cmd, &o, &err) < 0)
    r = qvm_cli_fail(
        "ssh", err,
        o.identity ? NULL : "the vm has no key of its own (--no-cloud-init): use your own ssh");
  else if (!r)
    printf("%s\n", cmd);
  free(cmd);
  qvm_vm_free(vm);
  return r;
}

/* Runs the shell (or argv) with the terminal in raw mode and SIGWINCH
 * forwarded. */
static int ssh_interactive(qvm_vm *vm, qvm_ssh *ssh, qvm_ssh_exec_options *eo,
                           qvm_ssh_exec_result *res, qvm_error **err) {
  struct termios saved, raw;
  int pipefd[2] = {-1, -1};
  bool tty = eo->pty && tcgetattr(STDIN_FILENO, &saved) == 0;
  if (tty && pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) == 0) {
    winch_write_fd = pipefd[1];
    struct sigaction sa = {.sa_handler = on_winch, .sa_flags = SA_RESTART};
    sigaction(SIGWINCH, &sa, NULL);
    eo->winch_fd = pipefd[0];
    eo->size_fn = term_size;
  }
  if (tty) {
    raw = saved;
    cfmakeraw(&raw);
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  }
  int r = qvm_vm_shell(res, vm, ssh, eo, err);
  if (tty) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  signal(SIGWINCH, SIG_DFL);
  winch_write_fd = -1;
  if (pipefd[0] >= 0) close(pipefd[0]), close(pipefd[1]);
  return r;
}

static int ssh_run(int argc, char **argv) {
  static const struct option longopts[] = {{"print", 0, 0, 'p'}, {"repin", 0, 0, 'R'},
                                           {"user", 1, 0, 'u'},  {"wait", 1, 0, 'w'},
                                           AUTH_LONGOPTS,        {0, 0, 0, 0}};
  if (wants_help(argc, argv)) return printf("%s", ssh_help), QVM_EXIT_OK;
  int dd = dashdash(argc, argv), c, code = 0, wait_ms = CONNECT_TIMEOUT_MS;
  bool print = false, wait_given = false;
  qvm_vm_ssh_options so = QVM_VM_SSH_OPTIONS_INIT;
  so.timeout_ms = CONNECT_TIMEOUT_MS;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(dd, argv, ":", longopts)) != -1) {
    int r = auth_option("ssh", &so, c);
    if (r > 1) return r;
    if (r == 1) continue;
    if (c == 'p')
      print = true;
    else if (c == 'R')
      so.repin = true;
    else if (c == 'u')
      so.user = optarg;
    else if (c == 'w') {
      if ((r = parse_wait("ssh", optarg, &wait_ms))) return r;
      wait_given = true;
    } else
      return qvm_cli_bad_option("ssh", c, argv);
  }
  if (optind >= dd) return qvm_cli_usage_error("ssh", "missing the vm name");
  if (optind + 1 < dd)
    return qvm_cli_usage_error("ssh", "unexpected argument '%s'", argv[optind + 1]);
  const char *name = argv[optind];
  char **cmd = dd < argc && argv[dd + 1] ? argv + dd + 1 : NULL;
  if (print && so.use_agent)
    return qvm_cli_usage_error("ssh", "--print shows a command with a key file: use --identity");
  if (wait_given && !print) return qvm_cli_usage_error("ssh", "--wait goes with --print");
  if (print) return ssh_print(name, &so, wait_ms);
  qvm_vm *vm = NULL;
  qvm_ssh *ssh = NULL;
  if (open_and_connect("ssh", name, &so, &vm, &ssh, &code)) {
    qvm_vm_free(vm);
    return EXEC_EXIT_QVM;
  }
  if (so.repin)
    fprintf(stderr, "vm '%s': host key %s is pinned\n", name, qvm_ssh_host_fingerprint(ssh));
  char *audit = audit_path(vm);
  qvm_ssh_exec_options eo = QVM_SSH_EXEC_OPTIONS_INIT;
  eo.pty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
  eo.argv = (const char *const *)cmd;
  /* No terminal and no command: the login shell reads stdin. */
  if (!eo.pty && !cmd) eo.command = "exec \"${SHELL:-/bin/sh}\" -l";
  eo.term = getenv("TERM");
  eo.cols = 80, eo.rows = 24;
  term_size(NULL, &eo.cols, &eo.rows);
  eo.stdin_fd = STDIN_FILENO;
  eo.stdout_fd = STDOUT_FILENO;
  eo.stderr_fd = STDERR_FILENO;
  eo.audit_log = audit;
  qvm_ssh_exec_result res = {0};
  qvm_error *err = NULL;
  int r = ssh_interactive(vm, ssh, &eo, &res, &err) < 0
              ? (qvm_cli_fail("ssh", err, NULL), EXEC_EXIT_QVM)
              : remote_status("ssh", name, &res);
  free(audit);
  qvm_ssh_free(ssh);
  qvm_vm_free(vm);
  return r;
}

/* --- ssh-config ------------------------------------------------------------------ */

static int config_one(const char *name, bool all, int wait_ms) {
  qvm_vm *vm = NULL;
  qvm_error *err = NULL;
  qvm_ssh_options o;
  char *text = NULL;
  int r = QVM_EXIT_OK;
  if (qvm_cli_open(&vm, name, &err) < 0)
    return qvm_cli_fail("ssh-config", err, hint_for(err, name));
  if (all && qvm_vm_get_state(vm) != QVM_VM_RUNNING) {
    printf("# %s: %s, not running\n\n", name, qvm_vm_state_name(qvm_vm_get_state(vm)));
  } else if (qvm_vm_ssh_target(&o, vm, wait_ms, &err) < 0 ||
             qvm_ssh_openssh_config(&text, name, &o, &err) < 0) {
    r = qvm_cli_fail("ssh-config", err, hint_for(err, name));
  } else {
    printf("%s\n", text);
  }
  free(text);
  qvm_vm_free(vm);
  return r;
}

static int ssh_config_run(int argc, char **argv) {
  static const struct option longopts[] = {{"wait", 1, 0, 'w'}, {0, 0, 0, 0}};
  if (wants_help(argc, argv))
    return printf("usage: qvm ssh-config [--wait S] [NAME...]\n\n"
                  "Prints an ssh_config stanza (Host NAME) for each running vm, or for the\n"
                  "named ones, with the vm's key, its known_hosts and strict host-key\n"
                  "checking, so plain OpenSSH works: ssh -F FILE NAME.\n\n"
                  "  --wait S   wait up to S seconds for each bridged vm's address\n"
                  "             (default 30; 0: answer now)\n"),
           QVM_EXIT_OK;
  int c, r = QVM_EXIT_OK, wait_ms = CONNECT_TIMEOUT_MS;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":", longopts)) != -1) {
    if (c != 'w') return qvm_cli_bad_option("ssh-config", c, argv);
    if ((r = parse_wait("ssh-config", optarg, &wait_ms))) return r;
  }
  if (optind < argc) {
    for (int i = optind; i < argc; i++) {
      int one = config_one(argv[i], false, wait_ms);
      if (one) r = one;
    }
    return r;
  }
  char **names = NULL;
  size_t n = 0;
  qvm_error *err = NULL;
  if (qvm_vm_list(&names, &n, &err) < 0) return qvm_cli_fail("ssh-config", err, NULL);
  for (size_t i = 0; i < n; i++) {
    int one = config_one(names[i], true, wait_ms);
    if (one) r = one;
  }
  qvm_vm_names_free(names, n);
  return r;
}

/* --- cp -------------------------------------------------------------------------- */

/* "NAME:PATH" with a valid vm name before the first ':'. */
static bool split_remote(const char *arg, char *name, size_t size, const char **path) {
  const char *colon = strchr(arg, ':');
  if (!colon || (size_t)(colon - arg) >= size) return false;
  memcpy(name, arg, (size_t)(colon - arg));
  name[colon - arg] = '\0';
  if (!qvm_vm_name_valid(name)) return false;
  *path = colon[1] ? colon + 1 : ".";
  return true;
}

static const char cp_help[] =
    "usage: qvm cp [-r] [--timeout S] [--max-bytes SIZE] [--max-files N]\n"
    "              [--identity FILE | --agent] SRC DST\n\n"
    "Copies files between the host and a running vm over SFTP; one side is\n"
    "NAME:PATH (a relative PATH is under the vm user's home). Modes and times\n"
    "are kept (a download never sets setuid, setgid or sticky, and applies\n"
    "your umask). If DST is an existing directory, SRC goes into it. A\n"
    "download never follows a symlink inside DST (only your own symlink\n"
    "that DST names), never enters another user's directory, and a file that\n"
    "fails midway is not left behind.\n\n"
    "  qvm cp ./app.tar.gz web:/tmp/      upload\n"
    "  qvm cp -r web:/var/log/nginx ./    download a directory\n\n"
    "  -r, --recursive  copy directories\n"
    "  --timeout S      stop the copy after S seconds (default: 3600 for a\n"
    "                   download, none for an upload; 0: never)\n"
    "  --max-bytes SIZE download at most SIZE of file data, e.g. 200G (default\n"
    "                   64G; 0: no cap)\n"
    "  --max-files N    download at most N directory entries (default 1000000;\n"
    "                   0: no cap)\n" AUTH_HELP;

/* Digits only: a sign, a space or a number past UINT64_MAX is not one. */
static bool parse_whole(const char *s, uint64_t *out) {
  if (!*s || s[strspn(s, "0123456789")]) return false;
  errno = 0;
  unsigned long long v = strtoull(s, NULL, 10);
  if (errno == ERANGE || v > UINT64_MAX) return false;
  *out = (uint64_t)v;
  return true;
}

/* A size as for --memory; zero in any spelling ("0", "00", "0G"): no cap. */
static int parse_max_bytes(uint64_t *out, const char *s) {
  qvm_error *err = NULL;
  size_t zeros = strspn(s, "0");
  char one[8];
  if (zeros && !(s[zeros] >= '0' && s[zeros] <= '9') && strlen(s + zeros) < sizeof one - 1) {
    snprintf(one, sizeof one, "1%s", s + zeros); /* the suffix must still be one */
    if (qvm_vm_size_parse(out, "max-bytes", one, NULL) == 0) {
      *out = UINT64_MAX;
      return 0;
    }
  }
  if (qvm_vm_size_parse(out, "max-bytes", s, &err) == 0) return 0;
  int r = qvm_cli_usage_error("cp", "%s", qvm_error_message(err));
  qvm_error_free(err);
  return r;
}

/* --timeout, --max-bytes, --max-files: 0 means no limit (UINT64_MAX for the
 * caps: 0 would be the library's default). */
static int cp_limit_option(qvm_ssh_copy_options *co, int c) {
  uint64_t v = 0;
  if (c == 't') {
    if (!parse_whole(optarg, &v) || v > 86400 * 7)
      return qvm_cli_usage_error("cp", "timeout '%s' is invalid: use whole seconds, 0 for none",
                                 optarg);
    co->timeout_ms = v ? (int)v * 1000 : -1;
  } else if (c == 'B') {
    return parse_max_bytes(&co->max_bytes, optarg);
  } else {
    if (!parse_whole(optarg, &v))
      return qvm_cli_usage_error(
          "cp", "max-files '%s' is invalid: use a whole number, 0 for no cap", optarg);
    co->max_files = v ? v : UINT64_MAX;
  }
  return 0;
}

static const char *cp_hint(const qvm_error *err) {
  const char *cls = qvm_error_class(err);
  if (cls && !strcmp(cls, "TooLarge"))
    return "if you expect that much data, raise the cap with --max-bytes SIZE (0: no cap)";
  if (cls && !strcmp(cls, "TooManyFiles"))
    return "if you expect that many files, raise the cap with --max-files N (0: no cap)";
  if (qvm_error_code(err) == QVM_ETIMEOUT)
    return "if the copy needs longer, give --timeout S (0: no limit)";
  if (qvm_error_code(err) == QVM_EEXISTS)
    return "a download never writes through a symlink that is not yours, into another "
           "user's directory, or over a directory or special file: remove it, or copy to a "
           "new path";
  return NULL;
}

static int cp_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"recursive", 0, 0, 'r'}, {"timeout", 1, 0, 't'}, {"max-bytes", 1, 0, 'B'},
      {"max-files", 1, 0, 'F'}, AUTH_LONGOPTS,          {0, 0, 0, 0}};
  if (wants_help(argc, argv)) return printf("%s", cp_help), QVM_EXIT_OK;
  qvm_ssh_copy_options co = QVM_SSH_COPY_OPTIONS_INIT;
  co.recursive = false;
  int c, code = 0;
  qvm_vm_ssh_options so = QVM_VM_SSH_OPTIONS_INIT;
  so.timeout_ms = CONNECT_TIMEOUT_MS;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":r", longopts)) != -1) {
    int a = auth_option("cp", &so, c);
    if (a > 1) return a;
    if (a == 1) continue;
    if (c == 't' || c == 'B' || c == 'F') {
      if ((a = cp_limit_option(&co, c))) return a;
      continue;
    }
    if (c != 'r') return qvm_cli_bad_option("cp", c, argv);
    co.recursive = true;
  }
  if (argc - optind != 2) return qvm_cli_usage_error("cp", "give exactly SRC and DST");
  const char *src = argv[optind], *dst = argv[optind + 1], *src_path = NULL, *dst_path = NULL;
  char src_vm[QVM_VM_NAME_MAX + 1], dst_vm[QVM_VM_NAME_MAX + 1];
  bool up_remote = split_remote(dst, dst_vm, sizeof dst_vm, &dst_path);
  bool down_remote = split_remote(src, src_vm, sizeof src_vm, &src_path);
  if (up_remote == down_remote)
    return qvm_cli_usage_error("cp", up_remote ? "both sides are in a vm: copy through the host"
                                               : "one side must be NAME:PATH");
  struct stat st;
  if (up_remote && stat(src, &st) == 0 && S_ISDIR(st.st_mode) && !co.recursive)
    return qvm_cli_usage_error("cp", "'%s' is a directory: give -r", src);
  const char *name = up_remote ? dst_vm : src_vm;
  qvm_vm *vm = NULL;
  qvm_ssh *ssh = NULL;
  int r = open_and_connect("cp", name, &so, &vm, &ssh, &code);
  if (r) {
    qvm_vm_free(vm);
    return r;
  }
  qvm_error *err = NULL;
  if ((up_remote ? qvm_vm_upload(vm, ssh, src, dst_path, &co, &err)
                 : qvm_vm_download(vm, ssh, src_path, dst, &co, &err)) < 0)
    r = qvm_cli_fail("cp", err, cp_hint(err));
  qvm_ssh_free(ssh);
  qvm_vm_free(vm);
  return r;
}

/* --- provision ------------------------------------------------------------------ */

static int provision_output(void *ctx, int stream, const void *data, size_t len) {
  (void)ctx;
  FILE *f = stream == QVM_SSH_STDERR ? stderr : stdout;
  fwrite(data, 1, len, f);
  fflush(f);
  return 0;
}

static int provision_run(int argc, char **argv) {
  static const struct option longopts[] = {AUTH_LONGOPTS, {0, 0, 0, 0}};
  if (wants_help(argc, argv))
    return printf("usage: qvm provision NAME [--identity FILE | --agent]\n\n"
                  "Runs the vm's provision steps (qvm create --provision) again, in order,\n"
                  "stopping at the first one that fails. Output is shown live and appended\n"
                  "to provision.log in the vm's directory.\n\n" AUTH_HELP),
           QVM_EXIT_OK;
  qvm_vm_ssh_options so = QVM_VM_SSH_OPTIONS_INIT;
  so.timeout_ms = CONNECT_TIMEOUT_MS;
  int c, code = 0;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":", longopts)) != -1) {
    int a = auth_option("provision", &so, c);
    if (a > 1) return a;
    if (a != 1) return qvm_cli_bad_option("provision", c, argv);
  }
  if (argc - optind < 1) return qvm_cli_usage_error("provision", "missing the vm name");
  if (argc - optind > 1)
    return qvm_cli_usage_error("provision", "unexpected argument '%s'", argv[optind + 1]);
  int first = optind;
  const char *name = argv[first];
  qvm_vm *vm = NULL;
  qvm_ssh *ssh = NULL;
  qvm_error *err = NULL;
  if (qvm_cli_open(&vm, name, &err) < 0) return qvm_cli_fail("provision", err, hint_for(err, name));
  if (!qvm_vm_provision_count(vm)) {
    fprintf(stderr, "vm '%s' has no provision steps\n", name);
    qvm_vm_free(vm);
    return QVM_EXIT_OK;
  }
  qvm_vm_free(vm);
  vm = NULL;
  int r = open_and_connect("provision", name, &so, &vm, &ssh, &code);
  size_t failed = 0;
  if (!r && qvm_vm_provision(&failed, vm, ssh, provision_output, NULL, &err) < 0) {
    char hint[256];
    snprintf(hint, sizeof hint,
             "fix step %zu, then run 'qvm provision %s' again (output is in %s/%s)", failed, name,
             qvm_vm_dir(vm), QVM_VM_PROVISION_LOG);
    r = qvm_cli_fail("provision", err, failed ? hint : NULL);
  }
  qvm_ssh_free(ssh);
  qvm_vm_free(vm);
  return r;
}

const struct qvm_command qvm_cmd_exec = {"exec", "run a command in a vm", exec_run};
const struct qvm_command qvm_cmd_ssh = {"ssh", "open a shell in a vm", ssh_run};
const struct qvm_command qvm_cmd_ssh_config = {"ssh-config", "print ssh_config stanzas for vms",
                                               ssh_config_run};
const struct qvm_command qvm_cmd_cp = {"cp", "copy files to or from a vm", cp_run};
const struct qvm_command qvm_cmd_provision = {"provision", "run a vm's provision steps again",
                                              provision_run};
