#!/usr/bin/env bash
# qvmd's TLS listener and socket group, with a real qvmd and no VM running:
# --socket-group makes the socket 0660 and that group's; a member (by a
# supplementary group or its primary one) is served with the group's scope
# (read: a write is 403), anyone else cannot connect; what a member does is
# audited with it as actor.peer. --tls-cert/--tls-key: HTTPS with the
# token, TLS 1.2+ only, no plain HTTP; a key others may read, or a cert
# without its key, is refused at start; beyond loopback (0.0.0.0, inside a
# network namespace of the test's own) TLS is enough, without it qvmd
# refuses unless --insecure.
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"
command -v openssl >/dev/null || skip "needs openssl (scripts/deps.sh test)"
command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
[[ $(id -u) == 0 ]] || skip "needs root (setpriv to another uid; a network namespace)"

run_rc() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}
G=4242 # a gid no name has: qvmd takes a number too
sdir=$(mktemp -d /tmp/qvmd-tls-XXXXXX)
cleanup_hooks+=("rm -rf -- '$sdir'")
chmod 755 "$sdir"

# --- the socket group ---------------------------------------------------------------
run_rc "$qvmd_bin" --socket "$sdir/x.sock" --socket-group 4242:write
expect_eq "$rc" 2 "a bad --socket-group scope: $out"
expect_match "$out" "GROUP:read" "the error says what it takes"
run_rc "$qvmd_bin" --socket "$sdir/x.sock" --socket-group no-such-group-qvm
expect_eq "$rc" 2 "an unknown group: $out"
run_rc "$qvmd_bin" --socket "$sdir/x.sock" --socket-group 0
expect_eq "$rc" 2 "root's group: $out"

