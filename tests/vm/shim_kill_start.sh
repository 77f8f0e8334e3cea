#!/usr/bin/env bash
# SIGKILL of `qvm start` at any point of the start (issue 10): the shim is
# exec'd detached and holds the VM's lock until QEMU's monitor answered, so
# what is left is either a running VM that `qvm stop` stops, or nothing: no
# qvm-shim or QEMU of the VM, no tap, no ctl.sock, and a state of stopped,
# created, or crashed with a reason. A bridged VM, in a network namespace of
# its own, so that a tap left behind would show.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
make_netns
qvm create ks --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" \
  --append 'console=ttyS0 qvm.dhcp=0' --memory 256M --net bridge >/dev/null || fail "create"
jq_info() { qvm info --json ks | python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
uuid=$(jq_info 'j["uuid"]')
tap=qvm-${uuid:0:8}
procs() { pgrep -af "^qvm-shim ks( |$)|guest=ks,|$qvm_bin start ks" || true; }

# Until the start the kill interrupted is over: the shim inherits the VM's
# lock from `qvm start` and holds it until QEMU's monitor answered (or the
# start failed), so an unlocked VM has settled.
settle() {
  flock -w 60 "$QVM_STATE_DIR/vms/ks/lock" true || fail "the vm's lock was held for 60 s"
  jq_info 'j["state"]'
}

# A sleep without a fork (read's timeout on a FIFO nobody writes), so that
# the first kills land early in the start.
mkfifo "$tmp/never"
exec 9<>"$tmp/never"
nap() { [[ $1 == 0 ]] || read -r -t "$1" -u 9 || true; }

running=0 nothing=0
for ms in 0 0 1 1 2 3 4 5 6 8 10 12 15 20 25 30 40 60 80 120 250 500 1000; do
  # nsenter execs qvm itself (ip netns exec would fork it): $! is qvm
  nsenter --net="/run/netns/$netns" "$qvm_bin" start ks >/dev/null 2>&1 &
  pid=$!
  nap "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  state=$(settle)
  if [[ $state == running ]]; then
    running=$((running + 1))
    out=$(qvm stop ks --timeout 0 2>&1) || fail "$ms ms: stop of the VM the start left: $out"
    expect_eq "$(jq_info 'j["state"]')" stopped "$ms ms: state after stop"
  else
    nothing=$((nothing + 1))
    case $state in
      stopped | created) ;;
      crashed) [[ -n $(jq_info 'j["last_exit"]["reason"]') ]] || fail "$ms ms: crashed, no reason" ;;
      *) fail "$ms ms: state '$state' after the kill" ;;
    esac
  fi
  left=$(procs)
  [[ -z $left ]] || fail "$ms ms ($state): processes left: $left"
  in_ns test ! -e "/sys/class/net/$tap" || fail "$ms ms ($state): tap $tap left behind"
  [[ ! -e $QVM_RUNTIME_DIR/ks/ctl.sock ]] || fail "$ms ms ($state): ctl.sock left behind"
  log "$ms ms: $state"
done
log "kills that left a running vm: $running, that left nothing: $nothing"
((running > 0)) || fail "no kill came late enough to leave a running vm"
