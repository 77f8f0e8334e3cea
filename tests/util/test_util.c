/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testlib.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"
#include <qvm/text.h>

static int fail_with_name(const char *name, qvm_error **err) {
  return qvm_error_set(err, QVM_EINVAL, "name '%s' is invalid", name);
}

static void test_error_set_and_prefix(void **state) {
  (void)state;
  qvm_error *err = NULL;
  assert_int_equal(fail_with_name("a,b", &err), QVM_EINVAL);
  assert_non_null(err);
  assert_int_equal(qvm_error_code(err), QVM_EINVAL);
  assert_string_equal(qvm_error_message(err), "name 'a,b' is invalid");
  assert_null(qvm_error_class(err));
  assert_int_equal(qvm_error_prefix(&err, "cannot create vm"), QVM_EINVAL);
  assert_string_equal(qvm_error_message(err), "cannot create vm: name 'a,b' is invalid");
  qvm_error_set_class(err, "GenericError");
  assert_string_equal(qvm_error_class(err), "GenericError");
  qvm_error_free(err);
}

static void test_error_errno(void **state) {
  (void)state;
  _cleanup_(qvm_error_freep) qvm_error *err = NULL;
  assert_int_equal(qvm_error_set_errno(&err, ENOENT, "cannot open '%s'", "/x"), QVM_ESYS);
  assert_int_equal(qvm_error_errno(err), ENOENT);
  assert_string_equal(qvm_error_message(err), "cannot open '/x': No such file or directory");
  assert_string_equal(qvm_error_code_name(qvm_error_code(err)), "ESYS");
}

/* The system refusing is QVM_EPERM, with errno kept: a program can tell
 * "no permission" from other system failures without parsing. */
static void test_error_permission(void **state) {
  (void)state;
  int errs[] = {EACCES, EPERM};
  for (size_t i = 0; i < 2; i++) {
    qvm_error *err = NULL;
    assert_int_equal(qvm_error_set_errno(&err, errs[i], "cannot open '%s'", "/x"), QVM_EPERM);
    assert_int_equal(qvm_error_code(err), QVM_EPERM);
    assert_int_equal(qvm_error_errno(err), errs[i]);
    assert_string_equal(qvm_error_code_name(qvm_error_code(err)), "EPERM");
    qvm_error_free(err);
  }
}

/* Every code has its own stable name (they are what --json prints). */
static void test_error_code_names(void **state) {
  (void)state;
  static const struct {
    int code;
    const char *name;
  } all[] = {{QVM_OK, "OK"},           {QVM_EINVAL, "EINVAL"},      {QVM_ENOTFOUND, "ENOTFOUND"},
             {QVM_EEXISTS, "EEXISTS"}, {QVM_ETIMEOUT, "ETIMEOUT"},  {QVM_EBUSY, "EBUSY"},
             {QVM_EQMP, "EQMP"},       {QVM_ESYS, "ESYS"},          {QVM_EPROTO, "EPROTO"},
             {QVM_EAUTH, "EAUTH"},     {QVM_EUNAVAIL, "EUNAVAIL"},  {QVM_EGUEST, "EGUEST"},
             {QVM_EPERM, "EPERM"},     {QVM_ECONFLICT, "ECONFLICT"}};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    assert_int_equal(all[i].code, -(int)i);
    assert_string_equal(qvm_error_code_name(all[i].code), all[i].name);
  }
  assert_string_equal(qvm_error_code_name(-14), "EUNKNOWN");
  assert_string_equal(qvm_error_code_name(1), "EUNKNOWN");
}

/* Class and subject travel with the error, for the CLI's hint; no error is
 * a no-op. */
static void test_error_hint(void **state) {
  (void)state;
  qvm_error *err = NULL;
  /* No error to fill (err NULL, the caller does not care): still the code,
   * never 0, so a failure cannot turn into a success. */
  assert_int_equal(qvm_error_set_hint(NULL, QVM_ECONFLICT, "VmRunning", "web"), QVM_ECONFLICT);
  qvm_error_set(&err, QVM_ECONFLICT, "vm '%s' is running", "web");
  assert_int_equal(qvm_error_set_hint(&err, QVM_ECONFLICT, "VmRunning", "web"), QVM_ECONFLICT);
  assert_string_equal(qvm_error_class(err), "VmRunning");
  assert_string_equal(qvm_error_subject(err), "web");
  qvm_error_prefix(&err, "cannot remove vm '%s'", "web");
  assert_string_equal(qvm_error_subject(err), "web");
  assert_null(qvm_error_subject(NULL));
  qvm_error_free(err);
}

