#!/usr/bin/env bash
# qvm fork with the mini guest: two forks resume SRC's memory (a process
# started before the fork runs in each with the same pid, a RAM-only file
# is there) without booting (no second boot on their serial logs), each on
# its own disk overlay and network (a write in one is absent in the other),
# SRC runs on, nothing is left behind (state file, temporary snapshot); a
# restarted fork boots from its disk; the refusals (stopped SRC, taken name,
# bad count, a state file that is not qvm's) leave nothing.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0'
  --memory 256M --user root --no-wait-cloud-init --timeout 180)
vms=$QVM_STATE_DIR/vms
store=$QVM_STATE_DIR/images

run_rc() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}
jget() { python3 -c 'import json,sys; o=json.loads(sys.argv[1]); print(eval("o"+sys.argv[2]))' "$1" "$2"; }
spec() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spec"][sys.argv[2]])' "$vms/$1/vm.json" "$2"; }
no_leftovers() {
  expect_eq "$(ls "$store/tmp" 2>/dev/null | grep '^stage-' || true)" "" "$1: staged files"
  expect_eq "$(ls -A "$vms" | grep '\.create-' || true)" "" "$1: half-made vm directories"
  [[ ! -e $vms/s1/fork.state ]] || fail "$1: s1's fork.state was left"
  local snaps
  snaps=$(qemu-img snapshot -U -l "$vms/s1/disk.qcow2")
  [[ $snaps != *qvm-import* ]] || fail "$1: a temporary snapshot was left: $snaps"
}

out=$(qvm up s1 "${boot[@]}" --image "$tmp/base.qcow2" --disk 32M 2>&1) || fail "up s1: $out"
pid=$(qvm exec s1 -- sh -c 'echo ram-only > /tmp/ramfile; sleep 100000 >/dev/null 2>&1 & echo $!') ||
  fail "starting the marker process"
