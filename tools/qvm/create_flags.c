/* SPDX-License-Identifier: MIT */
/* The flags that describe a new VM, shared by `qvm create` and `qvm up`. */
#include "create_flags.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

enum {
  OPT_IMAGE = QVM_CLI_CREATE_OPT_FIRST,
  OPT_DISK,
  OPT_CPUS,
  OPT_MEMORY,
  OPT_KERNEL,
  OPT_INITRD,
  OPT_APPEND,
  OPT_FIRMWARE,
  OPT_NET,
  OPT_NAT,
  OPT_PUBLISH,
  OPT_CDROM,
  OPT_DRIVE,
  OPT_SEED,
  OPT_ACCEL,
  OPT_MACHINE,
  OPT_CPU,
  OPT_USER,
  OPT_HOSTNAME,
  OPT_CLOUD_CONFIG,
  OPT_SSH_KEY,
  OPT_PROVISION,
  OPT_HOSTKEY,
  OPT_NO_CLOUD_INIT,
  OPT_IMAGE_FORMAT,
  OPT_ALLOW_BACKING,
  OPT_IMAGE_SHA256,
  OPT_IMAGE_CHECKSUMS,
  OPT_LABEL,
  OPT_AGENT,
  OPT_MOUNT,
};

static const struct option create_longopts[] = {
    {"image", 1, 0, OPT_IMAGE},
    {"disk", 1, 0, OPT_DISK},
    {"cpus", 1, 0, OPT_CPUS},
    {"memory", 1, 0, OPT_MEMORY},
    {"kernel", 1, 0, OPT_KERNEL},
    {"initrd", 1, 0, OPT_INITRD},
    {"append", 1, 0, OPT_APPEND},
    {"firmware", 1, 0, OPT_FIRMWARE},
    {"net", 1, 0, OPT_NET},
    {"nat", 0, 0, OPT_NAT},
    {"publish", 1, 0, OPT_PUBLISH},
    {"cdrom", 1, 0, OPT_CDROM},
    {"drive", 1, 0, OPT_DRIVE},
    {"seed", 1, 0, OPT_SEED},
    {"accel", 1, 0, OPT_ACCEL},
    {"machine", 1, 0, OPT_MACHINE},
    {"cpu", 1, 0, OPT_CPU},
    {"user", 1, 0, OPT_USER},
    {"hostname", 1, 0, OPT_HOSTNAME},
    {"cloud-config", 1, 0, OPT_CLOUD_CONFIG},
    {"ssh-key", 1, 0, OPT_SSH_KEY},
    {"provision", 1, 0, OPT_PROVISION},
    {"hostkey", 1, 0, OPT_HOSTKEY},
    {"no-cloud-init", 0, 0, OPT_NO_CLOUD_INIT},
    {"image-format", 1, 0, OPT_IMAGE_FORMAT},
    {"allow-backing", 0, 0, OPT_ALLOW_BACKING},
    {"image-sha256", 1, 0, OPT_IMAGE_SHA256},
    {"image-checksums", 1, 0, OPT_IMAGE_CHECKSUMS},
    {"label", 1, 0, OPT_LABEL},
    {"agent", 1, 0, OPT_AGENT},
    {"mount", 1, 0, OPT_MOUNT},
};

#define N_CREATE_LONGOPTS (sizeof create_longopts / sizeof create_longopts[0])

