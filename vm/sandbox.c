/* SPDX-License-Identifier: MIT */
/* include/qvm/sandbox.h: a sandbox is a VM made by qvm_vm_up (from an
 * image) or qvm_vm_clone (from a VM or one of its snapshots) with tags that
 * mark it and carry its deadline; vm/ttl.c enforces that deadline. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <json-c/json.h>

#include <qvm/image.h>
#include <qvm/sandbox.h>

#include "util/cleanup.h"
#include "util/time.h"
#include "vm/audit.h"
#include "vm/clone.h"
#include "vm/handle.h"
#include "vm/net.h"
#include "vm/ttl.h"

static int oom(qvm_error **err) { return qvm_error_set_errno(err, ENOMEM, "out of memory"); }

static int random_name(char out[12], qvm_error **err) {
  unsigned char b[4];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
    return qvm_error_set_errno(err, errno, "cannot make a sandbox name");
  snprintf(out, 12, "sb-%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
  return 0;
}

static bool vm_exists(const char *name) {
  if (!qvm_vm_name_valid(name)) return false;
  qvm_error *e = NULL;
  int r = vm_name_free(name, &e);
  qvm_error_free(e);
  return r == QVM_EEXISTS;
}

typedef enum golden_kind { GOLDEN_IMAGE, GOLDEN_VM, GOLDEN_SNAPSHOT } golden_kind;
static const char *const golden_kind_names[] = {"image", "vm", "snapshot"};

/* "VM:SNAP" when VM exists, a VM's name, else an image reference. */
static int golden_resolve(golden_kind *kind, char vm[64], const char **snap, const char *from) {
  const char *colon = strchr(from, ':');
  *snap = NULL;
  if (colon && (size_t)(colon - from) <= QVM_VM_NAME_MAX) {
    snprintf(vm, 64, "%.*s", (int)(colon - from), from);
    if (vm_exists(vm)) {
      *kind = GOLDEN_SNAPSHOT;
      *snap = colon + 1;
      return 0;
    }
  }
  snprintf(vm, 64, "%s", strlen(from) <= QVM_VM_NAME_MAX ? from : "");
  *kind = vm_exists(vm) ? GOLDEN_VM : GOLDEN_IMAGE;
  return 0;
}

