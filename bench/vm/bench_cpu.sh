#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_cpu: how the guest CPU model changes a TCG boot of the cloud test
# guest. `qvm up --cpu MODEL` for each model, interleaved (m1, m2, ..., m1,
# m2, ...), then the guest's own view (systemd-analyze: kernel and userspace)
# so that the driver's share is told apart. Prints figures; asserts nothing.
# It chose qvm's TCG default (docs/ARCHITECTURE.md, "CPU model").
#
# usage: bench/vm/bench_cpu.sh [-n RUNS] [--qvm PATH] [--image DISK.qcow2]
#                              [--timeout S] [MODEL...]
#   -n RUNS     runs of each model (default 2)
#   --qvm PATH  the qvm binary (default: build-bench/qvm, else build/qvm)
#   --image P   the cloud image (default: tests/guests/cloud/build.sh's output)
#   MODEL...    default: qemu64 max Nehalem qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
runs=2
qvm=${QVM:-}
image=
timeout_s=600
models=()

die() {
  echo "bench_cpu: $*" >&2
  exit 1
}
log() { echo "bench_cpu: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case $1 in
  -n) runs=${2:?-n needs a number}; shift 2 ;;
  --qvm) qvm=${2:?--qvm needs a path}; shift 2 ;;
  --image) image=${2:?--image needs a path}; shift 2 ;;
  --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
  -h | --help) sed -n '4,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  -*) die "unknown option '$1' (see --help)" ;;
  *) models+=("$1"); shift ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]?$ ]] || die "-n '$runs' is invalid: use 1 to 99"
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout '$timeout_s' is invalid: use seconds"
((${#models[@]})) || models=(qemu64 max Nehalem "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt")
command -v jq >/dev/null || die "'jq' is missing: run scripts/deps.sh"
if [[ -z $qvm ]]; then
  for b in build-bench build; do
    [[ -x $repo/$b/qvm ]] && { qvm=$repo/$b/qvm; break; }
  done
fi
[[ -n $qvm && -x $qvm ]] || die "no qvm binary: build it or pass --qvm"
if [[ -z $image ]]; then
  log "building or finding the cloud test guest (tests/guests/cloud/build.sh)"
  image=$("$repo/tests/guests/cloud/build.sh" | tail -n 1)/disk.qcow2 ||
    die "tests/guests/cloud/build.sh failed"
fi
[[ -r $image ]] || die "image '$image' is not readable"

tmp=$(mktemp -d /tmp/qvm-bench-cpu.XXXXXX)
export QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run
name=
cleanup() {
  [[ -n $name ]] && timeout 120 "$qvm" rm --force "$name" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A fig
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for ((i = 1; i <= runs; i++)); do
  for ((m = 0; m < ${#models[@]}; m++)); do
    model=${models[m]}
    name=cpu-$m-$i
    log "run $i, --cpu $model"
    rc=0
    timeout $((timeout_s + 60)) "$qvm" up "$name" --image "$image" --disk 3G --json --accel tcg \
      --cpu "$model" --timeout "$timeout_s" >"$tmp/up.json" 2>"$tmp/up.err" || rc=$?
    if [[ $rc -ne 0 ]] || ! jq -e .ok "$tmp/up.json" >/dev/null 2>&1; then
      log "  failed (exit $rc): $(tail -n 3 "$tmp/up.err")"
      fig[$m,$i]="failed"
    else
      ssh_ms=$(jq -r '.phases_ms.ssh' "$tmp/up.json")
      ci_ms=$(jq -r '.phases_ms["cloud-init"]' "$tmp/up.json")
      # The guest's view: "Startup finished in K (kernel) + U (userspace)".
      sa=$(timeout 60 "$qvm" exec "$name" -- systemd-analyze time 2>/dev/null | head -n 1 || true)
      kern=$(sed -n 's/.* in \([0-9.]*m\{0,1\}s\) (kernel).*/\1/p' <<<"$sa")
      user=$(sed -n 's/.* + \([0-9.min ]*s\) (userspace).*/\1/p' <<<"$sa")
      fig[$m,$i]=$(printf '%6.1f %6.1f   %-8s %-10s' "$(bc -l <<<"$ssh_ms/1000")" \
        "$(bc -l <<<"$ci_ms/1000")" "${kern:--}" "${user:--}")
      echo "$ssh_ms" >>"$tmp/ssh-$m"
      echo "$ci_ms" >>"$tmp/ci-$m"
    fi
    timeout 180 "$qvm" down "$name" --rm --timeout 60 >/dev/null 2>&1 ||
      timeout 60 "$qvm" rm --force "$name" >/dev/null 2>&1 || log "could not remove $name"
    name=
  done
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "bench_cpu: $runs run(s) of each model, interleaved; qvm up --accel tcg --cpu MODEL"
echo "  image: $image"
echo "  host: $(nproc) cores; load average $load0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
echo
printf '%-40s %-4s %6s %6s   %-8s %-10s\n' model run ssh c-init kernel userspace
for ((m = 0; m < ${#models[@]}; m++)); do
  for ((i = 1; i <= runs; i++)); do
    printf '%-40s %-4s %s\n' "${models[m]}" "$i" "${fig[$m,$i]}"
  done
done
echo
base=
printf '%-40s %12s %12s %10s\n' "median (s)" ssh-ready cloud-init "ssh/first"
for ((m = 0; m < ${#models[@]}; m++)); do
  [[ -s $tmp/ssh-$m ]] || { printf '%-40s %12s\n' "${models[m]}" failed; continue; }
  s=$(median "$tmp/ssh-$m")
  c=$(median "$tmp/ci-$m")
  [[ -n $base ]] || base=$s
  printf '%-40s %12.1f %12.1f %10.2f\n' "${models[m]}" "$(bc -l <<<"$s/1000")" \
    "$(bc -l <<<"$c/1000")" "$(bc -l <<<"$s/$base")"
done
echo
echo "ssh: qvm up's SSH-ready (s since up began); c-init: cloud-init done; kernel and"
echo "userspace: the guest's own systemd-analyze (boot to default target)."
