#!/usr/bin/env bash
# QEMU runs the guest; a guest that takes QEMU over reads QEMU's
# environment (/proc/self/environ). Whatever the caller's environment holds
# (tokens, keys), QEMU gets only PATH and qvm's own QVM_* settings: with
# `qvm start` (the exec'd qvm-shim) and with `qvm run` (the shim in the
# caller's own process).
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v qemu-system-x86_64 >/dev/null || skip "needs qemu-system-x86_64"
mini=$(mini_guest)

# QEMU is a wrapper that records its environment, then is the real QEMU.
wrapper=$tmp/wrapper-qemu.sh
cat >"$wrapper" <<EOT
#!/bin/sh
env >'$tmp/qemu-env'.\$\$
exec qemu-system-x86_64 "\$@"
EOT
chmod 755 "$wrapper"
export QVM_QEMU=$wrapper
export QVM_TEST_SECRET_LEAK=hunter2-in-the-environment

out=$(qvm create e --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" \
  --append 'console=ttyS0 qvm.dhcp=0' --memory 256M --net none --no-cloud-init 2>&1) ||
  fail "create: $out"

check_env() { # what
  local f n=0
  for f in "$tmp"/qemu-env.*; do
    [[ -f $f ]] || continue
    n=$((n + 1))
    ! grep -q hunter2 "$f" || fail "$1: QEMU got the caller's secret: $(grep hunter2 "$f")"
    grep -q "^PATH=" "$f" || fail "$1: QEMU got no PATH: $(cat "$f")"
    grep -q "^QVM_QEMU=$wrapper\$" "$f" || fail "$1: QEMU did not get qvm's QVM_QEMU"
  done
  ((n > 0)) || fail "$1: the wrapper never ran"
  rm -f "$tmp"/qemu-env.*
}

out=$(qvm start e 2>&1) || fail "start: $out"
check_env "qvm start"
qvm kill e >/dev/null || fail "kill"

# qvm run: the shim runs in this process, with this environment.
qvm run e >"$tmp/run.out" 2>&1 &
run_pid=$!
for _ in $(seq 300); do
  [[ $(qvm info --json e 2>/dev/null | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p') == running ]] && break
  kill -0 "$run_pid" 2>/dev/null || fail "qvm run exited: $(cat "$tmp/run.out")"
  sleep 0.1
done
check_env "qvm run"
qvm kill e >/dev/null || fail "kill of the run"
wait "$run_pid" || true
log "ok"
