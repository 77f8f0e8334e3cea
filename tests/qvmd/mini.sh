#!/usr/bin/env bash
# The mini guest through qvmd's API on a temp UNIX socket: create (direct
# kernel boot), start, exec (exit status, stdout and stderr apart, output
# that is not UTF-8 as neutralized text plus base64, a signal, a timeout),
# kill -9 of qvmd and a new qvmd (the VM runs on), restart, stop, delete,
# each checked against what the VM is afterwards;
# then sandboxes of two agents made through the API, listed, read, exec'd
# and destroyed through agent tokens over TCP: each agent sees and touches
# only its own, the other's is 404 exactly like a name that does not exist.
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"

mini=$(mini_guest)
sock=$tmp/qvmd.sock
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tok_a=agent-a-token-0123456789abc
tok_b=agent-b-token-0123456789abc
printf '%s agent:agent-a\n%s agent:agent-b\n' "$tok_a" "$tok_b" >"$tmp/tokens"
chmod 600 "$tmp/tokens"
export QVM_TEST_MIN_TTL_S=1
start_qvmd "$tmp/qvmd.log" --socket "$sock" --listen "127.0.0.1:$port" --tokens "$tmp/tokens"

wait_ready() {
  local _
  for _ in $(seq 1800); do
    grep -q 'qvm-mini: ready' "$QVM_STATE_DIR/vms/$1/serial.log" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the mini guest '$1' never printed 'qvm-mini: ready'"
}
state_of() {
  req GET "/api/v1/vms/$1"
  expect_status 200 "get $1"
  jget "$body" 'o["state"]'
}

# A disk of its own (an overlay on an empty base), so that sandboxes can clone it.
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
boot="\"image\": \"$tmp/base.qcow2\", \"diskSize\": \"32M\", \"kernel\": \"$mini/vmlinuz\", \"initrd\": \"$mini/initrd.img\", \"append\": \"console=ttyS0\", \"memory\": \"256M\", \"user\": \"root\""
req POST /api/v1/vms "{\"name\": \"m1\", $boot, \"agent\": \"builder\", \"labels\": {\"golden\": \"true\"}}"
expect_status 201 "create m1"
expect_eq "$(state_of m1)" created "m1 after create"
req POST /api/v1/vms/m1/start '{"timeoutMs": 120000}'
expect_status 200 "start m1"
expect_eq "$(jget "$body" 'o["state"]')" running "start's answer"
[[ -S $QVM_RUNTIME_DIR/m1/ctl.sock ]] || fail "m1's shim has no ctl.sock"
wait_ready m1

req POST /api/v1/vms/m1/exec '{"argv": ["sh", "-c", "echo out-$((6*7)); echo err >&2; exit 3"]}'
expect_status 200 "exec"
expect_eq "$(jget "$body" 'o["exitCode"], o["signal"], o["stdout"], o["stderr"]')" \
  "(3, None, 'out-42\\n', 'err\\n')" "exec's result"
expect_eq "$(jget "$body" '"stdoutBase64" in o')" False "no base64 for UTF-8 output"
# Output that is not UTF-8, with an escape sequence: neutralized, and exact in base64.
req POST /api/v1/vms/m1/exec '{"argv": ["printf", "a\\377\\033[31mb"]}'
expect_status 200 "exec with binary output"
expect_eq "$(jget "$body" 'o["stdout"]')" 'a\xff\x1b[31mb' "the neutralized text"
expect_eq "$(jget "$body" '__import__("base64").b64decode(o["stdoutBase64"])')" "b'a\\xff\\x1b[31mb'" "the exact bytes"
req POST /api/v1/vms/m1/exec '{"argv": ["sh", "-c", "kill -KILL $$"]}'
expect_status 200 "exec killed by a signal"
expect_eq "$(jget "$body" 'o["exitCode"], o["signal"]')" "(None, 'KILL')" "the signal"
req POST /api/v1/vms/m1/exec '{"argv": ["sleep", "30"], "timeoutMs": 1500}'
expect_status 504 "exec over its timeout"
# Output over the cap: 1 MiB kept, truncated says so.
req POST /api/v1/vms/m1/exec '{"argv": ["sh", "-c", "head -c 1500000 /dev/zero | tr \"\\\\0\" x"]}'
expect_status 200 "exec with 1.5 MB of output"
expect_eq "$(jget "$body" 'len(o["stdout"]), o["stdoutTruncated"]')" "(1048576, True)" "the capped output"
# A slow exec does not hold up other clients.
curl -s -o /dev/null --unix-socket "$sock" -X POST -H 'Content-Type: application/json' \
  --data '{"argv": ["sleep", "5"]}' http://qvmd/api/v1/vms/m1/exec &
