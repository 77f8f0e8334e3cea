#!/usr/bin/env bash
# Builds the *cloud* test guest, or finds it in the cache: a Debian 12 disk
# image made from Debian packages with mmdebstrap, laid out like an official
# cloud image (MBR, GRUB for BIOS boot, one ext4 root partition that
# cloud-init grows) with cloud-init set to NoCloud only.
#
# Output directory: disk.qcow2, info.json, packages.txt. Its path is the LAST
# line of stdout; everything else goes to stderr. Needs root (mmdebstrap in
# root mode, chroot) only when the image is not cached yet.
#
#   QVM_CACHE_DIR   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/qvm)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
# What Debian's own bookworm cloud images use, minus everything heavy.
packages=(
  systemd-sysv udev dbus
  linux-image-cloud-amd64 grub-pc
  cloud-init cloud-guest-utils fdisk e2fsprogs
  netplan.io systemd-resolved iproute2 netbase
  openssh-server openssh-sftp-server sudo qemu-guest-agent
)

log() { echo "cloud-guest: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# The host's own Debian sources (so mirrors, snapshots and keys match), in
# one-line form, keeping only entries for this suite and its -updates and
# -security companions. Third-party repositories are left out.
host_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk -v s="$suite" '$1 == "deb" {
      i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) ~ ("^" s "(-updates|-security)?$")) print }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk -v s="$suite" -f - "$f" <<'AWK'
function flush(   n, m, k, t, u, x, types, uris, suites, opt) {
  if (enabled != "no" && f["Types"] ~ /(^| )deb( |$)/) {
    opt = f["Signed-By"] != "" ? "[signed-by=" f["Signed-By"] "] " : ""
    m = split(f["URIs"], uris, " "); n = split(f["Suites"], suites, " ")
    for (u = 1; u <= m; u++) for (k = 1; k <= n; k++)
      if (suites[k] ~ ("^" s "(-updates|-security)?$"))
        print "deb " opt uris[u] " " suites[k] " " f["Components"]
  }
  delete f; enabled = ""
}
/^#/ { next }
/^[ \t]*$/ { flush(); next }
/^[A-Za-z-]+:/ { key = $1; sub(/:$/, "", key); v = $0; sub(/^[^:]*:[ \t]*/, "", v)
                 if (key == "Enabled") enabled = tolower(v); else f[key] = v; next }
END { flush() }
AWK
  done
}

