#!/usr/bin/env bash
# events.jsonl far past the old 64 MiB scan limit (a long-lived VM's history,
# or a guest's event flood): `qvm ip` still returns this run's lease, the one
# the guest itself reports, and the shim rotates the oversized file away.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
make_netns
qvm create le --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0' \
  --memory 256M --net bridge >/dev/null || fail "create"
dir=$QVM_STATE_DIR/vms/le
qvm start le >/dev/null 2>&1 || fail "start"
first=$(qvm ip le --wait 120) || fail "no first lease"
qvm stop le --timeout 20 >/dev/null || fail "stop"

# 65 MiB of history after that lease, ending with an old lease for an
# address the guest never had.
python3 - "$dir/events.jsonl" <<'PY' || fail "cannot grow events.jsonl"
import json, sys
line = json.dumps({"event": "RTC_CHANGE", "data": {"offset": 1}, "time": "2026-01-01T00:00:00Z"},
                  separators=(",", ":")) + "\n"
with open(sys.argv[1], "a") as f:
    block = line * (1 << 14)
    for _ in range(65 * (1 << 20) // len(block) + 1):
        f.write(block)
    f.write(json.dumps({"event": "DHCP_LEASE", "ip": "10.77.0.250", "source": "qvm-dhcp",
                        "at_us": 1}, separators=(",", ":")) + "\n")
PY
(($(stat -c %s "$dir/events.jsonl") > 64 << 20)) || fail "events.jsonl is not past 64 MiB"

qvm start le >/dev/null 2>&1 || fail "second start"
set +e
ip=$(qvm ip le --wait 90 2>"$tmp/ip.err")
rc=$?
set -e
expect_eq "$rc" 0 "qvm ip after a long events.jsonl ($(cat "$tmp/ip.err"))"
guest=
for _ in $(seq 600); do
  guest=$(sed -n 's/.*qvm-mini: dhcp ip=\([0-9.]*\).*/\1/p' "$dir/serial.log" | tail -n 1)
  [[ -n $guest ]] && break
  sleep 0.1
done
expect_eq "$ip" "$guest" "qvm ip is the lease the guest took in this run"
expect_eq "$ip" "$first" "the lease db kept the address"
expect_eq "$(qvm ip le)" "$ip" "qvm ip without --wait"
# The oversized history went to events.jsonl.1 when the shim started.
(($(stat -c %s "$dir/events.jsonl") < 4 << 20)) || fail "events.jsonl was not rotated"
[[ -f $dir/events.jsonl.1 ]] || fail "no events.jsonl.1"
grep -q '"event":"DHCP_LEASE"' "$dir/events.jsonl" || fail "no DHCP_LEASE event in this run's log"
[[ $(stat -c %a "$dir/lease.json") == 600 ]] || fail "lease.json is not 0600"
log "PASS"
