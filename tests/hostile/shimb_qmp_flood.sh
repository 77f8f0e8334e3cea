#!/usr/bin/env bash
# QMP event flood (review finding 4): a QEMU that sends events without end
# (a compromised one; or a guest ejecting and loading a cdrom in a loop:
# QEMU does not rate-limit DEVICE_TRAY_MOVED), some of them 200 KiB long.
# The shim handles a share of them per pass of its loop, so events.jsonl and
# its one rotated generation stay bounded, no event line is longer than
# 64 KiB (a longer one is written as its name, "truncated" and its length),
# and `qvm start`, `qvm stop` and `qvm kill` still work during the flood.
# The QEMU is a script (shimb_fake_qemu.py) speaking QMP on the fd qvm gives
# it; it runs as root (QVM_QEMU_USER=root: nothing to drop).
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
cap=65536
line_max=65536
limit=$((cap + line_max + 4096)) # rotated after the line that passed the cap
export QVM_EVENTS_LOG_MAX=$cap QVM_QEMU_USER=root QVM_QEMU="$src/tests/hostile/shimb_fake_qemu.py"
qvm create fq --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0 \
  --memory 256M --net none >/dev/null || fail "create"
dir=$QVM_STATE_DIR/vms/fq
info() { qvm info --json fq | python3 -c "import json,sys; j=json.load(sys.stdin); print(j$1)"; }

check_bounded() {
  local s0 s1 longest
  s0=$(stat -c %s "$dir/events.jsonl")
  s1=$(stat -c %s "$dir/events.jsonl.1" 2>/dev/null || echo 0)
  longest=$(cat "$dir/events.jsonl" "$dir/events.jsonl.1" 2>/dev/null | awk '
    length($0) > m { m = length($0) } END { print m + 0 }')
  log "$1: events.jsonl $s0 bytes, events.jsonl.1 $s1 bytes, longest line $longest (cap $cap)"
  ((s0 <= limit)) || fail "$1: events.jsonl grew to $s0 bytes (cap $cap)"
  ((s1 <= limit)) || fail "$1: events.jsonl.1 grew to $s1 bytes (cap $cap)"
  ((longest <= line_max)) || fail "$1: an event line of $longest bytes"
  [[ ! -e $dir/events.jsonl.2 ]] || fail "$1: more than one rotated generation"
}

# The flood starts with cont: start must return all the same.
out=$(timeout 120 "$qvm_bin" start fq 2>&1) || fail "start during the flood: $out"
qpid=$(info '["pid"]')
# Until events.jsonl was rotated a few times (each rotation: over $cap bytes).
for _ in $(seq 300); do
  [[ -f $dir/events.jsonl.1 ]] && (($(grep -c DEVICE_TRAY_MOVED "$dir/events.jsonl.1") > 100)) &&
    break
  sleep 0.1
done
[[ -f $dir/events.jsonl.1 ]] || fail "events.jsonl was never rotated: no flood reached it"
check_bounded "during the flood"
# A 200 KiB event is written as a short record. Which events of the flood
# land in the two generations on disk at a given moment depends on how fast
# the shim drains QEMU (under ASan its bounded event queue drops some), so
# look for one for a while rather than once.
truncated=
for _ in $(seq 300); do
  if grep -qs '"event":"DEVICE_TRAY_MOVED","truncated":true,"bytes":2' "$dir/events.jsonl" \
    "$dir/events.jsonl.1"; then
    truncated=yes
    break
  fi
  sleep 0.1
done
[[ -n $truncated ]] || fail "no record of a truncated event"
kill -0 "$qpid" || fail "the fake qemu is gone before stop"
out=$(timeout 120 "$qvm_bin" stop fq --timeout 30 2>&1) || fail "stop during the flood: $out"
expect_eq "$(info '["state"]')" stopped "state after stop"
# (QEMU's SHUTDOWN, behind the flood, is still read once QEMU is gone)
expect_eq "$(info '["last_exit"]["reason"]')" shutdown "last exit after stop"
check_bounded "after stop"

out=$(timeout 120 "$qvm_bin" start fq 2>&1) || fail "second start during the flood: $out"
qpid=$(info '["pid"]')
sleep 2
out=$(timeout 120 "$qvm_bin" kill fq 2>&1) || fail "kill during the flood: $out"
expect_eq "$(info '["last_exit"]["reason"]')" killed "last exit after kill"
if kill -0 "$qpid" 2>/dev/null; then fail "the fake qemu $qpid still runs after kill"; fi
check_bounded "after kill"
log "PASS"