slow=$!
sleep 1
t0=$(date +%s%N)
req GET /api/v1/vms
expect_status 200 "list during a slow exec"
(( ($(date +%s%N) - t0) / 1000000 < 2000 )) || fail "a list during a slow exec took over 2 s"
wait "$slow"

# kill -9 qvmd: the vm runs on (its shim owns it); a new qvmd replaces the
# stale socket and serves it as before.
kill -9 "$qvmd_pid"
wait "$qvmd_pid" 2>/dev/null || true
[[ -S $sock ]] || fail "no stale socket after kill -9"
start_qvmd "$tmp/qvmd-again.log" --socket "$sock" --listen "127.0.0.1:$port" --tokens "$tmp/tokens" \
  --max-work 4
expect_eq "$(state_of m1)" running "m1 after qvmd was killed and started again"
req POST /api/v1/vms/m1/exec '{"argv": ["echo", "still"]}'
expect_status 200 "exec after qvmd's restart"

req DELETE /api/v1/vms/m1
expect_status 409 "delete of a running vm without force"
expect_eq "$(jget "$body" 'o["class"]')" VmRunning "409's class"
req POST /api/v1/vms/m1/restart '{"timeoutMs": 60000}'
expect_status 200 "restart m1"
expect_eq "$(jget "$body" 'o["state"]')" running "restart's answer"
req POST /api/v1/vms/m1/stop '{"timeoutMs": 30000}'
expect_status 200 "stop m1"
expect_eq "$(state_of m1)" stopped "m1 after stop"
req POST /api/v1/vms/m1/exec '{"argv": ["true"]}'
expect_status 409 "exec in a stopped vm"

# --- sandboxes of two agents ---------------------------------------------------
url_base=http://127.0.0.1:$port
auth_a=(-H "Authorization: Bearer $tok_a")
auth_b=(-H "Authorization: Bearer $tok_b")
req POST /api/v1/sandboxes '{"name": "sb-a", "from": "m1", "ttl": "10m", "waitCloudInit": false}' "${auth_a[@]}"
expect_status 201 "agent a makes sb-a"
expect_eq "$(jget "$body" 'o["agent"], o["state"]')" "('agent-a', 'running')" "sb-a"
req POST /api/v1/sandboxes '{"name": "sb-b", "from": "m1", "ttl": "10m", "waitCloudInit": false, "checkpointEach": true}' "${auth_b[@]}"
expect_status 201 "agent b makes sb-b"
expect_eq "$(jget "$body" 'o["checkpointEach"]')" True "sb-b takes a checkpoint before every command"
# An agent starts sandboxes from images, golden vms and its own sandboxes
# only: not from another vm (m2 has no golden label), another agent's
# sandbox, a snapshot of either, or a host path or URL; every refusal is the
# same 422, and a taken name says nothing of whose it is.
url_base=
req POST /api/v1/vms "{\"name\": \"m2\", $boot}"
expect_status 201 "create m2 (not golden)"
url_base=http://127.0.0.1:$port
refusal=
for from in m2 sb-b m2:snap1 sb-b:snap1 /etc/shadow /nonexistent ./m2 "http://127.0.0.1:1/x.qcow2" \
  "sha256:0000000000000000000000000000000000000000000000000000000000000000" no-such-image; do
  req POST /api/v1/sandboxes "{\"name\": \"sb-x\", \"from\": \"$from\", \"ttl\": \"10m\"}" "${auth_a[@]}"
  expect_status 422 "agent a from '$from'"
  this=$(jget "$body" 'o["detail"], o.get("field")')
  [[ -z $refusal || $this == "$refusal" ]] || fail "agent a from '$from': '$this' differs from '$refusal'"
  refusal=$this
