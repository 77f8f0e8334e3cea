/* SPDX-License-Identifier: MIT */
/*
 * Whole-seed entry points: files -> cidata image on disk, and spec -> the
 * three NoCloud files -> image.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seed/seed_internal.h"
#include "util/cleanup.h"
#include "util/error.h"

/* Writes the image to a temp file next to path, fsyncs and renames it, so
 * a reader never sees half an image. Streams: big files never sit in memory.
 * The temp file is 0600 from the start (mkostemp) and gets `mode` only once
 * it is complete. */
static int write_iso_atomic(const char *path, qvm_seed_iso *iso, mode_t mode, qvm_error **err) {
  _cleanup_free_ char *tmp = NULL;
  if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    qvm_error_set_errno(err, errno, "cannot create a temporary file");
    return qvm_error_prefix(err, "cannot write seed '%s'", path);
  }
  int r = qvm_seed_iso_write_fd(iso, fd, err);
  if (r == 0 && fchmod(fd, mode & 0777) < 0)
    r = qvm_error_set_errno(err, errno, "cannot chmod '%s'", tmp);
  if (r == 0 && fsync(fd) < 0) r = qvm_error_set_errno(err, errno, "cannot sync '%s'", tmp);
  if (r == 0 && rename(tmp, path) < 0)
    r = qvm_error_set_errno(err, errno, "cannot rename '%s' to '%s'", tmp, path);
  if (r < 0) {
    unlink(tmp);
    return qvm_error_prefix(err, "cannot write seed '%s'", path);
  }
  return 0;
}

bool qvm_seed_files_hold_secret(const qvm_seed_file *files, size_t n_files) {
  static const char marker[] = "PRIVATE KEY-----";
  for (size_t i = 0; i < n_files; i++)
    if (files[i].data && memmem(files[i].data, files[i].len, marker, sizeof marker - 1))
      return true;
  return false;
}

int qvm_seed_write_iso(const char *path, const qvm_seed_file *files, size_t n_files, int64_t epoch,
                       mode_t mode, qvm_error **err) {
  qvm_seed_iso_options opts = QVM_SEED_ISO_OPTIONS_INIT;
  opts.epoch = epoch;
  _cleanup_(qvm_seed_iso_freep) qvm_seed_iso *iso = NULL;
  int r = qvm_seed_iso_new(&iso, &opts, err);
  for (size_t i = 0; r == 0 && i < n_files; i++)
    r = qvm_seed_iso_add_data(iso, files[i].name, files[i].data, files[i].len, err);
  if (r < 0) return r;
  return write_iso_atomic(path, iso, mode, err);
}

int qvm_seed_build(const char *path, const qvm_seed_spec *spec, qvm_error **err) {
  _cleanup_free_ char *user_data = NULL, *meta_data = NULL, *network = NULL;
  size_t ud_len = 0, md_len = 0, nc_len = 0;
  int r = qvm_seed_render_user_data(&user_data, &ud_len, spec, err);
  if (r == 0) r = qvm_seed_render_meta_data(&meta_data, &md_len, spec, err);
  if (r == 0 && spec->network) r = qvm_seed_render_network_config(&network, &nc_len, spec, err);
  if (r < 0) return qvm_error_prefix(err, "cannot build seed '%s'", path);
  qvm_seed_file files[] = {
      {"user-data", user_data, ud_len},
      {"meta-data", meta_data, md_len},
      {"network-config", network, nc_len},
  };
  return qvm_seed_write_iso(path, files, network ? 3 : 2, spec->epoch, 0600, err);
}
