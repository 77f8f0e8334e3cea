/* SPDX-License-Identifier: MIT */
/*
 * Provisioners: inline shell, uploaded script, file upload; in order, stop at
 * the first failure. Output goes live to the caller and into provision.log
 * under a header and footer per step (at most PROVISION_LOG_MAX of output
 * per run).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ssh/ssh_internal.h"
#include "util/time.h"

typedef struct provision {
  qvm_ssh *ssh;
  const qvm_ssh_provision_options *o;
  int log_fd;
  size_t index; /* 1-based */
  char name[256];
  size_t output, output_max; /* steps' output logged this run, and its cap */
} provision;

/* The guest decides how much its steps print: provision.log keeps at most
 * this much of it per run (the terminal still gets all of it).
 * QVM_PROVISION_LOG_MAX (bytes, at least 4096) overrides it. */
#define PROVISION_LOG_MAX ((size_t)16 << 20)

static size_t provision_log_max(void) {
  const char *v = getenv("QVM_PROVISION_LOG_MAX");
  if (!v || !*v) return PROVISION_LOG_MAX;
  char *end = NULL;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  return !errno && !*end && n >= 4096 && n <= (1ull << 40) ? (size_t)n : PROVISION_LOG_MAX;
}

static void log_write(provision *pv, const void *data, size_t len) {
  if (pv->log_fd < 0) return;
  ssize_t n = write(pv->log_fd, data, len);
  (void)n; /* the log is a record; a full disk must not fail provisioning */
}

static void log_printf(provision *pv, const char *fmt, ...) QVM_PRINTF(2, 3);
static void log_printf(provision *pv, const char *fmt, ...) {
  char when[32], *text = NULL, *line = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&text, fmt, ap);
  va_end(ap);
  qvm_format_rfc3339(when, qvm_realtime_us());
  if (n >= 0 && asprintf(&line, "==> %s %s\n", when, text) >= 0) log_write(pv, line, strlen(line));
  free(text);
  free(line);
}

/* Up to the cap, then one line that says so. */
static void log_output(provision *pv, const void *data, size_t len) {
  if (pv->output > pv->output_max) return;
  size_t room = pv->output_max - pv->output;
  log_write(pv, data, len <= room ? len : room);
  pv->output += len <= room ? len : room + 1; /* past the cap only when cut */
  if (pv->output <= pv->output_max) return;
  char line[128];
  int n = snprintf(line, sizeof line, "\n[qvm: provision.log truncated: output over %zu bytes]\n",
                   pv->output_max);
  log_write(pv, line, (size_t)n);
}

static int on_step_output(void *ctx, int stream, const void *data, size_t len) {
  provision *pv = ctx;
  log_output(pv, data, len);
  return pv->o->on_output ? pv->o->on_output(pv->o->ctx, stream, data, len) : 0;
}

static const char *kind_name(qvm_ssh_step_kind kind) {
  switch (kind) {
  case QVM_SSH_STEP_INLINE: return "inline";
  case QVM_SSH_STEP_SCRIPT: return "script";
  case QVM_SSH_STEP_FILE: return "file";
  }
  return "?";
}

static int run_command(provision *pv, int *out_exit, const char *command, qvm_error **err) {
  qvm_ssh_exec_options eo = QVM_SSH_EXEC_OPTIONS_INIT;
  qvm_ssh_exec_result res = {0};
  eo.command = command;
  eo.on_output = on_step_output;
  eo.ctx = pv;
  eo.timeout_ms = pv->o->step_timeout_ms;
  eo.audit_log = pv->o->audit_log;
  int r = qvm_ssh_exec(&res, pv->ssh, &eo, err);
  if (r < 0) return r;
  *out_exit = res.exit_code;
  return 0;
}

/* "sh -c '<text>'", under "sudo -n" if asked. */
static char *wrap_shell(const char *text, bool sudo) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  qvm_strbuf_puts(&sb, sudo ? "sudo -n sh -c " : "sh -c ");
  ssh_shell_quote(&sb, text);
  return qvm_strbuf_steal(&sb);
}

