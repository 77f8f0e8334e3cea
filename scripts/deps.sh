#!/usr/bin/env bash
# Installs every Debian package qvm needs to build, test and benchmark.
# Idempotent: when everything is present it only runs dpkg-query.
set -euo pipefail

# scripts/deps.sh [GROUP...]: the groups to install; build, run, image and test
# by default.
#   build  what compiles qvm
#   run    what qvm runs (QEMU and its firmware)
#   image  what builds a Debian cloud image from packages (the demo's guest)
#   test   test guests, peers, readers and benchmark tools
#   bench  the peers the benchmarks in bench/ compare with (libvirt,
#          virt-install); not in the default set: `scripts/deps.sh bench`
# QVM_DEPS_LOG=FILE sends apt's output there and prints one line instead.
build=(build-essential cmake pkg-config libjson-c-dev libssh2-1-dev libsodium-dev libyaml-dev
       libmnl-dev libnftnl-dev libnftables-dev libcurl4-openssl-dev libssl-dev libarchive-dev
       libnbd-dev libext2fs-dev comerr-dev libmicrohttpd-dev)
# qemu-utils and qemu-system-common: qemu-img and qemu-storage-daemon (qvm diff);
# libnbd0 and libext2fs2 come with their -dev packages in build.
run=(qemu-system-x86 qemu-utils qemu-system-common ovmf libnbd0 libext2fs2 libmicrohttpd12)
image=(mmdebstrap e2fsprogs fdisk grub-pc-bin util-linux)
test=(
  clang clang-format libclang-rt-14-dev
  # test guests; linux-image-amd64: Debian's generic kernel, which has 9p
  # (the cloud kernel the test guests boot has not): tests/vm/mount_mini.sh
  busybox-static dropbear-bin openssh-sftp-server cpio kmod linux-image-amd64
  # test peers and readers (read-back only, never used by qvm itself)
  libarchive-tools genisoimage xorriso cloud-image-utils
  dnsmasq-base isc-dhcp-client dhcpcd-base udhcpc
  openssh-server openssh-client iproute2
  hyperfine jq python3 curl
  # the Python SDK: its tests (tests/python) and its offline install
  python3-pytest python3-setuptools python3-pip
  # qvm tools: its definitions are checked against JSON Schema 2020-12
  python3-jsonschema
  # man pages rendered in the drift test (man, col)
  man-db bsdextrautils
  # the Debian package build and its check (tests/install/test_deb.sh)
  debhelper lintian fakeroot dpkg-dev
  # qvm diff --ansible: the generated playbooks are checked and applied;
  # qvm review apply and edit run ansible-playbook
  ansible-core
  # cloud-init's own user-data code reads qvm's seeds (tests/seed/cloudinit_keys.sh
  # unpacks Debian's cloud-init package; these are its Python dependencies)
  python3-yaml python3-jinja2 python3-requests python3-configobj python3-jsonpatch
  python3-netifaces python3-oauthlib
  # a disk image that boots (syslinux on FAT): tests/qvmd/provisioner.sh
  syslinux mtools dosfstools
  # qvmd's review page, driven headless by puppeteer-core (tests/node):
  # tests/qvmd/review_page.sh
  chromium
)
# bench/lib/libvirtd.sh runs a libvirtd of its own (no libvirt-daemon-system:
# no units, no users); bench/e2e adds virt-install and libvirt's default
# network, whose NAT rules need iptables (inside the benchmark's netns).
bench=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients virtinst iptables dnsmasq-base)
# cmocka is a build dependency of the test programs, which cmake always
# configures: keep it with build so that a build without tests works too.
build+=(libcmocka-dev)

groups=("$@")
[[ ${#groups[@]} -gt 0 ]] || groups=(build run image test)
packages=()
for g in "${groups[@]}"; do
  case $g in
    build) packages+=("${build[@]}") ;;
    run) packages+=("${run[@]}") ;;
    image) packages+=("${image[@]}") ;;
    test) packages+=("${test[@]}") ;;
    bench) packages+=("${bench[@]}") ;;
    *) echo "deps: unknown group '$g' (build, run, image, test, bench)" >&2; exit 2 ;;
  esac
done

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
echo "deps: installing ${#missing[@]} packages: ${missing[*]}" >&2
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
apt_run() {
  if [[ -n ${QVM_DEPS_LOG:-} ]]; then
    "$@" >>"$QVM_DEPS_LOG" 2>&1 || { echo "deps: '$*' failed; see $QVM_DEPS_LOG" >&2; return 1; }
  else
    "$@"
  fi
}
apt_run $sudo apt-get update -q
# --no-upgrade: what is installed already stays as it is.
apt_run $sudo apt-get install -y -q --no-install-recommends --no-upgrade "${missing[@]}"
