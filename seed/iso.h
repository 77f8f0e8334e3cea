/* SPDX-License-Identifier: MIT */
#ifndef QVM_SEED_ISO_H
#define QVM_SEED_ISO_H

/* Internals of the ISO9660 writer, shared by iso_tree.c (names, tree) and
 * iso_write.c (layout, descriptors, records). */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <qvm/seed.h>

#define ISO_BLOCK 2048u
#define ISO_MAX_DEPTH 8  /* ECMA-119 6.8.2.1: directory levels incl. root */
#define ISO_MAX_NAME 255 /* bytes in a Rock Ridge name */
#define ISO_JOLIET_MAX_UNITS 64

enum { TREE_PRIMARY = 0, TREE_JOLIET = 1, TREE_COUNT = 2 };

typedef struct iso_node iso_node;
struct iso_node {
  char *name; /* the real name (Rock Ridge NM) */
  bool is_dir;
  iso_node *parent;
  iso_node **kids[TREE_COUNT]; /* children, sorted the way each tree wants */
  size_t n_kids, cap_kids;
  unsigned depth; /* root = 1 */

  char id[16]; /* primary identifier, d-characters, "NAME.EXT;1" */
  uint8_t id_len;
  uint8_t jid[2 * ISO_JOLIET_MAX_UNITS + 4]; /* Joliet identifier, UCS-2BE */
  uint8_t jid_len;

  /* file content: exactly one of data / host_path */
  uint8_t *data;
  char *host_path;
  uint64_t size;

  /* layout */
  uint32_t lba;                 /* file data */
  uint32_t dir_lba[TREE_COUNT]; /* directory extent */
  uint32_t dir_size[TREE_COUNT];
  uint16_t dir_num[TREE_COUNT];    /* path table number (1 = root) */
  uint32_t ce_lba, ce_off, ce_len; /* continuation of its record in its parent */
};

struct qvm_seed_iso {
  iso_node *root;
  char volume_id[17];
  int64_t epoch;
  iso_node **dirs[TREE_COUNT]; /* breadth-first, path-table order */
  size_t n_dirs;
  iso_node **files; /* data order */
  size_t n_files;
  uint32_t root_ce_lba, root_ce_off, root_ce_len; /* root "." (the ER entry) */
};

/* iso_read.c: qvm_seed_read_iso on an image in memory (path: for messages). */
int iso_read_buffer(qvm_seed_file **out, size_t *n_out, const uint8_t *img, size_t len,
                    const char *path, qvm_error **err);

/* iso_tree.c: names and sorting. Gives every child of every directory its
 * primary and Joliet identifiers and fills kids[] for both trees. */
int iso_tree_finish(qvm_seed_iso *iso, qvm_error **err);
void iso_node_free(iso_node *n);

#endif
