#!/usr/bin/env bash
# Streams and files through qvmd's API, on one mini-guest sandbox of agent
# a: exec as NDJSON (frames in order, a final exit frame; output that is
# not UTF-8 and over the 1 MiB cap is neutralized, exact in base64 and cut
# with a "truncated" frame; a client that hangs up leaves qvmd serving and
# its worker thread ends); files up and down (binary, sha256 round trip,
# the mode; bad paths 422); the address and the serial console; events as
# SSE (a state event when the vm stops, Last-Event-ID resumes); agent b
# gets 404 for agent a's files and events.
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"

mini=$(mini_guest)
sock=$tmp/qvmd.sock
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tok_a=agent-a-token-0123456789abc
tok_b=agent-b-token-0123456789abc
# Agent ids at their longest (128 bytes), agent b's a prefix of agent a's: a
# copy that cut an id short would take one for the other.
agent_b=agent-$(printf 'b%.0s' {1..121})
agent_a=${agent_b}a
printf '%s agent:%s\n%s agent:%s\n' "$tok_a" "$agent_a" "$tok_b" "$agent_b" >"$tmp/tokens"
chmod 600 "$tmp/tokens"
start_qvmd "$tmp/qvmd.log" --socket "$sock" --listen "127.0.0.1:$port" --tokens "$tmp/tokens"
auth_a=(-H "Authorization: Bearer $tok_a")
auth_b=(-H "Authorization: Bearer $tok_b")
tcp=http://127.0.0.1:$port

# ndjson PATH BODY [CURL ARGS...]: a streamed exec over the UNIX socket;
# the frames into $tmp/frames, $status.
ndjson() {
  local path=$1 data=$2
  shift 2
  status=$(curl -s -N -o "$tmp/frames" -D "$tmp/hdrs" -w '%{http_code}' --max-time 300 \
    --unix-socket "$sock" -H 'Content-Type: application/json' \
    -H 'Accept: application/x-ndjson' --data-binary "$data" "$@" "http://qvmd$path") || status=000
  ctype=$(sed -n 's/^[Cc]ontent-[Tt]ype: *\([^;\r]*\).*/\1/p' "$tmp/hdrs" | tail -n 1)
}
# frames EXPR: EXPR applied to f, the list of frames (each line one JSON object).
frames() {
  python3 -c 'import json,sys; f=[json.loads(l) for l in open(sys.argv[2]) if l.strip()]; print(eval(sys.argv[1]))' "$1" "$tmp/frames"
}

qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
boot="\"image\": \"$tmp/base.qcow2\", \"diskSize\": \"32M\", \"kernel\": \"$mini/vmlinuz\", \"initrd\": \"$mini/initrd.img\", \"append\": \"console=ttyS0\", \"memory\": \"256M\", \"user\": \"root\""
req POST /api/v1/vms "{\"name\": \"gold\", $boot, \"labels\": {\"golden\": \"true\"}}"
expect_status 201 "create gold"

# An SSE stream of agent b, open before the sandbox exists: it must never
# see agent a's sandbox.
curl -s -N --max-time 600 "${auth_b[@]}" "$tcp/api/v1/events" >"$tmp/sse-b" 2>/dev/null &
sse_b=$!
cleanup_hooks+=("kill $sse_b 2>/dev/null")
url_base=$tcp
req POST /api/v1/sandboxes '{"name": "sb-a", "from": "gold", "ttl": "20m", "waitCloudInit": false}' "${auth_a[@]}"
expect_status 201 "agent a makes sb-a"
expect_eq "$(jget "$body" 'o["agent"]')" "$agent_a" "sb-a's agent"
url_base=
for _ in $(seq 1800); do
  grep -q 'qvm-mini: ready' "$QVM_STATE_DIR/vms/sb-a/serial.log" 2>/dev/null && break
  sleep 0.1
done
grep -q 'qvm-mini: ready' "$QVM_STATE_DIR/vms/sb-a/serial.log" || fail "sb-a never got ready"

