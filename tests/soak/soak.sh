#!/usr/bin/env bash
# Soak test (label soak, never in CI; scripts/soak.sh runs it): QVM_SOAK_CYCLES
# (default 200) start/stop cycles of the mini guest with the real qvm binary,
# then nothing may have grown: open fds of this test's process tree and of
# any qvm/QEMU process left, taps and links, qvm/QEMU processes, disk use of
# the state dir beyond the VM's own directory, files in the runtime dir and
# in qvm's TMPDIR, and the VM directory beyond serial.log and events.jsonl
# (whose sizes are reported: serial.log is truncated at each start,
# events.jsonl is append-only).
#
# As root the VM uses --net bridge inside a network namespace this script
# creates and deletes (so the shim's tap, bridge and DHCP paths are
# exercised); otherwise --net user. Each cycle: qvm start, wait for the
# mini guest's "qvm-mini: ready" on serial.log, qvm stop (must end with the
# guest shutting down by itself). The first cycle is a warm-up: figures are
# taken after it and after the last one. Exit 77 = skip.
set -euo pipefail

name=soak
src=${QVM_SOURCE_DIR:?QVM_SOURCE_DIR is not set (run through ctest or scripts/soak.sh)}
bin=${QVM_BINARY_DIR:?QVM_BINARY_DIR is not set (run through ctest or scripts/soak.sh)}
qvm_bin=$bin/qvm
cycles=${QVM_SOAK_CYCLES:-200}
ready_s=${QVM_SOAK_READY_TIMEOUT:-120}

log() { echo "soak: $*" >&2; }
skip() {
  if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
    log "FAIL (a skip is a failure under CI=true): $*"
    exit 1
  fi
  log "SKIP: $*"
  exit 77
}
fail() {
  log "FAIL: $*"
  exit 1
}

[[ $cycles =~ ^[0-9]+$ && $cycles -ge 2 ]] || fail "QVM_SOAK_CYCLES must be a number >= 2"
command -v qemu-system-x86_64 >/dev/null || skip "needs qemu-system-x86_64 (scripts/deps.sh)"
[[ -x $qvm_bin ]] || fail "no qvm binary at $qvm_bin"
mini=$("$src/tests/guests/mini/build.sh" | tail -n 1) || skip "the mini guest could not be built"
[[ -f $mini/vmlinuz && -f $mini/initrd.img ]] || skip "no vmlinuz/initrd.img in '$mini'"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qvm-soak-XXXXXX")
export QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run TMPDIR=$tmp/tmp
mkdir -p "$TMPDIR"
netns=

