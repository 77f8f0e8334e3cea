#!/usr/bin/env bash
# qvmd under socket activation (systemd-socket-activate, the protocol of
# qvmd.socket): it serves the UNIX and TCP sockets it is given through
# LISTEN_FDS (SO_PEERCRED on one, tokens on the other), leaves the socket
# file to whoever made it when it stops, and refuses a TCP socket without
# --tokens.
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"
command -v systemd-socket-activate >/dev/null || skip "needs systemd-socket-activate (systemd)"
sock=$tmp/act.sock
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tok=full-token-0123456789abcdef
printf '%s full\n' "$tok" >"$tmp/tokens"
chmod 600 "$tmp/tokens"

systemd-socket-activate -l "$sock" -l "127.0.0.1:$port" "$qvmd_bin" --tokens "$tmp/tokens" \
  2>"$tmp/qvmd.log" &
act=$!
qvmd_pids+=("$act")
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
[[ -S $sock ]] || fail "systemd-socket-activate made no socket: $(cat "$tmp/qvmd.log")"
req GET /api/v1/vms
expect_status 200 "list over the activated UNIX socket"
grep -q "serving on systemd's sockets" "$tmp/qvmd.log" || fail "qvmd did not take systemd's sockets: $(cat "$tmp/qvmd.log")"
url_base=http://127.0.0.1:$port
req GET /api/v1/vms
expect_status 401 "the activated TCP socket without a token"
req GET /api/v1/vms '' -H "Authorization: Bearer $tok"
expect_status 200 "the activated TCP socket with a token"
url_base=
kill "$act"
wait "$act" || fail "qvmd did not stop cleanly"
[[ -S $sock ]] || fail "qvmd removed a socket systemd made"

# A TCP socket without --tokens: refused at start.
rm -f "$sock"
systemd-socket-activate -l "$sock" -l "127.0.0.1:$port" "$qvmd_bin" 2>"$tmp/qvmd2.log" &
act=$!
qvmd_pids+=("$act")
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
curl -s -o /dev/null --max-time 10 --unix-socket "$sock" http://qvmd/api/v1/vms || true
set +e
wait "$act"
rc=$?
set -e
expect_eq "$rc" 1 "qvmd with an activated TCP socket and no tokens"
expect_match "$(cat "$tmp/qvmd2.log")" "needs --tokens" "the refusal"
log "PASS"
