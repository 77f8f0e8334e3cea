/* SPDX-License-Identifier: MIT */
/*
 * Golden tests for the QEMU command line: spec -> argv, one option per line,
 * compared with tests/vm/golden/<case>.args. QVM_TEST_REGENERATE=1 rewrites
 * the files; review the diff.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testlib.h"
#include "util/fs.h"
#include "vm/argv.h"

static vm_spec *base_spec(const char *name) {
  vm_spec *s = calloc(1, sizeof *s);
  assert_non_null(s);
  s->name = strdup(name);
  strcpy(s->uuid, "6f1b5a3e-2c4d-4e8f-9a0b-1c2d3e4f5a6b");
  vm_mac_from_uuid(s->mac, s->uuid);
  s->cpus = 1;
  s->memory_mib = 1024;
  s->machine = strdup("q35");
  s->cpu = strdup("auto"); /* what qvm_vm_create records without --cpu */
  s->accel = VM_ACCEL_AUTO;
  s->net = VM_NET_USER;
  s->ssh_forward = true;
  return s;
}

static vm_argv_input base_input(const vm_spec *s) {
  return (vm_argv_input){.spec = s,
                         .qemu = "qemu-system-x86_64",
                         .vm_dir = "/var/lib/qvm/vms/golden",
                         .accel = VM_ACCEL_TCG,
                         .qmp_fd = 3,
                         .console_fd = 4,
                         .serial_log = "serial.log",
                         .ssh_port = 40022,
                         .tap_fd = -1,
                         .sandbox = true};
}

static void add_disk(vm_spec *s) {
  assert_int_equal(vm_spec_add_drive(s, "disk.qcow2", "qcow2", false, VM_MEDIA_DISK, NULL), 0);
}

static void add_forward(vm_spec *s, const char *text) {
  vm_forward f;
  assert_int_equal(vm_forward_parse(&f, text, NULL), 0);
  assert_int_equal(vm_spec_add_forward(s, &f, NULL), 0);
  vm_forward_clear(&f);
}

static void check_golden(const char *name, const vm_argv_input *in) {
  vm_argv *a = NULL;
  qvm_error *err = NULL;
  int r = vm_argv_build(&a, in, &err);
  if (r < 0) fail_msg("%s: %s", name, qvm_error_message(err));
  char *got = vm_argv_format(a);
  assert_non_null(got);
  char *path = NULL;
  assert_true(asprintf(&path, "%s/tests/vm/golden/%s.args", qvm_test_source_dir(), name) > 0);
  const char *regen = getenv("QVM_TEST_REGENERATE");
  if (regen && !strcmp(regen, "1")) {
    assert_int_equal(qvm_write_file_atomic(path, got, strlen(got), 0644, NULL), 0);
  } else {
    char *want = NULL;
    if (qvm_read_file(&want, NULL, path, 1 << 20, &err) < 0)
      fail_msg("%s (run with QVM_TEST_REGENERATE=1)", qvm_error_message(err));
    if (strcmp(want, got)) fail_msg("%s differs from %s:\n%s", name, path, got);
    free(want);
  }
  free(path);
  free(got);
  vm_argv_free(a);
}

static void test_user_net_ssh(void **state) {
  (void)state;
  vm_spec *s = base_spec("web");
  add_disk(s);
  vm_argv_input in = base_input(s);
  check_golden("user-net-ssh", &in);
  vm_spec_free(s);
}

static void test_user_net_publish(void **state) {
  (void)state;
  vm_spec *s = base_spec("web");
  add_disk(s);
  add_forward(s, "8080:80");
  add_forward(s, "0.0.0.0:5353:53/udp");
  add_forward(s, "10.0.0.1:8443:443/tcp");
  vm_argv_input in = base_input(s);
  check_golden("user-net-publish", &in);
  vm_spec_free(s);
}

/* A fork: resumed from a migration stream on fd 6, after the same devices. */
static void test_incoming(void **state) {
  (void)state;
  vm_spec *s = base_spec("web-1");
  add_disk(s);
  vm_argv_input in = base_input(s);
  in.incoming_fd = 6;
  check_golden("incoming-fork", &in);
  vm_spec_free(s);
}

static void test_kvm(void **state) {
  (void)state;
  vm_spec *s = base_spec("fast");
  s->accel = VM_ACCEL_KVM;
  add_disk(s);
  vm_argv_input in = base_input(s);
  in.accel = VM_ACCEL_KVM;
  check_golden("kvm", &in);
  vm_spec_free(s);
}

