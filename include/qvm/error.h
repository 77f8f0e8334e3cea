/* SPDX-License-Identifier: MIT */
#ifndef QVM_ERROR_H
#define QVM_ERROR_H

#include <qvm/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Every qvm function that can fail returns 0 or one of these negative codes
 * and takes `qvm_error **err` as its last argument. On failure it sets *err
 * exactly once (when err is not NULL); on success it leaves *err alone. The
 * caller owns the error and frees it with qvm_error_free().
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
};

typedef struct qvm_error qvm_error;

QVM_API int qvm_error_code(const qvm_error *err);
/* errno for QVM_ESYS (and sometimes others), 0 otherwise. */
QVM_API int qvm_error_errno(const qvm_error *err);
/* One lowercase phrase, no trailing period. Never NULL. */
QVM_API const char *qvm_error_message(const qvm_error *err);
/* A machine-readable class, e.g. QEMU's "GenericError", or NULL. */
QVM_API const char *qvm_error_class(const qvm_error *err);
/* A short name for a code: "EINVAL", "ETIMEOUT", ... */
QVM_API const char *qvm_error_code_name(int code);
QVM_API void qvm_error_free(qvm_error *err);

#ifdef __cplusplus
}
#endif
#endif
