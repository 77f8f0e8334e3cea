/* SPDX-License-Identifier: MIT */
/* qvm ls, info, logs. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <qvm/vm.h>

#include "commands.h"
#include "create_flags.h"

static bool help_asked(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
  return false;
}

static bool json_flag(const char *verb, int argc, char **argv, int *rc) {
  static const struct option longopts[] = {{"json", 0, 0, 'j'}, {0, 0, 0, 0}};
  bool json = false;
  int c;
  *rc = 0;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":", longopts)) != -1) {
    if (c != 'j') {
      *rc = qvm_cli_bad_option(verb, c, argv);
      return false;
    }
    json = true;
  }
  return json;
}

static const char *str_member(struct json_object *o, const char *key, const char *dflt) {
  struct json_object *v = NULL;
  if (!json_object_object_get_ex(o, key, &v) || !v) return dflt;
  return json_object_get_string(v);
}

/* Where SSH reaches a running vm: 127.0.0.1:PORT (user networking) or its
 * IPv4 address (a bridge; port 22); "-" when neither is known. */
static void ssh_endpoint(char *out, size_t size, struct json_object *info) {
  struct json_object *net = NULL;
  snprintf(out, size, "-");
  if (strcmp(str_member(info, "state", ""), "running") ||
      !json_object_object_get_ex(info, "network", &net))
    return;
  const char *port = str_member(net, "ssh_port", NULL), *ip = str_member(net, "ip", NULL);
  if (port)
    snprintf(out, size, "127.0.0.1:%s", port);
  else if (ip)
    snprintf(out, size, "%s", ip);
}

static const char *exit_summary(struct json_object *info) {
  struct json_object *last = NULL;
  if (!json_object_object_get_ex(info, "last_exit", &last) || !last) return "-";
  return str_member(last, "detail", "-");
}

typedef struct ls_filter {
  qvm_vm_label labels[QVM_VM_LABELS_MAX];
  size_t n_labels;
  const char *agent;
  bool json;
} ls_filter;

static void ls_filter_clear(ls_filter *f) {
  for (size_t i = 0; i < f->n_labels; i++) qvm_vm_label_clear(&f->labels[i]);
  f->n_labels = 0;
}

static int ls_parse(ls_filter *f, int argc, char **argv) {
  static const struct option longopts[] = {
      {"json", 0, 0, 'j'}, {"label", 1, 0, 'l'}, {"agent", 1, 0, 'a'}, {0, 0, 0, 0}};
  int c, rc = 0;
  optind = 0;
  opterr = 0;
  while (!rc && (c = qvm_cli_getopt(argc, argv, ":", longopts)) != -1) {
    if (c == 'j')
      f->json = true;
    else if (c == 'l')
      rc = qvm_cli_label_arg("ls", f->labels, &f->n_labels, optarg);
    else if (c == 'a')
      rc = qvm_cli_agent_arg("ls", optarg) ?: (f->agent = optarg, 0);
    else
      rc = qvm_cli_bad_option("ls", c, argv);
  }
  if (!rc && optind < argc)
    rc = qvm_cli_usage_error("ls", "unexpected argument '%s'", argv[optind]);
  return rc;
}