# --- exec as a stream -------------------------------------------------------------
ndjson /api/v1/vms/sb-a/exec '{"argv": ["sh", "-c", "echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three; exit 5"]}'
[[ $status == 200 && $ctype == application/x-ndjson ]] || fail "ndjson exec: $status $ctype: $(cat "$tmp/frames")"
expect_eq "$(frames '"".join(x["data"] for x in f if x.get("stream") == "stdout")')" $'one\nthree' "stdout frames"
expect_eq "$(frames '[x.get("stream") for x in f][:3]')" "['stdout', 'stderr', 'stdout']" "frames in order"
expect_eq "$(frames 'f[-1]["exit"]["exitCode"], f[-1]["exit"]["signal"], len([x for x in f if "exit" in x])')" \
  "(5, None, 1)" "one exit frame, last"
# "stream": true in the body, over TCP with an agent token, on the sandbox route
status=$(curl -s -N -o "$tmp/frames" -w '%{http_code}' --max-time 120 "${auth_a[@]}" \
  -H 'Content-Type: application/json' --data-binary '{"argv": ["echo", "hi"], "stream": true}' \
  "$tcp/api/v1/sandboxes/sb-a/exec")
[[ $status == 200 ]] || fail "stream by body: $(cat "$tmp/frames")"
expect_eq "$status $(frames 'f[0]["data"], f[-1]["exit"]["exitCode"]')" "200 ('hi\\n', 0)" "a stream by the body"
# the audit records of a streamed exec are the JSON exec's, with the agent
req GET "/api/v1/audit?vm=sb-a"
expect_eq "$(jget "$body" '[(r["action"], r["actor"].get("agent")) for r in o if r["action"].startswith("exec") and "\"hi\"" in __import__("json").dumps(r)]')" \
  "[('exec-start', '$agent_a'), ('exec', '$agent_a')]" "the streamed exec's audit records"
url_base=$tcp
req POST /api/v1/sandboxes/sb-a/exec '{"argv": ["true"], "stream": true}' "${auth_b[@]}" -H 'Accept: application/x-ndjson'
expect_status 404 "agent b streams in agent a's sandbox"
url_base=
req POST /api/v1/vms/sb-a/exec '{"argv": ["true"], "stream": "yes"}'
expect_status 422 "stream is not a boolean"

# Not UTF-8, then 3 MB: neutralized + exact, 1 MiB in all, then "truncated".
ndjson /api/v1/vms/sb-a/exec '{"argv": ["sh", "-c", "printf \"a\\377b\\n\"; head -c 3000000 /dev/zero | tr \"\\000\" x; echo done >&2"]}'
[[ $status == 200 ]] || fail "big exec: $status"
expect_eq "$(frames '__import__("base64").b64decode(f[0]["dataBase64"])[:4], "\x1b" in f[0]["data"]')" \
  "(b'a\\xffb\\n', False)" "the first frame: exact bytes in base64"
expect_eq "$(frames 'sum(len(__import__("base64").b64decode(x["dataBase64"])) if "dataBase64" in x else len(x["data"].encode()) for x in f if x.get("stream") == "stdout")')" \
  1048576 "stdout is cut at 1 MiB"
expect_eq "$(frames 'max(len(x.get("data", "")) for x in f) <= 65536')" True "frames are at most 64 KiB"
expect_eq "$(frames '[x for x in f if "truncated" in x], f[-1]["exit"]["exitCode"]')" \
  "([{'truncated': 'stdout'}], 0)" "one truncated frame, then the exit"
expect_eq "$(frames '[x["data"] for x in f if x.get("stream") == "stderr"]')" "['done\\n']" "stderr is whole"

# A client that hangs up mid-stream: qvmd goes on serving, and the worker
# thread ends at the command's next output (threads back to where they were).
threads() { ls "/proc/$qvmd_pid/task" | wc -l; }
before=$(threads)
curl -s -N --max-time 2 --unix-socket "$sock" -H 'Content-Type: application/json' \
  -H 'Accept: application/x-ndjson' --data-binary \
  '{"argv": ["sh", "-c", "while :; do echo tick; sleep 0.2; done"], "timeoutMs": 120000}' \
  http://qvmd/api/v1/vms/sb-a/exec >"$tmp/partial" || true
