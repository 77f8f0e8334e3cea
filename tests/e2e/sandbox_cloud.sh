#!/usr/bin/env bash
# End to end, sandboxes from an image (issue 14): qvm sandbox create --from
# IMAGE brings a cloud guest up on the isolated network (user-mode, restrict):
# it cannot reach a service on the host's loopback, while a sandbox on --net
# user reaches the same service (so the probe itself works); exec works in
# both; destroy leaves nothing. Certificates (issue 14): plain OpenSSH with a
# `qvm cert issue` certificate and a known_hosts holding only the line
# `qvm cert known-hosts` prints logs into the new sandbox with strict host key
# checking; another CA's certificate (made by ssh-keygen, the oracle) is
# refused; `qvm cert revoke` pushes the KRL to both running sandboxes and the
# same certificate is refused before it expires; the push replaced a guest
# symlink in the KRL's place instead of following it. A fork of the sandbox
# answers with a host certificate of its own name and gets the KRL too.
# qvm's own logins (exec, the pushes) are session certificates (an ECDSA key
# in memory), as the guest's sshd log shows; the sandbox's static key, which
# its seed still authorizes for SSH servers that ignore the drop-in, does not
# log in.
. "$(dirname "$0")/lib.sh"

image=$(cloud_image)
serve_dir "$tmp" # a service on the host's 127.0.0.1: $http_port
jget() { python3 -c 'import json,sys; o=json.loads(sys.argv[1]); print(eval("o"+sys.argv[2]))' "$1" "$2"; }
probe() { qvm exec "$1" -- timeout 10 bash -c "echo > /dev/tcp/10.0.2.2/$http_port"; }

json=$(qvm sandbox create --from "$image" --ttl 30m --agent e2e --label suite=cloud --json) ||
  fail "sandbox create (isolated): $json"
iso=$(jget "$json" '["name"]')
expect_match "$iso" '^sb-[0-9a-f]{8}$' "the generated name"
expect_eq "$(jget "$json" '["kind"]')" image "made from an image"
expect_eq "$(jget "$json" '["net"]')" isolated "the default network"
expect_eq "$(jget "$json" '["state"]')" running "the sandbox runs"
expect_eq "$(qvm exec "$iso" -- id -un)" qvm "exec in the isolated sandbox"
port=$(jget "$json" '["ssh_port"]')

json=$(qvm sandbox create sb-user --from "$image" --net user --ttl 30m --json) ||
  fail "sandbox create (user): $json"
expect_eq "$(jget "$json" '["net"]')" user "--net user"
probe sb-user || fail "a --net user sandbox does not reach the host's service (the probe is broken)"
if probe "$iso"; then fail "the isolated sandbox reached a service on the host's loopback"; fi
log "the isolated sandbox cannot reach 10.0.2.2:$http_port; the user one can"

# --- certificates: plain OpenSSH, only the host CA line, strict checking ---
qvm cert known-hosts >"$tmp/known_hosts" || fail "cert known-hosts"
ossh() {
  in_ns ssh -F /dev/null -i "$1" -o IdentitiesOnly=yes -o UserKnownHostsFile="$tmp/known_hosts" \
    -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -o ConnectTimeout=20 -p "$port" qvm@127.0.0.1 "${@:2}" </dev/null 2>>"$tmp/ssh.log"
}
out=$(qvm cert issue "$iso" --ttl 1m -o "$tmp/agent" --json) || fail "cert issue: $out"
serial=$(jget "$out" '["serial"]')
expect_eq "$(ossh "$tmp/agent" id -un)" qvm "plain ssh with a qvm certificate and the host CA line"
ssh-keygen -q -t ed25519 -N '' -C '' -f "$tmp/other_ca" && ssh-keygen -q -t ed25519 -N '' -f "$tmp/other" &&
  ssh-keygen -q -s "$tmp/other_ca" -I other -n qvm -V -1m:+5m "$tmp/other.pub" || fail "ssh-keygen"
