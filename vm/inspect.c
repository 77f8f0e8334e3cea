/* SPDX-License-Identifier: MIT */
/* Read-only views of VMs: list, info, the serial log and the console. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <qvm/text.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/time.h"
#include "vm/cpu.h"
#include "vm/handle.h"
#include "vm/mount.h"
#include "vm/net.h"
#include "vm/ttl.h"

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void qvm_vm_names_free(char **names, size_t n) {
  for (size_t i = 0; i < n && names; i++) free(names[i]);
  free(names);
}

int qvm_vm_list(char ***out, size_t *out_n, qvm_error **err) {
  _cleanup_free_ char *root = NULL, *vms = NULL;
  int r = vm_state_root(&root, err);
  if (r < 0) return r;
  if (asprintf(&vms, "%s/vms", root) < 0) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  *out = NULL;
  *out_n = 0;
  DIR *d = opendir(vms);
  if (!d) return errno == ENOENT ? 0 : qvm_error_set_errno(err, errno, "cannot list '%s'", vms);
  char **names = NULL;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!qvm_vm_name_valid(de->d_name)) continue; /* also skips ".x.create-*" */
    if (vm_expire_sweep(de->d_name)) continue;    /* a sandbox past its deadline, idle */
    char **v = reallocarray(names, n + 1, sizeof *v);
    if (!v || !(v[n] = strdup(de->d_name))) {
      if (v) names = v;
      closedir(d);
      qvm_vm_names_free(names, n);
      return qvm_error_set_errno(err, ENOMEM, "out of memory");
    }
    names = v;
    n++;
  }
  closedir(d);
  if (n) qsort(names, n, sizeof *names, name_cmp);
  *out = names;
  *out_n = n;
  return 0;
}