const char qvm_cli_create_flags_help[] =
    "  --image IMAGE       base disk image: a file (raw, qcow2, vmdk, vdi, vhdx or\n"
    "                      vpc), or from the image store: a name, sha256:DIGEST,\n"
    "                      an alias (qvm image catalog) or an http(s):// URL,\n"
    "                      pulled on first use (see qvm image pull --help)\n"
    "  --image-sha256 HEX  the sha256 an --image URL's download must have\n"
    "  --image-checksums URL  a SHA256SUMS/SHA512SUMS file listing the --image URL\n"
    "  --image-format FMT  the image's format (one of those); default: detected\n"
    "                      once now and recorded, never probed again\n"
    "  --allow-backing     accept an --image or --drive that names another file\n"
    "                      (a backing file); refused by default\n"
    "  --disk SIZE         disk size, e.g. 10G (grows the overlay; without --image,\n"
    "                      a blank disk of that size)\n"
    "  --cpus N            virtual CPUs (default 1)\n"
    "  --memory SIZE       memory, e.g. 512M, 2G (default 1G)\n"
    "  --kernel PATH       boot this kernel directly (then --image is optional)\n"
    "  --initrd PATH       initramfs for --kernel\n"
    "  --append ARGS       kernel command line for --kernel\n"
    "  --firmware F        bios (default) or uefi (OVMF)\n"
    "  --net MODE          user[,restrict] (default: NAT, SSH forwarded to 127.0.0.1;\n"
    "                      restrict: the guest reaches neither the host nor any\n"
    "                      network, only forwards reach it), none, or\n"
    "                      bridge[=NAME][,dhcp=external][,subnet=A.B.C.D/N]\n"
    "  --nat               bridge: masquerade the bridge's subnet to the uplink and\n"
    "                      forward only the guests' own connections out\n"
    "  --publish SPEC      forward [IP:]HOST:GUEST[/udp] (user net; IP defaults to\n"
    "                      127.0.0.1); repeatable\n"
    "  --cdrom PATH        attach an ISO read-only; repeatable\n"
    "  --drive SPEC        attach PATH[,format=FMT][,readonly] (format: default\n"
    "                      detected once now); repeatable\n"
    "  --mount HOST:GUEST[:ro]  share host directory HOST at GUEST (an absolute\n"
    "                      path) over virtiofs (virtio-9p without virtiofsd, or\n"
    "                      with QVM_MOUNT_TRANSPORT=9p), mounted at every boot;\n"
    "                      :ro is enforced on the host; repeatable, at most 16\n"
    "  --accel A           kvm, tcg or auto (default)\n"
    "  --machine M         q35 (default) or pc\n"
    "  --cpu MODEL         the guest CPU: auto (default: qemu64 under TCG, which\n"
    "                      boots fastest there, host under KVM) or a QEMU model\n"
    "                      with features, e.g. Nehalem or qemu64,+sse4.2 (guests\n"
    "                      built for x86-64-v2, like RHEL 9, need one)\n"
    "guest access (qvm builds a cloud-init seed with a key it generates and a\n"
    "host key it pins before the first boot):\n"
    "  --user NAME         the guest user to create and log in as (default qvm,\n"
    "                      with passwordless sudo; root is allowed)\n"
    "  --hostname NAME     the guest's hostname (default: the vm name)\n"
    "  --cloud-config F    your cloud-config (YAML) or #! script, merged with qvm's;\n"
    "                      repeatable, applied in order\n"
    "  --ssh-key PUBFILE   also authorize this public key; repeatable\n"
    "  --provision STEP    run after boot by 'qvm up' / 'qvm provision': shell:CMD,\n"
    "                      script:PATH or file:SRC:DST, optionally prefixed sudo:;\n"
    "                      repeatable, run in order\n"
    "  --label KEY=VALUE   a label (qvm ls --label); repeatable, at most 64\n"
    "  --agent ID          the agent this vm is for (qvm ls --agent)\n"
    "  --hostkey P         pinned (default: the key qvm put in the seed) or tofu\n"
    "                      (pin the first key the guest presents, for images that\n"
    "                      ignore cloud-init's ssh_keys)\n"
    "  --no-cloud-init     no seed, no keys (log in with your own key or agent)\n"
    "  --seed PATH         attach your own NoCloud seed instead of qvm's\n";

int qvm_cli_create_longopts(struct option *out, size_t cap, const struct option *extra) {
  size_t n = 0;
  for (size_t i = 0; i < N_CREATE_LONGOPTS; i++) {
    if (n + 1 >= cap) return -1;
    out[n++] = create_longopts[i];
  }
  for (const struct option *o = extra; o && o->name; o++) {
    if (n + 1 >= cap) return -1;
    out[n++] = *o;
  }
  out[n] = (struct option){0};
  return (int)n;
}

