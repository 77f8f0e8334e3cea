#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_up: `qvm up` on the cloud test guest, next to the same image booted
# the way people script it by hand (cloud-localds + plain qemu + a 1 s SSH
# polling loop), and next to libvirt (`virt-install --import` on libvirt's
# default network, beside `qvm up --net bridge` in the same network
# namespace), in the same run, under the same accelerator. Prints figures;
# never asserts timings. See bench/e2e/README.md.
#
# usage: bench/e2e/bench_up.sh [-n RUNS] [--qvm PATH] [--image DISK.qcow2]
#                              [--timeout S] [--no-hand] [--no-libvirt]
#   -n RUNS      runs of each method, interleaved (default 3; env BENCH_RUNS)
#                (qvm up gets --accel tcg; the hand-made QEMU gets -accel tcg)
#   --qvm PATH   the qvm binary (default: $QVM, else BUILD/qvm for the first of
#                build-bench, build; build it with cmake first)
#   --image P    the cloud image (default: tests/guests/cloud/build.sh's output)
#   --timeout S  bound for each boot to cloud-init-done (default 600)
#   --no-hand    leave out the hand-scripted QEMU
#   --no-libvirt leave out libvirt and `qvm up --net bridge` (they need root:
#                a network namespace; libvirt, virtinst and iptables are
#                installed with apt-get when missing: scripts/deps.sh bench)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
runs=${BENCH_RUNS:-3}
qvm=${QVM:-}
image=
timeout_s=600
hand=1
libvirt=1

die() {
  echo "bench_up: $*" >&2
  exit 1
}
log() { echo "bench_up: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case $1 in
  -n) runs=${2:?-n needs a number}; shift 2 ;;
  --qvm) qvm=${2:?--qvm needs a path}; shift 2 ;;
  --image) image=${2:?--image needs a path}; shift 2 ;;
  --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
  --no-hand) hand=0; shift ;;
  --no-libvirt) libvirt=0; shift ;;
  -h | --help) sed -n '4,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]?$ ]] || die "-n '$runs' is invalid: use 1 to 99"
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout '$timeout_s' is invalid: use seconds"
if [[ $libvirt -eq 1 && $(id -u) != 0 ]]; then
  die "the libvirt columns need root (a network namespace, libvirtd); run as root or pass --no-libvirt"
fi

for tool in jq qemu-system-x86_64 qemu-img cloud-localds ssh ssh-keygen ss timeout; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: run scripts/deps.sh"
done
if [[ -z $qvm ]]; then
  for b in build-bench build; do
    [[ -x $repo/$b/qvm ]] && { qvm=$repo/$b/qvm; break; }
  done
fi
[[ -n $qvm && -x $qvm ]] || die "no qvm binary: build it (cmake -S . -B build && cmake --build build) or pass --qvm"
if [[ -z $image ]]; then
  log "building or finding the cloud test guest (tests/guests/cloud/build.sh)"
  out=$("$repo/tests/guests/cloud/build.sh" | tail -n 1) || die "tests/guests/cloud/build.sh failed"
  image=$out/disk.qcow2
fi
[[ -f $image ]] || die "image '$image' not found"
image=$(realpath "$image")

# ---- cleanup: every VM, qemu process, libvirt domain and daemon, the netns
# and the temp dir, on any exit ----------------------------------------------
tmp=$(mktemp -d /tmp/qvm-bench-up.XXXXXX)
chmod 0700 "$tmp"
export QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run
mkdir -m 0700 "$QVM_STATE_DIR" "$QVM_RUNTIME_DIR"
vms=()    # qvm VMs on user networking
br_vms=() # qvm VMs on the bridge, in the netns
hand_pid=
bg_pid=
sampler_pid=
netns=qvm-bench-up-$$
netns_made=0
lv_dom= # the libvirt domain of the current run
. "$repo/bench/lib/libvirtd.sh"
lv_uri="qemu:///system?socket=$lv/run/libvirt-sock"
# virsh on our libvirtd, bounded (virsh_ of bench/lib, under timeout(1)).
lvsh() { timeout "${LVSH_TIMEOUT:-60}" ip netns exec "$netns" virsh -q -c "$lv_uri" "$@"; }
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
  if [[ -n $bg_pid ]]; then
    kill "$bg_pid" 2>/dev/null || true
    timeout 30 tail --pid="$bg_pid" -f /dev/null 2>/dev/null || kill -9 "$bg_pid" 2>/dev/null || true
  fi
  [[ -n $sampler_pid ]] && stop_pid "$sampler_pid" 2
  if [[ -n $hand_pid ]] && kill -0 "$hand_pid" 2>/dev/null; then
    kill "$hand_pid" 2>/dev/null || true
    sleep 1
    kill -9 "$hand_pid" 2>/dev/null || true
  fi
  local v
  for v in "${vms[@]}"; do
    [[ -d $QVM_STATE_DIR ]] || break
    timeout 60 "$qvm" rm --force "$v" >/dev/null 2>&1 || true
  done
  for v in "${br_vms[@]}"; do
    [[ -d $QVM_STATE_DIR ]] || break
    timeout 60 ip netns exec "$netns" "$qvm" rm --force "$v" >/dev/null 2>&1 || true
  done
  if [[ -n $lv_pid ]]; then
    if [[ -n $lv_dom ]]; then
      lvsh destroy "$lv_dom" >/dev/null 2>&1
      lvsh undefine "$lv_dom" --remove-all-storage >/dev/null 2>&1
    fi
    lvsh net-destroy default >/dev/null 2>&1
  fi
  stop_libvirtd
  # A QEMU or dnsmasq libvirt started outlives libvirtd; their pid files are
  # ours (under $lv/run, libvirtd's /run/libvirt).
  local f
  for f in "$lv"/run/qemu/*.pid "$lv"/run/network/*.pid; do
    [[ -s $f ]] && kill -9 "$(cat "$f")" 2>/dev/null
  done
  # Anything qvm left behind under our own state dir (a shim whose rm failed).
  local pids p
  pids=$(pgrep -f -- "$tmp/" 2>/dev/null || true)
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
  # Whatever still runs in our netns is ours (dnsmasq's helper, a stray QEMU).
  if ((netns_made)); then
    for p in $(ip netns pids "$netns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$netns" 2>/dev/null
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_us() { echo "${EPOCHREALTIME/./}"; }
ms() { echo $((($2 - $1) / 1000)); }
# RFC 3339 with microseconds (events.jsonl "time") -> epoch microseconds.
rfc_us() { date -u -d "$1" +%s%6N; }
# "[   38.014965] host sshd[1]: ..." -> 38014 (ms since kernel boot)
mono_ms() { sed -n 's/^\[ *\([0-9]*\)\.\([0-9]\{3\}\).*/\1\2/p' | head -n 1 | sed 's/^0*\([0-9]\)/\1/'; }

