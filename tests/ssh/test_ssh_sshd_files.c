/* SPDX-License-Identifier: MIT */
/* SFTP copies, provisioners and pty shells against the test's sshd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sshd_env.h"
#include "testlib.h"

/* sha256, mode and mtime of every entry, sorted, relative to root. */
static char *tree_listing(const char *root) {
  return qvm_test_sh_output("cd '%s' && find . -mindepth 1 | LC_ALL=C sort | while read -r f; do "
                            "if [ -f \"$f\" ]; then h=$(sha256sum < \"$f\" | cut -c1-64); "
                            "else h=dir; fi; echo \"$f $h $(stat -c '%%a %%Y' \"$f\")\"; done",
                            root);
}

void test_sftp_roundtrip(void **state) {
  (void)state;
  char src[4096], remote[4096], back[4096];
  snprintf(src, sizeof(src), "%s/tree", env.dir);
  snprintf(remote, sizeof(remote), "%s/remote", env.server.dir);
  snprintf(back, sizeof(back), "%s/back", env.dir);
  assert_int_equal(
      qvm_test_sh("set -e; mkdir -p '%1$s/sub/deeper' '%1$s/empty'; cd '%1$s';"
                  ": > zero; head -c 1 /dev/urandom > one; head -c 1048583 /dev/urandom > mib;"
                  "head -c 20971520 /dev/urandom > sub/big; echo hi > sub/deeper/'a b';"
                  "printf x > 'sub/it'\\''s'; chmod 0600 one; chmod 0755 mib; chmod 0640 sub/big;"
                  "chmod 0750 sub; touch -d '2001-02-03 04:05:06' zero one mib sub/big "
                  "sub/deeper/'a b' sub/deeper sub empty",
                  src),
      0);
  qvm_ssh *ssh = env_connect();
  qvm_ssh_copy_options co = QVM_SSH_COPY_OPTIONS_INIT;
  uint64_t bytes = 0;
  qvm_error *err = NULL;
  co.out_bytes = &bytes;
  if (qvm_ssh_upload(ssh, src, remote, &co, &err) < 0)
    fail_msg("upload: %s", qvm_error_message(err));
  assert_int_equal(bytes, 0 + 1 + 1048583 + 20971520 + 3 + 1);
  if (qvm_ssh_download(ssh, remote, back, &co, &err) < 0)
    fail_msg("download: %s", qvm_error_message(err));
  char *a = tree_listing(src), *b = tree_listing(remote), *c = tree_listing(back);
  assert_non_null(a);
  assert_string_equal(a, b);
  assert_string_equal(a, c);
  assert_non_null(strstr(a, "./one "));
  assert_non_null(strstr(a, " 600 981173106")); /* mode and the 2001 mtime (UTC) */
  free(a);
  free(b);
  free(c);
  /* Into an existing directory: cp semantics. */
  char file[4200];
  snprintf(file, sizeof(file), "%s/mib", src);
  assert_int_equal(qvm_ssh_upload(ssh, file, remote, NULL, NULL), 0);
  assert_int_equal(qvm_test_sh("cmp '%s/mib' '%s/mib'", src, remote), 0);
  /* Errors: a missing remote file is ENOTFOUND, a directory without recursion EINVAL. */
  assert_int_equal(qvm_ssh_download(ssh, "/nonexistent/x", back, NULL, &err), QVM_ENOTFOUND);
  qvm_error_free(err);
  err = NULL;
  co.recursive = false;
  assert_int_equal(qvm_ssh_upload(ssh, src, "/tmp", &co, &err), QVM_EINVAL);
  qvm_error_free(err);
  qvm_ssh_free(ssh);
  qvm_test_rmtree(back);
  qvm_test_rmtree(src);
}

static int collect(void *ctx, int stream, const void *data, size_t len) {
  (void)stream;
  (void)data;
  size_t *total = ctx;
  *total += len;
  return 0;
}

void test_provision_abort(void **state) {
  (void)state;
  char log[4096], marker[4096], script[4096], inline_marker[4200];
  snprintf(log, sizeof(log), "%s/provision.log", env.dir);
  snprintf(marker, sizeof(marker), "%s/should-not-exist", env.dir);
  snprintf(script, sizeof(script), "%s/step2.sh", env.dir);
  snprintf(inline_marker, sizeof(inline_marker), "touch '%s'", marker);
  assert_int_equal(qvm_test_sh("printf '#!/bin/sh\\necho from-script \"$0\"\\n' > '%s'", script),
                   0);
  unlink(log);
  unlink("/tmp/qvm-provision-2.sh");
  qvm_ssh_step steps[] = {
      {.kind = QVM_SSH_STEP_INLINE, .name = "hello", .inline_text = "echo one; echo warn >&2"},
      {.kind = QVM_SSH_STEP_SCRIPT, .source = script},
      {.kind = QVM_SSH_STEP_INLINE, .name = "breaks", .inline_text = "echo failing; exit 7"},
      {.kind = QVM_SSH_STEP_INLINE, .name = "never", .inline_text = inline_marker},
  };
  size_t total = 0, failed = 99;
  qvm_ssh_provision_options po = QVM_SSH_PROVISION_OPTIONS_INIT;
  po.steps = steps;
  po.n_steps = 4;
  po.log_path = log;
  po.on_output = collect;
  po.ctx = &total;
  po.step_timeout_ms = 30000;
  qvm_ssh *ssh = env_connect();
  qvm_error *err = NULL;
  assert_int_equal(qvm_ssh_provision(&failed, ssh, &po, &err), QVM_EGUEST);
  assert_int_equal(failed, 3);
  assert_non_null(strstr(qvm_error_message(err), "step 3 'breaks'"));
  assert_non_null(strstr(qvm_error_message(err), "code 7"));
  assert_string_equal(qvm_error_class(err), "StepFailed");
  qvm_error_free(err);
  assert_true(total > 0);
  assert_int_not_equal(access(marker, F_OK), 0);
  char *text = qvm_test_sh_output("cat '%s'", log);
  assert_non_null(text);
  assert_non_null(strstr(text, "==> "));
  assert_non_null(strstr(text, "step 1/4 hello (inline)"));
  assert_non_null(strstr(text, "one\nwarn\n"));
  assert_non_null(strstr(text, "step 2/4 step 2 (script)"));
  assert_non_null(strstr(text, "from-script /tmp/qvm-provision-2.sh"));
  assert_non_null(strstr(text, "step 3 breaks exited 7"));
  assert_null(strstr(text, "step 4/4"));
  free(text);
  qvm_ssh_free(ssh);
  /* The uploaded script is removed after its step. */
  assert_int_not_equal(access("/tmp/qvm-provision-2.sh", F_OK), 0);
}

