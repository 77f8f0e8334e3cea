#!/usr/bin/env bash
# Other local users: under umask 022, every directory qvm makes under its
# state and runtime roots is 0700, the secrets (private keys, seed.iso with
# the guest's private host key, known_hosts, provision.log, vm.json, the
# disk) are 0600, and nothing is group- or world-writable. A state root that
# exists with looser modes is tightened; one owned by another user is
# refused. `qvm seed build -o` follows the umask unless the image holds a
# secret.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v qemu-img >/dev/null || skip "needs qemu-img"
umask 022

mini=$(mini_guest)
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0'
  --memory 256M --user root --no-wait-cloud-init --timeout 180)
mkdir -m 0755 "$QVM_STATE_DIR" "$QVM_RUNTIME_DIR"
chmod 0755 "$QVM_STATE_DIR" "$QVM_RUNTIME_DIR"

out=$(qvm up p1 "${boot[@]}" --provision 'shell:echo provisioned' 2>&1) || fail "up p1: $out"
truncate -s 8M "$tmp/base.raw"
out=$(qvm create p2 --image "$tmp/base.raw" --image-format raw 2>&1) || fail "create p2: $out"

bad=()
check() { # path, the mode it must have (or "" for: no group/other write)
  local m
  m=$(stat -c %a "$1")
  if [[ -n $2 ]]; then
    [[ $m == "$2" ]] || bad+=("$1 is $m, not $2")
  elif (((8#$m & 8#022) != 0)); then
    bad+=("$1 is $m: group or others may write it")
  fi
}
while IFS= read -r -d '' f; do
  if [[ -d $f ]]; then
    check "$f" 700
    continue
  fi
  case ${f##*/} in
  id_ed25519 | seed.iso | known_hosts | provision.log | vm.json | disk.qcow2 | serial.log | \
    events.jsonl | qemu.log | audit.jsonl) check "$f" 600 ;;
  *) check "$f" "" ;;
  esac
  # No file of a vm is readable by others, except the public key.
  [[ ${f##*/} == *.pub ]] || (((8#$(stat -c %a "$f") & 8#007) == 0)) ||
    bad+=("$f is $(stat -c %a "$f"): others may read it")
done < <(find "$QVM_STATE_DIR" "$QVM_RUNTIME_DIR" -print0)
for f in id_ed25519 seed.iso known_hosts provision.log; do
  [[ -e $QVM_STATE_DIR/vms/p1/$f ]] || bad+=("p1 has no $f (the test saw nothing)")
done
[[ -S $QVM_RUNTIME_DIR/p1/qmp.sock ]] || bad+=("p1 has no qmp.sock (the test saw nothing)")

# A state root another user owns could be changed under qvm: refused.
other=$tmp/other-state
mkdir -m 0700 "$other"
chown 65534:65534 "$other"
set +e
out=$(QVM_STATE_DIR=$other "$qvm_bin" create p3 --image "$tmp/base.raw" --image-format raw --no-cloud-init 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] || bad+=("a state root owned by uid 65534 was used")
grep -q "belongs to uid 65534" <<<"$out" || bad+=("the refusal does not name the owner: $out")

# A symlink another user planted where the state root goes (in /tmp, say)
# would point qvm at a directory of that user's choosing: refused; our own
# symlink (a state root moved to another disk) is followed.
mkdir -m 0700 "$tmp/mine"
ln -s "$tmp/mine" "$tmp/planted"
chown -h 65534:65534 "$tmp/planted"
set +e
out=$(QVM_STATE_DIR=$tmp/planted "$qvm_bin" create p4 --image "$tmp/base.raw" --image-format raw --no-cloud-init 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] || bad+=("a state root behind another user's symlink was used")
grep -q "symbolic link of uid 65534" <<<"$out" || bad+=("the refusal does not name the link: $out")
[[ ! -e $tmp/mine/vms ]] || bad+=("qvm wrote through another user's symlink")
ln -s "$tmp/mine" "$tmp/moved"
QVM_STATE_DIR=$tmp/moved "$qvm_bin" create p4 --image "$tmp/base.raw" --image-format raw \
  --no-cloud-init >/dev/null 2>&1 || bad+=("a state root behind our own symlink was refused")

# qvm seed build -o: the umask's mode for a plain image...
mode_is() { [[ $(stat -c %a "$1") == "$2" ]] || bad+=("$3: $1 is $(stat -c %a "$1"), not $2"); }
mkdir "$tmp/out"
"$qvm_bin" seed build -o "$tmp/out/plain.iso" --hostname x || fail "seed build plain"
mode_is "$tmp/out/plain.iso" 644 "plain seed under umask 022"
(umask 077 && "$qvm_bin" seed build -o "$tmp/out/u077.iso" --hostname x) || fail "seed build 077"
mode_is "$tmp/out/u077.iso" 600 "plain seed under umask 077"
# ... but 0600 for one that holds a private key, or an input others cannot read.
cat >"$tmp/hostkey.yaml" <<'YAML'
#cloud-config
ssh_keys:
  ed25519_private: |
    -----BEGIN OPENSSH PRIVATE KEY-----
    b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
    -----END OPENSSH PRIVATE KEY-----
YAML
chmod 0644 "$tmp/hostkey.yaml"
"$qvm_bin" seed build -o "$tmp/out/key.iso" --user-data "$tmp/hostkey.yaml" || fail "seed key"
mode_is "$tmp/out/key.iso" 600 "seed holding a private key"
printf '#cloud-config\npassword: hunter2\n' >"$tmp/private.yaml"
chmod 0600 "$tmp/private.yaml"
"$qvm_bin" seed build -o "$tmp/out/priv.iso" --user-data "$tmp/private.yaml" || fail "seed priv"
mode_is "$tmp/out/priv.iso" 600 "seed from a private input"
((${#bad[@]} == 0)) || fail "$(printf '\n  %s' "${bad[@]}")"
log "PASS"
