/* SPDX-License-Identifier: MIT */
/*
 * How long `qvm start` takes until QEMU is exec'd and until QMP answers
 * (timestamps the shim records), next to the same QEMU argv launched straight
 * from a shell with a client polling its QMP socket; the shim's resident
 * memory; and the round trip of a `status` request on the shim's ctl.sock.
 * Uses the mini guest. Prints medians of a few rounds.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qmp/qmp.h"
#include <qvm/vm.h>

#include "testlib.h"
#include "util/time.h"
#include "vm/argv.h"
#include "vm/handle.h"

#define ROUNDS 7
#define CTL_REQUESTS 1000

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double median_ms(int64_t *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_i64);
  return v[n / 2] / 1000.0;
}

static int64_t json_i64(struct json_object *o, const char *a, const char *b) {
  struct json_object *x = NULL, *y = NULL;
  if (!json_object_object_get_ex(o, a, &x) || !json_object_object_get_ex(x, b, &y)) return 0;
  return json_object_get_int64(y);
}

typedef struct mem_kb {
  long rss, pss, private_dirty; /* kB; -1 unknown */
} mem_kb;

/* VmRSS counts every shared library page the shim touched (libc alone is
 * about 1.5 MB of it, shared with every process); Pss charges shared pages
 * by the number of their users, and Private_Dirty is what this shim alone
 * costs. */
static mem_kb shim_mem(int pid) {
  mem_kb m = {-1, -1, -1};
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
  FILE *f = fopen(path, "re");
  while (f && fgets(line, sizeof line, f)) {
    long kb;
    if (sscanf(line, "Rss: %ld kB", &kb) == 1) m.rss = kb;
    if (sscanf(line, "Pss: %ld kB", &kb) == 1) m.pss = kb;
    if (sscanf(line, "Private_Dirty: %ld kB", &kb) == 1) m.private_dirty = kb;
  }
  if (f) fclose(f);
  return m;
}

/* `qvm start bench`, exec'd straight from here (no shell in the figure). */
static int qvm_start_direct(void) {
  char bin[4096];
  snprintf(bin, sizeof bin, "%s/qvm", qvm_test_binary_dir());
  pid_t pid = fork();
  if (pid == 0) {
    int nul = open("/dev/null", O_WRONLY);
    if (nul >= 0) dup2(nul, 2);
    execl(bin, "qvm", "start", "bench", (char *)NULL);
    _exit(127);
  }
  int st = 0;
  return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void qvm_round(int64_t *shim_us, int64_t *exec_us, int64_t *qmp_us, int64_t *cli_us,
                      mem_kb *rss) {
  int64_t t0 = qvm_realtime_us();
  if (qvm_start_direct() != 0) {
    fprintf(stderr, "qvm start failed\n");
    exit(1);
  }
  *cli_us = qvm_realtime_us() - t0;
  qvm_vm *vm = NULL;
  struct json_object *info = NULL, *pid = NULL;
  if (qvm_vm_open(&vm, "bench", NULL) < 0 || vm_info_json(&info, vm, NULL) < 0) exit(1);
  *shim_us = json_i64(info, "timings", "shim_start_us") - t0;
  *exec_us = json_i64(info, "timings", "qemu_spawn_us") - t0;
  *qmp_us = json_i64(info, "timings", "qmp_ready_us") - t0;
  if (json_object_object_get_ex(info, "shim_pid", &pid)) *rss = shim_mem(json_object_get_int(pid));
  json_object_put(info);
  qvm_vm_free(vm);
  qvm_test_sh("'%s/qvm' kill bench", qvm_test_binary_dir());
}

/* The peer: the same argv (sockets by path instead of inherited fds), run by
 * `sh -c 'exec "$@"'`, and a client that retries connecting until QMP
 * answers. */
static void shell_round(const char *dir, int64_t *exec_us, int64_t *qmp_us) {
  qvm_vm *vm = NULL;
  if (qvm_vm_open(&vm, "bench", NULL) < 0) exit(1);
  char qmp[512], console[512], serial[512];
  snprintf(qmp, sizeof qmp, "%s/peer-qmp.sock", dir);
  snprintf(console, sizeof console, "%s/peer-console.sock", dir);
  snprintf(serial, sizeof serial, "%s/peer-serial.log", dir);
  vm_argv_input in = {.spec = vm->spec,
                      .qemu = "qemu-system-x86_64",
                      .vm_dir = vm->paths.dir,
                      .accel = VM_ACCEL_TCG,
                      .qmp_fd = -1,
                      .qmp_path = qmp,
                      .console_fd = -1,
                      .console_path = console,
                      .serial_log = serial,
                      .tap_fd = -1,
                      .sandbox = true};
  vm_argv *a = NULL;
  if (vm_argv_build(&a, &in, NULL) < 0) exit(1);
  unlink(qmp);
  size_t n = a->argc + 4;
  char **argv = calloc(n + 1, sizeof *argv);
  argv[0] = "sh", argv[1] = "-c", argv[2] = "exec \"$@\" 2>/dev/null", argv[3] = "sh";
  for (size_t i = 0; i < a->argc; i++) argv[4 + i] = a->argv[i];
  int64_t t0 = qvm_realtime_us();
  pid_t pid = fork();
  if (pid == 0) {
    execvp("sh", argv);
    _exit(127);
  }
  *exec_us = qvm_realtime_us() - t0; /* fork returned; exec follows in the child */
  qvm_qmp *c = NULL;
  qvm_qmp_options o = QVM_QMP_OPTIONS_INIT;
  if (qvm_qmp_connect(&c, qmp, &o, NULL) < 0) exit(1);
  *qmp_us = qvm_realtime_us() - t0;
  qvm_qmp_free(c);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  free(argv);
  vm_argv_free(a);
  qvm_vm_free(vm);
}

/* CTL_REQUESTS `status` requests on ctl.sock, one at a time: each round
 * trip's time, sorted. */
static void ctl_round_trips(int64_t *us, const char *run_dir) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%.80s/bench/ctl.sock", run_dir);
  if (n < 0 || (size_t)n >= sizeof sa.sun_path || strlen(run_dir) > 80) {
    fprintf(stderr, "runtime dir '%s' is too long for a socket path\n", run_dir);
    exit(1);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    fprintf(stderr, "cannot connect to %s\n", sa.sun_path);
    exit(1);
  }
  static const char req[] = "{\"id\":1,\"cmd\":\"status\"}\n";
  char buf[4096];
  for (int i = 0; i < CTL_REQUESTS; i++) {
    int64_t t0 = qvm_now_us();
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) exit(1);
    size_t len = 0;
    while (!memchr(buf, '\n', len)) {
      ssize_t got = read(fd, buf + len, sizeof buf - len);
      if (got <= 0) exit(1);
      len += (size_t)got;
    }
    us[i] = qvm_now_us() - t0;
    if (!strstr(buf, "\"ok\":true")) exit(1);
  }
  close(fd);
  qsort(us, CTL_REQUESTS, sizeof *us, cmp_i64);
}

