#!/usr/bin/env bash
# End to end, user-mode networking (issue 7, tests 1 and 3): qvm up with a
# user cloud-config and all three provisioner kinds; exec, cp both ways;
# idempotent up; down --rm leaves nothing behind.
. "$(dirname "$0")/lib.sh"

image=$(cloud_image)
ssh-keygen -q -t ed25519 -N '' -C alice -f "$tmp/alice"
cat >"$tmp/user.yaml" <<YAML
#cloud-config
users:
  - name: alice
    shell: /bin/sh
    ssh_authorized_keys:
      - $(cat "$tmp/alice.pub")
YAML
cat >>"$tmp/user.yaml" <<'YAML'
write_files:
  - path: /etc/qvm-e2e/from-user.txt
    content: "written by the user's cloud-config\n"
    permissions: "0644"
runcmd:
  - [sh, -c, "echo user-runcmd-ran > /var/tmp/user-runcmd"]
YAML
printf '#!/bin/sh\nset -e\necho "script ran as $(id -un)" > /tmp/script-out\n' >"$tmp/setup.sh"
printf '#!/bin/sh\necho "user part script ran" > /var/tmp/user-script\n' >"$tmp/part.sh"
echo "uploaded by a file step" >"$tmp/payload.txt"
# Host folder mounts (issue 19): qvm-qemu must write the rw one.
mkdir -p "$tmp/share" "$tmp/ro-share"
chmod 0777 "$tmp/share"
echo "from the host" >"$tmp/share/host.txt"
echo "read only" >"$tmp/ro-share/ro.txt"
mounts=(--mount "$tmp/share:/mnt/share" --mount "$tmp/ro-share:/mnt/ro:ro")

out=$(qvm up e2e-user --image "$image" --memory 1G --disk 3G --cloud-config "$tmp/user.yaml" \
  --cloud-config "$tmp/part.sh" --provision 'shell:echo inline-step > /tmp/inline-out' \
  --provision "script:$tmp/setup.sh" \
  --provision "file:$tmp/payload.txt:/tmp/payload.txt" \
  --provision 'sudo:shell:id -un > /tmp/sudo-out' "${mounts[@]}" 2>&1) || fail "qvm up failed: $out"
log "$out"
for phase in started serial tcp ssh cloud-init provision; do
  expect_match "$out" "^  $phase +[0-9.]+ s" "phase $phase in up's output"
done
expect_match "$out" "^  lease +- " "lease phase skipped in user mode"
# cloud-init said done over SSH and qvm's readiness marker came on serial.
expect_match "$out" "^  cloud-init +[0-9.]+ s  done$" "cloud-init done with the marker seen"

# Every phase is also an event.
events=$QVM_STATE_DIR/vms/e2e-user/events.jsonl
for phase in started serial tcp ssh cloud-init provision; do
  grep -q "\"event\":\"UP_PHASE\",\"phase\":\"$phase\",\"status\":\"done\"" "$events" ||
    fail "no UP_PHASE $phase event in events.jsonl"
done

# The guest announced that sshd comes next (qvm's seed opens the readiness
# port in its last bootcmd): QEMU's VSERPORT_CHANGE is in events.jsonl, and
# up's tcp phase came after it, by the 50 ms probes it set off.
expect_match "$out" "^  tcp +[0-9.]+ s  announced$" "tcp phase reached through the announcement"
grep -q '"event":"VSERPORT_CHANGE".*"id":"qvm-ready0","open":true' "$events" ||
  grep -q '"event":"VSERPORT_CHANGE".*"open":true.*"id":"qvm-ready0"' "$events" ||
  fail "no VSERPORT_CHANGE open event for qvm-ready0 in events.jsonl"

# qvm's user (default qvm, passwordless sudo) alongside the user's cloud-config.
expect_eq "$(qvm exec e2e-user -- id -un)" qvm "login user"
expect_eq "$(qvm exec e2e-user -- sudo -n id -un)" root "passwordless sudo"
# With the user's cloud-config, cloud-init's set_passwords turns password
# logins off (the user's ssh_pwauth could have won the merge).
expect_eq "$(qvm exec e2e-user -- sudo -n sshd -T | grep -i '^passwordauthentication ')" \
  "passwordauthentication no" "password logins off"
