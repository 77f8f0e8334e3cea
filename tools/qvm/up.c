/* SPDX-License-Identifier: MIT */
/* qvm up, qvm down. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qvm/text.h>
#include <qvm/up.h>
#include <qvm/vm.h>

#include "commands.h"
#include "create_flags.h"
#include "up_live.h"

static const char up_help[] =
    "usage: qvm up NAME --image PATH [OPTIONS]\n"
    "       qvm up -f FILE [NAME...]\n"
    "       qvm up            (the VMs of ./qvm.yaml)\n\n"
    "From an image to a verified SSH session: generates the VM's keys, builds its\n"
    "cloud-init seed, creates the overlay disk, starts the VM, learns its address,\n"
    "waits for SSH with the host key pinned before the first boot and for\n"
    "cloud-init to finish, then runs the provision steps. Each phase is timed\n"
    "and recorded in the VM's events.jsonl; a phase that does not happen fails\n"
    "up, naming it, with the last serial output.\n\n"
    "Running up again with the same settings is safe: a running VM is left\n"
    "alone, a stopped one is started. Different settings are an error that lists\n"
    "what differs.\n\n"
    "  -f, --file FILE            bring up the VMs described in FILE (qvm.yaml,\n"
    "                             below), or only the NAMEs given\n"
    "  --timeout S                for the whole up (default 600)\n"
    "  --allow-cloud-init-errors  a cloud-init error does not fail up\n"
    "  --no-wait-cloud-init       stop waiting once SSH works\n"
    "  --keep-on-failure          leave a vm whose up failed running (to look\n"
    "                             at it); by default up stops it\n"
    "  --json                     print a JSON summary instead of the phases (on\n"
    "                             stdout, alone: provision output goes to stderr)\n\n"
    "qvm.yaml (docs/cli.md, section \"qvm.yaml\"; examples/qvm.yaml):\n"
    "  vms:\n"
    "    NAME:                    one mapping per VM, whose keys are the create\n"
    "      image: PATH            options below, with '_' for '-': image,\n"
    "      memory: 1G             image_format, allow_backing, cpus, memory,\n"
    "      net: user              disk, net, ports (--publish), user, hostname,\n"
    "      provision:             cloud_config, ssh_keys (--ssh-key), firmware,\n"
    "        - shell: CMD         accel, cpu, kernel, initrd, append, and provision:\n"
    "                             a list of {shell|script|file: X, to: DST,\n"
    "                             sudo: true}\n"
    "  Relative paths are taken from the file's directory.\n\n"
    "Create options (the same as 'qvm create'):\n";

static const char down_help[] =
    "usage: qvm down NAME... [--rm] [--timeout S]\n"
    "       qvm down -f FILE [NAME...] [--rm] [--timeout S]\n\n"
    "Stops VMs gracefully (ACPI power button, then quit, then kill after S\n"
    "seconds, default 60). With --rm, also removes them with everything they\n"
    "have (disk overlay, seed, keys, logs).\n\n"
    "  -f, --file FILE   the VMs described in FILE (missing ones are skipped)\n"
    "  --rm              remove the VMs after stopping them\n"
    "  --timeout S       graceful stop timeout\n";

/* `qvm up` with no NAME, -f or create option reads this file if it exists. */
#define DEFAULT_FILE "./qvm.yaml"
#define FILE_HINT                                                                                  \
  "the keys are listed in 'qvm up --help'; the format is in docs/cli.md, section \"qvm.yaml\", "   \
  "with a commented example in examples/qvm.yaml"

typedef struct up_cli {
  bool json, tty;
  const char *name;
  up_live live;
} up_cli;

/* Once QEMU runs, its warnings, with what they mean for the wait ahead:
 * under TCG a cloud image takes a minute or more to reach ssh, not seconds. */
static void up_warnings(const char *name) {
  qvm_vm *vm = NULL;
  if (qvm_cli_open(&vm, name, NULL) < 0) return;
  qvm_cli_print_warnings(vm, true);
  qvm_vm_free(vm);
}

