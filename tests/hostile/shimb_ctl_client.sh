#!/usr/bin/env bash
# The lifecycle commands as ctl.sock clients (review findings on
# vm/shim_client.c): with every one of the shim's 16 client slots held,
# `qvm stop` fails at once with the shim's "busy" answer (it used to take
# that line for noise and wait out its whole timeout); with the shim
# SIGSTOPped and its listen backlog full, `qvm stop --timeout 1` fails with a
# timeout instead of blocking in connect() for ever (holding the VM's lock).
# The QEMU is shimb_mute_qemu.py (answers QMP; as root: nothing to drop).
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
export QVM_QEMU_USER=root QVM_QEMU="$src/tests/hostile/shimb_mute_qemu.py"
qvm create cc --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0 \
  --memory 256M --net none >/dev/null || fail "create"
info() { qvm info --json cc | python3 -c "import json,sys; j=json.load(sys.stdin); print(j$1)"; }
out=$(timeout 120 "$qvm_bin" start cc 2>&1) || fail "start: $out"
ctl=$QVM_RUNTIME_DIR/cc/ctl.sock
shim=$(info '["shim_pid"]' 2>/dev/null || true)
[[ $shim =~ ^[0-9]+$ ]] || shim=$(pgrep -f '^qvm-shim cc$' | head -n 1)
[[ -n $shim ]] || fail "no shim pid"
cleanup_hooks+=("kill -CONT $shim 2>/dev/null")

# Holds connections to ctl.sock: MODE "slots" takes the 16 client slots (each
# answered a status request), MODE "backlog" connects without blocking until
# the (stopped) shim's backlog refuses more. Writes "ready" then waits.
hold() {
  python3 - "$ctl" "$1" "$2" <<'PY' &
import os, socket, sys, time
path, mode, ready = sys.argv[1:]
held = []
if mode == "slots":
    for i in range(16):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(b'{"id":1,"cmd":"status"}\n')
        assert b'"ok":true' in s.recv(65536)
        held.append(s)
else:
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except BlockingIOError:
            break
        held.append(s)
open(ready, "w").write("ready %d\n" % len(held))
time.sleep(600)
PY
  holder=$!
  cleanup_hooks+=("kill $holder 2>/dev/null")
  for _ in $(seq 100); do [[ -s $2 ]] && break; sleep 0.1; done
  [[ -s $2 ]] || fail "the $1 holder did not get ready"
  log "$1 holder: $(cat "$2")"
}

# 1. every slot held: stop is refused "busy", promptly, naming the cause
hold slots "$tmp/slots"
t0=$(date +%s)
if out=$(timeout 60 "$qvm_bin" stop cc --timeout 20 2>&1); then fail "stop succeeded with no slot free"; fi
took=$(($(date +%s) - t0))
log "stop with every slot held: after $took s: $out"
[[ $out == *"too many clients"* ]] || fail "stop's error does not name the cause: $out"
expect_eq "$(info '["state"]')" running "state after the refused stop"
kill "$holder"
wait "$holder" 2>/dev/null || true

# 2. a stopped shim with a full backlog: stop times out, it does not hang
kill -STOP "$shim"
hold backlog "$tmp/backlog"
t0=$(date +%s)
out=$(timeout 90 "$qvm_bin" stop cc --timeout 1 2>&1) && fail "stop of a stopped shim succeeded"
rc=$?
took=$(($(date +%s) - t0))
log "stop of a stopped shim: rc $rc after $took s: $out"
((rc != 124)) || fail "stop of a stopped shim with a full backlog hung (killed after 90 s)"
[[ $out == *"in time"* ]] || fail "stop's error does not say it timed out: $out"
kill "$holder"
wait "$holder" 2>/dev/null || true
kill -CONT "$shim"

# the shim goes on: kill works
out=$(timeout 60 "$qvm_bin" kill cc 2>&1) || fail "kill after SIGCONT: $out"
expect_eq "$(info '["state"]')" stopped "state after kill"
log "PASS"
