#!/usr/bin/env bash
# Labels, agent ids and sandboxes with the mini guest: labels/agent round
# trip and the ls filters; bad input (exit 2 or 1, nothing made); a
# sandbox's shim removes it at its deadline (no process, no vm dir, no
# runtime dir within 5 s), also after the shim was SIGKILLed and a new one
# adopted QEMU, and after extend (there past the old deadline, gone after
# the new one); a deadline that passed while the vm was stopped is enforced
# by the next qvm command; destroy only takes sandboxes.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0'
  --memory 256M --user root --no-wait-cloud-init --timeout 180)
vms=$QVM_STATE_DIR/vms
# Test-only: sandboxes may live 1 s (the minimum is 10 s otherwise).
export QVM_TEST_MIN_TTL_S=1

run_rc() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}
jget() { python3 -c 'import json,sys; o=json.loads(sys.argv[1]); print(eval("o"+sys.argv[2]))' "$1" "$2"; }
sb_names() { python3 -c 'import json,sys; print(" ".join(x["name"] for x in json.loads(sys.argv[1])))' "$1"; }
now_us() { python3 -c 'import time; print(int(time.time()*1e6))'; }
pids_of() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])).get("runtime",{}); print(*[r[k]["pid"] for k in ("shim","qemu") if k in r])' "$vms/$1/vm.json"; }
names() { qvm ls --json | python3 -c 'import json,sys; print(" ".join(v["name"] for v in json.load(sys.stdin)))'; }

# Waits until NAME is gone (assert_gone: no dir, no runtime dir, no pid of
# PIDS) and fails unless that happened within 5 s of the deadline DEADLINE_US
# (and not before it).
wait_gone() {
  local name=$1 pids=$2 deadline=$3 what=$4 t
  while :; do
    t=$(now_us)
    if [[ ! -e $vms/$name && ! -e $QVM_RUNTIME_DIR/$name ]] && ! (
      for p in $pids; do kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$p/status" && exit 0; done
      exit 1
    ); then
      break
    fi
    ((t < deadline + 5000000)) || fail "$what: '$name' is still there 5 s after its deadline"
    sleep 0.2
  done
  ((t >= deadline)) || fail "$what: '$name' was removed $(((deadline - t) / 1000)) ms before its deadline"
  assert_gone "$name" "$pids"
  log "$what: gone $(((t - deadline) / 1000)) ms after the deadline"
}

# The golden vm, with labels, an agent id and a host folder (read-only: no
# user xattrs needed) that no sandbox made from it may get.
mkdir -m 0755 "$tmp/shared"
chmod 0755 "$tmp"
out=$(qvm up gold "${boot[@]}" --image "$tmp/base.qcow2" --disk 32M --label role=golden \
  --label team/infra=a.b-c --agent builder@ci --mount "$tmp/shared:/srv/shared:ro" 2>&1) ||
  fail "up gold: $out"
qvm stop gold --timeout 30 >/dev/null || fail "stop gold"
json=$(qvm info gold --json)
expect_eq "$(jget "$json" '["labels"]')" "{'role': 'golden', 'team/infra': 'a.b-c'}" "gold's labels"
expect_eq "$(jget "$json" '["agent"]')" "builder@ci" "gold's agent"
expect_eq "$(jget "$json" '["sandbox"]')" "False" "gold is no sandbox"
qvm create plain "${boot[@]:0:8}" --image "$tmp/base.qcow2" --no-cloud-init --label role=other >/dev/null ||
  fail "create plain"

