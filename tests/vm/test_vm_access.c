/* SPDX-License-Identifier: MIT */
/*
 * Guest access end to end through the real `qvm` binary and the mini guest
 * (user-mode networking, dropbear + sftp-server, keys from qvm's seed): the
 * host key pinned before the first boot is the one the guest presents; exec
 * quoting, exit codes, signals, stdin, --env, --timeout; cp of files and
 * trees both ways; provisioners; `qvm ssh --print` and `qvm ssh-config` with
 * OpenSSH; a swapped host key refused and --repin; your own key
 * (--identity, a second key authorized with create --ssh-key) and a real
 * ssh-agent (--agent).
 *
 * The mini guest authorizes keys for root only, so the VM is created with
 * --user root. One VM is booted for the whole group (a boot under TCG costs
 * seconds); every test gets it running.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "testlib.h"
#include "util/fs.h"
#include "util/time.h"
#include <qvm/ssh.h>

#define VM "acc"

static const char *kernel, *initrd;
static char *root, state_dir[512], run_dir[512], vm_dir[600], work[600];
static char agent_pid[32]; /* the ssh-agent the test started, if any */

/* --- running qvm ---------------------------------------------------------------- */

typedef struct result {
  int status; /* exit code, or 128+signal */
  char *out, *err;
  size_t out_len, err_len;
} result;

static void result_clear(result *r) {
  free(r->out);
  free(r->err);
  *r = (result){0};
}

/* Runs qvm with argv (NULL-terminated, without "qvm"), stdin from `input`
 * (NULL: /dev/null), stdout and stderr captured separately. */
static result qvm_run(const char *input, const char *const *argv) {
  char in_path[700], out_path[700], err_path[700], bin[600];
  snprintf(in_path, sizeof in_path, "%s/stdin", root);
  snprintf(out_path, sizeof out_path, "%s/stdout", root);
  snprintf(err_path, sizeof err_path, "%s/stderr", root);
  snprintf(bin, sizeof bin, "%s/qvm", qvm_test_binary_dir());
  assert_int_equal(
      qvm_write_file_atomic(in_path, input ? input : "", input ? strlen(input) : 0, 0600, NULL), 0);
  size_t n = 0;
  while (argv[n]) n++;
  const char **full = calloc(n + 2, sizeof *full);
  full[0] = "qvm";
  memcpy(full + 1, argv, n * sizeof *argv);
  pid_t pid = fork();
  if (pid == 0) {
    int in = open(in_path, O_RDONLY);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, 0), dup2(out, 1), dup2(err, 2);
    execv(bin, (char *const *)full);
    _exit(127);
  }
  free(full);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  result r = {.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)};
  assert_int_equal(qvm_read_file(&r.out, &r.out_len, out_path, 64 << 20, NULL), 0);
  assert_int_equal(qvm_read_file(&r.err, &r.err_len, err_path, 64 << 20, NULL), 0);
  return r;
}

#define QVM(input, ...) qvm_run(input, (const char *const[]){__VA_ARGS__, NULL})

static void expect_ok(result *r) {
  if (r->status != 0) fail_msg("qvm exited %d: %s", r->status, r->err);
}

static bool serial_has(const char *marker) {
  char path[700], *log = NULL;
  snprintf(path, sizeof path, "%s/serial.log", vm_dir);
  if (qvm_read_file(&log, NULL, path, 16 << 20, NULL) < 0) return false;
  bool found = strstr(log, marker) != NULL;
  free(log);
  return found;
}

static void wait_ready(void) {
  int64_t deadline = qvm_now_ms() + 180000;
  while (!serial_has("qvm-mini: ready")) {
    if (qvm_now_ms() > deadline) fail_msg("the mini guest never printed 'qvm-mini: ready'");
    usleep(50 * 1000);
  }
}

static char *file_text(const char *dir, const char *name) {
  char path[800], *text = NULL;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (qvm_read_file(&text, NULL, path, 16 << 20, NULL) < 0) return NULL;
  return text;
}