static void add_str(struct json_object *o, const char *k, const char *v) {
  json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

/* A string the guest chose (its address): json-c would pass bytes that are
 * not UTF-8 through, and a terminal would act on control sequences. */
static void add_guest_str(struct json_object *o, const char *k, const char *v) {
  _cleanup_free_ char *safe = qvm_text_for_terminal(v, strlen(v), 0);
  add_str(o, k, safe ? safe : "");
}

static void copy_member(struct json_object *to, const char *key, struct json_object *from,
                        const char *from_key) {
  struct json_object *v = NULL;
  if (from && json_object_object_get_ex(from, from_key, &v))
    json_object_object_add(to, key, json_object_get(v));
}

/* "cpu_requested" (the record's: auto, legacy or a model), "cpu" (the model
 * QEMU runs with, or the next start gets; null when that depends on the
 * accelerator auto finds) and "cpu_reason". */
static void info_cpu(struct json_object *o, const vm_spec *s, const vm_runtime *rt, bool live) {
  const char *why = NULL, *model = NULL;
  char buf[256];
  add_str(o, "cpu_requested", s->cpu ? s->cpu : VM_CPU_LEGACY);
  if (live && rt && rt->cpu && rt->has_accelerator) {
    const char *next = vm_cpu_model(s->cpu, rt->accelerator, &why);
    model = rt->cpu;
    if (strcmp(next, model)) {
      snprintf(buf, sizeof buf, "as started; the next start uses %s", next);
      why = buf;
    }
  } else if (s->accel != VM_ACCEL_AUTO) {
    model = vm_cpu_model(s->cpu, s->accel, &why);
  } else {
    const char *kvm = vm_cpu_model(s->cpu, VM_ACCEL_KVM, NULL);
    const char *tcg = vm_cpu_model(s->cpu, VM_ACCEL_TCG, &why);
    if (!strcmp(kvm, tcg)) {
      model = tcg;
    } else {
      snprintf(buf, sizeof buf, "%s under KVM, %s under TCG (%s)", kvm, tcg, why);
      why = buf;
    }
  }
  add_str(o, "cpu", model);
  add_str(o, "cpu_reason", why);
}

static void info_runtime(struct json_object *o, qvm_vm *vm, const vm_runtime_view *rv,
                         qvm_vm_state st) {
  const vm_runtime *rt = vm->rec->has_runtime ? &vm->rec->runtime : NULL;
  bool live = st == QVM_VM_RUNNING || st == QVM_VM_STARTING || st == QVM_VM_STOPPING;
  json_object_object_add(o, "pid", live && rv->has_qemu ? json_object_new_int(rv->qemu.pid) : NULL);
  json_object_object_add(o, "shim_pid",
                         live && rv->shim_alive ? json_object_new_int(rv->shim.pid) : NULL);
  info_cpu(o, vm->spec, rt, live);
  struct json_object *warnings = json_object_new_array();
  if (live && rt) {
    if (rt->has_accelerator) add_str(o, "accelerator", vm_accel_name(rt->accelerator));
    if (rt->has_timings) json_object_object_add(o, "timings", vm_timings_to_json(&rt->timings));
    json_object_object_add(o, "adopted", json_object_new_boolean(rt->adopted));
    if (rt->accel_warning)
      json_object_array_add(warnings, json_object_new_string(rt->accel_warning));
    if (rt->started_at_us) {
      char ts[32];
      qvm_format_rfc3339(ts, rt->started_at_us);
      add_str(o, "started_at", ts);
      json_object_object_add(
          o, "uptime_s", json_object_new_int64((qvm_realtime_us() - rt->started_at_us) / 1000000));
    }
  } else {
    add_str(o, "accelerator", NULL);
  }
  if (live && !rv->shim_alive)
    json_object_array_add(warnings,
                          json_object_new_string("the vm's shim is not running; the next state "
                                                 "change re-attaches one"));
  json_object_object_add(o, "warnings", warnings);
  if (vm->rec->has_last_exit)
    json_object_object_add(o, "last_exit", vm_exit_to_json(&vm->rec->last_exit));
}

static struct json_object *info_network(qvm_vm *vm, const vm_runtime_view *rv) {
  struct json_object *spec = vm_spec_to_json(vm->spec), *net = NULL;
  json_object_object_get_ex(spec, "network", &net);
  net = json_object_get(net);
  json_object_put(spec);
  if (rv->present && vm->rec->runtime.ssh_port)
    json_object_object_add(net, "ssh_port", json_object_new_int(vm->rec->runtime.ssh_port));
  char *ip = NULL, *source = NULL;
  if (vm->spec->net == VM_NET_BRIDGE && rv->qemu_alive &&
      vm_net_ip_find(&ip, &source, vm, 0, NULL) == 0) {
    add_guest_str(net, "ip", ip);
    add_guest_str(net, "ip_source", source);
  }
  free(ip);
  free(source);
  return net;
}

int vm_info_json(struct json_object **out, qvm_vm *vm, qvm_error **err) {
  (void)err; /* from the handle as last read: nothing is read but /proc and lease.json */
  vm_runtime_view rv;
  vm_runtime_view_read(&rv, vm->rec);
  *out = vm_info_json_view(vm, &rv);
  return 0;
}

struct json_object *vm_info_json_view(qvm_vm *vm, const vm_runtime_view *rv) {
  qvm_vm_state st = vm_state_eval(vm->rec, rv);
  const vm_spec *s = vm->spec;
  struct json_object *o = json_object_new_object(), *spec = vm_spec_to_json(s);
  add_str(o, "name", s->name);
  add_str(o, "uuid", s->uuid);
  add_str(o, "state", qvm_vm_state_name(st));
  json_object_object_add(o, "cpus", json_object_new_int((int)s->cpus));
  json_object_object_add(o, "memory_mib", json_object_new_int64((int64_t)s->memory_mib));
  add_str(o, "machine", s->machine);
  add_str(o, "accel_requested", vm_accel_name(s->accel));
  add_str(o, "firmware", vm_firmware_name(s->firmware));
  copy_member(o, "kernel", spec, "kernel");
  copy_member(o, "initrd", spec, "initrd");
  copy_member(o, "append", spec, "append");
  copy_member(o, "disks", spec, "drives");
  copy_member(o, "seed_iso", spec, "seed_iso");
  json_object_put(spec);
  json_object_object_add(o, "mounts", vm_mounts_info(s));
  json_object_object_add(o, "network", info_network(vm, rv));
  add_str(o, "created_at", vm->rec->created_at[0] ? vm->rec->created_at : NULL);
  add_str(o, "dir", vm->paths.dir);
  vm_tags_info(o, s, qvm_realtime_us());
  info_runtime(o, vm, rv, st);
  return o;
}

int qvm_vm_info(char **out_json, qvm_vm *vm, qvm_error **err) {
  struct json_object *o = NULL;
  int r = vm_info_json(&o, vm, err);
  if (r < 0) return r;
  char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
  json_object_put(o);
  if (!text) return qvm_error_set_errno(err, ENOMEM, "vm info");
  *out_json = text;
  return 0;
}

const char *qvm_vm_serial_log_path(const qvm_vm *vm) { return vm->paths.serial_log; }

int qvm_vm_console_connect(int *out, qvm_vm *vm, qvm_error **err) {
  int r = vm_reload(vm, err);
  if (r < 0) return r;
  if (qvm_vm_get_state(vm) != QVM_VM_RUNNING)
    return qvm_error_set(err, QVM_ENOTFOUND, "vm '%s' is not running", vm->name);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", vm->paths.console_sock);
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return qvm_error_set_errno(err, errno, "cannot connect to the console of vm '%s'", vm->name);
  *out = TAKE_FD(fd);
  return 0;
}

/* The serial log on its way out. Unless raw, it is neutralized for a
 * terminal: control sequences, C1 controls and bytes that are not UTF-8 are
 * shown escaped (qvm_text_for_terminal), line ends (LF, and any CRs just
 * before one: CR LF, CR CR LF, as vm_file_tail folds them) are kept as LF.
 * A UTF-8 sequence that a read splits is held back for the next read, and a
 * run of CRs is only counted until what follows it is known. */
typedef struct log_out {
  int fd;
  bool raw;
  char held[4];
  size_t n_held;
  size_t crs; /* CRs seen and not written yet */
} log_out;

/* How many bytes at the end of buf[0..n) may begin an unfinished UTF-8
 * sequence, and so wait for more input. */
static size_t unfinished_tail(const char *buf, size_t n) {
  for (size_t back = 1; back <= 3 && back <= n; back++) {
    unsigned char c = (unsigned char)buf[n - back];
    if ((c & 0xc0) == 0x80) continue; /* a continuation byte: look further back */
    size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

static int log_write(log_out *o, const char *data, size_t len, qvm_error **err) {
  _cleanup_free_ char *safe = qvm_text_for_terminal(data, len, QVM_TEXT_KEEP_NEWLINE);
  if (!safe) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  if (qvm_write_all(o->fd, safe, strlen(safe)) < 0)
    return qvm_error_set_errno(err, errno, "cannot write the serial log out");
  return 0;
}

/* CRs that turned out not to end a line: shown, as "\r" each. */
static int log_write_crs(log_out *o, qvm_error **err) {
  char crs[64];
  memset(crs, '\r', sizeof crs);
  while (o->crs) {
    size_t k = o->crs < sizeof crs ? o->crs : sizeof crs;
    int r = log_write(o, crs, k, err);
    if (r < 0) return r;
    o->crs -= k;
  }
  return 0;
}

/* Writes buf[0..n), its line ends' CRs dropped; ends with a count of CRs
 * pending when buf does. Splitting at a CR never splits a UTF-8 sequence. */
static int log_fold(log_out *o, char *buf, size_t n, qvm_error **err) {
  size_t out = 0;
  for (size_t i = 0; i < n; i++) {
    if (buf[i] == '\r') {
      o->crs++;
      continue;
    }
    if (buf[i] == '\n') {
      o->crs = 0;
    } else if (o->crs) {
      int r = log_write(o, buf, out, err);
      if (r >= 0) r = log_write_crs(o, err);
      if (r < 0) return r;
      out = 0;
    }
    buf[out++] = buf[i];
  }
  return log_write(o, buf, out, err);
}

static int log_emit(log_out *o, const char *data, size_t len, bool final, qvm_error **err) {
  if (o->raw) {
    if (qvm_write_all(o->fd, data, len) < 0)
      return qvm_error_set_errno(err, errno, "cannot write the serial log out");
    return 0;
  }
  _cleanup_free_ char *buf = malloc(o->n_held + len + 1);
  if (!buf) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  memcpy(buf, o->held, o->n_held);
  memcpy(buf + o->n_held, data, len);
  size_t n = o->n_held + len, keep = final ? 0 : unfinished_tail(buf, n);
  memcpy(o->held, buf + n - keep, keep);
  o->n_held = keep;
  int r = log_fold(o, buf, n - keep, err);
  if (final) o->crs = 0; /* CRs at the very end: a line end cut short, as vm_file_tail drops */
  return r;
}

static int copy_new(int from, log_out *to, qvm_error **err) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return qvm_error_set_errno(err, errno, "cannot read the serial log");
    if (n == 0) return 0;
    int r = log_emit(to, buf, (size_t)n, false, err);
    if (r < 0) return r;
  }
}

/* The shim rotates serial.log by copying it to serial.log.1 and truncating
 * it (vm/shim.c). A follower whose offset is past the end missed the bytes
 * from its offset to the end of the copy: they are in serial.log.1. */
static int copy_rotated(int log, log_out *to, const char *path, qvm_error **err) {
  struct stat st;
  off_t at = lseek(log, 0, SEEK_CUR);
  if (fstat(log, &st) < 0 || at <= st.st_size) return 0;
  _cleanup_free_ char *old = NULL;
  if (asprintf(&old, "%s.1", path) < 0) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  _cleanup_close_ int fd = open(old, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  int r = fd >= 0 && lseek(fd, at, SEEK_SET) == at ? copy_new(fd, to, err) : 0;
  lseek(log, 0, SEEK_SET);
  return r;
}

/* Follows until QEMU exits: its pidfd becomes readable. */
static int follow(int log, log_out *to, int ino, int pidfd, const char *path, qvm_error **err) {
  for (;;) {
    struct pollfd p[2] = {{.fd = ino, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
    if (poll(p, 2, 1000) < 0 && errno != EINTR)
      return qvm_error_set_errno(err, errno, "cannot wait for the serial log");
    if (p[0].revents) {
      char ev[4096];
      (void)!read(ino, ev, sizeof ev);
    }
    int r = copy_rotated(log, to, path, err);
    if (r >= 0) r = copy_new(log, to, err);
    if (r < 0 || p[1].revents) return r;
  }
}

/* This boot's output that the shim rotated out of serial.log (if any). */
static int logs_rotated(const char *path, log_out *to, qvm_error **err) {
  _cleanup_free_ char *old = NULL;
  if (asprintf(&old, "%s.1", path) < 0) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  _cleanup_close_ int fd = open(old, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  return fd >= 0 ? copy_new(fd, to, err) : 0;
}

static int logs_copy(qvm_vm *vm, int log, log_out *to, bool follow_log, qvm_error **err) {
  int r = logs_rotated(vm->paths.serial_log, to, err);
  if (r >= 0) r = copy_new(log, to, err);
  if (r < 0 || !follow_log) return r;
  vm_reload(vm, NULL);
  vm_runtime_view rv;
  vm_runtime_view_read(&rv, vm->rec);
  _cleanup_close_ int pidfd = rv.has_qemu ? vm_proc_pidfd(&rv.qemu) : -1;
  if (pidfd < 0) return 0;
  _cleanup_close_ int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (ino < 0 || inotify_add_watch(ino, vm->paths.serial_log, IN_MODIFY) < 0)
    return qvm_error_set_errno(err, errno, "cannot watch '%s'", vm->paths.serial_log);
  return follow(log, to, ino, pidfd, vm->paths.serial_log, err);
}

int qvm_vm_logs(qvm_vm *vm, int fd, unsigned flags, qvm_error **err) {
  _cleanup_close_ int log = open(vm->paths.serial_log, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (log < 0 && errno == ENOENT) return 0; /* never started: no output yet */
  if (log < 0) return qvm_error_set_errno(err, errno, "cannot open '%s'", vm->paths.serial_log);
  log_out out = {.fd = fd, .raw = flags & QVM_VM_LOGS_RAW};
  int r = logs_copy(vm, log, &out, flags & QVM_VM_LOGS_FOLLOW, err);
  if (r >= 0) r = log_emit(&out, "", 0, true, err); /* what a split left held back */
  return r;
}
