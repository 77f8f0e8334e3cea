/* SPDX-License-Identifier: MIT */
#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <qvm/text.h>

int qvm_cli_exit_code(int code) {
  switch (code) {
  case QVM_OK: return QVM_EXIT_OK;
  case QVM_EINVAL: return QVM_EXIT_FAILURE;
  case QVM_ENOTFOUND: return QVM_EXIT_NOTFOUND;
  case QVM_EEXISTS: return QVM_EXIT_EXISTS;
  case QVM_ETIMEOUT: return QVM_EXIT_TIMEOUT;
  case QVM_EBUSY: return QVM_EXIT_BUSY;
  case QVM_EQMP: return QVM_EXIT_QEMU;
  case QVM_EAUTH: return QVM_EXIT_AUTH;
  case QVM_ECONFLICT: return QVM_EXIT_BUSY; /* rm of a running VM was EBUSY: exit 6 stays */
  default: return QVM_EXIT_FAILURE;
  }
}

/* Messages and hints may quote the guest (a serial tail, cloud-init's
 * output, an address): the library neutralizes what it quotes, and this is
 * the last line of defence for the terminal. Idempotent on safe text. */
static void print_safe(FILE *f, const char *prefix, const char *text) {
  char *safe = qvm_text_for_terminal(text, strlen(text), QVM_TEXT_KEEP_NEWLINE);
  fprintf(f, "%s%s\n", prefix, safe ? safe : "(out of memory)");
  free(safe);
}

/* What to do next, by the error's class (include/qvm/error.h lists them):
 * libqvm says what went wrong, only the CLI knows its own flags and verbs.
 * %1$s is the error's subject (the VM, or a drive's path). */
static const struct {
  const char *cls;
  const char *hint;         /* subject NULL (or any, if hint_subject is NULL) */
  const char *hint_subject; /* subject set */
} class_hints[] = {
    {"VmNotRunning", "start it with 'qvm start %1$s'", NULL},
    {"VmRunning", "stop it first, or use --force", NULL},
    {"NoSshForward", "restart it with 'qvm restart %1$s'", NULL},
    {"NoNetwork", "use 'qvm console %1$s'", NULL},
    {"UserNetwork", "use 'qvm ssh %1$s'", NULL},
    {"NoLease", "give a longer --wait, or check the guest's dhcp client: 'qvm logs %1$s'", NULL},
    {"KvmUnusable", "use --accel tcg or auto", NULL},
    {"QemuMissing", "install QEMU, or name its binary with QVM_QEMU=PATH", NULL},
    {"BridgeNeedsAdmin", "run qvm as root, or use --net user", NULL},
    {"IsolatedNeedsAdmin",
     "run qvm as root, or use --net isolated (user-mode networking with restrict: reaches nothing, "
     "no allow-list)",
     NULL},
    {"ImageNamesFile",
     "give --allow-backing if you trust that file, or --image-format raw if the image is really "
     "raw",
     "give --allow-backing if you trust that file, or --drive '%1$s,format=raw' if the image is "
     "really raw"},
    {"ImageDataFile", "give --image-format raw if the image is really raw",
     "give --drive '%1$s,format=raw' if the image is really raw"},
    {"ImageNotADisk", "give --image-format raw to boot it anyway", NULL},
    {"CloudInitError",
     "use --allow-cloud-init-errors to go on anyway; inspect with 'qvm logs %1$s'", NULL},
    {"ImageInUse", "remove the vms first: qvm rm %1$s", NULL},
    {"NoRuntimeDir",
     "log in through a session that sets XDG_RUNTIME_DIR (/run/user/UID), or set %1$s to a "
     "private directory",
     NULL},
    {"NoStateDir", "set HOME, XDG_DATA_HOME or %1$s", NULL},
    {"ImageUnknown", "see 'qvm image ls' for stored images and 'qvm image catalog' for aliases",
     NULL},
    {"ImageUnverified",
     "give the download's digest (--image-sha256 HEX; with qvm image pull: --sha256) or a "
     "checksum file (--image-checksums URL; --checksums)",
     NULL},
    {"UpGuestUnreachable", "use --net user or --net bridge", NULL},
    {"UpInProgress", "wait for it, or stop it", NULL},
    {"UpNotByUp", "use 'qvm start %1$s', or 'qvm rm %1$s' first", NULL},
    {"UpSpecDiffers",
     "to apply it: 'qvm down %1$s --rm', then 'qvm up' again (this deletes its disk); or keep "
     "the vm and run up with its recorded settings",
     NULL},
    {"SeedUnusedNoCloudInit",
     "drop --cloud-config, --ssh-key and --hostname, or drop --no-cloud-init", NULL},
    {"SeedUnusedSeedIso", "drop --cloud-config, --ssh-key and --hostname, or drop --seed", NULL},
    {"NotSandbox", "remove it with 'qvm rm --force %1$s'", NULL},
    {"SandboxExpired", "make a new one with 'qvm sandbox create'", NULL},
};