# ls filters (AND).
expect_eq "$(names)" "gold plain" "ls"
out=$(qvm ls --label role=golden --json) && expect_eq "$(jget "$out" '[0]["name"]')" gold "ls --label role=golden"
expect_eq "$(jget "$(qvm ls --label role=golden --label team/infra=a.b-c --json)" '.__len__()')" 1 "ls, two labels"
expect_eq "$(jget "$(qvm ls --label role=golden --label team/infra=x --json)" '.__len__()')" 0 "ls, one label differs"
expect_eq "$(jget "$(qvm ls --label role=golden --agent nobody --json)" '.__len__()')" 0 "ls, other agent"
expect_eq "$(jget "$(qvm ls --agent builder@ci --json)" '[0]["name"]')" gold "ls --agent"
expect_eq "$(jget "$(qvm ls --label role=other --json)" '[0]["name"]')" plain "ls --label role=other"

# Bad input: usage errors (2) or refused (1); nothing is made.
for args in "--label Role=x" "--label noequals" "--label a=$(printf 'x%.0s' {1..256})" \
  "--agent bad/agent" "--agent $(printf 'a%.0s' {1..129})" "--label a=1 --label a=2"; do
  # shellcheck disable=SC2086
  run_rc qvm create bad "${boot[@]:0:8}" --no-cloud-init $args
  expect_eq "$rc" 2 "create $args"
done
run_rc qvm create bad "${boot[@]:0:8}" --no-cloud-init --label "a=$(printf 'x\tb')"
expect_eq "$rc" 2 "a label value with a tab"
expect_match "$out" "printable" "the tab's message"
run_rc qvm ls --label BAD
expect_eq "$rc" 2 "ls --label BAD"
for ttl in 5x 10 -5m 8d 0s 1w ""; do
  run_rc qvm sandbox create --from gold --ttl "$ttl"
  expect_eq "$rc" 2 "sandbox create --ttl '$ttl'"
done
run_rc qvm sandbox create --ttl 1m
expect_eq "$rc" 2 "sandbox create without --from"
run_rc qvm sandbox create BAD --from gold
expect_eq "$rc" 1 "sandbox create with a bad name"
run_rc qvm sandbox create sbx --from nothing-like-this --ttl 1m
expect_eq "$rc" 3 "sandbox create from nothing"
expect_match "$out" "nothing-like-this" "the golden is named"
run_rc qvm sandbox create sbx --from gold:nosnap --ttl 1m
expect_eq "$rc" 3 "sandbox create from an unknown snapshot"
run_rc qvm sandbox extend gold 5x
expect_eq "$rc" 2 "extend by a bad duration"
run_rc qvm sandbox extend gold 10m
expect_eq "$rc" 6 "extend of a vm that is no sandbox"
expect_match "$out" "not a sandbox" "extend's message"
run_rc qvm sandbox destroy gold
expect_eq "$rc" 6 "destroy of a vm that is no sandbox"
[[ -e $vms/gold ]] || fail "destroy removed a vm that is no sandbox"
expect_eq "$(names)" "gold plain" "nothing was made by the bad commands"

# A sandbox with a short TTL: its own shim removes it.
t0=$(now_us)
json=$(qvm sandbox create sb1 --from gold --ttl 60s --agent agent-1 --label job=a --json) ||
  fail "sandbox create sb1: $json"
log "sandbox create took $((($(now_us) - t0) / 1000)) ms"
expect_eq "$(jget "$json" '["kind"]')" vm "sb1 is a clone of a vm"
expect_eq "$(jget "$json" '["net"]')" isolated "sb1's network"
expect_eq "$(jget "$json" '["agent"]')" agent-1 "sb1's agent"
expect_eq "$(jget "$json" '["labels"]')" "{'job': 'a'}" "sb1's labels (gold's are not copied)"
expect_eq "$(jget "$json" '["state"]')" running "sb1 runs"
expect_eq "$(jget "$(qvm info gold --json)" '["mounts"].__len__()')" 1 "gold has its folder"
expect_eq "$(jget "$(qvm info sb1 --json)" '["mounts"]')" "[]" "a sandbox gets none of gold's folders"
dl1=$(jget "$json" '["expires_at_us"]')
expect_eq "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spec"]["network"]["restrict"])' "$vms/sb1/vm.json")" True "sb1's network is restricted"
qvm exec sb1 -- true || fail "exec in sb1"
pids1=$(pids_of sb1)