static int too_many(const char *verb, size_t n, const char *opt) {
  if (n < QVM_CLI_LIST_MAX) return 0;
  return qvm_cli_usage_error(verb, "too many %s: at most %d", opt, QVM_CLI_LIST_MAX);
}

static int add_to(const char *verb, const char **list, size_t *n, const char *opt, const char *v) {
  int r = too_many(verb, *n, opt);
  if (r) return r;
  list[(*n)++] = v;
  return 0;
}

/* A value the library's parser refused: exit 1 with its message, as when
 * create itself refused it. */
static int parse_failed(const char *verb, int r, qvm_error *err) {
  return r < 0 ? qvm_cli_fail(verb, err, NULL) : 0;
}

static int add_publish(const char *verb, qvm_cli_create_flags *f, const char *arg) {
  qvm_error *err = NULL;
  int r = too_many(verb, f->n_publish, "--publish");
  if (r) return r;
  r = qvm_vm_publish_parse(&f->publish[f->n_publish], arg, &err);
  if (r >= 0) f->n_publish++;
  return parse_failed(verb, r, err);
}

static int add_drive(const char *verb, qvm_cli_create_flags *f, const char *arg) {
  qvm_error *err = NULL;
  int r = too_many(verb, f->n_drives, "--drive");
  if (r) return r;
  r = qvm_vm_drive_parse(&f->drives[f->n_drives], arg, &err);
  if (r >= 0) f->n_drives++;
  return parse_failed(verb, r, err);
}

static int add_mount(const char *verb, qvm_cli_create_flags *f, const char *arg) {
  if (f->n_mounts >= QVM_VM_MOUNTS_MAX)
    return qvm_cli_usage_error(verb, "too many --mount: at most %d", QVM_VM_MOUNTS_MAX);
  qvm_error *err = NULL;
  if (qvm_vm_mount_parse(&f->mounts[f->n_mounts], arg, &err) < 0) {
    int r = qvm_cli_usage_error(verb, "--mount: %s", qvm_error_message(err));
    qvm_error_free(err);
    return r;
  }
  f->n_mounts++;
  return 0;
}

static int add_step(const char *verb, qvm_cli_create_flags *f, const char *arg) {
  qvm_error *err = NULL;
  int r = too_many(verb, f->n_provision, "--provision");
  if (r) return r;
  r = qvm_vm_step_parse(&f->provision[f->n_provision], arg, &err);
  if (r >= 0) f->n_provision++;
  return parse_failed(verb, r, err);
}

/* --net keeps an earlier --nat. */
static int set_net(const char *verb, qvm_vm_net *net, const char *arg) {
  qvm_error *err = NULL;
  bool nat = net->nat;
  int r = qvm_vm_net_parse(net, arg, &err);
  net->nat = nat;
  return parse_failed(verb, r, err);
}

int qvm_cli_parse_cpus(const char *verb, const char *s, unsigned *out) {
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 1 || v > 255)
    return qvm_cli_usage_error(verb, "cpus '%s' is invalid: use a number from 1 to 255", s);
  *out = (unsigned)v;
  return 0;
}

/* --memory / --disk: the size grammar is the library's (qvm_vm_size_parse);
 * a bad value is a usage error like a bad --cpus. */
int qvm_cli_parse_size(const char *verb, const char *opt, const char *what, const char *s,
                       uint64_t min, uint64_t *out) {
  uint64_t v = 0;
  qvm_error *err = NULL;
  if (qvm_vm_size_parse(&v, what, s, &err) < 0) {
    int r = qvm_cli_usage_error(verb, "%s: %s", opt, qvm_error_message(err));
    qvm_error_free(err);
    return r;
  }
  if (v < min)
    return qvm_cli_usage_error(verb, "%s: %s size '%s' is too small: use at least 16M", opt, what,
                               s);
  *out = v;
  return 0;
}

static bool drive_option_known(const char *opt) {
  return !strcmp(opt, "readonly") || !strcmp(opt, "readonly=on") || !strncmp(opt, "format=", 7);
}

/* --drive PATH[,format=FMT][,readonly]: a path may hold commas, so a word
 * after a comma that looks like an option (has '=', or is a bare word) and
 * is not one of ours is named as a bad option, unless PATH with it exists. */
