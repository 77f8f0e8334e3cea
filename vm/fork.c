/* SPDX-License-Identifier: MIT */
/* qvm_vm_fork: a running VM's memory and device state saved once (QEMU's
 * migration into a file, through the shim's save-state), its disk at the
 * same instant imported as a store image (as a clone's), and N VMs made
 * over it that resume from the saved state (-incoming) instead of booting
 * (docs/ARCHITECTURE.md, "Forks"). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <qvm/ssh.h>
#include <qvm/text.h>
#include <qvm/vm.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"
#include "vm/access.h"
#include "vm/audit.h"
#include "vm/ca_guest.h"
#include "vm/clone.h"
#include "vm/handle.h"
#include "vm/images.h"
#include "vm/record.h"
#include "vm/shim_ctl.h"

#define FORK_LOCK_MS 30000
#define FORK_QMP_MS (SHIM_CTL_QMP_TIMEOUT_MS + 5000)
#define FORK_SAVE_MS 300000
#define FORK_POLL_MS 20
#define FORK_AGENT_MS 1500
#define FORK_STATE_SLACK (UINT64_C(256) << 20) /* device state, page headers */
#define FORK_TIMEOUT_MS 60000
#define STORE_LOCK_MS 60000

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

static void report(const qvm_vm_fork_options *o, const char *phase, uint64_t done, uint64_t total) {
  if (!o->progress) return;
  qvm_image_progress ev = {.phase = phase, .done = done, .total = total, .eta_ms = -1};
  o->progress(&ev, o->userdata);
}

typedef struct fork_child {
  char name[QVM_VM_NAME_MAX + 1];
  char uuid[40];
  unsigned ssh_port;
  int64_t resumed_ms, clock_ms, ready_ms; /* from the start of its start */
  char clock[160];
  bool made;
} fork_child;

typedef struct fork_ctx {
  const qvm_vm_fork_options *o;
  unsigned n;
  qvm_vm *svm;
  img_store *store;
  char snap[32];
  bool snap_made;
  bool agent; /* SRC's guest agent answered: its forks' will */
  char state[PATH_MAX];
  uint64_t state_bytes;
  int64_t paused_ms;
  char digest[65];
  bool existed;
  vm_clone_plan plan;
  fork_child *kids;
} fork_ctx;

static int qmp(struct json_object **out, const qvm_vm *vm, const char *command,
               struct json_object *args, qvm_error **err) {
  struct json_object *ret = NULL;
  int r = vm_ctl_qmp(&ret, &vm->paths, command, args, FORK_QMP_MS, err);
  if (out)
    *out = ret;
  else
    json_object_put(ret);
  return r;
}

static int qmp_snapshot(const qvm_vm *vm, const char *command, const char *name, qvm_error **err) {
  struct json_object *args = json_object_new_object();
  if (!args) return oom(err);
  json_object_object_add(args, "device", json_object_new_string("disk"));
  json_object_object_add(args, "name", json_object_new_string(name));
  int r = qmp(NULL, vm, command, args, err);
  json_object_put(args);
  return r;
}

/* --- SRC: checks, pause, save ------------------------------------------------ */

static int src_check(fork_ctx *c, qvm_error **err) {
  qvm_vm *vm = c->svm;
  int r = vm_reconcile_locked(vm, err);
  if (r < 0) return r;
  if (qvm_vm_get_state(vm) != QVM_VM_RUNNING) {
    qvm_error_set(err, QVM_ECONFLICT, "it is %s: a fork resumes a running vm's memory",
                  qvm_vm_state_name(qvm_vm_get_state(vm)));
    return qvm_error_set_hint(err, QVM_ECONFLICT, "VmNotRunning", vm->name);
  }
  if (vm->spec->net == VM_NET_BRIDGE) {
    qvm_error_set(err, QVM_EINVAL,
                  "it is on bridge '%s': its forks would share one MAC and address there; a "
                  "fork needs user networking (each fork gets its own)",
                  vm->spec->bridge ? vm->spec->bridge : "?");
    return qvm_error_set_hint(err, QVM_EINVAL, "BridgeNetwork", vm->name);
  }
  qvm_error *e = NULL;
  if (qmp(NULL, vm, "query-vm-generation-id", NULL, &e) < 0) {
    qvm_error_set(err, QVM_EINVAL,
                  "its qemu has no generation id device (%s): forks resumed from one memory "
                  "image would share their random number generator's state",
                  qvm_error_message(e));
    qvm_error_free(e);
    return qvm_error_set_hint(err, QVM_EINVAL, "NoVmGenId", vm->name);
  }
  /* A guest agent in SRC answers in every fork: it sets their clocks. */
  c->agent = vm_qga_set_time(&vm->paths, FORK_AGENT_MS, NULL) == 0;
  /* Refuse what cannot be forked before SRC is paused. */
  r = vm_clone_plan_init(&c->plan, vm->spec, err);
  vm_clone_plan_clear(&c->plan);
  return r;
}

