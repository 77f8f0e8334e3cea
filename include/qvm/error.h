/* SPDX-License-Identifier: MIT */
#ifndef QVM_ERROR_H
#define QVM_ERROR_H

#include <qvm/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Contract of every public header in include/qvm/:
 * - Every qvm function that can fail returns 0 or one of the negative codes
 *   below and takes `qvm_error **err` as its last argument. On failure it
 *   sets *err exactly once (when err is not NULL); on success it leaves *err
 *   alone. The caller owns the error and frees it with qvm_error_free().
 * - What comes back through an `out` pointer belongs to the caller, who frees
 *   it with the matching qvm_*_free() (or free() where a header says so).
 *   "Borrowed" results live as long as the object they came from.
 * - Nothing in libqvm prints, and nothing suggests a command-line flag: an
 *   error says what went wrong (the message) and what kind of thing it was
 *   (the code, and for some a class); the program using libqvm decides what
 *   to tell a person to do.
 * - Threads: libqvm keeps no global mutable state, and starts a thread only
 *   inside an image pull (qvm_image_pull, and create/up with an --image
 *   that is pulled on first use: one worker that hashes and decompresses
 *   while the calling thread downloads; joined before the call returns,
 *   with every signal blocked in it).
 *   Different objects (a qvm_vm, a qvm_ssh, a qvm_seed_iso) may be used
 *   from different threads at once; one object must not be used by two
 *   threads at the same time. Functions that take no object (qvm_vm_create,
 *   qvm_vm_list, qvm_vm_remove, parsers, key generation) are safe from
 *   several threads. Operations on one VM, also from other processes, are
 *   serialized by the VM's lock file (QVM_EBUSY when it is held too long).
 *   libssh2 and libcurl are initialized once, on first use, under
 *   pthread_once. The one exception is qvm_vm_run(), which runs the VM's
 *   supervisor in the calling process: it blocks SIGTERM, SIGINT, SIGHUP
 *   and SIGCHLD (it reads them through a signalfd), ignores SIGPIPE and
 *   SIGUSR1, and sets the umask to 077, for good; call it from a program's
 *   main thread with no other libqvm call running (`qvm run` does).
 * - The functions of this header are safe from any thread.
 *
 * The codes are stable (part of the ABI); qvm_error_code_name() gives each a
 * stable name for machine-readable output.
 */
enum {
  QVM_OK = 0,
  QVM_EINVAL = -1,    /* bad argument or input: names, sizes, YAML, packets */
  QVM_ENOTFOUND = -2, /* a VM, file or key that does not exist */
  QVM_EEXISTS = -3,   /* already exists */
  QVM_ETIMEOUT = -4,  /* a bounded wait ran out; the message names the phase */
  QVM_EBUSY = -5,     /* locked by another operation; the message names it */
  QVM_EQMP = -6,      /* QEMU answered with an error; see qvm_error_class() */
  QVM_ESYS = -7,      /* a system call failed; see qvm_error_errno() */
  QVM_EPROTO = -8,    /* a peer (QEMU, guest, sshd) broke its protocol */
  QVM_EAUTH = -9,     /* authentication or host-key verification failed */
  /* Something this host lacks: KVM when "kvm" was asked for, root or
   * CAP_NET_ADMIN for a bridge, a program qvm runs (QEMU, qemu-img). */
  QVM_EUNAVAIL = -10,
  QVM_EGUEST = -11, /* the guest misbehaved or a command in it failed (a
                       provision step, cloud-init); the message says which */
  QVM_EPERM = -12,  /* the system refused: EACCES or EPERM (see qvm_error_errno()) */
  /* The VM's state does not allow the operation: it is running where it
   * must be stopped (remove without force), or not running where it must
   * run (ssh, exec). A VM locked by another operation is QVM_EBUSY. */
  QVM_ECONFLICT = -13,
};

typedef struct qvm_error qvm_error;

