#!/usr/bin/env bash
# Long operations and the image store through qvmd's API (one qvmd, the
# mini guest): an image pull from a local HTTP server is a 202 operation
# that succeeds and lists the image; a pull from a server that trickles is
# cancelled (no partial file left); an agent token sees no other's
# operation (404) and may not pull; a sandbox made with "Prefer:
# respond-async" is an operation that succeeds, one cancelled midway
# leaves nothing; the events stream follows an operation to its end. Then qvmd is killed (-9) during a slow pull and
# during an asynchronous sandbox create, and started again: each operation
# reads what really happened (interrupted, then failed or succeeded), a
# sandbox that was complete still runs, and nothing half-made is left: no
# vm dir, no partial image file, no shim or QEMU of a removed vm. Last, an
# operation holds a --max-work slot until it ends.
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"

mini=$(mini_guest)
sock=$tmp/qvmd.sock
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tok_a=agent-a-token-0123456789abc
tok_r=read-token-0123456789abcdef
printf '%s agent:agent-a\n%s read\n' "$tok_a" "$tok_r" >"$tmp/tokens"
chmod 600 "$tmp/tokens"
auth_a=(-H "Authorization: Bearer $tok_a")
qvmd_args=(--socket "$sock" --listen "127.0.0.1:$port" --tokens "$tmp/tokens")
start_qvmd "$tmp/qvmd.log" "${qvmd_args[@]}"

# as_agent METHOD PATH [BODY] [CURL ARGS...]: req over TCP with agent-a's token.
as_agent() {
  local m=$1 p=$2 d=${3-}
  shift 3 2>/dev/null || shift $#
  url_base=http://127.0.0.1:$port req "$m" "$p" "$d" "${auth_a[@]}" "$@"
}
header() { sed -n "s/^$1: *\\([^\\r]*\\).*/\\1/Ip" "$tmp/hdrs" | tail -n 1; }
# wait_op ID [AGENT]: long-polls until the operation ends; $body is it.
wait_op() {
  local id=$1 _
  for _ in $(seq 40); do
    if [[ ${2:-} == agent ]]; then
      as_agent GET "/api/v1/operations/$id?waitMs=15000"
    else
      req GET "/api/v1/operations/$id?waitMs=15000"
    fi
    expect_status 200 "poll $id"
    [[ $(jget "$body" 'o["state"]') != running ]] && return 0
  done
  fail "operation $id did not end: $body"
}
no_partials() {
  local left
  left=$(find "$QVM_STATE_DIR/images/tmp" -name '*.part' -o -name '*.img' 2>/dev/null | head -n 5)
  [[ -z $left ]] || fail "$1: partial download left: $left"
}

# --- images served over HTTP ------------------------------------------------------
mkdir -p "$tmp/www"
qemu-img create -q -f qcow2 "$tmp/www/small.qcow2" 16M
head -c $((3 << 20)) /dev/urandom >"$tmp/big.raw"
qemu-img convert -O qcow2 "$tmp/big.raw" "$tmp/www/big.qcow2"
(cd "$tmp/www" && sha256sum small.qcow2 big.qcow2 >SHA256SUMS)
serve_dir "$tmp/www"
www=http://127.0.0.1:$http_port
slow() { curl -sf "$www/_ctl/fault?path=/big.qcow2&mode=slow&rate=$1&times=0" >/dev/null; }

