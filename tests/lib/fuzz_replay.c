/* SPDX-License-Identifier: MIT */
/*
 * Replays a fuzz target over files or directories of inputs, the way
 * libgit2's fuzzers/standalone_driver.c does, so ctest exercises every fuzz
 * target's corpus in normal and sanitizer builds without libFuzzer.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  char *buf = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&buf, &len);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) fwrite(chunk, 1, n, mem);
  fclose(mem);
  fclose(f);
  /* Copy into an exact-size heap block so ASan catches overreads. */
  uint8_t *exact = malloc(len ? len : 1);
  memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int replay_path(const char *path, int *count) {
  struct stat st;
  if (stat(path, &st) < 0) {
    perror(path);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    (*count)++;
    return replay_file(path);
  }
  struct dirent **names = NULL;
  int n = scandir(path, &names, NULL, alphasort);
  if (n < 0) {
    perror(path);
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < n; i++) {
    if (names[i]->d_name[0] != '.') {
      char *child = NULL;
      if (asprintf(&child, "%s/%s", path, names[i]->d_name) < 0) abort();
      if (replay_path(child, count) < 0) rc = -1;
      free(child);
    }
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  if (argc < 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  int count = 0, rc = 0;
  for (int i = 1; i < argc; i++)
    if (replay_path(argv[i], &count) < 0) rc = 1;
  if (count == 0) {
    fprintf(stderr, "no inputs found: an empty corpus tests nothing\n");
    return 1;
  }
  printf("replayed %d inputs\n", count);
  return rc;
}