grep -q tick "$tmp/partial" || fail "the stream sent nothing before the client left"
for _ in $(seq 100); do (($(threads) <= before)) && break; sleep 0.1; done
(($(threads) <= before)) || fail "qvmd has $(threads) threads after the client left, $before before"
req GET /api/v1/vms/sb-a
expect_status 200 "qvmd serves after a client left a stream"

# --- files ------------------------------------------------------------------------
head -c 200000 /dev/urandom >"$tmp/blob"
printf '\0\377\n' >>"$tmp/blob"
req_ctype=application/octet-stream req PUT '/api/v1/vms/sb-a/files?path=/root/blob.bin&mode=0600' "@$tmp/blob"
expect_status 200 "upload"
expect_eq "$(jget "$body" 'o["bytes"], o["mode"]')" "(200003, '0600')" "the upload's answer"
req POST /api/v1/vms/sb-a/exec '{"argv": ["sh", "-c", "stat -c %a /root/blob.bin; sha256sum /root/blob.bin"]}'
expect_eq "$(jget "$body" 'o["stdout"].split()[:2]')" "['600', '$(sha256sum "$tmp/blob" | cut -d' ' -f1)']" "the file in the guest"
curl -s -o "$tmp/back" -D "$tmp/hdrs" --unix-socket "$sock" 'http://qvmd/api/v1/vms/sb-a/files?path=/root/blob.bin' ||
  fail "download"
grep -qi '^content-type: application/octet-stream' "$tmp/hdrs" || fail "download's type: $(cat "$tmp/hdrs")"
contract_keep GET '/api/v1/vms/sb-a/files?path=/root/blob.bin' 200 application/octet-stream "$tmp/back"
expect_eq "$(sha256sum <"$tmp/back")" "$(sha256sum <"$tmp/blob")" "the round trip"
req GET "/api/v1/audit?vm=sb-a"
expect_eq "$(jget "$body" 'len([r for r in o if r["action"] == "cp"]) >= 2')" True "cp records of the upload and download"
# agent a on its sandbox's route; agent b gets 404 for both directions
status=$(curl -s -o "$tmp/back2" -w '%{http_code}' "${auth_a[@]}" "$tcp/api/v1/sandboxes/sb-a/files?path=/root/blob.bin")
expect_eq "$status $(sha256sum <"$tmp/back2")" "200 $(sha256sum <"$tmp/blob")" "agent a downloads"
contract_keep GET '/api/v1/sandboxes/sb-a/files?path=/root/blob.bin' "$status" application/octet-stream "$tmp/back2"
url_base=$tcp
req_ctype=application/octet-stream req PUT '/api/v1/sandboxes/sb-a/files?path=/root/by-agent' "@$tmp/blob" "${auth_a[@]}"
expect_status 200 "agent a uploads to its sandbox"
req GET '/api/v1/sandboxes/sb-a/files?path=/root/blob.bin' '' "${auth_b[@]}"
expect_status 404 "agent b downloads from agent a's sandbox"
req_ctype=application/octet-stream req PUT '/api/v1/sandboxes/sb-a/files?path=/root/x' "@$tmp/blob" "${auth_b[@]}"
expect_status 404 "agent b uploads into agent a's sandbox"
# ... refused before any of its body is taken (Expect: 100-continue): not
# stored first and refused after, which let one agent fill the upload
# slots and the disk with bodies for sandboxes not its own.
head -c $((32 << 20)) /dev/zero >"$tmp/big"
out=$(curl -s -o /dev/null -w '%{http_code} %{size_upload}' -T "$tmp/big" --expect100-timeout 30 \
  -H 'Content-Type: application/octet-stream' -H 'Expect: 100-continue' "${auth_b[@]}" \
  "$tcp/api/v1/sandboxes/sb-a/files?path=/root/x")
