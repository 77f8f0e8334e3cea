#!/usr/bin/env bash
# Events flood: with dhcp=external the shim's watcher records every DHCPACK
# seen for the VM's MAC that changes its address, and whoever is on the
# bridge (a hostile DHCP server, the guest's accomplice) can send thousands.
# events.jsonl and its one rotated generation stay bounded, and `qvm ip`
# still returns the newest address (from lease.json: its event line was
# rotated away long ago). The cap is lowered (QVM_EVENTS_LOG_MAX) so that the
# flood is small.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
make_netns
cap=4096
limit=$((4 * cap)) # the shim looks after each batch of (at most 64) frames
export QVM_EVENTS_LOG_MAX=$cap
qvm create ev --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" \
  --append 'console=ttyS0 qvm.dhcp=0' --memory 256M --net bridge=qvmext,dhcp=external \
  >/dev/null || fail "create"
qvm start ev >/dev/null 2>&1 || fail "start"
dir=$QVM_STATE_DIR/vms/ev
mac=$(sed -n 's/.*"mac": *"\([0-9a-f:]*\)".*/\1/p' "$dir/vm.json" | head -n 1)

# Up to 2,000 leases of about 160 bytes each: many times the cap.
in_ns python3 "$src/tests/hostile/logs_acks.py" qvmext "$mac" 2000 >/dev/null || fail "flood"
# Then one more, until the shim has caught up with the flood (frames the
# socket could not hold are dropped): it must be what qvm ip says.
ip=
for _ in $(seq 100); do
  last=$(in_ns python3 "$src/tests/hostile/logs_acks.py" qvmext "$mac" 1 10.98) || fail "ack"
  ip=$(qvm ip ev --wait 1 2>/dev/null) || true
  [[ $ip == "$last" ]] && break
  sleep 0.2
done
expect_eq "$ip" "$last" "qvm ip is the newest lease"

s0=$(stat -c %s "$dir/events.jsonl")
s1=$(stat -c %s "$dir/events.jsonl.1" 2>/dev/null || echo 0)
n=$(cat "$dir/events.jsonl" "$dir/events.jsonl.1" 2>/dev/null | grep -c '"DHCP_LEASE"' || true)
log "events.jsonl $s0 bytes, events.jsonl.1 $s1 bytes, $n lease lines kept (cap $cap)"
((s0 <= limit)) || fail "events.jsonl grew to $s0 bytes (cap $cap)"
[[ -f $dir/events.jsonl.1 ]] || fail "events.jsonl was never rotated: no flood reached it"
((s1 <= limit)) || fail "events.jsonl.1 grew to $s1 bytes (cap $cap)"
[[ ! -e $dir/events.jsonl.2 ]] || fail "more than one rotated generation"
log "PASS"
