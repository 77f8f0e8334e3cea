/* SPDX-License-Identifier: MIT */
/*
 * The audit log is a file its owner can edit: arbitrary bytes as the log go
 * through qvm_audit_verify and qvm_audit_list. Neither may crash; verify's
 * numbers must agree with each other, and an append after an intact chain
 * must keep it intact.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <qvm/audit.h>

#define FAIL() (fprintf(stderr, "fuzz_vm_audit: check at line %d failed\n", __LINE__), abort())

static char root[64], dir[400], logpath[512];

static void cleanup(void) {
  unlink(logpath);
  rmdir(dir);
  rmdir(root);
}

static void init(void) {
  snprintf(root, sizeof root, "/tmp/fuzz-vm-audit-XXXXXX");
  if (!mkdtemp(root)) FAIL();
  snprintf(dir, sizeof dir, "%s/audit", root);
  if (mkdir(dir, 0700) < 0) FAIL();
  snprintf(logpath, sizeof logpath, "%s/audit.jsonl", dir);
  setenv("QVM_STATE_DIR", root, 1);
  atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!logpath[0]) init();
  FILE *f = fopen(logpath, "w");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) FAIL();
  qvm_audit_verify_result res;
  if (qvm_audit_verify(&res, NULL, NULL) < 0) FAIL();
  if (res.bad_line && res.bad_line != res.records + 1) FAIL(); /* the first bad one */
  if (res.records && strlen(res.head) != 64) FAIL();
  char *json = NULL;
  if (qvm_audit_list(&json, NULL, NULL) < 0 || !json || json[0] != '[') FAIL();
  free(json);
  /* Only an intact log that ends in a newline (or is empty) takes an append. */
  if (!res.bad_line && (size == 0 || data[size - 1] == '\n')) {
    if (qvm_audit_append(NULL, "fuzz", "{\"a\":1}", NULL) < 0) FAIL();
    qvm_audit_verify_result again;
    if (qvm_audit_verify(&again, NULL, NULL) < 0 || again.bad_line ||
        again.records != res.records + 1)
      FAIL();
  }
  return 0;
}
