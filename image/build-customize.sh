#!/usr/bin/env bash
# mmdebstrap customize hook of `qvm image build` (image/build.c): turns a
# freshly bootstrapped Debian root into something laid out like an official
# cloud image. Runs on the host with the chroot's /proc, /sys and /dev
# mounted. Compiled into qvm (cmake/EmbedFile.cmake) and written 0700 into
# the build's temp dir, so it always matches the C code that drives it.
#
#   build-customize.sh ROOTDIR FS_UUID OUTDIR TITLE
# Leaves boot.img, core.img and kernel-version in OUTDIR for image/build.c.
set -euo pipefail
root=$1
uuid=$2
out=$3
title=$4
[[ $uuid =~ ^[0-9a-f-]{36}$ ]] || { echo "customize: bad uuid '$uuid'" >&2; exit 1; }
[[ $title =~ ^[A-Za-z0-9/\ .-]+$ ]] || { echo "customize: bad title" >&2; exit 1; }
in_root() { chroot "$root" "$@"; }

kver=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -n 1)
kver=${kver#vmlinuz-}
[[ -n $kver ]] || { echo "customize: no kernel in /boot" >&2; exit 1; }
[[ -f $root/boot/initrd.img-$kver ]] || { echo "customize: no initrd for $kver" >&2; exit 1; }

# Identity: every VM makes its own machine-id, host keys and hostname.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
rm -f "$root"/etc/ssh/ssh_host_*
echo debian >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
echo 'LANG=C.UTF-8' >"$root/etc/default/locale"

cat >"$root/etc/fstab" <<FSTAB
UUID=$uuid / ext4 rw,discard,errors=remount-ro 0 1
FSTAB

# cloud-init: NoCloud only, so nothing is probed; keep the image's apt sources.
cat >"$root/etc/cloud/cloud.cfg.d/90_dpkg.cfg" <<'CFG'
# qvm image build: only the NoCloud seed (a 'cidata' disk) is looked for.
datasource_list: [ NoCloud, None ]
CFG
# grub-dpkg would only redo (slowly, under TCG) the debconf answer set below.
cat >"$root/etc/cloud/cloud.cfg.d/91_qvm.cfg" <<'CFG'
apt:
  preserve_sources_list: true
grub_dpkg:
  enabled: false
CFG
echo 'cloud-init cloud-init/datasources multiselect NoCloud, None' | in_root debconf-set-selections

# Network: netplan rendered by cloud-init, carried out by systemd-networkd, as
# in Debian's own bookworm cloud images. cloud-init writes the netplan file.
in_root systemctl enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1

# Nothing in the test guest needs the periodic apt/e2scrub jobs, nor the
# e2scrub snapshot reaper at boot (no LVM).
in_root systemctl disable apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
  fstrim.timer >/dev/null 2>&1 || true
in_root systemctl mask e2scrub_reap.service >/dev/null 2>&1

# GRUB: BIOS boot from the MBR, serial console, no menu delay. grub.cfg is
# written here rather than by update-grub, which cannot see a real disk in a
# chroot; /etc/default/grub matches it so that update-grub inside a running VM
# (a kernel upgrade) produces the same boot.
cat >"$root/etc/default/grub" <<'GRUB'
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB
echo 'grub-pc grub-pc/install_devices multiselect /dev/vda' | in_root debconf-set-selections

mkdir -p "$root/boot/grub/i386-pc"
cp "$root"/usr/lib/grub/i386-pc/*.mod "$root"/usr/lib/grub/i386-pc/*.lst "$root/boot/grub/i386-pc/"
cat >"$root/boot/grub/grub.cfg" <<CFG
set default=0
set timeout=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root $uuid
menuentry '$title (qvm image build)' {
  linux /boot/vmlinuz-$kver root=UUID=$uuid ro console=tty0 console=ttyS0,115200
  initrd /boot/initrd.img-$kver
}
CFG

# The core image goes into the gap between the MBR and the first partition
# (image/build.c writes it there); it finds the root by UUID, like grub-install's.
cat >"$root/tmp/grub-early.cfg" <<CFG
search.fs_uuid $uuid root
set prefix=(\$root)/boot/grub
CFG
in_root grub-mkimage -O i386-pc -o /tmp/core.img -c /tmp/grub-early.cfg -p /boot/grub \
  -d /usr/lib/grub/i386-pc biosdisk part_msdos ext2 search_fs_uuid
mv "$root/tmp/core.img" "$out/core.img"
rm -f "$root/tmp/grub-early.cfg"
cp "$root/usr/lib/grub/i386-pc/boot.img" "$out/boot.img"
echo "$kver" >"$out/kernel-version"
