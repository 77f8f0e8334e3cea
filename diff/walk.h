/* SPDX-License-Identifier: MIT */
#ifndef QVM_DIFF_WALK_H
#define QVM_DIFF_WALK_H

/* The walk of one state's ext2/3/4 file system with libext2fs, reading
 * through diff_disk (an io_manager of ours), every field bounded. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diff/disk.h"
#include "diff/part.h"
#include "util/error.h"

#define DIFF_MAX_PATH 4096
#define DIFF_MAX_DEPTH 256
#define DIFF_MAX_TARGET 4096
#define DIFF_MAX_ENTRIES 4000000u

typedef struct diff_entry {
  char *path; /* absolute; bytes, NUL-terminated, no NUL inside */
  uint32_t path_len;
  char type;
  uint32_t mode, uid, gid, ino;
  uint64_t size, rdev;
  char *target; /* symlinks */
  uint32_t target_len;
  bool hashed;
  bool unhashable; /* a sparse file larger than its file system */
  uint8_t sha[32];
} diff_entry;

typedef struct diff_fs diff_fs;

typedef struct diff_tree {
  diff_entry *e; /* sorted by path, bytewise */
  size_t n, cap;
} diff_tree;

/* A path to leave out (with its subtree): fnmatch(3) of any glob. */
bool diff_ignored(const char *path, const char *const *globs, size_t n_globs);

int diff_fs_open(diff_fs **out, diff_disk *disk, const diff_part *part, qvm_error **err);
void diff_fs_close(diff_fs *fs);
/* Every inode reachable from / by path, minus the ignored. QVM_EINVAL for a
 * corrupt file system (a directory loop, a name with '/', a path or depth
 * or entry count beyond the bounds above). */
int diff_fs_walk(diff_tree *out, diff_fs *fs, const char *const *globs, size_t n_globs,
                 qvm_error **err);
/* Fills e->sha (regular files; cached by inode, so hard links are read
 * once). Sets e->unhashable instead for a file larger than the partition. */
int diff_fs_hash(diff_fs *fs, diff_entry *e, qvm_error **err);
uint64_t diff_fs_bytes_hashed(const diff_fs *fs);
/* The ext4 journal holds transactions the kernel would replay at the next
 * mount (a running VM's snapshot, an unclean shutdown): the walk, which does
 * not replay them, may miss the newest changes. */
bool diff_fs_journal_pending(const diff_fs *fs);
void diff_tree_clear(diff_tree *t);

/* Copies regular file e's content to fd (at most max bytes: QVM_EINVAL
 * naming the cap beyond, cap_what says which cap), computing its sha256
 * and md5 on the way; fd -1 only computes them. */
int diff_fs_copy(diff_fs *fs, const diff_entry *e, int fd, uint64_t max, const char *cap_what,
                 uint8_t sha[32], uint8_t md5[16], qvm_error **err);
/* Reads the regular file at absolute path (no symlink followed in its last
 * component) into a NUL-terminated buffer of at most max bytes.
 * QVM_ENOTFOUND when it is absent or not a regular file. */
int diff_fs_read_path(diff_fs *fs, const char *path, size_t max, char **out, size_t *out_len,
                      qvm_error **err);

#endif
