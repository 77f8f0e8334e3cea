#!/usr/bin/env bash
# Boots the cloud test guest under TCG through SeaBIOS + GRUB with a NoCloud
# seed and checks, over SSH with a pinned host key, that cloud-init created the
# user, installed the host key, grew the root filesystem and finished.
#
# The seed ISO is made with genisoimage here: test-only scaffolding until qvm's
# own seed writer and `qvm up` take over this path. The cached image is never
# written: the VM runs on a qcow2 overlay in a temp dir.
#
# Exit 77 = skipped (no QEMU, no image); under CI=true that is a failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
boot_timeout=${QVM_CLOUD_BOOT_TIMEOUT:-300}
marker='qvm-test: cloud-init-done'

log() { echo "cloud-boot: $*" >&2; }
skip() {
  if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
    log "FAIL (a skip is a failure under CI=true): $*"
    exit 1
  fi
  log "SKIP: $*"
  exit 77
}

for tool in qemu-system-x86_64 qemu-img ssh ssh-keygen genisoimage; do
  command -v "$tool" >/dev/null || skip "needs '$tool' on PATH (run scripts/deps.sh)"
done

# QVM_CLOUD_IMAGE_DIR=DIR boots an already built image instead.
image_dir=${QVM_CLOUD_IMAGE_DIR:-}
[[ -n $image_dir ]] || image_dir=$("$here/build.sh" | tail -n 1) || skip "the cloud guest could not be built (tests/guests/cloud/build.sh)"
[[ -f $image_dir/disk.qcow2 ]] || skip "no disk.qcow2 in '$image_dir'"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qvm-test-cloud-boot-XXXXXX")
qemu_pid=
cleanup() {
  # QVM_CLOUD_BOOT_LOG=FILE keeps the serial console for a look afterwards.
  [[ -n ${QVM_CLOUD_BOOT_LOG:-} && -f $tmp/serial.log ]] && cp "$tmp/serial.log" "$QVM_CLOUD_BOOT_LOG"
  if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill "$qemu_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
  fi
  rm -rf -- "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

serial=$tmp/serial.log
fail() {
  log "FAIL: $*"
  if [[ -s $serial ]]; then
    log "last lines of the serial console:"
    tail -n 40 "$serial" | sed 's/\r$//' >&2
  fi
  exit 1
}
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Keys: the client key, and the guest's host key, pinned before first boot.
ssh-keygen -q -t ed25519 -N '' -C qvm-test -f "$tmp/id_ed25519"
ssh-keygen -q -t ed25519 -N '' -C qvm-test-host -f "$tmp/host_ed25519"

mac=52:54:00:$(od -An -N3 -tx1 /dev/urandom | awk '{ print $1 ":" $2 ":" $3 }')
mkdir "$tmp/seed"
cat >"$tmp/seed/meta-data" <<EOF
instance-id: qvm-test-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
local-hostname: qvm-cloud-test
EOF
cat >"$tmp/seed/network-config" <<EOF
version: 2
ethernets:
  nic0:
    match:
      macaddress: "$mac"
    dhcp4: true
EOF
{
  cat <<EOF
#cloud-config
users:
  - name: qvm
    shell: /bin/bash
    lock_passwd: true
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    ssh_authorized_keys:
      - $(cat "$tmp/id_ed25519.pub")
ssh_pwauth: false
ssh_keys:
  ed25519_public: $(cat "$tmp/host_ed25519.pub")
  ed25519_private: |
EOF
  sed 's/^/    /' "$tmp/host_ed25519"
  cat <<EOF
runcmd:
  - [sh, -c, 'echo "$marker" >/dev/ttyS0']
EOF
} >"$tmp/seed/user-data"
genisoimage -quiet -output "$tmp/seed.iso" -volid cidata -joliet -rock \
  "$tmp/seed/user-data" "$tmp/seed/meta-data" "$tmp/seed/network-config"

qemu-img create -q -f qcow2 -b "$image_dir/disk.qcow2" -F qcow2 "$tmp/overlay.qcow2"
qemu-img resize -q "$tmp/overlay.qcow2" 4G

ssh_opts=(-F /dev/null -i "$tmp/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes
  -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$tmp/known_hosts"
  -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=10 -o LogLevel=ERROR)
guest_ssh() { ssh "${ssh_opts[@]}" -p "$port" qvm@127.0.0.1 "$@"; }

port_free() { ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

# Start QEMU on a free loopback port; another process may take the port
# between the check and QEMU's bind, so retry a few times.
start_qemu() {
  local attempt
  for attempt in 1 2 3 4 5; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    port_free "$port" || continue
    : >"$serial"
    qemu-system-x86_64 -accel tcg -cpu qemu64 -smp 2 -m 1024 -nodefaults -display none \
      -serial "file:$serial" \
      -drive "file=$tmp/overlay.qcow2,if=virtio,format=qcow2" \
      -drive "file=$tmp/seed.iso,if=virtio,format=raw,readonly=on" \
      -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" \
      -device "virtio-net-pci,netdev=n0,mac=$mac" \
      2>"$tmp/qemu.err" &
    qemu_pid=$!
    started=$(now)
    sleep 1
    kill -0 "$qemu_pid" 2>/dev/null && return 0
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=
    log "qemu did not start (attempt $attempt): $(cat "$tmp/qemu.err")"
  done
  fail "qemu could not be started"
}

start_qemu
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$tmp/host_ed25519.pub")" >"$tmp/known_hosts"
log "qemu pid $qemu_pid, ssh forwarded from 127.0.0.1:$port, mac $mac"

deadline=$(( ${started%.*} + boot_timeout ))
t_serial='' t_ssh='' t_marker=''
while :; do
  kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited before SSH came up: $(cat "$tmp/qemu.err")"
  [[ -z $t_serial && -s $serial ]] && t_serial=$(since "$started")
  [[ -z $t_marker ]] && grep -qa "$marker" "$serial" && t_marker=$(since "$started")
  if err=$(guest_ssh true 2>&1 </dev/null); then
    t_ssh=$(since "$started")
    break
  fi
  case $err in
    *"Host key verification failed"* | *"IDENTIFICATION HAS CHANGED"*)
      fail "the guest offered a host key other than the pinned one (ssh_keys not applied): $err" ;;
    *"Permission denied"*)
      # sshd is up before cloud-init has created the user; keep waiting.
      ;;
  esac
  (( $(date +%s) < deadline )) || fail "no SSH login within ${boot_timeout}s (serial output: ${t_serial:-none}; last ssh error: $err)"
  sleep 1
