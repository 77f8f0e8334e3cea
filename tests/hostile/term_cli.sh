#!/usr/bin/env bash
# The guest is hostile: text it chose must never reach a shell or a terminal
# raw, and --json output stays valid UTF-8 JSON. No VM boots: a vm record is
# made to look running (a `sleep` stands in for QEMU, with its real pid,
# start time and boot id), and the files the guest influences are written as
# a hostile guest would make them: the DHCP_LEASE line in events.jsonl (the
# address the guest's DHCP client or agent claims) and serial.log.
set -euo pipefail
qvm=${QVM_BINARY_DIR:?QVM_BINARY_DIR is not set (run through ctest)}/qvm
name=term_cli
skip() {
  if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
    echo "$name: FAIL (a skip is a failure under CI=true): $*" >&2 && exit 1
  fi
  echo "$name: SKIP: $*" >&2 && exit 77
}
command -v python3 >/dev/null || skip "needs python3"
dir=$(mktemp -d "${TMPDIR:-/tmp}/qvm-hostile-term.XXXXXX")
qemu_pid=
cleanup() {
  [[ -n $qemu_pid ]] && kill "$qemu_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
export QVM_STATE_DIR=$dir/state QVM_RUNTIME_DIR=$dir/run
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
: >"$dir/kernel"
"$qvm" create hv --kernel "$dir/kernel" --net bridge >/dev/null
vmdir=$QVM_STATE_DIR/vms/hv

# The stand-in QEMU, recorded in vm.json as the running vm's.
sleep 3600 &
qemu_pid=$!
python3 - "$vmdir/vm.json" "$qemu_pid" <<'PY'
import json, sys, time
path, pid = sys.argv[1], int(sys.argv[2])
doc = json.load(open(path))
stat = open(f"/proc/{pid}/stat").read()
start = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22
boot = open("/proc/sys/kernel/random/boot_id").read().strip()
doc["runtime"] = {"status": "running", "started_at_us": int(time.time() * 1e6) - 10**6,
                  "qemu": {"pid": pid, "start_time": start, "boot_id": boot}}
json.dump(doc, open(path, "w"))
PY

# lease BYTES: the guest's claimed address (raw bytes; JSON escapes allowed), as
# the shim records it.
lease() {
  printf '{"event":"DHCP_LEASE","ip":"%s","mac":"0a:00:00:00:00:01","source":"qvm-dhcp",' "$1" \
    >"$vmdir/events.jsonl"
  printf '"at_us":%s}\n' "$(date +%s%6N)" >>"$vmdir/events.jsonl"
  # qvm ip reads the shim's lease.json (the event log is history): the same.
  cp "$vmdir/events.jsonl" "$vmdir/lease.json"
}

# strict_json FILE WHAT: FILE is UTF-8 and JSON; prints nothing.
strict_json() {
  python3 -c 'import json,sys; json.loads(open(sys.argv[1],"rb").read().decode("utf-8"))' "$1" \
    2>"$dir/json.err" || fail "$2 is not strict UTF-8 JSON: $(tail -n 1 "$dir/json.err")"
}

# no_controls FILE WHAT: no ESC, BEL, CSI (raw 9b or UTF-8 c2 9b), OSC (c2 9d),
# DEL, and valid UTF-8.
no_controls() {
  python3 - "$1" <<'PY' || fail "$2 carries control bytes or invalid UTF-8: $(od -c "$1" | head -5)"
import sys
b = open(sys.argv[1], "rb").read()
bad = [s for s in (b"\x1b", b"\x07", b"\x9b", b"\xc2\x9b", b"\xc2\x9d", b"\x7f") if s in b]
b.decode("utf-8")
sys.exit(1 if bad else 0)
PY
}

# --- control: an honest address reaches every printer ---------------------
lease 10.77.0.5
"$qvm" ip hv >"$dir/out" || fail "qvm ip with an honest lease failed"
[[ $(cat "$dir/out") == 10.77.0.5 ]] || fail "qvm ip: '$(cat "$dir/out")', not the lease"
"$qvm" ssh hv --print >"$dir/out" || fail "ssh --print with an honest lease failed"
grep -q "@10.77.0.5" "$dir/out" || fail "ssh --print names no 10.77.0.5: $(cat "$dir/out")"
"$qvm" ssh-config hv >"$dir/out" || fail "ssh-config with an honest lease failed"
grep -q "^  HostName 10.77.0.5$" "$dir/out" || fail "ssh-config: no HostName 10.77.0.5"

# --- A: an address that is a shell command --------------------------------
lease '$(id>p)'
mkdir "$dir/cwd"
(
  cd "$dir/cwd"
  ssh() { :; } # the payload runs when eval expands it; no ssh needed for that
  eval "$("$qvm" ssh hv --print 2>/dev/null) true"
) || true
[[ ! -e $dir/cwd/p ]] && [[ ! -e $dir/p ]] ||
  fail "eval \"\$(qvm ssh --print)\" ran the guest's address as a command"
"$qvm" ssh-config hv >"$dir/config" 2>"$dir/err" || true
python3 - "$dir/config" <<'PY' || fail "ssh-config carries the guest's address: $(cat "$dir/config")"
import ipaddress, re, sys
keys = {"HostName", "Port", "User", "IdentityFile", "IdentitiesOnly", "UserKnownHostsFile",
        "GlobalKnownHostsFile", "StrictHostKeyChecking", "HostKeyAlias"}
for line in open(sys.argv[1], "rb").read().decode("utf-8").splitlines():
    if not line or line.startswith("#"):
        continue
    m = re.fullmatch(r'(Host|  (\w+)) ("[^"\\]*"|[^\s"]+)', line)
    assert m and (m.group(1) == "Host" or m.group(2) in keys), line
    if m.group(2) == "HostName":
        ipaddress.ip_address(m.group(3))
PY

# --- B: an address with terminal control sequences -------------------------
lease '\u001b]0;pwn\u0007\u009b2J'
for cmd in "ip hv" "info hv" "ls" "ssh hv --print" "ssh-config hv"; do
  # shellcheck disable=SC2086
  "$qvm" $cmd >"$dir/out" 2>"$dir/err" || true
  no_controls "$dir/out" "qvm $cmd (stdout)"
  no_controls "$dir/err" "qvm $cmd (stderr)"
done
"$qvm" ip hv >"$dir/out" 2>/dev/null || true
[[ ! -s $dir/out ]] || grep -q 'pwn' "$dir/out" || fail "qvm ip printed something else"

# --- C: an address that is not UTF-8: --json stays valid -------------------
lease $'\xff\xfe\xc2\x9b1.2'
for cmd in "info hv --json" "ls --json" "ip hv --json"; do
  # shellcheck disable=SC2086
  "$qvm" $cmd >"$dir/out" 2>/dev/null || true
  strict_json "$dir/out" "qvm $cmd"
  no_controls "$dir/out" "qvm $cmd"
done
"$qvm" info hv --json >"$dir/out"
grep -q '"ip"' "$dir/out" || grep -q 'bridge' "$dir/out" || fail "info --json shows no network"

# --- D: serial.log with control sequences ---------------------------------
printf 'boot ok\r\n\033]0;pwned\007title\r\n\033[2Jclear \302\233csi \302\235osc \233raw \177del \377bad caf\303\251\r\n' \
  >"$vmdir/serial.log"
"$qvm" logs hv >"$dir/out" || fail "qvm logs failed"
no_controls "$dir/out" "qvm logs"
grep -q '^boot ok$' "$dir/out" || fail "qvm logs lost the plain text or its line ends"
grep -q 'café' "$dir/out" || fail "qvm logs mangled valid UTF-8"
"$qvm" logs hv --raw >"$dir/out" || fail "qvm logs --raw failed"
cmp -s "$dir/out" "$vmdir/serial.log" || fail "qvm logs --raw is not the log's bytes"

# -f: follows until "QEMU" exits; what arrives meanwhile is neutralized too,
# a UTF-8 sequence split between two writes included.
"$qvm" logs -f hv >"$dir/follow" 2>&1 &
logs_pid=$!
printf '\033[31mred \302' >>"$vmdir/serial.log"
printf '\2339 \303' >>"$vmdir/serial.log"
printf '\251\r\nend\r\n' >>"$vmdir/serial.log"
kill "$qemu_pid"
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
wait "$logs_pid" || fail "qvm logs -f failed: $(cat "$dir/follow")"
no_controls "$dir/follow" "qvm logs -f"
grep -q '^end$' "$dir/follow" || fail "qvm logs -f missed output: $(cat "$dir/follow")"
grep -q 'é$' "$dir/follow" || fail "qvm logs -f split a UTF-8 sequence: $(od -c "$dir/follow")"

if ((failures)); then
  echo "$name: $failures failure(s)" >&2
  exit 1
fi
echo "$name: ok"
