#!/usr/bin/env bash
# A guest that opens and closes qvm's readiness port in a tight loop (issue
# 10, item 4): each open and close is a VSERPORT_CHANGE. QEMU 7.2 throttles
# them to one a second per port; a compromised QEMU does not, and that is
# what plays the guest here. The flood must not stall `qvm up` (its tcp phase still ends
# soon after the banner is there, through one of the flood's announcements,
# and the next phase runs), nor the shim (qvm stop works), nor grow
# events.jsonl past its cap. The QEMU is a script (ready_fake_qemu.py) that
# floods the events and plays sshd's banner on the port forward after 8 s;
# no SSH is behind it, so up fails in its ssh phase, as it should. Then a
# QEMU that dies during the tcp phase fails up at once, naming it, and a
# guest that holds back the rest of a partial banner does not make up spin.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
cap=65536
line_max=65536
limit=$((cap + line_max + 4096)) # rotated after the line that passed the cap
export QVM_EVENTS_LOG_MAX=$cap QVM_QEMU_USER=root
# qvm-shim starts QEMU with a clean environment: the fake QEMU's settings
# travel in a wrapper script that QVM_QEMU names.
fake_qemu() { # NAME VAR=VALUE...
  local w=$tmp/$1.sh
  shift
  { echo '#!/bin/sh'
    for kv in "$@"; do printf 'export %q\n' "$kv"; done
    printf 'exec %q "$@"\n' "$src/tests/hostile/ready_fake_qemu.py"; } >"$w"
  chmod 755 "$w"
  echo "$w"
}
# The banner comes 8 s after cont: after up's tcp phase began, even when
# starting is slow (ASan: about 6 s).
export QVM_QEMU
QVM_QEMU=$(fake_qemu flood READY_FAKE_BANNER_FILE="$tmp/banner-at" READY_FAKE_BANNER_AFTER=8)
dir=$QVM_STATE_DIR/vms/rf

set +e
t0=$(date +%s.%N)
out=$(timeout 120 "$qvm_bin" up rf --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" \
  --append console=ttyS0 --memory 256M --no-wait-cloud-init --timeout 60 2>&1)
rc=$?
set -e
log "$out"
((rc != 124)) || fail "qvm up stalled (killed by timeout(1))"
((rc != 0)) || fail "qvm up succeeded against a fake sshd"
expect_match "$out" "phase 'ssh' did not happen" "up went on to the ssh phase"
expect_match "$out" "^  tcp +[0-9.]+ s  announced$" "tcp phase through an announcement"
# (A slow shim, e.g. under ASan, may take a moment to write a cap's worth.)
for _ in $(seq 300); do
  [[ -f $dir/events.jsonl.1 ]] && break
  sleep 0.1
done
[[ -f $dir/events.jsonl.1 ]] || fail "events.jsonl was never rotated: no flood reached it"
grep -q '"event":"VSERPORT_CHANGE"' "$dir/events.jsonl" "$dir/events.jsonl.1" ||
  fail "no VSERPORT_CHANGE reached events.jsonl: the flood did not happen"

# How long after the banner was there the tcp phase came, for the log only
# (timings are never asserted: a loop the flood stalled would not reach the
# ssh phase before --timeout, which is asserted above). The flood rotates
# events.jsonl many times over, so the phase's time comes from up's output
# (seconds since up started, which was a few ms after t0).
tcp_s=$(sed -nE 's/^  tcp +([0-9.]+) s.*/\1/p' <<<"$out")
lag=$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) + float(sys.argv[2]) - float(sys.argv[3])))' \
  "$t0" "$tcp_s" "$(cat "$tmp/banner-at")")
log "tcp phase ${lag} s after the banner was there"