/* The base64 blob of the first key line in a known_hosts-like text. */
static char *key_blob(const char *text) {
  const char *p = strstr(text, "ssh-ed25519 ");
  if (!p) return NULL;
  p += strlen("ssh-ed25519 ");
  return strndup(p, strcspn(p, " \r\n"));
}

static int ssh_port(void) {
  char *out = qvm_test_sh_output("'%s/qvm' info --json " VM, qvm_test_binary_dir());
  struct json_object *j = out ? json_tokener_parse(out) : NULL, *net = NULL, *port = NULL;
  free(out);
  int p = -1;
  if (json_object_object_get_ex(j, "network", &net) &&
      json_object_object_get_ex(net, "ssh_port", &port))
    p = json_object_get_int(port);
  json_object_put(j);
  return p;
}

/* --- the group's VM ------------------------------------------------------------- */

static void write_work_file(const char *name, const char *content, mode_t mode) {
  char path[800];
  snprintf(path, sizeof path, "%s/%s", work, name);
  assert_int_equal(qvm_write_file_atomic(path, content, strlen(content), mode, NULL), 0);
}

static int group_setup(void **state) {
  (void)state;
  root = qvm_test_mkdtemp("vm-access");
  snprintf(state_dir, sizeof state_dir, "%s/state", root);
  snprintf(run_dir, sizeof run_dir, "%s/run", root);
  snprintf(vm_dir, sizeof vm_dir, "%s/vms/" VM, state_dir);
  snprintf(work, sizeof work, "%s/work", root);
  setenv("QVM_STATE_DIR", state_dir, 1);
  setenv("QVM_RUNTIME_DIR", run_dir, 1);
  mkdir(work, 0755);
  write_work_file("setup.sh", "#!/bin/sh\necho \"script ran as $(id -u)\"\necho script-err >&2\n",
                  0755);
  write_work_file("payload.txt", "payload 1\n", 0640);
  char step_script[800], step_file[800];
  snprintf(step_script, sizeof step_script, "script:%s/setup.sh", work);
  snprintf(step_file, sizeof step_file, "file:%s/payload.txt:/tmp/payload.txt", work);
  /* own: a second key, authorized at create; enc: encrypted; stranger: never
   * authorized */
  char own_pub[800];
  snprintf(own_pub, sizeof own_pub, "%s/own.pub", work);
  if (qvm_test_sh("cd '%s' && ssh-keygen -q -t ed25519 -N '' -C own -f own && "
                  "ssh-keygen -q -t ed25519 -N secret -C enc -f enc && "
                  "ssh-keygen -q -t ed25519 -N '' -C stranger -f stranger",
                  work) != 0)
    return -1;
  result r = QVM(NULL, "create", VM, "--kernel", kernel, "--initrd", initrd, "--append",
                 "console=ttyS0", "--memory", "256M", "--user", "root", "--ssh-key", own_pub,
                 "--provision", "shell:echo step-one; echo step-one-err >&2", "--provision",
                 step_script, "--provision", step_file, "--provision",
                 "shell:test ! -e /tmp/fail-now", "--provision", "shell:touch /tmp/after-fail");
  if (r.status) fprintf(stderr, "create: %s\n", r.err);
  int status = r.status;
  result_clear(&r);
  return status;
}

static void agent_stop(void) {
  if (agent_pid[0]) qvm_test_sh("kill %s 2>/dev/null", agent_pid);
  agent_pid[0] = 0;
  unsetenv("SSH_AUTH_SOCK");
}

static int group_teardown(void **state) {
  (void)state;
  agent_stop();
  qvm_test_sh("'%s/qvm' rm --force " VM " >/dev/null 2>&1", qvm_test_binary_dir());
  qvm_test_sh("for j in '%s'/vms/*/vm.json; do [ -f \"$j\" ] || continue; "
              "for p in $(sed -n 's/.*\"pid\": *\\([0-9][0-9]*\\).*/\\1/p' \"$j\"); do "
              "kill -9 $p 2>/dev/null; done; done",
              state_dir);
  qvm_test_rmtree(root);
  free(root);
  return 0;
}

