#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_up: `qvm up` on the cloud test guest, next to the same image booted
# the way people script it by hand (cloud-localds + plain qemu + a 1 s SSH
# polling loop), in the same run, under the same accelerator. Prints figures;
# never asserts timings. See bench/e2e/README.md.
#
# usage: bench/e2e/bench_up.sh [-n RUNS] [--qvm PATH] [--image DISK.qcow2]
#                              [--timeout S] [--no-hand]
#   -n RUNS      runs of each method, interleaved (default 3; env BENCH_RUNS)
#                (qvm up gets --accel tcg; the hand-made QEMU gets -accel tcg)
#   --qvm PATH   the qvm binary (default: $QVM, else BUILD/qvm for the first of
#                build-bench, build; build it with cmake first)
#   --image P    the cloud image (default: tests/guests/cloud/build.sh's output)
#   --timeout S  bound for each boot to cloud-init-done (default 600)
#   --no-hand    only measure qvm up
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
runs=${BENCH_RUNS:-3}
qvm=${QVM:-}
image=
timeout_s=600
hand=1

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
  -h | --help) sed -n '4,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]?$ ]] || die "-n '$runs' is invalid: use 1 to 99"
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout '$timeout_s' is invalid: use seconds"

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

# ---- cleanup: every VM, qemu process and temp file, on any exit ------------
tmp=$(mktemp -d /tmp/qvm-bench-up.XXXXXX)
export QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run
mkdir -p "$QVM_STATE_DIR" "$QVM_RUNTIME_DIR"
vms=()
hand_pid=
bg_pid=
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
  if [[ -n $bg_pid ]]; then
    kill "$bg_pid" 2>/dev/null || true
    timeout 30 tail --pid="$bg_pid" -f /dev/null 2>/dev/null || kill -9 "$bg_pid" 2>/dev/null || true
  fi
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
  # Anything qvm left behind under our own state dir (a shim whose rm failed).
  local pids
  pids=$(pgrep -f -- "$tmp/" 2>/dev/null || true)
  local p
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
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

# ---- 1. qvm up ---------------------------------------------------------------
qvm_run() {
  local i=$1 name=bench$1 json t0 t1 rc=0
  vms+=("$name")
  log "run $i: qvm up $name"
  t0=$(now_us)
  bg timeout $((timeout_s + 60)) "$qvm" up "$name" --image "$image" --disk 3G --json \
    --accel tcg --timeout "$timeout_s" >"$tmp/up-$i.json" 2>"$tmp/up-$i.err" || rc=$?
  t1=$(now_us)
  json=$(cat "$tmp/up-$i.json")
  if [[ $rc -ne 0 ]] || ! jq -e .ok <<<"$json" >/dev/null 2>&1; then
    log "run $i: qvm up failed (exit $rc): $(jq -r '.failed_phase // empty, .error // empty' <<<"$json" 2>/dev/null) $(tail -n 5 "$tmp/up-$i.err")"
    put qvm "$i" failed 1
  else
    local p v
    for p in started serial tcp ssh cloud-init; do
      v=$(jq -r --arg p "$p" '.phases_ms[$p] // empty' <<<"$json")
      [[ -n $v ]] && put qvm "$i" "$p" "$v"
    done
    put qvm "$i" wall "$(ms "$t0" "$t1")"
    guest_view qvm "$i" "$name"
  fi
  log "run $i: qvm down $name --rm"
  bg timeout 180 "$qvm" down "$name" --rm --timeout 60 >/dev/null 2>&1 ||
    timeout 60 "$qvm" rm --force "$name" >/dev/null 2>&1 || log "run $i: could not remove $name"
}

journal_cmd='sudo journalctl -b -o short-monotonic -u ssh -u cloud-init --no-pager'
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
  return 0
}

qvm_remote() { timeout 60 "$qvm" exec --timeout 50 "$1" -- sh -c "$2"; }

