/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_ARGV_H
#define QVM_VM_ARGV_H

/*
 * The QEMU command line as a pure function of the spec and a few runtime
 * inputs (fd numbers, the resolved accelerator, the SSH port). No I/O: the
 * golden tests in tests/vm/ pin its output down, one option per line.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "vm/spec.h"
#include <qvm/seed.h>

/* The guest's readiness port (see add_virtio_serial in argv.c): its name in
 * the guest (/dev/virtio-ports/NAME) and its device id in QMP events. */
#define VM_READY_PORT_NAME QVM_SEED_READY_PORT
#define VM_READY_PORT_ID "qvm-ready0"

typedef struct vm_argv_input {
  const vm_spec *spec;
  const char *qemu;   /* the binary, argv[0] */
  const char *vm_dir; /* resolves relative paths (overlay, UEFI vars) */
  vm_accel accel;     /* resolved: VM_ACCEL_KVM or VM_ACCEL_TCG */
  int qmp_fd;         /* a listening socket QEMU inherits; < 0: use qmp_path */
  const char *qmp_path;
  int console_fd; /* same for the serial console socket */
  const char *console_path;
  const char *serial_log; /* everything the guest writes to its serial port */
  uint16_t ssh_port;      /* user net with ssh_forward: host port for guest 22 */
  int tap_fd;             /* bridge net: an open tap */
  int incoming_fd;        /* > 0: a migration stream to resume from (-incoming fd:N); 0: boot */
  const char *qga_path;   /* a socket QEMU listens on for the guest agent; NULL: none */
  bool sandbox;           /* -sandbox on (QEMU built with seccomp) */
  /* "UID:GID": QEMU drops to them (-runas) once it has opened everything,
   * before the guest's main loop; NULL: QEMU keeps qvm's credentials. */
  const char *runas;
  /* virtiofs mounts: the directory of their vhost-user sockets (mount
   * "qvmN" listens on DIR/qvmN.vfs, vm_virtiofsd_start). */
  const char *mount_sock_dir;
} vm_argv_input;

typedef struct vm_argv {
  char **argv; /* NULL-terminated */
  size_t argc;
} vm_argv;

int vm_argv_build(vm_argv **out, const vm_argv_input *in, qvm_error **err);
void vm_argv_free(vm_argv *a);
QVM_DEFINE_CLEANUP(vm_argv, vm_argv_free)

/* Doubles every comma, as QEMU's option parser wants. Caller frees. */
char *vm_qemu_escape(const char *s);
/* One option (with its value) per line; caller frees. */
char *vm_argv_format(const vm_argv *a);

#endif
