#!/usr/bin/env bash
# qvm diff VM on a stopped vm created from a qcow2 image (no boot): its disk
# changed offline to a second file system state, then diffed against its
# image (the default and --from-image), between internal snapshots (--from,
# --to), --json; running (at a temporary snapshot, deleted after); an
# unknown snapshot is QVM_ENOTFOUND (exit 3); nothing is left in the store's
# tmp/ or the runtime dir.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v qemu-storage-daemon >/dev/null || skip "needs qemu-storage-daemon (scripts/deps.sh)"

run_rc() {
  set +e
  out=$("$@" 2>"$tmp/stderr")
  rc=$?
  err=$(cat "$tmp/stderr")
  set -e
}
A=$tmp/A B=$tmp/B
mkdir -p "$A/etc" "$B/etc" "$B/opt/app"
echo one > "$A/etc/conf"
echo two > "$B/etc/conf"
echo gone > "$A/etc/gone"
echo app > "$B/opt/app/bin"
chmod 750 "$B/opt/app/bin"
mkfs.ext4 -q -d "$A" "$tmp/a.raw" 16M 2>/dev/null
mkfs.ext4 -q -d "$B" "$tmp/b.raw" 16M 2>/dev/null
qemu-img convert -O qcow2 "$tmp/a.raw" "$tmp/golden.qcow2"

qvm create v1 --image "$tmp/golden.qcow2" --image-format qcow2 --memory 256M >/dev/null ||
  fail "create v1"
disk=$QVM_STATE_DIR/vms/v1/disk.qcow2
[[ -f $disk ]] || fail "no disk.qcow2"
run_rc qvm diff v1
expect_eq "$rc/$out" "0/" "a fresh vm has no changes"

qemu-img snapshot -c base "$disk"
qemu-img convert -n -f raw -O qcow2 "$tmp/b.raw" "$disk" # state B, over the overlay
qemu-img snapshot -c after "$disk"
want="M /etc/conf (content)
D /etc/gone
A /opt
A /opt/app
A /opt/app/bin"
for args in "" "--from-image" "--from base" "--from base --to after" "--to after"; do
  # shellcheck disable=SC2086
  run_rc qvm diff v1 $args
  expect_eq "$rc" 0 "diff $args: $err"
  expect_eq "$out" "$want" "diff $args"
done
run_rc qvm diff v1 --to base
expect_eq "$rc/$out" "0/" "the base snapshot against the image"
run_rc qvm diff v1 --from after --to base
expect_eq "$rc" 0 "reverse: $err"
expect_eq "$(grep -c '^A /etc/gone$' <<<"$out")" 1 "reverse: the deleted file is added"
run_rc qvm diff v1 --json
python3 -c '
import json, sys
d = json.loads(sys.argv[1])
c = {x["path"]: x for x in d["changes"]}
assert c["/opt/app/bin"]["to"]["mode"] == "0750", c
assert c["/etc/conf"]["changed"] == ["content"], c
' "$out" || fail "json: $out"
# --ansible from a vm's snapshots: the playbook and the contents it copies.
mkdir -p "$tmp/tmpdir"
run_rc env TMPDIR="$tmp/tmpdir" "$qvm_bin" diff v1 --from base --to after --ansible -o "$tmp/pb"
expect_eq "$rc" 0 "--ansible: $err"
pb=$(cat "$tmp/pb/playbook.yml")
expect_match "$pb" 'dest: !unsafe "/opt/app/bin"' "--ansible: the new file is copied"
expect_match "$pb" 'mode: "0750"' "--ansible: with its mode"
expect_match "$pb" 'path: !unsafe "/etc/gone"' "--ansible: the deleted file"
expect_eq "$(cat "$tmp/pb/files/$(echo app | sha256sum | cut -c1-64)")" app "--ansible: files/<sha256>"
expect_eq "$(ls -A "$tmp/tmpdir")" "" "--ansible: the kept contents were removed"
if command -v ansible-playbook >/dev/null; then
  ANSIBLE_HOME=$tmp/ansible-home ansible-playbook --syntax-check -i localhost, "$tmp/pb/playbook.yml" >/dev/null ||
    fail "--ansible: syntax-check"
fi
run_rc qvm diff v1 --from nosuch
expect_eq "$rc" 3 "unknown snapshot: $err"
expect_match "$err" "no snapshot 'nosuch'" "unknown snapshot"
run_rc qvm diff v1 --from 'bad,name'
expect_eq "$rc" 1 "a bad snapshot name: $err"
expect_match "$err" "snapshot name .* is invalid" "a bad snapshot name"
run_rc qvm diff nosuchvm
expect_eq "$rc" 3 "unknown vm: $err"
# Running (no bootable disk: the firmware spins, QEMU runs): read at a
# temporary internal snapshot, which is gone afterwards.
qvm start v1 --timeout 120 >/dev/null || fail "start v1"
for args in "" "--from base"; do
  # shellcheck disable=SC2086
  run_rc qvm diff v1 $args
  expect_eq "$rc" 0 "running, diff $args: $err"
  expect_eq "$out" "$want" "running, diff $args"
done
snaps=$(qemu-img snapshot -U -l "$disk")
[[ $snaps != *qvm-import-* ]] || fail "a temporary snapshot was left: $snaps"
expect_match "$snaps" "after" "the user's snapshots are kept"
qvm kill v1 >/dev/null || fail "kill v1"
expect_eq "$(ls -A "$QVM_STATE_DIR/images/tmp" 2>/dev/null || true)" "" "store tmp/ left over"
expect_eq "$(ls -A "$QVM_RUNTIME_DIR" 2>/dev/null | grep '^diff-' || true)" "" "socket dir left over"
log "PASS"