/* QEMU's migration into the state file, followed to its end. */
static int save_wait(fork_ctx *c, qvm_error **err) {
  int64_t deadline = qvm_now_ms() + FORK_SAVE_MS;
  for (;;) {
    struct json_object *ret = NULL, *v = NULL;
    int r = qmp(&ret, c->svm, "query-migrate", NULL, err);
    if (r < 0) return r;
    const char *st =
        json_object_object_get_ex(ret, "status", &v) && json_object_is_type(v, json_type_string)
            ? json_object_get_string(v)
            : "";
    if (!strcmp(st, "completed")) {
      json_object_put(ret);
      /* QEMU says completed a moment before it leaves the finish-migrate
       * run state, in which it refuses cont ("Migration is not finalized
       * yet"): wait for that too. */
      if ((r = qmp(&ret, c->svm, "query-status", NULL, err)) < 0) return r;
      bool finishing = json_object_object_get_ex(ret, "status", &v) &&
                       json_object_is_type(v, json_type_string) &&
                       !strcmp(json_object_get_string(v), "finish-migrate");
      json_object_put(ret);
      if (!finishing) return 0;
      ret = NULL;
      st = "";
    }
    if (!strcmp(st, "failed") || !strcmp(st, "cancelled")) {
      _cleanup_free_ char *why =
          json_object_object_get_ex(ret, "error-desc", &v) &&
                  json_object_is_type(v, json_type_string)
              ? qvm_text_for_terminal(json_object_get_string(v),
                                      (size_t)json_object_get_string_len(v), 0)
              : NULL;
      json_object_put(ret);
      return qvm_error_set(err, QVM_EQMP, "qemu could not save the vm's state: %s", why ? why : st);
    }
    json_object_put(ret);
    if (qvm_now_ms() > deadline)
      return qvm_error_set(err, QVM_ETIMEOUT, "qemu did not save the vm's state within %d s",
                           FORK_SAVE_MS / 1000);
    usleep(FORK_POLL_MS * 1000);
  }
}

/* stop, a temporary internal snapshot of the disk, RAM and devices into
 * the state file, cont: disk and memory of the same instant. Signals that
 * would end qvm wait until SRC runs again. */
static int pause_and_save(fork_ctx *c, qvm_error **err) {
  qvm_vm *vm = c->svm;
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGHUP);
  sigaddset(&block, SIGQUIT);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  report(c->o, "pause", 0, 0);
  int64_t t0 = qvm_now_ms();
  int r = qmp(NULL, vm, "stop", NULL, err);
  bool stopped = r >= 0, migrating = false;
  if (r >= 0) r = vm_tmp_snapshot_name(c->snap, err);
  if (r >= 0) r = qmp_snapshot(vm, "blockdev-snapshot-internal-sync", c->snap, err);
  if (r >= 0) c->snap_made = true;
  if (r >= 0) report(c->o, "save", 0, 0);
  if (r >= 0) r = vm_ctl_save_state(&vm->paths, FORK_QMP_MS, err);
  if (r >= 0) migrating = true;
  if (r >= 0) r = save_wait(c, err);
  if (r < 0 && migrating) {
    qvm_error *e = NULL;
    qmp(NULL, vm, "migrate_cancel", NULL, &e);
    qvm_error_free(e);
  }
  if (stopped) {
    qvm_error *e = NULL;
    if (qmp(NULL, vm, "cont", NULL, &e) < 0 && r >= 0)
      r = qvm_error_set(err, qvm_error_code(e),
                        "it did not run again after its state was saved: %s", qvm_error_message(e));
    qvm_error_free(e);
  }
  c->paused_ms = qvm_now_ms() - t0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  struct stat st;
  if (r >= 0 && stat(c->state, &st) == 0) c->state_bytes = (uint64_t)st.st_size;
  /* SRC's QEMU wrote it: no more than its RAM and some device state, or
   * it is not what a fork should load (docs/SECURITY.md) */
  uint64_t cap = (vm->spec->memory_mib << 20) + FORK_STATE_SLACK;
  if (r >= 0 && c->state_bytes > cap)
    r = qvm_error_set(err, QVM_EPROTO,
                      "its qemu saved %" PRIu64 " bytes of state for %" PRIu64
                      " MiB of memory: more than a migration of it can be; no fork was made",
                      c->state_bytes, vm->spec->memory_mib);
  return r;
}

