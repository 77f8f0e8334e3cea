/* SPDX-License-Identifier: MIT */
#ifndef QVM_SHIM_H
#define QVM_SHIM_H

/*
 * qvm-shim, the per-VM supervisor, as a program (tools/qvm-shim/main.c is
 * only a call to this). libqvm execs it detached for `qvm start` and for a
 * re-attach; nobody else is meant to run it by hand.
 *
 * Contract:
 *   argv: qvm-shim NAME           start the VM's QEMU and supervise it
 *         qvm-shim NAME --adopt   supervise the QEMU vm.json records (its
 *                                 shim died)
 *   fd 3: optional, a pipe: gets "OK\n" once QEMU's monitor answered and the
 *         guest runs, or "E<code> <message>" when the start failed; then it
 *         is closed. Anything else on fd 3 is left alone.
 *   fd 4: optional, the VM's lock file (the caller's flock, inherited): held
 *         until QEMU's monitor answered, so a caller killed mid-start cannot
 *         let a second start in.
 *   environment: QVM_STATE_DIR and QVM_RUNTIME_DIR (absolute), PATH, and the
 *         QVM_* variables listed in vm/shim_launch.c.
 * The shim calls setsid() itself (it is already a session leader when
 * libqvm started it), ignores SIGPIPE, and serves ctl.sock in the VM's
 * runtime dir (docs/shim-protocol.md). It returns the `qvm run` exit status
 * (QVM_RUN_EXIT_*: 0 when the guest shut down, 1 on an error, ...).
 */
#include <qvm/export.h>

#ifdef __cplusplus
extern "C" {
#endif

QVM_API int qvm_shim_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif
