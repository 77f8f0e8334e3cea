#!/usr/bin/env python3
"""Library messages say the cause; hints that name a qvm flag or verb live in
tools/ (docs/ARCHITECTURE.md, "Build layout"). Fails if an error message set
in vm/ (qvm_error_set*, qvm_error_prefix, phase_failed, or a snprintf/asprintf
that builds one) quotes a command-line flag ("--force") or a qvm command
("'qvm start NAME'"). Commands of other programs a message may name on
purpose are allowed below."""
import pathlib
import re
import sys

CALLS = re.compile(r"\b(qvm_error_set(?:_errno|_code_errno)?|qvm_error_prefix|phase_failed|"
                   r"snprintf|asprintf)\s*\(")
LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
FLAG = re.compile(r"(?:^|[\s('])--[a-z]")
QVM_VERB = re.compile(r"'qvm [a-z]|\bqvm (?:start|stop|rm|restart|console|ssh|logs|info|up|down|"
                      r"create|kill|run|exec|ip)\b")
# Other programs' commands, named so an administrator can act whatever
# program uses libqvm.
ALLOWED = (re.compile(r"'useradd [^']*'"), re.compile(r"cloud-init status (?:--[a-z]+ ?)+"))


def call_args(text, start):
    """The text of a call's arguments, from just after its '('."""
    depth, i = 1, start
    while i < len(text) and depth:
        c = text[i]
        if c == '"':
            m = LITERAL.match(text, i)
            i = m.end() if m else i + 1
            continue
        depth += c == "("
        depth -= c == ")"
        i += 1
    return text[start:i]


def main(root):
    bad = []
    for path in sorted((root / "vm").glob("*.c")):
        text = path.read_text()
        for m in CALLS.finditer(text):
            message = "".join(LITERAL.findall(call_args(text, m.end())))
            for allowed in ALLOWED:
                message = allowed.sub("", message)
            if FLAG.search(message) or QVM_VERB.search(message):
                line = text.count("\n", 0, m.start()) + 1
                bad.append(f"{path.relative_to(root)}:{line}: {message[:100]}")
    for b in bad:
        print(f"hint in library message: {b}", file=sys.stderr)
    if bad:
        print("check-hints failed: move the hint to tools/qvm (a class + subject, "
              "qvm_error_set_hint)", file=sys.stderr)
        return 1
    print("hints ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(__file__).resolve().parent.parent))
