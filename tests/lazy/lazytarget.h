/* SPDX-License-Identifier: MIT */
#ifndef QVM_TEST_LAZYTARGET_H
#define QVM_TEST_LAZYTARGET_H
#include <stddef.h>
long lt_sum9(long a, long b, long c, long d, long e, long f, long g, long h, long i);
double lt_poly(double x, double a, double b, double c, double d, double e, double f, double g,
               double h);
double lt_vsum(int n, ...);
size_t lt_len(const char *s);
#endif