# 3. The guest's own view: when sshd listened (since kernel boot), and when
# the kernel booted (since QEMU started), over qvm exec.
guest_view() {
  local method=$1 i=$2 name=$3 dir events spawn ssh_ev tcp_ev journal listen boot
  dir=$("$qvm" info "$name" --json | jq -r .dir) || return 0
  events=$dir/events.jsonl
  spawn=$(jq -r 'select(.event == "qvm-qemu-spawned") | .data.at_us' "$events" | tail -n 1)
  ssh_ev=$(jq -r 'select(.event == "UP_PHASE" and .phase == "ssh") | .time' "$events" | tail -n 1)
  [[ -n $spawn && -n $ssh_ev ]] || { log "run $i: no qemu spawn or ssh phase in $events"; return 0; }
  put "$method" "$i" ssh_since_qemu $((($(rfc_us "$ssh_ev") - spawn) / 1000))
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
hand_run() {
  local i=$1 d=$tmp/hand$1 port t0 tq ts tc deadline
  mkdir -p "$d"
  log "run $i: by hand (cloud-localds, qemu-system-x86_64, ssh loop)"
  t0=$(now_us)
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
  printf 'instance-id: hand-%s\nlocal-hostname: hand%s\n' "$i" "$i" >"$d/meta-data"
  cloud-localds "$d/seed.img" "$d/user-data" "$d/meta-data"
  qemu-img create -q -f qcow2 -F qcow2 -b "$image" "$d/overlay.qcow2" 3G
  port=$(free_port) || { log "run $i: no free port"; put hand "$i" failed 1; return 0; }
  tq=$(now_us)
  qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 1 -m 1024 \
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
  if bg timeout "$timeout_s" "${sshc[@]}" cloud-init status --wait >/dev/null 2>&1; then
    tc=$(now_us)
    put hand "$i" cloud-init "$(ms "$t0" "$tc")"
  else
    log "run $i: 'cloud-init status --wait' failed or timed out"
  fi
  put hand "$i" ssh "$(ms "$t0" "$ts")"
  put hand "$i" started "$(ms "$t0" "$tq")"
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

# ---- run -----------------------------------------------------------------------
kvm="no /dev/kvm"
[[ -e /dev/kvm ]] && kvm="/dev/kvm present but not used"
others=$(pgrep -c -f '^[^ ]*qemu-system' 2>/dev/null || true)
load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench_up: $runs run(s) of each method, interleaved; image $image"
echo "  host: $(nproc) cores, $kvm; both methods run QEMU TCG; load average $load at start,"
echo "        ${others:-0} other qemu process(es) running at start (other work makes the figures noisy)"
echo "  qvm:  $qvm"
for i in $(seq "$runs"); do
  qvm_run "$i"
  [[ $hand -eq 1 ]] && hand_run "$i"
done
echo "  load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

val() { awk -v m="$1" -v r="$2" -v k="$3" '$1 == m && $2 == r && $3 == k {print $4}' "$results"; }
col() { awk -v m="$1" -v k="$2" '$1 == m && $3 == k {print $4}' "$results"; }
fmt() { # "median min max" in ms -> "12.3 s [11.0 .. 14.1]"
  local m lo hi
  read -r m lo hi <<<"$1"
  [[ $m == - ]] && { printf '%-24s' '-'; return; }
  printf '%-24s' "$(awk -v m="$m" -v a="$lo" -v b="$hi" 'BEGIN { printf "%.1f s [%.1f .. %.1f]", m/1000, a/1000, b/1000 }')"
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
  cloud-init  cloud-init done. qvm: `cloud-init status --wait --long` over its SSH
              session plus qvm's readiness marker on serial. By hand: a new
              `ssh ... cloud-init status --wait` returned.
  wall        the whole `qvm up` process, start to exit.
  sshd        from the guest journal (journalctl -b -o short-monotonic -u ssh): the
              first "Server listening on" line of sshd, in seconds since the
              guest kernel started (cloud-init restarts sshd later; that is ignored).
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
All timings come from one loaded 2-core host and vary from run to run; they are
figures, not assertions.
EOF