static void add_str(struct json_object *o, const char *k, const char *v) {
  json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

/* One sandbox as JSON: name, state and its tags. */
static struct json_object *sandbox_json(qvm_vm *vm) {
  struct json_object *o = json_object_new_object();
  add_str(o, "name", vm->name);
  add_str(o, "state", qvm_vm_state_name(qvm_vm_get_state(vm)));
  vm_tags_info(o, vm->spec, qvm_realtime_us());
  json_object_object_del(o, "sandbox");
  return o;
}

static int to_text(char **out, struct json_object *o, qvm_error **err) {
  const char *t = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;
  *out = t ? strdup(t) : NULL;
  json_object_put(o);
  return *out ? 0 : oom(err);
}

static int create_result(char **out, const char *name, const char *from, golden_kind kind,
                         int64_t ttl_s, qvm_sandbox_net net, const qvm_up_result *up,
                         qvm_error **err) {
  qvm_vm *vm = NULL;
  int r = qvm_vm_open(&vm, name, err);
  if (r < 0) return r;
  struct json_object *o = sandbox_json(vm);
  qvm_vm_free(vm);
  add_str(o, "from", from);
  add_str(o, "kind", golden_kind_names[kind]);
  json_object_object_add(o, "ttl_s", json_object_new_int64(ttl_s));
  add_str(o, "net",
          net == QVM_SANDBOX_NET_USER              ? "user"
          : net == QVM_SANDBOX_NET_ISOLATED_BRIDGE ? "isolated-bridge"
                                                   : "isolated");
  json_object_object_add(o, "ssh_port", up->ssh_port ? json_object_new_int(up->ssh_port) : NULL);
  return to_text(out, o, err);
}

/* An isolated bridge port: checked here, before anything is made, so a
 * user without CAP_NET_ADMIN learns at once what to use instead. */
static int sandbox_net(qvm_vm_net *net, const qvm_sandbox_create_options *o, qvm_error **err) {
  if ((unsigned)o->net > QVM_SANDBOX_NET_ISOLATED_BRIDGE)
    return qvm_error_set(err, QVM_EINVAL, "sandbox network %d is unknown", (int)o->net);
  if (o->net != QVM_SANDBOX_NET_ISOLATED_BRIDGE) {
    if (o->n_allow_egress || o->bridge)
      return qvm_error_set(err, QVM_EINVAL,
                           "a bridge and an egress allow-list need network isolated-bridge");
    return 0;
  }
  if (!vm_net_admin_capable()) {
    qvm_error_set(err, QVM_EUNAVAIL,
                  "network isolated-bridge needs root or CAP_NET_ADMIN: the host's nftables "
                  "enforce it");
    return qvm_error_set_hint(err, QVM_EUNAVAIL, "IsolatedNeedsAdmin", NULL);
  }
  if (o->n_allow_egress > QVM_VM_EGRESS_MAX)
    return qvm_error_set(err, QVM_EINVAL, "%zu egress entries: at most %d", o->n_allow_egress,
                         QVM_VM_EGRESS_MAX);
  for (size_t i = 0; i < o->n_allow_egress; i++) {
    qvm_net_egress e;
    int r = qvm_net_egress_parse(&e, o->allow_egress[i], err);
    if (r < 0) return r;
  }
  if (o->bridge && strlen(o->bridge) >= sizeof net->bridge)
    return qvm_error_set(err, QVM_EINVAL, "bridge name '%.20s' is too long", o->bridge);
  *net = (qvm_vm_net){.mode = QVM_VM_NET_BRIDGE,
                      .nat = true,
                      .isolated = true,
                      .allow_egress = o->allow_egress,
                      .n_allow_egress = o->n_allow_egress};
  if (o->bridge) snprintf(net->bridge, sizeof net->bridge, "%s", o->bridge);
  return 0;
}

static int create_run(char **out_json, const char *name, const qvm_sandbox_create_options *o,
                      qvm_error **err) {
  int64_t ttl = o->ttl_s ? o->ttl_s : QVM_SANDBOX_TTL_DEFAULT_S;
  int r = vm_ttl_check(ttl, err);
  if (r < 0) return r;
  qvm_vm_net net = {.mode = QVM_VM_NET_USER, .restricted = o->net == QVM_SANDBOX_NET_ISOLATED};
  if ((r = sandbox_net(&net, o, err)) < 0) return r;
  if ((r = vm_name_free(name, err)) < 0) return r;
  qvm_vm_tags tags = {.labels = o->labels,
                      .n_labels = o->n_labels,
                      .agent = o->agent,
                      .sandbox = true,
                      .expires_at_us = qvm_realtime_us() + ttl * 1000000,
                      .checkpoint_each = o->checkpoint_each};
  golden_kind kind;
  char vm[64];
  const char *snap = NULL;
  golden_resolve(&kind, vm, &snap, o->from);
  qvm_up_result up = {0};
  if (kind == GOLDEN_IMAGE) {
    qvm_vm_create_options co = QVM_VM_CREATE_OPTIONS_INIT;
    co.image = o->from;
    co.net = net;
    co.tags = tags;
    r = qvm_vm_up(&up, name, &co, o->up, err);
  } else {
    /* A sandbox made from one that checkpoints before every command does
     * too: else an agent would get the same disk without the policy by
     * starting a sandbox from its own. */
    qvm_vm *src = NULL;
    if (qvm_vm_open(&src, vm, NULL) >= 0 && qvm_vm_checkpoint_each(src))
      tags.checkpoint_each = true;
    qvm_vm_free(src);
    qvm_vm_clone_options co = QVM_VM_CLONE_OPTIONS_INIT;
    co.snapshot = snap;
    co.then = QVM_VM_CLONE_UP;
    co.up = o->up;
    co.up_result = &up;
    co.tags = tags;
    co.net = &net;
    r = qvm_vm_clone(NULL, vm, name, &co, err);
  }
  if (r >= 0 && out_json) r = create_result(out_json, name, o->from, kind, ttl, o->net, &up, err);
  return r;
}

int qvm_sandbox_create(char **out_json, const char *name, const qvm_sandbox_create_options *opts,
                       qvm_error **err) {
  int r =
      QVM_OPTIONS_CHECK(opts, qvm_sandbox_create_options, QVM_SANDBOX_CREATE_OPTIONS_VERSION, err);
  if (r < 0) return r;
  if (!opts || !opts->from || !*opts->from)
    return qvm_error_set(err, QVM_EINVAL, "a sandbox needs a golden image or vm to start from");
  char gen[12];
  if (!name && (r = random_name(gen, err)) < 0) return r;
  if (!name) name = gen;
  if ((r = qvm_vm_name_check(name, err)) < 0) return r;
  r = create_run(out_json, name, opts, err);
  if (r < 0) qvm_error_prefix(err, "cannot create sandbox '%s'", name);
  return r;
}

/* --- ls ------------------------------------------------------------------- */

int qvm_sandbox_list(char **out_json, const char *agent, qvm_error **err) {
  if (agent) {
    int r = qvm_vm_agent_check(agent, err);
    if (r < 0) return r;
  }
  char **names = NULL;
  size_t n = 0;
  int r = qvm_vm_list(&names, &n, err); /* removes the expired idle ones */
  if (r < 0) return r;
  struct json_object *a = json_object_new_array();
  for (size_t i = 0; a && i < n; i++) {
    qvm_vm *vm = NULL;
    if (qvm_vm_open(&vm, names[i], NULL) < 0) continue;
    if (vm->spec->sandbox && qvm_vm_matches(vm, NULL, 0, agent))
      json_object_array_add(a, sandbox_json(vm));
    qvm_vm_free(vm);
  }
  qvm_vm_names_free(names, n);
  return to_text(out_json, a, err);
}

/* --- destroy, extend ---------------------------------------------------------- */

static int not_sandbox(const char *name, qvm_error **err) {
  qvm_error_set(err, QVM_ECONFLICT, "vm '%s' is not a sandbox", name);
  return qvm_error_set_hint(err, QVM_ECONFLICT, "NotSandbox", name);
}

int qvm_sandbox_destroy(const char *name, qvm_error **err) {
  qvm_vm *vm = NULL;
  int r = qvm_vm_open(&vm, name, err);
  if (r >= 0 && !vm->spec->sandbox) r = not_sandbox(name, err);
  qvm_vm_free(vm);
  if (r >= 0) r = qvm_vm_remove(name, true, err);
  if (r < 0) qvm_error_prefix(err, "cannot destroy sandbox '%s'", name);
  return r;
}

typedef struct extend_ctx {
  int64_t was, now;
} extend_ctx;

static int extend_cb(vm_record *rec, void *ctx, qvm_error **err) {
  extend_ctx *c = ctx;
  if (!rec->spec->sandbox || rec->spec->expires_at_us != c->was)
    return qvm_error_set(err, QVM_EBUSY, "vm.json changed while it was being extended");
  rec->spec->expires_at_us = c->now;
  return 0;
}

static int expired(const char *name, int64_t at_us, qvm_error **err) {
  char at[32];
  qvm_format_rfc3339(at, at_us);
  qvm_error_set(err, QVM_ECONFLICT, "sandbox '%s' expired at %s", name, at);
  return qvm_error_set_hint(err, QVM_ECONFLICT, "SandboxExpired", name);
}

static int extend_locked(int64_t *out, qvm_vm *vm, int64_t by_s, qvm_error **err) {
  int r = vm_reconcile_locked(vm, err);
  if (r >= 0) r = vm_expire_locked(vm, err);
  if (r < 0) return r;
  if (!vm->spec->sandbox) return not_sandbox(vm->name, err);
  int64_t now = qvm_realtime_us();
  extend_ctx c = {.was = vm->spec->expires_at_us, .now = vm->spec->expires_at_us + by_s * 1000000};
  if (now >= c.was) return expired(vm->name, c.was, err);
  if (c.now - now > (int64_t)QVM_SANDBOX_TTL_MAX_S * 1000000)
    return qvm_error_set(err, QVM_EINVAL,
                         "the new deadline would be more than 7d away: extend by less");
  if ((r = vm_record_update(&vm->paths, extend_cb, &c, err)) < 0) return r;
  *out = c.now;
  char was[32], now_at[32];
  qvm_format_rfc3339(was, c.was);
  qvm_format_rfc3339(now_at, c.now);
  struct json_object *d = json_object_new_object();
  json_object_object_add(d, "expires_at_was", json_object_new_string(was));
  json_object_object_add(d, "expires_at", json_object_new_string(now_at));
  vm_audit_note(vm->name, "extend", 0, NULL, d);
  vm_runtime_view rv;
  vm_runtime_view_read(&rv, vm->rec);
  if (!rv.present || !rv.shim_alive) return 0; /* the next shim reads it from vm.json */
  int64_t kept = 0;
  r = vm_ctl_expiry(&kept, &vm->paths, 5000, err);
  if (r == QVM_ECONFLICT) return expired(vm->name, c.was, err);
  if (r >= 0 && kept != c.now)
    r = qvm_error_set(err, QVM_EPROTO, "the vm's shim kept another deadline");
  if (r < 0)
    qvm_error_prefix(err, "vm.json has the new deadline, but the running shim did not take it");
  return r;
}

int qvm_sandbox_extend(int64_t *out_expires_at_us, const char *name, int64_t by_s,
                       qvm_error **err) {
  qvm_vm *vm = NULL;
  int fd = -1;
  int64_t at = 0;
  int r = vm_ttl_check(by_s, err);
  if (r >= 0) r = qvm_vm_open(&vm, name, err);
  if (r >= 0) r = vm_lock_acquire(&fd, &vm->paths, "extend", VM_LOCK_TIMEOUT_MS, err);
  if (r >= 0) r = extend_locked(&at, vm, by_s, err);
  vm_lock_release(fd);
  qvm_vm_free(vm);
  if (r < 0) {
    qvm_error_prefix(err, "cannot extend sandbox '%s'", name);
    return r;
  }
  if (out_expires_at_us) *out_expires_at_us = at;
  return 0;
}

/* ---- what an agent may start from ------------------------------------------- */

/* Whether the JSON array text (of objects) has an object whose member key
 * is the string value. */
static bool json_list_has(const char *text, const char *key, const char *value) {
  json_object *arr = text ? json_tokener_parse(text) : NULL;
  bool found = false;
  for (size_t i = 0; arr && json_object_is_type(arr, json_type_array) &&
                     i < json_object_array_length(arr) && !found;
       i++) {
    json_object *v = NULL;
    found = json_object_object_get_ex(json_object_array_get_idx(arr, i), key, &v) &&
            json_object_is_type(v, json_type_string) && !strcmp(json_object_get_string(v), value);
  }
  json_object_put(arr);
  return found;
}

bool qvm_sandbox_agent_may_start_from(const char *from, const char *agent) {
  if (!from || !agent || !from[0] || strchr(from, '/') || from[0] == '.' || from[0] == '~')
    return false;
  qvm_error *err = NULL;
  if (strncmp(from, "sha256:", 7) != 0) {
    const char *colon = strchr(from, ':');
    size_t n = colon ? (size_t)(colon - from) : strlen(from);
    char name[QVM_VM_NAME_MAX + 1];
    if (n > 0 && n <= QVM_VM_NAME_MAX) {
      memcpy(name, from, n);
      name[n] = '\0';
      qvm_vm *vm = NULL;
      if (qvm_vm_open(&vm, name, &err) == 0) {
        /* a VM of that name is what qvm_sandbox_create would take */
        const char *golden = qvm_vm_label_value(vm, "golden");
        bool ok = golden && !strcmp(golden, "true");
        qvm_vm_free(vm);
        char *mine = NULL;
        if (!ok && qvm_sandbox_list(&mine, agent, &err) == 0)
          ok = json_list_has(mine, "name", name);
        qvm_error_free(err);
        free(mine);
        return ok;
      }
      qvm_error_free(err);
      err = NULL;
      if (colon) return false; /* VM:SNAP without the VM */
    }
  }
  char *text = NULL;
  if (qvm_image_inspect(&text, from, &err) == 0) {
    free(text);
    return true;
  }
  qvm_error_free(err);
  err = NULL;
  bool alias = false;
  if (qvm_image_catalog(&text, &err) == 0) alias = json_list_has(text, "alias", from);
  qvm_error_free(err);
  free(text);
  return alias;
}
