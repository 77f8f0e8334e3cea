/* SPDX-License-Identifier: MIT */
#ifndef QVM_UP_H
#define QVM_UP_H

/*
 * `qvm up`: from an image to a verified SSH session, and `qvm down`. Also the
 * qvm.yaml file that describes one or more VMs.
 *
 * up = create (keys, seed, overlay) + start + a sequence of readiness phases,
 * each one timed and appended to the VM's events.jsonl as
 * {"event":"UP_PHASE","phase":NAME,"elapsed_ms":N,...}:
 *
 *   started   QEMU runs under its shim
 *   serial    the guest wrote something on its serial console
 *   lease     the guest's IP is known (bridge mode; user mode skips it)
 *   tcp       the guest's sshd sent its banner. A guest with qvm's seed
 *             announces that sshd comes next (it opens a virtio-serial
 *             port in cloud-init's init stage; QEMU sends VSERPORT_CHANGE)
 *             and up probes at once and every 50 ms from then on (detail
 *             "announced"); without it the probes back off to 250 ms
 *             (detail "banner poll"). The announcement is a hint; the
 *             banner decides.
 *   ssh       authenticated, with the host key pinned before the first boot,
 *             on the connection whose banner the tcp phase saw
 *   cloud-init  cloud-init finished without errors (the guest's
 *             /run/cloud-init/result.json, waited for over SSH by a shell
 *             loop, or `cloud-init status --wait --long` where cloud-init
 *             is disabled or there is no systemd; then qvm's readiness
 *             marker on serial)
 *   provision the recorded provision steps ran (first up only)
 *
 * Up waits for them in one event loop, not by sleeping: inotify on the
 * VM's logs, QEMU's and the shim's pidfds, a timer. A phase that does not
 * happen fails `up` with QVM_ETIMEOUT naming it, the tail of the serial log
 * and, if SSH works, `cloud-init status --long`; QEMU or the shim exiting
 * fails it at once (QVM_ECONFLICT), naming which. The library prints nothing:
 * progress goes through on_phase.
 *
 * Contract (and include/qvm/error.h for what every header shares):
 * - Ownership: a qvm_vm_file is the caller's (qvm_vm_file_free); names and
 *   options it returns are borrowed from it. qvm_up_result is the caller's
 *   storage, filled in.
 * - Threads: qvm_vm_up may run for different VMs in different threads; two
 *   ups of one name wait for each other (QVM_EBUSY, class "UpInProgress",
 *   after a while). Callbacks run in the calling thread.
 * - Errors: those of create and start (include/qvm/vm.h), QVM_ETIMEOUT for a
 *   phase, QVM_EGUEST when cloud-init reported an error, QVM_EEXISTS for a
 *   VM with another spec, QVM_EAUTH for a changed host key.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t */

#include <qvm/error.h>
#include <qvm/export.h>
#include <qvm/ssh.h>
#include <qvm/vm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- qvm.yaml ------------------------------------------------------------ */

typedef struct qvm_vm_file qvm_vm_file;

/* Parses qvm.yaml (libyaml):
 *
 *   vms:
 *     NAME:
 *       image: PATH            # relative paths are relative to the file
 *       cpus: 2
 *       memory: 1G
 *       disk: 10G
 *       net: user              # user[,restrict] | none | bridge[=NAME][,dhcp=external]
 *                              # or {mode: bridge, bridge: NAME, dhcp: external,
 *                              #     subnet: A.B.C.D/N, nat: true, restrict: true}
 *       ports: ["8080:80", "5353:53/udp", {host: 8081, guest: 81, proto: udp}]
 *       user: qvm
 *       hostname: NAME
 *       cloud_config: FILE     # or a list of files (cloud-config or #! script)
 *       ssh_keys: [FILE]       # extra public keys to authorize
 *       provision:
 *         - shell: CMD
 *         - script: FILE
 *         - file: SRC
 *           to: DST
 *         - shell: CMD
 *           sudo: true
 *       firmware: bios         # bios | uefi
 *       accel: auto            # auto | kvm | tcg
 *       kernel/initrd/append   # direct kernel boot
 *
 * Unknown keys and bad values are QVM_EINVAL with "FILE:LINE:COL:", what was
 * found and what is allowed. */
