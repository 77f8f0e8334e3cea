/* SPDX-License-Identifier: MIT */
/* qvm up's wait for cloud-init (vm/cloud_init.h): result.json from a
 * hostile guest, and the guest-side script, run in a private mount
 * namespace with a tmpfs on /run, fake cloud-init and sleep programs that
 * log their calls, under bash (no fork while it waits) and dash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testlib.h"
#include "vm/cloud_init.h"

static int errors_of(const char *text) { return vm_cloud_init_result_errors(text, strlen(text)); }

static void test_result_json(void **state) {
  (void)state;
  /* cloud-init 22.4's own, pretty-printed as it writes it */
  assert_int_equal(errors_of("{\n \"v1\": {\n  \"datasource\": \"DataSourceNoCloud "
                             "[seed=/dev/vdb][dsmode=net]\",\n  \"errors\": []\n }\n}\n"),
                   0);
  assert_int_equal(errors_of("{\"v1\": {\"datasource\": null, \"errors\": [\"('write_files', "
                             "ValueError('bad'))\"]}}"),
                   1);
  /* newer cloud-init adds keys: ignored */
  assert_int_equal(errors_of("{\"v1\": {\"errors\": [], \"recoverable_errors\": {}}}"), 0);
  /* anything else is not cloud-init's document */
  const char *bad[] = {"",
                       "null",
                       "[]",
                       "\"v1\"",
                       "{}",
                       "{\"v1\": []}",
                       "{\"v1\": {}}",
                       "{\"v1\": {\"errors\": {}}}",
                       "{\"v1\": {\"errors\": \"none\"}}",
                       "{\"v1\": {\"errors\": null}}",
                       "{\"v1\": {\"errors\": []}",
                       "{\"v1\": {\"errors\": []}} trailing",
                       "{\"v1\": {\"errors\": []}}{\"v1\": {\"errors\": [1]}}",
                       "\x1b]0;title\x07{\"v1\": {\"errors\": []}}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    if (errors_of(bad[i]) != -1) fail_msg("taken as cloud-init's result: '%s'", bad[i]);
  }
  assert_int_equal(vm_cloud_init_result_errors(NULL, 5), -1);
  /* len bounds the read; a NUL ends the text */
  const char ok[] = "{\"v1\": {\"errors\": []}}";
  assert_int_equal(vm_cloud_init_result_errors(ok, sizeof ok - 2), -1);
  assert_int_equal(vm_cloud_init_result_errors("{\"v1\": {\"errors\": []}}\0[1]", 28), 0);
  /* deep nesting is refused (json-c's depth limit), not recursed into */
  size_t depth = 100000;
  char *deep = malloc(2 * depth + 1);
  assert_non_null(deep);
  memset(deep, '[', depth);
  memset(deep + depth, ']', depth);
  deep[2 * depth] = 0;
  assert_int_equal(errors_of(deep), -1);
  free(deep);
  /* a long list of errors, and a long string: counted, not copied about */
  size_t n = 200000;
  char *many = malloc(n * 4 + 64);
  assert_non_null(many);
  char *p = many + sprintf(many, "{\"v1\": {\"errors\": [");
  for (size_t i = 0; i < n; i++) p += sprintf(p, i ? ",\"\"" : "\"\"");
  strcpy(p, "]}}");
  assert_int_equal(errors_of(many), 1);
  free(many);
}

/* The script with bin/ (fake cloud-init and sleep that log their calls)
 * first on PATH, in a mount namespace where /run is a fresh tmpfs set up by
 * `setup`, result.json written `after` seconds later (or never: -1), stdin
 * a FIFO held open and never written. Returns the script's stdout; *code its
 * exit status. */
