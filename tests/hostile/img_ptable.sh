#!/usr/bin/env bash
# `qvm create --disk` larger than the image grows the image's last partition
# on the host (vm/ptable.c, vm/image_grow.c), from a partition table that
# anyone may have written. A table with overlapping partitions, a forged
# entry count, a partition past the usable area or a wrong CRC is left as
# it is: the overlay's first sectors stay the image's, the seed keeps the
# guest's growpart, and the image itself is never written. A sound table
# is grown, and util-linux's sfdisk reads the result without an error.
# (No vm boots.)
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v qemu-img >/dev/null || skip "needs qemu-img"
command -v sfdisk >/dev/null || skip "needs sfdisk (Debian package fdisk)"

linux=0FC63DAF-8483-4772-8E79-3D69D8477DE4
bios=21686148-6449-6E6F-744E-656564454649
truncate -s 32M "$tmp/good.raw"
printf 'label: gpt\nstart=4096, type=%s\nstart=2048, size=2048, type=%s\n' "$linux" "$bios" |
  sfdisk -q "$tmp/good.raw" >/dev/null
# The hostile tables, each with CRCs that match (zlib's CRC-32, not qvm's),
# but for the one whose CRC is the lie.
python3 - "$tmp" <<'EOF'
import struct, sys, zlib
d = sys.argv[1]
def load():
    return bytearray(open(f"{d}/good.raw", "rb").read())
def fix(b):
    count, size = struct.unpack_from("<II", b, 512 + 80)
    if count * size <= 16384:
        struct.pack_into("<I", b, 512 + 88, zlib.crc32(bytes(b[1024:1024 + count * size])))
    struct.pack_into("<I", b, 512 + 16, 0)
    struct.pack_into("<I", b, 512 + 16, zlib.crc32(bytes(b[512:512 + 92])))
def save(name, b):
    open(f"{d}/{name}.raw", "wb").write(b)
b = load(); struct.pack_into("<Q", b, 1024 + 128 + 40, 4096 + 100); fix(b); save("overlap", b)
b = load(); struct.pack_into("<I", b, 512 + 80, 1 << 30); fix(b); save("count", b)
b = load(); struct.pack_into("<Q", b, 1024 + 40, 1 << 40); fix(b); save("past", b)
b = load(); b[1024 + 60] ^= 1; save("crc", b)
b = load(); struct.pack_into("<Q", b, 512 + 72, 1 << 62); fix(b); save("far", b)
EOF

head_of() { qemu-img dd -O raw bs=512 count=34 "if=$1" "of=$2" 2>/dev/null; }
seed_of() { cat "$QVM_STATE_DIR/vms/$1/seed.iso"; }

for t in overlap count past crc far; do
  sum=$(sha256sum <"$tmp/$t.raw")
  out=$(qvm create "h$t" --image "$tmp/$t.raw" --disk 64M 2>&1) || fail "$t: create failed: $out"
  [[ $(sha256sum <"$tmp/$t.raw") == "$sum" ]] || fail "$t: the image was written"
  head_of "$QVM_STATE_DIR/vms/h$t/disk.qcow2" "$tmp/$t.head"
  cmp -s -n 17408 "$tmp/$t.head" "$tmp/$t.raw" || fail "$t: the hostile table was changed"
  if seed_of "h$t" | grep -aq 'growpart:'; then fail "$t: the seed turns growpart off"; fi
  compgen -G "$QVM_STATE_DIR/vms/h$t/.ptable*" >/dev/null && fail "$t: a scratch file was left"
  log "$t: left alone"
done

# The sound table: grown, read back by sfdisk from the overlay, the image
# untouched, growpart off in the seed.
sum=$(sha256sum <"$tmp/good.raw")
qvm create good --image "$tmp/good.raw" --disk 64M >/dev/null
[[ $(sha256sum <"$tmp/good.raw") == "$sum" ]] || fail "good: the image was written"
qemu-img convert -O raw "$QVM_STATE_DIR/vms/good/disk.qcow2" "$tmp/good-grown.raw"
expect_match "$(sfdisk -V "$tmp/good-grown.raw" 2>&1)" "No errors detected" "good: sfdisk verifies"
expect_match "$(sfdisk -d "$tmp/good-grown.raw" | tr -d ' ')" \
  "start=4096,size=$((64 * 2048 - 34 - 4096 + 1)),type=$linux" "good: p1 fills the disk"
expect_match "$(seed_of good | tr -d '\0')" 'mode: "off"' "good: growpart off in the seed"
compgen -G "$QVM_STATE_DIR/vms/good/.ptable*" >/dev/null && fail "good: a scratch file was left"
expect_match "$(tr -d ' \n' <"$QVM_STATE_DIR/vms/good/vm.json")" '"grow_partition":true' \
  "good: recorded in vm.json"
# After a resize, the next start grows it again (the guest's growpart is
# off): the table is the one the shim read before QEMU. The image boots to
# nothing; only the table matters.
qvm resize good 96M >/dev/null
qvm start good >/dev/null || fail "good: start after the resize failed"
qemu-img convert -U -O raw "$QVM_STATE_DIR/vms/good/disk.qcow2" "$tmp/good-96.raw"
qvm rm --force good >/dev/null
expect_match "$(sfdisk -V "$tmp/good-96.raw" 2>&1)" "No errors detected" "resized: sfdisk verifies"
expect_match "$(sfdisk -d "$tmp/good-96.raw" | tr -d ' ')" \
  "start=4096,size=$((96 * 2048 - 34 - 4096 + 1)),type=$linux" "resized: p1 grown at the start"
# Without qvm's seed the partitions stay as the image has them.
qvm create plain --image "$tmp/good.raw" --disk 64M --no-cloud-init >/dev/null
head_of "$QVM_STATE_DIR/vms/plain/disk.qcow2" "$tmp/plain.head"
cmp -s -n 17408 "$tmp/plain.head" "$tmp/good.raw" || fail "--no-cloud-init: the table was changed"
log "PASS"
