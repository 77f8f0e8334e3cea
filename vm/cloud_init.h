/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_CLOUD_INIT_H
#define QVM_VM_CLOUD_INIT_H

/*
 * Waiting for cloud-init in a guest (qvm up's cloud-init phase) without
 * running Python there: VM_CLOUD_INIT_WAIT is a POSIX shell script run over
 * SSH; it waits for /run/cloud-init/result.json, which cloud-init writes at
 * the end of its last stage with the errors of every stage, and prints
 * VM_CLOUD_INIT_RESULT_HEADER, a newline and the file. `cloud-init status
 * --wait` did the same, but it is a Python program: under TCG it took 3 s of
 * the one vCPU to start, right as the config stage started its own Python,
 * and then polled 4 times a second, so cloud-init finished that much later.
 *
 * The loop is the shell's: under bash, `read -t` on a stdin that stays open
 * (the caller gives it a pipe it never writes to) sleeps without a fork;
 * another shell forks a sleep each second. Exit 127: no cloud-init in the
 * image. Without /run/cloud-init/enabled (cloud-init disabled, or too old to
 * write it) or without systemd, the script runs `cloud-init status --wait
 * --long`, whose output has no header.
 */
#include <stddef.h>

#define VM_CLOUD_INIT_RESULT_HEADER "qvm-cloud-init-result.json"

extern const char VM_CLOUD_INIT_WAIT[];

/* The errors in result.json's text (the guest's, so anything): 0 none, 1
 * some, -1 not the document cloud-init writes ({"v1": {"errors": [...]}}).
 * len bytes at most are read; a NUL ends the text earlier. */
int vm_cloud_init_result_errors(const char *text, size_t len);

#endif
