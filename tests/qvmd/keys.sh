#!/usr/bin/env bash
# qvm's SSH key store through qvmd (issue 16): Datamancy vm-provisioner's
# requests verbatim (POST /api/ssh-keys with name and comment: an RSA-4096
# pair; GET /api/ssh-keys; GET /api/ssh-keys/{name}/public;
# POST /api/vms/{vm}/ssh-keys/{key}) and /api/v1's (ed25519 by default), in
# $SSH_KEY_DIR as vm-provisioner keeps them: private keys 0600 in a 0700
# dir, never sent, never replaced, readable by OpenSSH; a key added to a
# running mini guest logs in with plain ssh, once however often it is
# added; bad names and types are 422 naming the field, a taken name 409, a
# stopped vm 409, unknown keys and vms 404.
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"
command -v ssh >/dev/null || skip "needs ssh"
command -v ssh-keygen >/dev/null || skip "needs ssh-keygen"

mini=$(mini_guest)
sock=$tmp/qvmd.sock
export SSH_KEY_DIR=$tmp/keys
start_qvmd "$tmp/qvmd.log" --socket "$sock"

# --- the store ---------------------------------------------------------------
req POST /api/v1/ssh-keys '{"name": "k1"}'
expect_status 201 "v1 generate"
expect_eq "$(jget "$body" 'o["type"], o["publicKey"].split()[0], "privateKeyPath" in o')" \
  "('ed25519', 'ssh-ed25519', False)" "an ed25519 key, no host paths in v1's answer"
expect_match "$(sed -n 's/^[Ll]ocation: *//p' "$tmp/hdrs" | tr -d '\r')" '^/api/v1/ssh-keys/k1$' "Location"
req POST /api/ssh-keys '{"name": "my-key", "comment": "My SSH Key"}'
expect_status 201 "vm-provisioner's generate, verbatim"
expect_eq "$(jget "$body" 'o["publicKey"].split()[0], o["publicKey"].split(None, 2)[2], o["privateKeyPath"], o["publicKeyPath"]')" \
  "('ssh-rsa', 'My SSH Key', '$SSH_KEY_DIR/my-key', '$SSH_KEY_DIR/my-key.pub')" "an RSA key where vm-provisioner says"
expect_eq "$(stat -c '%a' "$SSH_KEY_DIR" "$SSH_KEY_DIR/my-key" "$SSH_KEY_DIR/k1" | tr '\n' ' ')" "700 600 600 " \
  "the store 0700, private keys 0600"
# OpenSSH reads both private keys, and they match their public halves.
for k in my-key k1; do
  expect_eq "$(ssh-keygen -y -f "$SSH_KEY_DIR/$k" | cut -d' ' -f1,2)" "$(cut -d' ' -f1,2 "$SSH_KEY_DIR/$k.pub")" \
    "ssh-keygen -y of $k"
done
expect_eq "$(ssh-keygen -lf "$SSH_KEY_DIR/my-key.pub" | cut -d' ' -f1)" 4096 "4096 bits"
grep -rq "PRIVATE KEY" "$tmp/resp" && fail "a private key was sent"
req GET /api/ssh-keys
expect_status 200 "vm-provisioner's list"
expect_eq "$(jget "$body" '[k["name"] for k in o["keys"]]')" "['k1', 'my-key']" "the list"
req GET /api/v1/ssh-keys
expect_eq "$(jget "$body" '[(k["name"], k["type"]) for k in o]')" "[('k1', 'ed25519'), ('my-key', 'rsa-4096')]" "v1's list"
req GET /api/ssh-keys/my-key/public
expect_status 200 "vm-provisioner's get public"
expect_eq "$(jget "$body" 'o["publicKey"]')" "$(cat "$SSH_KEY_DIR/my-key.pub")" "the public key"
sum=$(sha256sum "$SSH_KEY_DIR/k1")
req POST /api/v1/ssh-keys '{"name": "k1", "type": "rsa-4096"}'
expect_status 409 "a taken name"
expect_eq "$(sha256sum "$SSH_KEY_DIR/k1")" "$sum" "the existing key is untouched"
for bad in '{"name": "../x"}|name' '{"name": "K1"}|name' '{"name": "k3", "type": "dsa"}|type' \
  '{"name": "k3", "bits": 1024}|bits' '{"name": "k3", "comment": "a\nb"}|comment' '{}|name'; do
  req POST /api/v1/ssh-keys "${bad%|*}"
  expect_status 422 "generate with ${bad%|*}"
  expect_eq "$(jget "$body" 'o.get("field")')" "${bad#*|}" "the field named for ${bad%|*}"
