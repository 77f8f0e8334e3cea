/* SPDX-License-Identifier: MIT */
/* For tests/seed/cloudinit_keys.sh: a seed image whose user-data is a file
 * taken as it is, and keys added to a seed image.
 *   seed_key_tool write ISO USER-DATA-FILE
 *   seed_key_tool add ISO USER KEY-LINE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/seed.h>

int main(int argc, char **argv) {
  qvm_error *err = NULL;
  int r = -1;
  if (argc == 4 && !strcmp(argv[1], "write")) {
    FILE *f = fopen(argv[3], "rb");
    static char buf[1 << 20];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    qvm_seed_file files[] = {{"user-data", buf, n}, {"meta-data", "instance-id: i-t\n", 16}};
    r = f ? qvm_seed_write_iso(argv[2], files, 2, QVM_SEED_EPOCH_DEFAULT, 0600, &err) : -1;
  } else if (argc == 5 && !strcmp(argv[1], "add")) {
    r = qvm_seed_add_authorized_key(argv[2], argv[3], argv[4], NULL, &err);
  } else {
    fprintf(stderr, "usage: seed_key_tool write ISO FILE | add ISO USER KEY\n");
    return 2;
  }
  if (r < 0) fprintf(stderr, "seed_key_tool: %s\n", err ? qvm_error_message(err) : "failed");
  return r < 0;
}