expect_eq "$(qvm exec e2e-user -- cat /etc/qvm-e2e/from-user.txt)" \
  "written by the user's cloud-config" "user write_files"
expect_eq "$(qvm exec e2e-user -- cat /var/tmp/user-runcmd)" user-runcmd-ran "user runcmd"
expect_eq "$(qvm exec e2e-user -- cat /var/tmp/user-script)" "user part script ran" "user #! script part"
# The user's own users: entry lives alongside qvm's user and keys.
expect_eq "$(qvm exec e2e-user -- id -un alice)" alice "the user's extra user"
expect_eq "$(qvm exec e2e-user -- sudo -n cat /home/alice/.ssh/authorized_keys | awk '{ print $2 }')" \
  "$(awk '{ print $2 }' "$tmp/alice.pub")" "the user's authorized key for alice"
grep -q "$(awk '{ print $2 }' "$QVM_STATE_DIR/vms/e2e-user/id_ed25519.pub")" <<<"$(qvm exec e2e-user -- cat .ssh/authorized_keys)" ||
  fail "qvm's key is not in qvm's authorized_keys"

# Provisioners, in order, with sudo where asked.
expect_eq "$(qvm exec e2e-user -- cat /tmp/inline-out)" inline-step "inline step"
expect_eq "$(qvm exec e2e-user -- cat /tmp/script-out)" "script ran as qvm" "script step"
expect_eq "$(qvm exec e2e-user -- cat /tmp/payload.txt)" "uploaded by a file step" "file step"
expect_eq "$(qvm exec e2e-user -- cat /tmp/sudo-out)" root "sudo step"
grep -q "inline" "$QVM_STATE_DIR/vms/e2e-user/provision.log" || fail "provision.log has no step log"

# exec: separate streams and the exit code.
set +e
qvm exec e2e-user -- sh -c 'echo out; echo err >&2; exit 7' >"$tmp/o" 2>"$tmp/e"
rc=$?
set -e
expect_eq "$rc" 7 "exec exit code"
expect_eq "$(cat "$tmp/o")" out "exec stdout"
expect_eq "$(cat "$tmp/e")" err "exec stderr"

# cp both ways, a file and a directory tree, compared by sha256.
mkdir -p "$tmp/tree/sub"
head -c 3000000 /dev/urandom >"$tmp/tree/big.bin"
echo small >"$tmp/tree/sub/small.txt"
chmod 0751 "$tmp/tree/sub/small.txt"
qvm cp -r "$tmp/tree" e2e-user:/tmp/tree || fail "cp up"
expect_eq "$(qvm exec e2e-user -- sha256sum /tmp/tree/big.bin | cut -d' ' -f1)" \
  "$(sha256sum "$tmp/tree/big.bin" | cut -d' ' -f1)" "uploaded file hash"
expect_eq "$(qvm exec e2e-user -- stat -c %a /tmp/tree/sub/small.txt)" 751 "uploaded file mode"
qvm cp -r e2e-user:/tmp/tree "$tmp/back" || fail "cp down"
cmp "$tmp/tree/big.bin" "$tmp/back/big.bin" || fail "downloaded file differs"
cmp "$tmp/tree/sub/small.txt" "$tmp/back/sub/small.txt" || fail "downloaded small file differs"

# Mounts (issue 19): over virtiofs when virtiofsd is installed (Debian's
# cloud kernel has virtiofs, not 9p); qvm's seed added the fstab lines, QEMU
# gave the guest two vhost-user-fs devices, the guest mounted both, and the
# shim runs a virtiofsd per mount as qvm-qemu.
[[ -x ${QVM_VIRTIOFSD:-/usr/lib/qemu/virtiofsd} ]] ||
  skip "needs virtiofsd (qemu-system-common) for the mounts' data path"
expect_eq "$(qvm exec e2e-user -- grep -c '^qvm[01] /mnt/[a-z]* virtiofs nosuid,nodev,nofail' /etc/fstab)" 2 \
  "the seed's fstab lines"
