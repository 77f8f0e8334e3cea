#!/usr/bin/env bash
# End to end (issue 7, test 5): a VM with no network device, and a guest whose
# DHCP client never runs, fail up naming the lease phase, within the timeout,
# with serial output.
. "$(dirname "$0")/lib.sh"

image=$(cloud_image)
set +e
out=$(qvm up e2e-nonet --image "$image" --disk 3G --net none --timeout 300 2>&1)
rc=$?
set -e
log "$out"
[[ $rc -ne 0 ]] || fail "up without a network device succeeded"
expect_match "$out" "phase 'lease'" "no network: the lease phase is named"
expect_match "$out" "last serial output" "no network: serial output is shown"
# A failed up leaves no QEMU burning CPU (issue 19): it stopped the vm, and said so.
expect_match "$out" "qvm stopped vm 'e2e-nonet'" "no network: the failed up stopped the vm"
expect_eq "$(qvm info e2e-nonet --json | python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["state"], o["pid"])')" \
  "stopped None" "no network: no qemu left running"
qvm down e2e-nonet --rm --timeout 5 >/dev/null || fail "down --rm"

# The mini guest with its DHCP client switched off (qvm.dhcp=0), on a bridge.
mini=$(mini_guest)
make_netns
start=$SECONDS
set +e
out=$(qvm up e2e-nodhcp --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" \
  --append 'console=ttyS0 qvm.dhcp=0' --memory 256M --net bridge --user root \
  --no-wait-cloud-init --timeout 45 2>&1)
rc=$?
set -e
took=$((SECONDS - start))
log "$out"
expect_eq "$rc" 5 "no DHCP client: exit code (timeout)"
expect_match "$out" "phase 'lease'" "no DHCP client: the lease phase is named"
expect_match "$out" "qvm-mini: dhcp disabled" "no DHCP client: serial output is shown"
[[ $took -lt 120 ]] || fail "up took ${took}s with --timeout 45"
pids=$(recorded_pids)
qvm down e2e-nodhcp --rm >/dev/null || fail "down --rm"
assert_gone e2e-nodhcp "$pids"
log "PASS"
