#!/usr/bin/env bash
# A guest that escapes into QEMU holds disk.qcow2 (and every qcow2 --drive)
# read-write, and can rewrite its qcow2 header to name a host file as the
# backing file or as an external data file. At the next start QEMU opens
# what the header names while it is still root (before -runas). qvm reads
# each qcow2 drive's header with its own parser before every start: the VM's
# overlay must name exactly its image (and format), a user's drive no
# backing file (no --allow-backing) and never a data file. Here `qemu-img
# rebase -u` and a python rewrite play the compromised QEMU; the sentinel
# plays /etc/shadow. A QVM_QEMU wrapper records whether QEMU was started.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v qemu-img >/dev/null || skip "needs qemu-img"

mini=$(mini_guest)
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0
  --memory 256M --net none --no-cloud-init)
sentinel=$tmp/host-secret
echo "host secret" >"$sentinel"
ran=$tmp/qemu-ran
wrapper=$tmp/qemu-wrapper
cat >"$wrapper" <<W
#!/bin/sh
echo "\$*" >>"$ran"
exec qemu-system-x86_64 "\$@"
W
chmod 755 "$wrapper"
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 64M
qemu-img create -q -f qcow2 "$tmp/user.qcow2" 16M
disk=$QVM_STATE_DIR/vms/v/disk.qcow2

qvm create v --image "$tmp/base.qcow2" --drive "$tmp/user.qcow2" "${boot[@]}" >/dev/null ||
  fail "create"
QVM_QEMU=$wrapper qvm start v >/dev/null || fail "first start"
[[ -s $ran ]] || fail "the wrapper did not record the first start"
qvm kill v >/dev/null || fail "kill"
: >"$ran"

qemu_pid() { sed -n 's/.*"qemu":{"pid":\([0-9]*\).*/\1/p' <<<"$(tr -d ' \n' <"$QVM_STATE_DIR/vms/v/vm.json")"; }
# Start must be refused with $1 in the message, and QEMU never run.
expect_refused() {
  local what=$1 want=$2 out rc
  set +e
  out=$(QVM_QEMU=$wrapper timeout 120 "$qvm_bin" start v 2>&1)
  rc=$?
  set -e
  if [[ $rc -eq 0 || -s $ran ]]; then
    local pid opened=no
    pid=$(qemu_pid)
    [[ -n $pid ]] && ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF "$sentinel" && opened=yes
    qvm kill v >/dev/null 2>&1 || true
    fail "$what: start was not refused (rc $rc, qemu started: $([[ -s $ran ]] && echo yes || echo no), qemu holds the sentinel: $opened): $out"
  fi
  [[ $rc -eq 1 ]] || fail "$what: exit code $rc, want 1: $out"
  expect_match "$out" "$want" "$what: the refusal names what the header names"
  expect_match "$out" "rewritten" "$what: the refusal says why"
}

# 1. The overlay now names the sentinel as its backing file.
qemu-img rebase -u -b "$sentinel" -F raw "$disk"
expect_refused "overlay backing" "backing file '$sentinel' .format raw., not the vm's image '$tmp/base.qcow2'"
# 2. The right file, but a backing format that makes QEMU probe it.
qemu-img rebase -u -b "$tmp/base.qcow2" -F raw "$disk"
expect_refused "overlay backing format" "backing file '$tmp/base.qcow2' .format raw., not the vm's image '$tmp/base.qcow2' .format qcow2."
# 3. A json: backing name.
qemu-img rebase -u -b "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$sentinel\"}}" -F raw "$disk"
expect_refused "overlay json backing" "backing file 'json:"

# 4. Restored, the vm starts again: the check does not refuse everything.
qemu-img rebase -u -b "$tmp/base.qcow2" -F qcow2 "$disk"
out=$(QVM_QEMU=$wrapper qvm start v 2>&1) || fail "start with the header restored: $out"
qvm kill v >/dev/null || fail "kill"
: >"$ran"

# 5. An external data file: incompatible bit 2 and a data-file extension.
add_data_file() { python3 "$QVM_SOURCE_DIR/tests/hostile/img_add_data_file.py" "$@"; }
cp "$disk" "$tmp/disk.good"
add_data_file "$disk" "$sentinel"
[[ $(qemu-img info -U --output=json "$disk") == *"\"data-file\": \"$sentinel\""* ]] ||
  fail "the data file did not land: $(qemu-img info -U "$disk")"
expect_refused "overlay data file" "external data file '$sentinel'"
cp "$tmp/disk.good" "$disk"

# 6. The user's qcow2 --drive (created without --allow-backing).
qemu-img rebase -u -b "$sentinel" -F raw "$tmp/user.qcow2"
expect_refused "drive backing" "drive '$tmp/user.qcow2': its qcow2 header names a backing file '$sentinel'"
qemu-img rebase -u -b "" "$tmp/user.qcow2"
add_data_file "$tmp/user.qcow2" "$sentinel"
expect_refused "drive data file" "external data file '$sentinel'"
log "PASS"
