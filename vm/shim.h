/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_SHIM_H
#define QVM_VM_SHIM_H

/* The shim's own state, shared by shim.c (the poll loop, exit records) and
 * shim_launch.c (starting QEMU). */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <qvm/qmp.h>

#include "vm/handle.h"
#include "vm/net.h"

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
  vm_net *net;        /* bridge: DHCP server or watcher; NULL otherwise */
  shim_phase phase;
  int64_t deadline_ms; /* next escalation, -1 when none */
  int64_t repress_ms;  /* next power button press while waiting, -1 when none */
  int stop_timeout_s;
  bool kill_requested;
  bool guest_shutdown;
  char shutdown_reason[32];
  int64_t t_shim_us, t_spawn_us, t_qmp_us;
} shim;

int shim_launch_qemu(shim *s, qvm_error **err);
int shim_pidfd_open(pid_t pid);

#endif