# --- a pull is an operation ---------------------------------------------------------
req POST /api/v1/images "{\"source\": \"$www/small.qcow2\", \"name\": \"small\", \"checksums\": \"$www/SHA256SUMS\"}"
expect_status 202 "pull small"
id=$(jget "$body" 'o["id"]')
expect_eq "$(header Location)" "/api/v1/operations/$id" "the Location of the pull"
expect_eq "$(jget "$body" 'o["kind"], o["target"]')" "('image.pull', 'small')" "the pull's kind and target"
wait_op "$id"
expect_eq "$(jget "$body" 'o["state"], o["result"]["names"], o["error"]')" "('succeeded', ['small'], None)" "the pull"
req GET /api/v1/images
expect_status 200 "list images"
expect_eq "$(jget "$body" '[i["names"] for i in o]')" "[['small']]" "the image list"
req GET /api/v1/images/small
expect_status 200 "inspect small"
expect_eq "$(jget "$body" 'o["format"]')" qcow2 "small's format"
req GET /api/v1/images/nosuch
expect_status 404 "inspect an unknown image"
req GET /api/v1/images/catalog
expect_status 200 "the catalog"
req GET "/api/v1/operations/$id/events" '' --max-time 20
expect_status 200 "events of an ended operation"
expect_eq "$ctype" text/event-stream "the events' content type"
expect_match "$body" '^event: state' "a state frame"
expect_match "$body" '"state":"succeeded"' "the final state in the stream"
# an unverifiable url: 422 before any operation
req GET /api/v1/operations
n_ops=$(jget "$body" 'len(o)')
req POST /api/v1/images "{\"source\": \"$www/small.qcow2\"}"
expect_status 422 "a pull without a checksum"
expect_eq "$(jget "$body" 'o["class"], o["field"]')" "('ImageUnverified', 'source')" "the refusal"
req POST /api/v1/images "{\"source\": \"$www/small.qcow2\", \"sha256\": \"$(printf 0%.0s {1..64})\", \"checksums\": \"$www/SHA256SUMS\"}"
expect_status 422 "two checksums"
req POST /api/v1/images '{"name": "x"}'
expect_status 422 "no source"
req GET /api/v1/operations
expect_eq "$(jget "$body" 'len(o)')" "$n_ops" "no operation for refused pulls"
# read tokens: no pull
url_base=http://127.0.0.1:$port req POST /api/v1/images "{\"source\": \"$www/small.qcow2\", \"checksums\": \"$www/SHA256SUMS\"}" -H "Authorization: Bearer $tok_r"
expect_status 403 "a pull with a read token"

# --- cancel ------------------------------------------------------------------------
slow 100000
req POST /api/v1/images "{\"source\": \"$www/big.qcow2\", \"name\": \"big\", \"checksums\": \"$www/SHA256SUMS\"}"
expect_status 202 "slow pull"
id=$(jget "$body" 'o["id"]')
curl -s -N --max-time 60 --unix-socket "$sock" "http://qvmd/api/v1/operations/$id/events" >"$tmp/events" &
events_pid=$!
for _ in $(seq 100); do
  [[ -n $(find "$QVM_STATE_DIR/images/tmp" -name '*.part' -size +1k 2>/dev/null) ]] && break
  sleep 0.1
done
[[ -n $(find "$QVM_STATE_DIR/images/tmp" -name '*.part' -size +1k) ]] || fail "the slow pull wrote no partial file"
# an agent token: another's operation is 404, as an unknown one
as_agent GET "/api/v1/operations/$id"
expect_status 404 "an agent reads another's operation"
as_agent DELETE "/api/v1/operations/$id"
expect_status 404 "an agent cancels another's operation"
as_agent GET /api/v1/operations
expect_status 200 "an agent's operation list"
expect_eq "$(jget "$body" 'len(o)')" 0 "an agent sees none of the others' operations"
as_agent POST /api/v1/images "{\"source\": \"$www/small.qcow2\", \"checksums\": \"$www/SHA256SUMS\"}"
expect_status 404 "an agent pulls"
as_agent GET /api/v1/images
expect_status 200 "an agent lists images"
req DELETE "/api/v1/operations/$id"
expect_status 202 "cancel the slow pull"
wait_op "$id"
expect_eq "$(jget "$body" 'o["state"], o["error"]["class"]')" "('cancelled', 'Cancelled')" "the cancelled pull"
no_partials "after a cancel"
req DELETE "/api/v1/operations/$id"
expect_status 409 "cancel of an ended operation"
wait "$events_pid" || fail "the events stream did not end with the operation"
grep -q '^event: progress' "$tmp/events" || fail "no progress frame: $(head -c 2000 "$tmp/events")"
tail -n 3 "$tmp/events" | grep -q '"state":"cancelled"' || fail "the stream's last frame: $(tail -c 600 "$tmp/events")"
req GET /api/v1/images/big
expect_status 404 "a cancelled pull stored nothing"
req GET /api/v1/operations/op-0123456789abcdef0123456789abcdef
expect_status 404 "an unknown operation"
req GET "/api/v1/operations/$id?waitMs=x"
expect_status 422 "a bad waitMs"

