#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_api (issue 16): listing VMs through qvmd beside listing domains
# through libvirt, in one run, with the same number of VMs defined (none
# running):
#   - qvmd: GET /api/v1/vms from CLIENTS keep-alive clients on its UNIX
#     socket (bench_api_load): p50, p99, requests/s; and one `curl` process
#     per request (what a shell script pays), p50;
#   - libvirt 9.0 from Debian, its own libvirtd in a netns the bench makes
#     (bench/lib/libvirtd.sh): `virsh list --all`, one process and
#     connection per call as its users run it, p50, p99, and calls/s with
#     CLIENTS at once;
#   - idle memory, qvmd's beside libvirtd's (Debian's libvirtd runs its QEMU
#     driver in process: there is no virtqemud), a few seconds after the
#     load: Rss, Pss and Private (USS: pages no other process maps) from
#     /proc/PID/smaps_rollup. Most of either's Rss is shared libraries'
#     file pages, which every process that maps them counts again;
#   - with valgrind installed: the instructions qvmd runs for one list
#     request (callgrind, a qvmd of its own), the first (nothing kept yet)
#     and the mean of the next ones: the CPU figure that other work on the
#     machine does not change.
# Figures only; nothing is asserted.
#
# usage: bench/api/bench_api.sh [--vms N] [--clients N] [-n REQUESTS] [--calls N]
#   --vms N       VMs (and libvirt domains) defined (default 50)
#   --clients N   concurrent clients (default 16)
#   -n N          qvmd requests in all (default 20000)
#   --calls N     virsh calls (and curl calls) in all (default 200)
# Needs root (a network and a mount namespace). Installs libvirt from Debian
# with apt-get when virsh, libvirtd or its QEMU driver is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${QVM_BINARY_DIR:-$repo/build}
vms=50
clients=16
requests=20000
calls=200

die() {
  echo "bench_api: $*" >&2
  exit 1
}
log() { echo "bench_api: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case $1 in
  --vms) vms=${2:?--vms needs a number}; shift 2 ;;
  --clients) clients=${2:?--clients needs a number}; shift 2 ;;
  -n) requests=${2:?-n needs a number}; shift 2 ;;
  --calls) calls=${2:?--calls needs a number}; shift 2 ;;
  -h | --help) sed -n '4,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ $vms =~ ^[1-9][0-9]{0,3}$ ]] || die "--vms '$vms' is invalid: 1 to 9999"
[[ $clients =~ ^[1-9][0-9]{0,2}$ && $clients -le 256 ]] || die "--clients '$clients' is invalid: 1 to 256"
[[ $requests =~ ^[1-9][0-9]*$ && $requests -ge $clients ]] || die "-n '$requests' is invalid"
[[ $calls =~ ^[1-9][0-9]*$ ]] || die "--calls '$calls' is invalid"
[[ $(id -u) == 0 ]] || die "needs root (network and mount namespaces)"
for f in qvm qvmd bench/api/bench_api_load; do
  [[ -x $bin/$f ]] || die "no $bin/$f: build first (cmake --build build), or set QVM_BINARY_DIR"
done
for tool in curl ip unshare python3; do command -v "$tool" >/dev/null || die "needs $tool"; done

tmp=$(mktemp -d /var/tmp/qvm-bench-api.XXXXXX)
chmod 0700 "$tmp"
export QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run
mkdir -m 0700 "$QVM_STATE_DIR" "$QVM_RUNTIME_DIR"
netns=qvm-bench-api-$$
netns_made=0
qvmd_pid=
. "$repo/bench/lib/libvirtd.sh"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [[ -n $qvmd_pid ]] && stop_pid "$qvmd_pid" 10
  stop_libvirtd
  ((netns_made)) && ip netns del "$netns" 2>/dev/null
  rm -rf -- "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
lv_install

# "RSS PSS PRIVATE" in KiB
mem_kib() {
  awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } /^Private_(Clean|Dirty):/ { u += $2 }
    END { print r, p, u }' "/proc/$1/smaps_rollup"
}
# p50 p99 of a file of microseconds, in ms
pct() {
  sort -n "$1" | awk '{ a[NR] = $1 } END {
    h = int((NR + 1) / 2); t = int(NR * 0.99); if (t < 1) t = 1
    printf "%.2f %.2f\n", a[h] / 1000, a[t] / 1000 }'
}
now_us() { echo "${EPOCHREALTIME/./}"; }

# ---- the VMs: defined, not started -------------------------------------------
log "defining $vms VMs for qvm and $vms domains for libvirt"
: >"$tmp/kernel"
for i in $(seq -w 1 "$vms"); do
  "$bin/qvm" create "bench-$i" --kernel "$tmp/kernel" --memory 64M >/dev/null || die "qvm create bench-$i"
done

