#!/usr/bin/env bash
# The header check before each start (img_rewrite.sh) is one layer; QEMU's
# -blockdev graph is the other: the VM's disk gets its backing as a node
# ("base") and a user's qcow2 drive "backing": null, so QEMU does not open
# the backing file a header names even when the header changes after the
# check. Here a QVM_QEMU wrapper rewrites both headers to name the sentinel
# (playing /etc/shadow) after qvm checked them and just before it execs
# QEMU; QEMU must start, and must not hold the sentinel open.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v qemu-img >/dev/null || skip "needs qemu-img"

mini=$(mini_guest)
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0
  --memory 256M --net none --no-cloud-init)
sentinel=$tmp/host-secret
echo "host secret" >"$sentinel"
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 64M
qemu-img create -q -f qcow2 "$tmp/user.qcow2" 16M
disk=$QVM_STATE_DIR/vms/v/disk.qcow2
wrapper=$tmp/qemu-wrapper
cat >"$wrapper" <<W
#!/bin/sh
qemu-img rebase -u -b "$sentinel" -F raw "$disk" || exit 99
qemu-img rebase -u -b "$sentinel" -F raw "$tmp/user.qcow2" || exit 99
exec qemu-system-x86_64 "\$@"
W
chmod 755 "$wrapper"

qvm create v --image "$tmp/base.qcow2" --drive "$tmp/user.qcow2" "${boot[@]}" >/dev/null ||
  fail "create"
out=$(QVM_QEMU=$wrapper qvm start v 2>&1) || fail "start: $out"
[[ $(qemu-img info -U --output=json "$disk") == *"\"backing-filename\": \"$sentinel\""* ]] ||
  fail "the wrapper did not rewrite the overlay: $(qemu-img info -U "$disk")"
pid=$(sed -n 's/.*"qemu":{"pid":\([0-9]*\).*/\1/p' <<<"$(tr -d ' \n' <"$QVM_STATE_DIR/vms/v/vm.json")")
[[ -n $pid && -d /proc/$pid ]] || fail "no qemu pid in vm.json"
fds=$(ls -l "/proc/$pid/fd" 2>&1)
! grep -qF "$sentinel" <<<"$fds" || fail "qemu opened the backing file a rewritten header names: $fds"
grep -qF "$tmp/base.qcow2" <<<"$fds" || fail "qemu does not hold the vm's image (the check is blind): $fds"
qvm kill v >/dev/null || fail "kill"
log "PASS"
