#!/usr/bin/env bash
# bench/sandbox (issue 14): in one run on the mini guest (kernel + busybox,
# boots in seconds under TCG, so the figures are qvm's own costs, not a
# cloud guest's boot):
#   - `qvm sandbox create --from GOLDEN:SNAP` to exec-ready (create, boot,
#     SSH, then `qvm exec -- true`), beside `qvm fork GOLDEN` to exec-ready
#     (no boot: resumed from memory), and
#   - the per-command cost of `qvm exec --checkpoint -- true` beside a plain
#     `qvm exec -- true` on the same running VM, and
#   - `qvm exec -- true` into a sandbox created with --checkpoint-each (a
#     checkpoint before every command) beside one into a plain sandbox.
# Medians of N runs (default 5), interleaved; figures only, nothing asserted.
#
#   QVM_BINARY_DIR=build bench/sandbox/bench_sandbox.sh [-n RUNS]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
bin=${QVM_BINARY_DIR:-$src/build}
qvm=$bin/qvm
runs=5
while [[ $# -gt 0 ]]; do
  case $1 in
  -n) runs=${2:?-n needs a number}; shift 2 ;;
  -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
  *) echo "bench_sandbox: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]?$ ]] || { echo "bench_sandbox: -n must be 1 to 99" >&2; exit 2; }
[[ -x $qvm ]] || { echo "bench_sandbox: no qvm at $qvm (build first)" >&2; exit 1; }
mini=$("$src/tests/guests/mini/build.sh" | tail -n 1)
[[ -f $mini/vmlinuz ]] || { echo "bench_sandbox: no mini guest" >&2; exit 1; }

tmp=$(mktemp -d /var/tmp/qvm-bench-sandbox.XXXXXX)
export QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run
cleanup() {
  local v
  for v in $("$qvm" ls --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(v["name"] for v in json.load(sys.stdin)))' 2>/dev/null); do
    "$qvm" rm --force "$v" >/dev/null 2>&1 || true
  done
  rm -rf -- "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0
  --memory 256M --user root --no-wait-cloud-init)
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 64M
"$qvm" up gold "${boot[@]}" --image "$tmp/base.qcow2" >/dev/null 2>&1
"$qvm" snapshot create gold s0 --disk-only >/dev/null
# One plain sandbox and one with --checkpoint-each, for the per-command cost.
"$qvm" sandbox create sbp --from gold:s0 --ttl 1h >/dev/null
"$qvm" sandbox create sbe --from gold:s0 --ttl 1h --checkpoint-each >/dev/null

now() { date +%s%N; }
declare -A times
add() { times[$1]+="$2 "; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { printf "%.3f", a[int((NR + 1) / 2)] / 1e9 }'; }
ready() { # a vm's exec-ready: exec -- true until it answers
  for _ in $(seq 600); do "$qvm" exec "$1" -- true >/dev/null 2>&1 && return 0; sleep 0.05; done
  return 1
}

for i in $(seq "$runs"); do
  t0=$(now)
  "$qvm" sandbox create "sb$i" --from gold:s0 --ttl 10m >/dev/null
  ready "sb$i"
  add sandbox $(($(now) - t0))
  "$qvm" sandbox destroy "sb$i" >/dev/null
  t0=$(now)
  "$qvm" fork gold --prefix "fk$i" --json --quiet >/dev/null
  ready "fk$i-1"
  add fork $(($(now) - t0))
  "$qvm" rm --force "fk$i-1" >/dev/null
  t0=$(now)
  "$qvm" exec gold -- true >/dev/null
  add exec $(($(now) - t0))
  t0=$(now)
  "$qvm" exec gold --checkpoint -- true >/dev/null 2>&1
  add checkpoint $(($(now) - t0))
  t0=$(now)
  "$qvm" exec sbp -- true >/dev/null
  add sb_exec $(($(now) - t0))
  t0=$(now)
  "$qvm" exec sbe -- true >/dev/null 2>&1
  add sb_each $(($(now) - t0))
done

s=$(median <<<"${times[sandbox]}")
f=$(median <<<"${times[fork]}")
e=$(median <<<"${times[exec]}")
c=$(median <<<"${times[checkpoint]}")
p=$(median <<<"${times[sb_exec]}")
x=$(median <<<"${times[sb_each]}")
echo "mini guest (256M, TCG), median of $runs runs, seconds:"
printf '  %-52s %7s\n' "qvm sandbox create --from gold:s0, to exec-ready" "$s"
printf '  %-52s %7s\n' "qvm fork gold, to exec-ready (no boot)" "$f"
printf '  %-52s %7s\n' "qvm exec -- true" "$e"
printf '  %-52s %7s\n' "qvm exec --checkpoint -- true (a snapshot with RAM)" "$c"
printf '  %-52s %7s\n' "qvm exec -- true, plain sandbox" "$p"
printf '  %-52s %7s\n' "qvm exec -- true, sandbox with --checkpoint-each" "$x"
awk -v c="$c" -v e="$e" -v s="$s" -v f="$f" -v p="$p" -v x="$x" 'BEGIN {
  printf "  --checkpoint costs %.3f s per command (%.1fx a plain exec)\n", c - e, c / e
  printf "  --checkpoint-each costs %.3f s per command (%.1fx a plain sandbox exec)\n", x - p, x / p
  printf "  fork / sandbox create: %.2fx\n", f / s }'