done
[[ ! -e $QVM_STATE_DIR/vms/sb-x ]] || fail "a refused sandbox was made"
req POST /api/v1/sandboxes '{"name": "m2", "from": "m1", "ttl": "10m"}' "${auth_a[@]}"
expect_status 409 "agent a takes m2's name"
expect_eq "$(jget "$body" 'o["detail"]')" "the name 'm2' is not available: choose another" "a taken name, said plainly"
url_base=
req DELETE /api/v1/vms/m2
expect_status 204 "delete m2"
url_base=http://127.0.0.1:$port
req GET /api/v1/sandboxes '' "${auth_a[@]}"
expect_status 200 "agent a lists"
expect_eq "$(jget "$body" '[s["name"] for s in o]')" "['sb-a']" "agent a sees only sb-a"
req GET /api/v1/sandboxes/sb-b '' "${auth_a[@]}"
expect_status 404 "agent a reads sb-b"
nf_other=$(jget "$body" 'o["title"], o["code"]')
req GET /api/v1/sandboxes/sb-zz '' "${auth_a[@]}"
expect_eq "$(jget "$body" 'o["title"], o["code"]')" "$nf_other" "another agent's sandbox answers as a missing one"
req POST /api/v1/sandboxes/sb-b/exec '{"argv": ["true"]}' "${auth_a[@]}"
expect_status 404 "agent a execs in sb-b"
req DELETE /api/v1/sandboxes/sb-b '' "${auth_a[@]}"
expect_status 404 "agent a destroys sb-b"
req GET /api/v1/vms/sb-b '' "${auth_a[@]}"
expect_status 404 "agent a reads sb-b as a vm"
wait_ready sb-a
# Agent tokens get at most half of --max-work (4 here): two long execs of
# agent a fill that half; a third is refused, while the operator's own
# request still runs beside them.
slow=()
for i in 1 2; do
  curl -s -o /dev/null --max-time 60 -X POST -H "Authorization: Bearer $tok_a" \
    -H 'Content-Type: application/json' --data-binary '{"argv": ["sleep", "8"]}' \
    "$url_base/api/v1/sandboxes/sb-a/exec" &
  slow+=($!)
done
sleep 2
req POST /api/v1/sandboxes/sb-a/exec '{"argv": ["true"]}' "${auth_a[@]}"
expect_status 503 "a third agent exec beside two"
expect_match "$body" "agent tokens have 2 operations under way" "the 503 says whose slots are full"
url_base=
req POST /api/v1/sandboxes/sb-a/exec '{"argv": ["echo", "operator"]}'
expect_status 200 "the operator's exec while the agents' slots are full"
url_base=http://127.0.0.1:$port
wait "${slow[@]}"
req POST /api/v1/sandboxes/sb-a/exec '{"argv": ["echo", "in-a"]}' "${auth_a[@]}"
expect_status 200 "agent a execs in sb-a"
expect_eq "$(jget "$body" 'repr(o["stdout"])')" "'in-a\\n'" "sb-a's output"
expect_eq "$(jget "$body" 'o["checkpoint"]')" None "sb-a (no checkpointEach) took no checkpoint"
# sb-b (checkpointEach): qvmd's exec takes a checkpoint first and names it.
wait_ready sb-b
req POST /api/v1/sandboxes/sb-b/exec '{"argv": ["sh", "-c", "echo in-b > /tmp/b"]}' "${auth_b[@]}"
expect_status 200 "agent b execs in sb-b"
expect_eq "$(jget "$body" 'o["checkpoint"]')" ckpt-1 "sb-b's exec took checkpoint ckpt-1"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if [s["name"] for s in d.get("snapshots", [])] == ["ckpt-1"] else 1)' \
  "$QVM_STATE_DIR/vms/sb-b/vm.json" || fail "sb-b's vm.json does not list ckpt-1 alone"
req DELETE /api/v1/sandboxes/sb-a '' "${auth_a[@]}"
expect_status 204 "agent a destroys sb-a"
url_base=
req GET /api/v1/sandboxes
expect_eq "$(jget "$body" '[s["name"] for s in o]')" "['sb-b']" "sb-b is still there, sb-a is gone"
req GET /api/v1/sandboxes/sb-b
expect_status 200 "root reads sb-b"
expect_eq "$(jget "$body" 'o["name"], o["agent"]')" "('sb-b', 'agent-b')" "sb-b as root sees it"
req DELETE /api/v1/sandboxes/sb-b
expect_status 204 "root destroys sb-b"
req DELETE /api/v1/vms/m1
expect_status 204 "delete m1"
req GET /api/v1/vms
expect_eq "$body" "[]" "no vm left"
[[ -z $(ls "$QVM_STATE_DIR/vms") ]] || fail "vm dirs left: $(ls "$QVM_STATE_DIR/vms")"
req GET "/api/v1/audit?vm=m1"
expect_eq "$(jget "$body" '" ".join(r["action"] for r in o)')" \
  "create start exec-start exec exec-start exec exec-start exec exec-start exec exec-start exec exec-start exec exec-start exec rm restart stop rm" \
  "m1's audit records (the refused delete is recorded too)"
# An agent token's actions name its agent in the audit log (the operator's
# exec over the UNIX socket names none).
req GET "/api/v1/audit?vm=sb-a"
expect_eq "$(jget "$body" 'sorted({r["actor"].get("agent") or "-" for r in o if r["action"] in ("exec", "rm")})')" \
  "['-', 'agent-a']" "the agents of sb-a's exec and rm records"
log "PASS"
