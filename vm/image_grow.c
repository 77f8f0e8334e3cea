/* SPDX-License-Identifier: MIT */
/*
 * A new VM's disk, grown beyond its image, gets its last partition grown
 * before the first boot (issue 20; vm/ptable.c decides, this file reads and
 * writes): qemu-img dd reads the first sectors, qemu-io writes the new
 * table into the overlay, never into the image. Both open the overlay by a
 * json: name that gives the image's format and, unless the user allowed
 * backing files, "backing": null, as the VM's own -blockdev does
 * (vm/argv.c): a header's backing file name is never followed.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "vm/image.h"
#include "vm/ptable.h"

static struct json_object *file_node(const char *path) {
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "driver", json_object_new_string("file"));
  json_object_object_add(o, "filename", json_object_new_string(path));
  return o;
}

/* "json:{...}" for the overlay on its base; NULL when out of memory. */
static char *overlay_name(const char *overlay, const char *base, const char *base_format,
                          bool follow) {
  struct json_object *b = json_object_new_object();
  json_object_object_add(b, "driver", json_object_new_string(base_format));
  json_object_object_add(b, "file", file_node(base));
  json_object_object_add(b, "read-only", json_object_new_boolean(true));
  if (!follow && !strcmp(base_format, "qcow2")) json_object_object_add(b, "backing", NULL);
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "driver", json_object_new_string("qcow2"));
  json_object_object_add(o, "file", file_node(overlay));
  json_object_object_add(o, "backing", b);
  const char *s =
      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  char *name = NULL;
  if (s && asprintf(&name, "json:%s", s) < 0) name = NULL;
  json_object_put(o);
  return name;
}

static int read_head(uint8_t *head, size_t *len, const char *name, const char *dir,
                     qvm_error **err) {
  char out[PATH_MAX], ofarg[PATH_MAX + 3], iffarg[16];
  snprintf(out, sizeof out, "%s/.ptable-read", dir);
  snprintf(ofarg, sizeof ofarg, "of=%s", out);
  snprintf(iffarg, sizeof iffarg, "count=%u", VM_PTABLE_HEAD_SECTORS);
  _cleanup_free_ char *ifarg = NULL;
  if (asprintf(&ifarg, "if=%s", name) < 0) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  char *argv[] = {"qemu-img", "dd", "-O", "raw", "bs=512", iffarg, ifarg, ofarg, NULL};
  int r = vm_run_program(NULL, argv, err);
  _cleanup_free_ char *data = NULL;
  size_t n = 0;
  if (r >= 0) r = qvm_read_file(&data, &n, out, VM_PTABLE_HEAD_BYTES, err);
  unlink(out);
  if (r < 0) return r;
  memcpy(head, data, n);
  *len = n;
  return 0;
}

static int write_table(const vm_ptable_grow *g, const char *name, const char *dir,
                       qvm_error **err) {
  char head[PATH_MAX], tail[PATH_MAX];
  snprintf(head, sizeof head, "%s/.ptable-head", dir);
  snprintf(tail, sizeof tail, "%s/.ptable-tail", dir);
  _cleanup_free_ char *wtail = NULL, *whead = NULL;
  if (asprintf(&whead, "write -q -s %s 0 %zu", head, g->head_len) < 0 ||
      asprintf(&wtail, "write -q -s %s %" PRIu64 " %zu", tail, g->tail_offset, g->tail_len) < 0)
    return qvm_error_set_errno(err, ENOMEM, "out of memory");
  int r = qvm_write_file_atomic(head, g->head, g->head_len, 0600, err);
  if (r >= 0 && g->tail_len) r = qvm_write_file_atomic(tail, g->tail, g->tail_len, 0600, err);
  /* The backup first: a failure between the two leaves the primary table
   * as it was (and the VM is not created). */
  char *with_tail[] = {"qemu-io", "-c", wtail, "-c", whead, (char *)name, NULL};
  char *head_only[] = {"qemu-io", "-c", whead, (char *)name, NULL};
  if (r >= 0) r = vm_run_program(NULL, g->tail_len ? with_tail : head_only, err);
  unlink(head);
  unlink(tail);
  return r;
}

int vm_image_grow_partition(vm_image_grown *out, const char *overlay, const char *base,
                            const char *base_format, bool allow_backing, uint64_t base_size,
                            uint64_t size, qvm_error **err) {
  *out = (vm_image_grown){.why = "the disk is not larger than its image"};
  if (size <= base_size) return 0;
  if (strcmp(base_format, "qcow2") && strcmp(base_format, "raw")) {
    out->why = "the image is neither qcow2 nor raw";
    return 0;
  }
  /* Paths with a ',' or ' ' would need quoting in a qemu-io command. */
  if (strpbrk(overlay, " \t\n,") || strlen(overlay) > PATH_MAX - 16) {
    out->why = "the VM's directory has a space or comma in its path";
    return 0;
  }
  _cleanup_free_ char *name = overlay_name(overlay, base, base_format, allow_backing);
  _cleanup_free_ char *dir = strdup(overlay);
  if (!name || !dir) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  _cleanup_free_ uint8_t *head = malloc(VM_PTABLE_HEAD_BYTES);
  _cleanup_free_ vm_ptable_grow *g = calloc(1, sizeof *g);
  if (!head || !g) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  size_t len = 0;
  qvm_error *rerr = NULL;
  if (read_head(head, &len, name, slash ? dir : ".", &rerr) < 0) {
    /* Unreadable here means QEMU will say why at the start; the guest's
     * growpart keeps its job. */
    snprintf(out->reason, sizeof out->reason, "its first sectors could not be read: %s",
             qvm_error_message(rerr));
    qvm_error_free(rerr);
    out->why = out->reason;
    return 0;
  }
  int r = vm_ptable_plan_grow(g, head, len, base_size, size, &out->why);
  bool planned = r > 0;
  if (planned) r = write_table(g, name, slash ? dir : ".", err);
  if (r < 0) return qvm_error_prefix(err, "cannot grow the disk's last partition");
  if (planned) *out = (vm_image_grown){.grown = true, .number = g->number};
  return 0;
}
