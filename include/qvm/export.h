/* SPDX-License-Identifier: MIT */
#ifndef QVM_EXPORT_H
#define QVM_EXPORT_H

/*
 * QVM_API marks a function of libqvm's public API. libqvm is compiled with
 * -fvisibility=hidden and linked with a version script (cmake/libqvm.map)
 * that keeps only qvm_* global, so a symbol is exported exactly when it is
 * declared here, under include/qvm/, with QVM_API.
 */
#if defined(__GNUC__) || defined(__clang__)
#define QVM_API __attribute__((visibility("default")))
#else
#define QVM_API
#endif

#endif
