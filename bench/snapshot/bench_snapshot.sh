#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_snapshot: qvm's live snapshots, clones and forks on the cloud test
# guest, beside libvirt's internal snapshots of an equivalent domain, in one
# run on one image, under QEMU TCG. Prints figures; never asserts timings.
# See bench/snapshot/README.md.
#
# usage: bench/snapshot/bench_snapshot.sh [-n RUNS] [--boots N] [--qvm PATH]
#                                         [--image DISK.qcow2] [--memory SIZE]
#                                         [--timeout S]
#   -n RUNS      snapshot creates and restores of each method (default 3)
#   --boots N    clones and fresh `qvm up`s to exec-ready, interleaved (default 2)
#   --qvm PATH   the qvm binary (default: $QVM, else $QVM_BINARY_DIR/qvm, else
#                build/qvm)
#   --image P    the cloud image (default: tests/guests/cloud/build.sh's output)
#   --memory M   memory of every VM and of the libvirt domain (default 1G)
#   --timeout S  bound for each boot (default 600)
# Needs root (network and mount namespaces). Installs libvirt from Debian
# with apt-get when virsh, libvirtd or its QEMU driver is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
runs=3
boots=2
qvm=${QVM:-}
image=
memory=1G
timeout_s=600

die() {
  echo "bench_snapshot: $*" >&2
  exit 1
}
log() { echo "bench_snapshot: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case $1 in
  -n) runs=${2:?-n needs a number}; shift 2 ;;
  --boots) boots=${2:?--boots needs a number}; shift 2 ;;
  --qvm) qvm=${2:?--qvm needs a path}; shift 2 ;;
  --image) image=${2:?--image needs a path}; shift 2 ;;
  --memory) memory=${2:?--memory needs a size}; shift 2 ;;
  --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
  -h | --help) sed -n '4,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]?$ ]] || die "-n '$runs' is invalid: use 1 to 99"
[[ $boots =~ ^[0-9]$ ]] || die "--boots '$boots' is invalid: use 0 to 9"
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout '$timeout_s' is invalid: use seconds"
[[ $memory =~ ^([1-9][0-9]*)([MG])$ ]] || die "--memory '$memory' is invalid: use e.g. 512M or 1G"
memory_mib=${BASH_REMATCH[1]}
[[ ${BASH_REMATCH[2]} == G ]] && memory_mib=$((memory_mib * 1024))

[[ $(id -u) == 0 ]] || die "needs root (network and mount namespaces)"
for tool in qemu-system-x86_64 qemu-img ip unshare jq ssh-keygen timeout; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: run scripts/deps.sh"
done
if [[ -z $qvm ]]; then
  qvm=${QVM_BINARY_DIR:-$repo/build}/qvm
fi
[[ -x $qvm ]] || die "no qvm binary at '$qvm': build it (cmake -S . -B build && cmake --build build) or pass --qvm"
qvm=$(realpath "$qvm")
if [[ -z $image ]]; then
  log "building or finding the cloud test guest (tests/guests/cloud/build.sh)"
  out=$(QVM_BINARY_DIR=$(dirname "$qvm") "$repo/tests/guests/cloud/build.sh" | tail -n 1) ||
    die "tests/guests/cloud/build.sh failed"
  image=$out/disk.qcow2
fi
[[ -f $image ]] || die "image '$image' not found"
image=$(realpath "$image")

# ---- cleanup: VMs, the libvirt domain and daemon, the netns, temp files ------
tmp=$(mktemp -d /var/tmp/qvm-bench-snapshot.XXXXXX)
chmod 0700 "$tmp"
export QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run
mkdir -m 0700 "$QVM_STATE_DIR" "$QVM_RUNTIME_DIR"
netns=qvm-bench-snap-$$
netns_made=0
dom='qvm-bench-snapshot'
bg_pid=
. "$repo/bench/lib/libvirtd.sh"