static int step_inline(provision *pv, const qvm_ssh_step *s, int *out_exit, qvm_error **err) {
  if (!s->inline_text) return qvm_error_set(err, QVM_EINVAL, "inline step has no text");
  _cleanup_free_ char *cmd = wrap_shell(s->inline_text, s->sudo);
  if (!cmd) return qvm_error_set(err, QVM_ESYS, "out of memory");
  return run_command(pv, out_exit, cmd, err);
}

/* Runs a housekeeping command; a non-zero exit is an error naming what. */
static int run_quiet(provision *pv, const char *command, const char *what, qvm_error **err) {
  int exit_code = 0;
  int r = run_command(pv, &exit_code, command, err);
  if (r < 0 || exit_code == 0) return r;
  return qvm_error_set(err, QVM_EGUEST, "cannot %s in the guest (exit code %d)", what, exit_code);
}

/* The name is predictable (/tmp/qvm-provision-<n>.sh), so whatever sits there
 * (a stale file, another user's symlink) is removed before the upload, which
 * then creates a fresh file; it is removed again after the step, pass or
 * fail. */
static int step_script(provision *pv, const qvm_ssh_step *s, int *out_exit, qvm_error **err) {
  _cleanup_free_ char *remote = NULL, *clean = NULL, *cmd = NULL, *what = NULL;
  qvm_ssh_copy_options co = QVM_SSH_COPY_OPTIONS_INIT;
  if (!s->source) return qvm_error_set(err, QVM_EINVAL, "script step has no source");
  if (asprintf(&remote, "/tmp/qvm-provision-%zu.sh", pv->index) < 0 ||
      asprintf(&clean, "rm -f %s && ! test -e %s && ! test -L %s", remote, remote, remote) < 0 ||
      asprintf(&cmd, "chmod 0755 %s && %s%s", remote, s->sudo ? "sudo -n " : "", remote) < 0 ||
      asprintf(&what, "remove a stale '%s'", remote) < 0)
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  co.recursive = false;
  co.preserve = false;
  int r = run_quiet(pv, clean, what, err);
  if (r >= 0) r = qvm_ssh_upload(pv->ssh, s->source, remote, &co, err);
  if (r >= 0) r = run_command(pv, out_exit, cmd, err);
  /* Pass or fail; a failure to clean up must not hide the step's outcome. */
  if (r >= 0 && *out_exit == 0)
    r = run_quiet(pv, clean, "remove the uploaded script", err);
  else
    (void)run_quiet(pv, clean, "remove the uploaded script", NULL);
  return r;
}

/* As root: stage under /tmp as the login user, then move into place with
 * cp semantics (into dest/<base> if dest is a directory), owned by root. */
#define SUDO_INSTALL                                                                               \
  "set -e; t=\"$2\"; [ -d \"$t\" ] && t=\"$t/$3\"; chown -R 0:0 \"$1\"; mv -f \"$1\" \"$t\""

static char *sudo_install_command(const char *staging, const char *destination,
                                  const char *source) {
  qvm_strbuf sb = QVM_STRBUF_INIT;
  const char *base = strrchr(source, '/');
  qvm_strbuf_puts(&sb, "sudo -n sh -c ");
  ssh_shell_quote(&sb, SUDO_INSTALL);
  qvm_strbuf_puts(&sb, " qvm-provision ");
  ssh_shell_quote(&sb, staging);
  qvm_strbuf_putc(&sb, ' ');
  ssh_shell_quote(&sb, destination);
  qvm_strbuf_putc(&sb, ' ');
  ssh_shell_quote(&sb, base && base[1] ? base + 1 : source);
  return qvm_strbuf_steal(&sb);
}

