#!/usr/bin/env bash
# Logs a guest (or a QEMU it took over) grows on the host (review findings
# 3, 5, 6):
# 1. A compromised QEMU clears O_APPEND on its serial.log or qemu.log fd and
#    writes one byte at a 1 GiB offset (simulated by a local process doing
#    the same on the file). The shim rotates each: NAME.1 holds at most the
#    cap (the last bytes, a hole skipped), not a dense GiB of zeros.
# 2. qemu.log is QEMU's stderr with O_APPEND (so that it can be truncated).
# 3. provision.log keeps at most the cap of a run's output, then one line
#    that says so; the terminal still gets all of it.
# 4. Without inotify (QVM_TEST_NO_INOTIFY=1 stands for fs.inotify limits used
#    up) the shim records that it polls and serial.log stays bounded.
# The caps are lowered (QVM_*_LOG_MAX) so that the test is quick; the
# mechanism is the one the defaults use.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
cap=65536
limit=$((cap + 65536)) # the guest may write a little before the shim looks
export QVM_SERIAL_LOG_MAX=$cap QVM_QEMU_LOG_MAX=$cap QVM_PROVISION_LOG_MAX=$cap
printed=300000
out=$(qvm up sb --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0' \
  --memory 256M --user root --no-wait-cloud-init --timeout 180 \
  --provision "shell:head -c $printed /dev/zero | tr '\\0' y; echo" 2>"$tmp/up.err") ||
  fail "up: $out $(cat "$tmp/up.err")"
dir=$QVM_STATE_DIR/vms/sb
info() { qvm info --json sb | python3 -c "import json,sys; j=json.load(sys.stdin); print(j$1)"; }

# 3. provision.log
got=$(cat - "$tmp/up.err" <<<"$out" | tr -cd y | wc -c)
((got >= printed)) || fail "the terminal got $got of the $printed bytes the step printed"
plog=$(stat -c %s "$dir/provision.log")
log "provision: $got bytes on the terminal, provision.log $plog bytes (cap $cap)"
((plog <= cap + 4096)) || fail "provision.log grew to $plog bytes (cap $cap)"
grep -q "^\[qvm: provision.log truncated: output over $cap bytes\]$" "$dir/provision.log" ||
  fail "provision.log does not say it was truncated"
grep -q '^==> .* step 1 .* exited 0 ' "$dir/provision.log" || fail "provision.log lost the footer"

# 2. qemu.log is opened with O_APPEND (QEMU's fd 2).
qpid=$(info '["pid"]')
flags=$(sed -n 's/^flags:[[:space:]]*//p' "/proc/$qpid/fdinfo/2")
expect_eq "$(readlink "/proc/$qpid/fd/2")" "$dir/qemu.log" "qemu's stderr"
((8#$flags & 8#2000)) || fail "qemu.log is not O_APPEND for qemu (flags $flags)"

# 1. One byte at 1 GiB in each log, as a QEMU without O_APPEND would write.
sparse_write() {
  python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY); os.pwrite(fd, b"!", 1 << 30)' "$1"
}
wait_rotated() { # FILE: until it is back under 1 GiB (seconds)
  for _ in $(seq "$2"); do
    (($(stat -c %s "$1") < (1 << 30))) && return 0
    sleep 0.1
  done
  fail "$(basename "$1") was not rotated: $(stat -c %s "$1") bytes"
}
for f in serial.log qemu.log; do
  sparse_write "$dir/$f"
  wait_rotated "$dir/$f" 600
  s0=$(stat -c %s "$dir/$f")
  s1=$(stat -c %s "$dir/$f.1" 2>/dev/null || echo 0)
  log "$f after a write at 1 GiB: $s0 bytes, $f.1 $s1 bytes (cap $cap)"
  ((s0 <= limit)) || fail "$f is $s0 bytes (cap $cap)"
  ((s1 <= cap)) || fail "$f.1 is $s1 bytes (cap $cap): more than the log's last $cap bytes"
  [[ -f $dir/$f.1 ]] || fail "no $f.1"
  [[ $(tail -c 1 "$dir/$f.1") == '!' ]] || fail "$f.1 does not end with the last byte written"
done
qvm exec sb -- sh -c 'echo qvm-after-sparse >/dev/ttyS0' || fail "exec"
# (a rotation may have moved it to serial.log.1 by the time it is looked for)
seen() { grep -qs -- "$1" "$dir/serial.log.1" "$dir/serial.log"; }
for _ in $(seq 100); do seen qvm-after-sparse && break; sleep 0.1; done
out=$(qvm logs sb) || fail "qvm logs"
grep -q qvm-after-sparse <<<"$out" || fail "qvm logs lost the output after the rotation"
((${#out} <= 2 * limit)) || fail "qvm logs printed ${#out} bytes"
qvm stop sb --timeout 30 >/dev/null || fail "stop"

# 4. No inotify: the shim says so and looks at the sizes every second.
out=$(QVM_TEST_NO_INOTIFY=1 qvm start sb 2>&1) || fail "start without inotify: $out"
grep -q '"event":"qvm-log-watch-polling"' "$dir/events.jsonl" ||
  fail "no qvm-log-watch-polling event without inotify"
flood=$((16 * cap))
qvm exec sb -- sh -c "head -c $flood /dev/zero | tr '\\0' x | fold -w 127 >/dev/ttyS0; \
echo qvm-flood-end >/dev/ttyS0" || fail "the guest's flood did not run"
for _ in $(seq 600); do seen qvm-flood-end && break; sleep 0.1; done
seen qvm-flood-end || fail "the end of the flood never reached serial.log"
sleep 1.5 # one poll period: the last write is bounded too
sparse_write "$dir/serial.log"
wait_rotated "$dir/serial.log" 100
s0=$(stat -c %s "$dir/serial.log")
s1=$(stat -c %s "$dir/serial.log.1" 2>/dev/null || echo 0)
log "without inotify: $flood bytes and a write at 1 GiB: serial.log $s0, serial.log.1 $s1 (cap $cap)"
((s1 <= cap)) || fail "serial.log.1 is $s1 bytes (cap $cap)"
((s0 <= limit)) || fail "serial.log is $s0 bytes (cap $cap)"
qvm stop sb --timeout 30 >/dev/null || fail "stop"
log "PASS"
