#!/usr/bin/env bash
# qvm image import --from-vm and qvm clone with the mini guest: import from a
# stopped vm (store image, qcow2, the vm's disk unchanged by sha256), clone
# of a stopped vm (fresh uuid, MAC and host key; its overlay's backing file
# is the store image), clone of a running vm (it keeps running; no
# temporary snapshot left), --snapshot, and the errors (nothing left over).
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0'
  --memory 256M --user root --no-wait-cloud-init --timeout 180)
vms=$QVM_STATE_DIR/vms
store=$QVM_STATE_DIR/images
marker=qvm-golden-marker
marker2=qvm-second-marker # as long as marker

run_rc() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}
jget() { python3 -c 'import json,sys; o=json.loads(sys.argv[1]); print(eval("o"+sys.argv[2]))' "$1" "$2"; }
spec() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spec"][sys.argv[2]])' "$vms/$1/vm.json" "$2"; }
disk_sum() { sha256sum "$vms/$1/disk.qcow2" | cut -d' ' -f1; }
# The first bytes of an image's guest-visible content.
content_head() { qemu-img dd -U -f qcow2 -O raw if="$1" of="$tmp/head.raw" bs=512 count=1 2>/dev/null && head -c ${#marker} "$tmp/head.raw"; }
backing() { qemu-img info --output=json -U "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("backing-filename", ""))'; }
no_leftovers() {
  local staged
  staged=$(ls "$store/tmp" 2>/dev/null | grep '^stage-' || true)
  expect_eq "$staged" "" "$1: staged files in the store's tmp/"
  expect_eq "$(ls -A "$vms" | grep '\.create-' || true)" "" "$1: half-made vm directories"
}

out=$(qvm up s1 "${boot[@]}" --image "$tmp/base.qcow2" --disk 32M 2>&1) || fail "up s1: $out"
qvm exec s1 -- sh -c "printf $marker > /dev/vda && sync" || fail "writing the marker"
qvm stop s1 --timeout 30 >/dev/null || fail "stop s1"
before=$(disk_sum s1)

# Import from a stopped vm.
json=$(qvm image import --from-vm s1 gold --json --quiet) || fail "import: $json"
expect_eq "$(jget "$json" '["format"]')" qcow2 "imported format"
expect_eq "$(jget "$json" '["source"]')" vm:s1 "imported source"
expect_eq "$(jget "$json" '["names"]')" "['gold']" "imported name"
expect_eq "$(jget "$json" '["virtual_size"]')" 33554432 "imported virtual size"
gold=$(jget "$json" '["digest"]')
gold_file=$store/sha256/${gold#sha256:}
[[ -f $gold_file ]] || fail "the store has no $gold_file"
expect_eq "$(sha256sum "$gold_file" | cut -d' ' -f1)" "${gold#sha256:}" "the image's digest is its sha256"
expect_eq "$(backing "$gold_file")" "" "the imported image is standalone"
expect_eq "$(content_head "$gold_file")" "$marker" "the imported image holds the guest's write"
expect_eq "$(disk_sum s1)" "$before" "s1's disk after the import"
out=$(qvm image ls --json) || fail "image ls"
expect_match "$out" '"gold"' "image ls shows gold"

# Import errors.
run_rc qvm image import --from-vm nope x
expect_eq "$rc" 3 "import from a vm that does not exist"
run_rc qvm image import --from-vm s1 --snapshot nope x
expect_eq "$rc" 3 "import of an unknown snapshot"
expect_match "$out" "no snapshot 'nope'" "unknown snapshot message"
expect_match "$out" "snapshot -U -l" "unknown snapshot hint"
run_rc qvm image import --from-vm s1
expect_eq "$rc" 2 "import without a name"
run_rc qvm image import s1 x
expect_eq "$rc" 2 "import without --from-vm"
no_leftovers "import errors"

# Clone of a stopped vm.
json=$(qvm clone s1 c1 --json --quiet) || fail "clone c1: $json"
img=$(jget "$json" '["image"]')
expect_eq "$img" "$gold" "the clone's image is the imported one (same content, same digest)"
expect_eq "$(jget "$json" '["state"]')" created "c1's state"
[[ $(spec c1 uuid) != "$(spec s1 uuid)" ]] || fail "c1 has s1's uuid"
[[ $(spec c1 mac) != "$(spec s1 mac)" ]] || fail "c1 has s1's MAC"
expect_eq "$(jget "$json" '["uuid"]')" "$(spec c1 uuid)" "--json uuid"
[[ -s $vms/c1/known_hosts ]] || fail "c1 has no pinned host key"
[[ $(cat "$vms/c1/known_hosts" | cut -d' ' -f2-) != $(cut -d' ' -f2- "$vms/s1/known_hosts") ]] ||
  fail "c1 pins s1's host key"
cmp -s "$vms/c1/id_ed25519" "$vms/s1/id_ed25519" && fail "c1 has s1's client key"
expect_eq "$(spec c1 image)" "$store/sha256/${img#sha256:}" "c1's spec image is the store image"
expect_eq "$(backing "$vms/c1/disk.qcow2")" "$store/sha256/${img#sha256:}" "c1's overlay backing"
expect_eq "$(content_head "$vms/c1/disk.qcow2")" "$marker" "c1's disk has s1's data"
expect_eq "$(spec c1 cpus)" "$(spec s1 cpus)" "c1's cpus"
expect_eq "$(spec c1 memory_mib)" "$(spec s1 memory_mib)" "c1's memory"
expect_eq "$(disk_sum s1)" "$before" "s1's disk after the clone"
out=$(qvm image inspect "$img") || fail "inspect the clone's image"
expect_match "$out" "c1" "the clone's image is used by c1"
run_rc qvm image rm "$img"
expect_eq "$rc" 6 "rm of the image a clone uses (a conflict)"
expect_match "$out" "c1" "rm names the clone"

# Clone errors: nothing half-made.
run_rc qvm clone s1 c1
expect_eq "$rc" 4 "clone to a taken name"
run_rc qvm clone nope c9
expect_eq "$rc" 3 "clone of a vm that does not exist"
run_rc qvm clone s1 c9 --snapshot nope
expect_eq "$rc" 3 "clone of an unknown snapshot"
run_rc qvm clone s1 BAD
expect_eq "$rc" 1 "clone to a bad name"
run_rc qvm clone s1 c9 --start --up
expect_eq "$rc" 2 "--start and --up"
[[ ! -e $vms/c9 ]] || fail "a failed clone left c9"
no_leftovers "clone errors"

# A writable extra drive is refused before anything is made.
qemu-img create -q -f qcow2 "$tmp/extra.qcow2" 1M
qvm create w1 "${boot[@]:0:8}" --image "$tmp/base.qcow2" --drive "$tmp/extra.qcow2" --no-cloud-init >/dev/null || fail "create w1"
run_rc qvm clone w1 c9
expect_eq "$rc" 1 "clone of a vm with a writable drive"
expect_match "$out" "writable drive" "writable drive message"
[[ ! -e $vms/c9 ]] || fail "the refused clone left c9"

# Clone of a running vm: it keeps running; the temporary snapshot is gone,
# and so is one left over by a killed import (made here with qemu-img).
qemu-img snapshot -c qvm-import-0123456789ab "$vms/s1/disk.qcow2"
out=$(qvm up s1 "${boot[@]}" --image "$tmp/base.qcow2" --disk 32M 2>&1) || fail "second up s1: $out"
qvm exec s1 -- sh -c "printf $marker2 > /dev/vda && sync" || fail "writing the second marker"
pid=$(qvm info s1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
json=$(qvm clone s1 c2 --start --json --quiet) || fail "clone c2: $json"
img2=$(jget "$json" '["image"]')
[[ $img2 != "$gold" ]] || fail "c2's image is the stopped state"
expect_eq "$(jget "$json" '["state"]')" running "c2's state"
expect_eq "$(qvm info s1 --json | python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["state"], o["pid"])')" \
  "running $pid" "s1 after a clone while running"
expect_eq "$(qvm exec s1 -- head -c ${#marker} /dev/vda)" "$marker2" "s1 still answers"
snaps=$(qemu-img snapshot -U -l "$vms/s1/disk.qcow2")
[[ $snaps != *qvm-import* ]] || fail "a temporary snapshot was left: $snaps"
for _ in $(seq 1 120); do
  qvm exec c2 -- true >/dev/null 2>&1 && break
  sleep 1
done
expect_eq "$(qvm exec c2 -- head -c ${#marker} /dev/vda)" "$marker2" "c2 boots s1's disk state"
grep -q "seed hostname=c2" "$vms/c2/serial.log" || fail "c2's seed does not name it"
qvm stop c2 --timeout 30 >/dev/null || fail "stop c2"

# --up: the clone comes up with its own pinned host key (exec checks it).
json=$(qvm clone s1 c4 --up --no-wait-cloud-init --timeout 180 --json --quiet 2>"$tmp/c4.err") || fail "clone --up: $json $(cat "$tmp/c4.err")"
expect_eq "$(jget "$json" '["state"]')" running "c4's state after --up"
expect_eq "$(qvm exec c4 -- head -c ${#marker} /dev/vda)" "$marker2" "c4 answers exec"
grep -q "seed hostname=c4" "$vms/c4/serial.log" || fail "c4's seed does not name it"
qvm stop c4 --timeout 30 >/dev/null || fail "stop c4"
qvm stop s1 --timeout 30 >/dev/null || fail "stop s1"

# --snapshot: an internal snapshot of the stopped disk (made here with
# qemu-img), then the disk changed: the clone has the snapshot's state.
qemu-img snapshot -c snap1 "$vms/s1/disk.qcow2"
qemu-io -f qcow2 -c "write -P 0x7a 0 512" "$vms/s1/disk.qcow2" >/dev/null
before=$(disk_sum s1)
json=$(qvm clone s1 c3 --snapshot snap1 --json --quiet) || fail "clone --snapshot: $json"
expect_eq "$(jget "$json" '["snapshot"]')" snap1 "--json snapshot"
expect_eq "$(content_head "$vms/s1/disk.qcow2")" zzzzzzzzzzzzzzzzz "s1's disk changed after snap1"
expect_eq "$(content_head "$vms/c3/disk.qcow2")" "$marker2" "c3's disk at the snapshot"
expect_eq "$(disk_sum s1)" "$before" "s1's disk after the snapshot clone"

# The clones' images go once no clone uses them.
for n in c1 c2 c3 c4; do qvm rm --force "$n" >/dev/null || fail "rm $n"; done
out=$(qvm image prune --json) || fail "prune: $out"
expect_match "$out" "${img2}" "prune removes the running clone's image"
[[ ! -e $store/sha256/${img2#sha256:} ]] || fail "the running clone's image is still stored"
[[ -f $gold_file ]] || fail "prune removed the named image"
log "ok"
