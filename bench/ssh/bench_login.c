/* SPDX-License-Identifier: MIT */
/*
 * The cost of a sandbox login with a session certificate (issue 14), beside
 * a login with a static key, on one loopback sshd in the same run, and the
 * same two logins by OpenSSH's own client:
 *   qvm key    qvm_ssh_connect with the key file (what a plain VM does)
 *   qvm cert   a fresh ECDSA key, a session-CA certificate for it (CA store
 *              lock, serial, audit record), then qvm_ssh_connect with both:
 *              what every exec/ssh/cp into a sandbox does
 *   ssh key    `ssh -i KEY true`, a new process and connection each time
 *   ssh cert   `ssh -i CERTKEY true` (CERTKEY-cert.pub beside it, from
 *              `qvm cert issue`), the same
 * and the credential step alone (key + certificate, no connection). Medians
 * and p99 of N runs (default 100), interleaved; ratios of the medians.
 * Nothing asserted. Needs root (sshd).
 *
 *   build/bench/ssh/bench_login [N]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <qvm/cert.h>
#include <qvm/ssh.h>

#include "ssh/session_key.h"
#include "ssh_server.h"
#include "testlib.h"
#include "util/time.h"
#include "vm/ca_guest.h"

#define VM "benchsb"

static char dir[4096], key[4200], certkey[4200], kh[4200], kh_opt[4300], port[16];
static test_server server;

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double report(const char *what, int64_t *us, int n) {
  qsort(us, (size_t)n, sizeof(*us), cmp_i64);
  double p50 = us[n / 2] / 1000.0, p99 = us[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0;
  printf("  %-34s n=%-4d p50 %8.2f ms   p99 %8.2f ms\n", what, n, p50, p99);
  return p50;
}

static int run_ssh(const char *identity) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    execlp("ssh", "ssh", "-F", "/dev/null", "-i", identity, "-o", "IdentitiesOnly=yes", "-o",
           "BatchMode=yes", "-o", kh_opt, "-o", "StrictHostKeyChecking=yes", "-o",
           "HostKeyAlias=" VM, "-p", port, "root@127.0.0.1", "true", (char *)NULL);
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static qvm_ssh_options base_options(void) {
  qvm_ssh_options o = QVM_SSH_OPTIONS_INIT;
  o.host = "127.0.0.1";
  o.port = server.port;
  o.vm_name = VM;
  o.known_hosts = kh;
  return o;
}

/* What qvm_vm_ssh_target does for a sandbox: key, certificate. */
static int credentials(ssh_session_key *k, char **line, qvm_cert_ca *ca) {
  return ssh_session_key_generate(k, NULL) < 0 ||
                 vm_ca_session_issue(line, ca, k->q, VM, VM, "127.0.0.1", VM_CA_SESSION_TTL_S,
                                     NULL) < 0
             ? -1
             : 0;
}

static int login_key(void) {
  qvm_ssh_options o = base_options();
  o.identity = key;
  qvm_ssh *ssh = NULL;
  int r = qvm_ssh_connect(&ssh, &o, NULL);
  qvm_ssh_free(ssh);
  return r;
}

static int login_cert(qvm_cert_ca *ca) {
  ssh_session_key k = {0};
  char *line = NULL;
  qvm_ssh *ssh = NULL;
  int r = credentials(&k, &line, ca);
  if (r == 0) {
    qvm_ssh_options o = base_options();
    o.identity_pem = k.pem;
    o.certificate = line;
    r = qvm_ssh_connect(&ssh, &o, NULL);
  }
  qvm_ssh_free(ssh);
  ssh_session_key_clear(&k);
  free(line);
  return r;
}