QVM_API int qvm_error_code(const qvm_error *err);
/* errno for QVM_ESYS (and sometimes others), 0 otherwise. */
QVM_API int qvm_error_errno(const qvm_error *err);
/* One lowercase phrase, no trailing period. Never NULL. */
QVM_API const char *qvm_error_message(const qvm_error *err);
/* A machine-readable class, e.g. QEMU's "GenericError", or NULL. Besides
 * QEMU's classes and the ssh ones (include/qvm/ssh.h), the vm functions set
 * these, so a program can tell a person what to do next:
 *   "VmNotRunning"       it must run: ssh, exec (QVM_ECONFLICT), ip (QVM_ENOTFOUND)
 *   "VmRunning"          remove without force of a running VM (QVM_ECONFLICT)
 *   "NoSshForward"       a user-net VM that recorded no ssh port forward
 *   "NoNetwork"          a VM without network: only its console reaches it
 *   "UserNetwork"        ip of a user-net VM: it is reached on 127.0.0.1
 *   "NoLease"            ip: no DHCP lease in time (QVM_ETIMEOUT)
 *   "KvmUnusable"        "kvm" was asked for, KVM is not usable (QVM_EUNAVAIL)
 *   "QemuMissing"        QEMU (or $QVM_QEMU) is not in PATH (QVM_EUNAVAIL)
 *   "BridgeNeedsAdmin"   bridge mode without root/CAP_NET_ADMIN (QVM_EUNAVAIL)
 *   "IsolatedNeedsAdmin" an isolated bridge port (sandbox network
 *                        isolated-bridge) without root/CAP_NET_ADMIN (QVM_EUNAVAIL)
 *   "ImageNamesFile"     an image names another file QEMU would open;
 *                        allow_backing accepts it; the subject is the
 *                        drive's path (NULL: the VM's image)
 *   "ImageDataFile"      a qcow2 external data file: only a raw format helps
 *   "ImageNotADisk"      a raw image that holds no disk: image_format "raw"
 *                        boots it anyway
 *   "SeedUnusedNoCloudInit", "SeedUnusedSeedIso"
 *                        cloud-configs, keys or a hostname with no_cloud_init
 *                        or seed_iso, which build no seed
 *   "ImageInUse"         image remove of an image vms use (QVM_ECONFLICT); the
 *                        subject is their names, separated by spaces
 *   "NoRuntimeDir"       not root and neither QVM_RUNTIME_DIR nor XDG_RUNTIME_DIR
 *                        is set (QVM_ENOTFOUND); the subject names the variable
 *   "NoStateDir"         not root and no QVM_STATE_DIR, XDG_DATA_HOME or HOME
 *   "ImageUnknown"       an image reference that is no url, file, stored
 *                        image or catalog alias (QVM_ENOTFOUND)
 *   "ImageUnverified"    a pull of a url with no digest or checksum file
 *                        to verify it with (QVM_EINVAL)
 *   "CloudInitError"     up: cloud-init reported an error (QVM_EGUEST)
 *   "UpSpecDiffers"      up: the VM exists with another spec (QVM_EEXISTS)
 *   "UpNotByUp"          up: the VM exists and was not made by up
 *   "UpGuestUnreachable" up: the VM has no network qvm can reach
 *   "UpInProgress"       up: another up of the same name holds its lock
 *   "NotSandbox"         sandbox destroy/extend of a VM that is no sandbox
 *                        (QVM_ECONFLICT)
 *   "SandboxExpired"     a sandbox past its deadline: extend (QVM_ECONFLICT),
 *                        or any call that found and removed it (QVM_ENOTFOUND)
 * Programs may match on them; messages may change, classes do not. */
QVM_API const char *qvm_error_class(const qvm_error *err);
/* What the error is about, for a hint: the VM's name ("start it"), a
 * drive's path (see the classes above), or NULL. Borrowed from err. */
QVM_API const char *qvm_error_subject(const qvm_error *err);
/* A stable name for a code: "EINVAL", "ETIMEOUT", "EUNAVAIL", ...;
 * "EUNKNOWN" for a code this library does not know. */
QVM_API const char *qvm_error_code_name(int code);
QVM_API void qvm_error_free(qvm_error *err);

#ifdef __cplusplus
}
#endif
#endif
