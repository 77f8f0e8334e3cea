/* SPDX-License-Identifier: MIT */
/* qvm_vm_list_info: every VM's qvm_vm_info in one array, for callers that
 * list often (qvmd's GET /api/v1/vms).
 *
 * Most VMs, most of the time, are defined and not running, and then their
 * info is a function of vm.json alone. Reading and parsing vm.json is most
 * of what an info costs, so such an info's text is kept, per process, with
 * what identifies the content of vm.json it came from (stat: dev, ino, size,
 * mtime, ctime), and each listing stats vm.json again: the same identity,
 * the same text. An info is kept only when nothing but vm.json can change
 * it: no process the record names is alive (a process that died stays dead:
 * the record names it by pid, start time and boot id), the VM is not a
 * sandbox (its info counts down to its deadline), and vm.json's ctime was
 * more than a second old when it was read. That last rule is git's "racy
 * clean" one: a file's timestamps are only as fine as the kernel's coarse
 * clock, so a write in the same tick as the one read could leave every
 * stat field as it was; a write after the read is later than a second-old
 * ctime. ctime, not mtime: utimensat() can set mtime back, nothing sets
 * ctime. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/time.h"
#include "vm/handle.h"
#include "vm/ttl.h"

/* What identifies one content of vm.json. */
typedef struct list_key {
  dev_t dev;
  ino_t ino;
  off_t size;
  int64_t mtime_ns, ctime_ns;
} list_key;

/* An info's text, shared by the cache and the listings that use it. */
typedef struct list_text {
  atomic_uint refs;
  size_t len;
  char s[];
} list_text;

typedef struct list_item {
  char *name;
  list_text *text; /* qvm_vm_info's; NULL: left out (removed, or unreadable) */
  list_key key;
  bool keep; /* goes into the cache */
} list_item;

/* The cache: the last listing's kept items, sorted by name, for one state
 * root. A listing replaces it whole (so a removed VM's item goes too). */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static char *cache_root;
static list_item *cache;
static size_t cache_n;

int64_t vm_list_racy_ns = 1000000000; /* vm/handle.h: tests lower it */
atomic_ulong vm_list_reads;

static int64_t ts_ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

/* path: relative to the vms dir, dfd (fewer components to walk). */
static int key_read(list_key *out, int dfd, const char *path) {
  struct stat st;
  if (fstatat(dfd, path, &st, 0) < 0) return -1;
  *out = (list_key){.dev = st.st_dev,
                    .ino = st.st_ino,
                    .size = st.st_size,
                    .mtime_ns = ts_ns(st.st_mtim),
                    .ctime_ns = ts_ns(st.st_ctim)};
  return 0;
}

static bool key_equal(const list_key *a, const list_key *b) {
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns &&
         a->ctime_ns == b->ctime_ns;
}

static list_text *text_new(const char *s) {
  size_t len = strlen(s);
  list_text *t = malloc(sizeof *t + len + 1);
  if (!t) return NULL;
  atomic_init(&t->refs, 1);
  t->len = len;
  memcpy(t->s, s, len + 1);
  return t;
}

static void text_unref(list_text *t) {
  if (t && atomic_fetch_sub(&t->refs, 1) == 1) free(t);
}

static void items_free(list_item *items, size_t n) {
  for (size_t i = 0; i < n && items; i++) {
    free(items[i].name);
    text_unref(items[i].text);
  }
  free(items);
}

static int item_cmp(const void *a, const void *b) {
  return strcmp(((const list_item *)a)->name, ((const list_item *)b)->name);
}

/* The kept text for name if vm.json is still what it was; NULL otherwise. */
static list_text *cache_find(const char *root, const char *name, const list_key *key) {
  list_text *text = NULL;
  pthread_mutex_lock(&cache_lock);
  if (cache_n && !strcmp(cache_root, root)) {
    list_item probe = {.name = (char *)name};
    const list_item *it = bsearch(&probe, cache, cache_n, sizeof *cache, item_cmp);
    if (it && key_equal(&it->key, key)) {
      text = it->text;
      atomic_fetch_add(&text->refs, 1);
    }
  }
  pthread_mutex_unlock(&cache_lock);
  return text;
}

/* Replaces the cache with this listing's kept items (their texts move). */
static void cache_replace(const char *root, list_item *items, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += items[i].keep && items[i].text;
  list_item *fresh = k ? calloc(k, sizeof *fresh) : NULL;
  char *root_copy = strdup(root);
  if ((k && !fresh) || !root_copy) { /* out of memory: no cache, which is only slower */
    free(fresh);
    free(root_copy);
    fresh = NULL, root_copy = NULL, k = 0;
  } else {
    k = 0;
    for (size_t i = 0; i < n; i++) {
      if (!items[i].keep || !items[i].text) continue;
      fresh[k++] = items[i];
      items[i].name = NULL;
      items[i].text = NULL;
    }
  }
  pthread_mutex_lock(&cache_lock);
  list_item *old = cache;
  size_t old_n = cache_n;
  char *old_root = cache_root;
  cache = fresh, cache_n = k, cache_root = root_copy;
  pthread_mutex_unlock(&cache_lock);
  items_free(old, old_n);
  free(old_root);
}

