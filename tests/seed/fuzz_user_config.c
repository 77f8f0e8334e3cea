/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a user's cloud-config (untrusted file) through the check and,
 * when accepted, the multipart merge into user-data.
 */
#include <stdint.h>
#include <stdlib.h>

#include <qvm/seed.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  qvm_error *err = NULL;
  if (qvm_seed_check_user_config((const char *)data, size, "fuzz.yaml", &err) < 0) {
    qvm_error_free(err);
    return 0;
  }
  qvm_seed_spec spec = QVM_SEED_SPEC_INIT;
  spec.instance_id = "i-fuzz";
  spec.hostname = "fuzz";
  spec.user_config = (const char *)data;
  spec.user_config_len = size;
  char *out = NULL;
  size_t len = 0;
  if (qvm_seed_render_user_data(&out, &len, &spec, &err) < 0) abort(); /* checked above */
  free(out);
  return 0;
}
