#!/usr/bin/env bash
# Two sandboxes on one bridge with `--net isolated-bridge` (issue 14), the
# mini guest, the real qvm binary, in network namespaces of the test's own:
# the host reaches both (qvm exec over SSH, a TCP listener in the guest);
# they reach neither each other (ICMP, TCP, UDP) nor a service on the
# host's bridge address; an allow-listed destination on the uplink (another
# netns) is reachable and another port or address is not; a guest that
# changes its address to the other sandbox's, or its MAC, gains nothing;
# bad --allow-egress entries and a corrupt vm.json give clear errors; after
# destroy, no rule, tap or process is left.
# QVM_TEST_ISOLATE_OFF=1 is not read by qvm: to see this test fail without
# the enforcement, build qvm with qvm_net_isolate_apply returning 0 early.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v busybox >/dev/null || skip "needs busybox (busybox-static)"
command -v ss >/dev/null || skip "needs ss (iproute2)"
nft_list=${QVM_TEST_NFT:?QVM_TEST_NFT is not set (run through ctest)}

make_netns
outside=qvm-e2e-out-$$-$RANDOM
ip netns add "$outside" || skip "cannot create a network namespace"
cleanup_hooks+=("ip netns pids $outside | xargs -r kill -9; ip netns del $outside")
ip -n "$outside" link set lo up
ip -n "$netns" link add up0 type veth peer name eth0 netns "$outside"
ip -n "$netns" addr add 10.98.0.1/24 dev up0
ip -n "$netns" link set up0 up
ip -n "$outside" addr add 10.98.0.2/24 dev eth0
ip -n "$outside" addr add 10.98.0.3/24 dev eth0
ip -n "$outside" link set eth0 up

# TCP servers answering "reached-<where>-<port>": the outside on 7000 and
# 7002, the host (its 0.0.0.0, so the bridge's address too) on 7000.
serve() {
  local ns=$1 where=$2 port=$3
  printf '#!/bin/sh\necho reached-%s-%s\n' "$where" "$port" >"$tmp/srv-$where-$port.sh"
  chmod 755 "$tmp/srv-$where-$port.sh"
  ip netns exec "$ns" busybox nc -ll -p "$port" -e "$tmp/srv-$where-$port.sh" &
  cleanup_hooks+=("kill $! 2>/dev/null")
  for _ in $(seq 100); do
    ip netns exec "$ns" ss -ltn | grep -q ":$port " && return 0
    sleep 0.1
  done
  fail "server $where:$port did not start"
}
serve "$outside" outside 7000
serve "$outside" outside 7002
serve "$netns" host 7000
# UDP 7001: one line per datagram into a file (busybox has no UDP server).
serve_udp() {
  local ns=$1 log=$2
  : >"$log"
  ip netns exec "$ns" python3 -c 'import socket,sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7001))
while True:
    d, a = s.recvfrom(600)
    open(sys.argv[1], "a").write(a[0] + "\n")' "$log" &
  cleanup_hooks+=("kill $! 2>/dev/null")
  for _ in $(seq 100); do
    ip netns exec "$ns" ss -lun | grep -q ":7001 " && return 0
    sleep 0.1
  done
  fail "udp server in $ns did not start"
}
serve_udp "$outside" "$tmp/udp-outside"
serve_udp "$netns" "$tmp/udp-host"

rules_before=$(in_ns "$nft_list") || fail "cannot list the ruleset"

mini=$(mini_guest)
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0'
  --memory 256M --user root --no-wait-cloud-init --timeout 180)
out=$(qvm create gold "${boot[@]:0:8}" --user root --image "$tmp/base.qcow2" --disk 32M 2>&1) ||
  fail "create gold: $out"

run_rc() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}

# Bad input: the entry is named, nothing is made.
run_rc qvm sandbox create bad --from gold --net isolated-bridge --allow-egress example.com:80
expect_eq "$rc" 1 "--allow-egress example.com:80 (exit code)"
expect_match "$out" "'example.com:80'.*no DNS names" "a DNS name is refused, by name"
run_rc qvm sandbox create bad --from gold --net isolated-bridge --allow-egress 10.0.0.1:80 \
  --allow-egress 10.0.0.1:99999/tcp
