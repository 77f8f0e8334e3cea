#!/usr/bin/env bash
# One `qvm up NAME` at a time: a second one waits for the first's lock
# (STATE/vms/.NAME.up.lock) without a sleep loop (inotify on the lock file),
# goes on as soon as it is released, and gives up at its deadline with a
# clear message. The lock is held here by flock(1); QEMU is /bin/false, so
# once up has the lock it fails fast in its 'started' phase, which is how
# this test sees that it got past the lock.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

command -v flock >/dev/null || skip "needs flock(1)"
mini=$(mini_guest)
export QVM_QEMU=/bin/false
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --no-cloud-init --memory 256M)
mkdir -p "$QVM_STATE_DIR/vms"
chmod 0700 "$QVM_STATE_DIR" "$QVM_STATE_DIR/vms"
lock=$QVM_STATE_DIR/vms/.lk.up.lock

# hold SECONDS: a process that holds the lock that long, then exits (its
# exit is the lock's last close); it writes the moment it let go.
hold() {
  (
    exec 9>"$lock"
    flock 9
    : >"$tmp/held"
    sleep "$1"
    date +%s%N >"$tmp/released"
  ) &
  holder=$!
  for _ in $(seq 100); do [[ -e $tmp/held ]] && return 0; sleep 0.05; done
  fail "the lock holder did not start"
}

# Held for the whole deadline: up gives up, naming the other up.
hold 8
set +e
t0=$(date +%s%N)
out=$(timeout 60 "$qvm_bin" up lk "${boot[@]}" --timeout 3 2>&1)
rc=$?
t1=$(date +%s%N)
set -e
((rc != 124)) || fail "up hung on the lock"
((rc != 0)) || fail "up succeeded while the lock was held"
expect_match "$out" "another up of vm 'lk' is still running" "the held lock is named"
waited=$(((t1 - t0) / 1000000))
((waited >= 2900 && waited < 10000)) || fail "up waited $waited ms for a 3 s deadline"
wait "$holder"
rm -f "$tmp/held" "$tmp/released"

# Released while up waits: up goes on at once, well before any poll tick.
hold 2
set +e
out=$(timeout 60 "$qvm_bin" up lk "${boot[@]}" --timeout 30 2>&1)
rc=$?
t1=$(date +%s%N)
set -e
wait "$holder"
log "$out"
((rc != 124)) || fail "up hung on the lock after its release"
! grep -q "still running" <<<"$out" || fail "up did not get the released lock: $out"
expect_match "$out" "phase 'started' did not happen" "up went on past the lock"
lag=$(((t1 - $(cat "$tmp/released")) / 1000000))
log "up got past the released lock and failed its start ${lag} ms after the release"
((lag < 500)) || fail "up went on ${lag} ms after the lock was released"
log "PASS"
