/* SPDX-License-Identifier: MIT */
#ifndef QVM_TEXT_H
#define QVM_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include <qvm/export.h>

/*
 * Neutralizing guest text for terminals and messages. Contract: pure
 * functions, safe from any thread; results are the caller's (free()), NULL
 * only when out of memory; nothing here fails otherwise.
 */

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Text that came from a guest (file names, serial output, agent replies,
 * cloud-init messages, signal names) is hostile: it may carry terminal
 * control sequences (ESC, CSI 0x9b, OSC, C1 controls encoded as UTF-8, DEL),
 * bidi overrides, or bytes that are not UTF-8. qvm_text_for_terminal()
 * returns a copy that is valid UTF-8 and safe to print on a terminal or to
 * put into a JSON string:
 *   - printable ASCII and valid, printable UTF-8 pass unchanged;
 *   - tab passes unchanged; newline passes only with QVM_TEXT_KEEP_NEWLINE
 *     (otherwise it becomes the two characters "\n"); CR becomes "\r";
 *   - other C0 controls, DEL and bytes that are not valid UTF-8 become
 *     "\xHH"; C1 controls (U+0080..U+009F), bidi marks, overrides and
 *     isolates (U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069),
 *     the line/paragraph separators U+2028, U+2029 and U+FEFF (BOM, zero
 *     width no-break space) become "\u{HHHH}".
 * A backslash itself passes unchanged, so the output is for people, not a
 * reversible encoding. The caller frees the result; NULL means out of memory.
 */
enum {
  QVM_TEXT_KEEP_NEWLINE = 1 << 0,
};

QVM_API char *qvm_text_for_terminal(const void *bytes, size_t len, unsigned flags);

/*
 * Guest text quoted inside a message of qvm's own (a serial tail, cloud-init's
 * output): neutralized as qvm_text_for_terminal(QVM_TEXT_KEEP_NEWLINE) does,
 * and every line starts with prefix (e.g. "  | "), so that no guest line can
 * pass for one of qvm's ("hint: ..."). A final newline ends the last line and
 * adds none; "" stays "". The caller frees the result; NULL means out of memory.
 */
QVM_API char *qvm_text_quote(const void *bytes, size_t len, const char *prefix);

/*
 * qvm_text_for_terminal() into a fixed buffer of size bytes (size > 0),
 * always NUL-terminated, cut at a character boundary when it does not fit;
 * "" when out of memory. For guest text kept in a struct (an address, a
 * signal name).
 */
QVM_API void qvm_text_for_terminal_into(char *out, size_t size, const void *bytes, size_t len,
                                        unsigned flags);

/* Whether bytes are well-formed UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF). NUL bytes are valid UTF-8: the caller that
 * cannot take them checks for them. */
QVM_API bool qvm_text_utf8_valid(const void *bytes, size_t len);

/*
 * The Levenshtein distance between a[0..la) and the string b, for "did you
 * mean" suggestions; SIZE_MAX when either is longer than 64 bytes.
 */
QVM_API size_t qvm_text_edit_distance(const char *a, size_t la, const char *b);

#ifdef __cplusplus
}
#endif
#endif
