#!/usr/bin/env bash
# qvmd against hostile and careless clients, with a real qvmd on a temp UNIX
# socket and on 127.0.0.1, and no VM running: every error status is produced
# by a real request and is application/problem+json (400 bad JSON, 401, 403
# for a read token and for another Unix user, 404, 405, 409, 413, 415, 422,
# 429, 503); agent tokens get 404 for everything but their sandboxes; the
# token file and --listen are checked at start; a stale socket is replaced,
# a live one is not; 150 slow clients (half a header each) do not hold up
# 50 normal requests at once and are cut off by the timeout; malformed bodies, URLs and
# headers never crash it (run in the ASan build too).
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"

# The socket's dir is searchable by others (for the other-user check).
sdir=$(mktemp -d /tmp/qvmd-http-XXXXXX)
cleanup_hooks+=("rm -rf -- '$sdir'")
chmod 755 "$sdir"
sock=$sdir/qvmd.sock
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
full=full-token-0123456789abcdef
readtok=read-token-0123456789abcdef
agent_a=agent-a-token-0123456789abc
ratetok=rate-token-0123456789abcdef
printf '# tokens\n%s full\n%s read\n%s agent:agent-a\n\n%s full  # for the rate limit\n' \
  "$full" "$readtok" "$agent_a" "$ratetok" >"$tmp/tokens"
chmod 600 "$tmp/tokens"

# --- refusals at start ---------------------------------------------------------
run_rc() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}
chmod 644 "$tmp/tokens"
run_rc timeout 10 "$qvmd_bin" --socket "$tmp/x.sock" --listen "127.0.0.1:$port" --tokens "$tmp/tokens"
expect_eq "$rc" 1 "a token file of mode 0644"
expect_match "$out" "0600" "the mode is named"
chmod 600 "$tmp/tokens"
chown 65534 "$tmp/tokens"
run_rc timeout 10 "$qvmd_bin" --socket "$tmp/x.sock" --listen "127.0.0.1:$port" --tokens "$tmp/tokens"
expect_eq "$rc" 1 "a token file another user owns"
expect_match "$out" "owned by uid 65534" "the owner is named"
chown 0 "$tmp/tokens"
printf 'short full\n' >"$tmp/badtokens"
chmod 600 "$tmp/badtokens"
run_rc timeout 10 "$qvmd_bin" --socket "$tmp/x.sock" --listen "127.0.0.1:$port" --tokens "$tmp/badtokens"
expect_eq "$rc" 1 "a token that is too short"
expect_match "$out" "badtokens:1" "the line is named"
printf '%s admin\n' "$full" >"$tmp/badtokens"
run_rc timeout 10 "$qvmd_bin" --socket "$tmp/x.sock" --listen "127.0.0.1:$port" --tokens "$tmp/badtokens"
expect_eq "$rc" 1 "an unknown scope"
run_rc timeout 10 "$qvmd_bin" --socket "$tmp/x.sock" --listen "0.0.0.0:$port" --tokens "$tmp/tokens"
expect_eq "$rc" 1 "TCP beyond loopback without --insecure"
expect_match "$out" "--insecure" "the way out is named"
run_rc timeout 10 "$qvmd_bin" --socket "$tmp/x.sock" --listen "127.0.0.1:$port"
expect_eq "$rc" 1 "TCP without tokens"
run_rc timeout 10 "$qvmd_bin" --timeout 0
expect_eq "$rc" 2 "--timeout 0"
[[ ! -e $tmp/x.sock ]] || fail "a refused start left its socket"

# A stale socket (nothing answers) is replaced.
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$sock"
[[ -S $sock ]] || fail "no stale socket made"
start_qvmd "$tmp/qvmd.log" --socket "$sock" --listen "127.0.0.1:$port" --tokens "$tmp/tokens" \
  --timeout 5 --max-work 2
main_pid=$qvmd_pid
expect_eq "$(stat -c %a "$sock")" 600 "the socket's mode"
# A live one is not.
run_rc timeout 10 "$qvmd_bin" --socket "$sock"
expect_eq "$rc" 1 "a second qvmd on a live socket"
expect_match "$out" "another qvmd answers" "the refusal"
[[ -S $sock ]] || fail "the refused second qvmd removed the live socket"