/* A script step removes whatever sits at its predictable name first (here a
 * planted symlink, whose target must stay untouched) and removes its upload
 * even when it fails. */
void test_provision_script_cleanup(void **state) {
  (void)state;
  char script[4096], target[4096];
  const char *remote = "/tmp/qvm-provision-1.sh";
  snprintf(script, sizeof(script), "%s/fails.sh", env.dir);
  snprintf(target, sizeof(target), "%s/planted-target", env.dir);
  assert_int_equal(qvm_test_sh("printf '#!/bin/sh\\necho ran; exit 5\\n' > '%s' && "
                               "echo keep > '%s' && rm -f %s && ln -s '%s' %s",
                               script, target, remote, target, remote),
                   0);
  qvm_ssh_step steps[] = {{.kind = QVM_SSH_STEP_SCRIPT, .name = "fails", .source = script}};
  qvm_ssh_provision_options po = QVM_SSH_PROVISION_OPTIONS_INIT;
  po.steps = steps;
  po.n_steps = 1;
  po.step_timeout_ms = 30000;
  qvm_ssh *ssh = env_connect();
  qvm_error *err = NULL;
  size_t failed = 0;
  int r = qvm_ssh_provision(&failed, ssh, &po, &err);
  bool gone = access(remote, F_OK) != 0 && qvm_test_sh("test -L %s", remote) != 0;
  unlink(remote); /* clean up whatever happens */
  assert_int_equal(r, QVM_EGUEST);
  assert_int_equal(failed, 1);
  assert_non_null(strstr(qvm_error_message(err), "exited with code 5"));
  qvm_error_free(err);
  assert_true(gone);
  assert_int_equal(qvm_test_sh("grep -qx keep '%s'", target), 0);
  qvm_ssh_free(ssh);
}

void test_provision_file_and_script(void **state) {
  (void)state;
  char src[4096], dest[4096];
  snprintf(src, sizeof(src), "%s/payload.txt", env.dir);
  snprintf(dest, sizeof(dest), "%s/installed.txt", env.server.dir);
  assert_int_equal(qvm_test_sh("echo payload > '%s'", src), 0);
  qvm_ssh_step steps[] = {
      {.kind = QVM_SSH_STEP_FILE, .source = src, .destination = dest},
      {.kind = QVM_SSH_STEP_INLINE, .inline_text = "grep -q payload \"$0\" || exit 9"},
  };
  /* The inline step sees $0 = sh; check the file through the test instead. */
  steps[1].inline_text = "true";
  qvm_ssh_provision_options po = QVM_SSH_PROVISION_OPTIONS_INIT;
  po.steps = steps;
  po.n_steps = 2;
  po.step_timeout_ms = 30000;
  qvm_ssh *ssh = env_connect();
  qvm_error *err = NULL;
  if (qvm_ssh_provision(NULL, ssh, &po, &err) < 0) fail_msg("%s", qvm_error_message(err));
  assert_int_equal(qvm_test_sh("cmp '%s' '%s'", src, dest), 0);
  qvm_ssh_free(ssh);
}

void test_shell_pty(void **state) {
  (void)state;
  qvm_ssh *ssh = env_connect();
  qvm_ssh_exec_options o = QVM_SSH_EXEC_OPTIONS_INIT;
  captured c;
  int p[2];
  assert_int_equal(pipe(p), 0);
  const char *input = "stty size; echo hi-$((40+2)); exit 5\n";
  assert_int_equal(write(p[1], input, strlen(input)), (ssize_t)strlen(input));
  close(p[1]);
  o.pty = true;
  o.term = "xterm-256color";
  o.cols = 101;
  o.rows = 33;
  o.stdin_fd = p[0];
  o.timeout_ms = 30000;
  assert_int_equal(run_capture(&c, ssh, &o), 0);
  close(p[0]);
  assert_non_null(strstr(c.out, "33 101"));
  assert_non_null(strstr(c.out, "hi-42"));
  assert_int_equal(c.res.exit_code, 5);
  assert_int_equal(c.err_len, 0); /* a pty merges stderr */
  captured_free(&c);
  qvm_ssh_free(ssh);
}
