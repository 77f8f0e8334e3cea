#!/usr/bin/env bash
# Builds the *cloud* test guest with `qvm image build`, or finds it in the
# cache: a Debian 12 disk image made from Debian packages with mmdebstrap,
# laid out like an official cloud image (MBR, GRUB for BIOS boot, one ext4
# root partition) with cloud-init set to NoCloud only (image/build.c and its
# hook image/build-customize.sh).
#
# Output directory: disk.qcow2, info.json, packages.txt. Its path is the LAST
# line of stdout; everything else goes to stderr. Needs root (mmdebstrap in
# root mode, chroot) and the qvm binary only when the image is not cached yet.
#
#   build.sh [QVM]  QVM: the qvm binary (default $QVM_BINARY_DIR/qvm, else
#                   the qvm on PATH)
#   QVM_CACHE_DIR   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/qvm)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
suite=bookworm
size=1G
# image/build_opts.c's base packages (what every `qvm image build` installs):
# their candidate versions go into the cache key.
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

# Cache key: this script, the builder's code and hook, the host's apt
# sources (qvm image build uses them) and the candidate versions of the
# packages (apt-cache reads the local lists: no download).
cache_key() {
  local versions
  versions=$(apt-cache policy "${packages[@]}" 2>/dev/null |
    awk '/^[^ ]/ { p = $1 } /Candidate:/ { print p, $2 }')
  if [[ $(wc -l <<<"$versions") -ne ${#packages[@]} ]] || grep -q '(none)' <<<"$versions"; then
    die "apt has no candidate for some guest packages (run 'apt-get update'):
$versions"
  fi
  { sha256sum "$here/build.sh" "$src/image/build.c" "$src/image/build_opts.c" \
      "$src/image/build-customize.sh" | cut -d' ' -f1
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    echo "$suite $size"
    echo "$versions"; } | sha256sum | cut -c1-16
}

cache_root=${QVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qvm}/guests
key=$(cache_key)
out=$cache_root/cloud-$key

if [[ -f $out/disk.qcow2 && -f $out/info.json ]]; then
  echo "$out"
  exit 0
fi

qvm=${1:-}
if [[ -z $qvm && -n ${QVM_BINARY_DIR:-} ]]; then qvm=$QVM_BINARY_DIR/qvm; fi
[[ -n $qvm ]] || qvm=$(command -v qvm) || die "no qvm binary (give it as an argument or set QVM_BINARY_DIR)"
[[ -x $qvm ]] || die "'$qvm' is not an executable qvm binary"
[[ $(id -u) -eq 0 ]] || die "building the cloud guest needs root (mmdebstrap --mode=root)"
for tool in jq flock; do
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
trap 'rm -rf --one-file-system "$tmp"' EXIT

log "building $out with '$qvm image build' (mmdebstrap $suite, this takes a few minutes)"
"$qvm" image build --distro debian-12 --size "$size" --output "$tmp/disk.qcow2" --json \
  >"$tmp/build.json"

jq -r '.packages | to_entries[] | "\(.key) \(.value)"' "$tmp/build.json" >"$tmp/packages.txt"
jq --arg key "$key" '{
  name: "cloud",
  distribution: "debian",
  suite: .suite,
  format: .format,
  disk: "disk.qcow2",
  virtual_size_bytes: .virtual_size,
  file_size_bytes: .file_size,
  root_tree_mib: (.root_tree_bytes / 1048576 | floor),
  partition_table: .partition_table,
  root_partition: { number: 1, start_sector: 2048, fs: "ext4", uuid: .fs_uuid, label: "root" },
  boot: .boot,
  kernel: .kernel,
  sha256: .digest,
  packages: (.packages | { "linux-image-cloud-amd64", systemd, "cloud-init", "openssh-server",
                           "grub-pc", "netplan.io" }),
  package_count: .package_count,
  build_seconds: (.build_ms / 1000 | floor),
  bootstrap_seconds: (.bootstrap_ms / 1000 | floor),
  cache_key: $key
}' "$tmp/build.json" >"$tmp/info.json"
rm -f "$tmp/build.json"

chmod 755 "$tmp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
# Keep this image and the one before it; older ones only fill the disk.
find "$cache_root" -maxdepth 1 -name 'cloud-*' -type d -printf '%T@ %p\n' | sort -rn |
  tail -n +3 | cut -d' ' -f2- | while read -r old; do rm -rf --one-file-system "$old"; done
log "built: $(du -h --apparent-size "$out/disk.qcow2" | cut -f1) qcow2, $(jq .virtual_size_bytes "$out/info.json") bytes virtual"
echo "$out"
