#!/usr/bin/env bash
# A guest on user-mode networking attacks the host's loopback services
# (slirp maps 10.0.2.2 to the host's 127.0.0.1) and other hosts. With
# `--net user,restrict` neither is reachable, while qvm's SSH forward and
# --publish still reach the guest; without it, both are reachable (the
# default stays open so that guests can install packages).
#
# Everything runs in a network namespace of the test's own: its loopback is
# the "host's loopback", and an address on a veth is "another host".
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v busybox >/dev/null || skip "needs busybox (busybox-static)"
command -v ss >/dev/null || skip "needs ss (iproute2)"

make_netns
ip -n "$netns" link add d0 type veth peer name d1
ip -n "$netns" link set d1 up
ip -n "$netns" addr add 192.0.2.1/24 dev d0
ip -n "$netns" link set d0 up

# A service only the host should reach: busybox nc cannot bind an address,
# but in this namespace its 0.0.0.0 is loopback plus 192.0.2.1.
printf '#!/bin/sh\necho host-secret\n' >"$tmp/secret.sh"
chmod 755 "$tmp/secret.sh"
ip netns exec "$netns" busybox nc -ll -p 7777 -e "$tmp/secret.sh" &
server=$!
cleanup_hooks+=("kill $server 2>/dev/null")
for _ in $(seq 100); do
  ip netns exec "$netns" ss -ltn | grep -q ':7777 ' && break
  sleep 0.1
done

mini=$(mini_guest)
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0'
  --memory 256M --user root --no-wait-cloud-init --timeout 180)

# What the guest gets from the host's service at addr (empty: nothing).
probe() { qvm exec "$1" -- busybox nc -w 5 "$2" 7777 </dev/null 2>/dev/null || true; }

# An unknown user-net option is refused, and nothing is created.
set +e
out=$(qvm create bad --kernel "$mini/vmlinuz" --net user,restrickt 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "--net user,restrickt was accepted"
expect_match "$out" "restrickt" "the bad option is named"
[[ ! -e $QVM_STATE_DIR/vms/bad ]] || fail "a vm was created with a bad option"

# Restricted: the guest reaches neither, SSH (qvm exec) and --publish work.
out=$(qvm up closed "${boot[@]}" --net user,restrict --publish 127.0.0.1:18080:8000 2>&1) ||
  fail "up with --net user,restrict: $out"
restrict=$(qvm info --json closed |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["network"].get("restrict"))')
expect_eq "$restrict" True "restrict stored in the spec"
expect_match "$(qvm info closed)" "^network: +user,restrict, ssh on 127.0.0.1:" "qvm info shows restrict"
grep -q 'restrict=on' "/proc/$(qvm info --json closed |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')/cmdline" ||
  fail "qemu runs without restrict=on"
got=$(probe closed 10.0.2.2)
[[ $got != *host-secret* ]] || fail "restricted guest reached the host's loopback service"
got=$(probe closed 192.0.2.1)
[[ $got != *host-secret* ]] || fail "restricted guest reached another host"
expect_eq "$(qvm exec closed -- echo ssh-ok)" ssh-ok "ssh through the forward with restrict"
qvm exec closed -- sh -c \
  'busybox nc -ll -p 8000 -e /bin/hostname </dev/null >/dev/null 2>&1 & echo started' >/dev/null ||
  fail "cannot start a guest service"
published=
for _ in $(seq 50); do
  published=$(ip netns exec "$netns" busybox nc -w 5 127.0.0.1 18080 </dev/null 2>/dev/null || true)
  [[ -n $published ]] && break
  sleep 0.2
done
expect_eq "$published" closed "--publish with restrict reaches the guest's service"

# Unrestricted (the default): the same guest can reach both, which is what
# restrict is for.
out=$(qvm up open "${boot[@]}" 2>&1) || fail "up with the default user net: $out"
expect_match "$(probe open 10.0.2.2)" host-secret "default user net reaches the host's loopback"
expect_match "$(probe open 192.0.2.1)" host-secret "default user net reaches another address"

qvm down closed open --rm >/dev/null || fail "down"
log "PASS"