qvm exec s1 -- sh -c 'printf disk-s1 > /dev/vda && sync' || fail "writing s1's disk"
qemu_pid=$(qvm info s1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')

# Refusals first: nothing made, s1 untouched.
run_rc qvm fork s1 --count 0
expect_eq "$rc" 2 "--count 0"
run_rc qvm fork s1 --count 65
expect_eq "$rc" 2 "--count 65"
run_rc qvm fork nope
expect_eq "$rc" 3 "fork of a vm that does not exist"
qvm create s1-2 "${boot[@]:0:8}" --no-cloud-init >/dev/null || fail "create a vm named s1-2"
run_rc qvm fork s1 --count 2
expect_eq "$rc" 4 "fork onto a taken name"
expect_match "$out" "s1-2" "the taken name is named"
[[ ! -e $vms/s1-1 ]] || fail "the refused fork made s1-1"
qvm rm s1-2 >/dev/null || fail "rm s1-2"
no_leftovers "refusals"

json=$(qvm fork s1 --count 2 --json --quiet) || fail "fork: $json"
expect_eq "$(jget "$json" '["source"]')" s1 "source"
expect_eq "$(jget "$json" '[ "forks"].__len__()')" 2 "two forks"
expect_eq "$(jget "$json" '["forks"][0]["name"]')" s1-1 "first fork's name"
expect_eq "$(jget "$json" '["forks"][1]["name"]')" s1-2 "second fork's name"
img=$(jget "$json" '["image"]')
[[ -f $store/sha256/${img#sha256:} ]] || fail "the forks' image is not in the store"
no_leftovers "fork"
expect_eq "$(qvm audit s1 --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(sum(1 for x in r if x["action"] == "fork" and x["details"].get("count") == 2 and "error" not in x["details"]))')" \
  1 "the audit log's fork record"
expect_eq "$(qvm info s1 --json | python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["state"], o["pid"])')" \
  "running $qemu_pid" "s1 after the fork"
for f in s1-1 s1-2; do
  expect_eq "$(qvm exec "$f" -- cat /tmp/ramfile)" ram-only "$f has s1's RAM-only file"
  qvm exec "$f" -- kill -0 "$pid" || fail "$f: s1's process $pid is not running"
  expect_eq "$(grep -c 'Linux version' "$vms/$f/serial.log" || true)" 0 "$f did not boot a kernel"
  expect_eq "$(spec "$f" mac)" "$(spec s1 mac)" "$f keeps s1's MAC"
  [[ $(spec "$f" uuid) != "$(spec s1 uuid)" ]] || fail "$f has s1's uuid in its record"
  expect_eq "$(cut -d' ' -f1 "$vms/$f/known_hosts")" "$f" "$f's known_hosts alias"
  expect_eq "$(cut -d' ' -f2- "$vms/$f/known_hosts")" "$(cut -d' ' -f2- "$vms/s1/known_hosts")" \
    "$f pins s1's host key"
  [[ ! -e $vms/$f/incoming.state ]] || fail "$f's incoming.state was not consumed"
  stat -c %a "$vms/$f/id_ed25519" | grep -qx 600 || fail "$f's client key is not 0600"
  # the .pub beside the key is the key's (OpenSSH offers what the .pub names)
  expect_eq "$(ssh-keygen -y -f "$vms/$f/id_ed25519" | cut -d' ' -f1-2)" \
    "$(cut -d' ' -f1-2 "$vms/$f/id_ed25519.pub")" "$f's id_ed25519.pub matches its key"
done
expect_eq "$(qvm exec s1-1 -- head -c 7 /dev/vda)" disk-s1 "s1-1 has s1's disk"
qvm exec s1-1 -- sh -c 'printf disk-f1 > /dev/vda && sync; echo f1 > /tmp/only1' || fail "write in s1-1"
expect_eq "$(qvm exec s1-2 -- head -c 7 /dev/vda)" disk-s1 "s1-2's disk after a write in s1-1"
run_rc qvm exec s1-2 -- cat /tmp/only1
[[ $rc -ne 0 ]] || fail "s1-2 sees a file written in s1-1's memory"
expect_eq "$(qvm exec s1 -- head -c 7 /dev/vda)" disk-s1 "s1's disk after a write in s1-1"
expect_eq "$(qvm exec s1 -- cat /tmp/ramfile)" ram-only "s1 answers after the fork"

# A fork stopped and started again boots from its disk (the state is used
# once), on the same SSH port as before (issue 19: saved ssh-configs work).
port() { qvm info "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["network"].get("ssh_port"))'; }
port_before=$(port s1-1)
qvm stop s1-1 --timeout 30 >/dev/null || fail "stop s1-1"
qvm start s1-1 >/dev/null || fail "start s1-1"
expect_eq "$(port s1-1)" "$port_before" "s1-1's SSH port after stop and start"
# qvm ls shows where SSH reaches each running vm (issue 19).
expect_match "$(qvm ls | grep '^s1-1 ')" " 127\.0\.0\.1:$port_before " "qvm ls's SSH column"
for _ in $(seq 1 120); do
  qvm exec s1-1 -- true >/dev/null 2>&1 && break
  sleep 1
done
expect_eq "$(qvm exec s1-1 -- head -c 7 /dev/vda)" disk-f1 "s1-1 after a restart keeps its disk"
run_rc qvm exec s1-1 -- cat /tmp/ramfile
[[ $rc -ne 0 ]] || fail "s1-1 restarted with the saved memory, not a boot"

# A state file that is not a private one of qvm's is refused, not loaded.
qvm down s1-1 --rm >/dev/null || fail "down s1-1"
qvm stop s1-2 --timeout 30 >/dev/null || fail "stop s1-2"
printf 'not a migration stream' >"$vms/s1-2/incoming.state"
chmod 0644 "$vms/s1-2/incoming.state"
run_rc qvm start s1-2
[[ $rc -ne 0 ]] || fail "start with a world-readable incoming.state"
expect_match "$out" "not a private regular file" "incoming.state refusal message"
rm -f "$vms/s1-2/incoming.state"
ln -s /etc/passwd "$vms/s1-2/incoming.state"
run_rc qvm start s1-2
[[ $rc -ne 0 ]] || fail "start with a symlinked incoming.state"
rm -f "$vms/s1-2/incoming.state"
qvm rm s1-2 >/dev/null || fail "rm s1-2"

# A stopped SRC is a conflict (exit 6), with nothing made.
qvm stop s1 --timeout 30 >/dev/null || fail "stop s1"
run_rc qvm fork s1
expect_eq "$rc" 6 "fork of a stopped vm (a conflict)"
expect_match "$out" "qvm start" "the hint says to start it"
[[ ! -e $vms/s1-1 ]] || fail "the refused fork made s1-1"
no_leftovers "stopped SRC"
qvm rm s1 >/dev/null || fail "rm s1"
log "ok"
