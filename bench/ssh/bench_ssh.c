/* SPDX-License-Identifier: MIT */
/*
 * qvm's SSH client against OpenSSH's own client, on one loopback sshd in the
 * same run: exec latency of `true` (qvm reusing its session; ssh with a fresh
 * connection each time; ssh through a ControlMaster) and SFTP throughput of a
 * 256 MiB file both ways (qvm, OpenSSH sftp, scp). Needs root (sshd).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <qvm/ssh.h>

#include "ssh/ssh_internal.h"
#include "ssh_server.h"
#include "testlib.h"
#include "util/time.h"

#define SIZE_MIB 256

static char dir[4096], key[4200], kh[4200], port[16];
static test_server server;

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *what, int64_t *us, int n, double *p50_out) {
  qsort(us, (size_t)n, sizeof(*us), cmp_i64);
  double p50 = us[n / 2] / 1000.0, p99 = us[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0;
  printf("  %-28s n=%-4d p50 %8.2f ms   p99 %8.2f ms\n", what, n, p50, p99);
  *p50_out = p50;
}

static int run_argv(char *const argv[]) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    execvp(argv[0], argv);
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define SSH_BASE                                                                                   \
  "ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", kh_opt, "-o",         \
      "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=benchvm", "-p", port
static char kh_opt[4300], ctl_opt[4300];

static void bench_exec(qvm_ssh *ssh, int n) {
  int64_t *us = calloc((size_t)n, sizeof(*us));
  double qvm, fresh, master;
  qvm_ssh_exec_options o = QVM_SSH_EXEC_OPTIONS_INIT;
  o.command = "true";
  printf("exec latency of `true`:\n");
  for (int i = 0; i < n; i++) {
    int64_t t = qvm_now_us();
    if (qvm_ssh_exec(NULL, ssh, &o, NULL) < 0) exit(1);
    us[i] = qvm_now_us() - t;
  }
  report("qvm (reused session)", us, n, &qvm);
  char *fresh_argv[] = {SSH_BASE, "root@127.0.0.1", "true", NULL};
  int nf = n / 4;
  for (int i = 0; i < nf; i++) {
    int64_t t = qvm_now_us();
    if (run_argv(fresh_argv) != 0) exit(1);
    us[i] = qvm_now_us() - t;
  }
  report("openssh (fresh connection)", us, nf, &fresh);
  char *start[] = {
      SSH_BASE, "-o", ctl_opt,          "-o", "ControlMaster=yes", "-o", "ControlPersist=yes",
      "-N",     "-f", "root@127.0.0.1", NULL};
  char *use[] = {SSH_BASE, "-o", ctl_opt, "root@127.0.0.1", "true", NULL};
  char *stop[] = {SSH_BASE, "-o", ctl_opt, "-O", "exit", "root@127.0.0.1", NULL};
  if (run_argv(start) != 0) exit(1);
  for (int i = 0; i < n; i++) {
    int64_t t = qvm_now_us();
    if (run_argv(use) != 0) exit(1);
    us[i] = qvm_now_us() - t;
  }
  report("openssh (ControlMaster)", us, n, &master);
  run_argv(stop);
  printf("  ratios (p50): fresh/qvm %.1fx, controlmaster/qvm %.1fx\n", fresh / qvm, master / qvm);
  free(us);
}

static double mbps(int64_t us) { return SIZE_MIB / (us / 1e6); }

/* The naive loop qvm must beat: one 32 KiB request at a time. */
static int64_t naive_copy(qvm_ssh *ssh, const char *local, const char *remote, bool up) {
  static char buf[32768];
  int fd = up ? open(local, O_RDONLY | O_CLOEXEC)
              : open(local, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int64_t t = qvm_now_us();
  libssh2_session_set_blocking(ssh->session, 1);
  LIBSSH2_SFTP_HANDLE *h = libssh2_sftp_open(
      ssh->sftp, remote,
      up ? LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC : LIBSSH2_FXF_READ, 0600);
  if (!h || fd < 0) exit(1);
  for (ssize_t n;
       (n = up ? read(fd, buf, sizeof(buf)) : libssh2_sftp_read(h, buf, sizeof(buf))) > 0;)
    for (ssize_t off = 0; off < n;) {
      ssize_t w = up ? libssh2_sftp_write(h, buf + off, (size_t)(n - off))
                     : write(fd, buf + off, (size_t)(n - off));
      if (w <= 0) exit(1);
      off += w;
    }
  libssh2_sftp_close(h);
  libssh2_session_set_blocking(ssh->session, 0);
  close(fd);
  return qvm_now_us() - t;
}

static void bench_sftp(qvm_ssh *ssh) {
  char src[4200], remote[4200], back[4200], batch[4200], target[4300];
  snprintf(src, sizeof(src), "%s/blob", dir);
  snprintf(remote, sizeof(remote), "%s/blob.remote", server.dir);
  snprintf(back, sizeof(back), "%s/blob.back", dir);
  snprintf(batch, sizeof(batch), "%s/batch", dir);
  snprintf(target, sizeof(target), "root@127.0.0.1:%s", remote);
  if (qvm_test_sh("head -c %d /dev/urandom > '%s'", SIZE_MIB << 20, src) != 0) exit(1);
  printf("sftp %d MiB (MB/s = MiB/s):\n", SIZE_MIB);
  int64_t t = qvm_now_us();
  if (qvm_ssh_upload(ssh, src, remote, NULL, NULL) < 0) exit(1);
  int64_t up = qvm_now_us() - t;
  t = qvm_now_us();
  if (qvm_ssh_download(ssh, remote, back, NULL, NULL) < 0) exit(1);
  int64_t down = qvm_now_us() - t;
  if (qvm_test_sh("cmp -s '%s' '%s'", src, back) != 0) exit(1);
  printf("  %-22s up %7.1f   down %7.1f\n", "qvm", mbps(up), mbps(down));
  double qup = mbps(up), qdown = mbps(down);
  up = naive_copy(ssh, src, remote, true);
  down = naive_copy(ssh, back, remote, false);
  if (qvm_test_sh("cmp -s '%s' '%s'", src, back) != 0) exit(1);
  printf("  %-22s up %7.1f   down %7.1f   (qvm/naive: %.2fx up, %.2fx down)\n", "naive 32 KiB loop",
         mbps(up), mbps(down), qup / mbps(up), qdown / mbps(down));

  qvm_test_sh("printf 'put %s %s\\n' > '%s'", src, remote, batch);
  char *sftp_argv[] = {"sftp",
                       "-i",
                       key,
                       "-o",
                       "IdentitiesOnly=yes",
                       "-o",
                       "BatchMode=yes",
                       "-o",
                       kh_opt,
                       "-o",
                       "StrictHostKeyChecking=yes",
                       "-o",
                       "HostKeyAlias=benchvm",
                       "-P",
                       port,
                       "-b",
                       batch,
                       "root@127.0.0.1",
                       NULL};
  t = qvm_now_us();
  if (run_argv(sftp_argv) != 0) exit(1);
  up = qvm_now_us() - t;
  qvm_test_sh("printf 'get %s %s\\n' > '%s'", remote, back, batch);
  t = qvm_now_us();
  if (run_argv(sftp_argv) != 0) exit(1);
  down = qvm_now_us() - t;
  printf("  %-22s up %7.1f   down %7.1f   (qvm/sftp: %.2fx up, %.2fx down)\n", "openssh sftp",
         mbps(up), mbps(down), qup / mbps(up), qdown / mbps(down));

  char *scp_up[] = {"scp", "-q",
                    "-i",  key,
                    "-o",  "IdentitiesOnly=yes",
                    "-o",  "BatchMode=yes",
                    "-o",  kh_opt,
                    "-o",  "StrictHostKeyChecking=yes",
                    "-o",  "HostKeyAlias=benchvm",
                    "-P",  port,
                    src,   target,
                    NULL};
  char *scp_down[] = {"scp",  "-q",
                      "-i",   key,
                      "-o",   "IdentitiesOnly=yes",
                      "-o",   "BatchMode=yes",
                      "-o",   kh_opt,
                      "-o",   "StrictHostKeyChecking=yes",
                      "-o",   "HostKeyAlias=benchvm",
                      "-P",   port,
                      target, back,
                      NULL};
  t = qvm_now_us();
  if (run_argv(scp_up) != 0) exit(1);
  up = qvm_now_us() - t;
  t = qvm_now_us();
  if (run_argv(scp_down) != 0) exit(1);
  down = qvm_now_us() - t;
  printf("  %-22s up %7.1f   down %7.1f   (qvm/scp: %.2fx up, %.2fx down)\n", "openssh scp",
         mbps(up), mbps(down), qup / mbps(up), qdown / mbps(down));
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 200;
  char *tmp = qvm_test_mkdtemp("benchssh"), host[4200], *auth = NULL;
  qvm_ssh_key *ck = NULL, *hk = NULL;
  snprintf(dir, sizeof(dir), "%s", tmp);
  snprintf(key, sizeof(key), "%s/id_ed25519", dir);
  snprintf(kh, sizeof(kh), "%s/known_hosts", dir);
  snprintf(host, sizeof(host), "%s/host_key", dir);
  snprintf(kh_opt, sizeof(kh_opt), "UserKnownHostsFile=%s", kh);
  snprintf(ctl_opt, sizeof(ctl_opt), "ControlPath=%s/ctl", dir);
  if (qvm_ssh_key_generate(&ck, "bench", NULL) < 0 || qvm_ssh_key_generate(&hk, "", NULL) < 0 ||
      qvm_ssh_key_write(ck, key, NULL, NULL) < 0 || qvm_ssh_key_write(hk, host, NULL, NULL) < 0 ||
      asprintf(&auth, "%s\n", qvm_ssh_key_public_line(ck)) < 0 ||
      test_sshd_start(&server, host, qvm_ssh_key_public_line(hk), auth) < 0 ||
      qvm_ssh_known_hosts_pin(kh, "benchvm", qvm_ssh_key_public_line(hk), NULL) < 0) {
    fprintf(stderr, "bench setup failed\n");
    return 1;
  }
  snprintf(port, sizeof(port), "%d", server.port);
  qvm_ssh_options o = QVM_SSH_OPTIONS_INIT;
  o.host = "127.0.0.1";
  o.port = server.port;
  o.vm_name = "benchvm";
  o.known_hosts = kh;
  o.identity = key;
  qvm_ssh *ssh = NULL;
  qvm_error *err = NULL;
  if (qvm_ssh_connect(&ssh, &o, &err) < 0) {
    fprintf(stderr, "connect: %s\n", qvm_error_message(err));
    return 1;
  }
  bench_exec(ssh, n);
  bench_sftp(ssh);
  qvm_ssh_free(ssh);
  test_server_stop(&server);
  qvm_ssh_key_free(ck);
  qvm_ssh_key_free(hk);
  free(auth);
  qvm_test_rmtree(tmp);
  free(tmp);
  return 0;
}