/* An options struct that did not start from its _INIT macro (version 0) or
 * comes from a newer header is refused, naming the struct. */
static void test_options_version(void **state) {
  (void)state;
  qvm_error *err = NULL;
  typedef struct {
    unsigned version;
  } qvm_x_options;
  qvm_x_options good = {1}, zero = {0}, newer = {2};
  /* Through pointers, as the library sees them (and as it may get NULL). */
  const qvm_x_options *p_good = &good, *p_zero = &zero, *p_newer = &newer, *none = NULL;
  assert_int_equal(QVM_OPTIONS_CHECK(p_good, qvm_x_options, 1, &err), 0);
  assert_int_equal(QVM_OPTIONS_CHECK(none, qvm_x_options, 1, &err), 0);
  assert_null(err);
  assert_int_equal(QVM_OPTIONS_CHECK(p_zero, qvm_x_options, 1, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "qvm_x_options: unknown version 0"));
  qvm_error_free(err);
  err = NULL;
  assert_int_equal(QVM_OPTIONS_CHECK(p_newer, qvm_x_options, 1, &err), QVM_EINVAL);
  assert_non_null(strstr(qvm_error_message(err), "unknown version 2 (this libqvm knows 1"));
  qvm_error_free(err);
}

static void test_error_null_sink(void **state) {
  (void)state;
  /* A caller that passes NULL still gets the code, and nothing leaks. */
  assert_int_equal(fail_with_name("x", NULL), QVM_EINVAL);
  assert_int_equal(qvm_error_prefix(NULL, "ctx"), 0);
  qvm_error *e = NULL;
  qvm_error_set(&e, QVM_ETIMEOUT, "phase 'ssh' did not happen");
  assert_int_equal(qvm_error_propagate(NULL, e), QVM_ETIMEOUT);
  qvm_error_free(NULL);
}

