/* SPDX-License-Identifier: MIT */
#ifndef QVM_TOOLS_CLI_H
#define QVM_TOOLS_CLI_H

/*
 * Shared pieces of the qvm CLI. tools/ uses only the public API in
 * include/qvm/ (scripts/check-layering.sh enforces it).
 *
 * Each verb lives in its own file and exports one `qvm_cmd_<verb>` entry in
 * commands.h. A verb parses its own options (getopt_long), handles --help,
 * calls the library, prints, and returns an exit code from the table below.
 */
#include <stdbool.h>
#include <stdio.h>

#include <qvm/error.h>
#include <qvm/vm.h>

/* Exit codes, documented in docs/cli.md. `qvm run` and `qvm exec` instead exit
 * with the guest's / the remote command's status. */
enum {
  QVM_EXIT_OK = 0,
  QVM_EXIT_FAILURE = 1,  /* any other failure */
  QVM_EXIT_USAGE = 2,    /* bad command line */
  QVM_EXIT_NOTFOUND = 3, /* no such VM, image or file */
  QVM_EXIT_EXISTS = 4,   /* already exists, or spec conflict */
  QVM_EXIT_TIMEOUT = 5,  /* a bounded wait ran out */
  QVM_EXIT_BUSY = 6,     /* another operation holds the VM's lock */
  QVM_EXIT_QEMU = 7,     /* QEMU refused a command */
  QVM_EXIT_AUTH = 8,     /* SSH authentication or host-key check failed */
};

struct qvm_command {
  const char *name;
  const char *summary;               /* one line for `qvm --help` */
  int (*run)(int argc, char **argv); /* argv[0] is the verb */
};

/* Prints "qvm VERB: MESSAGE" to stderr, plus "hint: ..." when given, and
 * returns the exit code matching the error's code. Frees err. */
int qvm_cli_fail(const char *verb, qvm_error *err, const char *hint);
/* Same for a usage problem: prints the message and "try 'qvm VERB --help'". */
int qvm_cli_usage_error(const char *verb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A verb made of subcommands (`qvm image SUB`, `qvm snapshot SUB`): runs
 * the one argv[1] names with argv[1..]; none, --help/-h/help print usage;
 * an unknown one is a usage error naming it. */
int qvm_cli_dispatch(const char *verb, void (*usage)(FILE *f),
                     const struct qvm_command *const *subs, size_t n, int argc, char **argv);
int qvm_cli_exit_code(int qvm_code);
/* For getopt_long's '?' (unknown option) or ':' (missing value; the
 * optstring starts with ':'), with opterr = 0 so getopt prints nothing: one
 * message naming the option, and QVM_EXIT_USAGE. */
int qvm_cli_bad_option(const char *verb, int c, char *const *argv);
struct option;
/* getopt_long without its prefix matching, for every verb: a long option
 * matches only as --NAME or --NAME=VALUE, so "--imag" is not taken for
 * "--image" (nor for whatever a later option would make it mean). Anything
 * else is '?', which qvm_cli_bad_option reports with the option most likely
 * meant: "unknown option '--imag' (did you mean '--image'?)". */
int qvm_cli_getopt(int argc, char *const *argv, const char *optstring,
                   const struct option *longopts);
/* The hint for a verb that names a VM that does not exist (exit 3). */
#define QVM_CLI_HINT_NO_VM "see 'qvm ls' for the vms that exist"
/* QVM_CLI_HINT_NO_VM for QVM_ENOTFOUND from qvm_vm_open, else NULL. */
/* qvm_vm_open, then qvm_vm_reconcile: what every verb but ls works on (a
 * VM whose shim died gets a new one; one whose processes are all gone gets
 * its exit recorded). -1 with *err set, *out NULL, on failure. */
int qvm_cli_open(qvm_vm **out, const char *name, qvm_error **err);
const char *qvm_cli_vm_hint(const qvm_error *err);
/* After a stop: how the VM's run ended, when there is more to say than that
 * it stopped (e.g. "the guest did not power off within 60 s; qemu was
 * killed"), on stderr. */
void qvm_cli_print_exit(qvm_vm *vm);
/* A --timeout in whole seconds, min to 86400 (a day): 0, or the usage
 * error's exit code. */
int qvm_cli_parse_seconds(const char *verb, const char *s, int min, int *out);
/* The hint for the error's class (and subject), e.g. "VmRunning": "stop it
 * first, or use --force"; NULL if none. qvm_cli_fail() prints it when the
 * caller gives no hint of its own. A static buffer. */
const char *qvm_cli_error_hint(const qvm_error *err);
/* Prints a JSON string literal with escapes (for hand-built --json output).
 * The text is neutralized first (qvm_text_for_terminal, newlines kept), so the
 * output is valid UTF-8 JSON whatever bytes the guest put into it. */
void qvm_cli_json_string(FILE *f, const char *s);
struct json_object;
/* Neutralizes every string value in the tree in place (as above). */
void qvm_cli_json_neutralize(struct json_object *o);
/* Neutralizes, then prints the tree pretty, with a newline, to stdout. */
void qvm_cli_print_json(struct json_object *o);
/* qvm_vm_info() parsed with json-c (the caller's; json_object_put). */
int qvm_cli_vm_info(struct json_object **out, qvm_vm *vm, qvm_error **err);
/* The vm's warnings (qvm info's "warnings": no KVM, ...) on stderr. With
 * waiting, a TCG warning also says what it means for the wait ahead. */
void qvm_cli_print_warnings(qvm_vm *vm, bool waiting);

#endif
