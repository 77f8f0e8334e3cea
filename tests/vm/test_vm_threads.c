/* SPDX-License-Identifier: MIT */
/*
 * libqvm from a long-lived, multi-threaded caller: 4 mini-guest VMs driven
 * by 8 threads at once through the public API only (two threads per VM, each
 * with its own handle). Checks that the results agree:
 *   - both threads of a pair start their VM at the same moment: both calls
 *     succeed, and there is one QEMU (both see the same pid);
 *   - while they run, every thread's queries (state, info, list) agree with
 *     each other and with what the start reported;
 *   - both threads stop their VM at once: both calls succeed, QEMU is gone
 *     and the VM is stopped.
 * Built and run in the normal and ASan builds, and under ThreadSanitizer by
 * scripts/test.sh's tsan variant (clang).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <qvm/vm.h>

#include "testlib.h"

#define N_VMS 4
#define N_THREADS 8
#define QUERY_ROUNDS 60

static const char *kernel, *initrd;
static pthread_barrier_t barrier;
static atomic_int failures;
static long pids[N_THREADS];

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                              \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      atomic_fetch_add(&failures, 1);                                                              \
    }                                                                                              \
  } while (0)

static void vm_name(char *out, size_t size, int i) { snprintf(out, size, "thr%d", i % N_VMS); }

static const char *msg(qvm_error *e) { return e ? qvm_error_message(e) : "(no error)"; }

/* QEMU's pid from the VM's info JSON, 0 when none. */
static long info_pid(qvm_vm *vm, char *state, size_t state_size) {
  char *text = NULL;
  qvm_error *e = NULL;
  long pid = 0;
  if (qvm_vm_info(&text, vm, &e) < 0) {
    CHECK(false, "info: %s", msg(e));
    qvm_error_free(e);
    return -1;
  }
  struct json_object *j = json_tokener_parse(text), *p = NULL, *s = NULL;
  CHECK(j != NULL, "info is not JSON: %.200s", text);
  if (json_object_object_get_ex(j, "pid", &p)) pid = (long)json_object_get_int64(p);
  if (state && json_object_object_get_ex(j, "state", &s))
    snprintf(state, state_size, "%s", json_object_get_string(s));
  json_object_put(j);
  free(text);
  return pid;
}

static bool alive(long pid) { return pid > 0 && kill((pid_t)pid, 0) == 0; }