expect_match "$out" "'10.0.0.1:99999/tcp'.*port" "a bad port is named"
run_rc qvm sandbox create bad --from gold --net isolated-bridge --allow-egress 10.0.0.1:80/icmp
expect_match "$out" "'10.0.0.1:80/icmp'.*tcp or udp" "a bad protocol is named"
run_rc qvm sandbox create bad --from gold --allow-egress 10.0.0.1:80
expect_eq "$rc" 2 "--allow-egress without isolated-bridge (exit code)"
many=()
for i in $(seq 33); do many+=(--allow-egress "10.0.0.$i:80"); done
run_rc qvm sandbox create bad --from gold --net isolated-bridge "${many[@]}"
expect_eq "$rc" 2 "33 --allow-egress entries (exit code)"
expect_match "$out" "at most 32" "the limit is named"
# Without CAP_NET_ADMIN: QVM_EUNAVAIL naming the cause and the alternative.
if command -v setpriv >/dev/null; then
  mkdir -m 0777 "$tmp/nobody"
  set +e
  out=$(QVM_STATE_DIR=$tmp/nobody/state QVM_RUNTIME_DIR=$tmp/nobody/run \
    setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all \
    "$qvm_bin" sandbox create bad --from "$tmp/base.qcow2" --net isolated-bridge 2>&1)
  set -e
  expect_match "$out" "CAP_NET_ADMIN" "without CAP_NET_ADMIN: the cause"
  expect_match "$out" "--net isolated" "without CAP_NET_ADMIN: the alternative"
fi
[[ ! -e $QVM_STATE_DIR/vms/bad ]] || fail "a refused sandbox was made"

# A may reach 10.98.0.2:7000/tcp and B 10.98.0.2:7002.
out=$(qvm sandbox create sa --from gold --net isolated-bridge=qvmsb \
  --allow-egress 10.98.0.2:7000 --allow-egress 10.98.0.2:7001/udp --no-wait-cloud-init --timeout 180 2>&1) || fail "create sa: $out"
out=$(qvm sandbox create sb --from gold --net isolated-bridge=qvmsb \
  --allow-egress 10.98.0.2/32:7002/tcp --no-wait-cloud-init --timeout 180 2>&1) ||
  fail "create sb: $out"
ipa=$(qvm ip sa) && ipb=$(qvm ip sb) || fail "no address"
log "sa $ipa, sb $ipb"
host_ip=10.77.0.1
egress=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spec"]["network"]["isolated"]["allow_egress"])' \
  "$QVM_STATE_DIR/vms/sa/vm.json")
expect_eq "$egress" "['10.98.0.2/32:7000/tcp', '10.98.0.2/32:7001/udp']" "sa's allow-list in vm.json"
rules=$(in_ns "$nft_list")
expect_match "$rules" "table bridge qvm_iso_qvm_" "bridge tables while the sandboxes run"

# Guest services: TCP 7000 answers the hostname. For UDP the guest has no
# server (busybox): a datagram to its closed port 7001 counts in its
# /proc/net/snmp "Udp: NoPorts".
for g in sa sb; do
  qvm exec "$g" -- sh -c 'busybox nc -ll -p 7000 -e /bin/hostname </dev/null >/dev/null 2>&1 &
    echo started' >/dev/null || fail "cannot start $g's services"
done
sleep 1
noports() {
  qvm exec "$1" -- cat /proc/net/snmp | awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ { print $3 }'
}
# UDP from a guest: busybox tftp sends one read request to HOST:PORT.
udp_send() { qvm exec "$1" -- busybox tftp -g -r x -l /dev/null "$2" 7001 >/dev/null 2>&1 || true; }

# The host reaches both: SSH (qvm exec) and TCP to the guest's listener.
expect_eq "$(qvm exec sa -- echo ssh-ok)" ssh-ok "host to sa over SSH"
expect_eq "$(qvm exec sb -- echo ssh-ok)" ssh-ok "host to sb over SSH"
expect_match "$(in_ns busybox nc -w 5 "$ipa" 7000 </dev/null 2>/dev/null || true)" "sa" \
  "host to sa's TCP listener"