# Long commands run in the background so that a signal reaches the trap at
# once instead of after the command.
bg() {
  local rc=0
  "$@" &
  bg_pid=$!
  wait "$bg_pid" || rc=$?
  bg_pid=
  return "$rc"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [[ -n $bg_pid ]] && stop_pid "$bg_pid" 30
  if [[ -n $lv_pid ]]; then
    virsh_timeout 30 destroy "$dom" >/dev/null 2>&1
    virsh_timeout 30 undefine "$dom" --snapshots-metadata >/dev/null 2>&1
  fi
  stop_libvirtd
  # A QEMU libvirt started outlives libvirtd; its pid file is ours.
  [[ -s $lv/run/qemu/$dom.pid ]] && kill -9 "$(cat "$lv/run/qemu/$dom.pid")" 2>/dev/null
  local d
  for d in "$QVM_STATE_DIR"/vms/*/; do
    [[ -d $d ]] && timeout 60 "$qvm" rm --force "$(basename "$d")" >/dev/null 2>&1
  done
  # Anything left that runs from our temp dir (a shim whose rm failed).
  local p
  for p in $(pgrep -f -- "$tmp/"); do kill -9 "$p" 2>/dev/null; done
  ((netns_made)) && ip netns del "$netns" 2>/dev/null
  rm -rf -- "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
lv_install

now_us() { echo "${EPOCHREALTIME/./}"; }
put() { echo "$1 $2" >>"$tmp/results"; } # KEY SECONDS
: >"$tmp/results"
timed() { # KEY command...: runs it, records its wall time; fails as it fails
  local key=$1 t0 t1 rc=0
  shift
  t0=$(now_us)
  "$@" || rc=$?
  t1=$(now_us)
  if [[ $rc -eq 0 ]]; then
    put "$key" "$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f", d / 1e6 }')"
  else
    put "$key-failed" 1
  fi
  return "$rc"
}

ip netns add "$netns" || die "cannot create the network namespace '$netns'"
netns_made=1
ip -n "$netns" link set lo up

# ---- libvirtd of our own (bench/lib/libvirtd.sh) ---------------------------

# The domain: what qvm gives its VM (q35, TCG, -cpu qemu64, 1 vCPU, the same
# memory, the disk as a qcow2 overlay of the same image on virtio-blk, a
# read-only NoCloud seed on virtio-blk, virtio-net on user networking,
# virtio-rng, the guest agent's virtio-serial port, serial to a file, no USB,
# no balloon, no display). The seed is left out of snapshots (snapshot='no',
# as QEMU skips read-only disks for qvm); the disk's snapshots are internal,
# RAM included: libvirt 9.0's default for a running domain on qcow2.
define_domain() {
  ssh-keygen -q -t ed25519 -N '' -C bench -f "$tmp/lv-key"
  "$qvm" seed build -o "$tmp/lv-seed.iso" --hostname bench-libvirt --ssh-key "$tmp/lv-key.pub" \
    --instance-id "bench-libvirt-$$" >/dev/null
  qemu-img create -q -f qcow2 -F qcow2 -b "$image" "$tmp/lv-disk.qcow2" 3G
  cat >"$tmp/domain.xml" <<EOF
<domain type='qemu'>
  <name>$dom</name>
  <memory unit='MiB'>$memory_mib</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>
  <features><acpi/></features>
  <clock offset='utc'/>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$tmp/lv-disk.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk' snapshot='no'>
      <driver name='qemu' type='raw'/>
      <source file='$tmp/lv-seed.iso'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <interface type='user'><model type='virtio'/></interface>
    <serial type='file'><source path='$tmp/lv-serial.log'/><target port='0'/></serial>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
  virsh_ define "$tmp/domain.xml" >/dev/null
}

# The libvirt guest is ready when cloud-init says so on its serial console
# (as qvm up waits for cloud-init) and its guest agent answers.
wait_domain_ready() {
  local deadline=$((SECONDS + timeout_s))
  until grep -aq 'Cloud-init v\. .* finished' "$tmp/lv-serial.log" 2>/dev/null; do
    ((SECONDS < deadline)) || { tail -n 10 "$tmp/lv-serial.log" >&2; return 1; }
    sleep 1
  done
  agent_ping
}
agent_ping() {
  local _
  for _ in $(seq 60); do
    virsh_ qemu-agent-command "$dom" --timeout 5 '{"execute":"guest-ping"}' >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}

# ---- the measurements -----------------------------------------------------------
# qvm in our netns, bounded, in the background (see bg); timeout, ip netns exec
# and qvm exec one another, so a signal to bg_pid reaches qvm.
qb() { # SECONDS qvm-arguments...
  local t=$1
  shift
  bg timeout "$t" ip netns exec "$netns" "$qvm" "$@"
}

up_src() {
  log "qvm up bench-src (the source of snapshots, clones and forks)"
  qb $((timeout_s + 60)) up bench-src --image "$image" --memory "$memory" \
    --disk 3G --accel tcg --timeout "$timeout_s" >"$tmp/up-src.out" 2>&1 ||
    { tail -n 20 "$tmp/up-src.out" >&2; die "qvm up bench-src failed"; }
}

snapshots() {
  local i
  for i in $(seq "$runs"); do
    log "run $i: qvm snapshot create bench-src s$i; virsh snapshot-create-as $dom s$i"
    timed qvm-create qb 600 snapshot create bench-src "s$i" >/dev/null || log "qvm snapshot create failed"
    sleep 2
    timed lv-create virsh_ snapshot-create-as "$dom" "s$i" >/dev/null || log "virsh snapshot-create-as failed"
    sleep 2
  done
  # How much RAM and device state each wrote (the guests' dirty memory differs).
  vmstate() { qemu-img info -U --output=json "$1" 2>/dev/null |
    jq -r '[.snapshots[]? | select(.name == "s1") | ."vm-state-size"][0] // empty | . / 1048576 | floor'; }
  qvm_state_mib=$(vmstate "$QVM_STATE_DIR/vms/bench-src/disk.qcow2")
  lv_state_mib=$(vmstate "$tmp/lv-disk.qcow2")
  lv_kind=$(virsh_ snapshot-dumpxml "$dom" s1 2>/dev/null |
    sed -n "s/.*<memory snapshot='\([a-z]*\)'.*/memory \1/p; s/.*<disk name='vda' snapshot='\([a-z]*\)'.*/disk vda \1/p" |
    paste -sd, -)
  for i in $(seq "$runs"); do
    log "run $i: qvm snapshot restore bench-src s$i; virsh snapshot-revert $dom s$i"
    timed qvm-restore qb 600 snapshot restore bench-src "s$i" >/dev/null || log "qvm snapshot restore failed"
    # Not timed: the guest runs on after the restore.
    qb 120 exec --timeout 100 bench-src -- true || log "bench-src does not answer after restore s$i"
    sleep 2
    timed lv-restore virsh_ snapshot-revert "$dom" "s$i" || log "virsh snapshot-revert failed"
    agent_ping || log "the libvirt guest's agent does not answer after revert s$i"
    sleep 2
  done
}