static void *worker(void *arg) {
  int i = (int)(long)arg;
  char name[16];
  vm_name(name, sizeof name, i);
  qvm_error *e = NULL;
  qvm_vm *vm = NULL;
  if (qvm_vm_open(&vm, name, &e) < 0) {
    CHECK(false, "open %s: %s", name, msg(e));
    qvm_error_free(e);
    return NULL;
  }

  /* 1: both threads of the pair start the VM at once. */
  pthread_barrier_wait(&barrier);
  qvm_vm_start_options so = QVM_VM_START_OPTIONS_INIT;
  so.timeout_ms = 120000;
  int r = qvm_vm_start(vm, &so, &e);
  CHECK(r == 0, "thread %d start %s: %s", i, name, msg(e));
  qvm_error_free(e), e = NULL;
  CHECK(qvm_vm_refresh(vm, &e) == 0, "refresh: %s", msg(e));
  qvm_error_free(e), e = NULL;
  char state[32] = "";
  pids[i] = info_pid(vm, state, sizeof state);
  CHECK(!strcmp(state, "running"), "thread %d: %s is %s after start", i, name, state);
  CHECK(alive(pids[i]), "thread %d: %s's QEMU %ld is not alive", i, name, pids[i]);

  /* 2: everyone queries everything while all VMs run. */
  pthread_barrier_wait(&barrier);
  long mine = pids[i], twin = pids[(i + N_VMS) % N_THREADS];
  CHECK(mine == twin, "%s: thread %d saw QEMU %ld, its twin %ld: two QEMUs?", name, i, mine, twin);
  for (int round = 0; round < QUERY_ROUNDS; round++) {
    CHECK(qvm_vm_refresh(vm, &e) == 0, "refresh: %s", msg(e));
    qvm_error_free(e), e = NULL;
    CHECK(qvm_vm_get_state(vm) == QVM_VM_RUNNING, "%s not running in round %d", name, round);
    long pid = info_pid(vm, NULL, 0);
    CHECK(pid == mine, "%s: info pid %ld in round %d, was %ld", name, pid, round, mine);
    char **names = NULL;
    size_t n = 0;
    CHECK(qvm_vm_list(&names, &n, &e) == 0, "list: %s", msg(e));
    qvm_error_free(e), e = NULL;
    CHECK(n == N_VMS, "list has %zu vms, want %d", n, N_VMS);
    qvm_vm_names_free(names, n);
    /* another VM's handle, opened and dropped: never starts anything */
    char other[16];
    vm_name(other, sizeof other, i + 1 + round % (N_VMS - 1));
    qvm_vm *o = NULL;
    CHECK(qvm_vm_open(&o, other, &e) == 0, "open %s: %s", other, msg(e));
    qvm_error_free(e), e = NULL;
    if (o) CHECK(qvm_vm_get_state(o) == QVM_VM_RUNNING, "%s not running", other);
    qvm_vm_free(o);
  }

  /* 3: both threads of the pair stop the VM at once. */
  pthread_barrier_wait(&barrier);
  qvm_vm_stop_options to = QVM_VM_STOP_OPTIONS_INIT;
  /* Short: the guest may still be booting (no acpid yet), and the twin waits
   * on the VM's lock for at most 10 s while this stop runs. */
  to.timeout_ms = 3000;
  r = qvm_vm_stop(vm, &to, &e);
  CHECK(r == 0, "thread %d stop %s: %s", i, name, msg(e));
  qvm_error_free(e), e = NULL;
  CHECK(qvm_vm_refresh(vm, &e) == 0, "refresh: %s", msg(e));
  qvm_error_free(e), e = NULL;
  qvm_vm_state st = qvm_vm_get_state(vm);
  CHECK(st == QVM_VM_STOPPED, "%s is %s after stop", name, qvm_vm_state_name(st));
  CHECK(!alive(mine), "%s's QEMU %ld outlived the stop", name, mine);
  qvm_vm_free(vm);
  return NULL;
}

int main(void) {
  qvm_test_require_root();
  qvm_test_require_program("qemu-system-x86_64");
  qvm_test_mini_guest(&kernel, &initrd);
  char *root = qvm_test_mkdtemp("vm-threads");
  char state[512], run[512];
  snprintf(state, sizeof state, "%s/state", root);
  snprintf(run, sizeof run, "%s/run", root);
  setenv("QVM_STATE_DIR", state, 1);
  setenv("QVM_RUNTIME_DIR", run, 1);

  for (int v = 0; v < N_VMS; v++) {
    char name[16];
    vm_name(name, sizeof name, v);
    qvm_vm_create_options co = QVM_VM_CREATE_OPTIONS_INIT;
    co.kernel = kernel;
    co.initrd = initrd;
    co.append = "console=ttyS0 qvm.dhcp=0";
    co.memory = 256ull << 20;
    co.net.mode = QVM_VM_NET_NONE;
    co.no_cloud_init = true;
    qvm_error *e = NULL;
    if (qvm_vm_create(NULL, name, &co, &e) < 0) {
      fprintf(stderr, "create %s: %s\n", name, msg(e));
      return 1;
    }
  }

  pthread_barrier_init(&barrier, NULL, N_THREADS);
  pthread_t t[N_THREADS];
  for (long i = 0; i < N_THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
  for (int i = 0; i < N_THREADS; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&barrier);

  for (int v = 0; v < N_VMS; v++) {
    char name[16];
    vm_name(name, sizeof name, v);
    qvm_error *e = NULL;
    CHECK(qvm_vm_remove(name, true, &e) == 0, "rm %s: %s", name, msg(e));
    qvm_error_free(e);
  }
  qvm_test_rmtree(root);
  free(root);
  int f = atomic_load(&failures);
  if (f)
    fprintf(stderr, "%d checks failed\n", f);
  else
    printf("4 vms, 8 threads: start, queries, stop agree\n");
  return f ? 1 : 0;
}
