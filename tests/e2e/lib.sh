# Shared by the end-to-end tests: drives the real `qvm` binary against the
# cloud test guest (tests/guests/cloud). Each test gets its own state and
# runtime dirs, and its cleanup removes every VM, process and file it made,
# pass or fail. Exit 77 = skip, which under CI=true is a failure instead.
set -euo pipefail

e2e_name=$(basename "$0" .sh)
src=${QVM_SOURCE_DIR:?QVM_SOURCE_DIR is not set (run through ctest)}
bin=${QVM_BINARY_DIR:?QVM_BINARY_DIR is not set (run through ctest)}
qvm_bin=$bin/qvm

log() { echo "$e2e_name: $*" >&2; }
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

[[ $(id -u) == 0 ]] || skip "needs root"
command -v qemu-system-x86_64 >/dev/null || skip "needs qemu-system-x86_64 (scripts/deps.sh)"
[[ -x $qvm_bin ]] || fail "no qvm binary at $qvm_bin"

cloud_image() {
  local dir=${QVM_CLOUD_IMAGE_DIR:-}
  [[ -n $dir ]] || dir=$("$src/tests/guests/cloud/build.sh" | tail -n 1) ||
    skip "the cloud guest could not be built (tests/guests/cloud/build.sh)"
  [[ -f $dir/disk.qcow2 ]] || skip "no disk.qcow2 in '$dir'"
  echo "$dir/disk.qcow2"
}

mini_guest() {
  local dir
  dir=$("$src/tests/guests/mini/build.sh" | tail -n 1) || skip "the mini guest could not be built"
  [[ -f $dir/vmlinuz ]] || skip "no vmlinuz in '$dir'"
  echo "$dir"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qvm-e2e-$e2e_name-XXXXXX")
export QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run
netns=
cleanup_hooks=()

in_ns() { if [[ -n $netns ]]; then ip netns exec "$netns" "$@"; else "$@"; fi; }
qvm() { in_ns "$qvm_bin" "$@"; }

# The pids vm.json files record (QEMU and shims), for a cleanup that works
# even when qvm itself is what failed.
recorded_pids() {
  local j
  for j in "$QVM_STATE_DIR"/vms/*/vm.json; do
    [[ -f $j ]] && sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p' "$j"
  done
  return 0
}

e2e_cleanup() {
  local rc=$?
  set +e
  if [[ $rc -ne 0 ]]; then
    local d
    for d in "$QVM_STATE_DIR"/vms/*/; do
      [[ -f $d/serial.log ]] || continue
      log "serial log of $(basename "$d") (last 30 lines):"
      tail -n 30 "$d/serial.log" | sed 's/\r$//' >&2
    done
  fi
  local n
  for n in $(ls "$QVM_STATE_DIR/vms" 2>/dev/null); do qvm rm --force "$n" >/dev/null 2>&1; done
  for n in $(recorded_pids); do kill -9 "$n" 2>/dev/null; done
  for h in "${cleanup_hooks[@]}"; do eval "$h"; done
  [[ -n $netns ]] && ip netns del "$netns" 2>/dev/null
  rm -rf -- "$tmp"
  exit "$rc"
}
trap e2e_cleanup EXIT
trap 'exit 130' INT TERM

# A private network namespace with only loopback up; qvm makes its bridge
# inside it.
make_netns() {
  netns=qvm-e2e-$$-$RANDOM
  ip netns add "$netns" || skip "cannot create a network namespace"
  ip -n "$netns" link set lo up
}

# Nothing of the VM is left: no directory, no socket dir, no process. A
# process gets 5 s to finish exiting: in one CI run (ASan build, two
# loaded cores) a process of up_mini's f1 was still running right after
# `qvm down --rm` returned (cause not established; an ASan process's leak
# check at exit is one candidate). One still there after 5 s is left over.
assert_gone() {
  local name=$1 pids=$2 p i
  [[ ! -e $QVM_STATE_DIR/vms/$name ]] || fail "vm dir of '$name' is still there"
  [[ ! -e $QVM_RUNTIME_DIR/$name ]] || fail "runtime dir of '$name' is still there"
  for p in $pids; do
    for i in $(seq 50); do
      kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then
      fail "process $p of '$name' is still running 5 s after: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
    fi
  done
}

expect_eq() { [[ $1 == "$2" ]] || fail "$3: expected '$2', got '$1'"; }
expect_match() { grep -qE -- "$2" <<<"$1" || fail "$3: '$2' not found in: $1"; }

# Serves DIR's files over HTTP on 127.0.0.1 (tests/image/http_server.py),
# stopped by the cleanup; sets http_port. Not in a $(...) subshell: the
# cleanup hook must be registered in this shell.
serve_dir() {
  local dir=$1 portfile=$tmp/http.port.$RANDOM
  python3 "$src/tests/image/http_server.py" "$dir" "$portfile" >/dev/null 2>&1 &
  local pid=$!
  cleanup_hooks+=("kill $pid 2>/dev/null")
  local _
  for _ in $(seq 100); do
    [[ -s $portfile ]] && break
    sleep 0.1
  done
  [[ -s $portfile ]] || fail "the test HTTP server did not start"
  http_port=$(cat "$portfile")
}
