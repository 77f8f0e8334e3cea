/* SPDX-License-Identifier: MIT */
/* The review state machine without a VM: change sets recorded from fixture
 * files (review_record), then approve, reject, self-approval, hash
 * mismatch, void-on-edit, id validation, a corrupt meta.json, the recap
 * parser, apply refusals. Needs ansible-playbook only for the edit cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "review/review.h"
#include "review/store.h"
#include "util/fs.h"
#include <qvm/audit.h>
#include <qvm/review.h>

static char state[256];

static const char playbook_ok[] = "- hosts: all\n"
                                  "  become: true\n"
                                  "  tasks:\n"
                                  "    - name: a file\n"
                                  "      ansible.builtin.copy:\n"
                                  "        src: files/abc\n"
                                  "        dest: /etc/conf\n"
                                  "        mode: '0644'\n";

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* A change set of vm "web" by agent (NULL: none), status pending. */
static char *make_review(const char *agent) {
  char src[512], files[600], abc[700];
  snprintf(src, sizeof src, "%s/src-XXXXXX", state);
  assert_non_null(mkdtemp(src));
  snprintf(files, sizeof files, "%s/files", src);
  assert_int_equal(mkdir(files, 0755), 0);
  snprintf(abc, sizeof abc, "%s/abc", files);
  write_text(abc, "content\n");
  char pb[600];
  snprintf(pb, sizeof pb, "%s/playbook.yml", src);
  write_text(pb, playbook_ok);
  const char diff[] = "{\"changes\":[{\"kind\":\"modified\",\"path\":\"/etc/conf\"}]}";
  struct json_object *extra = json_object_new_object();
  json_object_object_add(extra, "changes", json_object_new_int(1));
  char *id = NULL;
  qvm_error *err = NULL;
  int r = review_record(&id, "web", agent, REVIEW_PENDING, diff, strlen(diff), src, extra, &err);
  if (r < 0) fail_msg("review_record: %s", qvm_error_message(err));
  assert_true(qvm_review_id_valid(id));
  return id;
}

static struct json_object *meta_of(const char *id) {
  char *text = NULL;
  qvm_error *err = NULL;
  if (qvm_review_show(&text, id, &err) < 0) fail_msg("show: %s", qvm_error_message(err));
  struct json_object *o = json_tokener_parse(text);
  free(text);
  assert_non_null(o);
  return o;
}

static void assert_status(const char *id, const char *want) {
  struct json_object *m = meta_of(id);
  assert_string_equal(review_meta_string(m, "status"), want);
  json_object_put(m);
}

static char *path_in(const char *id, const char *name) {
  char *dir = NULL, *p = NULL;
  assert_int_equal(review_dir(&dir, id, NULL), 0);
  assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
  free(dir);
  return p;
}

/* errp, not err: the call in r must run before *errp is read. */
static int expect_fail(int r, qvm_error **errp, int code, const char *cls, const char *text) {
  qvm_error *err = *errp;
  *errp = NULL;
  if (r != code) fail_msg("got %d (%s), want %d", r, err ? qvm_error_message(err) : "-", code);
  assert_non_null(err);
  if (cls) assert_string_equal(qvm_error_class(err), cls);
  if (text && !strstr(qvm_error_message(err), text))
    fail_msg("'%s' not in '%s'", text, qvm_error_message(err));
  qvm_error_free(err);
  return 0;
}

