#!/usr/bin/env bash
# Boots the mini guest under QEMU (TCG) and checks its console contract:
#  1. seed on a virtio disk: authorized key, pinned ed25519 host key and
#     hostname; DHCP from QEMU's slirp; ssh, scp (SFTP) and uname over a
#     loopback hostfwd; ACPI power button (QMP system_powerdown) powers off;
#  2. qvm.dhcp=0 with the seed on an IDE CD-ROM: DHCP never runs, the seed
#     is still found, a host key is generated.
# Exit 77 = skipped (QEMU or a tool is missing), but never under CI=true.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
boot_timeout=${QVM_MINI_BOOT_TIMEOUT:-90}
exit_timeout=60

skip() {
  echo "SKIP: $*" >&2
  [[ ${CI:-} == true ]] && {
    echo "FAIL: CI=true forbids skipping" >&2
    exit 1
  }
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

for tool in qemu-system-x86_64 python3 ssh ssh-keygen scp genisoimage; do
  command -v "$tool" >/dev/null || skip "'$tool' not found (scripts/deps.sh)"
done

guest=$("$here/build.sh" | tail -n 1)
kernel=$guest/vmlinuz
initrd=$guest/initrd.img
[[ -r $kernel && -r $initrd ]] || fail "build.sh gave no guest in '$guest'"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qvm-mini-test.XXXXXX")
qemu_pid=
cleanup() {
  if [[ -n $qemu_pid ]]; then
    kill "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# boot NAME APPEND QEMU_ARGS...: starts the guest; its console goes to
# $tmp/NAME.log and its QMP socket is $tmp/NAME.qmp.
boot() {
  local name=$1 append=$2
  shift 2
  qemu-system-x86_64 -accel tcg -cpu max -m 256 -nodefaults -display none \
    -serial "file:$tmp/$name.log" -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 $append" -no-reboot \
    -qmp "unix:$tmp/$name.qmp,server=on,wait=off" "$@" \
    2>"$tmp/$name.qemu.err" &
  qemu_pid=$!
  boot_start=$(now)
}

# wait_marker NAME LINE: waits for the exact console line LINE.
wait_marker() {
  local log=$tmp/$1.log deadline=$((SECONDS + boot_timeout))
  until tr -d '\r' 2>/dev/null <"$log" | grep -qxF "$2"; do
    if ! kill -0 "$qemu_pid" 2>/dev/null; then
      dump "$1"
      fail "QEMU exited before '$2'"
    fi
    if ((SECONDS > deadline)); then
      dump "$1"
      fail "no '$2' within ${boot_timeout}s"
    fi
    sleep 0.05
  done
  echo "  $2 after $(elapsed "$boot_start") s"
}

has_marker() { tr -d '\r' <"$tmp/$1.log" | grep -qxF "$2"; }

dump() {
  echo "--- console of $1:" >&2
  tr -d '\r' <"$tmp/$1.log" | tail -n 40 >&2 || true
  cat "$tmp/$1.qemu.err" >&2 || true
}

# qmp NAME COMMAND...: runs each QMP command (without arguments) in turn.
qmp() {
  python3 - "$tmp/$1.qmp" "${@:2}" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
f = s.makefile("rw")
json.loads(f.readline())
for cmd in ["qmp_capabilities"] + sys.argv[2:]:
    f.write(json.dumps({"execute": cmd}) + "\n")
    f.flush()
    while True:
        reply = json.loads(f.readline())
        if "error" in reply:
            sys.exit("qmp %s: %s" % (cmd, reply["error"]))
        if "return" in reply:
            break
EOF
}

# powerdown NAME: presses the ACPI power button and expects the guest to
# power itself off, so that QEMU exits on its own with status 0.
powerdown() {
  local status=0 deadline=$((SECONDS + exit_timeout))
  qmp "$1" system_powerdown || fail "system_powerdown over QMP failed"
  while kill -0 "$qemu_pid" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      dump "$1"
      fail "QEMU still running ${exit_timeout}s after system_powerdown"
    fi
    sleep 0.1
  done
  wait "$qemu_pid" || status=$?
  qemu_pid=
  [[ $status -eq 0 ]] || fail "QEMU exited with status $status after powerdown"
  has_marker "$1" "qvm-mini: powerdown" || {
    dump "$1"
    fail "the guest did not print 'qvm-mini: powerdown'"
  }
  echo "  powered off after $(elapsed "$boot_start") s"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

make_seed() {
  ssh-keygen -q -t ed25519 -N '' -C user1 -f "$tmp/user1"
  ssh-keygen -q -t ed25519 -N '' -C user2 -f "$tmp/user2"
  ssh-keygen -q -t ed25519 -N '' -C host -f "$tmp/hostkey"
  mkdir -p "$tmp/seed" "$tmp/seed-cd"
  {
    echo "#cloud-config"
    echo "ssh_authorized_keys:"
    echo "  - $(cat "$tmp/user1.pub")"
    echo "users:"
    echo "  - name: root"
    echo "    ssh_authorized_keys:"
    echo "      - \"$(cat "$tmp/user2.pub")\""
    echo "ssh_keys:"
    echo "  ed25519_private: |"
    sed 's/^/    /' "$tmp/hostkey"
    echo "  ed25519_public: $(cat "$tmp/hostkey.pub")"
  } >"$tmp/seed/user-data"
  printf 'instance-id: mini-1\nlocal-hostname: "mini-test_1"\n' >"$tmp/seed/meta-data"
  genisoimage -quiet -output "$tmp/seed.iso" -V cidata -J -R \
    "$tmp/seed/user-data" "$tmp/seed/meta-data"
  # The CD-ROM seed has a key but no host key.
  printf '#cloud-config\nssh_authorized_keys:\n  - %s\n' "$(cat "$tmp/user1.pub")" \
    >"$tmp/seed-cd/user-data"
  printf 'instance-id: mini-2\nlocal-hostname: cdrom\n' >"$tmp/seed-cd/meta-data"
  genisoimage -quiet -output "$tmp/seed-cd.iso" -V cidata -J -R \
    "$tmp/seed-cd/user-data" "$tmp/seed-cd/meta-data"
}

# guest_ssh KEY KNOWN_HOSTS_OPTS... -- COMMAND: ssh into the guest at $port.
guest_ssh() {
  ssh -i "$tmp/user1" -p "$port" -o BatchMode=yes -o ConnectTimeout=20 \
    -o LogLevel=ERROR "$@"
}

test_seed_ssh_dhcp_powerdown() {
  echo "boot 1: virtio seed, DHCP, ssh, powerdown"
  port=$(free_port)
  boot seed "" -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" \
    -device virtio-net-pci,netdev=n0 \
    -drive "file=$tmp/seed.iso,if=virtio,format=raw,readonly=on"
  wait_marker seed "qvm-mini: userspace"
  wait_marker seed "qvm-mini: modules ok"
  wait_marker seed "qvm-mini: seed found"
  wait_marker seed "qvm-mini: seed authorized_keys=2"
  wait_marker seed "qvm-mini: seed hostkey=ed25519"
  wait_marker seed "qvm-mini: seed hostname=mini-test1"
  wait_marker seed "qvm-mini: sshd port=22"
  wait_marker seed "qvm-mini: ready"
  wait_marker seed "qvm-mini: dhcp ip=10.0.2.15"

  # Only the seed's host key is trusted: this proves it is the one served.
  echo "[127.0.0.1]:$port $(cut -d' ' -f1-2 "$tmp/hostkey.pub")" >"$tmp/known_hosts"
  local out
  out=$(guest_ssh -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$tmp/known_hosts" \
    root@127.0.0.1 'echo hello-from-mini; uname -r; hostname') ||
    fail "ssh with the pinned host key failed"
  [[ $(sed -n 1p <<<"$out") == hello-from-mini ]] || fail "ssh said '$out'"
  [[ $(sed -n 2p <<<"$out") == "$(cat "$guest/kernel-release")" ]] ||
    fail "guest kernel is '$(sed -n 2p <<<"$out")'"
  [[ $(sed -n 3p <<<"$out") == mini-test1 ]] || fail "guest hostname is '$(sed -n 3p <<<"$out")'"
  echo "  ssh ok: $(tr '\n' ' ' <<<"$out")"

  # The quoted key of users[0] works too.
  out=$(ssh -i "$tmp/user2" -p "$port" -o BatchMode=yes -o ConnectTimeout=20 \
    -o LogLevel=ERROR -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$tmp/known_hosts" \
    root@127.0.0.1 'echo second-key') || fail "ssh with the second key failed"
  [[ $out == second-key ]] || fail "ssh said '$out'"

  # scp (SFTP protocol) there and back.
  head -c 100000 /dev/urandom >"$tmp/blob"
  scp -q -i "$tmp/user1" -P "$port" -o BatchMode=yes -o LogLevel=ERROR \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$tmp/known_hosts" \
    "$tmp/blob" root@127.0.0.1:/tmp/blob || fail "scp to the guest failed"
  scp -q -i "$tmp/user1" -P "$port" -o BatchMode=yes -o LogLevel=ERROR \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$tmp/known_hosts" \
    root@127.0.0.1:/tmp/blob "$tmp/blob.back" || fail "scp from the guest failed"
  cmp -s "$tmp/blob" "$tmp/blob.back" || fail "scp round trip changed the file"
  echo "  scp ok"

  # A key the guest was not given is refused.
  ssh-keygen -q -t ed25519 -N '' -f "$tmp/stranger"
  if ssh -i "$tmp/stranger" -p "$port" -o BatchMode=yes -o ConnectTimeout=20 \
    -o LogLevel=ERROR -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$tmp/known_hosts" \
    root@127.0.0.1 true 2>/dev/null; then
    fail "the guest accepted a key it was not given"
  fi

  powerdown seed
}

test_dhcp_disabled_cdrom() {
  echo "boot 2: qvm.dhcp=0, seed on an IDE CD-ROM"
  boot nodhcp "qvm.dhcp=0" -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
    -drive "file=$tmp/seed-cd.iso,media=cdrom,if=ide,readonly=on"
  wait_marker nodhcp "qvm-mini: userspace"
  wait_marker nodhcp "qvm-mini: seed found"
  wait_marker nodhcp "qvm-mini: seed authorized_keys=1"
  wait_marker nodhcp "qvm-mini: seed hostname=cdrom"
  wait_marker nodhcp "qvm-mini: hostkey=generated"
  wait_marker nodhcp "qvm-mini: dhcp disabled"
  wait_marker nodhcp "qvm-mini: ready"
  # slirp answers DHCP within milliseconds; give a client time to show up.
  sleep 3
  if tr -d '\r' <"$tmp/nodhcp.log" | grep -q "^qvm-mini: dhcp ip="; then
    dump nodhcp
    fail "a DHCP lease was taken although qvm.dhcp=0"
  fi
  powerdown nodhcp
}

make_seed
test_seed_ssh_dhcp_powerdown
test_dhcp_disabled_cdrom
echo "PASS"