/* Each test gets the VM running and ready. */
static int running(void **state) {
  (void)state;
  char *s = qvm_test_sh_output("'%s/qvm' info --json " VM " | grep -c '\"state\": *\"running\"'",
                               qvm_test_binary_dir());
  bool up = s && !strcmp(s, "1");
  free(s);
  if (!up) {
    result r = QVM(NULL, "start", VM);
    if (r.status) fprintf(stderr, "start: %s\n", r.err);
    result_clear(&r);
  }
  wait_ready();
  return 0;
}

/* --- tests ------------------------------------------------------------------------- */

/* Before the first boot the VM has its key, its seed and a pinned host key;
 * once it runs, the key the guest's sshd presents is that one. */
static void test_host_key_pinned_before_boot(void **state) {
  (void)state;
  /* group_setup created the VM and nothing started it yet */
  char *kh = file_text(vm_dir, "known_hosts");
  assert_non_null(kh);
  assert_int_equal(strncmp(kh, VM " ssh-ed25519 ", strlen(VM) + 13), 0);
  struct stat st;
  char path[800];
  snprintf(path, sizeof path, "%s/serial.log", vm_dir);
  assert_int_not_equal(stat(path, &st), 0); /* never booted */
  snprintf(path, sizeof path, "%s/id_ed25519", vm_dir);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  snprintf(path, sizeof path, "%s/seed.iso", vm_dir);
  assert_int_equal(stat(path, &st), 0);

  running(NULL);
  assert_true(serial_has("qvm-mini: seed hostkey=ed25519"));
  assert_true(serial_has("qvm-mini: seed hostname=" VM));
  char *scan =
      qvm_test_sh_output("ssh-keyscan -T 20 -t ed25519 -p %d 127.0.0.1 2>/dev/null", ssh_port());
  assert_non_null(scan);
  char *pinned = key_blob(kh), *presented = key_blob(scan);
  assert_non_null(pinned);
  assert_non_null(presented);
  assert_string_equal(pinned, presented);
  free(pinned), free(presented), free(scan), free(kh);
}

static void test_exec_quoting(void **state) {
  (void)state;
  static const char *const args[] = {"plain",
                                     "two words",
                                     "",
                                     "'single'",
                                     "\"double\"",
                                     "$HOME",
                                     "${x:-y}",
                                     "a;b",
                                     "a && b",
                                     "`id`",
                                     "$(id)",
                                     "back\\slash",
                                     "line1\nline2",
                                     "tab\there",
                                     "*",
                                     "?",
                                     "~",
                                     "#hash",
                                     "-n",
                                     "--",
                                     "trailing ",
                                     " leading",
                                     "it's",
                                     "\\'",
                                     "!bang",
                                     "{a,b}",
                                     "a|b",
                                     "<in",
                                     ">out",
                                     "%s",
                                     "\xc3\xa9t\xc3\xa9"};
  size_t n = sizeof args / sizeof *args;
  const char **argv = calloc(n + 8, sizeof *argv);
  size_t k = 0;
  argv[k++] = "exec", argv[k++] = VM, argv[k++] = "--", argv[k++] = "printf", argv[k++] = "%s\\0";
  for (size_t i = 0; i < n; i++) argv[k++] = args[i];
  result r = qvm_run(NULL, argv);
  expect_ok(&r);
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(args[i]);
    if (off + len + 1 > r.out_len || memcmp(r.out + off, args[i], len) || r.out[off + len])
      fail_msg("argument %zu '%s' did not round-trip", i, args[i]);
    off += len + 1;
  }
  assert_int_equal(off, r.out_len);
  result_clear(&r);
  free(argv);
  /* Without "--", the command starts after NAME and keeps its own options. */
  r = QVM(NULL, "exec", VM, "echo", "-n", "x y");
  expect_ok(&r);
  assert_string_equal(r.out, "x y");
  result_clear(&r);
}