sock=$sdir/g.sock
start_qvmd "$tmp/qvmd-g.log" --socket "$sock" --socket-group "$G:read"
expect_eq "$(stat -c '%a %g' "$sock")" "660 $G" "the socket's mode and group"
member() { setpriv --reuid=65534 --regid=65534 --groups "$G" -- "$@"; }
primary() { setpriv --reuid=65534 --regid="$G" --clear-groups -- "$@"; }
outsider() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
code=$(member curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" http://qvmd/api/v1/vms)
expect_eq "$code" 200 "a member by a supplementary group reads"
code=$(primary curl -s -o /dev/null -w '%{http_code}' --unix-socket "$sock" http://qvmd/api/v1/vms)
expect_eq "$code" 200 "a member by its primary group reads"
code=$(member curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  --data '{"name":"g1","kernel":"/x"}' --unix-socket "$sock" http://qvmd/api/v1/vms)
expect_eq "$code" 403 "a read-scoped member cannot create"
run_rc outsider curl -s -o /dev/null --unix-socket "$sock" http://qvmd/api/v1/vms
expect_eq "$rc" 7 "a non-member cannot connect to the 0660 socket"
chmod 666 "$sock" # a careless admin: SO_PEERCRED still refuses the outsider
out=$(outsider curl -s -w '\n%{http_code}' --unix-socket "$sock" http://qvmd/api/v1/vms) || true
expect_eq "${out##*$'\n'}" 403 "a non-member on a 0666 socket"
expect_match "$out" "socket group's members" "the refusal says who may"
# Lazy libraries (docs/ARCHITECTURE.md): a qvmd that served requests
# without TLS has mapped neither GnuTLS nor libcurl, libssh2 or OpenSSL.
lazy=true
[[ $(readelf -d "$qvmd_bin") != *libmicrohttpd* ]] || lazy=false
if $lazy; then
  maps=$({ grep -oE 'lib(gnutls|curl|ssh2|crypto|archive|nbd)\.so[.0-9]*' "/proc/$qvmd_pid/maps" || true; } |
    sort -u | tr '\n' ' ')
  expect_eq "$maps" "" "libraries an idle qvmd without TLS has mapped"
fi
kill "$qvmd_pid" && wait "$qvmd_pid" 2>/dev/null || true
[[ ! -e $sock ]] || fail "qvmd left its socket"

# Full scope: a member's create is audited with the member as the peer.
start_qvmd "$tmp/qvmd-g2.log" --socket "$sock" --socket-group "$G"
printf 'not a kernel' >"$sdir/vmlinuz"
chmod 644 "$sdir/vmlinuz"
# (curl as nobody writes the answer to its stdout: it may not write in $tmp)
out=$(member curl -s -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
  --data "{\"name\":\"g1\",\"kernel\":\"$sdir/vmlinuz\",\"memory\":64}" --unix-socket "$sock" \
  http://qvmd/api/v1/vms) || true
expect_eq "${out##*$'\n'}" 201 "a full-scope member creates: $out"
python3 - "$QVM_STATE_DIR" <<'PY' || fail "the audit record of the member's create"
import json, pathlib, sys
recs = [json.loads(l) for l in (pathlib.Path(sys.argv[1]) / "audit/audit.jsonl").read_text().splitlines()]
c = [r for r in recs if r["action"] == "create" and r["vm"] == "g1"]
assert len(c) == 1, recs
a = c[0]["actor"]
assert a["uid"] == 0 and a["peer"]["uid"] == 65534 and a["peer"]["user"] == "nobody", a
PY
qvm rm g1 >/dev/null || fail "rm g1"
kill "$qvmd_pid" && wait "$qvmd_pid" 2>/dev/null || true
log "socket group: member read/write by scope, outsider refused, actor.peer audited"

# --- TLS ----------------------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null ||
  fail "openssl could not make a test certificate"
chmod 600 "$tmp/key.pem"
tok=tls-token-0123456789abcdef
printf '%s full\n' "$tok" >"$tmp/tokens"
chmod 600 "$tmp/tokens"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tls=(--no-socket --listen "127.0.0.1:$port" --tokens "$tmp/tokens")

run_rc "$qvmd_bin" "${tls[@]}" --tls-cert "$tmp/cert.pem"
expect_eq "$rc" 2 "a cert without a key: $out"
chmod 644 "$tmp/key.pem"
run_rc "$qvmd_bin" "${tls[@]}" --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem"
expect_eq "$rc" 1 "a key others may read: $out"
expect_match "$out" "may be read by others" "the refusal says why"
chmod 600 "$tmp/key.pem"
ln -s "$tmp/key.pem" "$tmp/key-link.pem"
run_rc "$qvmd_bin" "${tls[@]}" --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key-link.pem"
expect_eq "$rc" 1 "a key through a symlink: $out"

start_qvmd "$tmp/qvmd-tls.log" "${tls[@]}" --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem"
url_base=https://127.0.0.1:$port
req GET /api/v1/vms '' --cacert "$tmp/cert.pem" -H "Authorization: Bearer $tok"
expect_status 200 "HTTPS with the token"
req GET /api/v1/vms '' --cacert "$tmp/cert.pem"
expect_status 401 "HTTPS without a token"
url_base=
run_rc curl -s -o /dev/null --max-time 5 -H "Authorization: Bearer $tok" "http://127.0.0.1:$port/api/v1/vms"
[[ $rc != 0 ]] || fail "plain HTTP on the TLS port was answered"
# TLS 1.1 with the client's own floor lowered (OpenSSL's SECLEVEL=0), so
# that only the server can refuse it.
run_rc openssl s_client -connect "127.0.0.1:$port" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' </dev/null
[[ $rc != 0 ]] || fail "TLS 1.1 was accepted: $out"
proto=$(openssl s_client -connect "127.0.0.1:$port" -CAfile "$tmp/cert.pem" </dev/null 2>/dev/null |
  sed -n 's/^ *Protocol *: *//p; s/^New, \(TLSv1\.[0-9]\).*/\1/p' | head -n 1)
expect_match "$proto" "TLSv1\.[23]" "the protocol openssl got"
if $lazy; then
  grep -q 'libgnutls\.so' "/proc/$qvmd_pid/maps" || fail "qvmd served TLS without GnuTLS mapped?"
fi
kill "$qvmd_pid" && wait "$qvmd_pid" 2>/dev/null || true

# Beyond loopback, in a namespace of our own (nothing leaves it).
ns=qvmtls$$
ip netns add "$ns" || fail "ip netns add"
cleanup_hooks+=("ip netns del '$ns' 2>/dev/null")
ip -n "$ns" link set lo up
any=(--no-socket --listen "0.0.0.0:$port" --tokens "$tmp/tokens")
run_rc ip netns exec "$ns" "$qvmd_bin" "${any[@]}"
expect_eq "$rc" 1 "0.0.0.0 without TLS: $out"
expect_match "$out" "give --tls-cert and --tls-key, or --insecure" "the refusal names the ways out"
ip netns exec "$ns" "$qvmd_bin" "${any[@]}" --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" \
  2>"$tmp/qvmd-any.log" &
qvmd_pid=$!
qvmd_pids+=("$qvmd_pid")
for _ in $(seq 100); do grep -q 'qvmd: serving' "$tmp/qvmd-any.log" && break; sleep 0.05; done
grep -q 'serving.*(TLS)' "$tmp/qvmd-any.log" || fail "qvmd on 0.0.0.0 with TLS: $(cat "$tmp/qvmd-any.log")"
code=$(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' --cacert "$tmp/cert.pem" \
  -H "Authorization: Bearer $tok" "https://127.0.0.1:$port/api/v1/vms")
expect_eq "$code" 200 "HTTPS on 0.0.0.0 inside the namespace"
kill "$qvmd_pid" && wait "$qvmd_pid" 2>/dev/null || true
log "TLS: HTTPS with tokens, no plain HTTP, no TLS < 1.2, key checks, beyond loopback with TLS"
log "PASS"
