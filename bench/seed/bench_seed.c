/* SPDX-License-Identifier: MIT */
/*
 * Builds the same seed (typical user-data, meta-data, network-config) four
 * ways in one run and prints median times and ratios:
 *   qvm in-process (render + ISO write), `qvm seed build` (the binary),
 *   cloud-localds, genisoimage -J -R.
 * Usage: bench_seed [QVM_BINARY]   (default: ./qvm in the build dir)
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <qvm/seed.h>

#define RUNS 200

static const char *const keys[] = {
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmYy5y8YJ2bM7ZpYJH0r0Y1b4YkQ3CqGm5xXwqv1n2c qvm@host"};
static const char *const pkgs[] = {"curl", "git", "build-essential", "python3"};
static const char *const run[] = {"systemctl enable --now ssh", "echo done > /var/tmp/x"};

static void typical_spec(qvm_seed_spec *s, qvm_seed_user *u, qvm_seed_network *n) {
  *u = (qvm_seed_user){.name = "qvm",
                       .groups = "sudo",
                       .sudo = "ALL=(ALL) NOPASSWD:ALL",
                       .shell = "/bin/bash",
                       .lock_passwd = true,
                       .ssh_authorized_keys = keys,
                       .n_ssh_authorized_keys = 1};
  *n = (qvm_seed_network){.mac = "52:54:00:12:34:56", .dhcp4 = true};
  *s = (qvm_seed_spec)QVM_SEED_SPEC_INIT;
  s->instance_id = "qvm-bench-1";
  s->hostname = "bench";
  s->users = u;
  s->n_users = 1;
  s->packages = pkgs;
  s->n_packages = 4;
  s->runcmd = run;
  s->n_runcmd = 2;
  s->network = n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void write_file(const char *dir, const char *name, const char *data, size_t len) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  if (!f || fwrite(data, 1, len, f) != len) exit(1);
  fclose(f);
}

static double in_process(const char *dir) {
  qvm_seed_spec s;
  qvm_seed_user u;
  qvm_seed_network n;
  typical_spec(&s, &u, &n);
  char iso[1024];
  snprintf(iso, sizeof iso, "%s/inproc.iso", dir);
  double t[RUNS];
  for (int i = 0; i < RUNS; i++) {
    qvm_error *err = NULL;
    double t0 = now();
    if (qvm_seed_build(iso, &s, &err) < 0) {
      fprintf(stderr, "bench: %s\n", qvm_error_message(err));
      exit(1);
    }
    t[i] = now() - t0;
  }
  qsort(t, RUNS, sizeof t[0], cmp_double);
  /* the same three files for the other tools */
  char *out = NULL;
  size_t len = 0;
  qvm_seed_render_user_data(&out, &len, &s, NULL), write_file(dir, "user-data", out, len);
  free(out);
  qvm_seed_render_meta_data(&out, &len, &s, NULL), write_file(dir, "meta-data", out, len);
  free(out);
  qvm_seed_render_network_config(&out, &len, &s, NULL), write_file(dir, "network-config", out, len);
  free(out);
  return t[RUNS / 2];
}

/* The same work into a memory buffer: no file, no fsync. */
static double in_memory(void) {
  qvm_seed_spec s;
  qvm_seed_user u;
  qvm_seed_network n;
  typical_spec(&s, &u, &n);
  double t[RUNS];
  for (int i = 0; i < RUNS; i++) {
    double t0 = now();
    char *ud = NULL, *md = NULL, *nc = NULL;
    size_t ul = 0, ml = 0, nl = 0, il = 0;
    uint8_t *img = NULL;
    qvm_seed_iso *iso = NULL;
    if (qvm_seed_render_user_data(&ud, &ul, &s, NULL) < 0 ||
        qvm_seed_render_meta_data(&md, &ml, &s, NULL) < 0 ||
        qvm_seed_render_network_config(&nc, &nl, &s, NULL) < 0 ||
        qvm_seed_iso_new(&iso, NULL, NULL) < 0 ||
        qvm_seed_iso_add_data(iso, "user-data", ud, ul, NULL) < 0 ||
        qvm_seed_iso_add_data(iso, "meta-data", md, ml, NULL) < 0 ||
        qvm_seed_iso_add_data(iso, "network-config", nc, nl, NULL) < 0 ||
        qvm_seed_iso_write_buffer(&img, &il, iso, NULL) < 0)
      exit(1);
    t[i] = now() - t0;
    free(ud), free(md), free(nc), free(img);
    qvm_seed_iso_free(iso);
  }
  qsort(t, RUNS, sizeof t[0], cmp_double);
  return t[RUNS / 2];
}

/* Runs hyperfine on one command and returns its median in seconds. */
static double hyperfine(const char *dir, const char *name, const char *cmd) {
  char c[4096];
  snprintf(c, sizeof c,
           "cd '%s' && hyperfine -N --style none --warmup 3 --runs 40 --export-json '%s.json' "
           "'%s' >/dev/null 2>&1 && grep -m1 '\"median\"' '%s.json' | sed 's/.*: *//; s/,//'",
           dir, name, cmd, name);
  FILE *p = popen(c, "r");
  double v = -1;
  if (!p || fscanf(p, "%lf", &v) != 1) v = -1;
  if (p) pclose(p);
  return v;
}

int main(int argc, char **argv) {
  const char *qvm = argc > 1 ? argv[1] : "./qvm";
  char qvm_abs[4096];
  if (!realpath(qvm, qvm_abs)) {
    fprintf(stderr, "bench: qvm binary '%s' not found (pass its path)\n", qvm);
    return 1;
  }
  char dir[] = "/tmp/qvm-bench-seed-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  double inproc = in_process(dir), mem = in_memory();
  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           "%s seed build -o qvm.iso --user-data user-data --meta-data meta-data "
           "--network-config network-config",
           qvm_abs);
  double cli = hyperfine(dir, "qvm", cmd);
  double localds =
      hyperfine(dir, "localds", "cloud-localds -N network-config localds.iso user-data meta-data");
  double geniso = hyperfine(dir, "geniso",
                            "genisoimage -quiet -o geniso.iso -V cidata -J -R user-data "
                            "meta-data network-config");
  printf("seed build (user-data %s, meta-data, network-config), median:\n", "~600 B");
  printf("  %-34s %9.3f ms  (median of %d)\n", "qvm in-process (render+iso+fsync)", inproc * 1e3,
         RUNS);
  printf("  %-34s %9.3f ms  (median of %d; no file, no fsync)\n", "qvm in-process to memory",
         mem * 1e3, RUNS);
  const char *names[] = {"qvm seed build (binary)", "cloud-localds", "genisoimage -J -R"};
  double v[] = {cli, localds, geniso};
  for (int i = 0; i < 3; i++) {
    if (v[i] < 0)
      printf("  %-34s   (not measured: tool missing or failed)\n", names[i]);
    else
      printf("  %-34s %9.3f ms  (%.1fx in-process, %.2fx qvm binary)\n", names[i], v[i] * 1e3,
             v[i] / inproc, cli > 0 ? v[i] / cli : 0);
  }
  char rm[256];
  snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
  return system(rm) == 0 ? 0 : 1;
}
