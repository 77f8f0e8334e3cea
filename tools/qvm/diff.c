/* SPDX-License-Identifier: MIT */
/* qvm diff VM [--from SNAP | --from-image] [--to SNAP] [--ignore GLOB]... [--json]
 * qvm diff VM --ansible [-o DIR] [--hosts PATTERN] ...
 * qvm diff --images FROM TO [--from-format F] [--to-format F] ... */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qvm/diff.h>
#include <qvm/text.h>

#include "commands.h"
#include "create_flags.h"

#define VERB "diff"
#define MAX_IGNORE 256

static const char diff_help[] =
    "usage: qvm diff VM [--from SNAP | --from-image] [--to SNAP] [--ignore GLOB]...\n"
    "                [--no-default-ignore] [--json | --ansible [-o DIR]] [-v]\n"
    "       qvm diff --images FROM TO [--from-format F] [--to-format F] [...]\n"
    "\n"
    "Lists what changed in the VM's root file system (ext2/3/4) between a base\n"
    "and now: files, directories, symlinks and devices added, modified (content\n"
    "by sha256, mode, owner, symlink target, type) and deleted; then packages\n"
    "(dpkg's status), systemd units enabled or masked, users and groups. The\n"
    "disk is read on the host, never through the guest, so a guest that lies to\n"
    "its own tools (a hidden file, a tampered package database) does not fool\n"
    "it. Not compared yet: extended attributes (capabilities, ACLs), inode\n"
    "flags, partitions other than the root file system, boot sectors. A running\n"
    "VM is read at a temporary internal snapshot, without replaying the ext4\n"
    "journal: the output then says the list may be incomplete. Noise every boot\n"
    "makes (logs, caches, /tmp, /run, machine-id, ssh host keys, cloud-init's\n"
    "state, apt's and dpkg's state) is left out;\n"
    "see docs/cli.md for the list.\n"
    "\n"
    "  --from SNAP        the base is the internal snapshot SNAP of the VM's disk\n"
    "  --from-image       the base is the image the VM was created from (default)\n"
    "  --to SNAP          the new state is snapshot SNAP instead of the disk now\n"
    "  --ignore GLOB      also leave out absolute paths matching GLOB (fnmatch;\n"
    "                     '*' stops at '/'), with what is below them; repeatable\n"
    "  --no-default-ignore  leave out only what --ignore names\n"
    "  --images           FROM and TO are image files (raw, or qcow2: TO may be an\n"
    "                     overlay on FROM), not a VM\n"
    "  --from-format F, --to-format F   raw (default) or qcow2, with --images\n"
    "  -v, --verbose      the table also shows each side's type, mode, owner, size,\n"
    "                     sha256 prefix and symlink target\n"
    "  --json             print {\"changes\": [{\"kind\", \"path\", \"changed\", \"from\",\n"
    "                     \"to\"}], ...}; a name that is not printable UTF-8 is shown\n"
    "                     with \\xNN escapes and given exactly in \"path_b64\"; a\n"
    "                     change apt makes (a file a changed package ships, a\n"
    "                     conffile only as packaged) has \"package\": true; also\n"
    "                     \"packages\", \"units\", \"users\", \"groups\"\n"
    "  --ansible          write an Ansible playbook that makes the same changes on a\n"
    "                     machine that starts from the base: DIR/playbook.yml and\n"
    "                     DIR/files/<sha256> (the new contents); DIR is created\n"
    "                     0700 and must not exist or be empty. Guest names are\n"
    "                     tagged !unsafe (never templated); a name that is not\n"
    "                     UTF-8, a device node, fifo or socket is refused\n"
    "  -o, --output DIR   with --ansible (default: ./qvm-diff-playbook)\n"
    "  --hosts PATTERN    with --ansible: the play's hosts (default: all)\n"
    "  --max-file-size SIZE   with --ansible: the largest new file kept (256M)\n"
    "  --max-total-size SIZE  with --ansible: all new contents kept (4G)\n";

static void print_side(const char *label, const qvm_diff_file *f) {
  if (!f->present) return;
  printf("    %s %c %04o %u:%u %llu", label, f->type, f->mode, f->uid, f->gid,
         (unsigned long long)f->size);
  if (f->sha256[0]) printf(" sha256:%.16s", f->sha256);
  if (f->target) {
    char *t = qvm_text_for_terminal(f->target, f->target_len, 0);
    printf(" -> %s", t ? t : "?");
    free(t);
  }
  putchar('\n');
}