/* --- the forks ------------------------------------------------------------------ */

static int set_mac(vm_record *rec, void *ctx, qvm_error **err) {
  (void)err;
  snprintf(rec->spec->mac, sizeof rec->spec->mac, "%s", (const char *)ctx);
  return 0;
}

static int copy_private(const char *from_dir, const char *to_dir, const char *file,
                        qvm_error **err) {
  char from[PATH_MAX], to[PATH_MAX];
  snprintf(from, sizeof from, "%s/%s", from_dir, file);
  snprintf(to, sizeof to, "%s/%s", to_dir, file);
  _cleanup_free_ char *data = NULL;
  size_t len = 0;
  int r = qvm_read_file(&data, &len, from, 64u << 20, err);
  return r < 0 ? r : qvm_write_file_atomic(to, data, len, 0600, err);
}

/* SRC's pinned host key, pinned again under the fork's name (its alias). */
static int pin_src_key(const qvm_vm *src, const char *dir, const char *name, qvm_error **err) {
  char from[PATH_MAX], to[PATH_MAX];
  snprintf(from, sizeof from, "%s/%s", src->paths.dir, VM_KNOWN_HOSTS);
  snprintf(to, sizeof to, "%s/%s", dir, VM_KNOWN_HOSTS);
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  int r = qvm_read_file(&text, &len, from, 64 << 10, err);
  if (r < 0) return r;
  char *nl = strchr(text, '\n'), *sp = strchr(text, ' ');
  if (nl) *nl = '\0';
  if (!sp || !sp[1]) /* a TOFU vm that was never reached: nothing pinned yet */
    return qvm_write_file_atomic(to, "", 0, 0600, err);
  return qvm_ssh_known_hosts_pin(to, name, sp + 1, err);
}

/* The fork's identity is SRC's (its guest state says so): MAC, client key,
 * pinned host key, seed (instance-id, hostname), UEFI variables; and the
 * saved state, hard-linked in for its shim to resume from. */
static int fork_identity(fork_ctx *c, fork_child *k, qvm_error **err) {
  qvm_vm *vm = NULL;
  int r = qvm_vm_open(&vm, k->name, err);
  if (r < 0) return r;
  const vm_spec *s = c->svm->spec;
  const char *sdir = c->svm->paths.dir, *dir = vm->paths.dir;
  snprintf(k->uuid, sizeof k->uuid, "%s", vm->spec->uuid);
  r = vm_record_update(&vm->paths, set_mac, (void *)s->mac, err);
  char key[PATH_MAX];
  snprintf(key, sizeof key, "%s/%s", sdir, VM_CLIENT_KEY);
  if (r >= 0 && access(key, F_OK) == 0) r = copy_private(sdir, dir, VM_CLIENT_KEY, err);
  /* and its .pub: the fork's own (made at create) belongs to a key it no
   * longer has, and OpenSSH offers the key the .pub beside it names */
  snprintf(key, sizeof key, "%s/%s.pub", sdir, VM_CLIENT_KEY);
  if (r >= 0 && access(key, F_OK) == 0) r = copy_private(sdir, dir, VM_CLIENT_KEY ".pub", err);
  if (r >= 0) r = pin_src_key(c->svm, dir, k->name, err);
  if (r >= 0) r = vm_ca_fork_mark(c->svm, dir, err);
  if (r >= 0 && s->cloud_init) r = copy_private(sdir, dir, VM_SEED_ISO, err);
  if (r >= 0 && s->firmware == VM_FIRMWARE_UEFI && s->firmware_vars)
    r = copy_private(sdir, dir, s->firmware_vars, err);
  char to[PATH_MAX];
  snprintf(to, sizeof to, "%s/%s", dir, VM_INCOMING_FILE);
  if (r >= 0 && link(c->state, to) < 0)
    r = qvm_error_set_errno(err, errno, "cannot link the saved state into '%s'", dir);
  qvm_vm_free(vm);
  return r;
}

