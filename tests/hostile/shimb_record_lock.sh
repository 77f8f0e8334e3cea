#!/usr/bin/env bash
# The shim and vm.json's lock (review findings on vm/shim.c and
# vm/record.c). 1: the shim removes its sockets before it records the exit
# (once vm.json says stopped, a new start may bind sockets of the same
# paths, which the old shim must not unlink): with vm.json's lock held by
# this test, so that the exit cannot be recorded yet, ctl.sock is already
# gone. 2: a process that holds vm.json's lock and never lets go (a qvm
# suspended mid-update) does not freeze the shim: its update gives up after
# 2 s, the exit record after 30 s (logged as a qvm-record-failed event), a
# kill's job still ends, and
# the next qvm command finds the VM not running (crashed: no exit recorded). The QEMU is shimb_mute_qemu.py.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
export QVM_QEMU_USER=root QVM_QEMU="$src/tests/hostile/shimb_mute_qemu.py"
qvm create rl --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0 \
  --memory 256M --net none >/dev/null || fail "create"
dir=$QVM_STATE_DIR/vms/rl
ctl=$QVM_RUNTIME_DIR/rl/ctl.sock
info() { qvm info --json rl | python3 -c "import json,sys; j=json.load(sys.stdin); print(j$1)"; }

# Holds vm.json's lock (flock on the VM's directory) for HOLD seconds (0:
# until ctl.sock is gone, so that the shim's 2 s wait for it is not used up;
# or until killed), sends kill on ctl.sock, and reports: "sock-gone S" when
# ctl.sock disappeared S seconds after the kill while the lock was held,
# "done S" when the kill job's done message came.
locked_kill() {
  python3 - "$dir" "$ctl" "$1" "${2:-kill}" <<'PY'
import fcntl, json, os, socket, sys, time
d, ctl, hold, cmd = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(ctl)
s.sendall(json.dumps({"id": 1, "cmd": cmd, "timeout_ms": 0} if cmd == "stop" else
                     {"id": 1, "cmd": cmd}).encode() + b"\n")
t0 = time.monotonic()
gone = False
buf = b""
s.settimeout(0.05)
while time.monotonic() - t0 < 60:
    if not gone and not os.path.exists(ctl):
        gone = True
        print("sock-gone %.1f" % (time.monotonic() - t0), flush=True)
    if fd >= 0 and (time.monotonic() - t0 >= hold if hold > 0 else gone):
        os.close(fd)  # the lock goes with it
        fd = -1
    try:
        data = s.recv(65536)
        if not data:
            break
        buf += data
    except socket.timeout:
        continue
    if b'"done":true' in buf:
        print("done %.1f" % (time.monotonic() - t0), flush=True)
        break
PY
}

# 1. the sockets go before the exit is recorded
out=$(timeout 120 "$qvm_bin" start rl 2>&1) || fail "start: $out"
res=$(locked_kill 0)
log "with vm.json locked until ctl.sock is gone: $(echo $res)"
[[ $res == *sock-gone* ]] || fail "ctl.sock was still there while the exit record waited for the lock"
[[ $res == *done* ]] || fail "the kill job did not end"
for _ in $(seq 50); do [[ $(info '["state"]') == stopped ]] && break; sleep 0.1; done
expect_eq "$(info '["state"]')" stopped "state after kill"
expect_eq "$(info '["last_exit"]["reason"]')" killed "the exit recorded once the lock was free"

# 2. a lock that is never let go: the shim gives up on the updates, goes on
# (a stop: the shim records "stopping" from its loop, then the exit)
out=$(timeout 120 "$qvm_bin" start rl 2>&1) || fail "second start: $out"
res=$(timeout 90 bash -c "$(declare -f locked_kill); dir='$dir' ctl='$ctl' locked_kill 1000 stop") ||
  true
log "with vm.json locked for good: $(echo $res)"
[[ $res == *done* ]] || fail "the shim froze on vm.json's lock: the stop job never ended"
grep -q '"event":"qvm-record-failed","data":{"update":"stopping"' "$dir/events.jsonl" ||
  fail "no qvm-record-failed event for the status update given up: $(grep record-failed "$dir/events.jsonl")"
grep -q '"event":"qvm-record-failed","data":{"update":"exit"' "$dir/events.jsonl" ||
  fail "no qvm-record-failed event for the exit record given up"
# the exit record was dropped: the next command reconciles vm.json with the
# processes (both gone, no exit recorded: crashed)
# (the shim exits within a second of done)
for _ in $(seq 100); do [[ $(info '["state"]') == crashed ]] && break; sleep 0.1; done
expect_eq "$(info '["state"]')" crashed "state after the stop (the next command reconciles)"
log "PASS"