static void test_exec_status_streams_stdin(void **state) {
  (void)state;
  result r = QVM(NULL, "exec", VM, "--", "sh", "-c", "echo out; echo err >&2; exit 42");
  assert_int_equal(r.status, 42);
  assert_string_equal(r.out, "out\n");
  assert_string_equal(r.err, "err\n");
  result_clear(&r);
  r = QVM("line one\nline two\n", "exec", VM, "--", "cat");
  expect_ok(&r);
  assert_string_equal(r.out, "line one\nline two\n");
  result_clear(&r);
  r = QVM(NULL, "exec", VM, "--", "sh", "-c", "kill -TERM $$");
  assert_int_equal(r.status, 128 + SIGTERM);
  assert_non_null(strstr(r.err, "killed by signal TERM"));
  result_clear(&r);
  r = QVM(NULL, "exec", VM, "--", "sh", "-c", "exit 0");
  expect_ok(&r);
  result_clear(&r);
  /* qvm's own failure is 255, never a remote status */
  r = QVM(NULL, "exec", "no-such-vm", "--", "true");
  assert_int_equal(r.status, 255);
  assert_non_null(strstr(r.err, "no-such-vm"));
  result_clear(&r);
  r = QVM(NULL, "exec", VM);
  assert_int_equal(r.status, 2);
  result_clear(&r);
  /* qvm ssh without a terminal: the login shell reads stdin */
  r = QVM("echo from-stdin; exit 7\n", "ssh", VM);
  assert_int_equal(r.status, 7);
  assert_string_equal(r.out, "from-stdin\n");
  result_clear(&r);
}