# --- an asynchronous sandbox ----------------------------------------------------------
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
boot="\"image\": \"$tmp/base.qcow2\", \"diskSize\": \"32M\", \"kernel\": \"$mini/vmlinuz\", \"initrd\": \"$mini/initrd.img\", \"append\": \"console=ttyS0\", \"memory\": \"256M\", \"user\": \"root\""
req POST /api/v1/vms "{\"name\": \"m1\", $boot, \"labels\": {\"golden\": \"true\"}}" -H 'Prefer: respond-async'
expect_status 202 "async create of m1"
expect_eq "$(header Preference-Applied)" respond-async "Preference-Applied"
wait_op "$(jget "$body" 'o["id"]')"
expect_eq "$(jget "$body" 'o["state"], o["result"]["name"]')" "('succeeded', 'm1')" "the create of m1"
sandbox='{"name": "sb-1", "from": "m1", "ttl": "10m", "waitCloudInit": false, "timeoutMs": 300000}'
as_agent POST /api/v1/sandboxes "$sandbox" -H 'Prefer: respond-async'
expect_status 202 "async sandbox create"
id=$(jget "$body" 'o["id"]')
expect_eq "$(jget "$body" 'o["kind"], o["target"]')" "('sandbox.create', 'sb-1')" "the sandbox op"
wait_op "$id" agent
expect_eq "$(jget "$body" 'o["state"], o["result"]["name"]')" "('succeeded', 'sb-1')" "the sandbox create"
req GET "/api/v1/operations/$id"
expect_status 200 "the operator reads an agent's operation"
as_agent GET /api/v1/operations
expect_eq "$(jget "$body" '[x["id"] for x in o]')" "['$id']" "the agent's operations"
as_agent DELETE /api/v1/sandboxes/sb-1
expect_status 204 "destroy sb-1"
# a create cancelled while it runs: cancelled between its steps, and the
# sandbox it made (if it got that far) is removed again
as_agent POST /api/v1/sandboxes '{"name": "sb-c", "from": "m1", "ttl": "10m", "waitCloudInit": false, "timeoutMs": 300000}' -H 'Prefer: respond-async'
expect_status 202 "async sandbox create, to be cancelled"
id=$(jget "$body" 'o["id"]')
as_agent DELETE "/api/v1/operations/$id"
expect_status 202 "cancel the sandbox create"
expect_eq "$(jget "$body" 'o["cancelRequested"]')" True "the cancel is recorded"
wait_op "$id" agent
expect_eq "$(jget "$body" 'o["state"], o["error"]["code"]')" "('cancelled', 'Cancelled')" "the cancelled create"
[[ ! -e $QVM_STATE_DIR/vms/sb-c ]] || fail "the cancelled create left sb-c"
[[ -z $(pgrep -f -- "$QVM_RUNTIME_DIR/sb-c/|vms/sb-c/" || true) ]] || fail "processes of the cancelled sb-c are left"