# Cache key: this script, the hook, the sources and the candidate versions of
# the packages asked for (apt-cache reads the local lists: no download).
cache_key() {
  local versions
  versions=$(apt-cache policy "${packages[@]}" 2>/dev/null |
    awk '/^[^ ]/ { p = $1 } /Candidate:/ { print p, $2 }')
  if [[ $(wc -l <<<"$versions") -ne ${#packages[@]} ]] || grep -q '(none)' <<<"$versions"; then
    die "apt has no candidate for some guest packages (run 'apt-get update'):
$versions"
  fi
  { sha256sum "$here/build.sh" "$here/customize.sh" | cut -d' ' -f1
    host_sources
    echo "$versions"; } | sha256sum | cut -c1-16
}

cache_root=${QVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qvm}/guests
sources=$(host_sources)
[[ -n $sources ]] || die "no Debian $suite entries in /etc/apt/sources.list*"
key=$(cache_key)
out=$cache_root/cloud-$key

if [[ -f $out/disk.qcow2 && -f $out/info.json ]]; then
  echo "$out"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "building the cloud guest needs root (mmdebstrap --mode=root)"
for tool in mmdebstrap sfdisk mkfs.ext4 qemu-img flock chroot; do
  command -v "$tool" >/dev/null || die "'$tool' not found (run scripts/deps.sh)"
done

mkdir -p "$cache_root"
exec 9>"$cache_root/cloud.lock"
flock 9
if [[ -f $out/disk.qcow2 && -f $out/info.json ]]; then # built while we waited
  echo "$out"
  exit 0
fi

tmp=$(mktemp -d "$cache_root/.cloud-$key.XXXXXX")
cleanup() {
  # mmdebstrap unmounts on its own, but an interrupted run may leave the
  # chroot's /proc, /sys or /dev mounted: never recurse into those.
  awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT

start=$(date +%s)
uuid=$(cat /proc/sys/kernel/random/uuid)
printf '%s\n' "$sources" >"$tmp/sources.list"
log "building $out (mmdebstrap $suite, this takes a few minutes)"
include=$(IFS=,; echo "${packages[*]}")
mmdebstrap --mode=root --variant=apt --format=directory \
  --include="$include" \
  --aptopt='Acquire::Languages "none"' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --customize-hook="\"$here/customize.sh\" \"\$1\" $uuid \"$tmp\"" \
  "$suite" "$tmp/root" "$tmp/sources.list" >&2
bootstrap_done=$(date +%s)

dpkg-query --admindir="$tmp/root/var/lib/dpkg" -W -f '${Package} ${Version}\n' >"$tmp/packages.txt"
used_mib=$(du -s --block-size=1M --one-file-system "$tmp/root" | cut -f1)
# Room for the journal, inode tables and a little slack: 1 GiB normally.
fs_mib=$(( used_mib * 3 / 2 + 128 ))
(( fs_mib < 1023 )) && fs_mib=1023
(( fs_mib + 1 < 1536 )) || die "root tree is ${used_mib} MiB, too big for a small test image"
disk_mib=$(( fs_mib + 1 ))

# No partition scanning here (losetup -P makes no loopNp1): make the root
# filesystem as a file of the partition's size and copy it into place.
mkfs.ext4 -q -F -L root -U "$uuid" -d "$tmp/root" "$tmp/root.ext4" "${fs_mib}M" >&2
rm -rf --one-file-system "$tmp/root"

truncate -s "${disk_mib}M" "$tmp/disk.raw"
sfdisk --quiet "$tmp/disk.raw" >&2 <<EOF
label: dos
unit: sectors
start=2048, type=83, bootable
EOF
dd if="$tmp/root.ext4" of="$tmp/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$tmp/root.ext4"

# GRUB for BIOS boot, as grub-bios-setup would do it for a core image
# embedded after the MBR: boot.img's code (not the partition table) in sector
# 0, its drive-check jump replaced by NOPs for a hard disk, core.img from
# sector 1. core.img's own blocklist already points at sector 2 onwards.
core_bytes=$(stat -c %s "$tmp/core.img")
(( core_bytes <= (2048 - 1) * 512 )) || die "core.img ($core_bytes bytes) does not fit the MBR gap"
dd if="$tmp/boot.img" of="$tmp/disk.raw" bs=440 count=1 conv=notrunc status=none
printf '\x90\x90' | dd of="$tmp/disk.raw" bs=1 seek=$((0x66)) conv=notrunc status=none
dd if="$tmp/core.img" of="$tmp/disk.raw" bs=512 seek=1 conv=notrunc status=none

qemu-img convert -f raw -O qcow2 "$tmp/disk.raw" "$tmp/disk.qcow2"
rm -f "$tmp/disk.raw" "$tmp/boot.img" "$tmp/core.img" "$tmp/sources.list"
end=$(date +%s)

version_of() { awk -v p="$1" '$1 == p { print $2 }' "$tmp/packages.txt"; }
cat >"$tmp/info.json" <<EOF
{
  "name": "cloud",
  "distribution": "debian",
  "suite": "$suite",
  "format": "qcow2",
  "disk": "disk.qcow2",
  "virtual_size_bytes": $(( disk_mib * 1024 * 1024 )),
  "file_size_bytes": $(stat -c %s "$tmp/disk.qcow2"),
  "root_tree_mib": $used_mib,
  "partition_table": "dos",
  "root_partition": { "number": 1, "start_sector": 2048, "fs": "ext4", "uuid": "$uuid", "label": "root" },
  "boot": "bios-grub-mbr",
  "kernel": "$(cat "$tmp/kernel-version")",
  "packages": {
    "linux-image-cloud-amd64": "$(version_of linux-image-cloud-amd64)",
    "systemd": "$(version_of systemd)",
    "cloud-init": "$(version_of cloud-init)",
    "openssh-server": "$(version_of openssh-server)",
    "grub-pc": "$(version_of grub-pc)",
    "netplan.io": "$(version_of netplan.io)"
  },
  "package_count": $(wc -l <"$tmp/packages.txt"),
  "build_seconds": $(( end - start )),
  "bootstrap_seconds": $(( bootstrap_done - start )),
  "cache_key": "$key"
}
EOF
rm -f "$tmp/kernel-version"

chmod 755 "$tmp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
# Keep this image and the one before it; older ones only fill the disk.
find "$cache_root" -maxdepth 1 -name 'cloud-*' -type d -printf '%T@ %p\n' | sort -rn |
  tail -n +3 | cut -d' ' -f2- | while read -r old; do rm -rf --one-file-system "$old"; done
log "built in $(( end - start ))s: $(du -h --apparent-size "$out/disk.qcow2" | cut -f1) qcow2, ${disk_mib} MiB virtual"
echo "$out"
