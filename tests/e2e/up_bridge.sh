#!/usr/bin/env bash
# End to end, bridge mode with qvm's own DHCP, inside a private network
# namespace (issue 7, test 2): the host key is pinned before the first boot
# and is the one the guest's sshd presents; the same flow as user mode; and a
# guest whose host key was swapped is refused.
. "$(dirname "$0")/lib.sh"

image=$(cloud_image)
make_netns

# 1. create only: known_hosts holds the guest's key before it ever booted.
qvm create e2e-br --image "$image" --disk 3G --net bridge \
  --provision 'shell:hostname > /tmp/prov' >/dev/null || fail "create"
kh=$QVM_STATE_DIR/vms/e2e-br/known_hosts
[[ -s $kh ]] || fail "no known_hosts before the first boot"
[[ ! -s $QVM_STATE_DIR/vms/e2e-br/serial.log ]] || fail "the vm has already booted"
pinned=$(awk '$1 == "e2e-br" { print $2 " " $3 }' "$kh")
[[ $pinned == ssh-ed25519\ * ]] || fail "known_hosts does not pin an ed25519 key: $(cat "$kh")"
qvm rm e2e-br >/dev/null

# 2. up on the bridge: the lease phase happens, then SSH with the pinned key.
out=$(qvm up e2e-br --image "$image" --disk 3G --net bridge \
  --provision 'shell:hostname > /tmp/prov' 2>&1) || fail "qvm up failed: $out"
log "$out"
expect_match "$out" "^  lease +[0-9.]+ s +10\.77\.0\.[0-9]+" "lease phase with the address"
# The guest's sshd started once: qvm's seed set PasswordAuthentication before
# ssh.service, so cloud-init's set_passwords had nothing to restart it for;
# and up logged in on its banner probe's connection, so sshd saw no
# connection dropped before the key exchange (read before ssh-keyscan below
# makes one).
journal=$(qvm exec e2e-br -- sudo -n journalctl -b -o cat -u ssh.service) ||
  fail "the guest's journal: $journal"
expect_eq "$(grep -c '^Server listening on 0.0.0.0 port 22' <<<"$journal")" 1 "sshd started once"
if grep -qE 'kex_exchange_identification|Connection reset by' <<<"$journal"; then
  fail "sshd saw a connection dropped before the key exchange (up's probe): $journal"
fi
expect_eq "$(qvm exec e2e-br -- sudo -n sshd -T | grep -i '^passwordauthentication ')" \
  "passwordauthentication no" "password logins off"
if grep -q 'BEGIN SSH HOST KEY FINGERPRINTS' "$QVM_STATE_DIR/vms/e2e-br/serial.log"; then
  fail "cloud-init printed the host key fingerprints (the seed turns that off)"
fi
# create grew the image's partition to the 3G disk on the host: the guest's
# growpart had nothing to do (turned off by the seed), resizefs grew the
# file system.
root_bytes=$(qvm exec e2e-br -- df -B1 --output=size / | tail -1)
(( root_bytes > 2900 * 1024 * 1024 )) || fail "the root file system has $root_bytes bytes, not ~3G"
expect_match "$(qvm exec e2e-br -- sudo -n cat /var/log/cloud-init.log)" \
  "growpart disabled: mode=off" "the guest's growpart was off"
# The NIC has no IPv6 link-local address, whose duplicate detection
# systemd-networkd-wait-online (and so sshd) would wait for.
expect_eq "$(qvm exec e2e-br -- sh -c 'ip -6 -o addr show scope link | grep -v " lo " | wc -l')" 0 \
  "no IPv6 link-local address on the NIC"
ip=$(qvm ip e2e-br)
[[ $ip =~ ^10\.77\.0\.[0-9]+$ ]] || fail "qvm ip gave '$ip'"
pinned=$(awk '$1 == "e2e-br" { print $2 " " $3 }' "$QVM_STATE_DIR/vms/e2e-br/known_hosts")
# The key the guest's sshd presents, read with OpenSSH's own scanner.
presented=$(in_ns ssh-keyscan -t ed25519 "$ip" 2>/dev/null | awk '{ print $2 " " $3 }')
expect_eq "$presented" "$pinned" "the key sshd presents is the pinned one"
grep -q '"event":"DHCP_LEASE"' "$QVM_STATE_DIR/vms/e2e-br/events.jsonl" || fail "no DHCP_LEASE event"
expect_eq "$(qvm exec e2e-br -- cat /tmp/prov)" e2e-br "provision step on the bridge"
echo hello >"$tmp/f"
qvm cp "$tmp/f" e2e-br:/tmp/f && qvm cp e2e-br:/tmp/f "$tmp/f2" && cmp "$tmp/f" "$tmp/f2" ||
  fail "cp over the bridge"
pids=$(recorded_pids)
tap=$(qvm info --json e2e-br | sed -n 's/.*"tap": *"\([^"]*\)".*/\1/p')
qvm down e2e-br --rm >/dev/null || fail "down --rm"
assert_gone e2e-br "$pids"
if [[ -n $tap ]] && in_ns ip link show "$tap" >/dev/null 2>&1; then fail "tap $tap is left"; fi

# 3. a guest whose sshd presents another key than the one qvm pinned.
cat >"$tmp/swap.yaml" <<'YAML'
#cloud-config
bootcmd:
  - [sh, -c, "test -f /etc/ssh/other_ed25519 || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/other_ed25519"]
write_files:
  - path: /etc/ssh/sshd_config.d/00-other-key.conf
    content: "HostKey /etc/ssh/other_ed25519\n"
YAML
set +e
swap=$(qvm up e2e-swap --image "$image" --disk 3G --net bridge --cloud-config "$tmp/swap.yaml" \
  --timeout 400 2>&1)
rc=$?
set -e
log "$swap"
expect_eq "$rc" 8 "up against a swapped host key (exit code)"
expect_match "$swap" "phase 'ssh'" "the failing phase is named"
expect_match "$swap" "e2e-swap" "the vm is named"
expect_match "$swap" "SHA256:" "fingerprints are shown"
expect_match "$swap" "qvm ssh e2e-swap --repin" "the way past it is named"
qvm down e2e-swap --rm >/dev/null || fail "down --rm after the refused key"
log "PASS"
