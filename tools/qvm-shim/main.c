/* SPDX-License-Identifier: MIT */
/* qvm-shim: the per-VM supervisor that libqvm execs (include/qvm/shim.h). */
#include <qvm/shim.h>

int main(int argc, char **argv) { return qvm_shim_main(argc, argv); }