static void test_record_layout(void **s) {
  (void)s;
  unsetenv("QVM_AGENT");
  char *id = make_review("alice");
  char *dir = NULL;
  assert_int_equal(review_dir(&dir, id, NULL), 0);
  struct stat st;
  assert_int_equal(stat(dir, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700);
  char *meta = path_in(id, "meta.json"), *pb = path_in(id, "playbook/files/abc");
  assert_int_equal(stat(meta, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(stat(pb, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600); /* was 0644 when made */
  struct json_object *m = meta_of(id), *author = NULL;
  assert_string_equal(review_meta_string(m, "status"), "pending");
  assert_string_equal(review_meta_string(m, "vm"), "web");
  assert_true(json_object_object_get_ex(m, "author", &author));
  assert_string_equal(review_actor_agent(author), "alice");
  char dh[65], ph[65];
  assert_int_equal(review_hashes(dh, ph, dir, NULL), 0);
  assert_string_equal(review_meta_string(m, "diff_sha256"), dh);
  assert_string_equal(review_meta_string(m, "playbook_sha256"), ph);
  json_object_put(m);
  char *list = NULL;
  assert_int_equal(qvm_review_list(&list, NULL), 0);
  assert_non_null(strstr(list, id));
  free(list);
  free(meta);
  free(pb);
  free(dir);
  free(id);
}

static void test_id_validation(void **s) {
  (void)s;
  static const char *const bad[] = {
      "",   "../../etc", "0123456789ab/", "0123456789AB", "0123456789a", "0123456789abc",
      "..", "/tmp/x"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_false(qvm_review_id_valid(bad[i]));
    qvm_error *err = NULL;
    char *out = NULL;
    expect_fail(qvm_review_show(&out, bad[i], &err), &err, QVM_EINVAL, NULL, "is invalid");
    err = NULL;
    expect_fail(qvm_review_approve(bad[i], NULL, &err), &err, QVM_EINVAL, NULL, "is invalid");
  }
  qvm_error *err = NULL;
  expect_fail(qvm_review_approve("0123456789ab", NULL, &err), &err, QVM_ENOTFOUND, "ReviewUnknown",
              "no review '0123456789ab'");
}

static void test_self_approval(void **s) {
  (void)s;
  char *id = make_review("agent-7");
  qvm_error *err = NULL;
  setenv("QVM_AGENT", "agent-7", 1);
  expect_fail(qvm_review_approve(id, NULL, &err), &err, QVM_EPERM, "SelfApproval",
              "the same agent cannot approve it");
  assert_status(id, "pending");
  setenv("QVM_AGENT", "reviewer", 1);
  assert_int_equal(qvm_review_approve(id, "looks right", NULL), 0);
  assert_status(id, "approved");
  struct json_object *m = meta_of(id), *ap = NULL, *actor = NULL;
  assert_true(json_object_object_get_ex(m, "approval", &ap));
  assert_true(json_object_object_get_ex(ap, "actor", &actor));
  assert_string_equal(review_actor_agent(actor), "reviewer");
  assert_string_equal(review_meta_string(ap, "comment"), "looks right");
  assert_string_equal(review_meta_string(ap, "playbook_sha256"),
                      review_meta_string(m, "playbook_sha256"));
  json_object_put(m);
  /* approved once: approving again is a state conflict */
  err = NULL;
  expect_fail(qvm_review_approve(id, NULL, &err), &err, QVM_ECONFLICT, "ReviewState", "approved");
  unsetenv("QVM_AGENT");
  /* both steps, the refusal too, are in the audit log with the actor */
  qvm_audit_filter f = QVM_AUDIT_FILTER_INIT;
  f.vm = "web";
  char *records = NULL;
  assert_int_equal(qvm_audit_list(&records, &f, NULL), 0);
  struct json_object *list = json_tokener_parse(records);
  free(records);
  int refused = 0, approved = 0;
  for (size_t i = 0; i < json_object_array_length(list); i++) {
    struct json_object *rec = json_object_array_get_idx(list, i), *d = NULL, *a = NULL;
    json_object_object_get_ex(rec, "details", &d);
    json_object_object_get_ex(rec, "actor", &a);
    if (strcmp(review_meta_string(rec, "action"), "review-approve") ||
        strcmp(review_meta_string(d, "review"), id))
      continue;
    if (review_meta_string(d, "error")) {
      /* the self-approval, then approving twice */
      assert_string_equal(review_actor_agent(a), refused++ ? "reviewer" : "agent-7");
    } else {
      approved++;
      assert_string_equal(review_actor_agent(a), "reviewer");
    }
  }
  json_object_put(list);
  assert_int_equal(refused, 2); /* self-approval, approve twice */
  assert_int_equal(approved, 1);
  free(id);
}

static void test_reject_is_final(void **s) {
  (void)s;
  unsetenv("QVM_AGENT");
  char *id = make_review(NULL);
  assert_int_equal(qvm_review_reject(id, "no", NULL), 0);
  assert_status(id, "rejected");
  qvm_error *err = NULL;
  expect_fail(qvm_review_approve(id, NULL, &err), &err, QVM_ECONFLICT, "ReviewState", "rejected");
  err = NULL;
  char *copy = NULL;
  expect_fail(qvm_review_edit_begin(&copy, id, &err), &err, QVM_ECONFLICT, "ReviewState", NULL);
  qvm_review_apply_options o = QVM_REVIEW_APPLY_OPTIONS_INIT;
  o.inventory = "/dev/null";
  err = NULL;
  expect_fail(qvm_review_apply(NULL, id, &o, &err), &err, QVM_ECONFLICT, "ReviewNotApproved",
              "not approved");
  free(id);
}

static void test_unapproved_not_applied(void **s) {
  (void)s;
  char *id = make_review(NULL);
  qvm_review_apply_options o = QVM_REVIEW_APPLY_OPTIONS_INIT;
  o.inventory = "/dev/null";
  qvm_error *err = NULL;
  expect_fail(qvm_review_apply(NULL, id, &o, &err), &err, QVM_ECONFLICT, "ReviewNotApproved",
              "pending, not approved");
  /* nothing ran: no apply record */
  struct json_object *m = meta_of(id), *applies = NULL;
  assert_true(json_object_object_get_ex(m, "applies", &applies));
  assert_int_equal(json_object_array_length(applies), 0);
  json_object_put(m);
  free(id);
}

static void test_hash_mismatch(void **s) {
  (void)s;
  char *id = make_review(NULL);
  assert_int_equal(qvm_review_approve(id, NULL, NULL), 0);
  char *pb = path_in(id, "playbook/playbook.yml");
  write_text(pb, "- hosts: all\n  tasks: []\n"); /* behind qvm's back */
  qvm_review_apply_options o = QVM_REVIEW_APPLY_OPTIONS_INIT;
  o.inventory = "/dev/null";
  qvm_error *err = NULL;
  expect_fail(qvm_review_apply(NULL, id, &o, &err), &err, QVM_EINVAL, "ReviewTampered",
              "the playbook is not what was");
  free(pb);
  /* a file added to files/ is a change of the playbook dir too */
  char *id2 = make_review(NULL);
  char *extra = path_in(id2, "playbook/files/new");
  write_text(extra, "x");
  err = NULL;
  expect_fail(qvm_review_approve(id2, NULL, &err), &err, QVM_EINVAL, "ReviewTampered", NULL);
  free(extra);
  /* and diff.json */
  char *id3 = make_review(NULL);
  char *diff = path_in(id3, "diff.json");
  write_text(diff, "{\"changes\":[]}");
  err = NULL;
  expect_fail(qvm_review_approve(id3, NULL, &err), &err, QVM_EINVAL, "ReviewTampered", "diff.json");
  free(diff);
  free(id);
  free(id2);
  free(id3);
}

static void test_corrupt_meta(void **s) {
  (void)s;
  static const char *const bad[] = {"", "{", "[]", "{\"version\":1}", "not json at all",
                                    /* a valid shape with a made-up status */
                                    NULL};
  char *id = make_review(NULL);
  char *meta = path_in(id, "meta.json");
  for (size_t i = 0; bad[i]; i++) {
    write_text(meta, bad[i]);
    char *out = NULL;
    qvm_error *err = NULL;
    expect_fail(qvm_review_show(&out, id, &err), &err, QVM_EINVAL, NULL, "meta.json is corrupt");
    err = NULL;
    expect_fail(qvm_review_approve(id, NULL, &err), &err, QVM_EINVAL, NULL, "meta.json is corrupt");
  }
  /* a good one with the status changed by hand to approved, with no approval */
  char *id2 = make_review(NULL);
  char *meta2 = path_in(id2, "meta.json");
  struct json_object *m = meta_of(id2);
  json_object_object_add(m, "status", json_object_new_string("approved"));
  write_text(meta2, json_object_to_json_string(m));
  json_object_put(m);
  qvm_error *err = NULL;
  expect_fail(qvm_review_approve(id2, NULL, &err), &err, QVM_EINVAL, NULL, "'approval'");
  /* the list still shows both, as errors */
  char *list = NULL;
  assert_int_equal(qvm_review_list(&list, NULL), 0);
  assert_non_null(strstr(list, "meta.json is corrupt"));
  free(list);
  free(meta);
  free(meta2);
  free(id);
  free(id2);
}

static void test_comment_checked(void **s) {
  (void)s;
  char *id = make_review(NULL);
  qvm_error *err = NULL;
  expect_fail(qvm_review_approve(id, "bell\a", &err), &err, QVM_EINVAL, NULL, "control byte");
  err = NULL;
  expect_fail(qvm_review_approve(id, "bad \xff utf-8", &err), &err, QVM_EINVAL, NULL, "UTF-8");
  assert_status(id, "pending");
  free(id);
}

static bool have_ansible(void) {
  return system("command -v ansible-playbook >/dev/null 2>&1") == 0;
}

static void test_edit_voids_approval(void **s) {
  (void)s;
  if (!have_ansible()) skip();
  char *id = make_review(NULL);
  assert_int_equal(qvm_review_approve(id, NULL, NULL), 0);
  struct json_object *m = meta_of(id);
  char *was = strdup(review_meta_string(m, "playbook_sha256"));
  json_object_put(m);
  char *copy = NULL;
  assert_int_equal(qvm_review_edit_begin(&copy, id, NULL), 0);
  struct stat st;
  assert_int_equal(stat(copy, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  /* unchanged: no edit, the approval stays */
  bool changed = true;
  assert_int_equal(qvm_review_edit_commit(&changed, id, NULL), 0);
  assert_false(changed);
  assert_status(id, "approved");
  free(copy);
  /* a broken playbook is refused, kept, and changes nothing */
  assert_int_equal(qvm_review_edit_begin(&copy, id, NULL), 0);
  write_text(copy,
             "- hosts: all\n  tasks:\n    - name: x\n      no.such.module_at_all: {}\n  : [\n");
  qvm_error *err = NULL;
  expect_fail(qvm_review_edit_commit(&changed, id, &err), &err, QVM_EINVAL, "PlaybookSyntax",
              "syntax check");
  assert_int_equal(access(copy, F_OK), 0);
  assert_status(id, "approved");
  /* a good edit: new hash, approval void */
  write_text(copy, "- hosts: all\n  tasks:\n    - name: only this\n      ansible.builtin.ping:\n");
  assert_int_equal(qvm_review_edit_commit(&changed, id, NULL), 0);
  assert_true(changed);
  assert_int_equal(access(copy, F_OK), -1);
  m = meta_of(id);
  assert_string_equal(review_meta_string(m, "status"), "pending");
  assert_string_not_equal(review_meta_string(m, "playbook_sha256"), was);
  struct json_object *ap = NULL;
  assert_true(json_object_object_get_ex(m, "approval", &ap));
  assert_null(ap);
  json_object_put(m);
  qvm_review_apply_options o = QVM_REVIEW_APPLY_OPTIONS_INIT;
  o.inventory = "/dev/null";
  err = NULL;
  expect_fail(qvm_review_apply(NULL, id, &o, &err), &err, QVM_ECONFLICT, "ReviewNotApproved", NULL);
  free(copy);
  free(was);
  free(id);
}

static void test_recap(void **s) {
  (void)s;
  const char log[] = "PLAY [all] ****\n\nTASK [x] ****\nchanged: [a]\n\n"
                     "PLAY RECAP *********\n"
                     "a                          : ok=3    changed=2    unreachable=0    "
                     "failed=0    skipped=0    rescued=0    ignored=0   \n"
                     "b                          : ok=1    changed=0    unreachable=1    "
                     "failed=1    skipped=0    rescued=0    ignored=0   \n\n";
  review_recap rc;
  assert_true(review_recap_parse(&rc, log, strlen(log)));
  assert_int_equal(rc.ok, 4);
  assert_int_equal(rc.changed, 2);
  assert_int_equal(rc.unreachable, 1);
  assert_int_equal(rc.failed, 1);
  assert_false(review_recap_parse(&rc, "ERROR! no playbook\n", 19));
  const char garbage[] = "PLAY RECAP\n: changed=99999999999999999999\n";
  assert_true(review_recap_parse(&rc, garbage, strlen(garbage)));
  assert_true(rc.changed >= 0);
}

static void test_apply_with_inventory(void **s) {
  (void)s;
  if (!have_ansible()) skip();
  /* a local connection: the playbook pings localhost, nothing on a vm */
  char *id = make_review(NULL);
  char *copy = NULL;
  assert_int_equal(qvm_review_edit_begin(&copy, id, NULL), 0);
  write_text(copy, "- hosts: all\n  gather_facts: false\n  tasks:\n"
                   "    - name: ping\n      ansible.builtin.ping:\n");
  bool changed = false;
  assert_int_equal(qvm_review_edit_commit(&changed, id, NULL), 0);
  free(copy);
  assert_int_equal(qvm_review_approve(id, NULL, NULL), 0);
  char inv[512];
  snprintf(inv, sizeof inv, "%s/inv.ini", state);
  write_text(inv, "local ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n");
  qvm_review_apply_options o = QVM_REVIEW_APPLY_OPTIONS_INIT;
  o.inventory = inv;
  char *out = NULL;
  qvm_error *err = NULL;
  if (qvm_review_apply(&out, id, &o, &err) < 0) fail_msg("apply: %s", qvm_error_message(err));
  struct json_object *res = json_tokener_parse(out), *v = NULL;
  assert_true(json_object_object_get_ex(res, "exit", &v));
  assert_int_equal(json_object_get_int(v), 0);
  assert_true(json_object_object_get_ex(res, "ok", &v));
  assert_int_equal(json_object_get_int(v), 1);
  json_object_put(res);
  free(out);
  assert_status(id, "applied");
  /* the private ansible.cfg gives ansible a timeout a guest under TCG can
   * meet (its default of 10 s was not, for sudo on a busy host) */
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "ANSIBLE_CONFIG='%s/state/reviews/%s/apply-1/ansible.cfg' ansible-config dump "
           "--only-changed 2>&1",
           state, id);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char line[512];
  bool timeout = false;
  while (fgets(line, sizeof line, p))
    if (!strncmp(line, "DEFAULT_TIMEOUT(", 16) && strstr(line, " = 60")) timeout = true;
  pclose(p);
  assert_true(timeout);
  /* one SSH connection per host for the run, its socket in a private
   * directory of /tmp (short enough for ssh's socket name), gone after it */
  char cfgpath[512], *cfg = NULL;
  size_t cfg_len = 0;
  snprintf(cfgpath, sizeof cfgpath, "%s/state/reviews/%s/apply-1/ansible.cfg", state, id);
  assert_int_equal(qvm_read_file(&cfg, &cfg_len, cfgpath, 1u << 16, NULL), 0);
  assert_non_null(strstr(cfg, "ssh_args = -o ControlMaster=auto -o ControlPersist=30s\n"));
  const char *cp = strstr(cfg, "control_path_dir = /tmp/qvm-cp-");
  assert_non_null(cp);
  char cpdir[64];
  assert_int_equal(sscanf(cp, "control_path_dir = %63s", cpdir), 1);
  assert_int_equal(strlen(cpdir), strlen("/tmp/qvm-cp-XXXXXX"));
  struct stat st;
  assert_int_equal(lstat(cpdir, &st), -1);
  free(cfg);
  free(id);
}

int main(void) {
  snprintf(state, sizeof state, "/tmp/qvm-review-unit-XXXXXX");
  if (!mkdtemp(state)) return 1;
  char st[300], run[300];
  snprintf(st, sizeof st, "%s/state", state);
  snprintf(run, sizeof run, "%s/run", state);
  setenv("QVM_STATE_DIR", st, 1);
  setenv("QVM_RUNTIME_DIR", run, 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_record_layout),          cmocka_unit_test(test_id_validation),
      cmocka_unit_test(test_self_approval),          cmocka_unit_test(test_reject_is_final),
      cmocka_unit_test(test_unapproved_not_applied), cmocka_unit_test(test_hash_mismatch),
      cmocka_unit_test(test_corrupt_meta),           cmocka_unit_test(test_comment_checked),
      cmocka_unit_test(test_edit_voids_approval),    cmocka_unit_test(test_recap),
      cmocka_unit_test(test_apply_with_inventory),
  };
  int r = cmocka_run_group_tests(tests, NULL, NULL);
  qvm_rm_rf(state, NULL);
  return r;
}
