#!/usr/bin/env bash
# `qvm create` reads a user's image, which a guest may have written (a raw
# disk it had, given again without format=). qemu-img info opens the files
# the header names while it reads it: as root that is /dev/watchdog (opening
# it arms it), /etc/shadow, or a fifo that hangs create forever. qvm reads a
# qcow2 header (and a vmdk text descriptor) itself first and refuses a data
# file, a backing file or an extent it was not allowed; qemu-img then runs as
# the qemu user (qvm-qemu), on the fd qvm opened, and is killed after 30 s.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v qemu-img >/dev/null || skip "needs qemu-img"

chmod 711 "$tmp"
pub=$tmp/pub
mkdir -m 755 "$pub"
mkfifo -m 666 "$pub/fifo"
# qemu-img create would open the fifo: add the data file the way a QEMU
# the guest took over would.
qemu-img create -q -f qcow2 "$pub/df.qcow2" 16M
python3 "$QVM_SOURCE_DIR/tests/hostile/img_add_data_file.py" "$pub/df.qcow2" "$pub/fifo"
qemu-img create -q -f qcow2 -u -b "$pub/fifo" -F raw "$pub/bk.qcow2" 16M
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M

# create with a bound: the old code hangs on the fifo.
create() {
  set +e
  out=$(timeout 100 "$qvm_bin" create "$@" --no-cloud-init 2>&1)
  rc=$?
  set -e
  [[ $rc -ne 124 ]] || fail "create $1 hung on the fifo (killed by the test after 100 s)"
  [[ $rc -ne 0 ]] || fail "create $1 was accepted: $out"
  [[ ! -e $QVM_STATE_DIR/vms/$1 ]] || fail "a refused create left vm $1"
}

# 1. A qcow2 whose external data file is the fifo, as --drive without format.
create d1 --image "$tmp/base.qcow2" --drive "$pub/df.qcow2"
expect_match "$out" "external data file '$pub/fifo'" "data file: the refusal names it"
# 2. Even with --allow-backing: a data file is never used.
create d2 --image "$tmp/base.qcow2" --drive "$pub/df.qcow2" --allow-backing
expect_match "$out" "external data file '$pub/fifo'" "data file with --allow-backing"
# 3. As --image.
create d3 --image "$pub/df.qcow2"
expect_match "$out" "external data file '$pub/fifo'" "data file as --image"
# 4. The fifo as backing file.
create d4 --image "$tmp/base.qcow2" --drive "$pub/bk.qcow2"
expect_match "$out" "backing file '$pub/fifo'" "backing fifo: the refusal names it"

# 5. A vmdk whose extent is the fifo, allowed by the user: qemu-img is
# killed after its time limit instead of hanging create.
printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 16384 FLAT "%s" 0\n' \
  "$pub/fifo" >"$pub/fifo.vmdk"
create d5 --image "$tmp/base.qcow2" --drive "$pub/fifo.vmdk,readonly" --allow-backing
expect_match "$out" "did not finish within 30 s" "vmdk fifo extent: bounded"
# Without --allow-backing it is refused at once, naming the extent.
create d6 --image "$tmp/base.qcow2" --drive "$pub/fifo.vmdk,readonly"
expect_match "$out" "extent '$pub/fifo'" "vmdk fifo extent: refused"

# 6. qemu-img runs as the qemu user, not root. A descriptor the qemu user
# cannot read is never probed as root: without the "# Disk DescriptorFile"
# line qvm's own check does not see it, but qemu-img's probe still takes
# "version=1" for a vmdk and would open its extent (a stand-in for
# /etc/shadow or /dev/watchdog) as root.
truncate -s 8M "$pub/root-only"
chmod 600 "$pub/root-only"
printf 'version=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW\t16384 FLAT "%s" 0\n' \
  "$pub/root-only" >"$tmp/sneaky.img"
chmod 600 "$tmp/sneaky.img"
create d7 --image "$tmp/base.qcow2" --drive "$tmp/sneaky.img"
expect_match "$out" "will not let qemu-img probe it as root" "a root-only image is not probed as root"
# Said raw, it is read as raw: nothing in it is followed.
out=$("$qvm_bin" create d7 --image "$tmp/base.qcow2" --drive "$tmp/sneaky.img,format=raw" \
  --no-cloud-init 2>&1) || fail "create d7 (format=raw): $out"
# With --allow-backing the user vouches for what the image names: read by
# its own path (so relative extents resolve), the extent is accepted.
printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 16384 FLAT "root-only" 0\n' \
  >"$pub/relative.vmdk"
chmod 644 "$pub/relative.vmdk"
out=$("$qvm_bin" create d8 --image "$tmp/base.qcow2" --drive "$pub/relative.vmdk,readonly" \
  --allow-backing --no-cloud-init 2>&1) || fail "create d8 (relative extent, allowed): $out"
log "PASS"
