#!/usr/bin/env bash
# qvm snapshot with the mini guest: a running vm's live snapshot with RAM
# (a marker written after it, in RAM and on the disk, is gone after the
# restore and the vm runs on), a disk-only one of the running vm, a stopped
# vm's disk snapshot (qemu-img snapshot -l shows it; restore brings the
# disk back), rm, and the refusals (unknown, taken, bad name, wrong state).
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0'
  --memory 256M --user root --no-wait-cloud-init --timeout 180 --image "$tmp/base.qcow2")
disk=$QVM_STATE_DIR/vms/s1/disk.qcow2

run_rc() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}
# The first 8 bytes of the guest's disk, read past its page cache.
disk_mark() { qvm exec s1 -- sh -c 'dd if=/dev/vda bs=4096 count=1 iflag=direct 2>/dev/null | head -c 8 | tr -d " "'; }
set_disk_mark() {
  qvm exec s1 -- sh -c "printf '%-4096s' '$1' | dd of=/dev/vda bs=4096 count=1 oflag=direct 2>/dev/null"
}
img_snapshots() { qemu-img snapshot -l -U "$disk" | awk 'NR>2 {print $2}' | sort | tr '\n' ' '; }
field() { # field SNAP KEY: from `qvm snapshot ls --json`
  qvm snapshot ls s1 --json | python3 -c 'import json,sys
for s in json.load(sys.stdin):
    if s["name"] == sys.argv[1]: print(s[sys.argv[2]])' "$1" "$2"
}

out=$(qvm up s1 "${boot[@]}" 2>&1) || fail "up: $out"
out=$(qvm snapshot ls s1 2>&1) || fail "ls: $out"
expect_match "$out" "has no snapshots" "ls of a vm without snapshots"

# --- running: a live snapshot with RAM -----------------------------------------
set_disk_mark before1 || fail "writing the disk marker"
qvm exec s1 -- sh -c 'echo ram-before > /tmp/ram-mark' || fail "writing the ram marker"
json=$(qvm snapshot create s1 live1 --json 2>&1) || fail "live create: $json"
expect_eq "$json" '{"vm": "s1", "snapshot": "live1", "created": true, "running": true}' "create --json"
expect_eq "$(field live1 ram)" True "live1 holds RAM"
expect_eq "$(field live1 vm_state)" running "live1 taken while running"
size=$(field live1 vm_state_size)
[[ $size -gt 1000000 ]] || fail "live1's vm_state_size is $size, not the RAM's size"
expect_eq "$(qvm exec s1 -- cat /tmp/ram-mark)" ram-before "the vm runs on after the snapshot"

run_rc qvm snapshot create s1 live1
expect_eq "$rc" 4 "a taken name"
expect_match "$out" "snapshot 'live1' exists" "taken name message"
run_rc qvm snapshot create s1 Bad_Name
expect_eq "$rc" 1 "a bad name"
expect_match "$out" "snapshot name 'Bad_Name' is invalid" "bad name message"
run_rc qvm snapshot restore s1 nope
expect_eq "$rc" 3 "restore of an unknown snapshot"
expect_match "$out" "snapshot 'nope' not found" "unknown snapshot message"
run_rc qvm snapshot rm s1 nope
expect_eq "$rc" 3 "rm of an unknown snapshot"

# After the snapshot: both markers change, then the restore brings both back.
set_disk_mark after111 || fail "changing the disk marker"
qvm exec s1 -- sh -c 'echo ram-after > /tmp/ram-mark; echo new > /tmp/new-file' || fail "ram after"
json=$(qvm snapshot restore s1 live1 --json 2>&1) || fail "live restore: $json"
expect_eq "$json" '{"vm": "s1", "snapshot": "live1", "restored": true, "running": true}' "restore --json"
expect_eq "$(qvm exec s1 -- cat /tmp/ram-mark)" ram-before "the RAM marker after the restore"
run_rc qvm exec s1 -- test -e /tmp/new-file
expect_eq "$rc" 1 "a file made after the snapshot is gone"
expect_eq "$(disk_mark)" before1 "the disk marker after the restore"
expect_eq "$(qvm info s1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" \
  running "the vm runs after the restore"

# --- running: disk-only --------------------------------------------------------
set_disk_mark disk2 || fail "disk marker 2"
out=$(qvm snapshot create s1 disk2 --disk-only 2>&1) || fail "disk-only create: $out"
expect_eq "$(field disk2 ram)" False "disk2 has no RAM"
expect_eq "$(field disk2 parent)" live1 "disk2's parent is the snapshot restored last"
run_rc qvm snapshot restore s1 disk2
expect_eq "$rc" 6 "a disk-only snapshot into a running vm (a conflict)"
expect_match "$out" "stop the vm, then restore it" "disk-only restore names the next step"
expect_eq "$(img_snapshots)" "disk2 live1 " "qemu-img lists both (live)"
set_disk_mark later333 || fail "disk marker 3"
qvm stop s1 --timeout 30 >/dev/null || fail "stop"

