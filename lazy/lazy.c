/* SPDX-License-Identifier: MIT */
#include "lazy.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "lazy binding is written for x86-64; configure with -DQVM_LAZY_LIBS=OFF"
#endif

static pthread_mutex_t lazy_lock = PTHREAD_MUTEX_INITIALIZER;

static _Noreturn void lazy_die(const struct qvm_lazy_lib *lib, const char *what, const char *why) {
  /* No caller can be told: the trampoline stands for a function of any type. The
   * dynamic loader would have refused to start the program at all. */
  fprintf(stderr,
          "qvm: cannot load %s%s%s, which this operation needs: %s; "
          "install the package that provides it and retry\n",
          lib->soname, what ? ": no symbol " : "", what ? what : "", why ? why : "unknown error");
  _exit(127);
}

void **qvm_lazy_resolve(struct qvm_lazy_lib *lib) {
  if (__atomic_load_n(&lib->state, __ATOMIC_ACQUIRE)) return lib->ptrs;
  pthread_mutex_lock(&lazy_lock);
  if (!lib->state) {
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) lazy_die(lib, NULL, dlerror());
    if (lib->loaded) lib->loaded(h);
    const char *name = lib->names;
    for (size_t i = 0; i < lib->n; i++, name += strlen(name) + 1) {
      dlerror();
      void *p = dlsym(h, name);
      if (!p) lazy_die(lib, name, dlerror());
      __atomic_store_n(&lib->ptrs[i], p, __ATOMIC_RELEASE);
    }
    lib->handle = h;
    __atomic_store_n(&lib->state, 1, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&lazy_lock);
  return lib->ptrs;
}

void *qvm_lazy_sym(struct qvm_lazy_lib *lib, const char *name) {
  qvm_lazy_resolve(lib);
  return dlsym(lib->handle, name);
}

bool qvm_lazy_is_loaded(const struct qvm_lazy_lib *lib) {
  return __atomic_load_n(&lib->state, __ATOMIC_ACQUIRE) != 0;
}

/* The trampolines' first jump lands here with the library in r10 and the trampoline's
 * index in r11, neither of which carries an argument in the SysV ABI. The
 * argument registers (rax too: a variadic call's count of vector
 * registers) are saved around the C resolver, and the call goes on to the
 * bound function as if the trampoline had jumped there directly: the return
 * address and any stack arguments are untouched. At entry rsp is 8 mod 16;
 * 8 pushes and 136 bytes make it 0 for the movaps and the call. */
__asm__(".text\n"
        ".globl qvm_lazy_slow\n"
        ".hidden qvm_lazy_slow\n"
        ".type qvm_lazy_slow,@function\n"
        "qvm_lazy_slow:\n"
        "  push %rdi\n  push %rsi\n  push %rdx\n  push %rcx\n"
        "  push %r8\n  push %r9\n  push %rax\n  push %r11\n"
        "  sub $136, %rsp\n"
        "  movaps %xmm0, 0(%rsp)\n  movaps %xmm1, 16(%rsp)\n"
        "  movaps %xmm2, 32(%rsp)\n  movaps %xmm3, 48(%rsp)\n"
        "  movaps %xmm4, 64(%rsp)\n  movaps %xmm5, 80(%rsp)\n"
        "  movaps %xmm6, 96(%rsp)\n  movaps %xmm7, 112(%rsp)\n"
        "  mov %r10, %rdi\n"
        "  call qvm_lazy_resolve\n"
        "  mov %rax, %r10\n"
        "  movaps 0(%rsp), %xmm0\n  movaps 16(%rsp), %xmm1\n"
        "  movaps 32(%rsp), %xmm2\n  movaps 48(%rsp), %xmm3\n"
        "  movaps 64(%rsp), %xmm4\n  movaps 80(%rsp), %xmm5\n"
        "  movaps 96(%rsp), %xmm6\n  movaps 112(%rsp), %xmm7\n"
        "  add $136, %rsp\n"
        "  pop %r11\n  pop %rax\n  pop %r9\n  pop %r8\n"
        "  pop %rcx\n  pop %rdx\n  pop %rsi\n  pop %rdi\n"
        "  jmp *(%r10,%r11,8)\n"
        ".size qvm_lazy_slow, .-qvm_lazy_slow\n");