static void on_phase(void *ctx, qvm_up_phase phase, qvm_up_phase_status st, int64_t ms,
                     const char *detail) {
  up_cli *c = ctx;
  if (c->json) return;
  /* a detail may be the guest's (its address) */
  char *safe = detail ? qvm_text_for_terminal(detail, strlen(detail), 0) : NULL;
  up_live_lock(&c->live);
  if (st == QVM_UP_PHASE_SKIPPED)
    printf("  %-11s %9s  %s\n", qvm_up_phase_name(phase), "-", safe ? safe : "skipped");
  else
    printf("  %-11s %7.1f s%s%s\n", qvm_up_phase_name(phase), (double)ms / 1000.0, safe ? "  " : "",
           safe ? safe : "");
  fflush(stdout);
  up_live_phase_done(&c->live, (int)phase);
  free(safe);
  if (phase == QVM_UP_STARTED && st != QVM_UP_PHASE_SKIPPED) up_warnings(c->name);
}

/* Provision output is the user's data, byte-exact as with exec; with --json
 * stdout carries the summary alone, so all of it goes to stderr. */
static int on_output(void *ctx, int stream, const void *data, size_t len) {
  up_cli *c = ctx;
  int fd = c->json || stream == QVM_SSH_STDERR ? STDERR_FILENO : STDOUT_FILENO;
  up_live_lock(&c->live);
  for (const char *p = data; len;) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break; /* a closed stdout does not fail the provision step */
    p += n;
    len -= (size_t)n;
  }
  up_live_unlock(&c->live);
  return 0;
}

static const char *outcome_name(qvm_up_outcome o) {
  return o == QVM_UP_CREATED ? "created" : o == QVM_UP_STARTED_AGAIN ? "started" : "already-up";
}

static void print_json(const char *name, const qvm_up_result *res, qvm_error *err) {
  printf("{\"name\":");
  qvm_cli_json_string(stdout, name);
  printf(",\"ok\":%s", err ? "false" : "true");
  if (!err) printf(",\"outcome\":\"%s\"", outcome_name(res->outcome));
  if (res->ssh_host[0]) {
    printf(",\"ssh\":{\"host\":");
    qvm_cli_json_string(stdout, res->ssh_host);
    printf(",\"port\":%d}", res->ssh_port);
  }
  if (res->ip_source[0]) {
    printf(",\"ip_source\":");
    qvm_cli_json_string(stdout, res->ip_source);
  }
  printf(",\"phases_ms\":{");
  for (int p = 0; p < QVM_UP_N_PHASES; p++) {
    printf("%s\"%s\":", p ? "," : "", qvm_up_phase_name(p));
    if (res->phase_ms[p] >= 0)
      printf("%lld", (long long)res->phase_ms[p]);
    else
      printf("null");
  }
  printf("}");
  if (err) {
    if (res->failed_in_phase)
      printf(",\"failed_phase\":\"%s\"", qvm_up_phase_name(res->failed_phase));
    printf(",\"error\":");
    qvm_cli_json_string(stdout, qvm_error_message(err));
    printf(",\"code\":\"%s\"", qvm_error_code_name(qvm_error_code(err)));
  }
  printf("}\n");
}

static int up_one(const char *name, const qvm_vm_create_options *create, const qvm_up_options *base,
                  bool json) {
  up_cli c = {.json = json, .tty = isatty(1), .name = name};
  /* An --image pulled on first use shows its progress on stderr. */
  qvm_vm_create_options co = *create;
  qvm_image_pull_options pull = QVM_IMAGE_PULL_OPTIONS_INIT;
  if (create->image_pull) pull = *create->image_pull;
  qvm_cli_progress prog;
  qvm_cli_progress_init(&prog, QVM_CLI_PROGRESS_AUTO);
  pull.progress = qvm_cli_image_progress;
  pull.userdata = &prog;
  co.image_pull = &pull;
  create = &co;
  qvm_up_options opts = *base;
  opts.on_phase = on_phase;
  opts.on_output = on_output;
  opts.ctx = &c;
  qvm_up_result res;
  qvm_error *err = NULL;
  if (!json) printf("up: vm '%s'\n", name);
  up_live_start(&c.live, name, c.tty && !json);
  int r = qvm_vm_up(&res, name, create, &opts, &err);
  up_live_stop(&c.live);
  qvm_cli_progress_end(&prog);
  if (json) print_json(name, &res, r < 0 ? err : NULL);
  if (r < 0) {
    char hint[640] = "";
    const char *cls = qvm_error_class(err), *by_class = qvm_cli_error_hint(err);
    if (by_class)
      snprintf(hint, sizeof hint, "%s", by_class);
    else if (cls && !strcmp(cls, "HostKeyMismatch"))
      snprintf(hint, sizeof hint,
               "a changed host key means the guest is not the one qvm set up; 'qvm ssh %s "
               "--repin' accepts it if you know why",
               name);
    else if (res.failed_in_phase)
      snprintf(hint, sizeof hint,
               "inspect with 'qvm logs %s' and 'qvm info %s'; remove with 'qvm down %s --rm'", name,
               name, name);
    return qvm_cli_fail("up", err, hint[0] ? hint : NULL);
  }
  if (!json) {
    if (res.outcome == QVM_UP_ALREADY_UP)
      printf("vm '%s' is already up\n", name);
    else
      printf("vm '%s' is up\n", name);
    if (res.ssh_host[0])
      printf("reach it with: qvm ssh %s   (or: qvm ssh %s --print, for OpenSSH; %s port %d)\n",
             name, name, res.ssh_host, res.ssh_port);
  }
  return QVM_EXIT_OK;
}

