#!/usr/bin/env bash
# A user's image that names another file (a qcow2 backing file here) makes
# QEMU open that file too: qvm refuses it unless the user says
# --allow-backing, and the refusal names the file and the flag. The same for
# --drive. (No vm boots: create is where the image is read.)
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v qemu-img >/dev/null || skip "needs qemu-img"

truncate -s 8M "$tmp/base.raw"
qemu-img create -q -f qcow2 -b "$tmp/base.raw" -F raw "$tmp/user.qcow2"
vmjson() { tr -d ' \n' <"$QVM_STATE_DIR/vms/$1/vm.json"; }

for how in "--image" "--drive"; do
  name=b${how#--}
  args=(--no-cloud-init)
  set +e
  out=$(qvm create "$name" "$how" "$tmp/user.qcow2" "${args[@]}" 2>&1)
  rc=$?
  set -e
  [[ $rc -ne 0 ]] || fail "$how with a backing file was accepted without --allow-backing"
  expect_match "$out" "backing file '$tmp/base.raw'" "$how: the refusal names the backing file"
  expect_match "$out" "--allow-backing" "$how: the refusal names --allow-backing"
  [[ ! -e $QVM_STATE_DIR/vms/$name ]] || fail "$how: a refused create left vm $name"

  out=$(qvm create "$name" "$how" "$tmp/user.qcow2" --allow-backing "${args[@]}" 2>&1) ||
    fail "$how with --allow-backing: $out"
  expect_match "$(vmjson "$name")" '"allow_backing":true' "$how: the choice is recorded"
done
expect_match "$(vmjson bimage)" '"image_format":"qcow2"' "detected format recorded"
info=$(qemu-img info -U --output=json "$QVM_STATE_DIR/vms/bimage/disk.qcow2")
expect_match "$info" '"backing-filename-format": "qcow2"' "overlay pins the image's format"
expect_match "$(vmjson bdrive)" "\"path\":\"$tmp/user.qcow2\",\"format\":\"qcow2\"" "drive format recorded"

# A vmdk descriptor whose extent is a host file is the same thing.
printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 16384 FLAT "%s" 0\n' \
  "$tmp/base.raw" >"$tmp/desc.vmdk"
set +e
out=$(qvm create bvmdk --image "$tmp/desc.vmdk" --no-cloud-init 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "a vmdk whose extent is a host file was accepted"
expect_match "$out" "extent '$tmp/base.raw'" "the refusal names the extent"
log "PASS"