expect_match "$(qvm exec e2e-user -- grep '^qvm1 ' /etc/fstab)" ",ro 0 0$" "the :ro fstab line"
expect_eq "$(qvm exec e2e-user -- sh -c 'grep -lx 0x105a /sys/bus/pci/devices/*/device | wc -l')" 2 \
  "two virtio-fs devices in the guest"
expect_match "$(qvm info e2e-user)" \
  "^mount: +$tmp/ro-share -> /mnt/ro \(virtiofs tag qvm1, read-only\)" "qvm info lists the mounts"
expect_eq "$(qvm exec e2e-user -- findmnt -no FSTYPE /mnt/share)" virtiofs "/mnt/share is mounted"
expect_eq "$(qvm exec e2e-user -- findmnt -no FSTYPE /mnt/ro)" virtiofs "/mnt/ro is mounted"
vfs_pids() {
  local p
  for p in $(pgrep -x virtiofsd); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null |
      grep -qxE "QVM_VIRTIOFS_SOURCE=$tmp/(share|ro-share)" && echo "$p"
  done
  true
}
for p in $(vfs_pids); do
  expect_eq "$(stat -c %U "/proc/$p")" qvm-qemu "virtiofsd $p runs as qvm-qemu"
done
[[ $(vfs_pids | wc -l) -ge 2 ]] || fail "no virtiofsd for each mount"
expect_eq "$(qvm exec e2e-user -- cat /mnt/share/host.txt)" "from the host" "host file in the guest"
expect_eq "$(qvm exec e2e-user -- cat /mnt/ro/ro.txt)" "read only" "the :ro mount in the guest"
qvm exec e2e-user -- sh -c 'echo from-guest > /mnt/share/guest.txt' || fail "guest write"
expect_eq "$(cat "$tmp/share/guest.txt")" from-guest "guest file on the host"
expect_eq "$(stat -c %U "$tmp/share/guest.txt")" qvm-qemu "the guest's file belongs to qvm-qemu"
echo later >"$tmp/share/later.txt"
expect_eq "$(qvm exec e2e-user -- cat /mnt/share/later.txt)" later "a host file made while it runs"
# The guest's root: no setuid bit, no symlink, no write to :ro.
qvm exec e2e-user -- sudo -n chmod 4755 /mnt/share/guest.txt 2>/dev/null &&
  fail "the guest's root set a setuid bit"
qvm exec e2e-user -- sudo -n ln -s /etc/shadow /mnt/share/link 2>/dev/null &&
  fail "the guest's root made a symlink"
[[ -z $(find "$tmp/share" \( -type l -o -perm /6000 \) -print) ]] || fail "a link or setuid file on the host"
qvm exec e2e-user -- sudo -n sh -c 'mount -o remount,rw /mnt/ro; echo x > /mnt/ro/new' 2>/dev/null &&
  fail "the guest's root wrote to the :ro mount"
[[ ! -e $tmp/ro-share/new ]] || fail "a file appeared in the :ro directory"

# up again with the same spec: nothing to do, exit 0; a changed spec: exit 4
# naming the difference.
again=$(qvm up e2e-user --image "$image" --memory 1G --disk 3G --cloud-config "$tmp/user.yaml" \
  --cloud-config "$tmp/part.sh" --provision 'shell:echo inline-step > /tmp/inline-out' \
  --provision "script:$tmp/setup.sh" \
  --provision "file:$tmp/payload.txt:/tmp/payload.txt" \
  --provision 'sudo:shell:id -un > /tmp/sudo-out' "${mounts[@]}" 2>&1) || fail "second up failed: $again"
expect_match "$again" "already up" "second up"
set +e
diff_out=$(qvm up e2e-user --image "$image" --memory 2G --disk 3G 2>&1)
rc=$?
set -e
expect_eq "$rc" 4 "up with a changed spec"
expect_match "$diff_out" "memory: was" "the difference is named"

pids=$(recorded_pids)
qvm down e2e-user --rm || fail "down --rm"
assert_gone e2e-user "$pids"
expect_eq "$(vfs_pids)" "" "no virtiofsd left after down --rm"
log "PASS"