static bool wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
  }
  return false;
}

static int up_run(int argc, char **argv) {
  enum { OPT_TIMEOUT = 1, OPT_ALLOW, OPT_NOWAIT, OPT_JSON, OPT_KEEP };
  static const struct option own[] = {{"timeout", 1, 0, OPT_TIMEOUT},
                                      {"allow-cloud-init-errors", 0, 0, OPT_ALLOW},
                                      {"no-wait-cloud-init", 0, 0, OPT_NOWAIT},
                                      {"keep-on-failure", 0, 0, OPT_KEEP},
                                      {"json", 0, 0, OPT_JSON},
                                      {"file", 1, 0, 'f'},
                                      {0, 0, 0, 0}};
  if (wants_help(argc, argv))
    return printf("%s%s", up_help, qvm_cli_create_flags_help), QVM_EXIT_OK;
  struct option longopts[96];
  if (qvm_cli_create_longopts(longopts, 96, own) < 0) return QVM_EXIT_FAILURE;
  __attribute__((cleanup(qvm_cli_create_flags_clear))) qvm_cli_create_flags flags =
      QVM_CLI_CREATE_FLAGS_INIT;
  qvm_up_options opts = QVM_UP_OPTIONS_INIT;
  const char *file = NULL;
  bool json = false, any_create_flag = false;
  int c, r, timeout_s = 0;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":f:", longopts)) != -1) {
    if (c == '?' || c == ':') return qvm_cli_bad_option("up", c, argv);
    if ((r = qvm_cli_create_flag("up", &flags, c, optarg)) > 0) return r;
    if (r == 0) {
      any_create_flag = true;
      continue;
    }
    switch (c) {
    case OPT_TIMEOUT:
      if ((r = qvm_cli_parse_seconds("up", optarg, 1, &timeout_s))) return r;
      opts.timeout_ms = timeout_s * 1000;
      break;
    case OPT_ALLOW: opts.allow_cloud_init_errors = true; break;
    case OPT_NOWAIT: opts.wait_cloud_init = false; break;
    case OPT_KEEP: opts.keep_on_failure = true; break;
    case OPT_JSON: json = true; break;
    case 'f': file = optarg; break;
    default: return qvm_cli_bad_option("up", c, argv);
    }
  }
  qvm_cli_create_flags_finish(&flags);
  if (!file && optind >= argc && !any_create_flag && access(DEFAULT_FILE, F_OK) == 0) {
    file = DEFAULT_FILE;
    fprintf(stderr, "using %s\n", file);
  }
  if (!file) {
    if (optind >= argc) return qvm_cli_usage_error("up", "missing the vm name (or -f FILE)");
    if (optind + 1 < argc)
      return qvm_cli_usage_error("up", "unexpected argument '%s'", argv[optind + 1]);
    const qvm_vm_create_options *o = &flags.opts;
    if (!o->image && !o->kernel && !o->disk && !o->n_cdroms && !o->n_drives)
      return qvm_cli_usage_error("up",
                                 "missing --image PATH (or --kernel or --cdrom): vm '%s' "
                                 "has nothing to boot",
                                 argv[optind]);
    return up_one(argv[optind], &flags.opts, &opts, json);
  }
  if (any_create_flag)
    return qvm_cli_usage_error("up",
                               "create options go in the file with -f, not on the command line");
  qvm_vm_file *vf = NULL;
  qvm_error *err = NULL;
  if (qvm_vm_file_load(&vf, file, &err) < 0) return qvm_cli_fail("up", err, FILE_HINT);
  for (int i = optind; i < argc; i++)
    if (qvm_vm_file_find(vf, argv[i]) < 0) {
      qvm_vm_file_free(vf);
      return qvm_cli_usage_error("up", "'%s' describes no vm '%s'", file, argv[i]);
    }
  r = QVM_EXIT_OK;
  for (size_t i = 0; i < qvm_vm_file_count(vf) && r == QVM_EXIT_OK; i++) {
    const char *name = qvm_vm_file_name(vf, i);
    bool wanted = optind >= argc;
    for (int a = optind; a < argc; a++) wanted = wanted || !strcmp(argv[a], name);
    if (wanted) r = up_one(name, qvm_vm_file_options(vf, i), &opts, json);
  }
  qvm_vm_file_free(vf);
  return r;
}