static void test_strbuf(void **state) {
  (void)state;
  qvm_strbuf sb = QVM_STRBUF_INIT;
  for (int i = 0; i < 1000; i++) qvm_strbuf_printf(&sb, "%d,", i);
  qvm_strbuf_putc(&sb, '!');
  qvm_strbuf_append(&sb, "\0x", 2);
  assert_int_equal(sb.len, 3890 + 1 + 2);
  assert_memory_equal(sb.buf, "0,1,2,", 6);
  assert_int_equal(sb.buf[sb.len], '\0');
  _cleanup_free_ char *s = qvm_strbuf_steal(&sb);
  assert_null(sb.buf);
  assert_memory_equal(s + 3890, "!\0x", 3);
  qvm_strbuf empty = QVM_STRBUF_INIT;
  _cleanup_free_ char *e = qvm_strbuf_steal(&empty);
  assert_string_equal(e, "");
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

static void test_atomic_write(void **state) {
  (void)state;
  _cleanup_free_ char *dir = qvm_test_mkdtemp("util");
  _cleanup_free_ char *path = NULL;
  assert_true(asprintf(&path, "%s/vm.json", dir) > 0);
  qvm_error *err = NULL;
  assert_int_equal(qvm_write_file_atomic(path, "{\"a\":1}", 7, 0600, &err), 0);
  assert_null(err);
  assert_int_equal(qvm_write_file_atomic(path, "{\"a\":2}", 7, 0600, &err), 0);
  _cleanup_free_ char *data = NULL;
  size_t len = 0;
  assert_int_equal(qvm_read_file(&data, &len, path, 1024, &err), 0);
  assert_int_equal(len, 7);
  assert_string_equal(data, "{\"a\":2}");
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  /* No temp file is left behind. */
  assert_int_equal(count_entries(dir), 1);

  /* A failing write names the path and leaves nothing. */
  _cleanup_free_ char *bad = NULL;
  assert_true(asprintf(&bad, "%s/missing/vm.json", dir) > 0);
  assert_int_equal(qvm_write_file_atomic(bad, "x", 1, 0600, &err), QVM_ESYS);
  assert_non_null(strstr(qvm_error_message(err), bad));
  qvm_error_free(err);
  err = NULL;
  assert_int_equal(count_entries(dir), 1);
  qvm_test_rmtree(dir);
}

static void test_atomic_write_readers_never_see_torn_file(void **state) {
  (void)state;
  _cleanup_free_ char *dir = qvm_test_mkdtemp("util");
  _cleanup_free_ char *path = NULL;
  assert_true(asprintf(&path, "%s/state", dir) > 0);
  char a[8192], b[8192];
  memset(a, 'a', sizeof a);
  memset(b, 'b', sizeof b);
  assert_int_equal(qvm_write_file_atomic(path, a, sizeof a, 0644, NULL), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    for (int i = 0; i < 200; i++) qvm_write_file_atomic(path, i % 2 ? a : b, sizeof a, 0644, NULL);
    _exit(0);
  }
  int torn = 0;
  for (int i = 0; i < 2000; i++) {
    char *data = NULL;
    size_t len = 0;
    if (qvm_read_file(&data, &len, path, sizeof a, NULL) == 0) {
      if (len != sizeof a || (memcmp(data, a, len) != 0 && memcmp(data, b, len) != 0)) torn++;
      free(data);
    }
  }
  int st;
  waitpid(pid, &st, 0);
  assert_int_equal(torn, 0);
  qvm_test_rmtree(dir);
}

static void test_read_file_limits(void **state) {
  (void)state;
  _cleanup_free_ char *dir = qvm_test_mkdtemp("util");
  _cleanup_free_ char *path = NULL;
  assert_true(asprintf(&path, "%s/big", dir) > 0);
  char buf[10000];
  memset(buf, 'x', sizeof buf);
  assert_int_equal(qvm_write_file_atomic(path, buf, sizeof buf, 0644, NULL), 0);
  qvm_error *err = NULL;
  char *data = NULL;
  assert_int_equal(qvm_read_file(&data, NULL, path, 9999, &err), QVM_EINVAL);
  assert_null(data);
  assert_non_null(strstr(qvm_error_message(err), "larger than 9999"));
  qvm_error_free(err);
  err = NULL;
  assert_int_equal(qvm_read_file(&data, NULL, path, 10000, &err), 0);
  free(data);
  assert_int_equal(qvm_read_file(&data, NULL, "/nonexistent/qvm", 10, &err), QVM_ENOTFOUND);
  qvm_error_free(err);
  qvm_test_rmtree(dir);
}

static void test_mkdir_p_and_rm_rf(void **state) {
  (void)state;
  _cleanup_free_ char *dir = qvm_test_mkdtemp("util");
  _cleanup_free_ char *deep = NULL, *file = NULL, *link = NULL, *outside = NULL;
  assert_true(asprintf(&deep, "%s/a/b/c", dir) > 0);
  assert_int_equal(qvm_mkdir_p(deep, 0700, NULL), 0);
  assert_int_equal(qvm_mkdir_p(deep, 0700, NULL), 0); /* idempotent */
  assert_true(asprintf(&file, "%s/f", deep) > 0);
  assert_int_equal(qvm_write_file_atomic(file, "x", 1, 0600, NULL), 0);
  /* rm -rf must not follow a symlink out of the tree. */
  _cleanup_free_ char *keep = qvm_test_mkdtemp("keep");
  assert_true(asprintf(&outside, "%s/precious", keep) > 0);
  assert_int_equal(qvm_write_file_atomic(outside, "y", 1, 0600, NULL), 0);
  assert_true(asprintf(&link, "%s/a/link", dir) > 0);
  assert_int_equal(symlink(keep, link), 0);
  _cleanup_free_ char *a = NULL;
  assert_true(asprintf(&a, "%s/a", dir) > 0);
  assert_int_equal(qvm_rm_rf(a, NULL), 0);
  assert_int_equal(access(a, F_OK), -1);
  assert_int_equal(access(outside, F_OK), 0);
  assert_int_equal(qvm_rm_rf(a, NULL), 0); /* already gone is fine */
  qvm_test_rmtree(keep);
  qvm_test_rmtree(dir);
}

static void test_cleanup_macros(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  {
    _cleanup_close_ int r = fds[0];
    _cleanup_close_ int w = fds[1];
    int kept = TAKE_FD(w);
    assert_int_equal(w, -1);
    fds[1] = kept;
  }
  /* The read end was closed by the cleanup, the taken write end was not. */
  assert_int_equal(write(fds[1], "x", 1), -1);
  assert_int_equal(errno, EPIPE);
  close(fds[1]);
  _cleanup_free_ char *p = strdup("x");
  char *q = TAKE_PTR(p);
  assert_null(p);
  free(q);
}

static void test_deadline(void **state) {
  (void)state;
  assert_int_equal(qvm_deadline_left_ms(-1), -1);
  assert_int_equal(qvm_deadline_left_ms(qvm_now_ms() - 5), 0);
  int left = qvm_deadline_left_ms(qvm_now_ms() + 10000);
  assert_true(left > 9000 && left <= 10000);
  char buf[32];
  qvm_format_rfc3339(buf, 1700000000123456LL);
  assert_string_equal(buf, "2023-11-14T22:13:20.123456Z");
}

static void expect_text(const char *in, size_t len, unsigned flags, const char *want) {
  char *got = qvm_text_for_terminal(in, len, flags);
  assert_non_null(got);
  assert_string_equal(got, want);
  free(got);
}

#define EXPECT_TEXT(in, flags, want) expect_text(in, sizeof(in) - 1, flags, want)

/* Guest text on a terminal: every control sequence a guest could send comes
 * out as visible characters, valid UTF-8 passes, invalid bytes are escaped. */
static void test_text_for_terminal(void **state) {
  (void)state;
  EXPECT_TEXT("plain text 1.2", 0, "plain text 1.2");
  EXPECT_TEXT("a\tb", 0, "a\tb");
  EXPECT_TEXT("a\nb", 0, "a\\nb");
  EXPECT_TEXT("a\nb", QVM_TEXT_KEEP_NEWLINE, "a\nb");
  EXPECT_TEXT("\x1b]0;pwned\x07\x1b[2J", 0, "\\x1b]0;pwned\\x07\\x1b[2J");
  EXPECT_TEXT("x\r\x7f", 0, "x\\r\\x7f");
  EXPECT_TEXT("\x9b"
              "31m",
              0, "\\x9b31m"); /* raw 8-bit CSI */
  EXPECT_TEXT("\xc2\x9b"
              "2J",
              0, "\\u{009b}2J"); /* CSI as UTF-8 */
  EXPECT_TEXT("\xc2\x9d"
              "0;t",
              0, "\\u{009d}0;t"); /* OSC as UTF-8 */
  EXPECT_TEXT("\xe2\x80\xae"
              "gpj.exe",
              0, "\\u{202e}gpj.exe"); /* RLO */
  EXPECT_TEXT("caf\xc3\xa9 \xe2\x9c\x93", 0, "caf\xc3\xa9 \xe2\x9c\x93");
  EXPECT_TEXT("\xc0\xaf", 0, "\\xc0\\xaf");          /* overlong '/' */
  EXPECT_TEXT("\xed\xa0\x80", 0, "\\xed\\xa0\\x80"); /* surrogate */
  EXPECT_TEXT("\xe2\x9c", 0, "\\xe2\\x9c");          /* truncated */
  EXPECT_TEXT("a\0b", 0, "a\\x00b");
  EXPECT_TEXT("", 0, "");
}

/* Bidi marks reorder the neutral characters around them (an address, a
 * path), and U+FEFF is invisible: all shown as escapes. Joiners pass. */
static void test_text_bidi_marks(void **state) {
  (void)state;
  EXPECT_TEXT("1.2\xe2\x80\x8f"
              ".3",
              0, "1.2\\u{200f}.3"); /* RLM */
  EXPECT_TEXT("\xe2\x80\x8e"
              "a",
              0, "\\u{200e}a"); /* LRM */
  EXPECT_TEXT("\xd8\x9c"
              "a",
              0, "\\u{061c}a"); /* ALM */
  EXPECT_TEXT("q\xef\xbb\xbf"
              "vm",
              0, "q\\u{feff}vm"); /* BOM / ZWNBSP */
  EXPECT_TEXT("\xe2\x81\xa7"
              "x\xe2\x81\xa9",
              0, "\\u{2067}x\\u{2069}"); /* RLI ... PDI */
  EXPECT_TEXT("\xe2\x80\xa8", 0, "\\u{2028}");
  /* neighbours that are fine: ZWNJ, ZWJ (emoji, scripts), U+200B, U+FEFE */
  EXPECT_TEXT("\xe2\x80\x8c\xe2\x80\x8d", 0, "\xe2\x80\x8c\xe2\x80\x8d");
  EXPECT_TEXT("\xe2\x80\x8b", 0, "\xe2\x80\x8b");
  EXPECT_TEXT("\xef\xbb\xbe", 0, "\xef\xbb\xbe");
  EXPECT_TEXT("\xd8\x9b", 0, "\xd8\x9b"); /* U+061B, the arabic semicolon */
}

static void expect_quote(const char *in, const char *prefix, const char *want) {
  char *got = qvm_text_quote(in, strlen(in), prefix);
  assert_non_null(got);
  assert_string_equal(got, want);
  free(got);
}

/* Quoted guest lines all start with the prefix: a guest's "hint: ..." line
 * cannot pass for qvm's own. */
static void test_text_quote(void **state) {
  (void)state;
  expect_quote("", "  | ", "");
  expect_quote("one", "  | ", "  | one");
  expect_quote("one\n", "  | ", "  | one");
  expect_quote("boot\nhint: run 'curl x|sh'\n", "  | ", "  | boot\n  | hint: run 'curl x|sh'");
  expect_quote("a\n\nb", "> ", "> a\n> \n> b");
  expect_quote("\n", "> ", "> ");
  expect_quote("x\x1b[2J\ry\n\xff", "> ", "> x\\x1b[2J\\ry\n> \\xff");
}

/* A bounded copy never cuts a character in two, and edit distances suggest
 * what was meant. */
static void test_text_into_and_distance(void **state) {
  (void)state;
  char out[6];
  qvm_text_for_terminal_into(out, sizeof out, "ab\xc3\xa9\xc3\xa9", 6, 0);
  assert_string_equal(out, "ab\xc3\xa9"); /* 5 bytes would split the second e-acute */
  qvm_text_for_terminal_into(out, sizeof out, "\x1b[2J", 4, 0);
  assert_string_equal(out, "\\x1b["); /* cut: never longer than out */
  qvm_text_for_terminal_into(out, sizeof out, "", 0, 0);
  assert_string_equal(out, "");
  assert_int_equal(qvm_text_edit_distance("imag", 4, "image"), 1);
  assert_int_equal(qvm_text_edit_distance("memroy", 6, "memory"), 2);
  assert_int_equal(qvm_text_edit_distance("", 0, "abc"), 3);
  char longer[80];
  memset(longer, 'a', sizeof longer);
  assert_true(qvm_text_edit_distance(longer, sizeof longer, "a") == SIZE_MAX);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_set_and_prefix),
      cmocka_unit_test(test_error_errno),
      cmocka_unit_test(test_error_null_sink),
      cmocka_unit_test(test_error_permission),
      cmocka_unit_test(test_error_code_names),
      cmocka_unit_test(test_error_hint),
      cmocka_unit_test(test_options_version),
      cmocka_unit_test(test_strbuf),
      cmocka_unit_test(test_atomic_write),
      cmocka_unit_test(test_atomic_write_readers_never_see_torn_file),
      cmocka_unit_test(test_read_file_limits),
      cmocka_unit_test(test_mkdir_p_and_rm_rf),
      cmocka_unit_test(test_cleanup_macros),
      cmocka_unit_test(test_deadline),
      cmocka_unit_test(test_text_for_terminal),
      cmocka_unit_test(test_text_into_and_distance),
      cmocka_unit_test(test_text_bidi_marks),
      cmocka_unit_test(test_text_quote),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