done
log "ssh login after ${t_ssh}s"

# shellcheck disable=SC2016 # expanded by the guest's shell
script='cloud-init status --wait >/dev/null; echo "status=$(cloud-init status | sed -n "s/^status: //p")"
sudo -n true && echo sudo=ok
df -h /
echo "root_mib=$(df -B1M --output=size / | tail -n 1 | tr -d " ")"
echo "hostname=$(hostname)"
echo "netplan=$(ls /etc/netplan)"
systemd-analyze 2>/dev/null | head -n 1
[ -z "$DEBUG" ] || { systemd-analyze blame | head -n 25; systemd-analyze critical-chain; sudo cloud-init analyze blame; sudo journalctl -b -o short-monotonic --no-pager -u ssh -u cloud-init -u cloud-init-local -u cloud-config -u systemd-networkd; sudo cat /var/log/cloud-init.log; }'
result=$(guest_ssh "DEBUG='${QVM_CLOUD_BOOT_DEBUG:-}'; $script" </dev/null) || fail "checks over ssh failed: $result"
t_done=$(since "$started")
for _ in $(seq 30); do
  [[ -n $t_marker ]] && break
  grep -qa "$marker" "$serial" && t_marker=$(since "$started") && break
  sleep 1
done
echo "$result" >&2

field() { sed -n "s/^$1=//p" <<<"$result"; }
[[ $(field status) == "done" ]] || fail "cloud-init status is '$(field status)', not 'done'"
[[ $(field sudo) == ok ]] || fail "passwordless sudo does not work for user qvm"
root_mib=$(field root_mib)
(( root_mib > 3 * 1024 )) || fail "root filesystem was not grown: ${root_mib} MiB on a 4 GiB disk"
[[ $(field hostname) == qvm-cloud-test ]] || fail "hostname is '$(field hostname)', not the seed's"
[[ -n $t_marker ]] || fail "runcmd marker '$marker' never reached the serial console"

guest_ssh 'sudo -n poweroff' </dev/null >/dev/null 2>&1 || true
t_off=$(now)
for _ in $(seq 120); do
  kill -0 "$qemu_pid" 2>/dev/null || break
  sleep 1
done
kill -0 "$qemu_pid" 2>/dev/null && fail "the guest did not power off within 120s"
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
log "timings (TCG): serial output ${t_serial:-?}s, ssh ${t_ssh}s, runcmd marker ${t_marker}s, cloud-init done ${t_done}s, poweroff $(since "$t_off")s"
echo "cloud_boot: serial=${t_serial}s ssh=${t_ssh}s marker=${t_marker}s cloud_init_done=${t_done}s"
