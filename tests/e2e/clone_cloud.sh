#!/usr/bin/env bash
# End to end, the cloud guest (issue 13, the clone bullet): a clone comes up
# with its own host key (pinned before its first boot, presented by its
# sshd), MAC, hostname and instance-id, with SRC's files; SRC's disk is
# byte-identical before and after (sha256).
# And `qvm authorize` into stopped vms' seeds (issue 16, "inject into a
# stopped one through its seed"): a key added to the clone before its first
# boot (cloud-init's runcmd, after it made the user) and one added to SRC
# after it booted (bootcmd, from the seed cloud-init reads again at the next
# boot) each let plain OpenSSH in, offering that key only.
. "$(dirname "$0")/lib.sh"

image=$(cloud_image)
vms=$QVM_STATE_DIR/vms
out=$(qvm up e2e-src --image "$image" --memory 1G --disk 3G 2>&1) || fail "qvm up failed: $out"
qvm exec e2e-src -- sh -c 'echo golden-file | sudo tee /var/tmp/golden >/dev/null && sync' ||
  fail "writing the golden file"
ident() {
  qvm exec "$1" -- sh -c 'hostname; sudo cat /var/lib/cloud/data/instance-id;
    sudo ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key | cut -d" " -f2;
    cat /sys/class/net/$(ls /sys/class/net | grep -v "^lo$" | head -n 1)/address'
}
src_id=$(ident e2e-src) || fail "identity of e2e-src"
qvm stop e2e-src --timeout 60 >/dev/null || fail "stop e2e-src"
before=$(sha256sum "$vms/e2e-src/disk.qcow2" | cut -d' ' -f1)
for k in k1 k2; do ssh-keygen -q -t ed25519 -N '' -C "e2e $k" -f "$tmp/$k" </dev/null; done
out=$(qvm authorize e2e-src "$tmp/k2.pub" --json) || fail "authorize e2e-src: $out"
expect_eq "$out" '{"name": "e2e-src", "keys": 1, "via": "seed"}' "authorize a booted, stopped vm"

out=$(qvm clone e2e-src e2e-c1 --json --quiet 2>"$tmp/clone.err") ||
  fail "clone: $out $(cat "$tmp/clone.err")"
out=$(qvm authorize e2e-c1 "$tmp/k1.pub") || fail "authorize e2e-c1: $out"
expect_match "$out" "in its seed" "authorize a vm that never booted"
out=$(qvm start e2e-c1 --timeout 120 2>&1) || fail "qvm start e2e-c1: $out"
# plain_ssh VM KEY CMD...: OpenSSH with qvm ssh-config's stanza minus the
# vm's own key, offering KEY only; retried (up to 5 minutes) while the
# guest boots and cloud-init's final stage (runcmd) may still be running
plain_ssh() {
  local vm=$1 key=$2 i
  shift 2
  qvm ssh-config "$vm" | grep -v '^ *IdentityFile' >"$tmp/$vm.ssh_config" || return 1
  for i in $(seq 150); do
    ssh -F "$tmp/$vm.ssh_config" -i "$key" -o IdentitiesOnly=yes -o BatchMode=yes \
      -o ConnectTimeout=20 "$vm" "$@" </dev/null 2>>"$tmp/ssh.log" && return 0
    sleep 2
  done
  return 1
}
expect_eq "$(plain_ssh e2e-c1 "$tmp/k1" echo k1-in)" k1-in "ssh with the key added before the first boot"
c1_id=$(ident e2e-c1) || fail "identity of e2e-c1"
log "src: $(tr '\n' ' ' <<<"$src_id")"
log "c1:  $(tr '\n' ' ' <<<"$c1_id")"
mapfile -t s <<<"$src_id"
mapfile -t c <<<"$c1_id"
expect_eq "${s[0]}" e2e-src "SRC's hostname"
expect_eq "${c[0]}" e2e-c1 "the clone's hostname"
uuid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spec"]["uuid"])' "$vms/e2e-c1/vm.json")
expect_eq "${c[1]}" "$uuid" "the clone's instance-id is its uuid"
[[ ${c[1]} != "${s[1]}" ]] || fail "the clone has SRC's instance-id"
[[ ${c[2]} != "${s[2]}" ]] || fail "the clone's sshd presents SRC's host key"
pinned=$(awk '{for (i = 1; i < NF; i++) if ($i == "ssh-ed25519") print $(i + 1)}' "$vms/e2e-c1/known_hosts")
expect_eq "$pinned" "${c[2]}" "the clone's sshd presents the key pinned before its first boot"
[[ ${c[3]} != "${s[3]}" ]] || fail "the clone has SRC's MAC"
expect_eq "${c[3]}" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spec"]["mac"])' "$vms/e2e-c1/vm.json")" \
  "the guest's MAC is the clone's"
expect_eq "$(qvm exec e2e-c1 -- cat /var/tmp/golden)" golden-file "the clone has SRC's files"
expect_eq "$(sha256sum "$vms/e2e-src/disk.qcow2" | cut -d' ' -f1)" "$before" "SRC's disk after the clone"
qvm down e2e-c1 --rm >/dev/null || fail "down --rm e2e-c1"

out=$(qvm start e2e-src --timeout 120 2>&1) || fail "qvm start e2e-src again: $out"
expect_eq "$(plain_ssh e2e-src "$tmp/k2" echo k2-in)" k2-in "ssh with the key added after a boot"
if ssh -F "$tmp/e2e-src.ssh_config" -i "$tmp/k1" -o IdentitiesOnly=yes \
  -o BatchMode=yes -o ConnectTimeout=20 e2e-src true </dev/null 2>>"$tmp/ssh.log"; then
  fail "a key never added to e2e-src logged in"
fi
log "ok"
