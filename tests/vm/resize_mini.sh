#!/usr/bin/env bash
# qvm resize with the mini guest: a stopped vm's disk (qemu-img), a running
# one's (QMP block_resize on the "disk" node; the guest sees it), shrinking
# and bad sizes refused, a vm that does not exist.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0'
  --memory 256M --user root --no-wait-cloud-init --timeout 180)
disk=$QVM_STATE_DIR/vms/r1/disk.qcow2

# rc of a command that should fail, its output in $out
run_rc() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}
virtual_size() { qemu-img info --output=json -U "$disk" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'; }
recorded() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spec"].get("disk_bytes"))' "$QVM_STATE_DIR/vms/r1/vm.json"; }

boot+=(--image "$tmp/base.qcow2" --disk 32M)
out=$(qvm up r1 "${boot[@]}" 2>&1) || fail "up: $out"
qvm stop r1 --timeout 30 >/dev/null || fail "stop"
expect_eq "$(recorded)" 33554432 "disk_bytes recorded at create"

run_rc qvm resize nope 1G
expect_eq "$rc" 3 "resize of a vm that does not exist"
expect_match "$out" "not found" "no such vm"
run_rc qvm resize r1 12X
expect_eq "$rc" 2 "bad size"
expect_match "$out" "disk size '12X' is invalid" "bad size message"
run_rc qvm resize r1 1000
expect_eq "$rc" 1 "size that is not whole sectors"
expect_match "$out" "512-byte sectors" "sector message"
run_rc qvm resize r1
expect_eq "$rc" 2 "missing size"
# A vm that boots a kernel only has no disk of its own.
qvm create k1 "${boot[@]:0:8}" --no-cloud-init >/dev/null || fail "create k1"
run_rc qvm resize k1 1G
expect_eq "$rc" 1 "resize of a vm without disk.qcow2"
expect_match "$out" "has no disk of its own" "no disk message"

# Stopped: qemu-img resize, recorded.
json=$(qvm resize r1 48M --json) || fail "offline resize: $json"
expect_eq "$json" '{"name": "r1", "disk_bytes": 50331648, "online": false}' "offline --json"
expect_eq "$(virtual_size)" 50331648 "qemu-img info after the offline resize"
expect_eq "$(recorded)" 50331648 "disk_bytes after the offline resize"
run_rc qvm resize r1 40M
expect_eq "$rc" 1 "offline shrink"
expect_match "$out" "50331648 bytes and 41943040 is smaller" "shrink names both sizes"
expect_eq "$(virtual_size)" 50331648 "shrink left the disk alone"
out=$(qvm resize r1 48M) || fail "same size: $out"

# Running: block_resize through the shim; the guest's vda grows.
out=$(qvm up r1 "${boot[@]}" 2>&1) || fail "second up: $out"
expect_eq "$(qvm exec r1 -- cat /sys/block/vda/size)" 98304 "the guest's disk before"
json=$(qvm resize r1 64M --json) || fail "online resize: $json"
expect_eq "$json" '{"name": "r1", "disk_bytes": 67108864, "online": true}' "online --json"
sectors=
for _ in $(seq 1 20); do
  sectors=$(qvm exec r1 -- cat /sys/block/vda/size)
  [[ $sectors == 131072 ]] && break
  sleep 0.5
done
expect_eq "$sectors" 131072 "the guest's disk after the online resize"
expect_eq "$(recorded)" 67108864 "disk_bytes after the online resize"
run_rc qvm resize r1 63M
expect_eq "$rc" 1 "online shrink"
expect_match "$out" "67108864 bytes and 66060288 is smaller" "online shrink names both sizes"
qvm stop r1 --timeout 30 >/dev/null || fail "stop"
expect_eq "$(virtual_size)" 67108864 "qemu-img info after the online resize"

# qvm set (issue 19): cpus and memory for the next start; the guest sees them.
run_rc qvm set r1
expect_eq "$rc" 2 "set with nothing to change"
run_rc qvm set r1 --cpus 0
expect_eq "$rc" 2 "set --cpus 0"
run_rc qvm set r1 --memory 1K
expect_eq "$rc" 2 "set --memory 1K"
run_rc qvm set nope --cpus 2
expect_eq "$rc" 3 "set on a vm that does not exist"
qvm start r1 >/dev/null || fail "start r1 again"
# The CPU model (issue 20): qemu64 under TCG by default, shown by info with why.
cpu_of() { tr '\0' '\n' <"/proc/$(qvm info r1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')/cmdline" | grep -A1 -x -- -cpu | tail -n 1; }
expect_eq "$(cpu_of)" qemu64 "QEMU's -cpu under TCG by default"
expect_eq "$(qvm info r1 --json | python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["cpu_requested"], o["cpu"])')" \
  "auto qemu64" "info: the cpu model"
expect_match "$(qvm info r1)" "cpu model: +qemu64 \(TCG default" "info says why"
run_rc qvm set r1 --cpu 'qemu64 -hda /etc/shadow'
expect_eq "$rc" 1 "set --cpu with a space"
expect_match "$out" "cpu model 'qemu64 -hda /etc/shadow' is invalid" "the bad model is named"
run_rc qvm set r1 --cpu 'auto,+sse4.2'
expect_eq "$rc" 1 "set --cpu auto with features"
out=$(qvm set r1 --cpus 2 --memory 384M --cpu Nehalem) || fail "set: $out"
expect_match "$out" "cpu: auto -> Nehalem" "set prints the cpu change"
expect_match "$(qvm info r1)" "cpu model: +qemu64 \(as started; the next start uses Nehalem\)" \
  "info: the running model and the next"
expect_match "$out" "cpus: 1 -> 2" "set prints the cpus change"
expect_match "$out" "memory: 256M -> 384M" "set prints the memory change"
expect_match "$out" "qvm restart r1" "a running vm keeps its values until a restart"
for _ in $(seq 1 120); do
  qvm exec r1 -- true >/dev/null 2>&1 && break
  sleep 1
done
expect_eq "$(qvm exec r1 -- grep -c ^processor /proc/cpuinfo)" 1 "cpus before the restart"
qvm exec r1 -- grep -qw sse4_2 /proc/cpuinfo && fail "qemu64 shows sse4_2 to the guest"
qvm restart r1 >/dev/null || fail "restart r1"
for _ in $(seq 1 120); do
  qvm exec r1 -- true >/dev/null 2>&1 && break
  sleep 1
done
expect_eq "$(qvm exec r1 -- grep -c ^processor /proc/cpuinfo)" 2 "cpus after the restart"
expect_eq "$(cpu_of)" Nehalem "QEMU's -cpu after set --cpu and a restart"
qvm exec r1 -- grep -qw sse4_2 /proc/cpuinfo || fail "the guest does not see Nehalem's sse4_2"
expect_match "$(qvm info r1)" "cpu model: +Nehalem \(chosen with --cpu\)" "info after the restart"
mem_kib=$(qvm exec r1 -- awk '/^MemTotal/ {print $2}' /proc/meminfo)
((mem_kib > 300 * 1024 && mem_kib <= 384 * 1024)) || fail "MemTotal after set --memory 384M: ${mem_kib} KiB"
expect_eq "$(qvm info r1 --json | python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["cpus"], o["memory_mib"])')" \
  "2 384" "info after set"

# qvm shell with no name: the only running vm (issue 19, item 6).
run_rc sh -c "echo 'echo via-shell; exit 7' | '$qvm_bin' shell"
expect_eq "$rc" 7 "qvm shell's exit status is the session's"
expect_match "$out" "via-shell" "qvm shell reached the only running vm"
qvm stop r1 --timeout 30 >/dev/null || fail "stop"
run_rc qvm shell
expect_eq "$rc" 3 "qvm shell with no vm running and none named default"
expect_match "$out" "qvm up default" "the hint says how to make one"
log "ok"