static char *run_script(const char *dir, const char *shell, const char *setup, double after,
                        int *code) {
  FILE *f = NULL;
  char path[4096];
  snprintf(path, sizeof path, "%s/script", dir);
  assert_non_null(f = fopen(path, "w"));
  fputs(VM_CLOUD_INIT_WAIT, f);
  fclose(f);
  snprintf(path, sizeof path, "%s/setup.sh", dir);
  assert_non_null(f = fopen(path, "w"));
  fprintf(f, "set -e\nmount -t tmpfs qvmtest /run\nmkdir -p /run/cloud-init\n%s\n", setup);
  if (after >= 0)
    fprintf(f,
            "(/bin/sleep %.1f; printf '{\"v1\": {\"errors\": []}}\\n' > /run/cloud-init/.r && "
            "mv /run/cloud-init/.r /run/cloud-init/result.json) &\n",
            after);
  fprintf(f,
          "set +e\nexec 3<>in\nPATH=\"$PWD/bin:$PATH\" %s -c \"$(cat script)\" <&3\n"
          "echo \"exit $?\"\n",
          shell);
  fclose(f);
  char *out = qvm_test_sh_output("cd '%s' && : > calls && rm -f in && mkfifo in && "
                                 "timeout 60 unshare -m --propagation private sh setup.sh",
                                 dir);
  assert_non_null(out);
  char *last = strrchr(out, '\n');
  last = last ? last + 1 : out;
  assert_int_equal(sscanf(last, "exit %d", code), 1);
  *last = 0;
  return out;
}

static char *calls(const char *dir) { return qvm_test_sh_output("cat '%s/calls'", dir); }

static void test_script(void **state) {
  (void)state;
  qvm_test_require_root();
  qvm_test_require_program("unshare");
  qvm_test_require_program("dash");
  qvm_test_require_program("bash");
  char *dir = qvm_test_mkdtemp("cloud-init-wait");
  assert_int_equal(qvm_test_sh("set -e; cd '%s'; mkdir bin nobin; "
                               "printf '#!/bin/sh\\necho \"sleep $*\" >> %s/calls\\n"
                               "exec /bin/sleep \"$@\"\\n' > bin/sleep; "
                               "printf '#!/bin/sh\\necho \"cloud-init $*\" >> %s/calls\\n"
                               "echo \"status: done\"\\n' > bin/cloud-init; "
                               "chmod 0755 bin/sleep bin/cloud-init",
                               dir, dir, dir),
                   0);
  const char *systemd = "mkdir -p /run/systemd/system && : > /run/cloud-init/enabled";
  const char *expect = VM_CLOUD_INIT_RESULT_HEADER "\n{\"v1\": {\"errors\": []}}\n";
  int code = -1;

  /* bash: waits with read -t, no program started until result.json came */
  char *out = run_script(dir, "bash", systemd, 1.5, &code), *c = calls(dir);
  assert_int_equal(code, 0);
  assert_string_equal(out, expect);
  assert_string_equal(c, "");
  free(out), free(c);

  /* dash (no read -t): a sleep a second */
  out = run_script(dir, "dash", systemd, 1.5, &code), c = calls(dir);
  assert_int_equal(code, 0);
  assert_string_equal(out, expect);
  assert_non_null(strstr(c, "sleep 1"));
  assert_null(strstr(c, "cloud-init"));
  free(out), free(c);

  /* already there (up again after a boot): at once, under both */
  const char *done = "mkdir -p /run/systemd/system && : > /run/cloud-init/enabled && "
                     "echo '{\"v1\": {\"errors\": [\"x\"]}}' > /run/cloud-init/result.json";
  out = run_script(dir, "bash", done, -1, &code), c = calls(dir);
  assert_int_equal(code, 0);
  assert_string_equal(out, VM_CLOUD_INIT_RESULT_HEADER "\n{\"v1\": {\"errors\": [\"x\"]}}\n");
  assert_string_equal(c, "");
  free(out), free(c);

  /* no /run/cloud-init/enabled, or no systemd: cloud-init status decides */
  out = run_script(dir, "bash", "mkdir -p /run/systemd/system", -1, &code), c = calls(dir);
  assert_int_equal(code, 0);
  assert_string_equal(out, "status: done\n");
  assert_string_equal(c, "cloud-init status --wait --long");
  free(out), free(c);
  out = run_script(dir, "dash", ": > /run/cloud-init/enabled", -1, &code), c = calls(dir);
  assert_string_equal(out, "status: done\n");
  assert_string_equal(c, "cloud-init status --wait --long");
  free(out), free(c);

  /* no cloud-init at all: 127, which up reports as skipped */
  out = qvm_test_sh_output("cd '%s' && PATH=\"$PWD/nobin\" /bin/dash -c \"$(/bin/cat script)\" "
                           "</dev/null; echo \"exit $?\"",
                           dir);
  assert_string_equal(out, "exit 127");
  free(out);
  qvm_test_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_result_json),
      cmocka_unit_test(test_script),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