static void test_exec_env_timeout(void **state) {
  (void)state;
  result r = QVM(NULL, "exec", "--env", "A=x y$z 'q'", "--env", "B=", VM, "--", "sh", "-c",
                 "printf '%s|%s|' \"$A\" \"${B-unset}\"");
  expect_ok(&r);
  assert_string_equal(r.out, "x y$z 'q'||");
  result_clear(&r);
  r = QVM(NULL, "exec", "--env", "1A=x", VM, "--", "true");
  assert_int_equal(r.status, 255); /* not a shell name: refused before running */
  result_clear(&r);
  r = QVM(NULL, "exec", "--timeout", "1", VM, "--", "sleep", "60");
  assert_int_equal(r.status, 124);
  assert_non_null(strstr(r.err, "did not finish"));
  result_clear(&r);
  /* the session and the guest are fine afterwards */
  r = QVM(NULL, "exec", VM, "--", "echo", "alive");
  expect_ok(&r);
  assert_string_equal(r.out, "alive\n");
  result_clear(&r);
  /* every exec is in the audit log, one JSON object per line */
  char *audit = file_text(vm_dir, "audit.jsonl");
  assert_non_null(audit);
  size_t lines = 0;
  for (char *save = NULL, *l = strtok_r(audit, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    struct json_object *j = json_tokener_parse(l), *v = NULL;
    assert_non_null(j);
    assert_true(json_object_object_get_ex(j, "command", &v));
    json_object_put(j);
    lines++;
  }
  assert_true(lines >= 3);
  free(audit);
}

static void tree_sums(char **out, const char *dir) {
  *out = qvm_test_sh_output("cd '%s' && find . -type f -exec sha256sum {} + | sort && "
                            "find . -printf '%%m %%y %%p\\n' | sort",
                            dir);
  assert_non_null(*out);
}

static void test_cp_files_and_trees(void **state) {
  (void)state;
  char tree[800], back[800];
  snprintf(tree, sizeof tree, "%s/tree", work);
  snprintf(back, sizeof back, "%s/back", work);
  assert_int_equal(
      qvm_test_sh("set -e; mkdir -p '%s/sub/deeper' '%s/empty'; "
                  "head -c 1048583 /dev/urandom > '%s/big.bin'; : > '%s/zero'; "
                  "printf x > '%s/sub/one'; head -c 70000 /dev/urandom > '%s/sub/deeper/r'; "
                  "printf 'odd name' > '%s/sub/with space'; chmod 0750 '%s/sub'; "
                  "chmod 0600 '%s/big.bin'; chmod 0755 '%s/sub/one'; mkdir -p '%s'",
                  tree, tree, tree, tree, tree, tree, tree, tree, tree, tree, back),
      0);
  /* a missing local file is not found (exit 3), as a missing remote one is */
  char missing[840];
  snprintf(missing, sizeof missing, "%s/no-such-file", work);
  result r = QVM(NULL, "cp", missing, VM ":/tmp/");
  assert_int_equal(r.status, 3);
  assert_non_null(strstr(r.err, "no-such-file' not found"));
  result_clear(&r);
  r = QVM(NULL, "cp", VM ":/tmp/no-such-file", back);
  assert_int_equal(r.status, 3);
  result_clear(&r);
  r = QVM(NULL, "cp", "-r", tree, VM ":/tmp/");
  expect_ok(&r);
  result_clear(&r);
  /* the guest has the same bytes */
  r = QVM(NULL, "exec", VM, "--", "sha256sum", "/tmp/tree/big.bin");
  expect_ok(&r);
  char *local = qvm_test_sh_output("sha256sum < '%s/big.bin' | cut -c1-64", tree);
  assert_int_equal(strncmp(r.out, local, 64), 0);
  free(local);
  result_clear(&r);
  r = QVM(NULL, "cp", "-r", VM ":/tmp/tree", back);
  expect_ok(&r);
  result_clear(&r);
  char *a = NULL, *b = NULL, back_tree[900];
  snprintf(back_tree, sizeof back_tree, "%s/tree", back);
  tree_sums(&a, tree);
  tree_sums(&b, back_tree);
  assert_string_equal(a, b);
  free(a), free(b);
  /* a single file both ways, mode kept */
  r = QVM(NULL, "cp", tree, VM ":/tmp/x");
  assert_int_equal(r.status, 2); /* a directory without -r */
  result_clear(&r);
  char file[900], file_back[900];
  snprintf(file, sizeof file, "%s/sub/one", tree);
  snprintf(file_back, sizeof file_back, "%s/one.back", work);
  r = QVM(NULL, "cp", file, VM ":one.copy");
  expect_ok(&r);
  result_clear(&r);
  r = QVM(NULL, "cp", VM ":one.copy", file_back);
  expect_ok(&r);
  result_clear(&r);
  char *mode = qvm_test_sh_output("stat -c %%a '%s' && cat '%s'", file_back, file_back);
  assert_string_equal(mode, "755\nx");
  free(mode);
  r = QVM(NULL, "cp", file, file_back);
  assert_int_equal(r.status, 2); /* neither side in a vm */
  result_clear(&r);
}

static void test_provision(void **state) {
  (void)state;
  result r = QVM(NULL, "provision", VM);
  expect_ok(&r);
  assert_non_null(strstr(r.out, "step-one\n"));
  assert_non_null(strstr(r.err, "step-one-err\n"));
  assert_non_null(strstr(r.out, "script ran as 0\n"));
  result_clear(&r);
  r = QVM(NULL, "exec", VM, "--", "cat", "/tmp/payload.txt");
  expect_ok(&r);
  assert_string_equal(r.out, "payload 1\n");
  result_clear(&r);
  char *log = file_text(vm_dir, "provision.log");
  assert_non_null(log);
  assert_non_null(strstr(log, "step 1/5 shell 'echo step-one;"));
  assert_non_null(strstr(log, "step 2/5 script setup.sh (script)"));
  assert_non_null(strstr(log, "step 3/5 file payload.txt -> /tmp/payload.txt (file)"));
  assert_non_null(strstr(log, "provisioning done: 5 steps"));
  free(log);
  /* step 4 fails now: the run stops there, names it, and step 5 never runs */
  r = QVM(NULL, "exec", VM, "--", "sh", "-c", "touch /tmp/fail-now; rm -f /tmp/after-fail");
  expect_ok(&r);
  result_clear(&r);
  r = QVM(NULL, "provision", VM);
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.err, "provisioning step 4 'shell 'test ! -e /tmp/fail-now'' exited "
                                "with code 1"));
  assert_non_null(strstr(r.err, "fix step 4"));
  result_clear(&r);
  r = QVM(NULL, "exec", VM, "--", "test", "-e", "/tmp/after-fail");
  assert_int_equal(r.status, 1);
  result_clear(&r);
  r = QVM(NULL, "exec", VM, "--", "rm", "/tmp/fail-now");
  expect_ok(&r);
  result_clear(&r);
}

