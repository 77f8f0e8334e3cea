#!/usr/bin/env bash
# qvm run under a service manager (issue 18): READY=1 (with MAINPID) on
# $NOTIFY_SOCKET once QEMU runs, STOPPING=1 when SIGTERM starts the stop,
# the exit status qvm run documents, nothing left running; a detached
# `qvm start` sends nothing there; the installed qvm@.service passes
# systemd-analyze verify.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
qvm create svc --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" \
  --append 'console=ttyS0 qvm.dhcp=0' --memory 256M --net none >/dev/null || fail "create"
sock=$tmp/notify.sock
python3 - "$sock" >"$tmp/notify.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
while True:
    try:
        msg = s.recv(4096).decode()
    except socket.timeout:
        break
    print(msg.replace("\n", "|"), flush=True)
    if "STOPPING=1" in msg:
        break
PY
listener=$!
for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.1; done
[[ -S $sock ]] || fail "the test's notify socket did not appear"

NOTIFY_SOCKET=$sock "$qvm_bin" run svc --timeout 3 >"$tmp/run.out" 2>&1 &
runner=$!
for _ in $(seq 600); do grep -q READY=1 "$tmp/notify.log" && break; sleep 0.1; done
grep -q "READY=1" "$tmp/notify.log" || fail "no READY=1 within 60 s: $(cat "$tmp/notify.log")"
grep -q "MAINPID=$runner" "$tmp/notify.log" || fail "READY=1 without MAINPID=$runner: $(cat "$tmp/notify.log")"
[[ $(qvm info svc --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])') == running ]] ||
  fail "READY=1 but the vm is not running"
log "READY=1 with MAINPID once QEMU runs"

kill -TERM "$runner"
set +e
wait "$runner"
rc=$?
set -e
wait "$listener" || true
grep -q "STOPPING=1" "$tmp/notify.log" || fail "no STOPPING=1 after SIGTERM: $(cat "$tmp/notify.log")"
# the mini guest may or may not honour the power button: 0 or 124, never another
[[ $rc -eq 0 || $rc -eq 124 ]] || fail "qvm run exited $rc after SIGTERM: $(cat "$tmp/run.out")"
[[ $(qvm info svc --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])') == stopped ]] ||
  fail "the vm is not stopped after qvm run exited"
pgrep -f "qvm-shim svc" >/dev/null && fail "a shim is left"
log "SIGTERM: STOPPING=1, exit $rc, vm stopped"

# a detached start (its shim's environment has no NOTIFY_SOCKET) says nothing
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); s.settimeout(8)
try: print("GOT", s.recv(4096).decode())
except socket.timeout: print("nothing")' "$tmp/notify2.sock" >"$tmp/notify2.log" 2>&1 &
l2=$!
sleep 0.5
NOTIFY_SOCKET=$tmp/notify2.sock qvm start svc >/dev/null || fail "start"
wait "$l2" || true
expect_eq "$(cat "$tmp/notify2.log")" "nothing" "a detached start's notifications"
qvm kill svc >/dev/null 2>&1 || true

unit=$QVM_BINARY_DIR/share/systemd/qvm@.service
[[ -s $unit ]] || fail "no generated qvm@.service"
grep -q "^ExecStart=/.*/qvm run %i" "$unit" || fail "qvm@.service's ExecStart: $(grep ExecStart "$unit")"
if command -v systemd-analyze >/dev/null; then
  # verify needs the ExecStart binary: a copy whose ExecStart is this build's qvm
  mkdir -p "$tmp/units"
  sed "s|^ExecStart=.*/qvm run|ExecStart=$QVM_BINARY_DIR/qvm run|" "$unit" >"$tmp/units/qvm@.service"
  out=$(systemd-analyze verify --man=no "$tmp/units/qvm@test.service" 2>&1) ||
    fail "systemd-analyze verify: $out"
  grep -i "qvm@" <<<"$out" && fail "systemd-analyze verify warns: $out"
  log "systemd-analyze verify qvm@.service: clean"
elif [[ ${CI:-} == true ]]; then
  fail "systemd-analyze is missing"
fi
log "ok"
