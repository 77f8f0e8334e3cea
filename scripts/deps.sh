#!/usr/bin/env bash
# Installs every Debian package qvm needs to build, test and benchmark.
# Idempotent: when everything is present it only runs dpkg-query.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libjson-c-dev libssh2-1-dev libsodium-dev libyaml-dev libcmocka-dev
  libmnl-dev libnftnl-dev libnftables-dev
  # run
  qemu-system-x86 qemu-utils ovmf
  # test guests
  busybox-static dropbear-bin openssh-sftp-server cpio kmod mmdebstrap e2fsprogs fdisk grub-pc-bin
  # test peers and readers (read-back only, never used by qvm itself)
  libarchive-tools genisoimage xorriso cloud-image-utils
  dnsmasq-base isc-dhcp-client dhcpcd-base udhcpc
  openssh-server openssh-client iproute2 util-linux
  hyperfine jq python3
)

missing=()
for p in "${packages[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $st == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  sudo=sudo
else
  sudo=
fi
echo "deps: installing ${missing[*]}" >&2
# Packages such as openssh-server must not start host services here.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  added_policy=1
fi
trap '[[ $added_policy -eq 1 ]] && $sudo rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