static int check_drive(const char *verb, const char *arg) {
  char *copy = strdup(arg), *comma;
  int r = 0;
  if (!copy) return QVM_EXIT_FAILURE;
  while ((comma = strrchr(copy, ',')) && drive_option_known(comma + 1)) *comma = 0;
  struct stat st;
  if (comma && stat(copy, &st) < 0) {
    const char *opt = comma + 1;
    *comma = 0;
    if (stat(copy, &st) == 0 || strchr(opt, '='))
      r = qvm_cli_usage_error(verb,
                              "--drive '%s': unknown drive option '%s': use "
                              "PATH[,format=FMT][,readonly]",
                              arg, opt);
  }
  free(copy);
  return r;
}

static const char *const step_kinds[] = {"shell", "script", "file"};

/* --provision [sudo:]KIND:REST: the syntax is checked here (a usage error,
 * named once); files are checked by the library at create. */
static int check_step(const char *verb, const char *arg) {
  const char *p = !strncmp(arg, "sudo:", 5) ? arg + 5 : arg, *colon = strchr(p, ':');
  size_t n = colon ? (size_t)(colon - p) : 0;
  bool known = false;
  for (size_t i = 0; colon && i < sizeof step_kinds / sizeof step_kinds[0]; i++)
    known = known || (n == strlen(step_kinds[i]) && !strncmp(p, step_kinds[i], n));
  if (!known)
    return qvm_cli_usage_error(verb,
                               "--provision '%s': %s: use shell:CMD, script:PATH or "
                               "file:SRC:DST, optionally prefixed sudo:",
                               arg, colon ? "unknown step kind" : "no step kind");
  if (!colon[1])
    return qvm_cli_usage_error(verb, "--provision '%s': nothing after '%.*s:'", arg, (int)n, p);
  if (!strncmp(p, "file:", 5)) {
    const char *dst = strchr(colon + 1, ':');
    if (!dst || dst == colon + 1 || !dst[1])
      return qvm_cli_usage_error(verb,
                                 "--provision '%s': a file step is file:SRC:DST (SRC a "
                                 "local file or directory, DST the path in the guest)",
                                 arg);
  }
  return 0;
}

int qvm_cli_label_arg(const char *verb, qvm_vm_label *labels, size_t *n, const char *arg) {
  if (*n >= QVM_VM_LABELS_MAX)
    return qvm_cli_usage_error(verb, "too many --label: at most %d", QVM_VM_LABELS_MAX);
  qvm_error *err = NULL;
  if (qvm_vm_label_parse(&labels[*n], arg, &err) < 0) {
    int r = qvm_cli_usage_error(verb, "--label: %s", qvm_error_message(err));
    qvm_error_free(err);
    return r;
  }
  for (size_t i = 0; i < *n; i++)
    if (!strcmp(labels[i].key, labels[*n].key)) {
      int r = qvm_cli_usage_error(verb, "--label '%s' is given twice", labels[i].key);
      qvm_vm_label_clear(&labels[*n]);
      return r;
    }
  (*n)++;
  return 0;
}

int qvm_cli_agent_arg(const char *verb, const char *arg) {
  qvm_error *err = NULL;
  if (qvm_vm_agent_check(arg, &err) >= 0) return 0;
  int r = qvm_cli_usage_error(verb, "--agent: %s", qvm_error_message(err));
  qvm_error_free(err);
  return r;
}

static int list_flag(const char *verb, qvm_cli_create_flags *f, int c, const char *arg) {
  switch (c) {
  case OPT_LABEL: return qvm_cli_label_arg(verb, f->labels, &f->n_labels, arg);
  case OPT_AGENT: return qvm_cli_agent_arg(verb, arg) ?: (f->opts.tags.agent = arg, 0);
  case OPT_PUBLISH: return add_publish(verb, f, arg);
  case OPT_CDROM: return add_to(verb, f->cdroms, &f->n_cdroms, "--cdrom", arg);
  case OPT_DRIVE: return check_drive(verb, arg) ?: add_drive(verb, f, arg);
  case OPT_CLOUD_CONFIG:
    return add_to(verb, f->cloud_configs, &f->n_cloud_configs, "--cloud-config", arg);
  case OPT_SSH_KEY: return add_to(verb, f->keys, &f->n_keys, "--ssh-key", arg);
  case OPT_PROVISION: return check_step(verb, arg) ?: add_step(verb, f, arg);
  case OPT_MOUNT: return add_mount(verb, f, arg);
  default: return -1;
  }
}