static void test_openssh_print_and_config(void **state) {
  (void)state;
  result r = QVM(NULL, "ssh", VM, "--print");
  expect_ok(&r);
  assert_non_null(strstr(r.out, "StrictHostKeyChecking=yes"));
  r.out[strcspn(r.out, "\n")] = '\0';
  char *name = qvm_test_sh_output("%s -o BatchMode=yes -o ConnectTimeout=30 "
                                  "uname -n </dev/null",
                                  r.out);
  assert_non_null(name);
  assert_string_equal(name, VM);
  free(name);
  result_clear(&r);
  r = QVM(NULL, "ssh-config", VM);
  expect_ok(&r);
  char cfg[800];
  snprintf(cfg, sizeof cfg, "%s/ssh_config", work);
  assert_int_equal(qvm_write_file_atomic(cfg, r.out, r.out_len, 0644, NULL), 0);
  result_clear(&r);
  char *out = qvm_test_sh_output(
      "ssh -F '%s' -o BatchMode=yes -o ConnectTimeout=30 " VM " 'echo via-config' </dev/null", cfg);
  assert_non_null(out);
  assert_string_equal(out, "via-config");
  free(out);
  /* without names: every vm, running or not */
  r = QVM(NULL, "ssh-config");
  expect_ok(&r);
  assert_non_null(strstr(r.out, "Host " VM "\n"));
  result_clear(&r);
}

/* qvm ssh on a terminal: a PTY on the guest side, raw mode here, the exit
 * status back. `script` gives qvm a terminal; its pty has no size, so qvm
 * asks for 80x24. */
static void test_ssh_pty(void **state) {
  (void)state;
  char *out = qvm_test_sh_output("printf 'stty size; tty; exit 3\\n' | "
                                 "script -qec \"'%s/qvm' ssh " VM "\" /dev/null; echo rc=$?",
                                 qvm_test_binary_dir());
  assert_non_null(out);
  if (!strstr(out, "24 80") || !strstr(out, "/dev/pts/") || !strstr(out, "rc=3"))
    fail_msg("unexpected pty session output: %s", out);
  free(out);
}