cleanup() {
  local rc=$?
  set +e
  if [[ $rc -ne 0 && -f $QVM_STATE_DIR/vms/$name/serial.log ]]; then
    log "serial log (last 30 lines):"
    tail -n 30 "$QVM_STATE_DIR/vms/$name/serial.log" | sed 's/\r$//' >&2
  fi
  in_ns "$qvm_bin" rm --force "$name" >/dev/null 2>&1
  [[ -n $netns ]] && ip netns del "$netns" 2>/dev/null
  rm -rf -- "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { if [[ -n $netns ]]; then ip netns exec "$netns" "$@"; else "$@"; fi; }
qvm() { in_ns "$qvm_bin" "$@"; }

net=user
if [[ $(id -u) == 0 ]]; then
  netns=qvm-soak-$$-$RANDOM
  ip netns add "$netns" || skip "cannot create a network namespace"
  ip -n "$netns" link set lo up
  net=bridge
fi

# --- measurements -------------------------------------------------------------------

# This script and every process below it.
tree_pids() {
  ps -e -o pid=,ppid= | awk -v root=$$ '
    { parent[$1] = $2; pids[NR] = $1 }
    END {
      want[root] = 1
      do {
        added = 0
        for (i in pids) { p = pids[i]; if (!(p in want) && (parent[p] in want)) { want[p] = 1; added = 1 } }
      } while (added)
      for (p in want) print p
    }'
}

# qvm and QEMU processes of this test's VM (their environment names our state dir).
vm_pids() {
  local p comm
  for p in /proc/[0-9]*; do
    comm=$(cat "$p/comm" 2>/dev/null) || continue
    [[ $comm == qvm* || $comm == qemu-system* ]] || continue
    { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qxF "QVM_STATE_DIR=$QVM_STATE_DIR" &&
      echo "${p#/proc/}"
  done
  return 0
}

count_fds() {
  local n=0 p
  for p in "$@"; do
    [[ $p == "$BASHPID" ]] && continue
    n=$((n + $(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)))
  done
  echo "$n"
}

count_procs() { # every qemu-system*/qvm* process on the host (for information)
  local n=0 p comm
  for p in /proc/[0-9]*; do
    comm=$(cat "$p/comm" 2>/dev/null) || continue
    [[ $comm == qvm* || $comm == qemu-system* ]] && n=$((n + 1))
  done
  echo "$n"
}

bytes() { if [[ -e $1 ]]; then du -sb "$1" | cut -f1; else echo 0; fi; }
files() { if [[ -e $1 ]]; then find "$1" -mindepth 1 | wc -l; else echo 0; fi; }

declare -A fig
measure() { # $1 = before|after
  local at=$1 vmdir=$QVM_STATE_DIR/vms/$name pids
  # shellcheck disable=SC2207
  pids=($(tree_pids))
  fig[$at.tree_fds]=$(count_fds "${pids[@]}")
  # shellcheck disable=SC2207
  pids=($(vm_pids))
  fig[$at.vm_procs]=${#pids[@]}
  fig[$at.vm_fds]=$(count_fds "${pids[@]}")
  fig[$at.host_procs]=$(count_procs)
  if [[ -n $netns ]]; then
    fig[$at.links]=$(ip -n "$netns" -o link show | wc -l)
    fig[$at.taps]=$(ip -n "$netns" -o link show | grep -c ': qvm-' || true)
    fig[$at.netns_procs]=$(ip netns pids "$netns" | wc -l)
  fi
  fig[$at.state_other]=$(($(bytes "$QVM_STATE_DIR") - $(bytes "$vmdir")))
  fig[$at.state_files]=$(($(files "$QVM_STATE_DIR") - $(files "$vmdir")))
  fig[$at.serial]=$(bytes "$vmdir/serial.log")
  fig[$at.events]=$(bytes "$vmdir/events.jsonl")
  fig[$at.vmdir_other]=$(($(bytes "$vmdir") - ${fig[$at.serial]} - ${fig[$at.events]}))
  fig[$at.vmdir_files]=$(files "$vmdir")
  fig[$at.runtime_files]=$(files "$QVM_RUNTIME_DIR")
  fig[$at.tmp_files]=$(files "$TMPDIR")
}

# --- the cycles ---------------------------------------------------------------------

wait_ready() {
  local serial=$QVM_STATE_DIR/vms/$name/serial.log deadline=$((SECONDS + ready_s))
  until grep -qa 'qvm-mini: ready' "$serial" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "cycle $1: the guest did not print 'qvm-mini: ready' in ${ready_s}s"
    sleep 0.2
  done
}

ungraceful=0
cycle() {
  local out
  out=$(qvm start "$name" --timeout 60 2>&1) || fail "cycle $1: qvm start: $out"
  wait_ready "$1"
  out=$(qvm stop "$name" --timeout 60 2>&1) || fail "cycle $1: qvm stop: $out"
  if ! grep -q 'the guest shut down' <<<"$out"; then
    ungraceful=$((ungraceful + 1))
    log "cycle $1: the stop was not graceful: $out"
  fi
}

out=$(qvm create "$name" --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" \
  --append 'console=ttyS0' --memory 256M --net "$net" 2>&1) || fail "qvm create: $out"
log "$cycles cycles, --net $net${netns:+ in netns $netns}, state in $tmp"

start=$SECONDS
cycle 1
measure before
for ((i = 2; i <= cycles; i++)); do
  cycle "$i"
  ((i % 20 == 0)) && log "cycle $i/$cycles ($((SECONDS - start))s)"
done
measure after
elapsed=$((SECONDS - start))

# --- report -------------------------------------------------------------------------

grown=()
row() { # key, description, checked (1) or for information (0)
  local b=${fig[before.$1]:-} a=${fig[after.$1]:-} verdict=ok
  [[ -n $b ]] || return 0
  if [[ $3 == 1 && $a -gt $b ]]; then
    verdict=GREW
    grown+=("$2")
  elif [[ $3 == 0 ]]; then
    verdict=info
  fi
  printf '| %s | %s | %s | %s |\n' "$2" "$b" "$a" "$verdict"
}
echo
echo "soak: $cycles cycles (--net $net) in ${elapsed}s, $(((elapsed + cycles / 2) / cycles))s a cycle;" \
  "figures after cycle 1 and after cycle $cycles, with the VM stopped"
echo
echo "| figure | after cycle 1 | after cycle $cycles | verdict |"
echo "|---|---|---|---|"
row tree_fds "open fds of the test's process tree" 1
row vm_procs "qvm/QEMU processes of this VM" 1
row vm_fds "open fds of those processes" 1
row host_procs "qvm*/qemu-system* processes on the host (other users too)" 0
row links "links in the netns" 1
row taps "taps (qvm-*) in the netns" 1
row netns_procs "processes in the netns" 1
row state_other "state dir bytes beyond the VM dir" 1
row state_files "state dir files beyond the VM dir" 1
row vmdir_other "VM dir bytes beyond serial.log + events.jsonl" 1
row vmdir_files "VM dir files" 1
row runtime_files "files in the runtime dir" 1
row tmp_files "files in qvm's TMPDIR" 1
row serial "serial.log bytes (truncated at each start)" 0
row events "events.jsonl bytes (append-only)" 0
echo
ev_growth=$(((${fig[after.events]} - ${fig[before.events]}) / (cycles - 1)))
echo "events.jsonl grows by ${ev_growth} bytes a cycle; stops that were not graceful: $ungraceful"

[[ ${#grown[@]} -eq 0 ]] || fail "grew over $cycles cycles: $(printf '%s; ' "${grown[@]}")"
[[ $ungraceful -eq 0 ]] || fail "$ungraceful of $cycles stops did not end with the guest shutting down"
log "PASS"