# clone-to-exec-ready: `qvm clone SRC D --up`, then `qvm exec D -- true`;
# beside it a fresh `qvm up` of the same image, then the same exec.
clone_chain() {
  qb $((timeout_s + 60)) clone bench-src "$1" --up --timeout "$timeout_s" --quiet >/dev/null &&
    qb 120 exec --timeout 100 "$1" -- true
}
up_chain() {
  qb $((timeout_s + 60)) up "$1" --image "$image" --memory "$memory" --disk 3G --accel tcg \
    --timeout "$timeout_s" >/dev/null &&
    qb 120 exec --timeout 100 "$1" -- true
}
boot_run() { # KEY NAME: one clone or up to exec-ready, then its removal
  log "run $i: ${1}_chain $2"
  timed "$1" "${1}_chain" "$2" || log "$1 $2 to exec-ready failed"
  qb 180 down "$2" --rm --timeout 60 >/dev/null 2>&1 || true
}

# qvm fork SRC --count N --prefix P: N VMs resumed from SRC's memory, named
# P-1..P-N; each one's exec-ready time counts from the fork command's start.
fork_count=3
fork_status=
forks() {
  if ! "$qvm" fork --help >/dev/null 2>&1; then
    fork_status="fork: not available in this build"
    return 0
  fi
  log "qvm fork bench-src --count $fork_count --prefix bench-fork"
  local t0 t1 rc=0 k
  t0=$(now_us)
  qb $((timeout_s + 60)) fork bench-src --count "$fork_count" --prefix bench-fork \
    >"$tmp/fork.out" 2>&1 || rc=$?
  t1=$(now_us)
  if [[ $rc -ne 0 ]]; then
    fork_status="fork: 'qvm fork bench-src --count $fork_count' failed (exit $rc): $(tail -n 3 "$tmp/fork.out" | tr '\n' ' ')"
  else
    put fork-command "$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f", d / 1e6 }')"
    for k in $(seq "$fork_count"); do
      if qb 120 exec --timeout 100 "bench-fork-$k" -- true; then
        put fork-ready "$(awk -v d=$(($(now_us) - t0)) 'BEGIN { printf "%.3f", d / 1e6 }')"
      else
        put fork-ready-failed 1
      fi
    done
  fi
  for k in $(seq "$fork_count"); do
    [[ -d $QVM_STATE_DIR/vms/bench-fork-$k ]] &&
      qb 180 down "bench-fork-$k" --rm --timeout 60 >/dev/null 2>&1
  done
  return 0
}

