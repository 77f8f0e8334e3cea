#!/usr/bin/env bash
# qvm up with the mini guest (integration tier, seconds instead of the cloud
# guest's minute): phases and their events, --json, provisioning once,
# idempotent up, a changed spec, qvm.yaml with -f, and down -f --rm.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0'
  --memory 256M --user root --no-wait-cloud-init --timeout 180)

json=$(qvm up m1 "${boot[@]}" --provision 'shell:echo provisioned >> /root/count' --json) ||
  fail "up --json failed: $json"
log "$json"
python3 - "$json" <<'PY' || fail "up --json summary"
import json, sys
j = json.loads(sys.argv[1])
assert j["ok"] is True and j["outcome"] == "created", j
p = j["phases_ms"]
for k in ("started", "serial", "tcp", "ssh", "provision"):
    assert isinstance(p[k], int) and p[k] >= 0, (k, p)
assert p["lease"] is None and p["cloud-init"] is None, p
assert p["started"] <= p["serial"] and p["tcp"] <= p["ssh"] <= p["provision"], p
assert j["ssh"]["host"] == "127.0.0.1" and j["ssh"]["port"] > 0, j
PY
events=$QVM_STATE_DIR/vms/m1/events.jsonl
for phase in started serial tcp ssh provision; do
  grep -q "\"phase\":\"$phase\",\"status\":\"done\"" "$events" || fail "no UP_PHASE $phase event"
done
grep -q '"phase":"lease","status":"skipped"' "$events" || fail "no skipped lease event"
# The mini guest ignores qvm's seed, so it never opens the readiness port:
# up found its sshd by the banner poll, the fallback.
tcp_detail=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "UP_PHASE" and e.get("phase") == "tcp":
        print(e.get("detail"))
        break' "$events")
expect_eq "$tcp_detail" "banner poll" "tcp phase reached by the banner poll"
! grep -q '"VSERPORT_CHANGE"' "$events" || fail "the mini guest announced: $(grep VSERPORT "$events")"

# Same spec, running: nothing happens (no second provisioning).
out=$(qvm up m1 "${boot[@]}" --provision 'shell:echo provisioned >> /root/count') ||
  fail "second up: $out"
expect_match "$out" "already up" "second up"
expect_eq "$(qvm exec m1 -- cat /root/count)" provisioned "provisioned exactly once"

# A different spec: exit 4, each difference named, nothing changed.
set +e
out=$(qvm up m1 "${boot[@]}" --cpus 2 --provision 'shell:echo other' 2>&1)
rc=$?
set -e
expect_eq "$rc" 4 "changed spec exit code"
expect_match "$out" "cpus: was 1, now 2" "cpus difference"
expect_match "$out" "provision: was" "provision difference"
expect_match "$out" "qvm down m1 --rm" "what to do"

# Stopped, same spec: started again, not provisioned again.
qvm stop m1 --timeout 30 >/dev/null || fail "stop"
out=$(qvm up m1 "${boot[@]}" --provision 'shell:echo provisioned >> /root/count') ||
  fail "up of a stopped vm: $out"
expect_match "$out" "provision +- +already provisioned" "no second provisioning"
# (The mini guest's root is RAM, so the count file went with the reboot:
# provision.log tells how often the steps ran.)
expect_eq "$(grep -c 'provisioning done' "$QVM_STATE_DIR/vms/m1/provision.log")" 1 "provisioned once"

# A failing provision step fails up in the provision phase and names the step.
set +e
out=$(qvm up m2 "${boot[@]}" --provision 'shell:true' --provision 'shell:exit 3' --keep-on-failure 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "up with a failing step succeeded"
expect_match "$out" "phase 'provision'" "failing phase"
expect_match "$out" "step 2" "failing step"
# Under TCG up says so once QEMU runs, and what it means for the wait.
accel=$(qvm info m2 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["accelerator"])')
case $accel in
  tcg) expect_match "$out" "warning: .*TCG.*expect a cloud image to take a minute or more" "tcg warning" ;;
  kvm) ;;
  *) fail "m2 runs with accelerator '$accel'" ;;
esac

expect_eq "$(qvm info m2 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" \
  running "--keep-on-failure keeps the failed vm running"
# Without it, a failed up stops what it started and says so (issue 19).
set +e
out=$(qvm up m3 "${boot[@]}" --provision 'shell:exit 4' 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "up m3 with a failing step succeeded"
expect_match "$out" "qvm stopped vm 'm3'" "the failed up says it stopped the vm"
expect_match "$out" "--keep-on-failure" "and how to keep one running"
expect_eq "$(qvm info m3 --json | python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["state"], o["pid"])')" \
  "stopped None" "no qemu left by a failed up"
qvm rm m3 >/dev/null || fail "rm m3"

# On a terminal, a live line names the phase waited for, the time so far
# and the guest's latest serial line (issue 19); without one, no such line.
command -v script >/dev/null || fail "script (util-linux) is missing"
script -qec "$(printf '%q ' "$bin/qvm" up t1 "${boot[@]}")" "$tmp/up.tty" >/dev/null ||
  fail "up t1 under script: $(cat "$tmp/up.tty")"
grep -aqE $'\r\e\\[K  (serial|tcp|ssh) +[0-9]+\\.[0-9] s  waiting' "$tmp/up.tty" ||
  fail "no live phase line on a terminal: $(cat -v "$tmp/up.tty")"
grep -aqE 'waiting \| .*qvm-mini: ' "$tmp/up.tty" ||
  fail "the live line never showed the guest's serial output: $(cat -v "$tmp/up.tty")"
qvm rm --force t1 >/dev/null || fail "rm t1"
out=$(qvm up t2 "${boot[@]}") || fail "up t2: $out"
[[ $out != *waiting* ]] || fail "a live line without a terminal: $out"
qvm rm --force t2 >/dev/null || fail "rm t2"

# qvm.yaml: a file with two VMs, up -f NAME for one, down -f --rm for all.
cat >"$tmp/qvm.yaml" <<YAML
vms:
  f1:
    kernel: $mini/vmlinuz
    initrd: $mini/initrd.img
    append: console=ttyS0
    memory: 256M
    user: root
    provision:
      - file: payload.txt
        to: /root/payload.txt
  f2:
    kernel: $mini/vmlinuz
    initrd: $mini/initrd.img
    memory: 256M
YAML
echo "from the file" >"$tmp/payload.txt"
out=$(qvm up -f "$tmp/qvm.yaml" f1 --no-wait-cloud-init --timeout 180) || fail "up -f: $out"
expect_eq "$(qvm exec f1 -- cat /root/payload.txt)" "from the file" "file step from qvm.yaml"
[[ ! -e $QVM_STATE_DIR/vms/f2 ]] || fail "up -f f1 also made f2"
set +e
out=$(qvm up -f "$tmp/qvm.yaml" --memory 1G 2>&1)
rc=$?
set -e
expect_eq "$rc" 2 "create flags with -f are a usage error"

pids=$(recorded_pids)
out=$(qvm down -f "$tmp/qvm.yaml" --rm) || fail "down -f: $out"
expect_match "$out" "vm 'f2' does not exist" "missing vm skipped"
qvm down m1 m2 --rm >/dev/null || fail "down m1 m2"
for n in m1 m2 f1; do assert_gone "$n" "$pids"; done
[[ -z $(ls -A "$QVM_STATE_DIR/vms") ]] || fail "vms left: $(ls "$QVM_STATE_DIR/vms")"
log "PASS"
