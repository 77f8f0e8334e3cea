#!/usr/bin/env bash
# sandbox create --checkpoint-each with the mini guest: the option is in
# vm.json, sandbox ls and info; two execs take two checkpoints,
# each named on stderr and in the exec's audit records; rollback --to the
# second brings back the state between the commands, --to the first the
# state before both; ssh and cp take none; a plain sandbox takes none (its
# exec records say null); a checkpoint that cannot be taken fails the exec
# (exit 255, CheckpointFailed) and the command does not run.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
unset QVM_AGENT

mini=$(mini_guest)
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
vms=$QVM_STATE_DIR/vms

run_rc() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}
jget() { python3 -c 'import json,sys; o=json.loads(sys.argv[1]); print(eval("o"+sys.argv[2]))' "$1" "$2"; }
snaps() { qvm snapshot ls "$1" --json | python3 -c 'import json,sys; print(" ".join(s["name"] for s in json.load(sys.stdin)))'; }
# The "checkpoint" of VM's ACTION records, oldest first ("-" when absent),
# of user commands (own=0) or of qvm's own pushes into the guest (own=1).
exec_ckpts() {
  qvm audit "$1" --json | python3 -c '
import json, sys
own = sys.argv[2] == "1"
print(" ".join(str(r["details"].get("checkpoint", "-")) for r in json.load(sys.stdin)
               if r["action"] == sys.argv[1] and ("qvm-push" in r["details"].get("argv", [])) == own))' "$2" "${3:-0}"
}

# The golden vm is never started: each sandbox is a clone of its disk.
out=$(qvm create gold --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0 \
  --memory 128M --user root --image "$tmp/base.qcow2" 2>&1) || fail "create gold: $out"
run_rc qvm create bad --kernel "$mini/vmlinuz" --checkpoint-each
expect_eq "$rc" 2 "--checkpoint-each is the sandbox's, not create's"

t0=$(date +%s%N)
json=$(qvm sandbox create sbc --from gold --ttl 10m --checkpoint-each --no-wait-cloud-init \
  --timeout 180 --json 2>&1) || fail "sandbox create --checkpoint-each: $json"
log "sandbox create took $((($(date +%s%N) - t0) / 1000000)) ms"
expect_eq "$(jget "$json" '["checkpoint_each"]')" True "create --json"
expect_eq "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spec"]["sandbox"]["checkpoint_each"])' "$vms/sbc/vm.json")" \
  True "vm.json's sandbox.checkpoint_each"
expect_eq "$(jget "$(qvm sandbox ls --json)" '[0]["checkpoint_each"]')" True "sandbox ls --json"
expect_eq "$(jget "$(qvm info sbc --json)" '["checkpoint_each"]')" True "info --json"
expect_match "$(qvm info sbc)" "checkpoints: +one before every command" "info"

# Two commands, two checkpoints, each taken before its command.
out=$(qvm exec sbc -- sh -c 'echo one > /tmp/state' 2>&1) || fail "exec 1: $out"
expect_match "$out" "checkpoint ckpt-1 \(undo with: qvm rollback sbc\)" "exec 1 names its checkpoint"
out=$(qvm exec sbc -- sh -c 'echo two > /tmp/state' 2>&1) || fail "exec 2: $out"
expect_match "$out" "checkpoint ckpt-2 " "exec 2 names its checkpoint"
expect_eq "$(snaps sbc)" "ckpt-1 ckpt-2" "two execs, two checkpoints"
expect_eq "$(exec_ckpts sbc exec-start)" "ckpt-1 ckpt-2" "exec-start records name them"
expect_eq "$(exec_ckpts sbc exec)" "ckpt-1 ckpt-2" "exec records name them"
# qvm's own command in the guest (the host certificate push at create) took none.
expect_match "$(exec_ckpts sbc exec 1)" "^-( -)*$" "qvm's own pushes have no checkpoint"
# ssh and cp are no user commands of exec's kind: no checkpoint.
expect_eq "$(qvm ssh sbc -- cat /tmp/state)" two "ssh reads the state"
out=$(qvm cp sbc:/tmp/state "$tmp/got" 2>&1) || fail "cp: $out"
expect_eq "$(cat "$tmp/got")" two "cp reads the state"
expect_eq "$(snaps sbc)" "ckpt-1 ckpt-2" "ssh and cp took no checkpoint"

# rollback --to 2: the state between the two commands; --to 1: before both.
out=$(qvm rollback sbc --to 2 2>&1) || fail "rollback --to 2: $out"
expect_eq "$(qvm ssh sbc -- cat /tmp/state)" one "after rollback --to 2"
out=$(qvm rollback sbc --to 1 2>&1) || fail "rollback --to 1: $out"
run_rc qvm ssh sbc -- cat /tmp/state
[[ $rc -ne 0 ]] || fail "after rollback --to 1 the file the first command wrote is still there: $out"

# A sandbox made from one that checkpoints before every command does too:
# else an agent would shed the policy by starting a sandbox from its own.
json=$(qvm sandbox create sbi --from sbc --ttl 10m --no-wait-cloud-init --timeout 180 --json 2>&1) ||
  fail "sandbox create sbi --from sbc: $json"
expect_eq "$(jget "$json" '["checkpoint_each"]')" True "a sandbox made from sbc"
qvm sandbox destroy sbi >/dev/null || fail "destroy sbi"

# A plain sandbox takes none.
json=$(qvm sandbox create sbp --from gold --ttl 10m --no-wait-cloud-init --timeout 180 --json 2>&1) ||
  fail "sandbox create sbp: $json"
expect_eq "$(jget "$json" '["checkpoint_each"]')" False "a plain sandbox's create --json"
out=$(qvm exec sbp -- sh -c 'echo plain > /tmp/state' 2>&1) || fail "exec in sbp: $out"
[[ $out != *checkpoint* ]] || fail "exec in a plain sandbox named a checkpoint: $out"
expect_eq "$(snaps sbp)" "" "a plain sandbox's exec took no checkpoint"
expect_eq "$(exec_ckpts sbp exec)" None "its exec record says checkpoint null"

# A checkpoint that cannot be taken (the numbers are used up) fails the
# exec, and the command does not run.
out=$(qvm snapshot create sbc ckpt-999999999 --disk-only 2>&1) || fail "snapshot ckpt-999999999: $out"
run_rc qvm exec sbc -- touch /tmp/ran
expect_eq "$rc" 255 "exec whose checkpoint failed"
expect_match "$out" "the command did not run: no checkpoint before it" "its message"
expect_match "$out" "used up its checkpoint numbers" "the reason"
run_rc qvm ssh sbc -- test -e /tmp/ran
expect_eq "$rc" 1 "the command did not run"
expect_eq "$(qvm audit sbc --json | python3 -c '
import json, sys
r = [r for r in json.load(sys.stdin) if r["action"] in ("exec", "exec-start")][-1]
print(r["action"], r["details"]["error"], r["details"]["checkpoint"], r["details"]["argv"])')" \
  "exec EINVAL None ['touch', '/tmp/ran']" "the refused exec's audit record"
log "ok"
