/* SPDX-License-Identifier: MIT */
/* The library test_lazy binds lazily: functions whose arguments cover what
 * the trampolines' first jump must carry through (six integer registers and the
 * stack, vector registers, a variadic call's count in rax). */
#include "lazytarget.h"

#define QVM_LT_API __attribute__((visibility("default")))

#include <stdarg.h>
#include <string.h>

QVM_LT_API long lt_sum9(long a, long b, long c, long d, long e, long f, long g, long h, long i) {
  return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h + 9 * i;
}

QVM_LT_API double lt_poly(double x, double a, double b, double c, double d, double e, double f,
                          double g, double h) {
  return ((((((((h * x + g) * x + f) * x + e) * x + d) * x + c) * x + b) * x + a));
}

QVM_LT_API double lt_vsum(int n, ...) {
  va_list ap;
  double s = 0;
  va_start(ap, n);
  for (int i = 0; i < n; i++) s += va_arg(ap, double);
  va_end(ap);
  return s;
}

QVM_LT_API size_t lt_len(const char *s) { return strlen(s); }