int qvm_cli_create_flag(const char *verb, qvm_cli_create_flags *f, int c, const char *arg) {
  qvm_vm_create_options *o = &f->opts;
  switch (c) {
  case OPT_IMAGE: o->image = arg; return 0;
  case OPT_DISK: return qvm_cli_parse_size(verb, "--disk", "disk", arg, 1, &o->disk);
  case OPT_CPUS: return qvm_cli_parse_cpus(verb, arg, &o->cpus);
  case OPT_MEMORY:
    return qvm_cli_parse_size(verb, "--memory", "memory", arg, 16u << 20, &o->memory);
  case OPT_KERNEL: o->kernel = arg; return 0;
  case OPT_INITRD: o->initrd = arg; return 0;
  case OPT_APPEND: o->append = arg; return 0;
  case OPT_FIRMWARE: o->firmware = arg; return 0;
  case OPT_NET: return set_net(verb, &o->net, arg);
  case OPT_NAT: o->net.nat = true; return 0;
  case OPT_SEED: o->seed_iso = arg; return 0;
  case OPT_ACCEL: o->accel = arg; return 0;
  case OPT_MACHINE: o->machine = arg; return 0;
  case OPT_CPU: o->cpu = arg; return 0;
  case OPT_USER: o->user = arg; return 0;
  case OPT_HOSTNAME: o->hostname = arg; return 0;
  case OPT_HOSTKEY:
    if (strcmp(arg, "pinned") && strcmp(arg, "tofu"))
      return qvm_cli_usage_error(verb, "--hostkey '%s' is unknown: use pinned or tofu", arg);
    o->hostkey = arg;
    return 0;
  case OPT_NO_CLOUD_INIT: o->no_cloud_init = true; return 0;
  case OPT_IMAGE_FORMAT: o->image_format = arg; return 0;
  case OPT_IMAGE_SHA256: f->pull.sha256 = arg; return 0;
  case OPT_IMAGE_CHECKSUMS: f->pull.checksums = arg; return 0;
  case OPT_ALLOW_BACKING: o->allow_backing = true; return 0;
  default: return list_flag(verb, f, c, arg);
  }
}

void qvm_cli_create_flags_finish(qvm_cli_create_flags *f) {
  qvm_vm_create_options *o = &f->opts;
  o->publish = f->publish, o->n_publish = f->n_publish;
  o->cdroms = f->cdroms, o->n_cdroms = f->n_cdroms;
  o->drives = f->drives, o->n_drives = f->n_drives;
  o->cloud_configs = f->cloud_configs, o->n_cloud_configs = f->n_cloud_configs;
  o->authorized_keys = f->keys, o->n_authorized_keys = f->n_keys;
  o->provision = f->provision, o->n_provision = f->n_provision;
  o->tags.labels = f->labels, o->tags.n_labels = f->n_labels;
  o->mounts = f->mounts, o->n_mounts = f->n_mounts;
  qvm_cli_progress_init(&f->progress, QVM_CLI_PROGRESS_AUTO);
  f->pull.progress = qvm_cli_image_progress;
  f->pull.userdata = &f->progress;
  o->image_pull = &f->pull;
}

void qvm_cli_create_flags_clear(qvm_cli_create_flags *f) {
  for (size_t i = 0; i < f->n_drives; i++) qvm_vm_drive_clear(&f->drives[i]);
  for (size_t i = 0; i < f->n_provision; i++) qvm_vm_step_clear(&f->provision[i]);
  for (size_t i = 0; i < f->n_labels; i++) qvm_vm_label_clear(&f->labels[i]);
  for (size_t i = 0; i < f->n_mounts; i++) qvm_vm_mount_clear(&f->mounts[i]);
  f->n_drives = f->n_provision = f->n_labels = f->n_mounts = 0;
}