/* One VM's info read now: its text, and whether it may be kept. A VM that
 * cannot be opened (removed since the listing, or its vm.json does not
 * parse) is left out, as is a sandbox the sweep removes. */
static int item_read(list_item *it, int dfd, const char *path, qvm_error **err) {
  int64_t t0 = qvm_realtime_us() * 1000;
  list_key before, after;
  atomic_fetch_add(&vm_list_reads, 1);
  if (key_read(&before, dfd, path) < 0) return 0;
  qvm_vm *vm = NULL;
  if (qvm_vm_open(&vm, it->name, NULL) < 0) return 0;
  if (vm_spec_expired(vm->spec, qvm_realtime_us())) {
    /* As qvm_vm_list: a sandbox past its deadline and idle is removed. */
    qvm_vm_free(vm);
    vm = NULL;
    if (vm_expire_sweep(it->name) || qvm_vm_open(&vm, it->name, NULL) < 0) return 0;
  }
  vm_runtime_view rv;
  vm_runtime_view_read(&rv, vm->rec);
  struct json_object *o = vm_info_json_view(vm, &rv);
  bool sandbox = vm->spec->sandbox;
  qvm_vm_free(vm);
  const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
  it->text = s ? text_new(s) : NULL;
  json_object_put(o);
  if (!it->text) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  bool live = rv.present && (rv.qemu_alive || rv.shim_alive);
  it->keep = !live && !sandbox && key_read(&after, dfd, path) == 0 && key_equal(&before, &after) &&
             before.ctime_ns < t0 - vm_list_racy_ns;
  it->key = before;
  return 0;
}

/* The VMs' names, sorted, as qvm_vm_list reads them (without its sweep:
 * item_read sweeps what it opens). */
static int names_read(list_item **out, size_t *out_n, int dfd, const char *vms, qvm_error **err) {
  *out = NULL;
  *out_n = 0;
  int fd = dup(dfd);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (!d) {
    if (fd >= 0) close(fd);
    return qvm_error_set_errno(err, errno, "cannot list '%s'", vms);
  }
  list_item *items = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!qvm_vm_name_valid(de->d_name)) continue; /* also skips ".x.create-*" */
    list_item *v = n < cap ? items : reallocarray(items, cap = cap ? 2 * cap : 64, sizeof *v);
    if (v) items = v;
    if (!v || !(items[n].name = strdup(de->d_name))) {
      closedir(d);
      items_free(items, n);
      return qvm_error_set_errno(err, ENOMEM, "out of memory");
    }
    items[n].text = NULL;
    items[n].keep = false;
    n++;
  }
  closedir(d);
  if (n) qsort(items, n, sizeof *items, item_cmp);
  *out = items;
  *out_n = n;
  return 0;
}

/* "[" text "," text ... "]" */
static int join(char **out, const list_item *items, size_t n, qvm_error **err) {
  size_t len = 2;
  for (size_t i = 0; i < n; i++) len += items[i].text ? items[i].text->len + 1 : 0;
  char *buf = malloc(len + 1), *p = buf;
  if (!buf) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  *p++ = '[';
  for (size_t i = 0; i < n; i++) {
    if (!items[i].text) continue;
    if (p > buf + 1) *p++ = ',';
    memcpy(p, items[i].text->s, items[i].text->len);
    p += items[i].text->len;
  }
  *p++ = ']';
  *p = '\0';
  *out = buf;
  return 0;
}

int qvm_vm_list_info(char **out_json, qvm_error **err) {
  _cleanup_free_ char *root = NULL, *vms = NULL;
  int r = vm_state_root(&root, err);
  if (r < 0) return r;
  if (asprintf(&vms, "%s/vms", root) < 0) return qvm_error_set_errno(err, ENOMEM, "out of memory");
  _cleanup_close_ int dfd = open(vms, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 && errno != ENOENT) return qvm_error_set_errno(err, errno, "cannot list '%s'", vms);
  list_item *items = NULL;
  size_t n = 0;
  if (dfd >= 0 && (r = names_read(&items, &n, dfd, vms, err)) < 0) return r;
  for (size_t i = 0; i < n && r >= 0; i++) {
    /* NAME/vm.json, without snprintf: this loop is most of a listing */
    char path[QVM_VM_NAME_MAX + sizeof "/vm.json"];
    size_t name_len = strlen(items[i].name); /* at most QVM_VM_NAME_MAX: a valid name */
    memcpy(path, items[i].name, name_len);
    memcpy(path + name_len, "/vm.json", sizeof "/vm.json");
    list_key key;
    if (key_read(&key, dfd, path) < 0) continue; /* removed since the listing */
    if ((items[i].text = cache_find(root, items[i].name, &key))) {
      items[i].keep = true;
      items[i].key = key;
    } else {
      r = item_read(&items[i], dfd, path, err);
    }
  }
  if (r >= 0) r = join(out_json, items, n, err);
  if (r >= 0) cache_replace(root, items, n);
  items_free(items, n);
  return r;
}
