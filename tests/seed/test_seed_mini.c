/* SPDX-License-Identifier: MIT */
/*
 * The mini guest's kernel (isofs) mounts a seed written by qvm's ISO writer
 * and reads its keys and hostname from it.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <qvm/seed.h>

#include "testlib.h"

extern char **environ;

typedef struct fixture {
  char *dir;
  pid_t qemu;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->dir = qvm_test_mkdtemp("seed-mini");
  f->qemu = -1;
  *state = f;
  return 0;
}

/* Runs on success and failure alike: QEMU never outlives the test. */
static int teardown(void **state) {
  fixture *f = *state;
  if (f->qemu > 0) {
    kill(f->qemu, SIGKILL);
    waitpid(f->qemu, NULL, 0);
  }
  qvm_test_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static char *read_key(const char *dir, const char *name, const char *ext) {
  return qvm_test_sh_output("cat '%s/%s%s'", dir, name, ext);
}

static char *wait_for(const char *log, const char *marker, pid_t qemu, int timeout_s) {
  time_t end = time(NULL) + timeout_s;
  while (time(NULL) < end) {
    char *text = qvm_test_sh_output("cat '%s' 2>/dev/null", log);
    if (text && strstr(text, marker)) return text;
    free(text);
    if (waitpid(qemu, NULL, WNOHANG) == qemu) break;
    usleep(200 * 1000);
  }
  char *tail = qvm_test_sh_output("tail -n 30 '%s'", log);
  fail_msg("marker '%s' not seen on serial; tail:\n%s", marker, tail ? tail : "");
  return NULL;
}

static void test_mini_guest_reads_seed(void **state) {
  fixture *f = *state;
  qvm_test_require_program("qemu-system-x86_64");
  qvm_test_require_program("ssh-keygen");
  const char *kernel = NULL, *initrd = NULL;
  qvm_test_mini_guest(&kernel, &initrd);
  assert_int_equal(qvm_test_sh("cd '%s' && for k in u1 u2 u3 host; do ssh-keygen -q -t ed25519 "
                               "-N '' -C \"$k: #comment\" -f $k; done",
                               f->dir),
                   0);
  char *u1 = read_key(f->dir, "u1", ".pub"), *u2 = read_key(f->dir, "u2", ".pub");
  char *u3 = read_key(f->dir, "u3", ".pub"), *hpriv = read_key(f->dir, "host", "");
  char *hpub = read_key(f->dir, "host", ".pub");
  assert_true(u1 && u2 && u3 && hpriv && hpub);
  size_t plen = strlen(hpriv);
  char *hpriv_nl = malloc(plen + 2);
  memcpy(hpriv_nl, hpriv, plen);
  strcpy(hpriv_nl + plen, "\n");
  const char *root_keys[] = {u1, u2};
  const char *default_keys[] = {u3};
  qvm_seed_user users[] = {
      {.name = "root", .ssh_authorized_keys = root_keys, .n_ssh_authorized_keys = 2}};
  qvm_seed_host_key hk[] = {{.type = "ed25519", .private_key = hpriv_nl, .public_key = hpub}};
  qvm_seed_spec spec = QVM_SEED_SPEC_INIT;
  spec.instance_id = "qvm-seed-mini-1";
  spec.hostname = "seed-mini-7";
  spec.users = users;
  spec.n_users = 1;
  spec.ssh_authorized_keys = default_keys;
  spec.n_ssh_authorized_keys = 1;
  spec.host_keys = hk;
  spec.n_host_keys = 1;
  char iso[1024], log[1024], drive[1100], serial[1100];
  snprintf(iso, sizeof iso, "%s/seed.iso", f->dir);
  snprintf(log, sizeof log, "%s/serial.log", f->dir);
  qvm_error *err = NULL;
  if (qvm_seed_build(iso, &spec, &err) < 0) fail_msg("%s", qvm_error_message(err));

  snprintf(drive, sizeof drive, "file=%s,if=virtio,format=raw,readonly=on", iso);
  snprintf(serial, sizeof serial, "file:%s", log);
  char *argv[] = {"qemu-system-x86_64",
                  "-accel",
                  "tcg",
                  "-cpu",
                  "max",
                  "-m",
                  "256",
                  "-nodefaults",
                  "-display",
                  "none",
                  "-no-reboot",
                  "-serial",
                  serial,
                  "-kernel",
                  (char *)kernel,
                  "-initrd",
                  (char *)initrd,
                  "-append",
                  "console=ttyS0 qvm.dhcp=0",
                  "-drive",
                  drive,
                  NULL};
  assert_int_equal(posix_spawnp(&f->qemu, argv[0], NULL, NULL, argv, environ), 0);
  char *text = wait_for(log, "qvm-mini: ready", f->qemu, 180);
  if (!strstr(text, "qvm-mini: seed found")) fail_msg("no 'seed found' marker:\n%s", text);
  if (!strstr(text, "qvm-mini: seed authorized_keys=3\n") &&
      !strstr(text, "qvm-mini: seed authorized_keys=3\r"))
    fail_msg("expected 3 authorized keys:\n%s", text);
  if (!strstr(text, "qvm-mini: seed hostname=seed-mini-7")) fail_msg("hostname:\n%s", text);
  if (!strstr(text, "qvm-mini: seed hostkey=ed25519")) fail_msg("host key:\n%s", text);
  free(text);
  free(u1), free(u2), free(u3), free(hpriv), free(hpub), free(hpriv_nl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_mini_guest_reads_seed, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
