# shellcheck shell=bash
# Sourced by tests/vm/mount_mini*.sh (after tests/e2e/lib.sh): a guest
# kernel from the host's /boot that has the modules a test needs, and the
# start of a busybox initramfs holding them.
#
#   kernel_initramfs WHAT MODULE...
#
# MODULE: paths under /lib/modules/VERSION (kernel/fs/fuse/virtiofs.ko);
# the first kernel in /boot that has them all is taken (else skip, naming
# WHAT). Sets kver, and root=$tmp/initramfs with bin/busybox, dev, proc,
# sys, mnt/rw, mnt/ro and lib/mod/NN-NAME.ko: the modules with their
# dependencies (modules.dep), in load order. Virtio's PCI transport is
# always added. The caller writes $root/init and packs it.
kernel_initramfs() {
  local what=$1 k v m ok
  shift
  kver=
  for k in /boot/vmlinuz-*; do
    v=${k#/boot/vmlinuz-}
    ok=1
    for m in "$@"; do [[ -f /lib/modules/$v/$m ]] || ok=; done
    [[ -n $ok ]] && kver=$v && break
  done
  [[ -n $kver ]] || skip "no kernel in /boot with $what (package linux-image-amd64)"
  local busybox
  busybox=$(command -v busybox) || skip "needs busybox-static"
  file -L "$busybox" | grep -q 'statically linked' || skip "busybox is not static (busybox-static)"
  local moddir=/lib/modules/$kver
  # Modules in dependency order (modules.dep lists a module's
  # dependencies; busybox insmod loads them in passes anyway).
  local -A seen=()
  local order=()
  add_module() {
    local rel=$1 dep
    [[ -n ${seen[$rel]:-} ]] && return 0
    seen[$rel]=1
    for dep in $(awk -v m="$rel:" '$1 == m { $1 = ""; print }' "$moddir/modules.dep"); do
      add_module "$dep"
    done
    order+=("$rel")
  }
  for m in kernel/drivers/virtio/virtio_pci.ko "$@"; do
    [[ -f $moddir/$m ]] || continue # built in
    add_module "$m"
  done
  root=$tmp/initramfs
  mkdir -p "$root"/{bin,dev,proc,sys,mnt/rw,mnt/ro,lib/mod}
  cp "$busybox" "$root/bin/busybox"
  local i=0
  for m in "${order[@]}"; do
    cp "$moddir/$m" "$root/lib/mod/$(printf %02d $i)-$(basename "$m")"
    i=$((i + 1))
  done
}