# A second one, whose shim is killed and replaced.
json=$(qvm sandbox create sb2 --from gold --ttl 70s --agent agent-2 --json) || fail "sandbox create sb2: $json"
dl2=$(jget "$json" '["expires_at_us"]')
read -r shim2 qemu2 <<<"$(pids_of sb2)"
kill -9 "$shim2"
for _ in $(seq 50); do kill -0 "$shim2" 2>/dev/null || break; sleep 0.1; done
qvm info sb2 >/dev/null || fail "info sb2 (re-attach)"
read -r shim2b qemu2b <<<"$(pids_of sb2)"
[[ $shim2b != "$shim2" ]] || fail "no new shim adopted sb2"
expect_eq "$qemu2b" "$qemu2" "sb2's QEMU after the re-attach"
grep -q qvm-shim-adopted "$vms/sb2/events.jsonl" || fail "sb2's new shim did not adopt"

# A third one, extended: there past its first deadline, gone after the new one.
json=$(qvm sandbox create sb3 --from gold --ttl 50s --json) || fail "sandbox create sb3: $json"
dl3=$(jget "$json" '["expires_at_us"]')
pids3=$(pids_of sb3)
out=$(qvm sandbox extend sb3 25s --json) || fail "extend sb3: $out"
dl3b=$(jget "$out" '["expires_at_us"]')
expect_eq "$dl3b" "$((dl3 + 25000000))" "sb3's new deadline"
grep -q qvm-expiry-set "$vms/sb3/events.jsonl" || fail "sb3's shim did not re-read its deadline"

# sandbox ls
out=$(qvm sandbox ls --json)
expect_eq "$(sb_names "$out")" "sb1 sb2 sb3" "sandbox ls"
expect_eq "$(sb_names "$(qvm sandbox ls --agent agent-2 --json)")" sb2 "sandbox ls --agent"
expect_match "$(qvm sandbox ls)" "sb1 +running +agent-1" "sandbox ls table"
expect_eq "$(jget "$(qvm ls --agent agent-1 --label job=a --json)" '[0]["name"]')" sb1 "ls --agent --label finds a sandbox"

wait_gone sb1 "$pids1" "$dl1" "sb1 (ttl 60s)"
# Gone means gone: no expired vm in any list, and its name is free again.
expect_eq "$(sb_names "$(qvm sandbox ls --json)")" "sb2 sb3" "sandbox ls after sb1"
wait_gone sb2 "$shim2 $shim2b $qemu2" "$dl2" "sb2 (shim killed, adopted)"
# sb3: there (running) 3 s past its first deadline.
while (($(now_us) < dl3 + 3000000)); do sleep 0.2; done
expect_eq "$(jget "$(qvm info sb3 --json)" '["state"]')" running "sb3 after its first deadline"
wait_gone sb3 "$pids3" "$dl3b" "sb3 (extended)"
# The audit log keeps an expiry record of each, and sb3's extension.
audit_count() { qvm audit "$1" --json | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["action"] == sys.argv[1]))' "$2"; }
for n in sb1 sb2 sb3; do
  (($(audit_count "$n" expire) >= 1)) || fail "no audit record of $n's expiry"
done
expect_eq "$(audit_count sb3 extend)" 1 "the audit record of sb3's extension"

