#!/usr/bin/env bash
# The host-wide audit log with the mini guest: create (with qvm --agent),
# start, exec, an ssh session, cp both ways, stop and rm each leave a record
# in `qvm audit --json` with what they did (exec: argv, exit, sizes and
# sha256 of stdout/stderr, never the output itself); the records outlive
# the vm; the table neutralizes what the guest's user typed; `qvm audit
# verify` passes, then names the line after one is edited or removed.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
unset QVM_AGENT

mini=$(mini_guest)
log=$QVM_STATE_DIR/audit/audit.jsonl
vm=au1

run_rc() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}
wait_ready() {
  local _
  for _ in $(seq 1800); do
    grep -q 'qvm-mini: ready' "$QVM_STATE_DIR/vms/$1/serial.log" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the mini guest never printed 'qvm-mini: ready'"
}
# Python over `qvm audit $vm --json` ($records); prints what the check prints.
check() { python3 -c "import json,sys,hashlib; r=json.loads(sys.argv[1]); $1" "$records"; }

out=$(qvm --agent ci-7 create "$vm" --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" \
  --append console=ttyS0 --memory 256M --user root 2>&1) || fail "create: $out"
out=$(qvm start "$vm" 2>&1) || fail "start: $out"
wait_ready "$vm"

# exec: the output is computed in the guest, so it appears nowhere in argv
run_rc qvm exec "$vm" -- sh -c 'echo marker-$((6*7))-$((1000+1)); echo oops >&2; exit 3'
expect_eq "$rc" 3 "exec exit status"
expect_match "$out" "marker-42-1001" "exec output"
# hostile argv: a newline and an escape sequence
run_rc qvm exec "$vm" -- printf "$(printf 'two\nlines\033[31mred')"
expect_eq "$rc" 0 "exec with a hostile argv"
run_rc sh -c "echo 'exit 5' | '$qvm_bin' ssh $vm"
expect_eq "$rc" 5 "ssh session exit status"

printf 'payload for the audit\n' >"$tmp/up.txt"
out=$(qvm cp "$tmp/up.txt" "$vm:/tmp/up.txt" 2>&1) || fail "cp up: $out"
out=$(qvm cp "$vm:/tmp/up.txt" "$tmp/down.txt" 2>&1) || fail "cp down: $out"
out=$(qvm stop "$vm" --timeout 30 2>&1) || fail "stop: $out"
out=$(qvm rm "$vm" 2>&1) || fail "rm: $out"
[[ ! -e $QVM_STATE_DIR/vms/$vm ]] || fail "the vm dir is still there after rm"

# The records survive rm.
records=$(qvm audit "$vm" --json) || fail "audit --json: $records"
expect_eq "$(check 'print(" ".join(x["action"] for x in r))')" \
  "create start exec-start exec exec-start exec ssh-open ssh-close cp cp stop rm" "the vm's actions, in order"
expect_eq "$(check 'print(r[0]["actor"].get("agent"), r[1]["actor"].get("agent"))')" "ci-7 None" \
  "the agent id is on create only"
expect_eq "$(check 'print(r[0]["actor"]["uid"], r[0]["actor"]["user"])')" "$(id -u) $(id -un)" "actor"
expect_eq "$(check 'd=r[3]["details"]; print(d["argv"][0], d["argc"], d["exit"], d["signal"])')" \
  "sh 3 3 None" "exec argv and exit"
expect_eq "$(check 'd=r[2]["details"]; print(d["argv"][0], "exit" in d)')" "sh False" \
  "exec-start: the argv, before any outcome"
expect_match "$(check 'print(r[6]["details"]["host_key"])')" "^SHA256:" "ssh-open names the host key"
want_out=$(printf 'marker-42-1001\n' | sha256sum | cut -d' ' -f1)
want_err=$(printf 'oops\n' | sha256sum | cut -d' ' -f1)
expect_eq "$(check 'd=r[3]["details"]; print(d["stdout"]["bytes"], d["stdout"]["sha256"], d["stderr"]["bytes"], d["stderr"]["sha256"])')" \
  "15 $want_out 5 $want_err" "exec output sizes and sha256"
check 'assert r[3]["details"]["duration_ms"] >= 0' || fail "exec duration_ms"
# the log keeps it exactly (JSON-escaped); --json output is neutralized for a terminal
expect_eq "$(python3 -c 'import json,sys; print(repr(json.loads(open(sys.argv[1]).readlines()[5])["details"]["argv"][1]))' "$log")" \
  "'two\\nlines\\x1b[31mred'" "the hostile argv in the log, exactly"
[[ $records != *$'\033'* ]] || fail "qvm audit --json prints an escape character"
expect_eq "$(check 'print(r[7]["details"]["exit"])')" 5 "ssh-close exit"
sum=$(sha256sum "$tmp/up.txt" | cut -d' ' -f1)
expect_eq "$(check 'd=r[8]["details"]; print(d["direction"], d["local"], d["remote"], d["bytes"], d["sha256"])')" \
  "upload $(realpath "$tmp/up.txt") /tmp/up.txt 22 $sum" "cp upload record"
expect_eq "$(check 'd=r[9]["details"]; print(d["direction"], d["local"], d["remote"], d["bytes"], d["sha256"])')" \
  "download $(realpath "$tmp/down.txt") /tmp/up.txt 22 $sum" "cp download record"
grep -q 'marker-42-1001' "$log" && fail "exec output is in the audit log"
expect_eq "$(wc -l <"$log")" 12 "one line per record"

# Filters and the table.
expect_eq "$(qvm audit --agent ci-7 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 1 "--agent"
expect_eq "$(qvm audit --since 1h --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 12 "--since 1h"
expect_eq "$(qvm audit --since 2100-01-01 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 0 "--since a future date"
expect_eq "$(qvm audit other --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 0 "another vm has no records"
table=$(qvm audit "$vm")
expect_match "$table" "exec +sh -c .* -> exit 3" "the table's exec row"
expect_match "$table" "ci-7" "the table's agent"
[[ $table != *$'\033'* ]] || fail "the table prints an escape character"
run_rc qvm audit --since yesterday
expect_eq "$rc" 2 "a bad --since"
run_rc qvm --agent 'bad agent' audit
expect_eq "$rc" 2 "a bad --agent"

# verify: intact, then one line edited, then one removed.
out=$(qvm audit verify) || fail "verify of an untouched log: $out"
expect_match "$out" "^ok, 12 records" "verify ok"
cp "$log" "$tmp/log.orig"
sed -i '4s/"exit":3/"exit":0/' "$log"
run_rc qvm audit verify
expect_eq "$rc" 1 "verify after an edit"
expect_match "$out" "line 4: hash mismatch" "verify names the edited line"
out=$(qvm audit verify --json) && fail "verify --json passed an edited log"
expect_match "$out" '"bad_line": 4' "verify --json names the edited line"
cp "$tmp/log.orig" "$log"
sed -i '5d' "$log"
run_rc qvm audit verify
expect_eq "$rc" 1 "verify after a deletion"
expect_match "$out" "line 5: seq gap" "verify names where the line was removed"
cp "$tmp/log.orig" "$log"
out=$(qvm audit verify) || fail "verify of the restored log: $out"
# A saved head catches what the chain alone cannot: a cut-off end.
head=$(qvm audit verify --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["head"])')
out=$(qvm audit verify --head "$head") || fail "verify --head of the intact log: $out"
sed -i '$d' "$log"
out=$(qvm audit verify) || fail "the chain alone cannot see a cut-off end: $out"
run_rc qvm audit verify --head "$head"
expect_eq "$rc" 1 "verify --head after the last record was cut off"
expect_match "$out" "not in the chain" "verify --head says why"
run_rc qvm audit verify --head nothex
expect_eq "$rc" 2 "verify --head with a bad hash"
log "ok"