/* Package, unit, user and group names were checked by the library (plain
 * ASCII); a user's free text is neutralized. */
static void print_system(const qvm_diff *d) {
  for (size_t i = 0; i < qvm_diff_package_count(d); i++) {
    qvm_diff_package p;
    qvm_diff_package_get(&p, d, i);
    printf("package %s %s:%s %s%s%s\n", qvm_diff_package_kind_name(p.kind), p.name, p.arch,
           p.from_version ? p.from_version : "", p.from_version && p.to_version ? " -> " : "",
           p.to_version ? p.to_version : "");
  }
  for (size_t i = 0; i < qvm_diff_unit_count(d); i++) {
    qvm_diff_unit u;
    qvm_diff_unit_get(&u, d, i);
    printf("unit %s %s\n", qvm_diff_unit_change_name(u.change), u.name);
  }
  for (size_t i = 0; i < qvm_diff_user_count(d); i++) {
    qvm_diff_user u;
    qvm_diff_user_get(&u, d, i);
    char *home = qvm_text_for_terminal(u.home, strlen(u.home), 0);
    char *shell = qvm_text_for_terminal(u.shell, strlen(u.shell), 0);
    printf("user %s %s uid=%u gid=%u home=%s shell=%s groups=", qvm_diff_kind_name(u.kind), u.name,
           u.uid, u.gid, home ? home : "?", shell ? shell : "?");
    for (size_t k = 0; k < u.n_groups; k++) printf("%s%s", k ? "," : "", u.groups[k]);
    putchar('\n');
    free(home);
    free(shell);
  }
  for (size_t i = 0; i < qvm_diff_group_count(d); i++) {
    qvm_diff_group g;
    qvm_diff_group_get(&g, d, i);
    printf("group %s %s gid=%u\n", qvm_diff_kind_name(g.kind), g.name, g.gid);
  }
}

static void print_table(const qvm_diff *d, bool verbose) {
  size_t n = qvm_diff_count(d), counts[3] = {0};
  for (size_t i = 0; i < n; i++) {
    qvm_diff_change c;
    qvm_diff_get(&c, d, i);
    counts[c.kind]++;
    char *p = qvm_text_for_terminal(c.path, c.path_len, 0);
    printf("%c %s", "AMD"[c.kind], p ? p : "?");
    free(p);
    if (c.kind == QVM_DIFF_MODIFIED) {
      const char *sep = " (";
      for (unsigned b = 1; b <= QVM_DIFF_DEVICE; b <<= 1)
        if (c.what & b) printf("%s%s", sep, qvm_diff_what_name(b)), sep = ", ";
      putchar(')');
    }
    putchar('\n');
    if (verbose) {
      print_side("from", &c.from);
      print_side("to  ", &c.to);
    }
  }
  print_system(d);
  uint64_t ef = 0, et = 0, bytes = 0;
  qvm_diff_stats(d, &ef, &et, &bytes);
  fprintf(stderr,
          "%zu added, %zu modified, %zu deleted (%llu and %llu entries walked, %llu MiB hashed)\n",
          counts[0], counts[1], counts[2], (unsigned long long)ef, (unsigned long long)et,
          (unsigned long long)(bytes >> 20));
}