# --- kill -9 during a slow pull and during an async sandbox create -----------------
# Records as a qvmd killed at a precise moment leaves them (its pid gone):
# a sandbox create of sb-3, where a plain vm of that name (someone else's,
# made meanwhile) now stands: it must be left alone; and a vm create that
# died inside qvm_vm_create (its temp dir .m9.create-*).
req POST /api/v1/vms "{\"name\": \"sb-3\", $boot}"
expect_status 201 "create sb-3 (a plain vm, never started)"
mkdir -p "$QVM_STATE_DIR/vms/.m9.create-x1y2z3" && echo half >"$QVM_STATE_DIR/vms/.m9.create-x1y2z3/vm.json"
sh -c 'exit 0' & dead_pid=$!
wait "$dead_pid"
fake_op() { # ID KIND TARGET
  local now
  now=$(date +%s%3N)
  cat >"$QVM_STATE_DIR/qvmd/operations/$1.json" <<JSON
{"id": "$1", "kind": "$2", "target": "$3", "state": "running", "interrupted": false,
 "cancelRequested": false, "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z",
 "progress": {"phase": "create", "done": 0, "total": 0}, "result": null, "error": null,
 "qvmd": {"pid": $dead_pid, "pidStart": 1, "createdMs": $now, "updatedMs": $now, "agent": null,
          "source": "", "targetExisted": false}}
JSON
  chmod 600 "$QVM_STATE_DIR/qvmd/operations/$1.json"
}
fake_sb=op-00000000000000000000000000000003
fake_vm=op-00000000000000000000000000000009
fake_op $fake_sb sandbox.create sb-3
fake_op $fake_vm vm.create m9

slow 50000
req POST /api/v1/images "{\"source\": \"$www/big.qcow2\", \"name\": \"big\", \"checksums\": \"$www/SHA256SUMS\"}"
expect_status 202 "slow pull, to be interrupted"
pull_id=$(jget "$body" 'o["id"]')
for _ in $(seq 100); do
  [[ -n $(find "$QVM_STATE_DIR/images/tmp" -name '*.part' -size +1k 2>/dev/null) ]] && break
  sleep 0.1
done
# killed as soon as sb-2's directory is there: most often half-made (not
# running yet), sometimes a moment later than that
as_agent POST /api/v1/sandboxes '{"name": "sb-2", "from": "m1", "ttl": "10m", "waitCloudInit": false, "timeoutMs": 300000}' -H 'Prefer: respond-async'
expect_status 202 "async sandbox, to be interrupted"
sb_id=$(jget "$body" 'o["id"]')
for _ in $(seq 300); do
  [[ -n $(find "$QVM_STATE_DIR/vms" -maxdepth 1 -name '*sb-2*' 2>/dev/null) ]] && break
  sleep 0.02
done
ops_dir=$QVM_STATE_DIR/qvmd/operations
expect_eq "$(stat -c %a "$ops_dir")" 700 "the operations dir's mode"
expect_eq "$(stat -c %a "$ops_dir/$pull_id.json")" 600 "an operation file's mode"
kill -9 "$qvmd_pid"
wait "$qvmd_pid" 2>/dev/null || true
log "qvmd killed; sb-2 was: $(ls "$QVM_STATE_DIR/vms" | tr '\n' ' ')"
start_qvmd "$tmp/qvmd2.log" "${qvmd_args[@]}"
req GET "/api/v1/operations/$pull_id"
expect_status 200 "the interrupted pull"
expect_eq "$(jget "$body" 'o["state"], o["interrupted"]')" "('failed', True)" "the interrupted pull's state"
expect_match "$(jget "$body" 'o["error"]["detail"]')" 'qvmd stopped during the pull' "the pull's error"
no_partials "after the restart"
as_agent GET "/api/v1/operations/$sb_id"
expect_status 200 "the interrupted sandbox create"
state=$(jget "$body" 'o["state"]')
expect_eq "$(jget "$body" 'o["interrupted"]')" True "the sandbox op is marked interrupted"
sb2_procs() { pgrep -f -- "$QVM_RUNTIME_DIR/sb-2/|vms/sb-2/" || true; }
case $state in
succeeded)
  req GET /api/v1/vms/sb-2
  expect_status 200 "sb-2, complete"
  expect_eq "$(jget "$body" 'o["state"]')" running "the complete sb-2 still runs"
  ;;
