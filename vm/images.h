/* SPDX-License-Identifier: MIT */
#ifndef QVM_VM_IMAGES_H
#define QVM_VM_IMAGES_H

/* What vm/images.c (the public qvm_image_*) and vm/image_pull.c share. */
#include <json-c/json.h>

#include "image/store.h"
#include "util/cleanup.h"
#include "util/error.h"

QVM_DEFINE_CLEANUP(img_store, img_store_free)

/* The store at <vm_state_root>/images. */
int images_store_open(img_store **out, qvm_error **err);
/* An image's public record (see qvm_image_list), with used_by. */
int images_record(struct json_object **out, img_store *s, const img_meta *m, qvm_error **err);
/* The VMs whose spec's image is `path` (the store file): a JSON array. */
int images_used_by(struct json_object **out, const char *path, qvm_error **err);
/* A URL without its userinfo ("https://u:p@h/x" -> "https://h/x"). */
char *images_url_without_userinfo(const char *url);

#endif
