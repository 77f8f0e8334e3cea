#!/usr/bin/env bash
# End to end, qvm snapshot with the cloud guest (issue 13, "Disk data" and
# "Live state"): files written and synced, a live snapshot, one changed and
# one deleted, the restore brings both back (sha256); a process started
# before the snapshot and killed after it runs again after the restore with
# the same pid, and the guest's uptime continues from the snapshot's moment.
# Then three forks of it (no boot): exec, the same sleeper, their own files;
# and a checkpoint, rm -rf /etc/ssh, one rollback.
. "$(dirname "$0")/lib.sh"

image=$(cloud_image)
out=$(qvm up e2e-snap --image "$image" --memory 1G --disk 3G 2>&1) || fail "qvm up failed: $out"
g() { qvm exec e2e-snap -- "$@"; }
uptime_s() { g cut -d. -f1 /proc/uptime; }

# Under TCG, QEMU 7.2 never lets the emulated TSC go back (it clamps it to
# the last value read), so a guest on the tsc clocksource sees the time
# between snapshot and restore in its uptime; hpet counts QEMU's virtual
# clock, which the snapshot restores (as kvmclock does under KVM).
accel=$(qvm info e2e-snap --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("accelerator"))')
if [[ $accel == tcg ]]; then
  g sudo -n sh -c 'echo hpet > /sys/devices/system/clocksource/clocksource0/current_clocksource' ||
    fail "switching the guest to hpet"
  expect_eq "$(g cat /sys/devices/system/clocksource/clocksource0/current_clocksource)" hpet \
    "the guest's clocksource under TCG"
fi
g sh -c 'head -c 1048576 /dev/urandom > ~/a.bin && head -c 65536 /dev/urandom > ~/b.bin && sync' ||
  fail "writing the files"
sums=$(g sh -c 'sha256sum ~/a.bin ~/b.bin')
pid=$(g sh -c 'nohup sleep 100000 >/dev/null 2>&1 & echo $!')
[[ $pid =~ ^[0-9]+$ ]] || fail "no pid for the sleeper: '$pid'"
before=$(uptime_s)
out=$(qvm snapshot create e2e-snap s1 2>&1) || fail "snapshot create: $out"
log "$out"
expect_eq "$(qvm snapshot ls e2e-snap --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ram"])')" \
  True "the live snapshot holds RAM"

g sh -c 'head -c 4096 /dev/urandom >> ~/a.bin && rm ~/b.bin && sync' || fail "changing the files"
g kill "$pid" || fail "killing the sleeper"
set +e
g kill -0 "$pid" 2>/dev/null
rc=$?
set -e
expect_eq "$rc" 1 "the sleeper is gone before the restore"
sleep 30

out=$(qvm snapshot restore e2e-snap s1 2>&1) || fail "snapshot restore: $out"
log "$out"
after=$(uptime_s)
expect_eq "$(g sh -c 'sha256sum ~/a.bin ~/b.bin')" "$sums" "both files back after the restore"
expect_eq "$(g cat /proc/"$pid"/comm)" sleep "the sleeper runs again with pid $pid"
# The 30 s between the snapshot and the restore are not in the guest's uptime.
((after >= before && after < before + 25)) ||
  fail "uptime after the restore is ${after} s, before the snapshot ${before} s"
expect_match "$(qvm info e2e-snap --json)" '"state": *"running"' "running after the restore"
out=$(qvm snapshot rm e2e-snap s1 2>&1) || fail "snapshot rm: $out"

# Forks of the same guest (issue 13, the fork bullet; sharing this boot):
# three forks answer exec with the sleeper still at its pid, their clocks
# set from the host, and a file written in one is absent in the others.
json=$(qvm fork e2e-snap --count 3 --prefix e2e-fk --json --quiet 2>"$tmp/fork.err") ||
  fail "fork: $json $(cat "$tmp/fork.err")"
log "fork: $json"
for i in 1 2 3; do
  f=e2e-fk-$i
  qvm exec "$f" -- true || fail "$f does not answer exec"
  expect_eq "$(qvm exec "$f" -- cat /proc/"$pid"/comm)" sleep "$f runs the sleeper with pid $pid"
  expect_eq "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["forks"][int(sys.argv[2])]["clock"])' "$json" $((i - 1)))" \
    set "$f's clock"
  skew=$(($(qvm exec "$f" -- date +%s) - $(date +%s)))
  ((skew > -10 && skew < 10)) || fail "$f's clock is ${skew} s off the host's"
  expect_eq "$(qvm exec "$f" -- sh -c 'sha256sum ~/a.bin ~/b.bin')" "$sums" "$f has the guest's files"
done
qvm exec e2e-fk-2 -- sh -c 'echo only-2 > ~/fork-file && sync' || fail "writing in e2e-fk-2"
for f in e2e-fk-1 e2e-fk-3 e2e-snap; do
  set +e
  qvm exec "$f" -- sh -c 'test -e ~/fork-file'
  rc=$?
  set -e
  expect_eq "$rc" 1 "$f does not see the file written in e2e-fk-2"
done
for i in 1 2 3; do qvm down "e2e-fk-$i" --rm >/dev/null || fail "down --rm e2e-fk-$i"; done

# A checkpoint, a destructive command, one rollback (issue 14): the guest is
# back, reachable over SSH again, with its /etc/ssh tree as it was.
tree() { g sudo -n sh -c 'cd /etc/ssh && find . -type f -exec sha256sum {} + | sort'; }
before_tree=$(tree) || fail "listing /etc/ssh"
out=$(qvm exec e2e-snap --checkpoint -- sudo -n rm -rf /etc/ssh 2>&1) || fail "exec --checkpoint: $out"
expect_match "$out" "checkpoint ckpt-1" "exec --checkpoint names the checkpoint"
set +e
qvm exec e2e-snap -- true >/dev/null 2>&1
rc=$?
set -e
expect_eq "$rc" 255 "no new SSH session without /etc/ssh"
out=$(qvm rollback e2e-snap 2>&1) || fail "rollback: $out"
expect_eq "$(tree)" "$before_tree" "/etc/ssh after the rollback"
log "ok"
