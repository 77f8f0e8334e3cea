/* SPDX-License-Identifier: MIT */
#ifndef QVM_DIFF_H
#define QVM_DIFF_H

/*
 * qvm diff: what changed in a VM's root file system between two disk
 * states, read from the disk on the host (never through the guest): each
 * state is exported read-only over NBD by qemu-storage-daemon, read with
 * libnbd, and its ext4 walked with libext2fs (docs/ARCHITECTURE.md, "Diff").
 * Every byte of the file system is guest-written: names are any bytes, and
 * a corrupt or hostile file system gives a clear error (QVM_EINVAL), never
 * a hang.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <qvm/error.h>
#include <qvm/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qvm_diff qvm_diff;

/* 2 added keep_content and the content caps; a caller built with version 1
 * is still accepted. */
#define QVM_DIFF_OPTIONS_VERSION 2
typedef struct qvm_diff_options {
  unsigned version; /* QVM_DIFF_OPTIONS_VERSION (from _INIT) */
  /* The base: an internal snapshot of the VM's disk, or NULL: the image the
   * VM was created from. */
  const char *from_snapshot;
  /* The new state: an internal snapshot, or NULL: the disk now (a running
   * VM's at a temporary snapshot taken for the purpose). */
  const char *to_snapshot;
  /* fnmatch(3) globs (no flags: '*' matches '/' too) on absolute paths,
   * e.g. "/opt/app/cache", added to the default ignore list; a directory
   * that matches is left out whole. */
  const char *const *ignore;
  size_t n_ignore;
  bool no_default_ignore; /* only the globs given */
  /* Version 2. Keep the new content of every added or changed regular file
   * (in a private 0700 directory that qvm_diff_free() removes), for
   * qvm_diff_ansible(). Bounded: a file larger than content_max_file, or
   * more than content_max_total bytes in all, fails the diff (QVM_EINVAL,
   * naming the cap). 0: the defaults below. */
  bool keep_content;
  uint64_t content_max_file;
  uint64_t content_max_total;
} qvm_diff_options;
#define QVM_DIFF_CONTENT_MAX_FILE_DEFAULT (256ull << 20)
#define QVM_DIFF_CONTENT_MAX_TOTAL_DEFAULT (4ull << 30)
#define QVM_DIFF_OPTIONS_INIT                                                                      \
  { .version = QVM_DIFF_OPTIONS_VERSION }

/* The default ignore list, NULL-terminated: noise every boot makes. */
QVM_API const char *const *qvm_diff_default_ignore(void);

/* Diffs VM vm (opts may be NULL). QVM_ENOTFOUND: no such VM or snapshot;
 * QVM_EINVAL: a bad name, a VM without its own disk or image, no ext2/3/4
 * file system found, or a corrupt one; QVM_EUNAVAIL: qemu-storage-daemon
 * missing; QVM_EBUSY: the VM's lock is held. */
QVM_API int qvm_diff_vm(qvm_diff **out, const char *vm, const qvm_diff_options *opts,
                        qvm_error **err);
/* Diffs two disk images on the host: from (a raw or qcow2 file without a
 * backing file) and to (the same, or a qcow2 overlay whose backing file is
 * from, given explicitly). Format NULL: raw. */
QVM_API int qvm_diff_images(qvm_diff **out, const char *from, const char *from_format,
                            const char *to, const char *to_format, const qvm_diff_options *opts,
                            qvm_error **err);
QVM_API void qvm_diff_free(qvm_diff *d);

typedef enum qvm_diff_kind {
  QVM_DIFF_ADDED,
  QVM_DIFF_MODIFIED,
  QVM_DIFF_DELETED,
} qvm_diff_kind;

/* What a modification changed (a bit set). */
enum {
  QVM_DIFF_TYPE = 1 << 0, /* file type, e.g. a file became a symlink */
  QVM_DIFF_CONTENT = 1 << 1,
  QVM_DIFF_MODE = 1 << 2,   /* permission bits (07777) */
  QVM_DIFF_OWNER = 1 << 3,  /* uid or gid */
  QVM_DIFF_TARGET = 1 << 4, /* symlink target */
  QVM_DIFF_DEVICE = 1 << 5, /* device number of a device node */
};

/* One side of a change (the "from" side of an addition is absent). */
typedef struct qvm_diff_file {
  bool present;
  char type;     /* 'f' file, 'd' dir, 'l' symlink, 'c', 'b', 'p' fifo, 's' socket */
  uint32_t mode; /* permission bits (07777) */
  uint32_t uid, gid;
  uint64_t size;
  char sha256[65];    /* regular files: hex, else "" */
  const char *target; /* symlinks: the target's bytes (NUL-terminated), else NULL */
  size_t target_len;
} qvm_diff_file;

typedef struct qvm_diff_change {
  qvm_diff_kind kind;
  const char *path; /* absolute, the raw bytes from the disk, NUL-terminated */
  size_t path_len;
  unsigned what; /* QVM_DIFF_* bits for QVM_DIFF_MODIFIED */
  qvm_diff_file from, to;
} qvm_diff_change;

/* Changes sorted by path (bytewise); the strings live as long as d. */
QVM_API size_t qvm_diff_count(const qvm_diff *d);
QVM_API void qvm_diff_get(qvm_diff_change *out, const qvm_diff *d, size_t i);
/* The number of entries walked in each state and bytes hashed in all. */
QVM_API void qvm_diff_stats(const qvm_diff *d, uint64_t *entries_from, uint64_t *entries_to,
                            uint64_t *bytes_hashed);