const char *qvm_cli_error_hint(const qvm_error *err) {
  static char hint[640];
  const char *cls = qvm_error_class(err), *subject = qvm_error_subject(err);
  for (size_t i = 0; cls && i < sizeof class_hints / sizeof class_hints[0]; i++) {
    if (strcmp(cls, class_hints[i].cls)) continue;
    const char *fmt =
        subject && class_hints[i].hint_subject ? class_hints[i].hint_subject : class_hints[i].hint;
    snprintf(hint, sizeof hint, fmt, subject ? subject : "NAME");
    return hint;
  }
  return NULL;
}

int qvm_cli_fail(const char *verb, qvm_error *err, const char *hint) {
  int code = qvm_error_code(err);
  if (!hint) hint = qvm_cli_error_hint(err);
  char prefix[64];
  snprintf(prefix, sizeof prefix, "qvm %s: ", verb);
  print_safe(stderr, prefix, err ? qvm_error_message(err) : "failed");
  if (hint) print_safe(stderr, "hint: ", hint);
  qvm_error_free(err);
  return qvm_cli_exit_code(code ? code : QVM_ESYS);
}

int qvm_cli_dispatch(const char *verb, void (*usage)(FILE *f),
                     const struct qvm_command *const *subs, size_t n, int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return QVM_EXIT_USAGE;
  }
  const char *sub = argv[1];
  if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
    usage(stdout);
    return QVM_EXIT_OK;
  }
  for (size_t i = 0; i < n; i++)
    if (!strcmp(subs[i]->name, sub)) return subs[i]->run(argc - 1, argv + 1);
  fprintf(stderr, "qvm %s: unknown subcommand '%s'\ntry 'qvm %s --help'\n", verb, sub, verb);
  return QVM_EXIT_USAGE;
}

int qvm_cli_usage_error(const char *verb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "qvm %s: ", verb);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\ntry 'qvm %s --help'\n", verb);
  va_end(ap);
  return QVM_EXIT_USAGE;
}

/* The longopts of the last qvm_cli_getopt call, for suggestions, and the
 * argument getopt_long took as an abbreviation of a longer name. */
static const struct option *last_longopts;
static const char *inexact_arg;

int qvm_cli_getopt(int argc, char *const *argv, const char *optstring,
                   const struct option *longopts) {
  int index = -1;
  last_longopts = longopts;
  inexact_arg = NULL;
  int c = getopt_long(argc, argv, optstring, longopts, &index);
  if (c == -1 || c == '?' || c == ':' || index < 0 || optind < 1) return c;
  /* A value in the next argument (--image PATH) is that argument itself. */
  const struct option *o = &longopts[index];
  const char *arg = argv[optind - 1];
  if (o->has_arg != no_argument && optarg == argv[optind - 1] && optind >= 2)
    arg = argv[optind - 2];
  size_t len = strcspn(arg, "=");
  if (len > 2 && !strncmp(arg, "--", 2) && strlen(o->name) == len - 2 &&
      !strncmp(arg + 2, o->name, len - 2))
    return c;
  inexact_arg = arg;
  return '?';
}

/* The long option NAME (len bytes, no "--") most likely meant: the only one
 * it abbreviates, else the nearest within two edits, else NULL. */
static const char *closest_option(const char *name, size_t len) {
  const char *prefix_of = NULL, *best = NULL;
  size_t prefixes = 0, best_d = 3;
  for (const struct option *o = last_longopts; o && o->name; o++) {
    if (!strncmp(o->name, name, len) && strlen(o->name) > len) {
      prefix_of = o->name;
      prefixes++;
    }
    size_t d = qvm_text_edit_distance(name, len, o->name);
    if (d < best_d && d < len) {
      best = o->name;
      best_d = d;
    }
  }
  return prefixes == 1 ? prefix_of : best;
}

static bool is_long_option(const char *name, size_t len) {
  for (const struct option *o = last_longopts; o && o->name; o++)
    if (strlen(o->name) == len && !strncmp(o->name, name, len)) return true;
  return false;
}

static int unknown_long(const char *verb, const char *arg, int len) {
  const char *near = closest_option(arg + 2, (size_t)len - 2);
  if (near)
    return qvm_cli_usage_error(verb, "unknown option '%.*s' (did you mean '--%s'?)", len, arg,
                               near);
  return qvm_cli_usage_error(verb, "unknown option '%.*s'", len, arg);
}

