#!/usr/bin/env bash
# Builds the qvm mini test guest: Debian's cloud kernel plus a busybox
# initramfs with dropbear, from Debian packages only (see README.md).
#
# Output: ${QVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qvm}/guests/mini-<key>/
# holding vmlinuz and initrd.img, where <key> hashes every input (package
# versions, the host files copied in, this script and rootfs/). The last line
# of stdout is that directory; diagnostics go to stderr. A cached run prints
# it at once; a build happens in a temp dir renamed into place, under a lock.
set -euo pipefail
work=

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rootfs_src=$here/rootfs
cache_root=${QVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qvm}/guests
[[ $cache_root == /* ]] || cache_root=$PWD/$cache_root
kernel_meta=linux-image-cloud-amd64

# Modules the guest loads at boot, by name; their dependencies are added
# from modules.dep. cdrom ones load only when no virtio seed disk exists
# (the cloud kernel has no AHCI driver, so a q35 SATA CD-ROM is not seen).
core_modules=(virtio_pci virtio_net virtio_blk isofs button evdev)
cdrom_modules=(ata_piix sr_mod virtio_scsi)

# Host binaries copied into the guest, with the libraries they need.
busybox_bin=/bin/busybox
dropbear_bins=(/usr/sbin/dropbear /usr/bin/dropbearconvert /usr/bin/dropbearkey)
sftp_server=/usr/lib/openssh/sftp-server
host_packages=(busybox-static dropbear-bin openssh-sftp-server)

log() { echo "mini: $*" >&2; }
die() {
  echo "mini: error: $*" >&2
  exit 1
}

need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || die "'$t' not found; run scripts/deps.sh"
  done
}

# memo NAME FINGERPRINT COMMAND...: prints COMMAND's output, remembered in
# $cache_root/.mini-NAME for as long as FINGERPRINT is unchanged. A cached
# run must be fast, and here apt-cache takes ~0.5 s (no pkgcache), ldd
# ~0.3 s and every process ~10 ms, so the content key itself is remembered
# against a stat fingerprint of every input, as git's index does.
memo() {
  local file=$cache_root/.mini-$1 fingerprint=$2 output
  local -a saved=()
  shift 2
  [[ -r $file ]] && mapfile -t saved <"$file"
  if [[ ${#saved[@]} -gt 1 && ${saved[0]} == "$fingerprint" ]]; then
    printf '%s\n' "${saved[@]:1}"
    return
  fi
  output=$("$@")
  mkdir -p "$cache_root"
  printf '%s\n%s\n' "$fingerprint" "$output" >"$file.$$"
  mv -f "$file.$$" "$file"
  printf '%s\n' "$output"
}

# Prints a hash of the names, sizes, times, inodes and modes of files $@.
stat_fingerprint() {
  stat -c '%n %s %.9Y %.9Z %i %a' "$@" | sha256sum | cut -d' ' -f1
}

# Prints the files whose metadata stands for apt's view of the archive.
apt_state_files() {
  local f
  for f in /var/lib/apt/lists/* /etc/apt /etc/apt/* /etc/apt/*/*; do
    [[ -e $f && $f != */lock && $f != */partial ]] && echo "$f"
  done
}

# Prints "<package>=<version>" of the kernel image behind $kernel_meta.
kernel_package() {
  local resolved
  resolved=$(apt-cache show --no-all-versions "$kernel_meta" 2>/dev/null |
    sed -n -E 's/^Depends:.*(linux-image-[0-9][^ ,]*-cloud-amd64) \(= ([^)]+)\).*/\1=\2/p' |
    head -n 1)
  [[ -n $resolved ]] ||
    die "cannot resolve '$kernel_meta' to a versioned kernel package (apt-get update?)"
  echo "$resolved"
}

resolve_kernel() {
  local -a files
  mapfile -t files < <(apt_state_files)
  memo kernel "$(stat_fingerprint "${files[@]}")" kernel_package
}

# Prints the absolute paths of the shared libraries and loader of $@.
ldd_libs() {
  ldd "$@" 2>/dev/null | awk '
    $2 == "=>" && $3 ~ /^\// { print $3 }
    $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u
}

shared_libs() {
  memo libs "$(stat_fingerprint "$@" /etc/ld.so.cache)" ldd_libs "$@"
}

# Prints the lines the cache key hashes: versions and contents of inputs.
key_inputs() {
  local kernel=$1
  echo "kernel $kernel"
  dpkg-query -W -f='${Package}=${Version}\n' "${host_packages[@]}" 2>/dev/null || true
  local -a libs
  mapfile -t libs < <(shared_libs "${dropbear_bins[@]}" "$sftp_server")
  sha256sum "$busybox_bin" "${dropbear_bins[@]}" "$sftp_server" "${libs[@]}"
  echo "modules ${core_modules[*]} / ${cdrom_modules[*]}"
  echo "build.sh $(sha256sum <"$here/build.sh")"
  (cd "$rootfs_src" && find . -print0 | LC_ALL=C sort -z |
    xargs -0 stat -c '%n %a' && find . -type f -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum)
}

# Prints the cache key: a hash over the content of every input.
content_key() {
  key_inputs "$(resolve_kernel)" | sha256sum | cut -c 1-16
}

# Prints a hash of the metadata of every input and of what apt and dpkg
# know, which changes whenever content_key might.
inputs_fingerprint() {
  local -a files
  mapfile -t files < <(apt_state_files)
  shopt -s globstar dotglob nullglob
  files+=(/var/lib/dpkg/status /etc/ld.so.cache "$busybox_bin" "${dropbear_bins[@]}"
    "$sftp_server" "$here/build.sh" "$rootfs_src" "$rootfs_src"/**)
  shopt -u globstar dotglob nullglob
  stat_fingerprint "${files[@]}"
}

# Prints the module names in load order (dependencies first) for $@.
module_order() {
  local moddir=$1
  shift
  declare -A path_of=() deps_of=() seen=()
  local line file deps name
  while IFS= read -r line; do
    file=${line%%:*}
    deps=${line#*:}
    name=${file##*/}
    name=${name%%.ko*}
    path_of[$name]=$file
    deps_of[$name]=$deps
  done <"$moddir/modules.dep"
  visit() {
    local n=$1 dn i
    [[ -n ${seen[$n]:-} ]] && return
    seen[$n]=1
    [[ -n ${path_of[$n]:-} ]] || die "module '$n' is not in the kernel package"
    local -a list
    read -ra list <<<"${deps_of[$n]}"
    for ((i = ${#list[@]} - 1; i >= 0; i--)); do
      dn=${list[i]##*/}
      visit "${dn%%.ko*}"
    done
    echo "$n ${path_of[$n]}"
  }
  for name in "$@"; do
    name=${name//-/_}
    if [[ -z ${path_of[$name]:-} ]] &&
      grep -q "/$name\.ko" "$moddir/modules.builtin"; then
      log "module $name is built in"
      continue
    fi
    visit "$name"
  done
}

# Copies module $2 (path relative to $1) to $3/<name>.ko, uncompressed.
install_module() {
  local moddir=$1 rel=$2 dest=$3 name
  name=${rel##*/}
  name=${name%%.ko*}
  case $rel in
  *.ko) cp "$moddir/$rel" "$dest/$name.ko" ;;
  *.ko.xz) xz -dc "$moddir/$rel" >"$dest/$name.ko" ;;
  *.ko.zst) zstd -qdc "$moddir/$rel" >"$dest/$name.ko" ;;
  *.ko.gz) gzip -dc "$moddir/$rel" >"$dest/$name.ko" ;;
  *) die "unknown module format '$rel'" ;;
  esac
}

# Copies host file $1 into root $2 at the same path, dereferenced.
copy_host_file() {
  mkdir -p "$2$(dirname "$1")"
  cp -L "$1" "$2$1"
}

fetch_kernel() {
  local pkg=$1 work=$2
  mkdir -p "$work/deb" "$work/kernel"
  local -a opts=(-q)
  # As root, apt would try to download as _apt into our private temp dir.
  [[ $(id -u) -eq 0 ]] && opts+=(-o APT::Sandbox::User=root)
  log "downloading $pkg"
  (cd "$work/deb" && apt-get download "${opts[@]}" "$pkg" >&2) ||
    die "apt-get download '$pkg' failed"
  dpkg-deb -x "$work"/deb/*.deb "$work/kernel"
}

build_rootfs() {
  local work=$1 root=$2 kdir moddir kver name rel
  kdir=$work/kernel
  kver=$(ls "$kdir/lib/modules")
  [[ $(wc -w <<<"$kver") -eq 1 ]] || die "expected one kernel in the package, got '$kver'"
  moddir=$kdir/lib/modules/$kver
  depmod -b "$kdir" "$kver"

  cp -a "$rootfs_src/." "$root/"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/lib,proc,sys,dev,run,tmp,root,mnt,var/log}
  mkdir -p "$root/lib/modules" "$root/etc/qvm-mini" "$root/etc/dropbear"
  chmod 1777 "$root/tmp"
  chmod 700 "$root/root"

  cp "$busybox_bin" "$root/bin/busybox"
  "$busybox_bin" --list-full | while read -r applet; do
    [[ -e $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
  done
  local f
  local -a libs
  mapfile -t libs < <(shared_libs "${dropbear_bins[@]}" "$sftp_server")
  [[ ${#libs[@]} -gt 1 ]] || die "ldd found no shared libraries for dropbear"
  for f in "${dropbear_bins[@]}" "${libs[@]}"; do
    copy_host_file "$f" "$root"
  done
  # dropbear runs sftp-server (OpenSSH's; scp uses SFTP) from this path.
  cp "$sftp_server" "$root/usr/lib/sftp-server"

  module_order "$moddir" "${core_modules[@]}" >"$work/modules.core"
  module_order "$moddir" "${cdrom_modules[@]}" >"$work/modules.cdrom"
  local list
  for list in core cdrom; do
    : >"$root/etc/qvm-mini/modules.$list"
    while read -r name rel; do
      grep -qx "$name" "$root/etc/qvm-mini/modules.core" && continue
      install_module "$moddir" "$rel" "$root/lib/modules"
      echo "$name" >>"$root/etc/qvm-mini/modules.$list"
    done <"$work/modules.$list"
  done
  cp "$kdir/boot/vmlinuz-$kver" "$work/out/vmlinuz"
  echo "$kver" >"$work/out/kernel-release"
}

# Writes the newc cpio of $1 to $2, reproducibly.
pack_initrd() {
  local root=$1 out=$2
  find "$root" -exec touch -h -d @0 {} +
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -6 >"$out"
}

main() {
  need_tools apt-cache apt-get dpkg-deb dpkg-query depmod ldd cpio gzip sha256sum flock
  if ! "$busybox_bin" --list-full >/dev/null 2>&1; then
    die "static busybox '$busybox_bin' not found; run scripts/deps.sh"
  fi
  local f
  for f in "${dropbear_bins[@]}" "$sftp_server"; do
    [[ -x $f ]] || die "'$f' not found; run scripts/deps.sh"
  done

  local kernel key out
  key=$(memo key "$(inputs_fingerprint)" content_key)
  out=$cache_root/mini-$key
  if [[ -f $out/vmlinuz && -f $out/initrd.img ]]; then
    echo "$out"
    return
  fi

  mkdir -p "$cache_root"
  exec 9>"$cache_root/.mini.lock"
  flock 9
  if [[ -f $out/vmlinuz && -f $out/initrd.img ]]; then
    echo "$out"
    return
  fi

  kernel=$(resolve_kernel)
  # Holding the lock, any other build dir was left by a killed build.
  rm -rf "$cache_root"/.mini-build.*
  log "building $out ($kernel)"
  work=$(mktemp -d "$cache_root/.mini-build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  trap 'exit 1' INT TERM HUP
  mkdir -p "$work/out" "$work/root"
  fetch_kernel "$kernel" "$work"
  build_rootfs "$work" "$work/root"
  pack_initrd "$work/root" "$work/out/initrd.img"
  key_inputs "$kernel" >"$work/out/inputs"
  chmod 755 "$work/out"
  mv -T "$work/out" "$out"
  log "built $out"
  echo "$out"
}

main "$@"
