/* SPDX-License-Identifier: MIT */
/* GnuTLS behind a static libmicrohttpd, bound lazily: qvmd serves plain
 * HTTP on its UNIX socket unless it is given --tls-cert, and then GnuTLS
 * (with p11-kit, nettle, gmp and libtasn1, about 2.4 MiB of its resident
 * memory) has no reason to be mapped. lazy-trampolines.sh writes the trampolines for
 * every function libmicrohttpd calls; this file does the three symbols it
 * cannot:
 * - gnutls_global_init, which MHD_init calls from libmicrohttpd's
 *   constructor in every process: deferred to the library's loading
 *   (qvmd_gnutls_loaded), which the first other GnuTLS call causes;
 * - gnutls_global_deinit, from MHD_fini: nothing to do if GnuTLS never
 *   loaded;
 * - gnutls_malloc, a variable (a function pointer) that libmicrohttpd
 *   calls through: here it calls the library's own. */
#include "lazy.h"

#include <dlfcn.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <unistd.h>

extern struct qvm_lazy_lib qvm_lz_gnutls __attribute__((visibility("hidden")));
void qvmd_gnutls_loaded(void *handle) __attribute__((visibility("hidden")));

static void *gnutls_fn(void *handle, const char *name) {
  void *p = dlsym(handle, name);
  if (!p) {
    fprintf(stderr, "qvmd: GnuTLS has no %s\n", name);
    _exit(127);
  }
  return p;
}

void qvmd_gnutls_loaded(void *handle) {
  int (*init)(void) = (int (*)(void))gnutls_fn(handle, "gnutls_global_init");
  int rc = init();
  if (rc < 0) {
    fprintf(stderr, "qvmd: GnuTLS failed to initialize (%d)\n", rc);
    _exit(127);
  }
}

int gnutls_global_init(void) { return 0; }

void gnutls_global_deinit(void) {
  if (!qvm_lazy_is_loaded(&qvm_lz_gnutls)) return;
  ((void (*)(void))gnutls_fn(qvm_lz_gnutls.handle, "gnutls_global_deinit"))();
}

static void *lazy_gnutls_malloc(size_t size) {
  gnutls_alloc_function *real = qvm_lazy_sym(&qvm_lz_gnutls, "gnutls_malloc");
  return real && *real ? (*real)(size) : NULL;
}

gnutls_alloc_function gnutls_malloc = lazy_gnutls_malloc;