static void test_tcg_forced(void **state) {
  (void)state;
  vm_spec *s = base_spec("slow");
  s->accel = VM_ACCEL_TCG;
  add_disk(s);
  vm_argv_input in = base_input(s);
  check_golden("tcg", &in);
  vm_spec_free(s);
}

/* A record from before issue 20 has no "cpu": TCG keeps -cpu max (its RAM
 * snapshots and forks were saved from it); KVM keeps host. */
static void test_cpu_legacy(void **state) {
  (void)state;
  vm_spec *s = base_spec("old");
  free(s->cpu);
  s->cpu = NULL;
  add_disk(s);
  vm_argv_input in = base_input(s);
  check_golden("cpu-legacy-tcg", &in);
  in.accel = VM_ACCEL_KVM;
  check_golden("cpu-legacy-kvm", &in);
  vm_spec_free(s);
}

/* --cpu MODEL is passed as given, under either accelerator. */
static void test_cpu_model(void **state) {
  (void)state;
  vm_spec *s = base_spec("v2");
  free(s->cpu);
  s->cpu = strdup("Nehalem,+rdrand,-vmx");
  add_disk(s);
  vm_argv_input in = base_input(s);
  check_golden("cpu-model", &in);
  vm_spec_free(s);
}

static void test_direct_kernel(void **state) {
  (void)state;
  vm_spec *s = base_spec("mini");
  s->memory_mib = 256;
  s->kernel = strdup("/cache/mini/vmlinuz");
  s->initrd = strdup("/cache/mini/initrd.img");
  s->append = strdup("console=ttyS0 quiet qvm.dhcp=0,x");
  s->net = VM_NET_NONE;
  s->ssh_forward = false;
  vm_argv_input in = base_input(s);
  check_golden("direct-kernel", &in);
  vm_spec_free(s);
}

static void test_uefi(void **state) {
  (void)state;
  vm_spec *s = base_spec("efi");
  s->firmware = VM_FIRMWARE_UEFI;
  s->firmware_code = strdup("/usr/share/OVMF/OVMF_CODE_4M.fd");
  s->firmware_vars = strdup("OVMF_VARS.fd");
  add_disk(s);
  vm_argv_input in = base_input(s);
  check_golden("uefi", &in);
  vm_spec_free(s);
}

static void test_extra_drives_cdrom(void **state) {
  (void)state;
  vm_spec *s = base_spec("media");
  add_disk(s);
  assert_int_equal(vm_spec_add_drive(s, "/data/scratch.raw", "raw", false, VM_MEDIA_DISK, NULL), 0);
  assert_int_equal(vm_spec_add_drive(s, "/data/ro.qcow2", "qcow2", true, VM_MEDIA_DISK, NULL), 0);
  assert_int_equal(vm_spec_add_drive(s, "/iso/install.iso", "raw", true, VM_MEDIA_CDROM, NULL), 0);
  assert_int_equal(vm_spec_add_drive(s, "/iso/tools.iso", "raw", true, VM_MEDIA_CDROM, NULL), 0);
  vm_argv_input in = base_input(s);
  check_golden("extra-drives-cdrom", &in);
  vm_spec_free(s);
}

static void test_comma_paths(void **state) {
  (void)state;
  vm_spec *s = base_spec("commas");
  assert_int_equal(
      vm_spec_add_drive(s, "/images/a,b/disk,1.qcow2", "qcow2", false, VM_MEDIA_DISK, NULL), 0);
  assert_int_equal(
      vm_spec_add_drive(s, "/iso/x,file=/etc/passwd.iso", "raw", true, VM_MEDIA_CDROM, NULL), 0);
  s->seed_iso = strdup("/seeds/c,d/seed.iso");
  s->kernel = strdup("/boot/vm,linuz");
  vm_argv_input in = base_input(s);
  in.vm_dir = "/state/dir,with,commas/vms/commas";
  in.serial_log = "/logs/serial,log";
  check_golden("comma-paths", &in);
  vm_spec_free(s);
}

/* Host folder mounts: mapped-xattr, readonly=on for :ro, our own tags,
 * commas in a host path doubled (a path "x,security_model=passthrough"
 * stays one path). */