# A deadline that passed while the sandbox was stopped: the next command
# removes it (ls, and any verb on it).
for n in sb4 sb5; do
  qvm sandbox create $n --from gold --ttl 10m >/dev/null || fail "sandbox create $n"
  qvm stop $n --timeout 30 >/dev/null || fail "stop $n"
  python3 - "$vms/$n/vm.json" <<'EOF' || fail "editing $n's deadline"
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["spec"]["sandbox"]["expires_at"] = "2020-01-01T00:00:00Z"
json.dump(d, open(p, "w"))
EOF
done
expect_eq "$(names)" "gold plain" "ls after sb4's and sb5's deadlines passed"
[[ ! -e $vms/sb4 && ! -e $vms/sb5 ]] || fail "an expired stopped sandbox is still there"
qvm sandbox create sb6 --from gold --ttl 10m >/dev/null || fail "sandbox create sb6"
qvm stop sb6 --timeout 30 >/dev/null || fail "stop sb6"
python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d["spec"]["sandbox"]["expires_at"]="2021-02-03T04:05:06.5Z"; json.dump(d,open(p,"w"))' "$vms/sb6/vm.json"
run_rc qvm start sb6
expect_eq "$rc" 3 "start of an expired sandbox"
expect_match "$out" "expired at 2021-02-03T04:05:06.500000Z" "start's message"
[[ ! -e $vms/sb6 ]] || fail "sb6 is still there after start found it expired"

# A bad deadline in vm.json is refused by name, never guessed.
qvm sandbox create sb7 --from gold --ttl 10m >/dev/null || fail "sandbox create sb7"
qvm stop sb7 --timeout 30 >/dev/null || fail "stop sb7"
cp "$vms/sb7/vm.json" "$tmp/sb7.json"
python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d["spec"]["sandbox"]["expires_at"]="2021-02-30T00:00:00Z"; json.dump(d,open(p,"w"))' "$vms/sb7/vm.json"
run_rc qvm info sb7
expect_eq "$rc" 1 "info with a bad expires_at"
expect_match "$out" "expires_at" "the bad member is named"
cp "$tmp/sb7.json" "$vms/sb7/vm.json"
# destroy
qvm sandbox destroy sb7 >/dev/null || fail "destroy sb7"
[[ ! -e $vms/sb7 ]] || fail "sb7 is still there after destroy"
run_rc qvm sandbox destroy sb7
expect_eq "$rc" 3 "destroy of a sandbox that is gone"
expect_eq "$(names)" "gold plain" "what is left"

# A rollback of a running sandbox pushes the current KRL again: the
# checkpoint's /etc/ssh holds the KRL of its moment and no boot replaces it,
# so a certificate revoked since would log in again. (The mini guest's
# dropbear reads no KRL: a drop-in file makes qvm push to it anyway.)
qvm sandbox create sb8 --from gold --ttl 10m >/dev/null || fail "sandbox create sb8"
qvm exec sb8 -- sh -c 'mkdir -p /etc/ssh/sshd_config.d && : >/etc/ssh/sshd_config.d/qvm.conf' ||
  fail "the drop-in in sb8"
out=$(qvm cert push sb8 2>&1) || fail "cert push sb8: $out"
guest_krl() { qvm exec sb8 -- sha256sum /etc/ssh/qvm_revoked.krl | cut -c1-64; }
host_krl() { sha256sum "$QVM_STATE_DIR/ca/revoked.krl" | cut -c1-64; }
expect_eq "$(guest_krl)" "$(host_krl)" "sb8's krl after the push"
out=$(qvm exec sb8 --checkpoint -- true 2>&1) || fail "checkpoint of sb8: $out"
before=$(host_krl)
json=$(qvm cert issue sb8 --ttl 5m -o "$tmp/sb8-cert" --json) || fail "cert issue: $json"
serial=$(jget "$json" '["serial"]')
out=$(qvm cert revoke sb8 "$serial" 2>&1) || fail "cert revoke: $out"
[[ $(host_krl) != "$before" ]] || fail "the revoke did not change the krl"
expect_eq "$(guest_krl)" "$(host_krl)" "sb8's krl after the revoke"
out=$(qvm rollback sb8 2>&1) || fail "rollback sb8: $out"
expect_eq "$(guest_krl)" "$(host_krl)" "sb8's krl after the rollback (not the checkpoint's)"
qvm sandbox destroy sb8 >/dev/null || fail "destroy sb8"
log "PASS"
