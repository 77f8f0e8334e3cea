#!/usr/bin/env bash
# The VM lock's holder note (review finding on vm/state.c): `qvm start`
# hands its lock to the shim, which holds it until QEMU's monitor answers.
# When start gives up first (--timeout), it must not wipe the note: the
# shim rewrote it as "start SHIMPID", and a waiter's error names that pid,
# not "another operation". The QEMU (shimb_mute_qemu.py, for
# a VM named silent...) never sends its QMP greeting, so the shim keeps
# the lock for its 30 s QMP timeout.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
export QVM_QEMU_USER=root QVM_QEMU="$src/tests/hostile/shimb_mute_qemu.py"
qvm create silentln --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0 \
  --memory 256M --net none >/dev/null || fail "create"
out=$(timeout 60 "$qvm_bin" start silentln --timeout 2 2>&1) && fail "start succeeded with a silent qemu"
log "start: $out"
shim=$(pgrep -f '^qvm-shim silentln$' | head -n 1)
[[ -n $shim ]] || fail "the shim is gone already: nothing holds the lock"
out=$(timeout 60 "$qvm_bin" kill silentln 2>&1) && fail "kill got the lock the shim holds"
log "kill while the shim holds the lock: $out"
[[ $out == *"'start' (pid $shim) holds the vm's lock"* ]] ||
  fail "the waiter's error does not name the shim (pid $shim): $out"
log "PASS"