done
[[ ! -e $tmp/x && ! -e $SSH_KEY_DIR/k3 ]] || fail "a refused key was written"
req GET /api/v1/ssh-keys/k1
expect_status 200 "get k1"
expect_eq "$(jget "$body" 'o["name"], o["type"], o["publicKey"].split()[0]')" "('k1', 'ed25519', 'ssh-ed25519')" "k1's public part"
req GET /api/v1/ssh-keys/nosuch
expect_status 404 "an unknown key"

# --- adding a key to a vm ------------------------------------------------------
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
req POST /api/v1/vms "{\"name\": \"m1\", \"image\": \"$tmp/base.qcow2\", \"diskSize\": \"32M\", \"kernel\": \"$mini/vmlinuz\", \"initrd\": \"$mini/initrd.img\", \"append\": \"console=ttyS0\", \"memory\": \"256M\", \"user\": \"root\"}"
expect_status 201 "create m1"
# never started: the key goes into its seed, which the guest reads at boot
seed=$QVM_STATE_DIR/vms/m1/seed.iso
req POST /api/vms/m1/ssh-keys/my-key
expect_status 200 "vm-provisioner's inject into a stopped vm, verbatim"
expect_eq "$(jget "$body" 'o["added"]')" True "added"
expect_eq "$(isoinfo -J -x /qvm-authorized-keys -i "$seed")" "$(cat "$SSH_KEY_DIR/my-key.pub")" \
  "the seed carries the key"
ino=$(stat -c %i "$seed")
req POST /api/v1/vms/m1/ssh-keys/my-key
expect_status 200 "adding it to the seed again"
expect_eq "$(stat -c %i "$seed")" "$ino" "the seed is left as it was"
expect_eq "$(stat -c %a "$seed")" 600 "the seed's mode"
req POST /api/v1/vms/m1/start '{"timeoutMs": 120000}'
expect_status 200 "start m1"
for _ in $(seq 1800); do
  grep -q 'qvm-mini: ready' "$QVM_STATE_DIR/vms/m1/serial.log" 2>/dev/null && break
  sleep 0.1
done
port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["runtime"]["ssh_port"])' "$QVM_STATE_DIR/vms/m1/vm.json")
ossh() {
  ssh -F /dev/null -i "$SSH_KEY_DIR/${key:-my-key}" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o UserKnownHostsFile="$QVM_STATE_DIR/vms/m1/known_hosts" -o GlobalKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=yes -o HostKeyAlias=m1 -o ConnectTimeout=20 -p "$port" root@127.0.0.1 "$@" \
    </dev/null 2>>"$tmp/ssh.log"
}
expect_eq "$(ossh echo in)" in "plain ssh with the key the seed carried"
if key=k1 ossh true; then fail "k1 logged in before it was added"; fi
# running: the key goes in over SSH
req POST /api/vms/m1/ssh-keys/k1
expect_status 200 "inject into a running vm"
expect_eq "$(jget "$body" 'o["added"]')" True "added"
expect_eq "$(key=k1 ossh echo in)" in "plain ssh with the key added over SSH"
req POST /api/v1/vms/m1/ssh-keys/k1
expect_status 200 "adding it again"
expect_eq "$(ossh grep -c "$(cut -d' ' -f2 "$SSH_KEY_DIR/k1.pub")" /root/.ssh/authorized_keys)" 1 \
  "the key is there once"
expect_eq "$(ossh grep -c ssh-rsa /root/.ssh/authorized_keys)" 1 "the seed's key is there once"
req POST /api/v1/vms/m1/ssh-keys/nosuch
expect_status 404 "an unknown key"
req POST /api/v1/vms/nosuchvm/ssh-keys/my-key
expect_status 404 "an unknown vm"
req GET "/api/v1/audit?vm=m1"
expect_eq "$(jget "$body" '" ".join(r["details"].get("via", "?") for r in o if r["action"] == "ssh-key-add" and "error" not in r["details"])')" \
  "seed seed ssh ssh" "the audit log: how each key went in"
req DELETE "/api/v1/vms/m1?force=true"
expect_status 204 "delete m1"
log "PASS"
