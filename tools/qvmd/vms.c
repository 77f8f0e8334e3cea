/* SPDX-License-Identifier: MIT */
/* /api/v1/vms (and vm-provisioner's /api/vms): list, create, get, delete,
 * start, stop, restart. Each call is synchronous: it answers when libqvm's
 * call returned (docs/qvmd.md, "Long work"), except a create or start
 * with "Prefer: respond-async": an operation (operations.c). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qvm/text.h>
#include <qvm/image.h>
#include <qvm/vm.h>

#include "qvmd.h"

#define CLOUD_CONFIG_MAX (256u << 10)
#define TIMEOUT_MS_MAX (3600 * 1000)

/* The VM named by the route, opened; NULL with the reply set. */
static qvm_vm *open_named(qvmd_reply *out, const char *name) {
  qvm_error *err = NULL;
  qvm_vm *vm = NULL;
  if (qvm_vm_name_check(name, &err) < 0) {
    qvmd_problem_qvm(out, err, "name");
    return NULL;
  }
  if (qvm_vm_open(&vm, name, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return NULL;
  }
  return vm;
}

/* qvm_vm_info as a camelCase object; NULL with the reply set. */
static json_object *info_object(qvmd_reply *out, qvm_vm *vm) {
  qvm_error *err = NULL;
  char *text = NULL;
  if (qvm_vm_info(&text, vm, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return NULL;
  }
  json_object *o = qvmd_json_from_lib(text);
  free(text);
  if (!o) qvmd_problem(out, 500, "EPROTO", "libqvm's vm info did not parse");
  return o;
}

static void reply_info(qvmd_reply *out, unsigned status, qvm_vm *vm) {
  json_object *o = info_object(out, vm);
  if (o) qvmd_reply_json(out, status, o);
}

/* The last listing libqvm gave and its camelCase reply: the reply is a
 * function of that text, so an equal text (most listings, when no VM
 * changed) is answered without parsing it again. */
static pthread_mutex_t list_memo_lock = PTHREAD_MUTEX_INITIALIZER;
static char *list_memo_lib, *list_memo_reply;

static char *list_memo_find(const char *lib) {
  char *reply = NULL;
  pthread_mutex_lock(&list_memo_lock);
  if (list_memo_lib && !strcmp(list_memo_lib, lib)) reply = strdup(list_memo_reply);
  pthread_mutex_unlock(&list_memo_lock);
  return reply;
}

static void list_memo_set(char *lib, const char *reply) {
  char *copy = strdup(reply);
  if (!copy) {
    free(lib);
    return;
  }
  pthread_mutex_lock(&list_memo_lock);
  char *old_lib = list_memo_lib, *old_reply = list_memo_reply;
  list_memo_lib = lib;
  list_memo_reply = copy;
  pthread_mutex_unlock(&list_memo_lock);
  free(old_lib);
  free(old_reply);
}

void qvmd_vms_list(qvmd_reply *out, const qvmd_request *req) {
  (void)req;
  qvm_error *err = NULL;
  char *text = NULL;
  if (qvm_vm_list_info(&text, &err) < 0) {
    qvmd_problem_qvm(out, err, NULL);
    return;
  }
  char *reply = list_memo_find(text);
  if (reply) {
    free(text);
    free(out->body);
    out->body = reply;
    out->status = 200;
    out->content_type = "application/json";
    return;
  }
  json_object *arr = qvmd_json_from_lib(text);
  if (!arr) {
    free(text);
    qvmd_problem(out, 500, "EPROTO", "libqvm's vm list did not parse");
    return;
  }
  qvmd_reply_json(out, 200, arr);
  if (out->body)
    list_memo_set(text, out->body);
  else
    free(text);
}

void qvmd_vms_get(qvmd_reply *out, const qvmd_request *req) {
  qvm_vm *vm = open_named(out, req->params[0]);
  if (!vm) return;
  reply_info(out, 200, vm);
  qvm_vm_free(vm);
}

/* A size member: an integer in `unit` bytes, or a string for
 * qvm_vm_size_parse ("512M", "10G"). */
static bool body_size(qvmd_reply *out, json_object *body, const char *key, uint64_t unit,
                      uint64_t *value) {
  json_object *v = NULL;
  if (!json_object_object_get_ex(body, key, &v) || json_object_is_type(v, json_type_null))
    return true;
  if (json_object_is_type(v, json_type_int)) {
    int64_t n = json_object_get_int64(v);
    if (n <= 0 || (uint64_t)n > UINT64_MAX / unit) {
      qvmd_problem_field(out, key, "'%s' must be a positive size", key);
      return false;
    }
    *value = (uint64_t)n * unit;
    return true;
  }
  const char *text = NULL;
  if (!qvmd_body_string(out, body, key, 32, &text)) return false;
  qvm_error *err = NULL;
  if (qvm_vm_size_parse(value, key, text, &err) < 0) {
    qvmd_problem_qvm(out, err, key);
    return false;
  }
  return true;
}

/* Writes cloudConfig to a private temp file (0600); its path into path. */
static bool cloud_config_file(qvmd_reply *out, const char *text, char *path, size_t size) {
  const char *dir = getenv("TMPDIR");
  snprintf(path, size, "%s/qvmd-cloud-config-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkostemp(path, O_CLOEXEC);
  if (fd < 0) {
    qvmd_problem(out, 500, "ESYS", "cannot make a temporary file: %s", strerror(errno));
    return false;
  }
  size_t len = strlen(text), done = 0;
  while (done < len) {
    ssize_t w = write(fd, text + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      qvmd_problem(out, 500, "ESYS", "cannot write a temporary file: %s", strerror(errno));
      close(fd);
      unlink(path);
      return false;
    }
    done += (size_t)w;
  }
  close(fd);
  return true;
}

#define LABELS_MAX QVM_VM_LABELS_MAX

typedef struct create_body {
  const char *name, *image, *image_url, *cloud_config, *kernel, *initrd, *append, *user, *network,
      *agent, *image_sha256, *image_checksums;
  uint64_t memory, disk;
  int64_t vcpus;
  bool vcpus_set, no_cloud_init;
  qvm_vm_label labels[LABELS_MAX];
  size_t n_labels;
} create_body;

static bool read_labels(qvmd_reply *out, json_object *body, create_body *b) {
  return qvmd_body_labels(out, body, b->labels, &b->n_labels);
}

static bool read_create_body(qvmd_reply *out, json_object *body, bool alias, create_body *b) {
  static const char *const known[] = {
      "name",        "image",  "imageUrl",    "memory",      "vcpus",          "diskSize",
      "cloudConfig", "kernel", "initrd",      "append",      "user",           "network",
      "agent",       "labels", "noCloudInit", "imageSha256", "imageChecksums", NULL};
  /* vm-provisioner's clients may send members qvmd does not use. */
  if (!alias && !qvmd_body_known(out, body, known)) return false;
  if (!qvmd_body_string(out, body, "name", QVM_VM_NAME_MAX, &b->name) ||
      !qvmd_body_string(out, body, "image", 4096, &b->image) ||
      !qvmd_body_string(out, body, "imageUrl", 4096, &b->image_url) ||
      !qvmd_body_string(out, body, "imageSha256", 64, &b->image_sha256) ||
      !qvmd_body_string(out, body, "imageChecksums", 4096, &b->image_checksums) ||
      !qvmd_body_string(out, body, "cloudConfig", CLOUD_CONFIG_MAX, &b->cloud_config) ||
      !qvmd_body_string(out, body, "kernel", 4096, &b->kernel) ||
      !qvmd_body_string(out, body, "initrd", 4096, &b->initrd) ||
      !qvmd_body_string(out, body, "append", 4096, &b->append) ||
      !qvmd_body_string(out, body, "user", 32, &b->user) ||
      !qvmd_body_string(out, body, "network", 256, &b->network) ||
      !qvmd_body_string(out, body, "agent", QVM_VM_AGENT_MAX, &b->agent) ||
      !qvmd_body_int(out, body, "vcpus", 1, 1024, &b->vcpus_set, &b->vcpus) ||
      !qvmd_body_bool(out, body, "noCloudInit", &b->no_cloud_init) ||
      !body_size(out, body, "memory", 1u << 20, &b->memory) ||
      !body_size(out, body, "diskSize", 1u << 30, &b->disk) || !read_labels(out, body, b))
    return false;
  if (!b->name) {
    qvmd_problem_field(out, "name", "'name' is required");
    return false;
  }
  qvm_error *err = NULL;
  if (qvm_vm_name_check(b->name, &err) < 0) {
    qvmd_problem_qvm(out, err, "name");
    return false;
  }
  if (b->image && b->image_url) {
    qvmd_problem_field(out, "imageUrl", "give 'image' or 'imageUrl', not both");
    return false;
  }
  if (b->image_url && strncmp(b->image_url, "https://", 8) && strncmp(b->image_url, "http://", 7)) {
    qvmd_problem_field(out, "imageUrl", "'imageUrl' must be an http:// or https:// URL");
    return false;
  }
  if (b->image_sha256 && b->image_checksums) {
    qvmd_problem_field(out, "imageChecksums", "give 'imageSha256' or 'imageChecksums', not both");
    return false;
  }
  if (b->image_checksums && strncmp(b->image_checksums, "https://", 8) &&
      strncmp(b->image_checksums, "http://", 7)) {
    qvmd_problem_field(out, "imageChecksums",
                       "'imageChecksums' must be an http:// or https:// URL");
    return false;
  }
  if (!b->image && !b->image_url && !b->kernel) {
    qvmd_problem_field(out, "image", "'image', 'imageUrl' or 'kernel' is required");
    return false;
  }
  if (b->agent && qvm_vm_agent_check(b->agent, &err) < 0) {
    qvmd_problem_qvm(out, err, "agent");
    return false;
  }
  return true;
}

/* A create's body and options; the strings point into body. */
typedef struct create_job {
  json_object *body;
  create_body b;
  qvm_vm_create_options o;
  qvm_image_pull_options pull;
  char cc_path[4096];
  const char *cc[1];
} create_job;

static void create_job_free(void *arg) {
  create_job *j = arg;
  if (j->cc_path[0]) unlink(j->cc_path);
  json_object_put(j->body);
  free(j);
}

/* The create itself; op: as an operation (cancel between its steps: a
 * cancel after qvm_vm_create removes the VM again). */
static void create_run(qvmd_op *op, qvmd_reply *out, void *arg) {
  create_job *j = arg;
  qvm_error *err = NULL;
  if (op && qvmd_op_cancelled(op)) {
    qvmd_op_cancelled_reply(out, "the create");
    return;
  }
  if (op) qvmd_op_progress(op, "create", 0, 0);
  qvm_vm *vm = NULL;
  if (qvm_vm_create(&vm, j->b.name, &j->o, &err) < 0) {
    qvmd_problem_qvm(out, err, j->b.image_url ? "imageUrl" : j->b.image ? "image" : NULL);
    return;
  }
  if (op && qvmd_op_cancelled(op)) {
    qvm_vm_free(vm);
    qvm_vm_remove(j->b.name, true, NULL);
    qvmd_op_cancelled_reply(out, "the create");
    return;
  }
  snprintf(out->location, sizeof out->location, "/api/v1/vms/%s", j->b.name);
  reply_info(out, 201, vm);
  qvm_vm_free(vm);
}

void qvmd_vms_create(qvmd_reply *out, const qvmd_request *req) {
  json_object *body = qvmd_body_object(out, req);
  if (!body) return;
  create_job *j = calloc(1, sizeof *j);
  if (!j) {
    json_object_put(body);
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return;
  }
  j->body = body;
  qvm_vm_create_options init = QVM_VM_CREATE_OPTIONS_INIT;
  j->o = init;
  create_body *b = &j->b;
  qvm_vm_create_options *o = &j->o;
  qvm_error *err = NULL;
  if (!read_create_body(out, body, req->alias, b)) goto done;
  if (b->network && qvm_vm_net_parse(&o->net, b->network, &err) < 0) {
    qvmd_problem_qvm(out, err, "network");
    goto done;
  }
  o->image = b->image ? b->image : b->image_url;
  /* A pull on first use: the checksum given, else (vm-provisioner's
   * routes, whose clients send only a URL) the SHA256SUMS or SHA512SUMS
   * beside it. */
  qvm_image_pull_options pull = QVM_IMAGE_PULL_OPTIONS_INIT;
  j->pull = pull;
  j->pull.sha256 = b->image_sha256;
  j->pull.checksums = b->image_checksums;
  j->pull.discover_checksums = req->alias;
  o->image_pull = &j->pull;
  o->memory = b->memory;
  o->disk = b->disk;
  o->cpus = b->vcpus_set ? (unsigned)b->vcpus : 0;
  o->kernel = b->kernel;
  o->initrd = b->initrd;
  o->append = b->append;
  o->user = b->user;
  o->no_cloud_init = b->no_cloud_init;
  o->tags.labels = b->labels;
  o->tags.n_labels = b->n_labels;
  o->tags.agent = b->agent;
  if (b->cloud_config) {
    if (!cloud_config_file(out, b->cloud_config, j->cc_path, sizeof j->cc_path)) goto done;
    j->cc[0] = j->cc_path;
    o->cloud_configs = j->cc;
    o->n_cloud_configs = 1;
  }
  if (qvmd_prefer_async(req)) {
    /* an image pulled on first use: its partial download is what a qvmd
     * stopped midway leaves (operations.c removes it) */
    char source[4096] = "";
    if (b->image_url) qvmd_url_without_userinfo(source, sizeof source, b->image_url);
    qvmd_op_start(out, req, "vm.create", b->name, source[0] ? source : NULL, create_run, j,
                  create_job_free);
    return;
  }
  if (!qvmd_work_begin(out, req)) goto done;
  create_run(NULL, out, j);
  qvmd_work_end(req);
done:
  create_job_free(j);
}

void qvmd_vms_delete(qvmd_reply *out, const qvmd_request *req) {
  qvm_error *err = NULL;
  const char *name = req->params[0];
  const char *force = qvmd_query(req, "force");
  if (qvm_vm_name_check(name, &err) < 0) {
    qvmd_problem_qvm(out, err, "name");
    return;
  }
  if (force && strcmp(force, "true") && strcmp(force, "false")) {
    qvmd_problem_field(out, "force", "'force' must be true or false");
    return;
  }
  if (!qvmd_work_begin(out, req)) return;
  int r = qvm_vm_remove(name, force && !strcmp(force, "true"), &err);
  qvmd_work_end(req);
  if (r < 0)
    qvmd_problem_qvm(out, err, NULL);
  else
    qvmd_reply_empty(out, 204);
}

/* An optional body {"timeoutMs": N}. */
static bool read_timeout(qvmd_reply *out, const qvmd_request *req, int *timeout_ms) {
  if (req->body_len == 0) return true;
  json_object *body = qvmd_body_object(out, req);
  if (!body) return false;
  static const char *const known[] = {"timeoutMs", NULL};
  bool set = false;
  int64_t v = 0;
  bool ok = (req->alias || qvmd_body_known(out, body, known)) &&
            qvmd_body_int(out, body, "timeoutMs", 1, TIMEOUT_MS_MAX, &set, &v);
  if (ok && set) *timeout_ms = (int)v;
  json_object_put(body);
  return ok;
}

typedef enum lifecycle { START, STOP, RESTART } lifecycle;

static void vm_lifecycle(qvmd_reply *out, const qvmd_request *req, lifecycle what) {
  int timeout_ms = 60000;
  if (!read_timeout(out, req, &timeout_ms)) return;
  qvm_vm *vm = open_named(out, req->params[0]);
  if (!vm) return;
  if (!qvmd_work_begin(out, req)) {
    qvm_vm_free(vm);
    return;
  }
  qvm_error *err = NULL;
  qvm_vm_start_options start = QVM_VM_START_OPTIONS_INIT;
  qvm_vm_stop_options stop = QVM_VM_STOP_OPTIONS_INIT;
  start.timeout_ms = stop.timeout_ms = timeout_ms;
  int r = what == START  ? qvm_vm_start(vm, &start, &err)
          : what == STOP ? qvm_vm_stop(vm, &stop, &err)
                         : qvm_vm_restart(vm, &stop, &start, &err);
  qvmd_work_end(req);
  if (r < 0)
    qvmd_problem_qvm(out, err, NULL);
  else
    reply_info(out, 200, vm);
  qvm_vm_free(vm);
}

typedef struct start_job {
  char name[QVM_VM_NAME_MAX + 1];
  int timeout_ms;
} start_job;

/* An asynchronous start: a cancel takes effect only before the start
 * begins (a VM half-started is not stopped again). */
static void start_run(qvmd_op *op, qvmd_reply *out, void *arg) {
  start_job *j = arg;
  if (qvmd_op_cancelled(op)) {
    qvmd_op_cancelled_reply(out, "the start");
    return;
  }
  qvm_vm *vm = open_named(out, j->name);
  if (!vm) return;
  qvmd_op_progress(op, "start", 0, 0);
  qvm_error *err = NULL;
  qvm_vm_start_options start = QVM_VM_START_OPTIONS_INIT;
  start.timeout_ms = j->timeout_ms;
  if (qvm_vm_start(vm, &start, &err) < 0)
    qvmd_problem_qvm(out, err, NULL);
  else
    reply_info(out, 200, vm);
  qvm_vm_free(vm);
}

void qvmd_vms_start(qvmd_reply *out, const qvmd_request *req) {
  if (!qvmd_prefer_async(req)) {
    vm_lifecycle(out, req, START);
    return;
  }
  start_job *j = calloc(1, sizeof *j);
  if (!j) {
    qvmd_problem(out, 500, "ESYS", "out of memory");
    return;
  }
  j->timeout_ms = 60000;
  if (!read_timeout(out, req, &j->timeout_ms)) {
    free(j);
    return;
  }
  qvm_vm *vm = open_named(out, req->params[0]);
  if (!vm) {
    free(j);
    return;
  }
  qvm_vm_free(vm);
  snprintf(j->name, sizeof j->name, "%s", req->params[0]);
  qvmd_op_start(out, req, "vm.start", j->name, NULL, start_run, j, free);
}
void qvmd_vms_stop(qvmd_reply *out, const qvmd_request *req) { vm_lifecycle(out, req, STOP); }
void qvmd_vms_restart(qvmd_reply *out, const qvmd_request *req) { vm_lifecycle(out, req, RESTART); }