tcp() { qvm exec "$1" -- busybox nc -w 3 "$2" "$3" </dev/null 2>/dev/null || true; }
# The sandboxes do not reach each other: TCP, UDP, ICMP.
[[ -z $(tcp sa "$ipb" 7000) ]] || fail "sa reached sb over TCP"
[[ -z $(tcp sb "$ipa" 7000) ]] || fail "sb reached sa over TCP"
nb=$(noports sb) na=$(noports sa)
udp_send sa "$ipb"
udp_send sb "$ipa"
expect_eq "$(noports sb)" "$nb" "sa's UDP to sb (sb's Udp NoPorts)"
expect_eq "$(noports sa)" "$na" "sb's UDP to sa (sa's Udp NoPorts)"
# The counter does count: the host's datagram to sb arrives.
in_ns python3 -c 'import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", (sys.argv[1], 7001))' "$ipb"
sleep 0.5
(($(noports sb) > nb)) || fail "the host's UDP datagram did not reach sb: the UDP probe proves nothing"
if qvm exec sa -- busybox ping -c 1 -W 2 "$ipb" >/dev/null 2>&1; then fail "sa pinged sb"; fi
if qvm exec sb -- busybox ping -c 1 -W 2 "$ipa" >/dev/null 2>&1; then fail "sb pinged sa"; fi
# Nor the host's service on the bridge's address, nor the host's ping.
[[ -z $(tcp sa "$host_ip" 7000) ]] || fail "sa reached the host's service"
[[ -z $(tcp sb 10.98.0.1 7000) ]] || fail "sb reached the host's service on the uplink address"
if qvm exec sa -- busybox ping -c 1 -W 2 "$host_ip" >/dev/null 2>&1; then fail "sa pinged the host"; fi
udp_send sa "$host_ip"
[[ ! -s $tmp/udp-host ]] || fail "sa reached the host's UDP service"
# The allow-list: the entry, not another port, address or sandbox's entry.
expect_eq "$(tcp sa 10.98.0.2 7000)" reached-outside-7000 "sa to its allowed destination"
expect_eq "$(tcp sb 10.98.0.2 7002)" reached-outside-7002 "sb to its allowed destination"
[[ -z $(tcp sa 10.98.0.2 7002) ]] || fail "sa reached another port"
[[ -z $(tcp sa 10.98.0.3 7000) ]] || fail "sa reached another address"
[[ -z $(tcp sb 10.98.0.2 7000) ]] || fail "sb reached sa's destination"
udp_send sb 10.98.0.2
[[ ! -s $tmp/udp-outside ]] || fail "sb reached sa's UDP destination"
udp_send sa 10.98.0.2
[[ -s $tmp/udp-outside ]] || fail "sa did not reach its UDP destination"

# Hostile: sa takes sb's address (its SSH cannot follow), then a new MAC,
# probing each time, then puts both back and probes what it may reach.
mac=$(qvm exec sa -- cat /sys/class/net/eth0/address)
qvm exec sa -- sh -c "(
  probe() { echo \"\$1 [\$(busybox nc -w 3 \$2 \$3 </dev/null 2>/dev/null)]\" >>/tmp/spoof; }
  ip addr flush dev eth0; ip addr add $ipb/24 dev eth0; ip route add default via $host_ip
  probe ip-sb-out-7002 10.98.0.2 7002; probe ip-sb-out-7000 10.98.0.2 7000
  probe ip-sb-host $host_ip 7000
  ip addr flush dev eth0; ip link set eth0 down; ip link set eth0 address 0a:66:66:66:66:66
  ip link set eth0 up; ip addr add $ipa/24 dev eth0; ip route add default via $host_ip
  probe mac-out-7000 10.98.0.2 7000; probe mac-host $host_ip 7000
  ip link set eth0 down; ip link set eth0 address $mac; ip link set eth0 up
  ip route add default via $host_ip
  probe back-out-7000 10.98.0.2 7000
  echo done >>/tmp/spoof
) </dev/null >/dev/null 2>&1 & echo started" >/dev/null || fail "cannot start the spoofing script"
spoof=
for _ in $(seq 120); do
  spoof=$(qvm exec sa -- cat /tmp/spoof 2>/dev/null || true)
  [[ $spoof == *done* ]] && break
  sleep 1