# --- statuses over the UNIX socket (the caller is root: full access) -----------
req GET /api/v1/vms
expect_status 200 "list"
expect_eq "$body" "[]" "no vms yet"
expect_eq "$ctype" application/json "list's content type"
req POST /api/v1/vms '{"name": "a",'
expect_status 400 "truncated JSON"
req POST /api/v1/vms '{"name": "a"} x'
expect_status 400 "data after the JSON"
req POST /api/v1/vms '["name"]'
expect_status 400 "an array body"
req POST /api/v1/vms "$(printf '{"name": "\xff\xfe"}')"
expect_status 400 "a body that is not UTF-8"
req POST /api/v1/vms "$(python3 -c 'print("["*100000)')"
expect_status 400 "100000 nested arrays"
req_ctype=text/plain req POST /api/v1/vms '{"name": "a"}'
expect_status 415 "a text/plain body"
req_ctype=application/jsonx req POST /api/v1/vms '{"name": "a"}'
expect_status 415 "application/jsonx"
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" -H 'Content-Type:' \
  --data-binary '{"name": "a"}' http://qvmd/api/v1/vms)
expect_eq "$code" 415 "a body without a content type"
head -c 2000000 /dev/zero | tr '\0' ' ' >"$tmp/big"
req POST /api/v1/vms "@$tmp/big"
expect_status 413 "a 2 MB body with a Content-Length"
req POST /api/v1/vms "@$tmp/big" -H 'Transfer-Encoding: chunked'
expect_status 413 "a 2 MB chunked body"
# An endless chunked body: the connection is dropped (past 16 MiB), qvmd lives on.
set +e
head -c 100000000 /dev/zero | curl -s -o /dev/null -w '%{http_code}' --max-time 60 \
  --unix-socket "$sock" -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
  --data-binary @- http://qvmd/api/v1/vms >"$tmp/endless.code"
set -e
# (curl shows 100 when the only answer was "100 Continue")
[[ $(cat "$tmp/endless.code") =~ ^(000|100)$ ]] || fail "a 100 MB chunked body: $(cat "$tmp/endless.code"), expected a dropped connection"
req POST /api/v1/vms '{"name": "a", "kernel": "/x", "memory": "lots"}'
expect_status 422 "memory 'lots'"
expect_eq "$(jget "$body" 'o["field"]')" memory "the field is named"
req POST /api/v1/vms '{"name": "Bad_Name", "kernel": "/x"}'
expect_status 422 "a bad name"
expect_eq "$(jget "$body" 'o["field"]')" name "the name is named"
req POST /api/v1/vms '{"name": "a\u0000b", "kernel": "/x"}'
expect_status 422 "a name with a NUL"
req POST /api/v1/vms "{\"name\": \"$(printf 'a%.0s' {1..70})\", \"kernel\": \"/x\"}"
expect_status 422 "a 70-byte name"
req POST /api/v1/vms '{"name": "a", "kernel": "/x", "vcpus": 1.5}'
expect_status 422 "vcpus 1.5"
expect_eq "$(jget "$body" 'o["field"]')" vcpus "vcpus is named"
req POST /api/v1/vms '{"name": "a", "kernel": "/x", "colour": "red"}'
expect_status 422 "an unknown member"
expect_eq "$(jget "$body" 'o["field"]')" colour "the unknown member is named"
req POST /api/v1/vms '{"name": "a"}'
expect_status 422 "no image"
req POST /api/v1/vms '{"name": "a", "imageUrl": "file:///etc/passwd"}'
expect_status 422 "a file:// imageUrl"
req GET /api/v1/vms/nope
expect_status 404 "an unknown vm"
expect_eq "$(jget "$body" 'o["code"]')" ENOTFOUND "404's code"
req GET /api/v1/vms/..%2F..%2Fetc
expect_status 404 "a path name with ../ (no route has that many segments)"
req GET /api/v1/vms/..
expect_status 422 "the vm name '..'"
req GET /api/v1/vms/a%00b
expect_status 422 "a vm name with a NUL"
req GET /api/v1/nothing
expect_status 404 "an unknown path"
req PUT /api/v1/vms
expect_status 405 "PUT on /vms"
grep -qi '^Allow: GET, POST' "$tmp/hdrs" || fail "405 without 'Allow: GET, POST'"
req GET "/api/v1/audit?sinceUs=yesterday"
expect_status 422 "audit with a bad sinceUs"

# A vm that needs no QEMU to be created: a kernel file and no cloud-init.
printf 'not a kernel\n' >"$tmp/vmlinuz"
req POST /api/v1/vms "{\"name\": \"v1\", \"kernel\": \"$tmp/vmlinuz\", \"noCloudInit\": true, \"memory\": 128, \"labels\": {\"team\": \"x\"}}"
expect_status 201 "create v1"
expect_eq "$(jget "$body" 'o["name"], o["state"], o["memoryMib"]')" "('v1', 'created', 128)" "v1"
grep -qi '^Location: /api/v1/vms/v1' "$tmp/hdrs" || fail "201 without its Location"
req POST /api/v1/vms "{\"name\": \"v1\", \"kernel\": \"$tmp/vmlinuz\", \"noCloudInit\": true}"
expect_status 409 "create of a taken name"
expect_eq "$(jget "$body" 'o["code"]')" EEXISTS "409's code"
req POST /api/v1/vms/v1/exec '{"argv": ["true"]}'
expect_status 409 "exec in a vm that does not run"
req POST /api/v1/vms/v1/exec '{"argv": []}'
expect_status 422 "exec with an empty argv"
req POST /api/v1/vms/v1/exec '{"argv": ["a", 1]}'
expect_status 422 "exec with a number in argv"
req GET /api/v1/vms/v1
expect_status 200 "get v1"
expect_eq "$(jget "$body" 'o["labels"]')" "{'team': 'x'}" "v1's labels"
req GET /api/v1/sandboxes/v1
expect_status 404 "a vm that is no sandbox, as a sandbox"
req POST /api/v1/sandboxes '{"from": "v1", "checkpointEach": "yes"}'
expect_status 422 "a sandbox with checkpointEach not a boolean"
expect_eq "$(jget "$body" 'o["field"]')" checkpointEach "the 422 names checkpointEach"
req GET "/api/v1/audit?vm=v1"
expect_status 200 "audit of v1"
expect_eq "$(jget "$body" 'o[0]["action"]')" create "v1's first audit record"

# 503: a qvmd whose QEMU is missing answers start with it.
QVM_QEMU=/nonexistent/qemu start_qvmd "$tmp/qvmd2.log" --socket "$tmp/q2.sock"
sock_main=$sock
sock=$tmp/q2.sock
req POST /api/v1/vms/v1/start
expect_status 503 "start without QEMU"
expect_eq "$(jget "$body" 'o["class"]')" QemuMissing "503's class"
sock=$sock_main

# Datamancy vm-provisioner's routes: the same handlers, unknown members ignored;
# an imageUrl libqvm cannot verify is 422 with its class, and nothing is made.
req GET /api/vms
expect_status 200 "GET /api/vms"
expect_eq "$(jget "$body" '[v["name"] for v in o]')" "['v1']" "GET /api/vms lists v1"
req POST /api/vms '{"name": "dm1", "imageUrl": "http://127.0.0.1:1/debian.qcow2", "memory": 512, "vcpus": 1, "diskSize": 2, "sshKeys": ["x"]}'
expect_status 422 "POST /api/vms with an unverifiable imageUrl"
expect_eq "$(jget "$body" 'o["class"], o["field"]')" "('ImageUnverified', 'imageUrl')" "its class and field"
req GET /api/vms/dm1
expect_status 404 "nothing was made"

# --- TCP: tokens and scopes -----------------------------------------------------
url_base=http://127.0.0.1:$port
req GET /api/v1/vms
expect_status 401 "no token"
grep -qi '^WWW-Authenticate: Bearer' "$tmp/hdrs" || fail "401 without WWW-Authenticate"
req GET /api/v1/vms '' -H "Authorization: Bearer ${full}x"
expect_status 401 "a wrong token"
req GET /api/v1/vms '' -H "Authorization: Basic $full"
expect_status 401 "not a bearer token"
req GET /api/v1/vms '' -H "Authorization: Bearer $full"
expect_status 200 "the full token lists"
req GET /api/v1/vms '' -H "Authorization: Bearer $readtok"
expect_status 200 "the read token lists"
req DELETE /api/v1/vms/v1 '' -H "Authorization: Bearer $readtok"
expect_status 403 "the read token deletes"
req POST /api/v1/vms/v1/start '' -H "Authorization: Bearer $readtok"
expect_status 403 "the read token starts"
# An agent token: 404 for everything but its own sandboxes.
for p in /api/v1/vms /api/v1/vms/v1 /api/v1/audit /api/v1/vms/nope; do
  req GET "$p" '' -H "Authorization: Bearer $agent_a"
  expect_status 404 "agent token: GET $p"
done
req DELETE /api/v1/vms/v1 '' -H "Authorization: Bearer $agent_a"
expect_status 404 "agent token: DELETE v1"
req GET /api/v1/sandboxes/v1 '' -H "Authorization: Bearer $agent_a"
expect_status 404 "agent token: v1 as a sandbox"
req POST /api/v1/sandboxes/v1/exec '{"argv": ["true"]}' -H "Authorization: Bearer $agent_a"
expect_status 404 "agent token: exec in v1"
req GET /api/v1/sandboxes '' -H "Authorization: Bearer $agent_a"
expect_status 200 "agent token: its sandboxes"
expect_eq "$body" "[]" "agent token: no sandbox"
req POST /api/v1/sandboxes '{"from": "v1", "agent": "agent-b"}' -H "Authorization: Bearer $agent_a"
expect_status 422 "agent token: a sandbox for another agent"
req GET /api/v1/openapi.json '' -H "Authorization: Bearer $agent_a"
expect_status 200 "agent token: the OpenAPI document"
# 429: one token over its rate (20 a second); the others are not held up.
n429=$(python3 - "$port" "$ratetok" <<'PY'
import http.client, json, sys
port, tok = int(sys.argv[1]), sys.argv[2]
n = 0
for _ in range(60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/api/v1/sandboxes", headers={"Authorization": "Bearer " + tok})
    r = c.getresponse()
    body = r.read()
    if r.status == 429:
        n += 1
        assert r.getheader("Retry-After") == "1", r.getheaders()
        assert r.getheader("Content-Type") == "application/problem+json"
        assert json.loads(body)["status"] == 429
    else:
        assert r.status == 200, r.status
    c.close()
print(n)
PY
) || fail "the rate limit check"
((n429 > 0)) || fail "60 quick requests of one token: no 429"
req GET /api/v1/vms '' -H "Authorization: Bearer $full"
expect_status 200 "another token while one is over its rate"
log "429 for $n429 of 60 quick requests"
url_base=

# --- another Unix user ------------------------------------------------------------
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
set +e
as_nobody curl -s -o /dev/null --unix-socket "$sock" http://qvmd/api/v1/vms
rc=$?
set -e
expect_eq "$rc" 7 "another user cannot connect to the 0600 socket"
chmod 666 "$sock" # as a careless admin would: SO_PEERCRED still refuses
out=$(as_nobody curl -s -w '\n%{http_code}' --unix-socket "$sock" http://qvmd/api/v1/vms) ||
  fail "another user on a 0666 socket: curl failed"
expect_eq "${out##*$'\n'}" 403 "another user on a 0666 socket"
expect_match "$out" "uid 65534 may not" "the refusal names the uid"
code=$(as_nobody curl -s -o /dev/null -w '%{http_code}' -X DELETE --unix-socket "$sock" http://qvmd/api/v1/vms/v1)
expect_eq "$code" 403 "another user deletes"
chmod 600 "$sock"

# --- slow clients -------------------------------------------------------------------
python3 - "$sock" <<'PY' || fail "slow clients"
import socket, sys, threading, time
path = sys.argv[1]

def get(results, i):
    t = time.monotonic()
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    try:
        s.connect(path)
        s.sendall(b"GET /api/v1/vms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        results[i] = (data.split(b" ", 2)[1], time.monotonic() - t)
    except OSError as e:
        results[i] = (repr(e).encode(), time.monotonic() - t)
    finally:
        s.close()

# 150 slow clients (half a header each), then 50 normal ones at once: 200
# connections; every normal one is answered within 4 s, before qvmd's
# timeout (5 s) could have freed anything the slow ones held.
slow = []
for i in range(150):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"GET /api/v1/vms HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    slow.append(s)
results = [None] * 50
threads = [threading.Thread(target=get, args=(results, i)) for i in range(50)]
for t in threads: t.start()
for t in threads: t.join()
bad = [r for r in results if r[0] != b"200"]
assert not bad, f"normal requests beside 150 slow clients: {bad[:3]}"
worst = max(r[1] for r in results)
assert worst < 4, f"the slowest of 50 normal requests beside 150 slow clients took {worst:.2f} s"
print(f"50 normal requests beside 150 slow clients: slowest {worst*1000:.0f} ms", file=sys.stderr)
# qvmd's timeout is 5 s: by 8 s every slow client is cut off.
time.sleep(8)
for s in slow:
    s.settimeout(2)
    try:
        data = s.recv(4096)
    except (ConnectionResetError, socket.timeout) as e:
        data = b"" if isinstance(e, ConnectionResetError) else None
    assert data is not None, "a slow client is still connected after the timeout"
    assert data == b"" or data.startswith(b"HTTP/1.1 4"), data[:80]
PY

# --- malformed URLs and headers; then qvmd still serves ---------------------------
long=$(head -c 100000 /dev/zero | tr '\0' a)
req GET "/api/v1/vms/$long"
[[ $status == 000 || $status -ge 400 ]] || fail "a 100 KB URL: $status"
hdrs=()
for i in $(seq 500); do hdrs+=(-H "X-H$i: $long"); done
req GET /api/v1/vms '' "${hdrs[@]:0:40}"
[[ $status == 000 || $status -ge 400 ]] || fail "40 headers of 100 KB: $status"
printf 'GARBAGE\r\n\r\n\x00\xff' | python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read()); s.settimeout(5); print(s.recv(100)[:12])' "$sock" >/dev/null
kill -0 "$main_pid" || fail "qvmd died"
req GET /api/v1/vms
expect_status 200 "qvmd still serves"

# --- 503: more blocking work than --max-work -------------------------------------
# Three deletes of a vm whose lock is held: two wait for it (--max-work 2), the
# third is refused at once.
exec {lockfd}>"$QVM_STATE_DIR/vms/v1/lock"
flock "$lockfd"
waiters=()
for i in 1 2; do
  curl -s -o "$tmp/del$i" -w '%{http_code}' --max-time 60 -X DELETE --unix-socket "$sock" \
    http://qvmd/api/v1/vms/v1 >"$tmp/del$i.code" {lockfd}>&- &
  waiters+=($!)
done
sleep 1
req DELETE /api/v1/vms/v1
expect_status 503 "a third blocking operation beside two"
grep -qi '^Retry-After:' "$tmp/hdrs" || fail "503 without Retry-After"
exec {lockfd}>&-
wait "${waiters[@]}"
codes=$(sort "$tmp/del1.code" "$tmp/del2.code" | tr '\n' ' ')
[[ $codes == "204 404 " ]] || fail "the two waiting deletes: $codes, expected 204 and 404 (one removed v1, the other found it gone): $(cat "$tmp/del1" "$tmp/del2")"
req GET /api/v1/vms/v1
expect_status 404 "v1 after the waiting deletes"

kill "$main_pid"
wait "$main_pid" || fail "qvmd did not exit cleanly on SIGTERM"
[[ ! -e $sock ]] || fail "qvmd left its socket"
log "PASS"
