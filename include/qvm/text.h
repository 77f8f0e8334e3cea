/* SPDX-License-Identifier: MIT */
#ifndef QVM_TEXT_H
#define QVM_TEXT_H

#include <stddef.h>

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
 *     "\xHH"; C1 controls (U+0080..U+009F) and bidi/isolate overrides
 *     (U+202A..U+202E, U+2066..U+2069) become "\u{HHHH}".
 * A backslash itself passes unchanged, so the output is for people, not a
 * reversible encoding. The caller frees the result; NULL means out of memory.
 */
enum {
  QVM_TEXT_KEEP_NEWLINE = 1 << 0,
};

char *qvm_text_for_terminal(const void *bytes, size_t len, unsigned flags);

#ifdef __cplusplus
}
#endif
#endif