# ---- run ---------------------------------------------------------------------
kvm="no /dev/kvm"
[[ -e /dev/kvm ]] && kvm="/dev/kvm present, not used"
others=$(pgrep -c -f '^[^ ]*qemu-system' 2>/dev/null || true)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$SECONDS

up_src
start_libvirtd
define_domain
log "virsh start $dom; waiting for cloud-init on its serial console"
virsh_ start "$dom" >/dev/null || die "virsh start $dom failed: $(tail -n 5 "$lv/log/qemu/$dom.log" 2>/dev/null)"
bg wait_domain_ready || die "the libvirt guest did not finish cloud-init within ${timeout_s}s"
lv_version=$(dpkg-query -W -f '${Version}' libvirt-daemon 2>/dev/null || echo '?')
snapshots
virsh_ destroy "$dom" >/dev/null 2>&1 || true
virsh_ undefine "$dom" --snapshots-metadata >/dev/null 2>&1 || true
stop_pid "$lv_pid" 10
wait "$lv_pid" 2>/dev/null || true
lv_pid=
# The clones below are of a SRC without snapshots, as a user would clone.
for i in $(seq "$runs"); do qb 120 snapshot rm bench-src "s$i" >/dev/null || true; done
for i in $(seq "$boots"); do
  boot_run clone "bench-clone$i"
  boot_run up "bench-up$i"
done
forks

# ---- report --------------------------------------------------------------------
col() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/results"; }
stats() { # values on stdin -> "median min max n" or "- - - 0"
  sort -n | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "- - - 0"; exit }
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.3f %.3f %.3f %d\n", m, v[1], v[NR], NR }'
}
cell() { # KEY -> "1.234 [1.0 .. 1.5]" (or "-", and how many failed)
  local m lo hi n f
  read -r m lo hi n <<<"$(col "$1" | stats)"
  f=$(col "$1-failed" | wc -l)
  if [[ $m == - ]]; then
    printf '%-26s' "-$( ((f > 0)) && echo " ($f failed)")"
  else
    local s
    s=$(printf '%.2f [%.2f .. %.2f]' "$m" "$lo" "$hi")
    ((f > 0)) && s+=" ($f failed)"
    printf '%-26s' "$s"
  fi
}
median() { col "$1" | stats | cut -d' ' -f1; }
ratio() {
  local a b
  a=$(median "$1") b=$(median "$2")
  [[ $a == - || $b == - ]] && { echo -; return; }
  awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", a / b }'
}

