#!/usr/bin/env bash
# End to end, the cloud guest (issue 13, the clone bullet): a clone comes up
# with its own host key (pinned before its first boot, presented by its
# sshd), MAC, hostname and instance-id, with SRC's files; SRC's disk is
# byte-identical before and after (sha256).
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

out=$(qvm clone e2e-src e2e-c1 --up --json --quiet 2>"$tmp/clone.err") ||
  fail "clone --up: $out $(cat "$tmp/clone.err")"
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
log "ok"
