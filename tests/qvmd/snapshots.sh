#!/usr/bin/env bash
# Snapshots, clones, forks, checkpoints and rollback through qvmd's API, on
# the mini guest (its root file system lives in RAM, so a restore with RAM
# is what brings a file back or takes it away): a snapshot is made, listed,
# restored (a file written after it is gone) and deleted; a clone from it
# is made (201, Location) and exists; a fork runs with the guest's memory
# (the file from before is there); a sandbox made through the API takes a
# checkpoint and is rolled back to it by its agent, while another agent's
# token gets 404 for the same calls, exactly as for a name that does not
# exist; bad bodies get 422 naming the field; unknown snapshots 404.
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"

mini=$(mini_guest)
sock=$tmp/qvmd.sock
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tok_a=agent-a-token-0123456789abc
tok_b=agent-b-token-0123456789abc
printf '%s agent:agent-a\n%s agent:agent-b\n' "$tok_a" "$tok_b" >"$tmp/tokens"
chmod 600 "$tmp/tokens"
start_qvmd "$tmp/qvmd.log" --socket "$sock" --listen "127.0.0.1:$port" --tokens "$tmp/tokens"

wait_ready() {
  local _
  for _ in $(seq 1800); do
    grep -q 'qvm-mini: ready' "$QVM_STATE_DIR/vms/$1/serial.log" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the mini guest '$1' never printed 'qvm-mini: ready'"
}
# guest_file VM [AUTH...]: the content of /root/mark in VM ("" if none).
guest_file() {
  local vm=$1 path=/api/v1/vms/$1/exec
  shift
  [[ $# -gt 0 ]] && path=/api/v1/sandboxes/$vm/exec
  req POST "$path" '{"argv": ["sh", "-c", "cat /root/mark 2>/dev/null; true"]}' "$@"
  expect_status 200 "read /root/mark in $vm"
  jget "$body" 'o["stdout"].strip()'
}
put_file() {
  local vm=$1 text=$2 path=/api/v1/vms/$1/exec
  shift 2
  [[ $# -gt 0 ]] && path=/api/v1/sandboxes/$vm/exec
  req POST "$path" "{\"argv\": [\"sh\", \"-c\", \"echo $text > /root/mark\"]}" "$@"
  expect_status 200 "write /root/mark in $vm"
}

qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
boot="\"image\": \"$tmp/base.qcow2\", \"diskSize\": \"32M\", \"kernel\": \"$mini/vmlinuz\", \"initrd\": \"$mini/initrd.img\", \"append\": \"console=ttyS0\", \"memory\": \"256M\", \"user\": \"root\""
req POST /api/v1/vms "{\"name\": \"m1\", $boot, \"labels\": {\"golden\": \"true\"}}"
expect_status 201 "create m1"
req POST /api/v1/vms/m1/start '{"timeoutMs": 120000}'
expect_status 200 "start m1"
wait_ready m1

# --- snapshots -----------------------------------------------------------------
put_file m1 before
req POST /api/v1/vms/m1/snapshots '{"name": "s1"}'
expect_status 201 "snapshot s1"
expect_eq "$(jget "$body" 'o["name"], o["ram"]')" "('s1', True)" "s1 has RAM"
for bad in '{}|name' '{"name": "Bad_Name"}|name' '{"name": "s2", "diskOnly": "yes"}|diskOnly' \
  '{"name": "s2", "ram": true}|ram'; do
  req POST /api/v1/vms/m1/snapshots "${bad%|*}"
  expect_status 422 "snapshot with ${bad%|*}"
  expect_eq "$(jget "$body" 'o.get("field")')" "${bad#*|}" "the field named for ${bad%|*}"
done
req POST /api/v1/vms/m1/snapshots '{"name": "s1"}'
[[ $status == 409 || $status == 422 ]] || fail "a second snapshot s1: status $status: $body"
req GET /api/v1/vms/m1/snapshots
expect_status 200 "list snapshots"
expect_eq "$(jget "$body" '[s["name"] for s in o]')" "['s1']" "the list"
put_file m1 after
expect_eq "$(guest_file m1)" after "the file after s1"
req POST /api/v1/vms/m1/snapshots/s1/restore
expect_status 200 "restore s1"
expect_eq "$(guest_file m1)" before "the file is as it was at s1 (RAM restored)"
req POST /api/v1/vms/m1/snapshots/nosuch/restore
expect_status 404 "restore of an unknown snapshot"
req POST /api/v1/vms/nosuchvm/snapshots/s1/restore
expect_status 404 "restore on an unknown vm"

# --- clone and fork ------------------------------------------------------------
req POST /api/v1/vms/m1/clone '{"name": "c1", "snapshot": "s1"}'
expect_status 201 "clone c1 from s1"
expect_eq "$(jget "$body" 'o["name"], o["source"], o["snapshot"]')" "('c1', 'm1', 's1')" "the clone"
expect_match "$(sed -n 's/^[Ll]ocation: *//p' "$tmp/hdrs" | tr -d '\r')" '^/api/v1/vms/c1$' "Location"
req GET /api/v1/vms/c1
expect_status 200 "c1 exists"
req POST /api/v1/vms/m1/clone '{"name": "c1"}'
expect_status 409 "clone onto a taken name"
req POST /api/v1/vms/m1/clone '{"snapshot": "s1"}'
expect_status 422 "clone without a name"
expect_eq "$(jget "$body" 'o.get("field")')" name "the field"
req DELETE /api/v1/vms/c1
expect_status 204 "delete c1"
req POST /api/v1/vms/m1/fork '{"count": 0}'
expect_status 422 "fork of 0"
expect_eq "$(jget "$body" 'o.get("field")')" count "the field"
req POST /api/v1/vms/m1/fork '{"count": 1, "prefix": "fk"}'
expect_status 201 "fork m1"
fk=$(jget "$body" 'o["forks"][0]["name"]')
expect_eq "$fk" fk-1 "the fork's name"
expect_eq "$(guest_file "$fk")" before "the fork runs with m1's memory"
req DELETE "/api/v1/vms/$fk?force=true"
expect_status 204 "delete the fork"
req DELETE /api/v1/vms/m1/snapshots/s1
expect_status 204 "delete s1"
req GET /api/v1/vms/m1/snapshots
expect_eq "$body" "[]" "no snapshot left"

# --- a sandbox's checkpoint and rollback, by its agent ---------------------------
url_base=http://127.0.0.1:$port
auth_a=(-H "Authorization: Bearer $tok_a")
auth_b=(-H "Authorization: Bearer $tok_b")
req POST /api/v1/sandboxes '{"name": "sb-a", "from": "m1", "ttl": "10m", "waitCloudInit": false}' "${auth_a[@]}"
expect_status 201 "agent a makes sb-a"
wait_ready sb-a
put_file sb-a one "${auth_a[@]}"
req POST /api/v1/sandboxes/sb-a/checkpoint '{"keep": 1}' "${auth_a[@]}"
expect_status 422 "checkpoint with a member it does not take"
req POST /api/v1/sandboxes/sb-a/checkpoint '{}' "${auth_a[@]}"
expect_status 201 "checkpoint"
ckpt=$(jget "$body" 'o["name"]')
expect_match "$ckpt" '^ckpt-[0-9]+$' "the checkpoint's name"
put_file sb-a two "${auth_a[@]}"
# Another agent: 404 for all of it, as for a name that does not exist.
for call in "POST /api/v1/sandboxes/sb-a/checkpoint" "POST /api/v1/sandboxes/sb-a/rollback" \
  "GET /api/v1/sandboxes/sb-a/snapshots" "POST /api/v1/sandboxes/sb-zz/rollback"; do
  req ${call% *} "${call#* }" '' "${auth_b[@]}"
  expect_status 404 "agent b: $call"
done
# Nor the vm routes: those are the operator's.
req GET /api/v1/vms/sb-a/snapshots '' "${auth_a[@]}"
[[ $status == 403 || $status == 404 ]] || fail "agent a on a vm route: $status"
req POST /api/v1/sandboxes/sb-a/rollback '{"to": "Bad Name"}' "${auth_a[@]}"
expect_status 422 "rollback to a bad name"
expect_eq "$(jget "$body" 'o.get("field")')" to "the field"
req POST /api/v1/sandboxes/sb-a/rollback '{"to": "nosuch"}' "${auth_a[@]}"
expect_status 404 "rollback to an unknown snapshot"
req GET /api/v1/sandboxes/sb-a/snapshots '' "${auth_a[@]}"
expect_status 200 "agent a lists its sandbox's snapshots"
expect_eq "$(jget "$body" '[s["name"] for s in o]')" "['$ckpt']" "the checkpoint is listed"
req POST /api/v1/sandboxes/sb-a/rollback '' "${auth_a[@]}"
expect_status 200 "rollback"
expect_eq "$(jget "$body" 'o["restored"]')" "$ckpt" "rolled back to the latest checkpoint"
expect_eq "$(guest_file sb-a "${auth_a[@]}")" one "the file is as it was at the checkpoint"
req DELETE /api/v1/sandboxes/sb-a '' "${auth_a[@]}"
expect_status 204 "destroy sb-a"
url_base=
req GET "/api/v1/audit?vm=sb-a"
expect_match "$(jget "$body" '" ".join(r["action"] for r in o)')" "snapshot-create.* rollback" \
  "the audit log has the checkpoint and the rollback"
req DELETE "/api/v1/vms/m1?force=true"
expect_status 204 "delete m1"
[[ -z $(ls "$QVM_STATE_DIR/vms") ]] || fail "vm dirs left: $(ls "$QVM_STATE_DIR/vms")"
log "PASS"