static int setup(qvm_cert_ca **ca) {
  char host[4200], cfg_path[4300], *auth = NULL, *config = NULL;
  qvm_ssh_key *ck = NULL, *hk = NULL;
  snprintf(key, sizeof key, "%s/id_ed25519", dir);
  snprintf(certkey, sizeof certkey, "%s/agent", dir);
  snprintf(kh, sizeof kh, "%s/known_hosts", dir);
  snprintf(host, sizeof host, "%s/host_key", dir);
  snprintf(kh_opt, sizeof kh_opt, "UserKnownHostsFile=%s", kh);
  snprintf(cfg_path, sizeof cfg_path, "%s/state", dir);
  setenv("QVM_STATE_DIR", cfg_path, 1);
  snprintf(cfg_path, sizeof cfg_path, "%s/run", dir);
  setenv("QVM_RUNTIME_DIR", cfg_path, 1);
  int r = qvm_cert_ca_open(ca, NULL, NULL);
  /* sshd trusts the user CA (for ssh cert) and the session CA, as a sandbox does */
  if (r >= 0 && asprintf(&config,
                         "TrustedUserCAKeys %s/state/ca/trusted.pub\n"
                         "AuthorizedPrincipalsFile %s/principals/%%u\n",
                         dir, dir) < 0)
    r = -1;
  /* as a sandbox's guest lists them: the user (qvm cert issue) and its session principal */
  if (r >= 0 && qvm_test_sh("mkdir -p '%s/principals' && printf 'root\\nqvm-session:" VM
                            "\\n' > '%s/principals/root'",
                            dir, dir) != 0)
    r = -1;
  if (r >= 0 && qvm_test_sh("cat '%s/state/ca/user_ca.pub' '%s/state/ca/session_ca.pub' > "
                            "'%s/state/ca/trusted.pub'",
                            dir, dir, dir) != 0)
    r = -1;
  if (r < 0 || qvm_ssh_key_generate(&ck, "bench", NULL) < 0 ||
      qvm_ssh_key_generate(&hk, "", NULL) < 0 || qvm_ssh_key_write(ck, key, NULL, NULL) < 0 ||
      qvm_ssh_key_write(hk, host, NULL, NULL) < 0 ||
      asprintf(&auth, "%s\n", qvm_ssh_key_public_line(ck)) < 0 ||
      test_sshd_start_config(&server, host, qvm_ssh_key_public_line(hk), auth, config) < 0 ||
      qvm_ssh_known_hosts_pin(kh, VM, qvm_ssh_key_public_line(hk), NULL) < 0)
    r = -1;
  /* the outside tool's certificate: qvm cert issue (for a VM that exists),
   * 10 minutes */
  if (r >= 0 && qvm_test_sh("set -e; : > '%s/kernel'; '%s/qvm' create " VM " --kernel '%s/kernel' "
                            ">/dev/null; '%s/qvm' cert issue " VM
                            " --principal root --ttl 10m -o '%s' >/dev/null",
                            dir, qvm_test_binary_dir(), dir, qvm_test_binary_dir(), certkey) != 0)
    r = -1;
  snprintf(port, sizeof port, "%d", server.port);
  qvm_ssh_key_free(ck);
  qvm_ssh_key_free(hk);
  free(auth);
  free(config);
  return r;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100;
  if (n < 1 || n > 100000) return fprintf(stderr, "bench_login: N must be 1 to 100000\n"), 2;
  char *tmp = qvm_test_mkdtemp("benchlogin");
  snprintf(dir, sizeof dir, "%s", tmp);
  qvm_cert_ca *ca = NULL;
  if (setup(&ca) < 0 || login_key() < 0 || login_cert(ca) < 0 || run_ssh(key) != 0 ||
      run_ssh(certkey) != 0) {
    fprintf(stderr, "bench_login: setup failed (a login did not work)\n");
    return 1;
  }
  int64_t *t[5];
  for (int i = 0; i < 5; i++) t[i] = calloc((size_t)n, sizeof(int64_t));
  for (int i = 0; i < n; i++) {
    int64_t s = qvm_now_us();
    if (login_key() < 0) return fprintf(stderr, "login with the key failed\n"), 1;
    t[0][i] = qvm_now_us() - s;
    s = qvm_now_us();
    if (login_cert(ca) < 0) return fprintf(stderr, "login with a certificate failed\n"), 1;
    t[1][i] = qvm_now_us() - s;
    s = qvm_now_us();
    if (run_ssh(key) != 0) return fprintf(stderr, "ssh with the key failed\n"), 1;
    t[2][i] = qvm_now_us() - s;
    s = qvm_now_us();
    if (run_ssh(certkey) != 0) return fprintf(stderr, "ssh with the certificate failed\n"), 1;
    t[3][i] = qvm_now_us() - s;
    ssh_session_key k = {0};
    char *line = NULL;
    s = qvm_now_us();
    if (credentials(&k, &line, ca) < 0) return fprintf(stderr, "credentials failed\n"), 1;
    t[4][i] = qvm_now_us() - s;
    ssh_session_key_clear(&k);
    free(line);
  }
  printf("login to a loopback sshd (connect, handshake, auth), %d runs interleaved:\n", n);
  double qk = report("qvm, static key", t[0], n);
  double qc = report("qvm, session certificate (all in)", t[1], n);
  double sk = report("OpenSSH ssh, key (+ exec true)", t[2], n);
  double sc = report("OpenSSH ssh, certificate (+ true)", t[3], n);
  double cr = report("credentials alone (key + cert)", t[4], n);
  printf("ratios of medians: qvm cert / qvm key %.2f; ssh cert / ssh key %.2f;\n"
         "  qvm cert / ssh cert %.2f; credentials / qvm cert login %.2f\n",
         qc / qk, sc / sk, qc / sc, cr / qc);
  for (int i = 0; i < 5; i++) free(t[i]);
  qvm_cert_ca_free(ca);
  test_server_stop(&server);
  qvm_test_rmtree(tmp);
  free(tmp);
  return 0;
}