static void test_host_key_swapped(void **state) {
  (void)state;
  char kh[800];
  snprintf(kh, sizeof kh, "%s/known_hosts", vm_dir);
  char *real = file_text(vm_dir, "known_hosts");
  /* Pin another key, as if the guest's key had been swapped. */
  qvm_ssh_key *other = NULL;
  assert_int_equal(qvm_ssh_key_generate(&other, "other", NULL), 0);
  assert_int_equal(qvm_ssh_known_hosts_pin(kh, VM, qvm_ssh_key_public_line(other), NULL), 0);
  result r = QVM(NULL, "exec", VM, "--", "true");
  assert_int_equal(r.status, 255);
  assert_non_null(strstr(r.err, "host key of vm '" VM "' does not match"));
  assert_non_null(strstr(r.err, qvm_ssh_key_fingerprint(other)));
  assert_non_null(strstr(r.err, "presented SHA256:"));
  assert_non_null(strstr(r.err, "--repin"));
  result_clear(&r);
  r = QVM(NULL, "cp", VM ":/etc/hostname", "/dev/null");
  assert_int_equal(r.status, 8); /* cp uses qvm's exit codes: AUTH */
  result_clear(&r);
  /* OpenSSH, using the same file, refuses too */
  r = QVM(NULL, "ssh", VM, "--print");
  r.out[strcspn(r.out, "\n")] = '\0';
  assert_int_not_equal(qvm_test_sh("%s -o BatchMode=yes true </dev/null 2>/dev/null", r.out), 0);
  result_clear(&r);
  /* --repin is the way past it, and pins the real key again */
  r = QVM(NULL, "ssh", VM, "--repin", "--", "true");
  expect_ok(&r);
  result_clear(&r);
  char *now = file_text(vm_dir, "known_hosts");
  char *a = key_blob(real), *b = key_blob(now);
  assert_string_equal(a, b);
  r = QVM(NULL, "exec", VM, "--", "true");
  expect_ok(&r);
  result_clear(&r);
  free(a), free(b), free(now), free(real);
  qvm_ssh_key_free(other);
}

static void test_create_variants(void **state) {
  (void)state;
  /* a bad cloud-config is refused at create and leaves nothing behind */
  write_work_file("bad.yaml", "#cloud-config\nruncmd: [oops\n", 0644);
  char bad[800];
  snprintf(bad, sizeof bad, "%s/bad.yaml", work);
  result r = QVM(NULL, "create", "acc-bad", "--kernel", kernel, "--cloud-config", bad);
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.err, bad));
  result_clear(&r);
  char *left = qvm_test_sh_output("ls -A '%s/vms' | grep -c acc-bad || true", state_dir);
  assert_string_equal(left, "0");
  free(left);
  r = QVM(NULL, "create", "acc-bad", "--kernel", kernel, "--provision", "script:/nonexistent.sh");
  assert_int_equal(r.status, 3);
  assert_non_null(strstr(r.err, "provision step 1 'script:/nonexistent.sh'"));
  result_clear(&r);
  /* --no-cloud-init: no seed, no key */
  r = QVM(NULL, "create", "acc-plain", "--kernel", kernel, "--no-cloud-init");
  expect_ok(&r);
  result_clear(&r);
  char dir[800];
  snprintf(dir, sizeof dir, "%s/vms/acc-plain", state_dir);
  char *files = qvm_test_sh_output("ls '%s' | tr '\\n' ' '", dir);
  assert_null(strstr(files, "seed.iso"));
  assert_null(strstr(files, "id_ed25519"));
  free(files);
  r = QVM(NULL, "exec", "acc-plain", "--", "true");
  assert_int_equal(r.status, 255);
  assert_non_null(strstr(r.err, "not running"));
  result_clear(&r);
  r = QVM(NULL, "rm", "acc-plain");
  expect_ok(&r);
  result_clear(&r);
}

/* Your own key instead of the vm's: --identity with a second key authorized
 * by create --ssh-key; a key the guest does not know is refused (so the
 * option really is what logs in); an encrypted key is named as such, with
 * --agent as the way out; --agent with a real ssh-agent, and an empty agent
 * refused. */
