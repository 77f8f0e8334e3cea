#!/usr/bin/env bash
# A stalled QEMU and pipelined qmp requests (review finding: one recv of
# ctl.sock can hold up to 64 KiB of request lines, and each qmp passthrough
# waits up to 5 s): a client that sends 50 qmp requests at once while QEMU's
# main loop does not answer must not keep the shim out of its loop for
# 50 x 5 s. The shim waits on QEMU for one qmp request per client per pass,
# answers `busy` to the next ones until QEMU sent the abandoned reply, and a
# `qvm kill` from another client completes well before the sum of the
# timeouts. The QEMU is shimb_mute_qemu.py (as root: nothing to drop).
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
export QVM_QEMU_USER=root QVM_QEMU="$src/tests/hostile/shimb_mute_qemu.py"
qvm create mq --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0 \
  --memory 256M --net none >/dev/null || fail "create"
info() { qvm info --json mq | python3 -c "import json,sys; j=json.load(sys.stdin); print(j$1)"; }
out=$(timeout 120 "$qvm_bin" start mq 2>&1) || fail "start: $out"
ctl=$QVM_RUNTIME_DIR/mq/ctl.sock
replies=$(mktemp)
# 50 qmp requests in one write; the first stalls QEMU for good.
python3 - "$ctl" "$replies" <<'PY' &
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"".join(json.dumps({"id": i, "cmd": "qmp", "command": "x-qvm-test-stall"}).encode()
                   + b"\n" for i in range(50)))
with open(sys.argv[2], "wb") as out:
    while True:
        d = s.recv(65536)
        if not d:
            break
        out.write(d)
        out.flush()
PY
client=$!
sleep 1 # the shim is now waiting on QEMU for the first request
t0=$(date +%s)
out=$(timeout 60 "$qvm_bin" kill mq 2>&1) || fail "kill while a client pipelines qmp requests to a stalled qemu: $out (after $(($(date +%s) - t0)) s)"
log "kill took $(($(date +%s) - t0)) s"
expect_eq "$(info '["state"]')" stopped "state after kill"
expect_eq "$(info '["last_exit"]["reason"]')" killed "last exit after kill"
wait "$client" || true
# the first request timed out, later ones were refused as busy (not 49 more waits)
python3 - "$replies" <<'PY' || fail "the pipelining client's replies: $(head -c 2000 "$replies")"
import json, sys
codes = [json.loads(l).get("error", {}).get("code") for l in open(sys.argv[1]) if '"id"' in l]
assert codes and codes[0] == "timeout", codes
assert "busy" in codes[1:], codes
PY
rm -f "$replies"
log "PASS"
