/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_SHIM_H
#define QVM_VM_SHIM_H

/* The shim's own state, shared by shim.c (the poll loop, exit records) and
 * shim_launch.c (starting QEMU). */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "qmp/qmp.h"

#include "vm/handle.h"
#include "vm/net.h"
#include "vm/shim_ctl.h"

typedef enum shim_phase {
  SHIM_RUNNING,
  SHIM_POWERDOWN, /* system_powerdown sent; waiting for the guest */
  SHIM_QUIT,      /* quit (or SIGTERM) sent */
  SHIM_KILLED,    /* SIGKILL sent */
} shim_phase;

typedef struct shim {
  qvm_vm *vm;
  shim_config cfg;
  int sigfd;
  int pidfd; /* QEMU */
  pid_t qemu_pid;
  bool child; /* QEMU is our child (not adopted) */
  int qmp_client_fd;
  qvm_qmp *qmp;
  int events_fd;
  uint16_t ssh_port;
  int launch_attempt; /* 0 first; more after the SSH forward's port was taken */
  char runas[24];     /* "UID:GID" QEMU was told to drop to (-runas); "" when none */
  vm_net *net;        /* bridge: DHCP server or watcher; NULL otherwise */
  shim_phase phase;
  int64_t deadline_ms; /* next escalation, -1 when none */
  int64_t repress_ms;  /* next power button press while waiting, -1 when none */
  int stop_timeout_ms;
  bool kill_requested;
  bool guest_shutdown;
  char shutdown_reason[32];
  int64_t t_shim_us, t_spawn_us, t_qmp_us;
  off_t serial_cap, events_cap, qemu_cap; /* bytes; past them a log is rotated to NAME.1 */
  int serial_ino;                         /* inotify on serial.log and qemu.log, -1 when none */
  int64_t serial_quiet_ms;                /* a flood is looked at only this often */
  int64_t log_poll_ms;   /* without inotify: the next look at the logs, -1 with it */
  bool qmp_more;         /* QMP events may wait beyond the last pass's share */
  shim_ctl *ctl;         /* ctl.sock; NULL when it could not be set up */
  int incoming_fd;       /* a fork's migration stream (VM_INCOMING_FILE, unlinked); -1: boot */
  int64_t expires_at_us; /* the sandbox's deadline (realtime); 0: none (vm/ttl.c) */
  bool expired;          /* the deadline passed: stopping, then the VM is removed */
  bool notified;         /* READY=1 went to $NOTIFY_SOCKET (qvm run) */
  int watchdog_fd;       /* foreground: the pipe whose close ends QEMU; -1 when none */
  pid_t watchdog_pid;
  pid_t vfs_pids[QVM_VM_MOUNTS_MAX]; /* virtiofsd per virtiofs mount (vm_virtiofsd_start) */
  size_t n_vfs;
} shim;

/* The guest grows serial.log, qemu.log (through QEMU) and events.jsonl
 * (leases, QEMU events) as fast as it likes: past its cap the shim rotates
 * each to NAME.1, one generation. QVM_SERIAL_LOG_MAX, QVM_QEMU_LOG_MAX and
 * QVM_EVENTS_LOG_MAX (bytes, at least 4096) override the defaults. An event
 * line longer than VM_EVENT_LINE_MAX is written as its name, "truncated"
 * and its length. */
#define VM_SERIAL_LOG_MAX (8 << 20)
#define VM_QEMU_LOG_MAX (1 << 20)
#define VM_EVENTS_LOG_MAX (4 << 20)
#define VM_EVENT_LINE_MAX (64 << 10)

int shim_launch_qemu(shim *s, qvm_error **err);
/* Foreground (cfg.foreground): a process that terminates QEMU (s->pidfd)
 * once this process is gone or stop is called, however it went
 * (vm/shim_watchdog.c). stop closes the pipe and reaps it; call it only
 * when QEMU has exited (or should be ended), and before a new QEMU. */
int shim_watchdog_start(shim *s, qvm_error **err);
void shim_watchdog_stop(shim *s);
/* Appends {"event": name, "data": data (taken; may be NULL), ...} to
 * events.jsonl and to ctl.sock's subscribers. */
void shim_event(shim *s, const char *name, struct json_object *data);

/* The TTL (vm/ttl.c). load: the deadline from vm.json (at start, adopt,
 * and ctl.sock "expiry"); an unreadable vm.json keeps the one it had.
 * next_ms: when the loop must look again (monotonic ms; -1 none), at most
 * a minute ahead so that a realtime clock step is seen. check: past the
 * deadline, records qvm-expired once and begins a short graceful stop.
 * remove: after the exit record of an expired VM, removes it all (under
 * its lock); a failure is left to the next reconcile. */
#define SHIM_TTL_STOP_MS 2000
int shim_ttl_load(shim *s, qvm_error **err);
int64_t shim_ttl_next_ms(const shim *s);
void shim_ttl_check(shim *s);
void shim_ttl_remove(shim *s);
/* A fork: VM_INCOMING_FILE in the VM's directory is opened and unlinked
 * (one resume per file: a later start boots from the disk), and QEMU gets
 * it as -incoming fd:N. 0 when there is none. */
int shim_take_incoming(shim *s, qvm_error **err);
/* QEMU starts paused (-S): once QMP answers, checks that it is still in
 * 'prelaunch' and, when -runas was given, that it no longer runs as root,
 * then sends cont and checks that it is 'running'. A fork waits for its
 * incoming migration to complete first (QEMU is 'inmigrate', then 'paused'). */
int shim_start_guest(shim *s, qvm_error **err);
int shim_pidfd_open(pid_t pid);
/* For ctl.sock (shim_ctl.c): a graceful stop (powerdown, then quit, then
 * SIGKILL; timeout_ms before each escalation; a no-op once a stop or kill is
 * under way), a kill, and QEMU's queued events moved to events.jsonl. */
void shim_stop_begin(shim *s, int timeout_ms);
void shim_kill(shim *s);
void shim_drain_qmp(shim *s);
/* NULL when a /proc/PID/status text shows all four uids and gids at uid and
 * gid, no supplementary group but gid, no permitted or effective capability
 * and, when asked, no_new_privs; else what the process kept, as a phrase. */
const char *shim_status_unprivileged(const char *status, unsigned long uid, unsigned long gid,
                                     bool no_new_privs);

#endif