done
log "spoofing: $(tr '\n' ' ' <<<"$spoof")"
[[ $spoof == *done* ]] || fail "the spoofing script did not finish (or sa is unreachable after it)"
for probe in ip-sb-out-7002 ip-sb-out-7000 ip-sb-host mac-out-7000 mac-host; do
  grep -qx "$probe \[\]" <<<"$spoof" || fail "spoofing sa reached something: $(grep "^$probe" <<<"$spoof")"
done
grep -qx "back-out-7000 \[reached-outside-7000\]" <<<"$spoof" ||
  fail "sa, itself again, does not reach its destination: the probes prove nothing"
[[ -z $(tcp sb "$ipa" 7000) ]] || fail "sb reached sa after the spoofing"

# The shim's way out: stop removes sb's tables (sa's stay), start writes
# them before QEMU runs; a killed shim's successor (adopt) keeps sb cut off.
tables_of() { in_ns "$nft_list" | grep -o "table [a-z]* qvm_iso_qvm_[0-9a-f]*" | sort; }
before_stop=$(tables_of)
expect_eq "$(wc -l <<<"$before_stop")" 4 "two tables per running sandbox"
qvm stop sb --timeout 30 >/dev/null || fail "stop sb"
after_stop=$(tables_of)
expect_eq "$(wc -l <<<"$after_stop")" 2 "sb's tables after its shim exited"
qvm start sb >/dev/null || fail "start sb"
expect_eq "$(tables_of)" "$before_stop" "sb's tables after start"
for _ in $(seq 120); do
  [[ $(qvm exec sb -- echo ok 2>/dev/null) == ok ]] && break
  sleep 1
done
shim=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["runtime"]["shim"]["pid"])' \
  "$QVM_STATE_DIR/vms/sb/vm.json")
kill -9 "$shim"
for _ in $(seq 50); do kill -0 "$shim" 2>/dev/null || break; sleep 0.1; done
qvm info sb >/dev/null || fail "info sb (re-attach)"
grep -q qvm-shim-adopted "$QVM_STATE_DIR/vms/sb/events.jsonl" || fail "sb's new shim did not adopt"
expect_eq "$(tables_of)" "$before_stop" "sb's tables after the adopt"
[[ -z $(tcp sb "$ipa" 7000) ]] || fail "sb reached sa after its restart"
expect_eq "$(tcp sb 10.98.0.2 7002)" reached-outside-7002 "sb to its destination after its restart"

# A corrupt allow-list in vm.json: a clear error naming it.
vmj=$QVM_STATE_DIR/vms/sb/vm.json
cp "$vmj" "$tmp/sb.json"
python3 - "$vmj" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["spec"]["network"]["isolated"]["allow_egress"] = ["10.0.0.1:80", "bogus"]
json.dump(d, open(sys.argv[1], "w"))
PY
run_rc qvm info sb
[[ $rc -ne 0 ]] || fail "qvm info read a corrupt allow-list"
expect_match "$out" "allow_egress' entry 1.*'bogus'" "the corrupt entry is named"
cp "$tmp/sb.json" "$vmj"

# Destroy: no rule, tap or process left. qvm's NAT table for the bridge
# (made by the first sandbox, as for any --nat bridge) stays with the
# bridge; everything else is as before.
pids=$(recorded_pids)
taps=$(in_ns ip -o link show | awk -F': ' '$2 ~ /^qvm-/ { sub(/@.*/, "", $2); print $2 }')
[[ -n $taps ]] || fail "no tap while the sandboxes run"
qvm sandbox destroy sa >/dev/null || fail "destroy sa"
qvm sandbox destroy sb >/dev/null || fail "destroy sb"
assert_gone sa "$pids"
assert_gone sb "$pids"
for t in $taps; do
  if in_ns ip link show "$t" >/dev/null 2>&1; then fail "tap $t is left"; fi
done
rules_after=$(in_ns "$nft_list")
strip_nat() { python3 -c 'import re,sys; print(re.sub(r"(?ms)^table ip qvm \{.*?^\}\n?", "", sys.stdin.read()))'; }
[[ $rules_after != *qvm_iso_* ]] || fail "isolation tables left: $rules_after"
expect_eq "$(strip_nat <<<"$rules_after")" "$(strip_nat <<<"$rules_before")" "the ruleset after destroy"
log "PASS"
