/* SPDX-License-Identifier: MIT */
#ifndef QVM_TESTS_QEMU_PROC_H
#define QVM_TESTS_QEMU_PROC_H

/*
 * Starts a real qemu-system-x86_64 (TCG) for QMP tests and benchmarks, with
 * its monitor on a listening socket that the caller created and passes as
 * fd 3. The child gets PR_SET_PDEATHSIG so that QEMU never outlives a test
 * that crashed; qemu_proc_stop() kills and reaps it on every other path.
 */
#include <stdbool.h>
#include <sys/types.h>

typedef struct qemu_proc {
  pid_t pid;
  char *dir;        /* private temp dir: qmp.sock, serial.log, qemu.err */
  char sock[128];   /* QMP socket path */
  char serial[256]; /* serial console log */
  char errlog[256]; /* QEMU's stderr */
  int status;       /* wait status once reaped */
} qemu_proc;

/* kernel/initrd may be NULL (no guest: firmware only). Starts paused (-S).
 * Returns 0, or -1 with a reason in why. */
int qemu_proc_start(qemu_proc *q, const char *kernel, const char *initrd, char *why,
                    size_t why_len);
/* Waits up to timeout_ms for QEMU to exit by itself; true if it did. */
bool qemu_proc_wait_exit(qemu_proc *q, int timeout_ms);
/* Waits up to timeout_ms for an exact line on the serial console. */
bool qemu_proc_wait_serial(qemu_proc *q, const char *line, int timeout_ms);
/* Kills (if still running) and reaps QEMU, removes the temp dir. Idempotent. */
void qemu_proc_stop(qemu_proc *q);
/* The last lines of the serial log and QEMU's stderr, for failure messages
 * (static storage). */
const char *qemu_proc_tail(qemu_proc *q);

#endif
