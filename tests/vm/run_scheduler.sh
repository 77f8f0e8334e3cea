#!/usr/bin/env bash
# `qvm run` the way a scheduler runs a task (issue 18; Nomad raw_exec, a
# Kubernetes container, systemd): in the foreground, its own output on
# stdout/stderr, READY=1 on $NOTIFY_SOCKET once QEMU runs, SIGTERM -> a
# graceful stop and a documented exit status, and SIGKILL of `qvm run`
# itself -> no QEMU of the VM survives it for more than a few seconds, no
# tap is left, and the next qvm command says stopped or crashed (with a
# reason), never running. A bridged VM in a network namespace of its own,
# so that a tap left behind would show.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
make_netns
qvm create sched --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" \
  --append 'console=ttyS0 qvm.dhcp=0' --memory 256M --net bridge >/dev/null || fail "create"
info() { qvm info --json sched | python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
uuid=$(info 'j["uuid"]')
tap=qvm-${uuid:0:8}
qemu_of_vm() { pgrep -f "guest=sched," || true; }

# A notify socket, as the scheduler's supervisor (systemd) would listen on.
listen() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(90)
while True:
    try:
        msg = s.recv(4096).decode()
    except socket.timeout:
        break
    print(msg.replace("\n", "|"), flush=True)
    if "STOPPING=1" in msg:
        break
PY
}

# Starts `qvm run sched` as the scheduler would (nsenter execs qvm itself,
# so $! is qvm run) and waits for READY=1; sets runner.
run_until_ready() {
  local tag=$1 sock=$tmp/$1.sock
  listen "$sock" >"$tmp/$tag.notify" 2>&1 &
  listener=$!
  for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.1; done
  [[ -S $sock ]] || fail "$tag: the test's notify socket did not appear"
  NOTIFY_SOCKET=$sock nsenter --net="/run/netns/$netns" "$qvm_bin" run sched --timeout 30 \
    >"$tmp/$tag.out" 2>"$tmp/$tag.err" </dev/null &
  runner=$!
  for _ in $(seq 450); do grep -q READY=1 "$tmp/$tag.notify" && break; sleep 0.1; done
  grep -q "READY=1" "$tmp/$tag.notify" || fail "$tag: no READY=1 within 45 s: $(cat "$tmp/$tag.notify" "$tmp/$tag.err")"
  grep -q "MAINPID=$runner" "$tmp/$tag.notify" || fail "$tag: READY=1 without MAINPID=$runner"
  expect_eq "$(info 'j["state"]')" running "$tag: state once ready"
  [[ -n $(qemu_of_vm) ]] || fail "$tag: READY=1 but no qemu of the vm"
  in_ns test -e "/sys/class/net/$tap" || fail "$tag: no tap $tap while the vm runs (the tap check is broken)"
}

# 1. SIGTERM once the guest is up: it powers off, qvm run exits 0 with
# STOPPING=1 and an outcome line, and nothing is left.
run_until_ready term
serial=$QVM_STATE_DIR/vms/sched/serial.log
for _ in $(seq 600); do grep -q "qvm-mini: ready" "$serial" 2>/dev/null && break; sleep 0.1; done
grep -q "qvm-mini: ready" "$serial" || fail "the guest did not boot within 60 s"
kill -TERM "$runner"
set +e
wait "$runner"
rc=$?
set -e
wait "$listener" || true
grep -q "STOPPING=1" "$tmp/term.notify" || fail "no STOPPING=1 after SIGTERM"
# the booted mini guest honours the power button (qvm-mini: powerdown)
expect_eq "$rc" 0 "qvm run's exit status after SIGTERM ($(cat "$tmp/term.err"))"
grep -q "qvm-mini: powerdown" "$serial" || fail "the guest saw no power button"
# what the scheduler's log shows: the outcome, one line on qvm run's stderr
grep -q "^sched: ." "$tmp/term.err" ||
  fail "qvm run printed no outcome on stderr: out='$(cat "$tmp/term.out")' err='$(cat "$tmp/term.err")'"
expect_eq "$(info 'j["state"]')" stopped "state after SIGTERM"
[[ -z $(qemu_of_vm) ]] || fail "a qemu is left after SIGTERM"
in_ns test ! -e "/sys/class/net/$tap" || fail "tap $tap left after SIGTERM"
log "SIGTERM: exit $rc, STOPPING=1, stopped, nothing left"

# 2. SIGKILL of qvm run (a scheduler's kill_timeout ran out, an OOM kill):
# QEMU must not outlive its supervisor.
run_until_ready kill
kill -KILL "$runner"
wait "$runner" 2>/dev/null || true
kill "$listener" 2>/dev/null || true
for _ in $(seq 50); do [[ -z $(qemu_of_vm) ]] && break; sleep 0.1; done
left=$(qemu_of_vm)
[[ -z $left ]] || fail "qemu of the vm survived SIGKILL of qvm run by 5 s: $(ps -o pid,args -p "${left//$'\n'/,}")"
for _ in $(seq 30); do in_ns test ! -e "/sys/class/net/$tap" && break; sleep 0.1; done
in_ns test ! -e "/sys/class/net/$tap" || fail "tap $tap left after SIGKILL of qvm run"
state=$(info 'j["state"]')
case $state in
  stopped) ;;
  crashed) [[ -n $(info 'j["last_exit"]["reason"]') ]] || fail "crashed without a reason" ;;
  *) fail "state '$state' after SIGKILL of qvm run" ;;
esac
[[ -z $(qemu_of_vm) ]] || fail "the next qvm command brought a qemu of the vm back"
pgrep -f "qvm-shim sched" >/dev/null && fail "a shim of the vm is running"
[[ ! -e $QVM_RUNTIME_DIR/sched/ctl.sock ]] || fail "ctl.sock left behind"
log "SIGKILL of qvm run: no qemu, no tap, state $state"

# 3. the VM runs again after that, as a restarted task would
run_until_ready again
kill -TERM "$runner"
wait "$runner" || true
wait "$listener" || true
expect_eq "$(info 'j["state"]')" stopped "state after the rerun's SIGTERM"
log "ok"