if ossh "$tmp/other" true; then fail "a certificate of another CA logged in"; fi
# A fork of the sandbox (its memory, SRC's host key) gets a host certificate
# of its own name, and is among those the KRL goes to.
out=$(qvm fork "$iso" --prefix fk --json --quiet 2>"$tmp/fork.err") || fail "fork: $out $(cat "$tmp/fork.err")"
fk=$(jget "$out" '["forks"][0]["name"]')
fk_port=$(jget "$out" '["forks"][0]["ssh_port"]')
qvm cert known-hosts --pattern "$fk" >"$tmp/known_hosts_fk" || fail "cert known-hosts --pattern"
fssh() {
  in_ns ssh -F /dev/null -i "$tmp/agent" -o IdentitiesOnly=yes -o UserKnownHostsFile="$tmp/known_hosts_fk" \
    -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -o HostKeyAlias="$fk" -o ConnectTimeout=20 -p "$fk_port" qvm@127.0.0.1 "$@" </dev/null 2>>"$tmp/ssh.log"
}
expect_eq "$(fssh id -un)" qvm "plain ssh to the fork with HostKeyAlias=$fk and only the CA line for it"
# Hostile guest: a symlink where the KRL goes. The push must replace it, not
# write through it. (Its target is an empty file: sshd reads it as an empty
# key list. A target sshd cannot parse, /etc/shadow, makes sshd refuse every
# key, qvm's too: the push then fails and says so.)
qvm exec "$iso" -- sudo sh -c ': >/root/decoy && ln -sfn /root/decoy /etc/ssh/qvm_revoked.krl' ||
  fail "planting the symlink"
out=$(qvm cert revoke "$iso" "$serial" --json) || fail "cert revoke: $out"
expect_eq "$(jget "$out" '["revoked"]')" 1 "one certificate revoked"
expect_eq "$(jget "$out" '["pushed"]' | tr -d ' ')" \
  "$(python3 -c 'import sys; print([{"vm": n, "pushed": True, "error": None} for n in sorted(sys.argv[1:])])' "$iso" sb-user "$fk" | tr -d ' ')" \
  "the krl went to both running sandboxes and the fork"
if ossh "$tmp/agent" true; then fail "the revoked certificate still logs in"; fi
if fssh true; then fail "the revoked certificate still logs in to the fork"; fi
qvm rm --force "$fk" >/dev/null || fail "rm $fk"
krl_sum=$(sha256sum <"$QVM_STATE_DIR/ca/revoked.krl" | cut -d' ' -f1)
expect_eq "$(qvm exec "$iso" -- sudo sh -c 'test ! -L /etc/ssh/qvm_revoked.krl &&
  test ! -s /root/decoy && stat -c "%U:%G %a" /etc/ssh/qvm_revoked.krl &&
  sha256sum </etc/ssh/qvm_revoked.krl | cut -d" " -f1')" "root:root 644
$krl_sum" "the guest's krl: a root-owned 0644 file with the host's bytes, the symlink's target untouched"
log "certificates: login with only the CA line, another CA refused, revoked refused"

# --- qvm's own logins: a session certificate; the static key logs in nowhere ---
if ossh "$QVM_STATE_DIR/vms/$iso/id_ed25519" true; then
  fail "the sandbox's static key (its seed's authorized_keys) logged in"
fi
# Every login qvm made into the sandbox (the execs above, the KRL pushes) was
# an ECDSA certificate of qvm's session CA; none used a plain key.
sshd_log=$(qvm exec "$iso" -- sudo journalctl -u ssh -o cat --no-pager) || fail "reading sshd's log"
qvm_logins=$(grep -c "Accepted publickey for qvm from 10.0.2.2 port [0-9]* ssh2: ECDSA-CERT SHA256:[^ ]* ID qvm:[^:]*:$iso:[0-9]* " <<<"$sshd_log")
[[ $qvm_logins -ge 5 ]] || fail "qvm's logins with a session certificate: $qvm_logins, want >= 5:
$sshd_log"
if grep "Accepted publickey" <<<"$sshd_log" | grep -v -e "ECDSA-CERT" -e "ED25519-CERT"; then
  fail "a login without a certificate was accepted"
fi
audit=$(qvm audit "$iso" --json) || fail "qvm audit"
[[ $(grep -o '"kind":"session"' <<<"$audit" | wc -l) -ge $qvm_logins ]] ||
  fail "the audit log misses session certificates"
log "qvm's own logins: $qvm_logins session certificates, the static key refused"

out=$(qvm sandbox ls --agent e2e --json)
expect_eq "$(jget "$out" '[0]["name"]')" "$iso" "sandbox ls --agent e2e"
for n in "$iso" sb-user; do
  read -r pids <<<"$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["runtime"]; print(r["shim"]["pid"], r["qemu"]["pid"])' "$QVM_STATE_DIR/vms/$n/vm.json")"
  qvm sandbox destroy "$n" >/dev/null || fail "destroy $n"
  assert_gone "$n" "$pids"
done
log "PASS"