echo "bench_snapshot: image $image"
echo "  every VM: $memory, 1 vCPU, q35, QEMU TCG, -cpu qemu64, virtio disk (qcow2 overlay, 3G)"
echo "  host: $(nproc) cores, $kvm; load average $load_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end;"
echo "        ${others:-0} other qemu process(es) at start (other work makes the figures noisy)"
echo "  qvm:     $qvm ($("$qvm" version 2>/dev/null | head -n 1))"
echo "  libvirt: Debian $lv_version, its own libvirtd in netns $netns (started and stopped by this bench);"
echo "           virsh snapshot-create-as made: ${lv_kind:-?}"
echo "  whole run: $((SECONDS - t_start)) s"
echo
echo "Live snapshot with RAM of a running guest after cloud-init, median [min .. max] of $runs, seconds:"
printf '  %-10s %-26s %-26s %s\n' "" "qvm snapshot" "virsh snapshot-*" "qvm/libvirt"
printf '  %-10s %s%s %s\n' create "$(cell qvm-create)" "$(cell lv-create)" "$(ratio qvm-create lv-create) (goal <= 1)"
printf '  %-10s %s%s %s\n' restore "$(cell qvm-restore)" "$(cell lv-restore)" "$(ratio qvm-restore lv-restore) (goal <= 1)"
printf '  %-10s %-26s %-26s\n' "state s1" "${qvm_state_mib:-?} MiB" "${lv_state_mib:-?} MiB"
echo
if ((boots > 0)); then
  echo "To exec-ready (the command's start until 'qvm exec VM -- true' returned), median [min .. max] of $boots, seconds:"
  printf '  %-46s %s\n' "qvm clone bench-src D --up; qvm exec D" "$(cell clone)"
  printf '  %-46s %s\n' "qvm up D --image IMG; qvm exec D (fresh boot)" "$(cell up)"
  printf '  %-46s %s\n' "clone/up" "$(ratio clone up)"
  echo
fi
if [[ -n $fork_status ]]; then
  echo "$fork_status"
else
  echo "qvm fork bench-src --count $fork_count, seconds from the fork command's start:"
  printf '  %-46s %s\n' "the fork command returned" "$(cell fork-command)"
  ready=$(col fork-ready | paste -sd' ' -)
  nfail=$(col fork-ready-failed | wc -l)
  ((nfail > 0)) && ready+=" ($nfail failed)"
  printf '  %-46s %s\n' "each fork answered exec, in turn" "${ready:--}"
fi
echo
echo "What the numbers mean:"
echo "  create    qvm: 'qvm snapshot create VM SNAP' (QEMU's snapshot-save job: RAM and device"
echo "            state into disk.qcow2, an internal snapshot). libvirt: 'virsh snapshot-create-as"
echo "            DOM SNAP' on the equivalent domain: an internal snapshot with RAM (savevm)."
echo "  restore   qvm: 'qvm snapshot restore VM SNAP' on the running VM (snapshot-load: it runs on"
echo "            from the snapshot's moment). libvirt: 'virsh snapshot-revert DOM SNAP'. Both end"
echo "            with the guest running; each restore is checked (not timed) with qvm exec / the"
echo "            guest agent's ping."
echo "  state s1  the RAM and device state snapshot s1 holds (qemu-img info: vm-state-size)."
echo "  clone     'qvm clone SRC D --up' (flatten SRC's running disk to a store image through a"
echo "            temporary internal snapshot, a fresh identity, boot, SSH, cloud-init), then"
echo "            'qvm exec D -- true'. up: 'qvm up' of the same image, then the same exec."
echo "  fork      'qvm fork SRC --count 3 --prefix bench-fork', then 'qvm exec bench-fork-K -- true'"
echo "            for K = 1..3 in turn, each counted from the fork command's start (so the Kth"
echo "            includes the execs before it; one qvm exec took about 1 s under TCG here)."
echo "  Both guests run during the snapshot figures (interleaved qvm, libvirt); SRC runs"
echo "  idle during the clone and up figures. Figures only: nothing is asserted."
