#!/usr/bin/env bash
# Host folder mounts (--mount, virtio-9p) against a real guest kernel.
# Debian's cloud kernel (the cloud and mini guests') is built without 9p
# (CONFIG_NET_9P is not set), so this boots the host's generic Debian kernel
# with a busybox initramfs of our own holding its 9p modules. The guest's
# init mounts both tags, writes, makes a symlink, a setuid file and a device
# node, tries to write the :ro mount (also after a remount rw, as root), and
# powers off; the host then checks what landed in the directories. The
# guest mounts the :ro one read-write: the refusals are QEMU's.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
# 9p here, whatever the host has (mount_mini_virtiofs.sh tests virtiofs).
export QVM_MOUNT_TRANSPORT=9p

run_rc() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}

# A kernel with 9p modules, and a busybox initramfs holding them.
. "$QVM_SOURCE_DIR/tests/vm/kernel_initramfs.sh"
kernel_initramfs "9p modules" kernel/net/9p/9pnet_virtio.ko kernel/fs/9p/9p.ko
cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for pass in 1 2 3; do for m in /lib/mod/*.ko; do insmod "$m" 2>/dev/null; done; done
opts=trans=virtio,version=9p2000.L,msize=131072
mount -t 9p -o $opts qvm0 /mnt/rw && echo "M19 rw mounted"
mount -t 9p -o $opts qvm1 /mnt/ro && echo "M19 ro mounted"
echo "M19 host says: $(cat /mnt/rw/host.txt)"
echo "M19 ro says: $(cat /mnt/ro/ro.txt)"
echo from-guest >/mnt/rw/guest.txt && echo "M19 wrote guest.txt"
mkdir /mnt/rw/gdir && echo nested >/mnt/rw/gdir/f && echo "M19 wrote gdir/f"
ln -s /etc/passwd /mnt/rw/link && echo "M19 link reads $(readlink /mnt/rw/link)"
echo '#!/bin/sh' >/mnt/rw/suid && chmod 4755 /mnt/rw/suid && echo "M19 suid mode $(stat -c %a /mnt/rw/suid)"
mknod /mnt/rw/null c 1 3 && echo "M19 made a device node"
# qvm1 is mounted read-write in the guest: only QEMU (readonly=on) refuses.
if err=$(sh -c 'echo x >/mnt/ro/new' 2>&1); then echo "M19 ro write ok"; else echo "M19 ro write refused: $err"; fi
mount -o remount,rw /mnt/ro 2>/dev/null
if echo y >/mnt/ro/new2 2>/dev/null; then echo "M19 ro remount write ok"; else echo "M19 ro remount write refused"; fi
if rm /mnt/ro/ro.txt 2>/dev/null; then echo "M19 ro rm ok"; else echo "M19 ro rm refused"; fi
sync
umount /mnt/rw /mnt/ro
echo "M19 done"
poweroff -f
INIT
chmod 0755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/initrd.img"

share=$tmp/share ro=$tmp/ro-share
mkdir -p "$share" "$ro"
echo "from the host" >"$share/host.txt"
echo "read only" >"$ro/ro.txt"
chmod 0644 "$share/host.txt" "$ro/ro.txt"
boot=(--kernel "/boot/vmlinuz-$kver" --initrd "$tmp/initrd.img" --append 'console=ttyS0 panic=-1'
  --memory 256M --net none --no-cloud-init)

# Bad --mount values: usage errors (2) or create's refusals (1), no vm left.
for bad in "$share" "$share:" "$share:rel/path" "$share:/" "$share:/a/../b" "$share:/x:rx" \
  "$share:/a b"; do
  run_rc qvm create bad "${boot[@]}" --mount "$bad"
  expect_eq "$rc" 2 "--mount '$bad'"
  expect_match "$out" "--mount" "the message names --mount ('$bad')"
done
for bad in "$tmp/missing:/m" "$share/host.txt:/m" "/:/m" "$QVM_STATE_DIR:/m" "$tmp:/m"; do
  mkdir -p "$QVM_STATE_DIR/vms"
  run_rc qvm create bad "${boot[@]}" --mount "$bad"
  [[ $rc == 1 || $rc == 3 ]] || fail "--mount '$bad': exit $rc: $out"
  [[ ! -e $QVM_STATE_DIR/vms/bad ]] || fail "a refused --mount '$bad' left a vm"
done
expect_match "$(qvm create bad "${boot[@]}" --mount "$share/host.txt:/m" 2>&1)" "is not a directory" "a file"
expect_match "$(qvm create bad "${boot[@]}" --mount "$QVM_STATE_DIR/vms:/m" 2>&1)" "qvm's state directory" "state dir"

# As root QEMU runs as qvm-qemu: a directory it cannot write is named at create.
chmod 0755 "$share"
run_rc qvm create m1 "${boot[@]}" --mount "$share:/mnt/rw" --mount "$ro:/mnt/ro:ro"
expect_eq "$rc" 1 "a directory qemu's user cannot write"
expect_match "$out" "cannot read and write" "the refusal says what is missing"
expect_match "$out" "setfacl" "and how to grant it"
chmod 0777 "$share" # the :ro one needs read and search only (0755)

# qvm info shows the mounts with their tags.
out=$(qvm create m1 "${boot[@]}" --mount "$share:/mnt/rw" --mount "$ro:/mnt/ro:ro" 2>&1) ||
  fail "create: $out"
info=$(qvm info m1)
expect_match "$info" "^mount: +$share -> /mnt/rw \(9p tag qvm0, read-write\)" "info, rw mount"
expect_match "$info" "^mount: +$ro -> /mnt/ro \(9p tag qvm1, read-only\)" "info, ro mount"
json=$(qvm info m1 --json)
expect_eq "$(python3 -c 'import json,sys; m=json.load(sys.stdin)["mounts"]; print(m[1]["host"], m[1]["guest"], m[1]["readonly"], m[1]["tag"])' <<<"$json")" \
  "$ro /mnt/ro True qvm1" "info --json mounts"

run_rc timeout 240 "$qvm_bin" run m1 --timeout 30
serial=$(cat "$QVM_STATE_DIR/vms/m1/serial.log")
expect_eq "$rc" 0 "the guest ran its checks and powered off (serial: $(tail -n 20 <<<"$serial"))"
expect_match "$serial" "M19 rw mounted" "rw mount in the guest"
expect_match "$serial" "M19 ro mounted" "ro mount in the guest"
expect_match "$serial" "M19 host says: from the host" "the guest reads a host file"
expect_match "$serial" "M19 ro says: read only" "the guest reads the ro mount"
expect_match "$serial" "M19 wrote guest.txt" "the guest writes"
expect_match "$serial" "M19 link reads /etc/passwd" "a guest symlink reads back in the guest"
expect_match "$serial" "M19 ro write refused: .*Read-only file system" "QEMU refuses a write to the :ro mount"
expect_match "$serial" "M19 ro remount write refused" "a write after remount rw, as the guest's root"
expect_match "$serial" "M19 ro rm refused" "a removal on the :ro mount"
expect_match "$serial" "M19 done" "the guest finished"

# What the guest made, seen from the host.
expect_eq "$(cat "$share/guest.txt")" from-guest "the guest's file on the host"
expect_eq "$(cat "$share/gdir/f")" nested "the guest's nested file on the host"
qemu_uid=$(id -u qvm-qemu)
expect_eq "$(stat -c '%u %a' "$share/guest.txt")" "$qemu_uid 600" "owned by qemu's user, 0600 (mapped-xattr)"
expect_eq "$(stat -c '%a' "$share/gdir")" 700 "a guest directory is 0700 on the host"
[[ -f $share/link && ! -L $share/link ]] || fail "a guest symlink is a real symlink on the host"
expect_eq "$(cat "$share/link")" /etc/passwd "the symlink's target kept as file content"
expect_eq "$(stat -c '%a' "$share/suid")" 600 "no setuid bit on the host"
[[ -f $share/null && ! -c $share/null ]] || fail "a guest device node is a device on the host"
[[ ! -e $ro/new && ! -e $ro/new2 && -f $ro/ro.txt ]] || fail "the :ro directory changed: $(ls -la "$ro")"

if command -v getfattr >/dev/null; then
  expect_match "$(getfattr -n user.virtfs.mode "$share/suid" 2>&1)" "user.virtfs.mode=" \
    "the guest's mode is kept in an xattr"
fi

# Before each start: a symlink put in place of the directory is refused.
mv "$share" "$tmp/share-moved"
ln -s "$tmp/share-moved" "$share"
run_rc timeout 60 "$qvm_bin" start m1
[[ $rc != 0 ]] || fail "start with the shared directory replaced by a symlink"
expect_match "$out" "now resolves to" "the start names the symlink"
rm "$share"
mv "$tmp/share-moved" "$share"

qvm rm m1 --force >/dev/null 2>&1 || fail "rm"
log "PASS"