failed)
  expect_match "$(jget "$body" 'o["error"]["detail"]')" 'qvmd stopped during the sandbox create' "the create's error"
  [[ ! -e $QVM_STATE_DIR/vms/sb-2 ]] || fail "a half-made sb-2 is left"
  [[ -z $(sb2_procs) ]] || fail "processes of the removed sb-2 are left: $(sb2_procs)"
  ;;
*) fail "the interrupted sandbox create reads '$state': $body" ;;
esac
log "the interrupted sandbox create: $state"
req GET "/api/v1/operations/$fake_sb"
expect_eq "$(jget "$body" 'o["state"], o["interrupted"]')" "('failed', True)" "the half-made sandbox's op"
expect_match "$(jget "$body" 'o["error"]["detail"]')" 'that this operation did not make is there now, left alone' \
  "the sandbox op's error"
req GET /api/v1/vms/sb-3
expect_status 200 "the plain vm sb-3 is left alone"
req DELETE /api/v1/vms/sb-3
expect_status 204 "remove sb-3"
req GET "/api/v1/operations/$fake_vm"
expect_eq "$(jget "$body" 'o["state"]')" failed "the vm create that died midway"
expect_match "$(jget "$body" 'o["error"]["detail"]')" 'no vm was made' "its error"
leftover=$(find "$QVM_STATE_DIR/vms" -maxdepth 1 -name '.*create-*')
[[ -z $leftover ]] || fail "a half-made vm dir is left: $leftover"
grep -q "operation $pull_id" "$tmp/qvmd2.log" || fail "qvmd did not log the reconcile: $(cat "$tmp/qvmd2.log")"

# --- operations hold --max-work slots ------------------------------------------------
kill "$qvmd_pid"
wait "$qvmd_pid" 2>/dev/null || true
start_qvmd "$tmp/qvmd3.log" "${qvmd_args[@]}" --max-work 1
req POST /api/v1/images "{\"source\": \"$www/big.qcow2\", \"name\": \"big\", \"checksums\": \"$www/SHA256SUMS\"}"
expect_status 202 "a slow pull with --max-work 1"
id=$(jget "$body" 'o["id"]')
req POST /api/v1/images "{\"source\": \"$www/small.qcow2\", \"name\": \"small2\", \"checksums\": \"$www/SHA256SUMS\"}"
expect_status 503 "a second pull while the first holds the only slot"
req POST /api/v1/vms/m1/start '' -H 'Prefer: respond-async'
expect_status 503 "an async start while the pull holds the only slot"
req DELETE "/api/v1/operations/$id"
expect_status 202 "cancel the pull"
wait_op "$id"
req POST /api/v1/images "{\"source\": \"$www/small.qcow2\", \"name\": \"small2\", \"checksums\": \"$www/SHA256SUMS\"}"
expect_status 202 "a pull once the slot is free"
wait_op "$(jget "$body" 'o["id"]')"
expect_eq "$(jget "$body" 'o["state"]')" succeeded "the pull once the slot is free"
# small2 names the same image as small: removing the name leaves small.
req DELETE /api/v1/images/small2
expect_status 204 "remove the image name small2"
req GET /api/v1/images/small2
expect_status 404 "small2 after its removal"
req DELETE /api/v1/images/small2
expect_status 404 "remove small2 again"
req POST /api/v1/vms/m1/start '{"timeoutMs": 120000}' -H 'Prefer: respond-async'
expect_status 202 "an async start"
expect_eq "$(jget "$body" 'o["kind"], o["target"]')" "('vm.start', 'm1')" "the start's op"
wait_op "$(jget "$body" 'o["id"]')"
expect_eq "$(jget "$body" 'o["state"], o["result"]["state"]')" "('succeeded', 'running')" "the async start"
req POST /api/v1/vms/nosuch/start '' -H 'Prefer: respond-async'
expect_status 404 "an async start of an unknown vm (no operation)"
log "ok"