static int step_file(provision *pv, const qvm_ssh_step *s, int *out_exit, qvm_error **err) {
  _cleanup_free_ char *staging = NULL, *clean = NULL, *install = NULL;
  if (!s->source || !s->destination)
    return qvm_error_set(err, QVM_EINVAL, "file step needs a source and a destination");
  *out_exit = 0;
  if (!s->sudo) return qvm_ssh_upload(pv->ssh, s->source, s->destination, NULL, err);
  if (asprintf(&staging, "/tmp/qvm-provision-%zu.file", pv->index) < 0 ||
      asprintf(&clean, "rm -rf %s", staging) < 0)
    return qvm_error_set(err, QVM_ESYS, "out of memory");
  int r = run_command(pv, out_exit, clean, err);
  if (r >= 0 && *out_exit == 0) r = qvm_ssh_upload(pv->ssh, s->source, staging, NULL, err);
  if (r < 0 || *out_exit != 0) return r;
  install = sudo_install_command(staging, s->destination, s->source);
  if (!install) return qvm_error_set(err, QVM_ESYS, "out of memory");
  return run_command(pv, out_exit, install, err);
}

static int run_step(provision *pv, const qvm_ssh_step *s, qvm_error **err) {
  int exit_code = 0, r;
  int64_t started = qvm_now_ms();
  log_printf(pv, "step %zu/%zu %s (%s%s)", pv->index, pv->o->n_steps, pv->name, kind_name(s->kind),
             s->sudo ? ", sudo" : "");
  switch (s->kind) {
  case QVM_SSH_STEP_INLINE: r = step_inline(pv, s, &exit_code, err); break;
  case QVM_SSH_STEP_SCRIPT: r = step_script(pv, s, &exit_code, err); break;
  case QVM_SSH_STEP_FILE: r = step_file(pv, s, &exit_code, err); break;
  default: r = qvm_error_set(err, QVM_EINVAL, "step kind %d is unknown", (int)s->kind);
  }
  int64_t ms = qvm_now_ms() - started;
  if (r < 0) {
    log_printf(pv, "step %zu %s failed: %s (%lld ms)", pv->index, pv->name,
               err && *err ? qvm_error_message(*err) : qvm_error_code_name(r), (long long)ms);
    return qvm_error_prefix(err, "provisioning step %zu '%s' failed", pv->index, pv->name);
  }
  log_printf(pv, "step %zu %s exited %d (%lld ms)", pv->index, pv->name, exit_code, (long long)ms);
  if (exit_code == 0) return 0;
  r = qvm_error_set(err, QVM_EGUEST, "provisioning step %zu '%s' exited with code %d", pv->index,
                    pv->name, exit_code);
  if (err && *err) qvm_error_set_class(*err, "StepFailed");
  return r;
}

int qvm_ssh_provision(size_t *out_failed, qvm_ssh *ssh, const qvm_ssh_provision_options *opts,
                      qvm_error **err) {
  provision pv = {.ssh = ssh, .o = opts, .log_fd = -1, .output_max = provision_log_max()};
  if (out_failed) *out_failed = 0;
  int r =
      QVM_OPTIONS_CHECK(opts, qvm_ssh_provision_options, QVM_SSH_PROVISION_OPTIONS_VERSION, err);
  if (r < 0) return r;
  if (opts->log_path) {
    /* 0600, and an older, looser log is tightened: it holds what the steps
     * printed, which may be secrets. */
    pv.log_fd = open(opts->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (pv.log_fd < 0 || fchmod(pv.log_fd, 0600) < 0) {
      r = qvm_error_set_errno(err, errno, "cannot open provision log '%s'", opts->log_path);
      if (pv.log_fd >= 0) close(pv.log_fd);
      return r;
    }
  }
  for (size_t i = 0; i < opts->n_steps && r >= 0; i++) {
    pv.index = i + 1;
    if (opts->steps[i].name)
      snprintf(pv.name, sizeof(pv.name), "%s", opts->steps[i].name);
    else
      snprintf(pv.name, sizeof(pv.name), "step %zu", i + 1);
    r = run_step(&pv, &opts->steps[i], err);
    if (r < 0 && out_failed) *out_failed = i + 1;
  }
  if (r >= 0) log_printf(&pv, "provisioning done: %zu steps", opts->n_steps);
  if (pv.log_fd >= 0) close(pv.log_fd);
  return r;
}