static int make_forks(fork_ctx *c, qvm_error **err) {
  snprintf(c->plan.image, sizeof c->plan.image, "sha256:%s", c->digest);
  /* Shared: a prune cannot take the unnamed image before the forks name it. */
  _cleanup_close_ int lock = -1;
  int r = img_store_lock(&lock, c->store, false, STORE_LOCK_MS, err);
  for (unsigned i = 0; r >= 0 && i < c->n; i++) {
    fork_child *k = &c->kids[i];
    report(c->o, "create", i, c->n);
    r = qvm_vm_create(NULL, k->name, &c->plan.o, err);
    if (r >= 0) k->made = true;
    if (r >= 0) r = fork_identity(c, k, err);
    if (r < 0) qvm_error_prefix(err, "fork '%s'", k->name);
  }
  return r;
}

static int start_fork(fork_ctx *c, fork_child *k, qvm_error **err) {
  int64_t t0 = qvm_now_ms();
  int timeout = c->o->timeout_ms > 0 ? c->o->timeout_ms : FORK_TIMEOUT_MS;
  qvm_vm *vm = NULL;
  int r = qvm_vm_open(&vm, k->name, err);
  qvm_vm_start_options so = QVM_VM_START_OPTIONS_INIT;
  so.timeout_ms = timeout;
  if (r >= 0) r = qvm_vm_start(vm, &so, err);
  if (r >= 0) r = vm_reload(vm, err);
  if (r >= 0 && vm->rec->has_runtime) k->ssh_port = vm->rec->runtime.ssh_port;
  k->resumed_ms = qvm_now_ms() - t0;
  /* The clock request goes first; its answer is read after the SSH login,
   * so that the two overlap. */
  int agent = -1;
  unsigned id = 0;
  qvm_error *e = NULL;
  if (r >= 0 && c->agent && vm_qga_set_time_send(&agent, &id, &vm->paths, &e) < 0) {
    snprintf(k->clock, sizeof k->clock, "not set: %s", qvm_error_message(e));
    qvm_error_free(e);
    e = NULL;
  } else if (r >= 0 && !c->agent) {
    snprintf(k->clock, sizeof k->clock, "not set: the guest has no agent");
  }
  if (r >= 0 && !c->o->no_wait) {
    qvm_vm_ssh_options o = QVM_VM_SSH_OPTIONS_INIT;
    o.timeout_ms = timeout;
    qvm_ssh *ssh = NULL;
    r = qvm_vm_ssh_connect(&ssh, vm, &o, err);
    if (r >= 0) r = vm_ca_fork_trust(vm, ssh, err);
    qvm_ssh_free(ssh);
  }
  k->ready_ms = qvm_now_ms() - t0;
  if (agent >= 0) {
    if (vm_qga_set_time_wait(agent, id, timeout, &e) == 0)
      snprintf(k->clock, sizeof k->clock, "set");
    else
      snprintf(k->clock, sizeof k->clock, "not set: %s", qvm_error_message(e));
    qvm_error_free(e);
    close(agent);
  }
  k->clock_ms = qvm_now_ms() - t0;
  qvm_vm_free(vm);
  if (r < 0) qvm_error_prefix(err, "fork '%s'", k->name);
  return r;
}

/* Forks start FORK_PARALLEL at a time: each loads its state and logs in
 * while the others do; more would only queue for the host's CPUs. */
#define FORK_PARALLEL 4