static void test_own_key_and_agent(void **state) {
  (void)state;
  char own[800], enc[800], stranger[800], sock[800];
  snprintf(own, sizeof own, "%s/own", work);
  snprintf(enc, sizeof enc, "%s/enc", work);
  snprintf(stranger, sizeof stranger, "%s/stranger", work);
  snprintf(sock, sizeof sock, "%s/agent.sock", root);
  result r = QVM(NULL, "exec", VM, "--identity", own, "--", "echo", "own-key");
  expect_ok(&r);
  assert_string_equal(r.out, "own-key\n");
  result_clear(&r);
  r = QVM(NULL, "ssh", VM, "--identity", own, "--", "echo", "own-ssh");
  expect_ok(&r);
  assert_string_equal(r.out, "own-ssh\n");
  result_clear(&r);
  r = QVM(NULL, "exec", VM, "--identity", stranger, "--", "true");
  assert_int_equal(r.status, 255);
  assert_non_null(strstr(r.err, "refused authentication"));
  assert_non_null(strstr(r.err, "did not accept the key"));
  result_clear(&r);
  r = QVM(NULL, "exec", VM, "--identity", enc, "--", "true");
  assert_int_equal(r.status, 255);
  assert_non_null(strstr(r.err, "is encrypted"));
  assert_non_null(strstr(r.err, "--agent"));
  result_clear(&r);
  r = QVM(NULL, "exec", VM, "--identity", own, "--agent", "--", "true");
  assert_int_equal(r.status, 2);
  result_clear(&r);

  /* a real agent holding the second key */
  char *pid = qvm_test_sh_output(
      "ssh-agent -a '%s' -s | sed -n 's/^SSH_AGENT_PID=\\([0-9]*\\).*/\\1/p'", sock);
  assert_non_null(pid);
  assert_true(pid[0] != 0 && strlen(pid) < sizeof agent_pid);
  snprintf(agent_pid, sizeof agent_pid, "%s", pid);
  free(pid);
  setenv("SSH_AUTH_SOCK", sock, 1);
  assert_int_equal(qvm_test_sh("ssh-add -q '%s' 2>/dev/null", own), 0);
  r = QVM(NULL, "exec", VM, "--agent", "--", "echo", "agent-key");
  expect_ok(&r);
  assert_string_equal(r.out, "agent-key\n");
  result_clear(&r);
  char up[800];
  snprintf(up, sizeof up, "%s:/tmp/agent-copy.txt", VM);
  snprintf(own, sizeof own, "%s/payload.txt", work);
  r = QVM(NULL, "cp", "--agent", own, up);
  expect_ok(&r);
  result_clear(&r);
  /* an empty agent: the vm's own key is not used behind --agent's back */
  assert_int_equal(qvm_test_sh("ssh-add -D >/dev/null 2>&1"), 0);
  r = QVM(NULL, "exec", VM, "--agent", "--", "true");
  assert_int_equal(r.status, 255);
  assert_non_null(strstr(r.err, "ssh-add -l"));
  result_clear(&r);
  agent_stop();
  r = QVM(NULL, "exec", VM, "--", "cat", "/tmp/agent-copy.txt");
  expect_ok(&r);
  assert_string_equal(r.out, "payload 1\n");
  result_clear(&r);
}

int main(int argc, char **argv) {
  qvm_test_require_program("qemu-system-x86_64");
  qvm_test_require_program("ssh");
  qvm_test_require_program("ssh-keyscan");
  qvm_test_require_program("script");
  qvm_test_require_program("ssh-agent");
  qvm_test_require_program("ssh-add");
  qvm_test_mini_guest(&kernel, &initrd);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_host_key_pinned_before_boot),
      cmocka_unit_test_setup(test_exec_quoting, running),
      cmocka_unit_test_setup(test_exec_status_streams_stdin, running),
      cmocka_unit_test_setup(test_exec_env_timeout, running),
      cmocka_unit_test_setup(test_cp_files_and_trees, running),
      cmocka_unit_test_setup(test_provision, running),
      cmocka_unit_test_setup(test_openssh_print_and_config, running),
      cmocka_unit_test_setup(test_ssh_pty, running),
      cmocka_unit_test_setup(test_host_key_swapped, running),
      cmocka_unit_test_setup(test_own_key_and_agent, running),
      cmocka_unit_test(test_create_variants),
  };
  if (argc > 1) cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