QVM_API int qvm_vm_file_load(qvm_vm_file **out, const char *path, qvm_error **err);
QVM_API void qvm_vm_file_free(qvm_vm_file *file);
QVM_API size_t qvm_vm_file_count(const qvm_vm_file *file);
/* In file order. Borrowed: valid until qvm_vm_file_free. */
QVM_API const char *qvm_vm_file_name(const qvm_vm_file *file, size_t i);
QVM_API const qvm_vm_create_options *qvm_vm_file_options(const qvm_vm_file *file, size_t i);
/* -1 if the file has no VM of that name. */
QVM_API ssize_t qvm_vm_file_find(const qvm_vm_file *file, const char *name);

/* ---- up ------------------------------------------------------------------ */

typedef enum qvm_up_phase {
  QVM_UP_STARTED,
  QVM_UP_SERIAL,
  QVM_UP_LEASE,
  QVM_UP_TCP,
  QVM_UP_SSH,
  QVM_UP_CLOUD_INIT,
  QVM_UP_PROVISION,
  QVM_UP_N_PHASES,
} qvm_up_phase;

QVM_API const char *qvm_up_phase_name(qvm_up_phase phase);

typedef enum qvm_up_phase_status {
  QVM_UP_PHASE_DONE,    /* happened; elapsed_ms is from the start of up */
  QVM_UP_PHASE_SKIPPED, /* does not apply (user net: lease; no cloud-init) */
} qvm_up_phase_status;

#define QVM_UP_OPTIONS_VERSION 1
typedef struct qvm_up_options {
  unsigned version;             /* QVM_UP_OPTIONS_VERSION */
  int timeout_ms;               /* whole up; 0: 600000 */
  bool allow_cloud_init_errors; /* a cloud-init error does not fail up */
  bool wait_cloud_init;         /* default true (set by QVM_UP_OPTIONS_INIT) */
  /* A phase that fails after QEMU started leaves the VM running for
   * inspection; by default up stops it (graceful for 10 s, then forced)
   * and says so: no QEMU is left burning CPU. */
  bool keep_on_failure;
  /* Called as each phase happens (may be NULL). */
  void (*on_phase)(void *ctx, qvm_up_phase phase, qvm_up_phase_status status, int64_t elapsed_ms,
                   const char *detail);
  /* Provision output, live, byte-exact (may be NULL: provision.log only). */
  qvm_ssh_output_fn on_output;
  void *ctx;
} qvm_up_options;

#define QVM_UP_OPTIONS_INIT                                                                        \
  { .version = QVM_UP_OPTIONS_VERSION, .timeout_ms = 600000, .wait_cloud_init = true }

typedef enum qvm_up_outcome {
  QVM_UP_CREATED,       /* a new VM was created and brought up */
  QVM_UP_STARTED_AGAIN, /* it existed, stopped, with the same spec: started */
  QVM_UP_ALREADY_UP,    /* it was running with the same spec: nothing done */
} qvm_up_outcome;

typedef struct qvm_up_result {
  qvm_up_outcome outcome;
  int64_t phase_ms[QVM_UP_N_PHASES]; /* -1: skipped or not reached */
  qvm_up_phase failed_phase;         /* valid when up failed in a phase */
  bool failed_in_phase;
  char ssh_host[64]; /* how to reach it */
  int ssh_port;
  char ip_source[32]; /* bridge: where the IP came from */
} qvm_up_result;

/* Brings VM `name` up with `create` (its spec). An existing VM with the same
 * spec is started if needed (exit 0, outcome says which); a different spec is
 * QVM_EEXISTS listing each difference and what to do. On failure the VM is
 * left as it is (running or not) for inspection; `qvm down --rm` removes it. */
QVM_API int qvm_vm_up(qvm_up_result *out, const char *name, const qvm_vm_create_options *create,
                      const qvm_up_options *opts, qvm_error **err);

#ifdef __cplusplus
}
#endif
#endif