# ---- qvmd ---------------------------------------------------------------------------
sock=$tmp/qvmd.sock
"$bin/qvmd" --socket "$sock" --max-connections 512 --rate-limit 0 2>"$tmp/qvmd.log" &
qvmd_pid=$!
for _ in $(seq 100); do grep -q 'qvmd: serving' "$tmp/qvmd.log" && break; sleep 0.05; done
grep -q 'qvmd: serving' "$tmp/qvmd.log" || die "qvmd did not start: $(cat "$tmp/qvmd.log")"
n=$(curl -s --unix-socket "$sock" http://qvmd/api/v1/vms | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[[ $n == "$vms" ]] || die "qvmd lists $n VMs, not $vms"
"$bin/bench/api/bench_api_load" "$sock" /api/v1/vms "$clients" "$clients" >/dev/null # warm up
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
read -r q50 q99 qrps qbytes < <("$bin/bench/api/bench_api_load" "$sock" /api/v1/vms "$clients" "$requests") ||
  die "the load against qvmd failed"
: >"$tmp/curl.us"
for _ in $(seq "$calls"); do
  t0=$(now_us)
  curl -sf -o /dev/null --unix-socket "$sock" http://qvmd/api/v1/vms || die "curl failed"
  echo $(($(now_us) - t0)) >>"$tmp/curl.us"
done
read -r c50 c99 < <(pct "$tmp/curl.us")
sleep 3 # idle for 2 s, qvmd gives back what the burst freed (malloc_trim)
read -r qvmd_rss qvmd_pss qvmd_uss < <(mem_kib "$qvmd_pid")
stop_pid "$qvmd_pid" 10
qvmd_pid=

# ---- qvmd under callgrind: instructions per list request -------------------
cg_first=- cg_next=- cg_n=200
if command -v valgrind >/dev/null && command -v callgrind_control >/dev/null; then
  log "counting qvmd's instructions per request (callgrind)"
  cg_sock=$tmp/qvmd-cg.sock
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
    "$bin/qvmd" --socket "$cg_sock" --rate-limit 0 2>"$tmp/cg.log" &
  qvmd_pid=$!
  for _ in $(seq 300); do grep -q 'qvmd: serving' "$tmp/cg.log" && break; sleep 0.1; done
  grep -q 'qvmd: serving' "$tmp/cg.log" || die "qvmd under valgrind did not start"
  # Ir of the requests since the last zeroing: a dump, its "summary:"
  cg_count() {
    callgrind_control -z "$qvmd_pid" >/dev/null 2>&1
    "$bin/bench/api/bench_api_load" "$cg_sock" /api/v1/vms 1 "$1" >/dev/null || die "the load under callgrind failed"
    rm -f "$tmp"/cg.out.*
    callgrind_control -d "$qvmd_pid" >/dev/null 2>&1
    awk '/^summary:/ { s += $2 } END { print s }' "$tmp"/cg.out.*
  }
  cg_first=$(cg_count 1)
  cg_next=$(($(cg_count "$cg_n") / cg_n))
  stop_pid "$qvmd_pid" 10
  qvmd_pid=
fi

# ---- libvirt --------------------------------------------------------------------------
ip netns add "$netns" || die "cannot create the network namespace '$netns'"
netns_made=1
ip -n "$netns" link set lo up
start_libvirtd
for i in $(seq -w 1 "$vms"); do
  cat >"$tmp/dom.xml" <<EOF
<domain type='qemu'>
  <name>bench-$i</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type><kernel>$tmp/kernel</kernel></os>
</domain>
EOF
  virsh_ define "$tmp/dom.xml" >/dev/null || die "virsh define bench-$i failed"
done
n=$(virsh_ list --all --name | grep -c .)
[[ $n == "$vms" ]] || die "virsh lists $n domains, not $vms"
: >"$tmp/virsh.us"
for _ in $(seq "$calls"); do
  t0=$(now_us)
  virsh_ list --all >/dev/null || die "virsh list failed"
  echo $(($(now_us) - t0)) >>"$tmp/virsh.us"
done
read -r v50 v99 < <(pct "$tmp/virsh.us")
t0=$(now_us)
seq "$calls" | xargs -P "$clients" -I{} ip netns exec "$netns" virsh -q \
  -c "qemu:///system?socket=$lv/run/libvirt-sock" list --all >/dev/null || die "parallel virsh failed"
vrps=$(awk -v n="$calls" -v us=$(($(now_us) - t0)) 'BEGIN { printf "%.0f", n / (us / 1e6) }')
sleep 3
read -r lv_rss lv_pss lv_uss < <(mem_kib "$lv_pid")
lv_version=$(dpkg-query -W -f '${Version}' libvirt-daemon 2>/dev/null || echo '?')

# ---- the figures ------------------------------------------------------------------------
cores=$(nproc)
echo "bench_api: $vms VMs defined (none running), $clients clients, $(date -u +%FT%TZ), $cores cores, load $load_at_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
printf '  %-52s p50 %7.2f ms  p99 %7.2f ms  %8.0f req/s  (%s bytes)\n' \
  "qvmd GET /api/v1/vms, $clients keep-alive clients" "$q50" "$q99" "$qrps" "$qbytes"
printf '  %-52s p50 %7.2f ms  p99 %7.2f ms\n' "curl GET /api/v1/vms, a process per request" "$c50" "$c99"
printf '  %-52s p50 %7.2f ms  p99 %7.2f ms  %8.0f calls/s (%s at once)\n' \
  "virsh list --all (libvirt $lv_version), a process per call" "$v50" "$v99" "$vrps" "$clients"
printf '  %-52s qvmd Rss %6d  Pss %6d  Private %6d KiB\n' "idle memory after the load" \
  "$qvmd_rss" "$qvmd_pss" "$qvmd_uss"
printf '  %-52s libvirtd Rss %6d  Pss %6d  Private %6d KiB\n' "" "$lv_rss" "$lv_pss" "$lv_uss"
printf '  %-52s first %s, then %s each (mean of %s)\n' "qvmd instructions per list request (callgrind)" \
  "$cg_first" "$cg_next" "$cg_n"
awk -v q="$qrps" -v v="$vrps" -v c="$c50" -v w="$v50" -v qr="$qvmd_rss" -v lr="$lv_rss" \
  -v qu="$qvmd_uss" -v lu="$lv_uss" 'BEGIN {
  printf "  ratios: qvmd req/s / virsh calls/s %.1fx; curl p50 / virsh p50 %.2f; Rss qvmd / libvirtd %.2f; Private %.2f\n",
    q / v, c / w, qr / lr, qu / lu }'
