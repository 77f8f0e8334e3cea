/* SPDX-License-Identifier: MIT */
/* diff/: dpkg's status, /etc/passwd and /etc/group parsers, unit names and
 * the comparison of packages, units and accounts, strict UTF-8, and the
 * playbook emitter: hostile strings read back through libyaml's parser
 * come out byte for byte and tagged !unsafe. Pure, no disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <yaml.h>

#include "diff/accounts.h"
#include "diff/dpkg.h"
#include "diff/playbook.h"
#include "diff/system.h"

static int parse_status(dpkg_db *db, const char *text, qvm_error **err) {
  return dpkg_status_parse(db, text, strlen(text), err);
}

static void test_dpkg_status(void **state) {
  (void)state;
  const char *text = "Package: zlib1g\n"
                     "Status: install ok installed\n"
                     "Priority: optional\n"
                     "Architecture: amd64\n"
                     "Version: 1:1.2.13.dfsg-1\n"
                     "Description: compression library\n"
                     " a continuation: line\n"
                     "\n"
                     "Package: removed-one\n"
                     "Status: deinstall ok config-files\n"
                     "Version: 1.0\n"
                     "\n\n"
                     "Package: nginx-common\n"
                     "Status: install ok installed\n"
                     "Architecture: all\n"
                     "Version: 1.22.1-9\n"
                     "Conffiles:\n"
                     " /etc/nginx/nginx.conf 0123456789abcdef0123456789abcdef\n"
                     " /etc/nginx/old.conf 0123456789abcdef0123456789abcdef obsolete\n"
                     " /etc/nginx/new.conf newconffile\n"
                     "\n"
                     "Package: aa\n"
                     "Status: hold ok installed\n"
                     "Version: 2\n"
                     "Architecture: i386\n";
  dpkg_db db = {0};
  qvm_error *err = NULL;
  assert_int_equal(parse_status(&db, text, &err), 0);
  assert_int_equal(db.n, 3); /* sorted by name; the removed one left out */
  assert_string_equal(db.p[0].name, "aa");
  assert_string_equal(db.p[0].arch, "i386");
  assert_string_equal(db.p[1].name, "nginx-common");
  assert_string_equal(db.p[1].version, "1.22.1-9");
  assert_int_equal(db.p[1].n_conf, 2); /* the obsolete one is not a conffile */
  assert_string_equal(db.p[1].conf[0].path, "/etc/nginx/nginx.conf");
  assert_string_equal(db.p[1].conf[0].md5, "0123456789abcdef0123456789abcdef");
  assert_string_equal(db.p[1].conf[1].path, "/etc/nginx/new.conf");
  assert_string_equal(db.p[1].conf[1].md5, "");
  assert_string_equal(db.p[2].name, "zlib1g");
  assert_string_equal(db.p[2].version, "1:1.2.13.dfsg-1");
  assert_non_null(dpkg_find(&db, "zlib1g", "amd64"));
  assert_null(dpkg_find(&db, "zlib1g", "i386"));
  dpkg_db_clear(&db);
}