# The shim rotates by a rename, then creates events.jsonl again: in between
# there is none, which is not a failure.
check_bounded() {
  local s0 s1 longest
  s0=$(stat -c %s "$dir/events.jsonl" 2>/dev/null || echo 0)
  s1=$(stat -c %s "$dir/events.jsonl.1" 2>/dev/null || echo 0)
  longest=$({ cat "$dir/events.jsonl" "$dir/events.jsonl.1" 2>/dev/null || true; } | awk '
    length($0) > m { m = length($0) } END { print m + 0 }')
  log "$1: events.jsonl $s0 bytes, events.jsonl.1 $s1 bytes, longest line $longest (cap $cap)"
  ((s0 <= limit)) || fail "$1: events.jsonl grew to $s0 bytes (cap $cap)"
  ((s1 <= limit)) || fail "$1: events.jsonl.1 grew to $s1 bytes (cap $cap)"
  ((longest <= line_max)) || fail "$1: an event line of $longest bytes"
  [[ ! -e $dir/events.jsonl.2 ]] || fail "$1: more than one rotated generation"
}
check_bounded "after up"
sleep 2
check_bounded "during the flood"

# The shim still answers during the flood.
out=$(timeout 120 "$qvm_bin" stop rf --timeout 30 2>&1) || fail "stop during the flood: $out"
info() { qvm info --json rf | python3 -c "import json,sys; j=json.load(sys.stdin); print(j$1)"; }
expect_eq "$(info '["state"]')" stopped "state after stop"
check_bounded "after stop"

# A QEMU that dies while up waits for sshd fails up at once (its pidfd),
# naming it, not at the deadline.
set +e
t0=$(date +%s)
QVM_QEMU=$(fake_qemu dies READY_FAKE_BANNER_FILE="$tmp/banner-at" READY_FAKE_EXIT_AFTER=3 \
  READY_FAKE_BANNER_AFTER=600)
out=$(timeout 120 "$qvm_bin" up rd \
  --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0 --memory 256M \
  --no-wait-cloud-init --timeout 100 2>&1)
rc=$?
t1=$(date +%s)
set -e
log "$out"
((rc != 0 && rc != 124)) || fail "up of a vm whose QEMU died: exit $rc"
expect_match "$out" "phase 'tcp' did not happen" "the phase it died in"
expect_match "$out" "QEMU exited" "QEMU named"
((t1 - t0 < 60)) || fail "up took $((t1 - t0)) s to notice that QEMU died (deadline 100 s)"
# A guest that sends "SS" of its banner and holds the rest back 2.5 s (a
# probe gives up after 3): up's
# probe only peeks at the banner (the ssh phase logs in on its connection),
# and with part of it there the socket stays readable; up must wait, not
# poll it in a loop. Its CPU time over the whole run stays below 1.5 s (a
# loop on the readable socket spends the 2.5 s), and the tcp phase comes
# once the rest is there.
QVM_QEMU=$(fake_qemu split READY_FAKE_BANNER_FILE="$tmp/banner-at" READY_FAKE_BANNER_AFTER=2 \
  READY_FAKE_BANNER_SPLIT=2.5)
set +e
out=$(timeout 120 /usr/bin/time -f 'cpu %U %S' -o "$tmp/split-cpu" "$qvm_bin" up rs \
  --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0 --memory 256M \
  --no-wait-cloud-init --timeout 25 2>&1)
rc=$?
set -e
log "$out"
((rc != 0 && rc != 124)) || fail "up against a fake sshd with a split banner: exit $rc"
expect_match "$out" "^  tcp +[0-9.]+ s" "tcp phase once the rest of the banner came"
expect_match "$out" "phase 'ssh' did not happen" "up went on to the ssh phase"
# (GNU time puts "Command exited with non-zero status" on a line before.)
read -r _ user sys < <(grep '^cpu ' "$tmp/split-cpu")
[[ $user =~ ^[0-9.]+$ && $sys =~ ^[0-9.]+$ ]] || fail "no CPU times from time(1): $(cat "$tmp/split-cpu")"
log "qvm up's CPU time: user $user s, system $sys s"
awk -v u="$user" -v s="$sys" 'BEGIN { exit !(u + s < 1.5) }' ||
  fail "qvm up spent ${user}+${sys} s of CPU waiting on a partial banner: a busy loop"
log "PASS"