static int diff_run(int argc, char **argv) {
  static const struct option longopts[] = {{"from", required_argument, 0, 'f'},
                                           {"from-image", no_argument, 0, 'I'},
                                           {"to", required_argument, 0, 't'},
                                           {"ignore", required_argument, 0, 'i'},
                                           {"no-default-ignore", no_argument, 0, 'N'},
                                           {"images", no_argument, 0, 'm'},
                                           {"from-format", required_argument, 0, 'F'},
                                           {"to-format", required_argument, 0, 'T'},
                                           {"verbose", no_argument, 0, 'v'},
                                           {"json", no_argument, 0, 'j'},
                                           {"ansible", no_argument, 0, 'A'},
                                           {"output", required_argument, 0, 'o'},
                                           {"hosts", required_argument, 0, 'H'},
                                           {"max-file-size", required_argument, 0, 'S'},
                                           {"max-total-size", required_argument, 0, 'Z'},
                                           {"help", no_argument, 0, 'h'},
                                           {0, 0, 0, 0}};
  qvm_diff_options opts = QVM_DIFF_OPTIONS_INIT;
  const char *ignore[MAX_IGNORE];
  const char *from_format = NULL, *to_format = NULL;
  bool json = false, images = false, from_image = false, verbose = false, ansible = false;
  const char *output = NULL;
  qvm_diff_ansible_options aopts = QVM_DIFF_ANSIBLE_OPTIONS_INIT;
  int c, rs;
  optind = 0;
  opterr = 0;
  while ((c = qvm_cli_getopt(argc, argv, ":hvo:", longopts)) != -1) {
    switch (c) {
    case 'f': opts.from_snapshot = optarg; break;
    case 'I': from_image = true; break;
    case 't': opts.to_snapshot = optarg; break;
    case 'i':
      if (opts.n_ignore == MAX_IGNORE)
        return qvm_cli_usage_error(VERB, "more than %d --ignore globs", MAX_IGNORE);
      if (optarg[0] != '/')
        return qvm_cli_usage_error(VERB, "ignore glob '%s' must start with '/'", optarg);
      ignore[opts.n_ignore++] = optarg;
      break;
    case 'N': opts.no_default_ignore = true; break;
    case 'm': images = true; break;
    case 'F': from_format = optarg; break;
    case 'T': to_format = optarg; break;
    case 'v': verbose = true; break;
    case 'j': json = true; break;
    case 'A': ansible = true; break;
    case 'o': output = optarg; break;
    case 'H': aopts.hosts = optarg; break;
    case 'S':
      if ((rs = qvm_cli_parse_size(VERB, "--max-file-size", "file", optarg, 1,
                                   &opts.content_max_file)))
        return rs;
      break;
    case 'Z':
      if ((rs = qvm_cli_parse_size(VERB, "--max-total-size", "total", optarg, 1,
                                   &opts.content_max_total)))
        return rs;
      break;
    case 'h': return fputs(diff_help, stdout), QVM_EXIT_OK;
    default: return qvm_cli_bad_option(VERB, c, argv);
    }
  }
  opts.ignore = ignore;
  if (from_image && opts.from_snapshot)
    return qvm_cli_usage_error(VERB, "give --from SNAP or --from-image, not both");
  int want = images ? 2 : 1;
  if (argc - optind < want)
    return qvm_cli_usage_error(VERB, images ? "--images needs FROM and TO" : "missing the vm");
  if (argc - optind > want)
    return qvm_cli_usage_error(VERB, "unexpected argument '%s'", argv[optind + want]);
  if (json && ansible) return qvm_cli_usage_error(VERB, "give --json or --ansible, not both");
  if (!ansible && (output || aopts.hosts || opts.content_max_file || opts.content_max_total))
    return qvm_cli_usage_error(VERB, "-o, --hosts and --max-*-size go with --ansible");
  opts.keep_content = ansible;
  if (!images && (from_format || to_format))
    return qvm_cli_usage_error(VERB, "--from-format and --to-format go with --images");
  if (images && (opts.from_snapshot || opts.to_snapshot || from_image))
    return qvm_cli_usage_error(VERB, "--from, --from-image and --to name a vm's states, "
                                     "not --images");
  qvm_diff *d = NULL;
  qvm_error *err = NULL;
  int r = images ? qvm_diff_images(&d, argv[optind], from_format, argv[optind + 1], to_format,
                                   &opts, &err)
                 : qvm_diff_vm(&d, argv[optind], &opts, &err);
  if (r < 0) {
    const char *cls = qvm_error_class(err);
    return qvm_cli_fail(VERB, err,
                        cls && !strcmp(cls, "SnapshotUnknown")
                            ? "'qvm snapshot ls VM' lists its snapshots"
                        : images ? NULL
                                 : qvm_cli_vm_hint(err));
  }
  int rc = QVM_EXIT_OK;
  if (ansible) {
    const char *dir = output ? output : "qvm-diff-playbook";
    if (qvm_diff_ansible(d, dir, &aopts, &err) < 0)
      rc = qvm_cli_fail(VERB, err, NULL);
    else
      fprintf(stderr,
              "wrote %s/playbook.yml (%zu changes); check it with "
              "'ansible-playbook --syntax-check'\n",
              dir, qvm_diff_count(d));
  } else if (json) {
    char *text = NULL;
    if (qvm_diff_json(&text, d, &err) < 0) {
      rc = qvm_cli_fail(VERB, err, NULL);
    } else {
      puts(text);
      free(text);
    }
  } else {
    print_table(d, verbose);
  }
  if (qvm_diff_incomplete(d)) fprintf(stderr, "warning: %s\n", qvm_diff_incomplete(d));
  qvm_diff_free(d);
  return rc;
}

const struct qvm_command qvm_cmd_diff = {
    "diff", "list what changed in a vm's file system, read from its disk", diff_run};