static int ls_run(int argc, char **argv) {
  if (help_asked(argc, argv))
    return printf("usage: qvm ls [--label KEY=VALUE]... [--agent ID] [--json]\n\n"
                  "Lists vms: name, state, cpus, memory, QEMU pid, where SSH reaches a running\n"
                  "one (127.0.0.1:PORT, or a bridged vm's address), and how the last run ended.\n"
                  "--label and --agent keep only the vms that have all of them. A sandbox\n"
                  "whose deadline passed while it was not running is removed first.\n"),
           QVM_EXIT_OK;
  __attribute__((cleanup(ls_filter_clear))) ls_filter f = {0};
  int rc = ls_parse(&f, argc, argv);
  if (rc) return rc;
  bool json = f.json;
  char **names = NULL;
  size_t n = 0;
  qvm_error *err = NULL;
  if (qvm_vm_list(&names, &n, &err) < 0) return qvm_cli_fail("ls", err, NULL);
  struct json_object *all = json_object_new_array();
  for (size_t i = 0; i < n; i++) {
    qvm_vm *vm = NULL;
    struct json_object *info = NULL;
    if (qvm_vm_open(&vm, names[i], NULL) == 0 &&
        qvm_vm_matches(vm, f.labels, f.n_labels, f.agent) && qvm_cli_vm_info(&info, vm, NULL) == 0)
      json_object_array_add(all, info);
    qvm_vm_free(vm);
  }
  qvm_vm_names_free(names, n);
  qvm_cli_json_neutralize(all); /* the guest's address is in there */
  if (json) {
    qvm_cli_print_json(all);
  } else {
    printf("%-24s %-9s %4s %8s %8s  %-21s %s\n", "NAME", "STATE", "CPUS", "MEMORY", "PID", "SSH",
           "LAST EXIT");
    for (size_t i = 0; i < json_object_array_length(all); i++) {
      struct json_object *info = json_object_array_get_idx(all, i);
      char mem[32], ssh[64];
      snprintf(mem, sizeof mem, "%sM", str_member(info, "memory_mib", "?"));
      ssh_endpoint(ssh, sizeof ssh, info);
      printf("%-24s %-9s %4s %8s %8s  %-21s %s\n", str_member(info, "name", "?"),
             str_member(info, "state", "?"), str_member(info, "cpus", "?"), mem,
             str_member(info, "pid", "-"), ssh, exit_summary(info));
    }
  }
  json_object_put(all);
  return QVM_EXIT_OK;
}

static void print_disks(struct json_object *info) {
  struct json_object *disks = NULL;
  if (!json_object_object_get_ex(info, "disks", &disks)) return;
  for (size_t i = 0; i < json_object_array_length(disks); i++) {
    struct json_object *d = json_object_array_get_idx(disks, i);
    printf("disk:         %s (%s, %s%s)\n", str_member(d, "path", "?"), str_member(d, "media", "?"),
           str_member(d, "format", "?"),
           !strcmp(str_member(d, "readonly", "false"), "true") ? ", read-only" : "");
  }
}

static void print_mounts(struct json_object *info) {
  struct json_object *mounts = NULL;
  if (!json_object_object_get_ex(info, "mounts", &mounts)) return;
  for (size_t i = 0; i < json_object_array_length(mounts); i++) {
    struct json_object *m = json_object_array_get_idx(mounts, i);
    printf("mount:        %s -> %s (%s tag %s, %s)\n", str_member(m, "host", "?"),
           str_member(m, "guest", "?"), str_member(m, "transport", "9p"), str_member(m, "tag", "?"),
           !strcmp(str_member(m, "readonly", "false"), "true") ? "read-only" : "read-write");
  }
}

static void print_tags(struct json_object *info) {
  struct json_object *l = NULL;
  if (json_object_object_get_ex(info, "labels", &l) && json_object_is_type(l, json_type_object)) {
    json_object_object_foreach(l, k, v)
        printf("label:        %s=%s\n", k, json_object_get_string(v));
  }
  if (str_member(info, "agent", NULL)) printf("agent:        %s\n", str_member(info, "agent", ""));
  if (str_member(info, "expires_at", NULL))
    printf("sandbox:      expires at %s (in %s s)\n", str_member(info, "expires_at", ""),
           str_member(info, "expires_in_s", "?"));
  if (!strcmp(str_member(info, "checkpoint_each", "false"), "true"))
    printf("checkpoints:  one before every command (sandbox create --checkpoint-each)\n");
}

static void print_info(struct json_object *info) {
  struct json_object *net = NULL, *w = NULL;
  printf("name:         %s\n", str_member(info, "name", "?"));
  printf("state:        %s\n", str_member(info, "state", "?"));
  printf("uuid:         %s\n", str_member(info, "uuid", "?"));
  printf("cpus:         %s\n", str_member(info, "cpus", "?"));
  printf("memory:       %sM\n", str_member(info, "memory_mib", "?"));
  printf("machine:      %s, %s firmware\n", str_member(info, "machine", "?"),
         str_member(info, "firmware", "?"));
  printf("accelerator:  %s (asked: %s)\n", str_member(info, "accelerator", "-"),
         str_member(info, "accel_requested", "auto"));
  printf("cpu model:    %s (%s)\n", str_member(info, "cpu", "-"),
         str_member(info, "cpu_reason", "?"));
  printf("pid:          %s (shim %s)\n", str_member(info, "pid", "-"),
         str_member(info, "shim_pid", "-"));
  printf("uptime:       %s s\n", str_member(info, "uptime_s", "-"));
  print_disks(info);
  print_mounts(info);
  if (json_object_object_get_ex(info, "network", &net))
    printf("network:      %s%s%s%s\n", str_member(net, "mode", "?"),
           !strcmp(str_member(net, "restrict", "false"), "true") ? ",restrict" : "",
           str_member(net, "ssh_port", NULL) ? ", ssh on 127.0.0.1:" : "",
           str_member(net, "ssh_port", ""));
  if (net && str_member(net, "ip", NULL))
    printf("ip:           %s (from %s)\n", str_member(net, "ip", ""),
           str_member(net, "ip_source", "?"));
  if (str_member(info, "kernel", NULL))
    printf("kernel:       %s\n", str_member(info, "kernel", ""));
  printf("last exit:    %s\n", exit_summary(info));
  print_tags(info);
  if (json_object_object_get_ex(info, "warnings", &w))
    for (size_t i = 0; i < json_object_array_length(w); i++)
      printf("warning:      %s\n", json_object_get_string(json_object_array_get_idx(w, i)));
}

