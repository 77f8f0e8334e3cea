#!/usr/bin/env bash
# Host folder mounts over virtiofs against a real guest kernel: the host's
# generic Debian kernel (virtiofs.ko, as the cloud kernel has) and a busybox
# initramfs of our own, as mount_mini.sh does for 9p. The guest is hostile:
# as root it tries to chown to root, set setuid and setgid bits, make a
# symlink, a device node and a FIFO, set an xattr, write through '..', and
# write the :ro mount (also after a remount rw); the host then checks what
# landed. Then the processes: virtiofsd runs as qvm-qemu, and none is left
# after the guest powers off, after QEMU is killed, after stop, after rm;
# a RAM snapshot is refused while the mount exists.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
export QVM_MOUNT_TRANSPORT=virtiofs

run_rc() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}

[[ -x ${QVM_VIRTIOFSD:-/usr/lib/qemu/virtiofsd} ]] || skip "needs virtiofsd (qemu-system-common)"
id qvm-qemu >/dev/null 2>&1 || skip "needs the qvm-qemu user (QEMU drops to it)"
. "$QVM_SOURCE_DIR/tests/vm/kernel_initramfs.sh"
kernel_initramfs "virtiofs.ko" kernel/fs/fuse/virtiofs.ko
# busybox has no setfattr: a static helper, when a static libc is there.
xat=false
cat >"$tmp/xat.c" <<'C'
#include <stdio.h>
#include <sys/xattr.h>
int main(int argc, char **argv) {
  if (argc != 3) return 2;
  if (setxattr(argv[1], argv[2], "\1\0\0\2\0\0\0\0", 8, 0) < 0) {
    perror("setxattr");
    return 1;
  }
  return 0;
}
C
if cc -static -O2 -o "$root/bin/xat" "$tmp/xat.c" 2>/dev/null; then
  xat=true
else
  log "no static libc: the xattr refusals are not checked"