static void test_host_mounts(void **state) {
  (void)state;
  vm_spec *s = base_spec("mounts");
  add_disk(s);
  s->mounts = calloc(2, sizeof *s->mounts);
  assert_non_null(s->mounts);
  s->mounts[0] = (vm_mount){.host = strdup("/srv/src"), .guest = strdup("/src")};
  s->mounts[1] = (vm_mount){.host = strdup("/data/a,security_model=passthrough,readonly=off"),
                            .guest = strdup("/mnt/data"),
                            .readonly = true};
  s->n_mounts = 2;
  vm_argv_input in = base_input(s);
  check_golden("host-mounts", &in);
  vm_spec_free(s);
}

/* virtiofs: the guest's RAM in a shared memfd of -m's size, and per mount
 * a vhost-user socket in the run dir (escaped) and a vhost-user-fs device
 * with our tag; a 9p mount beside it keeps its fsdev. Without a socket
 * directory the build is refused. */
static void test_host_mounts_virtiofs(void **state) {
  (void)state;
  vm_spec *s = base_spec("vfs");
  add_disk(s);
  s->mounts = calloc(3, sizeof *s->mounts);
  assert_non_null(s->mounts);
  s->mounts[0] = (vm_mount){.host = strdup("/srv/src"), .guest = strdup("/src"), .virtiofs = true};
  s->mounts[1] = (vm_mount){
      .host = strdup("/data/ro"), .guest = strdup("/mnt/ro"), .readonly = true, .virtiofs = true};
  s->mounts[2] = (vm_mount){.host = strdup("/srv/old"), .guest = strdup("/old")};
  s->n_mounts = 3;
  vm_argv_input in = base_input(s);
  in.mount_sock_dir = "/run/qvm/vms/vfs,x";
  check_golden("host-mounts-virtiofs", &in);
  in.mount_sock_dir = NULL;
  vm_argv *a = NULL;
  qvm_error *err = NULL;
  assert_int_equal(vm_argv_build(&a, &in, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "virtiofs"));
  qvm_error_free(err);
  vm_spec_free(s);
}

static void test_name_63(void **state) {
  (void)state;
  const char *name = "a23456789-123456789-123456789-123456789-123456789-123456789-123";
  assert_int_equal(strlen(name), 63);
  assert_true(qvm_vm_name_valid(name));
  vm_spec *s = base_spec(name);
  add_disk(s);
  vm_argv_input in = base_input(s);
  check_golden("name-63", &in);
  vm_spec_free(s);
}

static void test_no_network(void **state) {
  (void)state;
  vm_spec *s = base_spec("isolated");
  s->net = VM_NET_NONE;
  s->ssh_forward = false;
  add_disk(s);
  vm_argv_input in = base_input(s);
  check_golden("no-network", &in);
  vm_spec_free(s);
}

static void test_seed_drive(void **state) {
  (void)state;
  vm_spec *s = base_spec("cloud");
  add_disk(s);
  s->seed_iso = strdup("seed.iso");
  vm_argv_input in = base_input(s);
  check_golden("seed-drive", &in);
  vm_spec_free(s);
}

/* qvm's own seed: the readiness port, on a virtio-serial bus of its own. */
static void test_qvm_seed(void **state) {
  (void)state;
  vm_spec *s = base_spec("cloud");
  add_disk(s);
  s->seed_iso = strdup("seed.iso");
  s->cloud_init = true;
  vm_argv_input in = base_input(s);
  check_golden("qvm-seed", &in);
  vm_spec_free(s);
}

/* qvm's seed and the guest agent: both ports on one bus. */
static void test_qvm_seed_guest_agent(void **state) {
  (void)state;
  vm_spec *s = base_spec("cloud");
  s->net = VM_NET_BRIDGE;
  s->ssh_forward = false;
  s->bridge = strdup("qvm0");
  add_disk(s);
  s->seed_iso = strdup("seed.iso");
  s->cloud_init = true;
  vm_argv_input in = base_input(s);
  in.tap_fd = 5;
  in.qga_path = "/run/qvm/cloud/qga.sock";
  check_golden("qvm-seed-guest-agent", &in);
  vm_spec_free(s);
}

static void test_memory_cpus(void **state) {
  (void)state;
  vm_spec *s = base_spec("big");
  s->cpus = 8;
  s->memory_mib = 16384;
  add_disk(s);
  vm_argv_input in = base_input(s);
  check_golden("memory-cpus", &in);
  vm_spec_free(s);
}