# --- stopped: disk snapshots ---------------------------------------------------
run_rc qvm snapshot restore s1 live1
expect_eq "$rc" 6 "a RAM snapshot into a stopped vm (a conflict)"
expect_match "$out" "start the vm, then restore it" "RAM restore names the next step"
# A name qemu-img made behind qvm's back is taken too (qcow2 lets names repeat).
qemu-img snapshot -q -c outside "$disk" || fail "qemu-img snapshot -c"
run_rc qvm snapshot create s1 outside
expect_eq "$rc" 4 "a name the disk holds already"
expect_match "$out" "holds a snapshot named 'outside' that qvm did not record" "outside name message"
qemu-img snapshot -q -d outside "$disk" || fail "qemu-img snapshot -d"
out=$(qvm snapshot create s1 off3 2>&1) || fail "offline create: $out"
expect_eq "$(field off3 ram)" False "off3 has no RAM"
expect_eq "$(field off3 vm_state)" stopped "off3 taken while stopped"
expect_eq "$(img_snapshots)" "disk2 live1 off3 " "qemu-img lists all three"
out=$(qvm snapshot restore s1 disk2 2>&1) || fail "offline restore: $out"
out=$(qvm snapshot ls s1 2>&1) || fail "ls: $out"
expect_match "$out" '\* disk2' "ls marks the restored one current"
out=$(qvm up s1 "${boot[@]}" 2>&1) || fail "up after the offline restore: $out"
expect_eq "$(disk_mark)" disk2 "the disk marker after the offline restore"
# The RAM snapshot taken before is restorable into the running vm again.
out=$(qvm snapshot restore s1 live1 2>&1) || fail "second live restore: $out"
expect_eq "$(qvm exec s1 -- cat /tmp/ram-mark)" ram-before "RAM marker after the second restore"

# --- Ctrl-C: nothing half-made ------------------------------------------------
# The create waits for the vm's lock (held here) and gets SIGINT meanwhile:
# it still runs QEMU's job to its end (7.2 cannot cancel it half-way), then
# removes the snapshot it made.
command -v flock >/dev/null || skip "needs flock(1)"
(
  exec 9>"$QVM_STATE_DIR/vms/s1/lock"
  flock 9
  : >"$tmp/held"
  sleep 2
) &
for _ in $(seq 100); do [[ -e $tmp/held ]] && break; sleep 0.05; done
[[ -e $tmp/held ]] || fail "the lock holder did not start"
"$qvm_bin" snapshot create s1 int1 >"$tmp/int.out" 2>&1 &
creator=$!
sleep 1
kill -INT "$creator"
set +e
wait "$creator"
rc=$?
set -e
expect_eq "$rc" 1 "an interrupted create: $(cat "$tmp/int.out")"
expect_match "$(cat "$tmp/int.out")" "interrupted: the snapshot made meanwhile was removed" \
  "interrupted create message"
expect_eq "$(img_snapshots)" "disk2 live1 off3 " "the interrupted snapshot is not in the disk"
run_rc qvm snapshot restore s1 int1
expect_eq "$rc" 3 "the interrupted snapshot is not recorded"

# --- rm, running and stopped ---------------------------------------------------
out=$(qvm snapshot rm s1 live1 2>&1) || fail "live rm: $out"
qvm stop s1 --timeout 30 >/dev/null || fail "stop"
out=$(qvm snapshot rm s1 off3 2>&1) || fail "offline rm: $out"
expect_eq "$(img_snapshots)" "disk2 " "qemu-img lists what is left"
expect_eq "$(qvm snapshot ls s1 --json | python3 -c 'import json,sys; print([s["name"] for s in json.load(sys.stdin)])')" \
  "['disk2']" "ls lists what is left"
expect_eq "$(field disk2 parent)" None "disk2's parent went with live1"

# --- checkpoints and rollback (issue 14) --------------------------------------
run_rc qvm rollback s1
expect_eq "$rc" 3 "rollback without a checkpoint"
expect_match "$out" "exec NAME --checkpoint" "the hint says how to take one"
out=$(qvm up s1 "${boot[@]}" 2>&1) || fail "up for the checkpoints: $out"
qvm exec s1 -- sh -c 'echo kept > /tmp/kept; printf ckpt-data > /dev/vda; sync' || fail "setup"
# A destructive command under a checkpoint: memory (a RAM file, a killed
# process) and disk come back with one rollback.
pid=$(qvm exec s1 -- sh -c 'sleep 100000 >/dev/null 2>&1 & echo $!')
out=$(qvm exec s1 --checkpoint -- sh -c "rm /tmp/kept; kill $pid; printf destroyed > /dev/vda; sync" 2>&1) ||
  fail "exec --checkpoint: $out"
expect_match "$out" "checkpoint ckpt-1 \(undo with: qvm rollback s1\)" "exec --checkpoint names it"
run_rc qvm exec s1 -- cat /tmp/kept
[[ $rc -ne 0 ]] || fail "the destructive command did not run"
out=$(qvm rollback s1 --json) || fail "rollback: $out"
expect_eq "$out" '{"name":"s1","restored":"ckpt-1"}' "rollback --json"
expect_eq "$(qvm exec s1 -- cat /tmp/kept)" kept "the RAM file is back"
expect_eq "$(qvm exec s1 -- head -c 9 /dev/vda)" ckpt-data "the disk is back"
qvm exec s1 -- kill -0 "$pid" || fail "the killed process runs again"
# Only the last 5 checkpoints stay; other snapshots are never pruned.
for i in 2 3 4 5 6 7; do
  out=$(qvm exec s1 --checkpoint -- true 2>&1) || fail "checkpoint $i: $out"
done
expect_eq "$(qvm snapshot ls s1 --json | python3 -c 'import json,sys; print(" ".join(s["name"] for s in json.load(sys.stdin)))')" \
  "disk2 ckpt-3 ckpt-4 ckpt-5 ckpt-6 ckpt-7" "checkpoints pruned to 5, disk2 kept"
out=$(qvm rollback s1 --to 4) || fail "rollback --to 4: $out"
expect_match "$out" "rolled back to ckpt-4" "rollback --to N"
run_rc qvm rollback s1 --to 1
expect_eq "$rc" 3 "rollback to a pruned checkpoint"
log "ok"