free_port() {
  local p i
  for i in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    [[ -z $(ss -Hltn "sport = :$p") ]] && { echo "$p"; return 0; }
  done
  return 1
}

# The host's realtime (µs) at the guest's kernel boot: the guest prints
# /proc/uptime several times over one connection and each line is stamped
# here as it arrives. A line arrives after it was read, so host_now - uptime
# is an upper bound of the boot moment; the smallest one is the best.
# $@: a command that runs its last argument as a remote shell command.
boot_realtime_us() {
  local best='' up now b
  while read -r up _; do
    now=$(now_us)
    [[ $up =~ ^[0-9]+\.[0-9][0-9]$ ]] || continue
    b=$((now - 10#${up/./} * 10000))
    [[ -z $best || $b -lt $best ]] && best=$b
  done < <("$@" 'for i in 1 2 3 4 5 6 7 8 9 10; do cat /proc/uptime; sleep 0.2; done' 2>/dev/null)
  echo "${best:-}"
}

# One value per line on stdin -> "median min max" (or "- - -").
stats() {
  sort -n | awk '{v[NR] = $1} END {
    if (NR == 0) { print "- - -"; exit }
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%d %d %d\n", m, v[1], v[NR] }'
}

results=$tmp/results # lines: METHOD RUN KEY VALUE_MS
: >"$results"
put() { echo "$1 $2 $3 $4" >>"$results"; }

# When a process was forked (µs, host realtime), from its start time in
# /proc (clock ticks since boot) and /proc/uptime read at the same moment:
# about 10 ms resolution, no polling.
proc_start_us() {
  local pid=$1 stat rest up now hz
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  rest=${stat##*) }
  read -r -a f <<<"$rest"
  now=$(now_us)
  read -r up _ </proc/uptime
  hz=$(getconf CLK_TCK)
  # f[0] is field 3 (state): starttime, field 22, is f[19].
  echo $((now - 10#${up/./} * 10000 + f[19] * 1000000 / hz))
}
# The -cpu (and -machine) a running QEMU was given, from its command line.
qemu_opt() { # pid option
  tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | awk -v o="-$2" 'p { print; exit } $0 == o { p = 1 }'
}
cpus=$tmp/cpus # lines: METHOD RUN CPU MACHINE
: >"$cpus"
record_qemu() { # method run pid
  local c m
  c=$(qemu_opt "$3" cpu)
  m=$(qemu_opt "$3" machine)
  echo "$1 $2 ${c:-(default:qemu64)} ${m:--}" >>"$cpus"
}

# Control-plane RSS in the netns, once a second into FILE, in kB, as
# "libvirt-daemons dnsmasq qvm-command qvm-shim": libvirt's daemons
# (libvirtd; virtqemud, virtnetworkd, virtlogd, virtlockd when they run),
# its dnsmasq, the qvm command (up, down, exec) and the shim; never QEMU.
rss_sample() {
  local p comm k v lvk=0 dk=0 qk=0 sk=0
  for p in $(ip netns pids "$netns" 2>/dev/null); do
    read -r comm <"/proc/$p/comm" 2>/dev/null || continue
    v=0
    while read -r k v _; do [[ $k == VmRSS: ]] && break; v=0; done <"/proc/$p/status" 2>/dev/null
    case $comm in
    libvirtd | virtqemud | virtnetworkd | virtlogd | virtlockd) lvk=$((lvk + v)) ;;
    dnsmasq) dk=$((dk + v)) ;;
    qvm) qk=$((qk + v)) ;;
    qvm-shim) sk=$((sk + v)) ;;
    esac
  done
  echo "$lvk $dk $qk $sk"
}
start_sampler() {
  (
    trap 'exit 0' TERM
    while :; do
      rss_sample
      sleep 1
    done
  ) >"$1" 2>/dev/null &
  sampler_pid=$!
}
stop_sampler() {
  [[ -n $sampler_pid ]] && stop_pid "$sampler_pid" 2
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=
}
# The peak over a sampler file of the sum of columns A [B] (1 libvirt's
# daemons, 2 dnsmasq, 3 the qvm command, 4 the shim), in kB.
rss_peak() { awk -v a="$2" -v b="${3:-0}" '{ v = $a + (b ? $b : 0) } v > m { m = v } END { print m + 0 }' "$1"; }

# ---- 1. qvm up (user networking; on the bridge in the netns) ------------------
# qv: qvm for the current method (in the netns for the bridge).
qvm_ns=()
qv() { "${qvm_ns[@]}" "$qvm" "$@"; }
qvm_method=qvm
qvm_run() {
  local i=$1 json t0 t1 td rc=0 name net=()
  qvm_method=$2
  if [[ $qvm_method == qvmbr ]]; then
    name=benchbr$i
    br_vms+=("$name")
    net=(--net bridge)
    qvm_ns=(ip netns exec "$netns")
    start_sampler "$tmp/rss-qvmbr-$i"
  else
    name=bench$i
    vms+=("$name")
  fi
  log "run $i: qvm up $name ${net[*]}"
  t0=$(now_us)
  bg timeout $((timeout_s + 60)) "${qvm_ns[@]}" "$qvm" up "$name" --image "$image" --disk 3G --json \
    --accel tcg --timeout "$timeout_s" "${net[@]}" >"$tmp/up-$name.json" 2>"$tmp/up-$name.err" || rc=$?
  t1=$(now_us)
  json=$(cat "$tmp/up-$name.json")
  if [[ $rc -ne 0 ]] || ! jq -e .ok <<<"$json" >/dev/null 2>&1; then
    log "run $i: qvm up failed (exit $rc): $(jq -r '.failed_phase // empty, .error // empty' <<<"$json" 2>/dev/null) $(tail -n 5 "$tmp/up-$name.err")"
    put "$qvm_method" "$i" failed 1
  else
    local p v
    for p in started serial lease tcp ssh cloud-init; do
      v=$(jq -r --arg p "$p" '.phases_ms[$p] // empty' <<<"$json")
      [[ -n $v ]] && put "$qvm_method" "$i" "$p" "$v"
    done
    put "$qvm_method" "$i" wall "$(ms "$t0" "$t1")"
    guest_view "$qvm_method" "$i" "$name" "$t0"
  fi
  log "run $i: qvm down $name --rm"
  td=$(now_us)
  if bg timeout 180 "${qvm_ns[@]}" "$qvm" down "$name" --rm --timeout 60 >/dev/null 2>&1; then
    put "$qvm_method" "$i" teardown "$(ms "$td" "$(now_us)")"
  else
    timeout 60 "${qvm_ns[@]}" "$qvm" rm --force "$name" >/dev/null 2>&1 || log "run $i: could not remove $name"
  fi
  if [[ $qvm_method == qvmbr ]]; then
    stop_sampler
    put qvmbr "$i" rss_cp "$(rss_peak "$tmp/rss-qvmbr-$i" 3 4)"
    put qvmbr "$i" rss_a "$(rss_peak "$tmp/rss-qvmbr-$i" 3)"
    put qvmbr "$i" rss_b "$(rss_peak "$tmp/rss-qvmbr-$i" 4)"
  fi
  qvm_method=qvm
  qvm_ns=()
}

journal_cmd='sudo journalctl -b -o short-monotonic -u ssh -u cloud-init-local -u cloud-init -u cloud-config -u cloud-final --no-pager'
# From the guest journal: sshd's first "Server listening" (ms since kernel
# boot) and how long cloud-init.service (the init stage, which runs before
# ssh.service) took.
journal_figures() {
  local method=$1 i=$2 journal=$3 listen a b
  listen=$(grep -m1 'sshd\[[0-9]*\]: Server listening on' <<<"$journal" | mono_ms || true)
  [[ -n $listen ]] && put "$method" "$i" sshd_listen "$listen"
  a=$(grep -m1 'Starting cloud-init.service' <<<"$journal" | mono_ms || true)
  b=$(grep -m1 'Finished cloud-init.service' <<<"$journal" | mono_ms || true)
  [[ -n $a && -n $b ]] && put "$method" "$i" ci_init $((b - a))
  # The other cloud-init stages, and when the last one finished (since
  # kernel boot): the guest's own "cloud-init done".
  local unit key
  for unit in cloud-init-local:ci_local cloud-config:ci_config cloud-final:ci_final; do
    key=${unit#*:}
    unit=${unit%%:*}
    a=$(grep -m1 "Starting $unit.service" <<<"$journal" | mono_ms || true)
    b=$(grep -m1 "Finished $unit.service" <<<"$journal" | mono_ms || true)
    [[ -n $a && -n $b ]] && put "$method" "$i" "$key" $((b - a))
    [[ $key == ci_final && -n $b ]] && put "$method" "$i" ci_done "$b"
  done
  return 0
}

qvm_remote() { timeout 60 "${qvm_ns[@]}" "$qvm" exec --timeout 50 "$1" -- sh -c "$2"; }

# 3. The guest's own view: when sshd listened (since kernel boot), and when
# the kernel booted (since QEMU started), over qvm exec.
guest_view() {
  local method=$1 i=$2 name=$3 t0=$4 dir events spawn ssh_ev tcp_ev journal listen boot qpid
  dir=$(qv info "$name" --json | jq -r .dir) || return 0
  events=$dir/events.jsonl
  spawn=$(jq -r 'select(.event == "qvm-qemu-spawned") | .data.at_us' "$events" | tail -n 1)
  ssh_ev=$(jq -r 'select(.event == "UP_PHASE" and .phase == "ssh") | .time' "$events" | tail -n 1)
  [[ -n $spawn && -n $ssh_ev ]] || { log "run $i: no qemu spawn or ssh phase in $events"; return 0; }
  put "$method" "$i" ssh_since_qemu $((($(rfc_us "$ssh_ev") - spawn) / 1000))
  put "$method" "$i" forked $(((spawn - t0) / 1000))
  qpid=$(jq -r 'select(.event == "qvm-qemu-spawned") | .data.pid' "$events" | tail -n 1)
  [[ -n $qpid ]] && record_qemu "$method" "$i" "$qpid"
  local ci_ev
  ci_ev=$(jq -r 'select(.event == "UP_PHASE" and .phase == "cloud-init") | .time' "$events" | tail -n 1)
  [[ -n $ci_ev ]] && put "$method" "$i" ci_since_qemu $((($(rfc_us "$ci_ev") - spawn) / 1000))
  tcp_ev=$(jq -r 'select(.event == "UP_PHASE" and .phase == "tcp") | .time' "$events" | tail -n 1)
  [[ -n $tcp_ev ]] && put "$method" "$i" tcp_since_qemu $((($(rfc_us "$tcp_ev") - spawn) / 1000))
  # The guest's announcement (qvm's seed opens the readiness port once
  # ssh.service has started): QEMU's own timestamp of the VSERPORT_CHANGE, the
  # host's realtime when QEMU saw the open. Absent before qvm had it.
  local ann
  ann=$(jq -r 'select(.event == "VSERPORT_CHANGE" and .data.id == "qvm-ready0" and .data.open == true)
    | .timestamp | (.seconds * 1000000 + .microseconds)' "$events" | head -n 1)
  [[ -n $ann ]] && put "$method" "$i" announce_since_qemu $(((ann - spawn) / 1000))
  # How long the probe that saw the banner waited for it (sshd accepting).
  local probe
  probe=$(jq -r 'select(.event == "UP_PHASE" and .phase == "tcp") | .probe_ms // empty' "$events" |
    tail -n 1)
  [[ -n $probe ]] && put "$method" "$i" probe_ms "$probe"
  journal=$(qvm_remote "$name" "$journal_cmd" || true)
  journal_figures "$method" "$i" "$journal"
  boot=$(boot_realtime_us qvm_remote "$name")
  [[ -n $boot ]] && put "$method" "$i" kernel_since_qemu $(((boot - spawn) / 1000))
}

# ---- 2. by hand: cloud-localds, plain qemu, a 1 s ssh loop -------------------
# The hand-made key, seed and overlay (libvirt's runs use the same): in $1,
# instance and host name $2.
make_seed() {
  local d=$1
  ssh-keygen -q -t ed25519 -N '' -C bench -f "$d/key"
  cat >"$d/user-data" <<EOF
#cloud-config
users:
  - name: bench
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
    ssh_authorized_keys:
      - $(cat "$d/key.pub")
EOF
  printf 'instance-id: %s\nlocal-hostname: %s\n' "$2" "$2" >"$d/meta-data"
  cloud-localds "$d/seed.img" "$d/user-data" "$d/meta-data"
  qemu-img create -q -f qcow2 -F qcow2 -b "$image" "$d/overlay.qcow2" 3G
}

hand_run() {
  local i=$1 d=$tmp/hand$1 port t0 tq ts tc deadline cpu
  mkdir -p "$d"
  log "run $i: by hand (cloud-localds, qemu-system-x86_64, ssh loop)"
  t0=$(now_us)
  make_seed "$d" "hand$i"
  port=$(free_port) || { log "run $i: no free port"; put hand "$i" failed 1; return 0; }
  # The CPU model qvm's QEMU got in this run (qvm's default), else max.
  cpu=$(awk -v r="$i" '$1 == "qvm" && $2 == r && $3 !~ /^\(/ { print $3 }' "$cpus")
  tq=$(now_us)
  qemu-system-x86_64 -machine q35 -accel tcg -cpu "${cpu:-max}" -smp 1 -m 1024 \
    -nodefaults -display none -serial "file:$d/serial.log" \
    -drive "file=$d/overlay.qcow2,if=virtio,format=qcow2" \
    -drive "file=$d/seed.img,if=virtio,format=raw" \
    -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$port-:22" \
    -device virtio-rng-pci 2>"$d/qemu.err" &
  hand_pid=$!
  local sshc=(ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o LogLevel=ERROR -o ConnectTimeout=10 -i "$d/key" -p "$port" bench@127.0.0.1)
  deadline=$((SECONDS + timeout_s))
  until timeout 30 "${sshc[@]}" true 2>/dev/null; do
    if ! kill -0 "$hand_pid" 2>/dev/null || ((SECONDS >= deadline)); then
      log "run $i: no SSH by hand within ${timeout_s}s; serial tail:"
      tail -n 5 "$d/serial.log" >&2 || true
      put hand "$i" failed 1
      stop_hand
      return 0
    fi
    sleep 1
  done
  ts=$(now_us)
  record_qemu hand "$i" "$hand_pid"
  if bg timeout "$timeout_s" "${sshc[@]}" cloud-init status --wait >/dev/null 2>&1; then
    tc=$(now_us)
    put hand "$i" cloud-init "$(ms "$t0" "$tc")"
    put hand "$i" ci_since_qemu "$(ms "$tq" "$tc")"
  else
    log "run $i: 'cloud-init status --wait' failed or timed out"
  fi
  put hand "$i" ssh "$(ms "$t0" "$ts")"
  put hand "$i" started "$(ms "$t0" "$tq")"
  put hand "$i" forked "$(ms "$t0" "$tq")"
  put hand "$i" ssh_since_qemu "$(ms "$tq" "$ts")"
  hand_remote() { timeout 60 "${sshc[@]}" "$1"; }
  local journal listen boot
  journal=$(hand_remote "$journal_cmd" || true)
  journal_figures hand "$i" "$journal"
  boot=$(boot_realtime_us hand_remote)
  [[ -n $boot ]] && put hand "$i" kernel_since_qemu $(((boot - tq) / 1000))
  stop_hand
  rm -rf "$d"
}

stop_hand() {
  [[ -n $hand_pid ]] || return 0
  kill "$hand_pid" 2>/dev/null || true
  local _
  for _ in $(seq 50); do
    kill -0 "$hand_pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -9 "$hand_pid" 2>/dev/null || true
  wait "$hand_pid" 2>/dev/null || true
  hand_pid=
}

# ---- 4. libvirt: virt-install --import on the default network ----------------
# The way its users script it: the hand-made seed and overlay, virt-install
# --import (1 vCPU, 1 GiB, virtio disk and net, the seed on a virtio disk, no
# console), then `virsh domifaddr` once a second until the guest has an
# address (libvirt's dnsmasq lease), ssh once a second until it works, then
# `cloud-init status --wait`; then `virsh shutdown`, wait for "shut off",
# `virsh undefine --remove-all-storage`. Everything runs in the netns.
lv_setup() {
  local t
  lv_install
  for t in virt-install:virtinst iptables:iptables; do
    command -v "${t%%:*}" >/dev/null && continue
    log "installing ${t#*:} (apt-get install ${t#*:})"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${t#*:}" >&2 ||
      die "apt-get could not install ${t#*:}"
  done
  ip netns add "$netns" || die "cannot create the network namespace '$netns'"
  netns_made=1
  ip -n "$netns" link set lo up
  log "starting libvirtd in netns $netns (bench/lib/libvirtd.sh)"
  start_libvirtd
  # libvirt's default network as Debian's libvirt-daemon-config-network
  # ships it: virbr0, NAT (iptables rules in the netns only), dnsmasq DHCP.
  cat >"$tmp/default-net.xml" <<'EOF'
<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
EOF
  lvsh net-define "$tmp/default-net.xml" >/dev/null || die "virsh net-define default failed"
  lvsh net-start default >/dev/null || {
    tail -n 5 "$lv/libvirtd.log" >&2
    die "virsh net-start default failed"
  }
}

lv_run() {
  local i=$1 d=$tmp/lv$1 t0 tv tq tip ts tc td ip deadline qpid out
  local dom=qvm-bench-up-$$-$1
  mkdir -p "$d"
  log "run $i: libvirt (virt-install --import, virsh domifaddr, ssh loop)"
  start_sampler "$tmp/rss-libvirt-$i"
  t0=$(now_us)
  make_seed "$d" "libvirt$i"
  lv_dom=$dom
  tv=$(now_us)
  # bookworm's osinfo-db (2022-11) knows no debian12: debian11 is its newest
  # Debian (q35, virtio). --virt-type qemu: TCG, as every other method here
  # (left to itself libvirt picks KVM when /dev/kvm exists, and -cpu host);
  # no <cpu> for a TCG domain: QEMU's default, qemu64.
  if ! bg timeout 300 ip netns exec "$netns" virt-install --connect "$lv_uri" --name "$dom" \
    --virt-type qemu --memory 1024 --vcpus 1 --import --osinfo debian11 \
    --disk "path=$d/overlay.qcow2,format=qcow2,bus=virtio" \
    --disk "path=$d/seed.img,format=raw,bus=virtio,device=disk" \
    --network network=default,model=virtio \
    --graphics none --noautoconsole >"$d/virt-install.log" 2>&1; then
    log "run $i: virt-install failed: $(tail -n 5 "$d/virt-install.log")"
    put libvirt "$i" failed 1
    lv_teardown "$i" "$dom" 0
    return 0
  fi
  put libvirt "$i" virt_install "$(ms "$tv" "$(now_us)")"
  qpid=$(cat "$lv/run/qemu/$dom.pid" 2>/dev/null || true)
  tq=
  if [[ $qpid =~ ^[0-9]+$ ]]; then
    tq=$(proc_start_us "$qpid" || true)
    record_qemu libvirt "$i" "$qpid"
  fi
  [[ -n $tq ]] || { log "run $i: no QEMU pid from libvirt"; tq=$tv; }
  put libvirt "$i" forked "$(ms "$t0" "$tq")"
  deadline=$((SECONDS + timeout_s))
  ip=
  while :; do
    out=$(LVSH_TIMEOUT=30 lvsh domifaddr "$dom" 2>/dev/null || true)
    ip=$(awk '$3 == "ipv4" { sub(/\/.*/, "", $4); print $4; exit }' <<<"$out")
    [[ $ip =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] && break
    if ((SECONDS >= deadline)); then
      log "run $i: no address from virsh domifaddr within ${timeout_s}s"
      put libvirt "$i" failed 1
      lv_teardown "$i" "$dom" 0
      return 0
    fi
    sleep 1
  done
  tip=$(now_us)
  put libvirt "$i" ip "$(ms "$t0" "$tip")"
  local sshc=(ip netns exec "$netns" ssh -o BatchMode=yes -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10 -i "$d/key" "bench@$ip")
  until timeout 30 "${sshc[@]}" true 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "run $i: no SSH to the libvirt guest ($ip) within ${timeout_s}s"
      put libvirt "$i" failed 1
      lv_teardown "$i" "$dom" 0
      return 0
    fi
    sleep 1
  done
  ts=$(now_us)
  put libvirt "$i" ssh "$(ms "$t0" "$ts")"
  put libvirt "$i" ssh_since_qemu "$(ms "$tq" "$ts")"
  if bg timeout "$timeout_s" "${sshc[@]}" cloud-init status --wait >/dev/null 2>&1; then
    tc=$(now_us)
    put libvirt "$i" cloud-init "$(ms "$t0" "$tc")"
    put libvirt "$i" ci_since_qemu "$(ms "$tq" "$tc")"
  else
    log "run $i: 'cloud-init status --wait' on the libvirt guest failed or timed out"
  fi
  lv_remote() { timeout 60 "${sshc[@]}" "$1"; }
  local journal boot
  journal=$(lv_remote "$journal_cmd" || true)
  journal_figures libvirt "$i" "$journal"
  boot=$(boot_realtime_us lv_remote)
  [[ -n $boot ]] && put libvirt "$i" kernel_since_qemu $(((boot - tq) / 1000))
  lv_teardown "$i" "$dom" 1
}

# virsh shutdown, wait for "shut off" (state read every 0.25 s), undefine
# --remove-all-storage (the overlay and the seed); timed when $3 is 1. On a
# failure: destroy and undefine.
lv_teardown() {
  local i=$1 dom=$2 timed=$3 td st deadline ok=0
  log "run $i: virsh shutdown $dom; undefine --remove-all-storage"
  td=$(now_us)
  if lvsh shutdown "$dom" >/dev/null 2>&1; then
    deadline=$((SECONDS + 120))
    while ((SECONDS < deadline)); do
      st=$(LVSH_TIMEOUT=30 lvsh domstate "$dom" 2>/dev/null || true)
      [[ $st == "shut off" ]] && { ok=1; break; }
      sleep 0.25
    done
  fi
  if ((ok)) && lvsh undefine "$dom" --remove-all-storage >/dev/null 2>&1; then
    ((timed)) && put libvirt "$i" teardown "$(ms "$td" "$(now_us)")"
  else
    log "run $i: graceful teardown of $dom failed; destroying it"
    lvsh destroy "$dom" >/dev/null 2>&1
    lvsh undefine "$dom" --remove-all-storage >/dev/null 2>&1 || log "run $i: could not undefine $dom"
  fi
  lv_dom=
  stop_sampler
  put libvirt "$i" rss_cp "$(rss_peak "$tmp/rss-libvirt-$i" 1 2)"
  put libvirt "$i" rss_a "$(rss_peak "$tmp/rss-libvirt-$i" 1)"
  put libvirt "$i" rss_b "$(rss_peak "$tmp/rss-libvirt-$i" 2)"
  rm -rf "$tmp/lv$i"
}

# ---- run -----------------------------------------------------------------------
kvm="no /dev/kvm"
[[ -e /dev/kvm ]] && kvm="/dev/kvm present but not used"
others=$(pgrep -c -f '^[^ ]*qemu-system' 2>/dev/null || true)
load=$(cut -d' ' -f1-3 /proc/loadavg)
[[ $libvirt -eq 1 ]] && lv_setup
methods="qvm"
[[ $hand -eq 1 ]] && methods+=", by hand"
[[ $libvirt -eq 1 ]] && methods+=", qvm --net bridge, libvirt"
echo "bench_up: $runs run(s) of each method ($methods), interleaved; image $image"
echo "  host: $(nproc) cores, $kvm; every method runs QEMU TCG; load average $load at start,"
echo "        ${others:-0} other qemu process(es) running at start (other work makes the figures noisy)"
echo "  qvm:  $qvm"
if [[ $libvirt -eq 1 ]]; then
  echo "  libvirt: $(libvirtd --version | awk '{ print $NF }') (libvirtd in netns $netns), virt-install $(virt-install --version)"
fi
for i in $(seq "$runs"); do
  qvm_run "$i" qvm
  [[ $hand -eq 1 ]] && hand_run "$i"
  if [[ $libvirt -eq 1 ]]; then
    qvm_run "$i" qvmbr
    lv_run "$i"
  fi
done
echo "  load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

val() { awk -v m="$1" -v r="$2" -v k="$3" '$1 == m && $2 == r && $3 == k {print $4}' "$results"; }
col() { awk -v m="$1" -v k="$2" '$1 == m && $3 == k {print $4}' "$results"; }
fmt() { # "median min max" in ms [width] -> "12.3 s [11.0 .. 14.1]"
  local m lo hi w=${2:-24}
  read -r m lo hi <<<"$1"
  [[ $m == - ]] && { printf '%-*s' "$w" '-'; return; }
  printf '%-*s' "$w" "$(awk -v m="$m" -v a="$lo" -v b="$hi" 'BEGIN { printf "%.1f s [%.1f .. %.1f]", m/1000, a/1000, b/1000 }')"
}
sec() { [[ -n $1 ]] && awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }' || printf -- '-'; }

echo
echo "Per run (seconds from the first command; 'by hand' starts at ssh-keygen):"
printf '  %-4s %-8s %8s %8s %8s %8s %11s %11s\n' run method started serial tcp ssh cloud-init wall
for i in $(seq "$runs"); do
  for m in qvm hand; do
    [[ $m == hand && $hand -eq 0 ]] && continue
    if [[ -n $(val $m "$i" failed) ]]; then
      printf '  %-4s %-8s failed (see the log above)\n' "$i" "$m"
      continue
    fi
    printf '  %-4s %-8s %8s %8s %8s %8s %11s %11s\n' "$i" "$m" "$(sec "$(val $m "$i" started)")" \
      "$(sec "$(val $m "$i" serial)")" "$(sec "$(val $m "$i" tcp)")" "$(sec "$(val $m "$i" ssh)")" \
      "$(sec "$(val $m "$i" cloud-init)")" "$(sec "$(val $m "$i" wall)")"
  done
done

echo
echo "Median [min .. max] over the runs that worked:"
printf '  %-44s %-24s %-24s\n' "" "qvm up" "by hand"
row() {
  printf '  %-44s ' "$1"
  fmt "$(col qvm "$2" | stats)"
  if [[ $hand -eq 1 ]]; then fmt "$(col hand "$2" | stats)"; fi
  echo
}
row "QEMU started" started
row "serial output seen (qvm)" serial
row "TCP 22 answers with a banner (qvm)" tcp
row "SSH-ready" ssh
row "cloud-init done" cloud-init
row "whole qvm up command" wall

echo
echo "Overhead above the guest's own sshd start (per run, seconds):"
printf '  %-4s %-8s %10s %10s %10s %10s %10s %10s\n' run method sshd ssh-ready naive kernel overhead banner
for i in $(seq "$runs"); do
  for m in qvm hand; do
    [[ $m == hand && $hand -eq 0 ]] && continue
    [[ -n $(val $m "$i" failed) ]] && continue
    l=$(val $m "$i" sshd_listen)
    s=$(val $m "$i" ssh_since_qemu)
    k=$(val $m "$i" kernel_since_qemu)
    t=$(val $m "$i" tcp_since_qemu)
    naive='' over='' banner=''
    [[ -n $l && -n $s ]] && naive=$((s - l))
    [[ -n $l && -n $s && -n $k ]] && over=$((s - k - l))
    [[ -n $l && -n $t && -n $k ]] && banner=$((t - k - l))
    [[ -n $naive ]] && put $m "$i" naive "$naive"
    [[ -n $banner ]] && put $m "$i" banner "$banner"
    [[ -n $over ]] && put $m "$i" overhead "$over"
    printf '  %-4s %-8s %10s %10s %10s %10s %10s %10s\n' "$i" "$m" "$(sec "$l")" "$(sec "$s")" \
      "$(sec "$naive")" "$(sec "$k")" "$(sec "$over")" "$(sec "$banner")"
  done
done
printf '  %-44s %-24s %-24s\n' "" "qvm up" "by hand"
row "sshd listening (guest, since kernel boot)" sshd_listen
row "SSH-ready (since QEMU started)" ssh_since_qemu
row "naive: SSH-ready - sshd listening" naive
row "kernel boot (since QEMU started)" kernel_since_qemu
row "overhead: SSH-ready - (kernel + sshd)" overhead
row "of which: banner seen - (kernel + sshd)" banner
row "guest: cloud-init.service (before sshd)" ci_init

echo
echo "From sshd listening to qvm's tcp phase (qvm only, milliseconds):"
printf '  %-4s %16s %14s %14s %14s\n' run "announce->sshd" "sshd->probe" "probe" "sshd->tcp"
for i in $(seq "$runs"); do
  [[ -n $(val qvm "$i" failed) ]] && continue
  l=$(val qvm "$i" sshd_listen)
  k=$(val qvm "$i" kernel_since_qemu)
  t=$(val qvm "$i" tcp_since_qemu)
  a=$(val qvm "$i" announce_since_qemu)
  pr=$(val qvm "$i" probe_ms)
  al='' lp='' lt=''
  [[ -n $l && -n $k && -n $a ]] && al=$((k + l - a))
  [[ -n $l && -n $k && -n $t ]] && lt=$((t - k - l))
  [[ -n $lt && -n $pr ]] && lp=$((lt - pr))
  [[ -n $al ]] && put qvm "$i" lag_announce "$al"
  [[ -n $lp ]] && put qvm "$i" lag_probe "$lp"
  [[ -n $lt ]] && put qvm "$i" lag_tcp "$lt"
  printf '  %-4s %16s %14s %14s %14s\n' "$i" "${al:--}" "${lp:--}" "${pr:--}" "${lt:--}"
done
msrow() {
  local m lo hi
  read -r m lo hi <<<"$(col qvm "$2" | stats)"
  printf '  %-46s %s\n' "$1" "$([[ $m == - ]] && echo - || echo "$m ms [$lo .. $hi]")"
}
msrow "announcement, before sshd listened (guest)" lag_announce
msrow "sshd listening -> the probe that won (qvm)" lag_probe
msrow "that probe: connect -> sshd's banner (guest)" probe_ms
msrow "sshd listening -> tcp phase" lag_tcp

if [[ $libvirt -eq 1 ]]; then
  echo
  echo "libvirt side by side: \`qvm up --net bridge\` and \`virt-install --import\` on libvirt's default"
  echo "network, in one netns (seconds from the first command; libvirt starts at ssh-keygen):"
  printf '  %-4s %-8s %8s %8s %8s %11s %9s %8s\n' run method forked ip ssh cloud-init teardown "cp MB"
  for i in $(seq "$runs"); do
    for m in qvmbr libvirt; do
      if [[ -n $(val $m "$i" failed) ]]; then
        printf '  %-4s %-8s failed (see the log above)\n' "$i" "$m"
        continue
      fi
      ipk=lease
      [[ $m == libvirt ]] && ipk=ip
      r=$(val $m "$i" rss_cp)
      printf '  %-4s %-8s %8s %8s %8s %11s %9s %8s\n' "$i" "${m/qvmbr/qvm}" "$(sec "$(val $m "$i" forked)")" \
        "$(sec "$(val $m "$i" $ipk)")" "$(sec "$(val $m "$i" ssh)")" "$(sec "$(val $m "$i" cloud-init)")" \
        "$(sec "$(val $m "$i" teardown)")" "$([[ -n $r ]] && awk -v k="$r" 'BEGIN { printf "%.1f", k / 1024 }')"
    done
  done
  # qvm's lease phase and libvirt's ip are the same figure: IP known.
  ipl=$(awk '$1 == "qvmbr" && $3 == "lease" { print "qvmbr", $2, "ip", $4 }' "$results")
  [[ -n $ipl ]] && echo "$ipl" >>"$results"
  echo
  echo "Median [min .. max] over the runs that worked, and the ratio of the medians:"
  printf '  %-40s %-26s %-26s %s\n' "" "qvm up --net bridge" "libvirt + virt-install" "qvm/libvirt"
  lvrow() { # label key [unit: s (default) or MB]
    local a b ma mb
    a=$(col qvmbr "$2" | stats)
    b=$(col libvirt "$2" | stats)
    printf '  %-40s ' "$1"
    if [[ ${3:-s} == MB ]]; then
      for x in "$a" "$b"; do
        read -r m lo hi <<<"$x"
        if [[ $m == - ]]; then printf '%-26s' -; else
          printf '%-26s' "$(awk -v m="$m" -v a="$lo" -v b="$hi" 'BEGIN { printf "%.1f MB [%.1f .. %.1f]", m/1024, a/1024, b/1024 }')"
        fi
      done
    else
      fmt "$a" 26
      fmt "$b" 26
    fi
    read -r ma _ <<<"$a"
    read -r mb _ <<<"$b"
    if [[ $ma != - && $mb != - && $mb -gt 0 ]]; then
      awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.2f", a / b }'
    else
      printf -- -
    fi
    echo
  }
  lvrow "QEMU forked" forked
  lvrow "IP known" ip
  lvrow "SSH ready" ssh
  lvrow "cloud-init done" cloud-init
  lvrow "graceful teardown + remove" teardown
  lvrow "control-plane RSS, peak (one VM)" rss_cp MB
  lvrow "  of which qvm command / libvirtd" rss_a MB
  lvrow "  of which qvm-shim / dnsmasq" rss_b MB
  lvrow "libvirt: virt-install command" virt_install

  echo
  echo "The guest's own view (per run, seconds; kernel and after: since QEMU forked):"
  printf '  %-4s %-8s %8s %8s %9s %10s %9s %10s %10s\n' run method kernel sshd ssh-ready overhead "ci done" "ci ready" "ci lag"
  for i in $(seq "$runs"); do
    for m in qvmbr libvirt; do
      [[ -n $(val $m "$i" failed) ]] && continue
      k=$(val $m "$i" kernel_since_qemu)
      l=$(val $m "$i" sshd_listen)
      s=$(val $m "$i" ssh_since_qemu)
      cd_=$(val $m "$i" ci_done)
      cq=$(val $m "$i" ci_since_qemu)
      over='' cig='' cil=''
      [[ -n $l && -n $s && -n $k ]] && over=$((s - k - l))
      [[ -n $cd_ && -n $k ]] && cig=$((k + cd_))
      [[ -n $cig && -n $cq ]] && cil=$((cq - cig))
      [[ -n $over ]] && put $m "$i" overhead "$over"
      [[ -n $cig ]] && put $m "$i" ci_guest "$cig"
      [[ -n $cil ]] && put $m "$i" ci_lag "$cil"
      printf '  %-4s %-8s %8s %8s %9s %10s %9s %10s %10s\n' "$i" "${m/qvmbr/qvm}" "$(sec "$k")" "$(sec "$l")" \
        "$(sec "$s")" "$(sec "$over")" "$(sec "$cig")" "$(sec "$cq")" "$(sec "$cil")"
    done
  done
  printf '  %-40s %-26s %-26s %s\n' "" "qvm up --net bridge" "libvirt + virt-install" "qvm/libvirt"
  lvrow "guest: kernel started (since QEMU)" kernel_since_qemu
  lvrow "guest: sshd listening (since kernel)" sshd_listen
  lvrow "SSH ready (since QEMU forked)" ssh_since_qemu
  lvrow "overhead: SSH ready - (kernel + sshd)" overhead
  lvrow "guest: cloud-init-local.service" ci_local
  lvrow "guest: cloud-init.service" ci_init
  lvrow "guest: cloud-config.service" ci_config
  lvrow "guest: cloud-final.service" ci_final
  lvrow "guest: cloud-final finished (since QEMU)" ci_guest
  lvrow "cloud-init done seen (since QEMU)" ci_since_qemu
  lvrow "lag: seen - cloud-final finished" ci_lag
fi

echo
echo "QEMU's CPU model and machine, per method (from /proc/PID/cmdline of its QEMU):"
for m in qvm hand qvmbr libvirt; do
  awk -v m="$m" '$1 == m { print $3 " (-machine " $4 ")" }' "$cpus" | sort | uniq -c |
    awk -v m="${m/qvmbr/qvm-bridge}" '{ n = $1; $1 = ""; printf "  %-11s %s run(s):%s\n", m, n, $0 }'
done

cat <<'EOF'

What the numbers mean:
  started     qvm: `qvm up` ran create (client key, pinned host key, seed, overlay),
              started the shim and QEMU, and QMP answered. By hand: ssh-keygen,
              cloud-localds, qemu-img create done, qemu-system-x86_64 launched.
  serial      qvm: the guest wrote its first byte on the serial console.
  tcp         qvm: the guest's sshd sent its "SSH-" banner through the port forward.
  ssh         SSH-ready. qvm: authenticated with the host key pinned before boot.
              By hand: the first `ssh ... true` (polled once a second, any host
              key accepted) that exited 0.
  cloud-init  cloud-init done. qvm: /run/cloud-init/result.json, waited for by a
              shell loop over its SSH session, plus qvm's readiness marker on
              serial. By hand: a new `ssh ... cloud-init status --wait` returned.
  wall        the whole `qvm up` process, start to exit.
  sshd        from the guest journal (journalctl -b -o short-monotonic -u ssh): the
              first "Server listening on" line of sshd, in seconds since the
              guest kernel started (cloud-init may restart sshd later: ignored).
  ssh-ready   the SSH-ready moment in seconds since QEMU was spawned (qvm: the
              UP_PHASE ssh event time minus the qvm-qemu-spawned event in
              events.jsonl; by hand: the ssh loop's success minus qemu's launch).
  naive       ssh-ready - sshd: what the brief asks for. It mixes two clocks'
              origins, so it also holds firmware, GRUB and the kernel's loading,
              which happen before the guest's clock starts.
  kernel      when the guest kernel started, in seconds since QEMU was spawned:
              the guest prints /proc/uptime ten times over one SSH session and the
              host stamps each line on arrival; the smallest (host time - uptime)
              is the boot moment (an upper bound, about 10-50 ms late).
  overhead    ssh-ready - kernel - sshd: how long after the guest's sshd listened
              the method noticed and logged in. The rest of SSH-ready is the
              guest's own boot.
  cloud-init.service  the guest's cloud-init init stage, from the journal; ssh.service
              waits for it (Before=ssh.service). The guest's boot is not the same
              for both methods: qvm's seed brings the SSH host key (ssh_keys), so
              the guest generates none; the hand-made seed has none, so cloud-init
              generates RSA, DSA, ECDSA and Ed25519 host keys there, under TCG,
              before sshd starts. Compare its row between the columns to see
              how much of the SSH-ready gap that is.
  banner      qvm only: tcp phase - kernel - sshd, how long after sshd listened qvm
              saw its banner; overhead minus banner is the SSH handshake and
              authentication, mostly guest CPU.
  announce->sshd  how long before sshd listened the guest announced that sshd
              comes next (qvm's seed opens its readiness port in its last
              bootcmd; QEMU's timestamp of the VSERPORT_CHANGE); from then on
              qvm probes every 50 ms. Its error is the kernel estimate's (an
              upper bound, 10-50 ms late). "-": no announcement (a qvm from
              before it, or a guest that ignores the seed).
  sshd->probe when the probe that saw the banner connected, after sshd listened:
              qvm's own lag (sshd->tcp - probe). Can be slightly negative: sshd
              logs "Server listening" a moment after it listens.
  probe       how long that probe waited for the banner (UP_PHASE tcp
              "probe_ms"): sshd accepting a connection, forking and
              re-executing itself, slow under TCG. Not qvm's: the banner is
              the proof that sshd answers, so it is always waited for.
  sshd->tcp   tcp phase - kernel - sshd (the banner column, in ms).

libvirt side by side (both in one netns the script made; libvirtd of its own,
bench/lib/libvirtd.sh, with Debian's default network: virbr0, NAT, dnsmasq):
  qvm         `qvm up --net bridge` (bridge qvm0, the shim's own DHCP), --json phases.
  libvirt     ssh-keygen, cloud-localds seed (the hand-made one), qemu-img overlay,
              `virt-install --import --osinfo debian11` (1 vCPU, 1 GiB, virtio disk
              and net, seed on a virtio disk, --graphics none --noautoconsole), then
              `virsh domifaddr` each second, `ssh ... true` each second, then
              `ssh ... cloud-init status --wait`.
  forked      QEMU's process started (qvm: the shim's spawn event; libvirt: its
              start time in /proc, from the pid file libvirt writes).
  ip          IP known: qvm's lease phase (the shim's DHCP ACK); libvirt: the first
              `virsh domifaddr` that listed an IPv4 address (dnsmasq's lease).
  teardown    qvm: `qvm down --rm` (ACPI power button, wait, remove). libvirt:
              `virsh shutdown`, `virsh domstate` every 0.25 s until "shut off",
              `virsh undefine --remove-all-storage` (overlay and seed).
  cp MB       control-plane RSS: the peak, sampled once a second from boot to the
              end of teardown, of the sum of VmRSS of the netns's control processes:
              libvirt's (libvirtd, or virtqemud/virtnetworkd/virtlogd when they
              run, and dnsmasq) and qvm's (the `qvm up`/`exec`/`down` command, the
              shim). Never QEMU. libvirtd stays up between VMs; the qvm command
              only runs while it works, the shim while its VM runs.
  ci done     the guest's cloud-final.service finished, since QEMU forked (kernel +
              its journal time); ci ready: cloud-init done as the method saw it,
              since QEMU forked; ci lag: the difference (the method's part; negative
              when the method saw result.json, written by cloud-final's last
              step, before systemd logged the unit finished).
  cloud-*.service  each cloud-init stage's duration from the guest journal. The
              libvirt guest gets the hand-made seed, so it generates its SSH host
              keys in cloud-init.service as the hand-made guest does (qvm's seed
              brings one): compare these rows before blaming the driver.
All timings come from one loaded 2-core host and vary from run to run; they are
figures, not assertions.
EOF