const struct qvm_command qvm_cmd_up = {"up", "create, start and reach a vm over ssh, in one step",
                                       up_run};

/* --- down ------------------------------------------------------------------ */

static int down_one(const char *name, bool rm, int timeout, bool missing_ok) {
  qvm_vm *vm = NULL;
  qvm_error *err = NULL;
  if (qvm_cli_open(&vm, name, &err) < 0) {
    if (missing_ok && qvm_error_code(err) == QVM_ENOTFOUND) {
      qvm_error_free(err);
      printf("vm '%s' does not exist\n", name);
      return QVM_EXIT_OK;
    }
    return qvm_cli_fail("down", err, qvm_cli_vm_hint(err));
  }
  qvm_vm_stop_options so = QVM_VM_STOP_OPTIONS_INIT;
  so.timeout_ms = timeout * 1000; /* the flag counts seconds */
  qvm_vm_state before = qvm_vm_get_state(vm);
  int r = qvm_vm_stop(vm, &so, &err);
  if (r >= 0 && (before == QVM_VM_RUNNING || before == QVM_VM_STARTING)) qvm_cli_print_exit(vm);
  qvm_vm_free(vm);
  if (r < 0) return qvm_cli_fail("down", err, NULL);
  if (rm && qvm_vm_remove(name, true, &err) < 0) return qvm_cli_fail("down", err, NULL);
  printf("vm '%s' %s\n", name, rm ? "removed" : "stopped");
  return QVM_EXIT_OK;
}

static int down_run(int argc, char **argv) {
  static const struct option longopts[] = {
      {"rm", 0, 0, 'r'}, {"timeout", 1, 0, 't'}, {"file", 1, 0, 'f'}, {0, 0, 0, 0}};
  if (wants_help(argc, argv)) return printf("%s", down_help), QVM_EXIT_OK;
  bool rm = false;
  int timeout = 60, c, r;
  const char *file = NULL;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":f:", longopts)) != -1) {
    switch (c) {
    case 'r': rm = true; break;
    case 'f': file = optarg; break;
    case 't':
      if ((r = qvm_cli_parse_seconds("down", optarg, 0, &timeout))) return r;
      break;
    default: return qvm_cli_bad_option("down", c, argv);
    }
  }
  if (!file) {
    if (optind >= argc) return qvm_cli_usage_error("down", "missing the vm name (or -f FILE)");
    int worst = QVM_EXIT_OK;
    for (int i = optind; i < argc; i++) {
      r = down_one(argv[i], rm, timeout, false);
      if (r && !worst) worst = r;
    }
    return worst;
  }
  qvm_vm_file *vf = NULL;
  qvm_error *err = NULL;
  if (qvm_vm_file_load(&vf, file, &err) < 0) return qvm_cli_fail("down", err, FILE_HINT);
  int worst = QVM_EXIT_OK;
  for (size_t i = 0; i < qvm_vm_file_count(vf); i++) {
    const char *name = qvm_vm_file_name(vf, i);
    bool wanted = optind >= argc;
    for (int a = optind; a < argc; a++) wanted = wanted || !strcmp(argv[a], name);
    if (!wanted) continue;
    r = down_one(name, rm, timeout, true);
    if (r && !worst) worst = r;
  }
  qvm_vm_file_free(vf);
  return worst;
}

const struct qvm_command qvm_cmd_down = {"down", "stop vms (and with --rm, remove them)", down_run};