static void test_dpkg_hostile(void **state) {
  (void)state;
  static const struct {
    const char *text, *want;
  } bad[] = {
      {"Package: a;rm -rf /\nStatus: install ok installed\nVersion: 1\n", "invalid package name"},
      {"Package: ok-name\nStatus: install ok installed\nVersion: 1{{x}}\n", "valid Version"},
      {"Package: ok-name\nStatus: install ok installed\n", "valid Version"},
      {"Package: ok-name\nPackage: other\n", "twice"},
      {"Status: install ok installed\nVersion: 1\n", "without a Package"},
      {" continuation first\n", "continuation"},
      {"no colon here\n", "Field: value"},
      {"Package: ok-name\nArchitecture: AMD64\n", "invalid architecture"},
      {"Package: ok-name\nStatus: install ok installed\nVersion: 1\nConffiles:\n /etc/x\n",
       "md5sum"},
      {"Package: ok-name\nStatus: install ok installed\nVersion: 1\nConffiles:\n etc/x "
       "0123456789abcdef0123456789abcdef\n",
       "'/path md5sum'"},
      {"Package: dup\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n"
       "Package: dup\nStatus: install ok installed\nVersion: 2\nArchitecture: all\n",
       "installed twice"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    dpkg_db db = {0};
    qvm_error *err = NULL;
    assert_int_equal(parse_status(&db, bad[i].text, &err), QVM_EINVAL);
    if (!strstr(qvm_error_message(err), bad[i].want))
      fail_msg("%zu: %s", i, qvm_error_message(err));
    qvm_error_free(err);
    assert_int_equal(db.n, 0);
  }
  /* a NUL byte, a field past its bound */
  dpkg_db db = {0};
  qvm_error *err = NULL;
  assert_int_equal(dpkg_status_parse(&db, "Package: a\0b\n", 13, &err), QVM_EINVAL);
  qvm_error_free(err);
  err = NULL;
  size_t n = DPKG_MAX_FIELD + 64;
  char *big = malloc(n + 1);
  memcpy(big, "Version: 1", 10);
  memset(big + 10, '1', n - 10);
  big[n] = '\0';
  assert_int_equal(parse_status(&db, big, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "too long"));
  qvm_error_free(err);
  free(big);
}

static void test_accounts(void **state) {
  (void)state;
  const char *passwd = "root:x:0:0:root:/root:/bin/bash\n"
                       "# a comment\n"
                       "\n"
                       "bob:x:1000:1000:Bob {{ x }},,,:/home/bob:/bin/sh\n"
                       "svc$:x:999:999::/:/usr/sbin/nologin";
  const char *group = "root:x:0:\nsudo:x:27:bob,alice\nbob:x:1000:\nempty:x:5:,\n";
  acct_db db = {0};
  qvm_error *err = NULL;
  assert_int_equal(acct_passwd_parse(&db, passwd, strlen(passwd), &err), 0);
  assert_int_equal(acct_group_parse(&db, group, strlen(group), &err), 0);
  assert_int_equal(db.n_u, 3);
  const acct_user *bob = acct_find_user(&db, "bob");
  assert_non_null(bob);
  assert_int_equal(bob->uid, 1000);
  assert_string_equal(bob->gecos, "Bob {{ x }},,,");
  assert_string_equal(bob->shell, "/bin/sh");
  assert_non_null(acct_find_user(&db, "svc$"));
  const acct_group *sudo = acct_find_group(&db, "sudo");
  assert_non_null(sudo);
  assert_int_equal(sudo->n_members, 2);
  assert_string_equal(sudo->members[1], "alice");
  assert_int_equal(acct_find_group(&db, "empty")->n_members, 0);
  acct_db_clear(&db);

  static const struct {
    const char *text, *want;
    bool is_group;
  } bad[] = {
      {"+::::::\n", "invalid user name", false},
      {"a:x:1:1:g:/h\n", "not name:", false},
      {"a:x:1:1:g:/h:/s:extra\n", "not name:", false},
      {"a:x:4294967295:1:g:/h:/s\n", "invalid uid", false},
      {"a:x:-1:1:g:/h:/s\n", "invalid uid", false},
      {"a:x:1:1:g:/h:/s\na:x:2:2:g:/h:/s\n", "twice", false},
      {"a b:x:1:1:g:/h:/s\n", "invalid user name", false},
      {"g:x:1:bad name\n", "invalid member", true},
      {"g:x:1\n", "not name:", true},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    acct_db d = {0};
    err = NULL;
    int r = bad[i].is_group ? acct_group_parse(&d, bad[i].text, strlen(bad[i].text), &err)
                            : acct_passwd_parse(&d, bad[i].text, strlen(bad[i].text), &err);
    assert_int_equal(r, QVM_EINVAL);
    if (!strstr(qvm_error_message(err), bad[i].want))
      fail_msg("%zu: %s", i, qvm_error_message(err));
    qvm_error_free(err);
    acct_db_clear(&d);
  }
}

static void test_utf8(void **state) {
  (void)state;
  assert_true(pb_utf8_valid("", 0));
  assert_true(pb_utf8_valid("/etc/caf\xc3\xa9", 10));
  assert_true(pb_utf8_valid("\xf0\x9f\x98\x80", 4));
  assert_true(pb_utf8_valid("\xe2\x80\xa8", 3)); /* U+2028: valid, YAML escapes it */
  assert_false(pb_utf8_valid("\xff", 1));
  assert_false(pb_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
  assert_false(pb_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
  assert_false(pb_utf8_valid("\xed\xa0\x80", 3));     /* a surrogate */
  assert_false(pb_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
  assert_false(pb_utf8_valid("\xc3", 1));             /* cut short */
  assert_false(pb_utf8_valid("a\0b", 3));
}

static void test_unit_names(void **state) {
  (void)state;
  assert_true(diff_unit_name_valid("nginx.service"));
  assert_true(diff_unit_name_valid("getty@tty1.service"));
  assert_true(diff_unit_name_valid("dev-disk-by\\x2duuid-1.swap"));
  assert_false(diff_unit_name_valid("nginx"));
  assert_false(diff_unit_name_valid("{{x}}.service"));
  assert_false(diff_unit_name_valid("a b.service"));
  assert_false(diff_unit_name_valid("-x.service"));
}

static diff_entry link_entry(const char *path, const char *target) {
  return (diff_entry){.path = (char *)path,
                      .path_len = (uint32_t)strlen(path),
                      .type = 'l',
                      .target = (char *)target,
                      .target_len = (uint32_t)strlen(target)};
}

static void test_compare_system(void **state) {
  (void)state;
  diff_system s = {0};
  qvm_error *err = NULL;
  const char *st0 = "Package: keep\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n"
                    "Package: up\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n"
                    "Package: gone\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n";
  const char *st1 = "Package: keep\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n"
                    "Package: up\nStatus: install ok installed\nVersion: 2\nArchitecture: all\n\n"
                    "Package: new\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n";
  assert_int_equal(parse_status(&s.dpkg[0], st0, &err), 0);
  assert_int_equal(parse_status(&s.dpkg[1], st1, &err), 0);
  const char *pw0 = "root:x:0:0::/root:/bin/sh\nold:x:5:5::/:/bin/sh\nmod:x:6:6::/:/bin/sh\n";
  const char *pw1 = "root:x:0:0::/root:/bin/sh\nnew:x:7:7::/:/bin/sh\nmod:x:6:6::/:/bin/bash\n";
  const char *gr0 = "root:x:0:\nold:x:5:\nwheel:x:10:\n";
  const char *gr1 = "root:x:0:\nnew:x:7:\nwheel:x:10:new\n";
  assert_int_equal(acct_passwd_parse(&s.acct[0], pw0, strlen(pw0), &err), 0);
  assert_int_equal(acct_passwd_parse(&s.acct[1], pw1, strlen(pw1), &err), 0);
  assert_int_equal(acct_group_parse(&s.acct[0], gr0, strlen(gr0), &err), 0);
  assert_int_equal(acct_group_parse(&s.acct[1], gr1, strlen(gr1), &err), 0);
  s.have_acct = true;
  diff_entry e0[] = {
      link_entry("/etc/systemd/system/multi-user.target.wants/was.service", "/lib/was.service"),
      link_entry("/etc/systemd/system/masked.service", "/dev/null"),
      link_entry("/etc/systemd/system/sockets.target.requires/both.socket", "/lib/both.socket"),
  };
  diff_entry e1[] = {
      link_entry("/etc/systemd/system/both.socket", "/dev/null"),
      link_entry("/etc/systemd/system/getty.target.wants/getty@tty2.service", "/lib/getty@"),
      link_entry("/etc/systemd/system/sockets.target.requires/both.socket", "/lib/both.socket"),
      link_entry("/etc/systemd/system/x.target.wants/{{bad}}.service", "/lib/x"),
      link_entry("/etc/systemd/system/notmasked.service", "/lib/notmasked.service"),
      link_entry("/lib/systemd/system/y.target.wants/vendor.service", "/lib/vendor.service"),
  };
  diff_tree t0 = {.e = e0, .n = 3}, t1 = {.e = e1, .n = 6};
  assert_int_equal(diff_system_compare(&s, &t0, &t1, &err), 0);

  assert_int_equal(s.n_pkgs, 3);
  assert_string_equal(s.pkgs[0].from->name, "gone");
  assert_int_equal(s.pkgs[0].kind, QVM_DIFF_DELETED);
  assert_string_equal(s.pkgs[1].to->name, "new");
  assert_int_equal(s.pkgs[1].kind, QVM_DIFF_ADDED);
  assert_string_equal(s.pkgs[2].to->name, "up");
  assert_int_equal(s.pkgs[2].kind, QVM_DIFF_MODIFIED);

  struct {
    const char *name;
    qvm_diff_unit_change c;
  } want[] = {
      {"both.socket", QVM_DIFF_UNIT_MASKED},
      {"getty@tty2.service", QVM_DIFF_UNIT_ENABLED},
      {"masked.service", QVM_DIFF_UNIT_UNMASKED},
      {"was.service", QVM_DIFF_UNIT_DISABLED},
  };
  assert_int_equal(s.n_units, 4);
  for (size_t i = 0; i < 4; i++) {
    assert_string_equal(s.units[i].name, want[i].name);
    assert_int_equal(s.units[i].change, want[i].c);
  }

  assert_int_equal(s.n_users, 3); /* mod (shell), new, old */
  assert_string_equal(s.users[0].u->name, "mod");
  assert_int_equal(s.users[0].kind, QVM_DIFF_MODIFIED);
  assert_string_equal(s.users[1].u->name, "new");
  assert_int_equal(s.users[1].kind, QVM_DIFF_ADDED);
  assert_int_equal(s.users[1].n_groups, 1);
  assert_string_equal(s.users[1].groups[0], "wheel");
  assert_int_equal(s.users[2].kind, QVM_DIFF_DELETED);
  assert_int_equal(s.n_groups, 3); /* new, old, wheel (a member) */
  assert_string_equal(s.groups[2].g->name, "wheel");
  assert_int_equal(s.groups[2].kind, QVM_DIFF_MODIFIED);
  diff_system_clear(&s);
}

static void test_canonical_path(void **state) {
  (void)state;
  diff_entry e[] = {
      link_entry("/bin", "/usr/bin"),
      link_entry("/lib", "usr/lib"),
      link_entry("/loop", "/loop/a"),
      {.path = "/usr", .path_len = 4, .type = 'd'},
      {.path = "/usr/lib", .path_len = 8, .type = 'd'},
      link_entry("/usr/lib/alt", "../share/alt"),
      link_entry("/usr/lib/up", "../../../.."),
  };
  diff_tree t = {.e = e, .n = sizeof e / sizeof e[0]};
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"/lib/modules/6.1/kernel.ko", "/usr/lib/modules/6.1/kernel.ko"},
      {"/bin/ls", "/usr/bin/ls"},
      {"/lib/alt/x", "/usr/share/alt/x"}, /* two links, the second relative */
      {"/lib", "/lib"},                   /* the last component is not resolved */
      {"/usr/lib/up/etc/x", "/etc/x"},    /* '..' stops at the root */
      {"/etc/passwd", "/etc/passwd"},
      {"/loop/x", "/loop/a/a/a/a/a/a/a/a/x"}, /* a loop: resolved 8 times, then left */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *got = diff_canonical_path(&t, cases[i].in, strlen(cases[i].in));
    assert_non_null(got);
    assert_string_equal(got, cases[i].want);
    free(got);
  }
}

/* qvm_diff_options version 1 (before keep_content) is still accepted;
 * an unknown version is not. */
static void test_options_versions(void **state) {
  (void)state;
  struct {
    unsigned version;
    bool accepted;
  } cases[] = {{1, true}, {QVM_DIFF_OPTIONS_VERSION, true}, {0, false}, {99, false}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    qvm_diff_options o = QVM_DIFF_OPTIONS_INIT;
    o.version = cases[i].version;
    qvm_diff *d = NULL;
    qvm_error *err = NULL;
    assert_true(
        qvm_diff_images(&d, "/nonexistent/a.raw", NULL, "/nonexistent/b.raw", NULL, &o, &err) < 0);
    bool version_refused = strstr(qvm_error_message(err), "unknown version") != NULL;
    if (version_refused == cases[i].accepted) fail_msg("%u: %s", o.version, qvm_error_message(err));
    qvm_error_free(err);
  }
  qvm_diff_ansible_options ao = QVM_DIFF_ANSIBLE_OPTIONS_INIT;
  ao.version = 2;
  qvm_error *err = NULL;
  assert_int_equal(qvm_diff_ansible(NULL, "/nonexistent", &ao, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "unknown version"));
  qvm_error_free(err);
}

/* The playbook, parsed back: each scalar in order with its tag. */
typedef struct scalar_seen {
  char *value;
  size_t len;
  char *tag;
} scalar_seen;

static size_t parse_back(scalar_seen *out, size_t max, const char *text, size_t len) {
  yaml_parser_t p;
  assert_true(yaml_parser_initialize(&p));
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  size_t n = 0;
  for (bool done = false; !done;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) fail_msg("the playbook does not parse: %s", p.problem);
    if (ev.type == YAML_SCALAR_EVENT && n < max) {
      out[n].len = ev.data.scalar.length;
      out[n].value = malloc(out[n].len + 1);
      memcpy(out[n].value, ev.data.scalar.value, out[n].len + 1);
      out[n].tag = ev.data.scalar.tag ? strdup((char *)ev.data.scalar.tag) : NULL;
      n++;
    }
    done = ev.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  return n;
}

static void test_playbook_escaping(void **state) {
  (void)state;
  static const char *const hostile[] = {
      "{{ lookup('pipe', 'id') }}",
      "{% for x in y %}x{% endfor %}",
      "a\"b'c\\d",
      "line1\nline2\r\n",
      "tab\there",
      "\x1b[31mred\x07",
      "- item: [x, {y: z}] # not a comment",
      "caf\xc3\xa9 \xe2\x80\xa8 \xc2\x85 \xef\xbb\xbf",
      "!unsafe",
      "&anchor *alias",
      "",
      "   leading and trailing   ",
      "yes",
      "0644",
  };
  size_t nh = sizeof hostile / sizeof hostile[0];
  playbook p;
  pb_begin(&p, "all");
  for (size_t i = 0; i < nh; i++) {
    pb_task_begin(&p, "file", hostile[i], strlen(hostile[i]), "ansible.builtin.file");
    pb_kv_unsafe(&p, "path", hostile[i], strlen(hostile[i]));
    pb_task_end(&p);
  }
  char *text = NULL;
  size_t len = 0;
  qvm_error *err = NULL;
  assert_int_equal(pb_finish(&p, &text, &len, &err), 0);
  scalar_seen seen[256];
  size_t n = parse_back(seen, 256, text, len);
  /* play: name, hosts, become, gather_facts, tasks = 9 scalars (keys and
   * values), then per task: name key, name, module key, path key, path. */
  assert_int_equal(n, 9 + 5 * nh);
  for (size_t i = 0; i < nh; i++) {
    scalar_seen *name = &seen[9 + 5 * i + 1], *path = &seen[9 + 5 * i + 4];
    assert_int_equal(path->len, strlen(hostile[i]));
    assert_memory_equal(path->value, hostile[i], path->len);
    assert_non_null(path->tag);
    assert_string_equal(path->tag, "!unsafe");
    assert_non_null(name->tag);
    assert_string_equal(name->tag, "!unsafe");
    /* the task name is for a terminal: no control bytes but tab */
    for (size_t k = 0; k < name->len; k++)
      assert_true(name->value[k] == '\t' ||
                  ((unsigned char)name->value[k] >= 0x20 && name->value[k] != 0x7f));
  }
  for (size_t i = 0; i < n; i++) {
    free(seen[i].value);
    free(seen[i].tag);
  }
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dpkg_status),       cmocka_unit_test(test_dpkg_hostile),
      cmocka_unit_test(test_accounts),          cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_unit_names),        cmocka_unit_test(test_compare_system),
      cmocka_unit_test(test_playbook_escaping), cmocka_unit_test(test_canonical_path),
      cmocka_unit_test(test_options_versions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