/* JSON text (free()): {"changes":[{"kind":"added"|"modified"|"deleted",
 * "path":..., "changed":["content","mode",...], "from":{...}, "to":{...}}]}.
 * path and target are neutralized by qvm_text_for_terminal() (invalid UTF-8
 * and control bytes become the text "\xNN"); when that changed them, the
 * raw bytes are also given, base64, in "path_b64" / "target_b64". Then
 * "packages", "units", "users" and "groups": the lists below, one object
 * per entry (docs/cli.md). */
QVM_API int qvm_diff_json(char **out, const qvm_diff *d, qvm_error **err);
/* A short name for a kind and for one QVM_DIFF_* bit. */
/* NULL when the diff saw everything; else why it may be incomplete (an ext4
 * journal with transactions it did not replay). Borrowed. */
QVM_API const char *qvm_diff_incomplete(const qvm_diff *d);
QVM_API const char *qvm_diff_kind_name(qvm_diff_kind k);
QVM_API const char *qvm_diff_what_name(unsigned bit);

/* Packages, read from dpkg's status file (/var/lib/dpkg/status) on each
 * side's disk: ADDED installed, DELETED removed, MODIFIED another version
 * (upgraded or downgraded). Sorted by name, then arch. An absent status
 * file is an empty one (not a Debian guest); a corrupt one fails the diff. */
typedef struct qvm_diff_package {
  qvm_diff_kind kind;
  const char *name;
  const char *arch;         /* "amd64", "all", ... */
  const char *from_version; /* NULL when ADDED */
  const char *to_version;   /* NULL when DELETED */
} qvm_diff_package;
QVM_API size_t qvm_diff_package_count(const qvm_diff *d);
QVM_API void qvm_diff_package_get(qvm_diff_package *out, const qvm_diff *d, size_t i);
/* "installed", "removed", "upgraded" (also a downgrade). */
QVM_API const char *qvm_diff_package_kind_name(qvm_diff_kind k);

/* systemd units enabled (a symlink in /etc/systemd/system/\*.wants or
 * \*.requires) or masked (/etc/systemd/system/UNIT -> /dev/null) on one side
 * and not the other. Sorted by name, then change. */
typedef enum qvm_diff_unit_change {
  QVM_DIFF_UNIT_ENABLED,
  QVM_DIFF_UNIT_DISABLED,
  QVM_DIFF_UNIT_MASKED,
  QVM_DIFF_UNIT_UNMASKED,
} qvm_diff_unit_change;
typedef struct qvm_diff_unit {
  const char *name; /* e.g. "nginx.service" */
  qvm_diff_unit_change change;
} qvm_diff_unit;
QVM_API size_t qvm_diff_unit_count(const qvm_diff *d);
QVM_API void qvm_diff_unit_get(qvm_diff_unit *out, const qvm_diff *d, size_t i);
QVM_API const char *qvm_diff_unit_change_name(qvm_diff_unit_change c);

/* Users (/etc/passwd, with the supplementary groups /etc/group gives them)
 * and groups added, DELETED or MODIFIED (any field). The values are the
 * new side's (the old side's for DELETED). Sorted by name. */
typedef struct qvm_diff_user {
  qvm_diff_kind kind;
  const char *name;
  uint32_t uid, gid;
  const char *gecos, *home, *shell;
  const char *const *groups; /* supplementary groups, sorted */
  size_t n_groups;
} qvm_diff_user;
typedef struct qvm_diff_group {
  qvm_diff_kind kind;
  const char *name;
  uint32_t gid;
  const char *const *members; /* as /etc/group lists them */
  size_t n_members;
} qvm_diff_group;
QVM_API size_t qvm_diff_user_count(const qvm_diff *d);
QVM_API void qvm_diff_user_get(qvm_diff_user *out, const qvm_diff *d, size_t i);
QVM_API size_t qvm_diff_group_count(const qvm_diff *d);
QVM_API void qvm_diff_group_get(qvm_diff_group *out, const qvm_diff *d, size_t i);

/* qvm_diff_ansible: an Ansible playbook that reproduces the diff on a
 * machine that starts from the "from" state. */
#define QVM_DIFF_ANSIBLE_OPTIONS_VERSION 1
typedef struct qvm_diff_ansible_options {
  unsigned version;  /* QVM_DIFF_ANSIBLE_OPTIONS_VERSION (from _INIT) */
  const char *hosts; /* the play's hosts pattern; NULL: "all" */
} qvm_diff_ansible_options;
#define QVM_DIFF_ANSIBLE_OPTIONS_INIT                                                              \
  { .version = QVM_DIFF_ANSIBLE_OPTIONS_VERSION }

/* Writes dir/playbook.yml and dir/files/<sha256> (the new contents) from d,
 * which must have been made with keep_content. dir is created 0700; if it
 * exists it must be an empty directory, not a symlink (QVM_EEXISTS). Every
 * guest string in the playbook is tagged !unsafe, so Ansible never templates
 * it; a path or symlink target that is not valid UTF-8 cannot be written
 * safely and is refused (QVM_EINVAL, the path neutralized), as are device
 * nodes, fifos and sockets, which Ansible cannot create. o may be NULL. */
QVM_API int qvm_diff_ansible(const qvm_diff *d, const char *dir, const qvm_diff_ansible_options *o,
                             qvm_error **err);

#ifdef __cplusplus
}
#endif
#endif