rm -f "$tmp/big"
[[ ${out% *} == 404 && ${out#* } -lt $((1 << 20)) ]] ||
  fail "agent b's upload into agent a's sandbox: '$out' (status, bytes sent): the body was taken"
req GET '/api/v1/vms/sb-a/files?path=/root/blob.bin' '' "${auth_a[@]}"
expect_status 404 "agent a on the vms route"
url_base=
for bad in 'relative/x' '' '/root/' '/tmp/a%01b'; do
  req GET "/api/v1/vms/sb-a/files?path=$bad"
  expect_status 422 "download path '$bad'"
  expect_eq "$(jget "$body" 'o["field"]')" path "the field of '$bad'"
done
req GET /api/v1/vms/sb-a/files
expect_status 422 "no path"
# These two are refused before the body is read, and qvmd then closes the
# connection: a body larger than the socket's buffer can still be in
# flight, and the client gets EPIPE instead of the answer (seen once in CI
# with the 200 kB blob; a lingering close is not done yet). A small body
# tests what they are about, the mode and the type.
printf 'small\n' >"$tmp/small"
req_ctype=application/octet-stream req PUT '/api/v1/vms/sb-a/files?path=/root/m&mode=999' "@$tmp/small"
expect_status 422 "a bad mode"
req_ctype=text/plain req PUT '/api/v1/vms/sb-a/files?path=/root/m' "@$tmp/small"
expect_status 415 "an upload that is not octet-stream"
req GET '/api/v1/vms/sb-a/files?path=/root/no-such-file'
expect_status 404 "a file that is not there"
head -c $((64 * 1024 * 1024 + 1)) /dev/zero >"$tmp/huge"
req_ctype=application/octet-stream req PUT '/api/v1/vms/sb-a/files?path=/root/huge' "@$tmp/huge"
expect_status 413 "an upload over 64 MiB"
rm -f "$tmp/huge"
[[ -z $(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'qvmd-upload-*' -newer "$tmp/blob" 2>/dev/null) ]] ||
  fail "an upload's temp directory was left behind"

# --- address and console ----------------------------------------------------------
req GET /api/v1/vms/sb-a/ip
expect_status 200 "ip"
jget "$body" 'o["source"]' >/dev/null || fail "ip has no source: $body"
req GET '/api/v1/vms/sb-a/console?tail=200000'
expect_status 200 "console"
expect_eq "$(jget "$body" '"qvm-mini: ready" in o["text"]')" True "the console has the boot"
req GET '/api/v1/vms/sb-a/console?tail=16'
expect_eq "$(jget "$body" 'o["truncated"], len(__import__("base64").b64decode(o["textBase64"])) if "textBase64" in o else len(o["text"].encode())')" \
  "(True, 16)" "the last 16 bytes"
for bad in 0 -1 x 1048577; do
  req GET "/api/v1/vms/sb-a/console?tail=$bad"
  expect_status 422 "tail=$bad"
done

# --- events -----------------------------------------------------------------------
url_base=$tcp
req GET '/api/v1/events?vm=sb-a' '' "${auth_b[@]}"
expect_status 404 "agent b's events of agent a's sandbox"
url_base=
curl -s -N --max-time 300 "${auth_a[@]}" "$tcp/api/v1/events?vm=sb-a" -D "$tmp/sse-hdrs" >"$tmp/sse-a" 2>/dev/null &
sse_a=$!
cleanup_hooks+=("kill $sse_a 2>/dev/null")
for _ in $(seq 50); do grep -q '^retry:' "$tmp/sse-a" && break; sleep 0.1; done
grep -qi '^content-type: text/event-stream' "$tmp/sse-hdrs" || fail "events' type: $(cat "$tmp/sse-hdrs")"
req POST /api/v1/vms/sb-a/stop '{"timeoutMs": 60000}'
expect_status 200 "stop sb-a"
for _ in $(seq 100); do grep -q '^event: qvm-exit' "$tmp/sse-a" && break; sleep 0.1; done
grep -q '^event: qvm-exit' "$tmp/sse-a" || fail "no qvm-exit event: $(cat "$tmp/sse-a")"
contract_keep GET '/api/v1/events?vm=sb-a' 200 text/event-stream "$tmp/sse-a"
python3 - "$tmp/sse-a" <<'EOF' || fail "the SSE frames: $(cat "$tmp/sse-a")"
import json, sys
frames = [f for f in open(sys.argv[1]).read().split("\n\n") if f.strip()]
events = []
for f in frames:
    lines = dict(l.split(": ", 1) for l in f.split("\n") if ": " in l and not l.startswith(":"))
    if "data" in lines:
        d = json.loads(lines["data"])
        assert d["vm"] == "sb-a", d
        assert lines["id"].startswith("sb-a."), lines
        events.append((lines["event"], d["event"]))
assert ("qvm-exit", "qvm-exit") in events, events
EOF
# Last-Event-ID: the first event's id brings back every one after it
first_id=$(sed -n 's/^id: //p' "$tmp/sse-a" | head -n 1)
n_after=$(($(grep -c '^id: ' "$tmp/sse-a") - 1))
curl -s -N --max-time 3 "${auth_a[@]}" -H "Last-Event-ID: $first_id" "$tcp/api/v1/events?vm=sb-a" >"$tmp/sse-r" 2>/dev/null || true
expect_eq "$(grep -c '^id: ' "$tmp/sse-r")" "$n_after" "events after Last-Event-ID"
grep -q '^event: qvm-exit' "$tmp/sse-r" || fail "the resumed stream has no qvm-exit"
req GET /api/v1/vms/sb-a/ip
expect_status 409 "ip of a stopped vm"
# agent b saw nothing of sb-a
grep -q 'sb-a' "$tmp/sse-b" && fail "agent b saw sb-a: $(cat "$tmp/sse-b")"
grep -q '^retry:' "$tmp/sse-b" || fail "agent b's stream did not start"
# a vm that is removed is an event in an operator's stream
curl -s -N --max-time 60 --unix-socket "$sock" http://qvmd/api/v1/events >"$tmp/sse-op" 2>/dev/null &
sse_op=$!
cleanup_hooks+=("kill $sse_op 2>/dev/null")
for _ in $(seq 50); do grep -q '^retry:' "$tmp/sse-op" && break; sleep 0.1; done
req DELETE /api/v1/vms/gold
expect_status 204 "delete gold"
for _ in $(seq 50); do grep -q '"vm-removed"' "$tmp/sse-op" && break; sleep 0.1; done
grep -q '^event: vm-removed' "$tmp/sse-op" || fail "no vm-removed event: $(cat "$tmp/sse-op")"
kill "$sse_a" "$sse_b" "$sse_op" 2>/dev/null || true
req GET /api/v1/vms
expect_status 200 "qvmd serves after the event streams ended"
# at most 64 event streams at once: the 65th is 503, and one is free again
# once a client has gone
sleep 1 # the streams killed above are noticed gone within 250 ms
sse_pids=()
for i in $(seq 64); do
  # one after the other, each up before the next (the socket's backlog is short)
  curl -s -N --max-time 120 --unix-socket "$sock" http://qvmd/api/v1/events >"$tmp/sse-$i" 2>&1 &
  sse_pids+=($!)
  for _ in $(seq 100); do grep -q '^retry:' "$tmp/sse-$i" && break; sleep 0.05; done
  grep -q '^retry:' "$tmp/sse-$i" || fail "event stream $i did not start"
done
cleanup_hooks+=("kill ${sse_pids[*]} 2>/dev/null")
req GET /api/v1/events '' --max-time 5
expect_status 503 "the 65th event stream"
kill "${sse_pids[@]}" 2>/dev/null || true
for _ in $(seq 50); do
  # a stream does not end: curl's time limit ends it, after its status
  status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 0.5 --unix-socket "$sock" \
    http://qvmd/api/v1/events || true)
  [[ $status == 200 ]] && break
  sleep 0.1
done
expect_eq "$status" 200 "an event stream after the others left"
url_base=$tcp
req DELETE /api/v1/sandboxes/sb-a '' "${auth_a[@]}"
expect_status 204 "agent a deletes sb-a"
log "PASS"
