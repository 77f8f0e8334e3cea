#!/usr/bin/env bash
# The guest is hostile: text it chose must never reach a shell or a terminal
# raw, and --json output stays valid UTF-8 JSON. No VM boots: a vm record is
# made to look running (a `sleep` stands in for QEMU, with its real pid,
# start time and boot id), and the files the guest influences are written as
# a hostile guest would make them: the lease (lease.json and the DHCP_LEASE
# line in events.jsonl: the address the guest's DHCP client claims) and
# serial.log. A hostile address is refused where it comes in (qvm ip, ssh
# --print, ssh-config, info, ls): nothing prints it, nothing runs it. The
# printers' own defences against such values are tested below that
# (term_openssh: ssh --print and ssh-config; util: the neutralizer).
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

# The checks that need a parser are queued (check KIND FILE WHAT keeps a
# copy of FILE) and made by one python3 at the end: a python3 start costs
# more than all of qvm's commands here on a loaded machine. Kinds:
#   controls  no ESC, BEL, CSI (raw 9b or UTF-8 c2 9b), OSC (c2 9d), DEL;
#             valid UTF-8
#   json      strict UTF-8 JSON
#   noip      JSON with an "error" and no "ip"
#   netip     JSON (one vm or a list): a bridged network whose "ip", if
#             any, is an IP address
mkdir "$dir/checks"
n_checks=0
check() {
  n_checks=$((n_checks + 1))
  cp "$2" "$dir/checks/$n_checks"
  printf '%s\t%s\t%s\n' "$1" "$n_checks" "$3" >>"$dir/checks/list"
}
run_checks() {
  [[ -e $dir/checks/list ]] || return 0
  python3 - "$dir/checks" <<'PY' || failures=$((failures + 1))
import ipaddress, json, sys
base, bad = sys.argv[1], 0
for line in open(f"{base}/list", encoding="utf-8", errors="backslashreplace"):
    kind, n, what = line.rstrip("\n").split("\t", 2)
    b = open(f"{base}/{n}", "rb").read()
    try:
        text = b.decode("utf-8")
        if kind == "controls":
            hits = [s for s in (b"\x1b", b"\x07", b"\x9b", b"\xc2\x9d", b"\x7f") if s in b]
            assert not hits, f"carries control bytes {hits}"
        else:
            j = json.loads(text)
        if kind == "noip":
            assert "error" in j and "ip" not in j, "printed an address"
        if kind == "netip":
            for vm in j if isinstance(j, list) else [j]:
                net = vm["network"]
                assert net.get("mode") == "bridge", net
                assert "ip" not in net or ipaddress.ip_address(net["ip"]), net
    except Exception as e:
        print(f"FAIL: {what} ({kind}): {e!r}: {b[:300]!r}", file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
PY
}

# refused WHAT: the last command (its exit code in $rc, its output in
# $dir/out and $dir/err) refused the guest's address: it failed as "no
# address" (exit 5, nothing waited for: --wait 0), printed nothing on stdout
# (or, with --json, a strict UTF-8 JSON error without the address), and its
# message carries no control bytes.
refused() {
  [[ $rc -eq 5 ]] || fail "$1: exit $rc, not 5 (no address): $(cat -v "$dir/out" "$dir/err")"
  if [[ $1 == *--json* ]]; then
    check noip "$dir/out" "$1"
  else
    [[ ! -s $dir/out ]] || fail "$1 printed the guest's address: $(cat -v "$dir/out")"
  fi
  check controls "$dir/out" "$1 (stdout)"
  check controls "$dir/err" "$1 (stderr)"
}

# run CMD...: runs qvm CMD, its exit code in $rc.
run() {
  rc=0
  "$qvm" "$@" >"$dir/out" 2>"$dir/err" || rc=$?
}

# --- control: an honest address reaches every printer ---------------------
lease 10.77.0.5
run ip hv
[[ $rc -eq 0 && $(cat "$dir/out") == 10.77.0.5 ]] ||
  fail "qvm ip with an honest lease: exit $rc, '$(cat "$dir/out" "$dir/err")'"
run ip hv --json
[[ $rc -eq 0 ]] && grep -q '"ip":"10.77.0.5"' "$dir/out" || fail "qvm ip --json: $(cat "$dir/out")"
run ssh hv --print --wait 0
[[ $rc -eq 0 ]] && grep -q "@10.77.0.5" "$dir/out" ||
  fail "ssh --print with an honest lease: exit $rc, $(cat "$dir/out" "$dir/err")"
run ssh-config --wait 0 hv
[[ $rc -eq 0 ]] && grep -q "^  HostName 10.77.0.5$" "$dir/out" ||
  fail "ssh-config with an honest lease: exit $rc, $(cat "$dir/out" "$dir/err")"
run info hv --json
grep -q '"ip": *"10.77.0.5"' "$dir/out" || fail "info --json shows no ip 10.77.0.5: $(cat "$dir/out")"
check netip "$dir/out" "control: qvm info --json"

# --- hostile addresses: refused where they come in, quickly ---------------
# A shell command, terminal control sequences (JSON escapes and raw bytes),
# bytes that are not UTF-8, and an address with something after it.
hostile=('$(id>p)' '`id>p`;id>p' '\u001b]0;pwn\u0007\u009b2J' $'\x1b[2J\xc2\x9b\x07'
  $'\xff\xfe\xc2\x9b1.2' '10.77.0.5\n\u001b[2Jhint: run this' '10.77.0.5 -oProxyCommand=id>p'
  '10.77.0.5\u202e' 'fe80::1%eth0')
mkdir "$dir/cwd"
for h in "${hostile[@]}"; do
  lease "$h"
  what="lease '$(printf %q "$h")'"
  run ip hv
  refused "$what: qvm ip"
  run ip hv --json
  refused "$what: qvm ip --json"
  run ssh hv --print --wait 0
  refused "$what: qvm ssh --print"
  run ssh-config --wait 0 hv
  refused "$what: qvm ssh-config"
  # what a script does with --print: the payload would run when eval expands it
  (
    cd "$dir/cwd"
    ssh() { :; }
    eval "$("$qvm" ssh hv --print --wait 0 2>/dev/null) true"
  ) || true
  [[ ! -e $dir/cwd/p && ! -e $dir/p ]] || fail "$what: eval of ssh --print ran the guest's command"
  rm -f "$dir/cwd/p" "$dir/p"
  for cmd in "info hv" "ls"; do
    # shellcheck disable=SC2086
    run $cmd
    check controls "$dir/out" "$what: qvm $cmd (stdout)"
    check controls "$dir/err" "$what: qvm $cmd (stderr)"
    grep -q "pwn\|id>p\|hint: run" "$dir/out" && fail "$what: qvm $cmd shows the address"
    # shellcheck disable=SC2086
    run $cmd --json
    check netip "$dir/out" "$what: qvm $cmd --json"
    check controls "$dir/out" "$what: qvm $cmd --json"
  done
done

# --- serial.log with control sequences and line ends -----------------------
# Line ends are LF with any CRs before it (CR LF, CR CR LF: folded, as in
# up's serial tail); a CR inside a line is shown as "\r".
printf 'boot ok\r\n\033]0;pwned\007title\r\n\033[2Jclear \302\233csi \302\235osc \233raw \177del \377bad caf\303\251\r\ntwo crs\r\r\nmid\rline\r\n\342\200\217rlm \357\273\277bom\r\n' \
  >"$vmdir/serial.log"
"$qvm" logs hv >"$dir/out" || fail "qvm logs failed"
check controls "$dir/out" "qvm logs"
grep -q '^boot ok$' "$dir/out" || fail "qvm logs lost the plain text or its line ends"
grep -q 'café' "$dir/out" || fail "qvm logs mangled valid UTF-8"
grep -q '^two crs$' "$dir/out" || fail "qvm logs did not fold CR CR LF: $(cat -v "$dir/out")"
grep -qF 'mid\rline' "$dir/out" || fail "qvm logs hid a CR inside a line: $(cat -v "$dir/out")"
grep -qF '\u{200f}rlm \u{feff}bom' "$dir/out" || fail "qvm logs passed bidi marks: $(cat -v "$dir/out")"
"$qvm" logs hv --raw >"$dir/out" || fail "qvm logs --raw failed"
cmp -s "$dir/out" "$vmdir/serial.log" || fail "qvm logs --raw is not the log's bytes"

# -f: follows until "QEMU" exits; what arrives meanwhile is neutralized too,
# a UTF-8 sequence and a line end's CRs split between writes included.
"$qvm" logs -f hv >"$dir/follow" 2>&1 &
logs_pid=$!
printf '\033[31mred \302' >>"$vmdir/serial.log"
printf '\2339 \303' >>"$vmdir/serial.log"
printf '\251\r' >>"$vmdir/serial.log"
printf '\r' >>"$vmdir/serial.log"
printf '\nend\r\n' >>"$vmdir/serial.log"
kill "$qemu_pid"
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
wait "$logs_pid" || fail "qvm logs -f failed: $(cat "$dir/follow")"
check controls "$dir/follow" "qvm logs -f"
grep -q '^end$' "$dir/follow" || fail "qvm logs -f missed output: $(cat "$dir/follow")"
grep -q '^.*red .*9 é$' "$dir/follow" || fail "qvm logs -f split a UTF-8 sequence or showed a line end's CRs: $(od -c "$dir/follow")"
[[ $(grep -oF '\r' "$dir/follow" | wc -l) -eq 1 ]] ||
  fail "qvm logs -f shows other CRs than mid-line's: $(cat -v "$dir/follow")"

run_checks
if ((failures)); then
  echo "$name: $failures failure(s)" >&2
  exit 1
fi
echo "$name: ok"