typedef struct start_pool {
  fork_ctx *c;
  pthread_mutex_t mu;
  unsigned next;
  int r;          /* the first failure's code */
  qvm_error *err; /* and its error */
} start_pool;

static void *start_worker(void *arg) {
  start_pool *p = arg;
  for (;;) {
    pthread_mutex_lock(&p->mu);
    unsigned i = p->r < 0 ? p->c->n : p->next++;
    pthread_mutex_unlock(&p->mu);
    if (i >= p->c->n) return NULL;
    qvm_error *e = NULL;
    int r = start_fork(p->c, &p->c->kids[i], &e);
    pthread_mutex_lock(&p->mu);
    if (r < 0 && p->r >= 0) {
      p->r = r;
      p->err = e;
      e = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    qvm_error_free(e);
  }
}

static int start_all(fork_ctx *c, qvm_error **err) {
  start_pool p = {.c = c, .mu = PTHREAD_MUTEX_INITIALIZER};
  pthread_t th[FORK_PARALLEL];
  unsigned n = c->n < FORK_PARALLEL ? c->n : FORK_PARALLEL, made = 0;
  for (; made < n; made++)
    if (pthread_create(&th[made], NULL, start_worker, &p) != 0) break;
  if (made == 0) start_worker(&p); /* no thread at all: one by one, here */
  for (unsigned i = 0; i < made; i++) pthread_join(th[i], NULL);
  pthread_mutex_destroy(&p.mu);
  if (p.r < 0) return qvm_error_propagate(err, p.err);
  return 0;
}

/* --- the whole ------------------------------------------------------------------- */

static int result_json(char **out, const fork_ctx *c, const char *src, qvm_error **err) {
  struct json_object *o = json_object_new_object(), *a = json_object_new_array();
  if (!o || !a) {
    json_object_put(o);
    json_object_put(a);
    return oom(err);
  }
  char image[72];
  snprintf(image, sizeof image, "sha256:%s", c->digest);
  json_object_object_add(o, "source", json_object_new_string(src));
  json_object_object_add(o, "image", json_object_new_string(image));
  json_object_object_add(o, "paused_ms", json_object_new_int64(c->paused_ms));
  json_object_object_add(o, "state_bytes", json_object_new_uint64(c->state_bytes));
  for (unsigned i = 0; i < c->n; i++) {
    const fork_child *k = &c->kids[i];
    struct json_object *f = json_object_new_object();
    json_object_object_add(f, "name", json_object_new_string(k->name));
    json_object_object_add(f, "uuid", json_object_new_string(k->uuid));
    json_object_object_add(f, "ssh_port",
                           k->ssh_port ? json_object_new_int((int)k->ssh_port) : NULL);
    json_object_object_add(f, "resumed_ms", json_object_new_int64(k->resumed_ms));
    json_object_object_add(f, "clock_ms", json_object_new_int64(k->clock_ms));
    json_object_object_add(f, "ready_ms", json_object_new_int64(k->ready_ms));
    json_object_object_add(f, "clock", json_object_new_string(k->clock));
    json_object_array_add(a, f);
  }
  json_object_object_add(o, "forks", a);
  const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
  *out = t ? strdup(t) : NULL;
  json_object_put(o);
  return *out ? 0 : oom(err);
}

static int names_check(fork_ctx *c, const char *prefix, qvm_error **err) {
  for (unsigned i = 0; i < c->n; i++) {
    fork_child *k = &c->kids[i];
    int n = snprintf(k->name, sizeof k->name, "%s-%u", prefix, i + 1);
    if (n < 0 || (size_t)n >= sizeof k->name)
      return qvm_error_set(err, QVM_EINVAL, "prefix '%.64s' is too long for a vm name", prefix);
    int r = qvm_vm_name_check(k->name, err);
    if (r >= 0) r = vm_name_free(k->name, err);
    if (r < 0) return r;
  }
  return 0;
}

/* Under SRC's lock: pause and save, import, create. */
static int fork_locked(fork_ctx *c, qvm_error **err) {
  int r = src_check(c, err);
  if (r < 0) return r;
  snprintf(c->state, sizeof c->state, "%s/%s", c->svm->paths.dir, VM_FORK_STATE_FILE);
  if ((r = pause_and_save(c, err)) < 0) return r;
  qvm_image_import_options io = QVM_IMAGE_IMPORT_OPTIONS_INIT;
  io.progress = c->o->progress;
  io.userdata = c->o->userdata;
  r = vm_image_import_held(c->digest, &c->existed, c->store, c->svm, c->snap, &io, err);
  /* After the import: it re-read SRC's record, and the plan points into it. */
  if (r >= 0) r = vm_clone_plan_init(&c->plan, c->svm->spec, err);
  /* The forks load RAM saved on the CPU model SRC runs with, which a
   * 'qvm set --cpu' since its start has not changed. */
  if (r >= 0 && c->svm->rec->has_runtime && c->svm->rec->runtime.cpu)
    c->plan.o.cpu = c->svm->rec->runtime.cpu;
  if (r >= 0) r = make_forks(c, err);
  return r;
}

static void undo(fork_ctx *c) {
  qvm_error *e = NULL;
  for (unsigned i = 0; i < c->n; i++)
    if (c->kids[i].made) {
      qvm_vm_remove(c->kids[i].name, true, &e);
      qvm_error_free(e);
      e = NULL;
    }
  if (c->digest[0] && !c->existed) images_remove_unused(c->store, c->digest, &e);
  qvm_error_free(e);
}

static int fork_run(char **out_json, const char *src, const qvm_vm_fork_options *o,
                    qvm_error **err) {
  fork_ctx c = {.o = o, .n = o->count ? o->count : 1};
  if (c.n > QVM_VM_FORK_MAX)
    return qvm_error_set(err, QVM_EINVAL, "count %u is too many: at most %d forks at once", c.n,
                         QVM_VM_FORK_MAX);
  int r = qvm_vm_name_check(src, err);
  if (r < 0) return r;
  if (!(c.kids = calloc(c.n, sizeof *c.kids))) return oom(err);
  r = names_check(&c, o->prefix ? o->prefix : src, err);
  if (r >= 0) r = qvm_vm_open(&c.svm, src, err);
  if (r >= 0) r = images_store_open(&c.store, err);
  int lock = -1;
  if (r >= 0) r = vm_lock_acquire(&lock, &c.svm->paths, "fork", FORK_LOCK_MS, err);
  if (r >= 0) {
    r = fork_locked(&c, err);
    if (c.snap_made) {
      qvm_error *e = NULL; /* a leftover goes with the next import */
      qmp_snapshot(c.svm, "blockdev-snapshot-delete-internal-sync", c.snap, &e);
      qvm_error_free(e);
    }
    if (c.state[0]) unlink(c.state); /* the forks hold their own links */
    vm_lock_release(lock);
  }
  if (r >= 0) {
    report(o, "start", 0, c.n);
    r = start_all(&c, err);
  }
  if (r < 0) undo(&c);
  if (r >= 0) report(o, "done", c.n, c.n);
  if (r >= 0 && out_json) r = result_json(out_json, &c, src, err);
  vm_clone_plan_clear(&c.plan);
  img_store_free(c.store);
  qvm_vm_free(c.svm);
  free(c.kids);
  return r;
}

int qvm_vm_fork(char **out_json, const char *src, const qvm_vm_fork_options *opts,
                qvm_error **err) {
  qvm_vm_fork_options defaults = QVM_VM_FORK_OPTIONS_INIT;
  int r = QVM_OPTIONS_CHECK(opts, qvm_vm_fork_options, QVM_VM_FORK_OPTIONS_VERSION, err);
  if (r < 0) return r;
  if (!src) return qvm_error_set(err, QVM_EINVAL, "fork needs a source vm");
  const qvm_vm_fork_options *o = opts ? opts : &defaults;
  r = fork_run(out_json, src, o, err);
  if (r < 0) qvm_error_prefix(err, "cannot fork vm '%s'", src);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "count", json_object_new_int((int)(o->count ? o->count : 1)));
  json_object_object_add(d, "prefix", vm_audit_string(o->prefix ? o->prefix : src, 64, NULL));
  vm_audit_note(src, "fork", r, (const qvm_error *const *)err, d);
  return r;
}