fi
cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for pass in 1 2 3; do for m in /lib/mod/*.ko; do insmod "$m" 2>/dev/null; done; done
mount -t virtiofs qvm0 /mnt/rw && echo "V19 rw mounted"
mount -t virtiofs qvm1 /mnt/ro && echo "V19 ro mounted"
if grep -q qvmtest=idle /proc/cmdline; then
  echo "V19 idle"
  while :; do sleep 1; done
fi
echo "V19 host says: $(cat /mnt/rw/host.txt)"
echo "V19 ro says: $(cat /mnt/ro/ro.txt)"
echo from-guest >/mnt/rw/guest.txt && echo "V19 wrote guest.txt"
mkdir /mnt/rw/gdir && echo nested >/mnt/rw/gdir/f && echo "V19 wrote gdir/f"
try() { if err=$(sh -c "$1" 2>&1); then echo "V19 $2 ok"; else echo "V19 $2 refused: $err"; fi; }
try 'echo "#!/bin/sh" >/mnt/rw/suid && chmod 4755 /mnt/rw/suid' chmod-suid
try 'chmod 2755 /mnt/rw/suid' chmod-sgid
try 'chmod 0755 /mnt/rw/suid' chmod-plain
try 'chmod 0777 /mnt/rw/suid' chmod-world
try 'mkdir -m 0777 /mnt/rw/wdir' mkdir-world
try 'chown 0:0 /mnt/rw/guest.txt' chown-root
try 'chown 1000:1000 /mnt/rw/guest.txt' chown-user
try 'ln -s /etc/passwd /mnt/rw/link' symlink
try 'ln /mnt/rw/guest.txt /mnt/rw/hard' hardlink
try 'mknod /mnt/rw/null c 1 3' mknod
try 'mkfifo /mnt/rw/fifo' mkfifo
if [ -x /bin/xat ]; then
  try '/bin/xat /mnt/rw/guest.txt security.capability' setxattr
  try '/bin/xat /mnt/rw/guest.txt user.x' setxattr-user
fi
try 'echo esc >/mnt/rw/gdir/../../escape.txt' dotdot
try 'echo x >/mnt/ro/new' ro-write
mount -o remount,rw /mnt/ro 2>/dev/null
try 'echo y >/mnt/ro/new2' ro-remount-write
try 'rm /mnt/ro/ro.txt' ro-rm
try 'chmod 0777 /mnt/ro/ro.txt' ro-chmod
echo "V19 suid mode $(stat -c %a /mnt/rw/suid)"
sync
umount /mnt/rw /mnt/ro
echo "V19 done"
poweroff -f
INIT
chmod 0755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/initrd.img"

share=$tmp/share ro=$tmp/ro-share
mkdir -p "$share" "$ro"
echo "from the host" >"$share/host.txt"
echo "read only" >"$ro/ro.txt"
chmod 0644 "$share/host.txt" "$ro/ro.txt"
chmod 0777 "$share"
chmod 0755 "$ro"
boot=(--kernel "/boot/vmlinuz-$kver" --initrd "$tmp/initrd.img" --memory 256M --net none
  --no-cloud-init)

# virtiofsd processes serving this test's directories (their environment
# names the share; looked at, never signalled).
vfs_procs() {
  local p
  for p in $(pgrep -x virtiofsd); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxE "QVM_VIRTIOFS_SOURCE=($share|$ro)" &&
      echo "$p"
  done
  true
}

out=$(qvm create m1 "${boot[@]}" --append 'console=ttyS0 panic=-1' \
  --mount "$share:/mnt/rw" --mount "$ro:/mnt/ro:ro" 2>&1) || fail "create: $out"
info=$(qvm info m1)
expect_match "$info" "^mount: +$share -> /mnt/rw \(virtiofs tag qvm0, read-write\)" "info, rw"
expect_match "$info" "^mount: +$ro -> /mnt/ro \(virtiofs tag qvm1, read-only\)" "info, ro"
expect_eq "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["spec"]["mounts"][1]["transport"])' \
  <"$QVM_STATE_DIR/vms/m1/vm.json")" virtiofs "vm.json records the transport"

run_rc timeout 240 "$qvm_bin" run m1 --timeout 30
serial=$(cat "$QVM_STATE_DIR/vms/m1/serial.log")
ctx="(qvm: $out; qemu.log: $(tail -n 10 "$QVM_STATE_DIR/vms/m1/qemu.log" 2>/dev/null); serial: $(tail -n 40 <<<"$serial"))"
expect_eq "$rc" 0 "the guest ran its checks and powered off $ctx"
expect_match "$serial" "V19 rw mounted" "rw mount in the guest $ctx"
expect_match "$serial" "V19 ro mounted" "ro mount in the guest"
expect_match "$serial" "V19 host says: from the host" "the guest reads a host file"
expect_match "$serial" "V19 ro says: read only" "the guest reads the ro mount"
expect_match "$serial" "V19 wrote guest.txt" "the guest writes"
expect_match "$serial" "V19 wrote gdir/f" "the guest makes a directory"
expect_match "$serial" "V19 chmod-suid refused: .*Operation not permitted" "no setuid bit"
expect_match "$serial" "V19 chmod-sgid refused: .*Operation not permitted" "no setgid bit"
expect_match "$serial" "V19 chmod-plain ok" "a plain chmod works"
expect_match "$serial" "V19 chmod-world refused: .*Operation not permitted" "no world-writable mode"
expect_match "$serial" "V19 mkdir-world refused" "no world-writable directory"
expect_match "$serial" "V19 chown-user refused" "no chown to another uid"
expect_match "$serial" "V19 symlink refused: .*Operation not permitted" "no symlink"
expect_match "$serial" "V19 hardlink ok" "a hard link inside the directory works"
expect_match "$serial" "V19 mknod refused" "no device node"
expect_match "$serial" "V19 mkfifo refused" "no FIFO"
if $xat; then
  expect_match "$serial" "V19 setxattr refused" "no security.capability"
  expect_match "$serial" "V19 setxattr-user refused" "no xattrs at all"
fi
expect_match "$serial" "V19 ro-write refused: .*Read-only file system" "a write to :ro"
expect_match "$serial" "V19 ro-remount-write refused: .*Read-only file system" "after remount rw"
expect_match "$serial" "V19 ro-rm refused" "a removal on :ro"
expect_match "$serial" "V19 ro-chmod refused" "a chmod on :ro"
expect_match "$serial" "V19 suid mode 755" "the guest sees no setuid bit"
expect_match "$serial" "V19 done" "the guest finished"

qemu_uid=$(id -u qvm-qemu)
expect_eq "$(cat "$share/guest.txt")" from-guest "the guest's file on the host"
expect_eq "$(cat "$share/gdir/f")" nested "the guest's nested file on the host"
for f in guest.txt gdir gdir/f suid hard; do
  expect_eq "$(stat -c %u:%g "$share/$f")" "$qemu_uid:$(id -g qvm-qemu)" "$f belongs to qvm-qemu"
done
expect_eq "$(stat -c %a "$share/suid")" 755 "no setuid or setgid bit on the host"
[[ -z $(find "$share" "$ro" -mindepth 1 \( -type l -o -type p -o -type c -o -type b -o -perm /6002 \) -print) ]] ||
  fail "a link, FIFO, device or setuid file on the host: $(ls -laR "$share")"
[[ ! -e $tmp/escape.txt && ! -e $share/escape.txt ]] || fail "a write through '..' left the directory"
[[ ! -e $ro/new && ! -e $ro/new2 && -f $ro/ro.txt ]] || fail "the :ro directory changed: $(ls -la "$ro")"
expect_eq "$(stat -c %a "$ro/ro.txt")" 644 "the :ro file's mode"
if command -v getfattr >/dev/null; then
  [[ -z $(getfattr -d -m - "$share/guest.txt" 2>/dev/null) ]] || fail "an xattr on the guest's file"
fi
expect_eq "$(vfs_procs)" "" "no virtiofsd left after the guest powered off"
[[ -z $(find "$QVM_RUNTIME_DIR" -name '*.vfs' 2>/dev/null) ]] || fail "a virtiofs socket was left"

# The processes while it runs, and after each way it can end.
qvm rm m1 >/dev/null 2>&1 || fail "rm m1"
out=$(qvm create m1 "${boot[@]}" --disk 64M --append 'console=ttyS0 panic=-1 qvmtest=idle' \
  --mount "$share:/mnt/rw" --mount "$ro:/mnt/ro:ro" 2>&1) || fail "create again: $out"
wait_idle() {
  local i
  for i in $(seq 1 120); do
    grep -q "V19 idle" "$QVM_STATE_DIR/vms/m1/serial.log" 2>/dev/null && return 0
    sleep 1
  done
  fail "the guest did not mount and idle: $(tail -n 20 "$QVM_STATE_DIR/vms/m1/serial.log")"
}
out=$(qvm start m1 --timeout 120 2>&1) || fail "start: $out"
wait_idle
pids=$(vfs_procs)
[[ $(wc -w <<<"$pids") -ge 2 ]] || fail "two virtiofsd processes while it runs, got '$pids'"
for p in $pids; do
  expect_eq "$(stat -c %u "/proc/$p")" "$qemu_uid" "virtiofsd $p runs as qvm-qemu"
  [[ $(awk '/^Seccomp:/ {print $2}' "/proc/$p/status") == 2 ]] || fail "virtiofsd $p has no seccomp filter"
  [[ $(readlink "/proc/$p/ns/user") != $(readlink /proc/self/ns/user) ]] ||
    fail "virtiofsd $p is in the host's user namespace"
done
sock=$(find "$QVM_RUNTIME_DIR" -name 'qvm0.vfs')
[[ -S $sock ]] || fail "no socket qvm0.vfs in the run dir"
expect_eq "$(stat -c %a "$sock")" 600 "the socket is 0600"
expect_eq "$(stat -c %a "$(dirname "$sock")")" 700 "in a 0700 directory"
run_rc qvm snapshot create m1 s1
[[ $rc != 0 ]] || fail "a RAM snapshot with a virtiofs mount"
expect_match "$out" "vhost-user-fs|migrat" "the refusal names the device: $out"
log "snapshot refused: $out"
# QEMU killed: its virtiofsds go too.
qemu_pid=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["runtime"]["qemu"]["pid"])' \
  <"$QVM_STATE_DIR/vms/m1/vm.json")
kill -9 "$qemu_pid"
for i in $(seq 1 50); do [[ -z $(vfs_procs) ]] && break; sleep 0.2; done
expect_eq "$(vfs_procs)" "" "no virtiofsd left after QEMU was killed"
for i in $(seq 1 50); do qvm info m1 | grep -q '^state: *running' || break; sleep 0.2; done
out=$(qvm start m1 --timeout 120 2>&1) || fail "start again: $out"
wait_idle
# The shim killed: QEMU and its virtiofsds go on (the mounts keep working
# for a shim that adopts QEMU); QEMU killed then: they end too.
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['runtime']['$1']['pid'])" \
  <"$QVM_STATE_DIR/vms/m1/vm.json"; }
shim_pid=$(field shim) qemu_pid=$(field qemu)
kill -9 "$shim_pid"
sleep 1
[[ $(vfs_procs | wc -w) -ge 2 ]] || fail "the virtiofsds died with the shim while QEMU runs"
kill -9 "$qemu_pid"
for i in $(seq 1 50); do [[ -z $(vfs_procs) ]] && break; sleep 0.2; done
expect_eq "$(vfs_procs)" "" "no virtiofsd left once QEMU is gone (the shim killed before)"
out=$(qvm start m1 --timeout 120 2>&1) || fail "start after the shim was killed: $out"
wait_idle
out=$(qvm stop m1 --timeout 5 2>&1) || true
expect_eq "$(vfs_procs)" "" "no virtiofsd left after stop"
out=$(qvm start m1 --timeout 120 2>&1) || fail "start a third time: $out"
wait_idle
qvm rm m1 --force >/dev/null 2>&1 || fail "rm"
for i in $(seq 1 25); do [[ -z $(vfs_procs) ]] && break; sleep 0.2; done
expect_eq "$(vfs_procs)" "" "no virtiofsd left after rm --force"
log "PASS"