int main(void) {
  const char *kernel = NULL, *initrd = NULL;
  qvm_test_mini_guest(&kernel, &initrd);
  char *dir = qvm_test_mkdtemp("bench-vm");
  char state[512], run[512];
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(run, sizeof run, "%s/run", dir);
  setenv("QVM_STATE_DIR", state, 1);
  setenv("QVM_RUNTIME_DIR", run, 1);
  char shim[1024];
  snprintf(shim, sizeof shim, "%s/qvm-shim", qvm_test_binary_dir());
  setenv("QVM_SHIM", shim, 0); /* qvm_vm_open may re-attach, from this program */
  if (qvm_test_sh("'%s/qvm' create bench --kernel '%s' --initrd '%s' --append console=ttyS0 "
                  "--memory 256M --net none",
                  qvm_test_binary_dir(), kernel, initrd) != 0)
    return 1;
  int64_t q_shim[ROUNDS], q_exec[ROUNDS], q_qmp[ROUNDS], q_cli[ROUNDS], s_exec[ROUNDS],
      s_qmp[ROUNDS];
  mem_kb rss = {-1, -1, -1};
  for (int i = 0; i < ROUNDS; i++) {
    qvm_round(&q_shim[i], &q_exec[i], &q_qmp[i], &q_cli[i], &rss);
    shell_round(dir, &s_exec[i], &s_qmp[i]);
  }
  printf("vm start, median of %d rounds (TCG, mini guest, 256M):\n", ROUNDS);
  printf("  qvm start: qvm-shim running at %7.1f ms (the CLI: load, lock, fork, exec)\n",
         median_ms(q_shim, ROUNDS));
  printf(
      "  qvm start: qemu fork+exec at %7.1f ms, QMP ready at %7.1f ms, CLI returned at %7.1f ms\n",
      median_ms(q_exec, ROUNDS), median_ms(q_qmp, ROUNDS), median_ms(q_cli, ROUNDS));
  printf(
      "  shell    : qemu fork+exec at %7.1f ms, QMP ready at %7.1f ms (client polls the socket)\n",
      median_ms(s_exec, ROUNDS), median_ms(s_qmp, ROUNDS));
  printf("  shim memory: VmRSS %ld kB, Pss %ld kB, Private_Dirty %ld kB\n", rss.rss, rss.pss,
         rss.private_dirty);
  static int64_t rt[CTL_REQUESTS];
  if (qvm_test_sh("'%s/qvm' start bench 2>/dev/null", qvm_test_binary_dir()) != 0) return 1;
  ctl_round_trips(rt, run);
  qvm_test_sh("'%s/qvm' kill bench", qvm_test_binary_dir());
  printf("  ctl.sock status round trip (%d requests, one at a time): p50 %.1f us, p99 %.1f us\n",
         CTL_REQUESTS, rt[CTL_REQUESTS / 2] / 1.0, rt[CTL_REQUESTS * 99 / 100] / 1.0);
  qvm_test_sh("'%s/qvm' rm --force bench", qvm_test_binary_dir());
  qvm_test_rmtree(dir);
  free(dir);
  return 0;
}