static void test_machine_pc_small(void **state) {
  (void)state;
  vm_spec *s = base_spec("tiny");
  free(s->machine);
  s->machine = strdup("pc");
  s->memory_mib = 64;
  add_disk(s);
  vm_argv_input in = base_input(s);
  check_golden("machine-pc-64m", &in);
  vm_spec_free(s);
}

static void test_socket_paths(void **state) {
  (void)state;
  vm_spec *s = base_spec("bypath");
  add_disk(s);
  vm_argv_input in = base_input(s);
  in.qmp_fd = in.console_fd = -1;
  in.qmp_path = "/run/qvm/bypath/qmp.sock";
  in.console_path = "/run/qvm/bypath/console.sock";
  in.sandbox = false;
  check_golden("socket-paths-no-sandbox", &in);
  vm_spec_free(s);
}

static void test_bridge_tap_fd(void **state) {
  (void)state;
  vm_spec *s = base_spec("bridged");
  s->net = VM_NET_BRIDGE;
  s->ssh_forward = false;
  s->bridge = strdup("qvm0");
  add_disk(s);
  vm_argv_input in = base_input(s);
  in.tap_fd = 7;
  check_golden("bridge-tap-fd", &in);
  in.tap_fd = -1;
  vm_argv *a = NULL;
  qvm_error *err = NULL;
  assert_int_equal(vm_argv_build(&a, &in, &err), QVM_EINVAL);
  assert_null(a);
  qvm_error_free(err);
  vm_spec_free(s);
}

/* What the shim passes for a bridged VM: the tap as fd 5 and the guest
 * agent's socket in the runtime dir (a comma in it is escaped). */
static void test_guest_agent(void **state) {
  (void)state;
  vm_spec *s = base_spec("agent");
  s->net = VM_NET_BRIDGE;
  s->ssh_forward = false;
  s->bridge = strdup("qvm0");
  snprintf(s->mac, sizeof s->mac, "0a:12:34:56:78:9a");
  add_disk(s);
  vm_argv_input in = base_input(s);
  in.tap_fd = 5;
  in.qga_path = "/run/qvm,x/agent/qga.sock";
  check_golden("guest-agent", &in);
  vm_spec_free(s);
}

/* qvm as root: QEMU drops to qvm-qemu's ids with -runas; the seccomp
 * filter then allows set*id (QEMU 7.2 installs it before the drop). */
static void test_runas(void **state) {
  (void)state;
  vm_spec *s = base_spec("dropped");
  s->net = VM_NET_BRIDGE;
  s->ssh_forward = false;
  s->bridge = strdup("qvm0");
  snprintf(s->mac, sizeof s->mac, "0a:12:34:56:78:9a");
  add_disk(s);
  vm_argv_input in = base_input(s);
  in.tap_fd = 5;
  in.runas = "995:995";
  check_golden("runas-bridge", &in);
  const char *bad[] = {"qvm-qemu", "995", "995:", ":995", "995:995:1", "-1:2", "12345678901:1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    vm_argv *a = NULL;
    qvm_error *err = NULL;
    in.runas = bad[i];
    assert_int_equal(vm_argv_build(&a, &in, &err), QVM_EINVAL);
    assert_null(a);
    qvm_error_free(err);
  }
  vm_spec_free(s);
}

/* --net user,restrict: slirp's restrict=on, the forwards kept. */
static void test_user_net_restrict(void **state) {
  (void)state;
  vm_spec *s = base_spec("restricted");
  s->net_restrict = true;
  add_disk(s);
  add_forward(s, "8080:80");
  vm_argv_input in = base_input(s);
  check_golden("user-net-restrict", &in);
  vm_spec_free(s);
}

/* --image: disk.qcow2 over the image, both as -blockdev nodes with names;
 * the image's own backing is null, so QEMU opens no file its header names. */
static void test_image_overlay(void **state) {
  (void)state;
  vm_spec *s = base_spec("layered");
  s->image = strdup("/var/lib/qvm/images/debian-12.qcow2");
  s->image_format = strdup("qcow2");
  add_disk(s);
  assert_int_equal(vm_spec_add_drive(s, "/data/extra.qcow2", "qcow2", false, VM_MEDIA_DISK, NULL),
                   0);
  vm_argv_input in = base_input(s);
  check_golden("image-overlay", &in);
  vm_spec_free(s);
}

/* allow_backing: QEMU follows the headers of the image and of a user's
 * qcow2 drive (no "backing" key); a raw image has no backing at all. */