int qvm_cli_bad_option(const char *verb, int c, char *const *argv) {
  if (inexact_arg) {
    const char *arg = inexact_arg;
    inexact_arg = NULL;
    return unknown_long(verb, arg, (int)strcspn(arg, "="));
  }
  const char *arg = optind > 0 ? argv[optind - 1] : NULL;
  bool is_long = arg && !strncmp(arg, "--", 2) && arg[2];
  int len = is_long ? (int)strcspn(arg, "=") : 0;
  if (c == ':' && is_long && last_longopts && !is_long_option(arg + 2, (size_t)len - 2))
    return unknown_long(verb, arg, len);
  if (c == ':' && is_long)
    return qvm_cli_usage_error(verb, "option '%.*s' needs a value", len, arg);
  if (c == ':') return qvm_cli_usage_error(verb, "option '-%c' needs a value", optopt);
  if (optopt || !is_long) return qvm_cli_usage_error(verb, "unknown option '-%c'", optopt);
  return unknown_long(verb, arg, len);
}

int qvm_cli_open(qvm_vm **out, const char *name, qvm_error **err) {
  *out = NULL;
  if (qvm_vm_open(out, name, err) < 0) return -1;
  if (qvm_vm_reconcile(*out, err) < 0) {
    qvm_vm_free(*out);
    *out = NULL;
    return -1;
  }
  return 0;
}

const char *qvm_cli_vm_hint(const qvm_error *err) {
  return qvm_error_code(err) == QVM_ENOTFOUND ? QVM_CLI_HINT_NO_VM : NULL;
}

/* The text is made valid UTF-8 without controls first (qvm_text_for_terminal):
 * JSON must be UTF-8, and people read it on terminals. */
void qvm_cli_json_string(FILE *f, const char *text) {
  char *s = qvm_text_for_terminal(text, strlen(text), QVM_TEXT_KEEP_NEWLINE);
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    default:
      if (*p < 0x20 || *p == 0x7f)
        fprintf(f, "\\u%04x", *p);
      else
        fputc(*p, f);
    }
  }
  fputc('"', f);
  free(s);
}

void qvm_cli_json_neutralize(struct json_object *o) {
  switch (json_object_get_type(o)) {
  case json_type_string: {
    const char *s = json_object_get_string(o);
    size_t len = (size_t)json_object_get_string_len(o);
    char *safe = qvm_text_for_terminal(s, len, QVM_TEXT_KEEP_NEWLINE);
    if (safe && (strlen(safe) != len || memcmp(safe, s, len))) json_object_set_string(o, safe);
    free(safe);
    break;
  }
  case json_type_array:
    for (size_t i = 0; i < json_object_array_length(o); i++)
      qvm_cli_json_neutralize(json_object_array_get_idx(o, i));
    break;
  case json_type_object: {
    json_object_object_foreach(o, key, value) {
      (void)key;
      qvm_cli_json_neutralize(value);
    }
    break;
  }
  default: break;
  }
}

void qvm_cli_print_json(struct json_object *o) {
  qvm_cli_json_neutralize(o);
  printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
}

int qvm_cli_vm_info(struct json_object **out, qvm_vm *vm, qvm_error **err) {
  char *text = NULL;
  int r = qvm_vm_info(&text, vm, err);
  if (r < 0) return r;
  struct json_object *o = json_tokener_parse(text);
  free(text);
  if (!o) {
    /* Not reachable unless libqvm and this CLI disagree; say so, no crash. */
    fprintf(stderr, "qvm: libqvm returned vm info that is not JSON\n");
    return QVM_EINVAL;
  }
  *out = o;
  return 0;
}

void qvm_cli_print_warnings(qvm_vm *vm, bool waiting) {
  struct json_object *info = NULL, *w = NULL;
  if (qvm_cli_vm_info(&info, vm, NULL) < 0) return;
  qvm_cli_json_neutralize(info);
  if (json_object_object_get_ex(info, "warnings", &w))
    for (size_t i = 0; i < json_object_array_length(w); i++) {
      const char *text = json_object_get_string(json_object_array_get_idx(w, i));
      bool tcg = waiting && strstr(text, "TCG");
      fprintf(stderr, "warning: %s%s\n", text,
              tcg ? "; expect a cloud image to take a minute or more to reach ssh" : "");
    }
  json_object_put(info);
}

void qvm_cli_print_exit(qvm_vm *vm) {
  struct json_object *info = NULL, *last = NULL, *detail = NULL;
  if (qvm_cli_vm_info(&info, vm, NULL) < 0) return;
  qvm_cli_json_neutralize(info); /* the detail may quote QEMU's or the guest's output */
  if (json_object_object_get_ex(info, "last_exit", &last) &&
      json_object_object_get_ex(last, "detail", &detail))
    fprintf(stderr, "%s: %s\n", qvm_vm_name(vm), json_object_get_string(detail));
  json_object_put(info);
}

int qvm_cli_parse_seconds(const char *verb, const char *s, int min, int *out) {
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < min || v > 86400)
    return qvm_cli_usage_error(verb, "timeout '%s' is invalid: use seconds from %d to 86400", s,
                               min);
  *out = (int)v;
  return 0;
}
