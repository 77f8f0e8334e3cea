/* SPDX-License-Identifier: MIT */
#ifndef QVM_IMAGE_BUILD_H
#define QVM_IMAGE_BUILD_H

/*
 * Offline image build: a cloud image made from distribution packages with
 * mmdebstrap, laid out like Debian's own cloud images (an MBR partition
 * table, GRUB for BIOS boot in the gap after the MBR, one ext4 root
 * partition filling the disk) with cloud-init (NoCloud only), OpenSSH and
 * the guest agent, written as qcow2.
 *
 * mmdebstrap, mkfs.ext4, sfdisk and qemu-img run by fork/exec with argv
 * lists; nothing user-given reaches a shell. The customize hook
 * (image/build-customize.sh) is a shell script compiled into the binary
 * (cmake/EmbedFile.cmake) and written 0700 into the build's temp dir, so it
 * always matches this code and needs no install path.
 *
 * Needs root (mmdebstrap --mode=root, chroot). While img_build runs it
 * blocks SIGINT, SIGTERM and SIGHUP in the calling thread and waits for
 * them itself: on one it stops the running tool, unmounts what is left
 * under the temp dir, removes it, and fails (QVM_ESYS, errno EINTR). Call
 * it from a program's main thread.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct img_distro {
  const char *name;  /* "debian-12" */
  const char *suite; /* "bookworm" */
  const char *title; /* "Debian GNU/Linux 12" (GRUB's menu entry) */
} img_distro;

/* NULL if name is not in the table. */
const img_distro *img_distro_find(const char *name);
/* The i-th distribution of the table, NULL past the end. */
const img_distro *img_distro_at(size_t i);
/* The packages every image gets (NULL-terminated). */
extern const char *const img_build_base_packages[];

#define IMG_BUILD_SIZE_DEFAULT (UINT64_C(3) << 30)
#define IMG_BUILD_SIZE_MIN (UINT64_C(1) << 30)
/* An MBR partition ends before 2 TiB. */
#define IMG_BUILD_SIZE_MAX ((UINT64_C(2) << 40) - (UINT64_C(1) << 20))
#define IMG_BUILD_PACKAGES_MAX 256
#define IMG_BUILD_MIRROR_MAX 1024

/* phase: "bootstrap", "filesystem", "bootloader", "convert"; called when a
 * phase begins and then about once a second while it runs (same phase). */
typedef void img_build_progress_fn(const char *phase, void *userdata);

typedef struct img_build_opts {
  const char *distro;          /* a name of the table */
  const char *const *packages; /* extra packages, on top of the base ones */
  size_t n_packages;
  uint64_t size;       /* virtual disk bytes, a multiple of 1 MiB; 0: default */
  const char *mirror;  /* http(s)://, file:// or copy:// URL; NULL: host apt sources */
  const char *tmpdir;  /* created 0700 (must not exist), always removed */
  const char *etc_apt; /* where the host's apt sources are; NULL: /etc/apt */
  img_build_progress_fn *progress;
  void *userdata;
} img_build_opts;

typedef struct img_build_result {
  const img_distro *distro;
  char *kernel;     /* "6.1.0-28-cloud-amd64" */
  char fs_uuid[37]; /* the root filesystem's UUID */
  char *packages;   /* dpkg's installed set: "name version\n" lines, sorted */
  size_t n_packages;
  uint64_t virtual_size; /* the disk */
  uint64_t fs_size;      /* the root filesystem (the partition) */
  uint64_t root_tree_bytes;
  int64_t bootstrap_ms, total_ms;
} img_build_result;

void img_build_result_clear(img_build_result *r);

/* [a-z0-9][a-z0-9+.-]*, at most 128 bytes. */
bool img_package_name_valid(const char *name);
/* Scheme http, https, file or copy, then "://" and at least one byte; no
 * whitespace or control bytes; at most IMG_BUILD_MIRROR_MAX bytes. */
int img_build_mirror_check(const char *mirror, qvm_error **err);
/* Every option (tmpdir aside): QVM_EINVAL naming the bad one. */
int img_build_opts_check(const img_build_opts *o, qvm_error **err);

/* "deb ..." lines (each ending in '\n') for suite and its -updates and
 * -security companions, from the text of a one-line sources.list or of a
 * deb822 .sources file; appended to *out (a malloc'd string or NULL).
 * Pure: no file is read. -1 only when out of memory. */
int img_apt_sources_from_list(char **out, const char *text, const char *suite);
int img_apt_sources_from_deb822(char **out, const char *text, const char *suite);
/* Both over etc_apt/sources.list and sources.list.d/ (*.list, *.sources).
 * QVM_ENOTFOUND if none is for suite. */
int img_host_apt_sources(char **out, const char *etc_apt, const char *suite, qvm_error **err);

/* Builds the image into dest (a qcow2 file that must not exist; removed on
 * failure). QVM_EUNAVAIL without root or a tool (the message names the
 * package that has it), QVM_EINVAL for bad options or a tree too big for
 * the disk, QVM_ESYS when a tool fails (the message has its output's tail). */
int img_build(img_build_result *out, const char *dest, const img_build_opts *o, qvm_error **err);

#endif