static void test_image_allow_backing(void **state) {
  (void)state;
  vm_spec *s = base_spec("chained");
  s->image = strdup("/images/base,1.raw");
  s->image_format = strdup("raw");
  s->allow_backing = true;
  add_disk(s);
  assert_int_equal(vm_spec_add_drive(s, "/data/child.qcow2", "qcow2", true, VM_MEDIA_DISK, NULL),
                   0);
  vm_argv_input in = base_input(s);
  check_golden("image-allow-backing", &in);
  vm_spec_free(s);
}

/* Paths go into JSON: quotes, backslashes and control characters are
 * escaped; a path that is not UTF-8 is refused with its name. */
static void test_blockdev_json_paths(void **state) {
  (void)state;
  vm_spec *s = base_spec("quoted");
  s->net = VM_NET_NONE;
  s->ssh_forward = false;
  assert_int_equal(vm_spec_add_drive(s, "/d/a\"b\\c\nd\x01.raw", "raw", false, VM_MEDIA_DISK, NULL),
                   0);
  s->seed_iso = strdup("/seeds/\"},{\"driver\":\"nbd\".iso");
  vm_argv_input in = base_input(s);
  check_golden("blockdev-json-paths", &in);
  const char *bad[] = {"/d/\xff.raw", "/d/\xc0\xaf.raw", "/d/\xed\xa0\x80.raw", "/d/\xe2\x82.raw"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    free(s->drives[0].path);
    s->drives[0].path = strdup(bad[i]);
    vm_argv *a = NULL;
    qvm_error *err = NULL;
    assert_int_equal(vm_argv_build(&a, &in, &err), QVM_EINVAL);
    assert_null(a);
    assert_non_null(strstr(qvm_error_message(err), "is not UTF-8"));
    qvm_error_free(err);
  }
  free(s->drives[0].path);
  s->drives[0].path = strdup("/d/\xc3\xa9t\xc3\xa9-\xf0\x9f\x92\xbe.raw"); /* "été-💾" */
  vm_argv *a = NULL;
  assert_int_equal(vm_argv_build(&a, &in, NULL), 0);
  vm_argv_free(a);
  vm_spec_free(s);
}

/* An image without a format in the spec is refused, never probed. */
static void test_image_without_format(void **state) {
  (void)state;
  vm_spec *s = base_spec("noformat");
  s->image = strdup("/images/base.img");
  add_disk(s);
  vm_argv_input in = base_input(s);
  vm_argv *a = NULL;
  qvm_error *err = NULL;
  assert_int_equal(vm_argv_build(&a, &in, &err), QVM_EINVAL);
  assert_null(a);
  assert_non_null(strstr(qvm_error_message(err), "has no format"));
  qvm_error_free(err);
  vm_spec_free(s);
}

static void test_escape(void **state) {
  (void)state;
  char *e = vm_qemu_escape("a,b,,c");
  assert_string_equal(e, "a,,b,,,,c");
  free(e);
  e = vm_qemu_escape("");
  assert_string_equal(e, "");
  free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_user_net_ssh),
      cmocka_unit_test(test_user_net_publish),
      cmocka_unit_test(test_user_net_restrict),
      cmocka_unit_test(test_runas),
      cmocka_unit_test(test_kvm),
      cmocka_unit_test(test_tcg_forced),
      cmocka_unit_test(test_direct_kernel),
      cmocka_unit_test(test_uefi),
      cmocka_unit_test(test_extra_drives_cdrom),
      cmocka_unit_test(test_comma_paths),
      cmocka_unit_test(test_host_mounts),
      cmocka_unit_test(test_host_mounts_virtiofs),
      cmocka_unit_test(test_name_63),
      cmocka_unit_test(test_no_network),
      cmocka_unit_test(test_seed_drive),
      cmocka_unit_test(test_qvm_seed),
      cmocka_unit_test(test_qvm_seed_guest_agent),
      cmocka_unit_test(test_memory_cpus),
      cmocka_unit_test(test_machine_pc_small),
      cmocka_unit_test(test_socket_paths),
      cmocka_unit_test(test_bridge_tap_fd),
      cmocka_unit_test(test_guest_agent),
      cmocka_unit_test(test_image_overlay),
      cmocka_unit_test(test_image_allow_backing),
      cmocka_unit_test(test_blockdev_json_paths),
      cmocka_unit_test(test_image_without_format),
      cmocka_unit_test(test_escape),
      cmocka_unit_test(test_incoming),
      cmocka_unit_test(test_cpu_legacy),
      cmocka_unit_test(test_cpu_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