static int info_run(int argc, char **argv) {
  if (help_asked(argc, argv))
    return printf("usage: qvm info NAME [--json]\n\nShows a vm's state, uuid, cpus, memory, pid, "
                  "accelerator, disks, network,\nuptime and how its last run ended.\n"),
           QVM_EXIT_OK;
  int rc = 0;
  bool json = json_flag("info", argc, argv, &rc);
  if (rc) return rc;
  if (optind >= argc) return qvm_cli_usage_error("info", "missing the vm name");
  if (optind + 1 < argc)
    return qvm_cli_usage_error("info", "unexpected argument '%s'", argv[optind + 1]);
  qvm_vm *vm = NULL;
  struct json_object *info = NULL;
  qvm_error *err = NULL;
  if (qvm_cli_open(&vm, argv[optind], &err) < 0 || qvm_cli_vm_info(&info, vm, &err) < 0) {
    const char *hint = vm ? NULL : qvm_cli_vm_hint(err);
    qvm_vm_free(vm);
    return qvm_cli_fail("info", err, hint);
  }
  qvm_cli_json_neutralize(info); /* the guest's address is in there */
  if (json)
    qvm_cli_print_json(info);
  else
    print_info(info);
  json_object_put(info);
  qvm_vm_free(vm);
  return QVM_EXIT_OK;
}

static int logs_run(int argc, char **argv) {
  static const struct option longopts[] = {{"follow", 0, 0, 'f'}, {"raw", 0, 0, 'r'}, {0, 0, 0, 0}};
  if (help_asked(argc, argv))
    return printf("usage: qvm logs NAME [-f] [--raw]\n\n"
                  "Prints the vm's serial console log (this boot). The guest writes it, so\n"
                  "control sequences and bytes that are not UTF-8 are shown escaped (\\x1b,\n"
                  "\\u{009b}) unless --raw is given.\n\n"
                  "  -f, --follow   keep printing new output until the vm stops\n"
                  "  --raw          the log's bytes exactly, escape sequences and all\n"),
           QVM_EXIT_OK;
  unsigned flags = 0;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":f", longopts)) != -1) {
    if (c == 'f')
      flags |= QVM_VM_LOGS_FOLLOW;
    else if (c == 'r')
      flags |= QVM_VM_LOGS_RAW;
    else
      return qvm_cli_bad_option("logs", c, argv);
  }
  if (optind >= argc) return qvm_cli_usage_error("logs", "missing the vm name");
  if (optind + 1 < argc)
    return qvm_cli_usage_error("logs", "unexpected argument '%s'", argv[optind + 1]);
  qvm_vm *vm = NULL;
  qvm_error *err = NULL;
  fflush(stdout);
  if (qvm_cli_open(&vm, argv[optind], &err) < 0 ||
      qvm_vm_logs(vm, STDOUT_FILENO, flags, &err) < 0) {
    const char *hint = vm ? NULL : qvm_cli_vm_hint(err);
    qvm_vm_free(vm);
    return qvm_cli_fail("logs", err, hint);
  }
  qvm_vm_free(vm);
  return QVM_EXIT_OK;
}

const struct qvm_command qvm_cmd_ls = {"ls", "list vms", ls_run};
const struct qvm_command qvm_cmd_info = {"info", "show a vm's state and spec", info_run};
const struct qvm_command qvm_cmd_logs = {"logs", "print a vm's serial log", logs_run};
