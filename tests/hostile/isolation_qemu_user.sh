#!/usr/bin/env bash
# A guest that takes QEMU over acts with QEMU's credentials. qvm as root must
# start QEMU so that it ends up unprivileged: not uid or gid 0, no groups
# but its own, no capabilities, no way back (NoNewPrivs), seccomp on; and
# code with exactly those credentials cannot read the VM's private key or
# write its vm.json, nor (as another VM's qemu) take this one's fds. The VM
# must still work after the drop: SSH through the forward, the serial log
# still written, a graceful powerdown over QMP.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"

# Only what qvm makes may protect the VM's files, not the test's temp dir.
chmod 755 "$tmp"
mini=$(mini_guest)
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0'
  --memory 256M --user root --no-wait-cloud-init --timeout 180)

out=$(qvm up victim "${boot[@]}" 2>&1) || fail "up: $out"
vmdir=$QVM_STATE_DIR/vms/victim
[[ -f $vmdir/id_ed25519 ]] || fail "no private key at $vmdir/id_ed25519"
pid=$(qvm info --json victim | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
[[ $pid =~ ^[0-9]+$ ]] || fail "no qemu pid in qvm info: $pid"
grep -q qemu-system "/proc/$pid/cmdline" || fail "pid $pid is not qemu"

field() { sed -n "s/^$1:[[:space:]]*//p" "/proc/$pid/status"; }
read -r ruid euid suid fsuid <<<"$(field Uid)"
read -r rgid egid sgid fsgid <<<"$(field Gid)"
groups=$(field Groups)
log "qemu $pid: Uid $ruid $euid $suid $fsuid, Gid $rgid $egid $sgid $fsgid, Groups '$groups'"
for id in "$ruid" "$euid" "$suid" "$fsuid" "$rgid" "$egid" "$sgid" "$fsgid"; do
  [[ $id != 0 ]] || fail "qemu keeps id 0 (Uid $ruid $euid $suid $fsuid, Gid $rgid $egid $sgid $fsgid)"
done
[[ $ruid == "$euid" && $euid == "$suid" ]] || fail "qemu's uids differ: $ruid $euid $suid"
for g in $groups; do
  [[ $g == "$rgid" ]] || fail "qemu keeps supplementary group $g (groups '$groups')"
done
expect_eq "$(field CapEff)" 0000000000000000 "qemu's effective capabilities"
expect_eq "$(field CapPrm)" 0000000000000000 "qemu's permitted capabilities"
expect_eq "$(field NoNewPrivs)" 1 "qemu's no_new_privs"
expect_eq "$(field Seccomp)" 2 "qemu's seccomp mode"
# The default user is the dedicated system user, which qvm made if needed.
expect_eq "$(id -u qvm-qemu 2>/dev/null)" "$ruid" "qemu's uid is qvm-qemu's"

# What a compromised qemu could do with its credentials.
as_qemu() { setpriv --reuid="$ruid" --regid="$rgid" --clear-groups --inh-caps=-all -- "$@"; }
as_qemu true || fail "setpriv cannot run as qemu's ids"
if as_qemu cat "$vmdir/id_ed25519" >/dev/null 2>&1; then fail "qemu's user can read the private key"; fi
if as_qemu sh -c ": >> '$vmdir/vm.json'" 2>/dev/null; then fail "qemu's user can write vm.json"; fi
if as_qemu ls "$vmdir" >/dev/null 2>&1; then fail "qemu's user can list the vm dir"; fi
# Another VM's qemu has the same uid: the drop leaves this one not dumpable,
# so it cannot take this qemu's fds (the disk) or read its memory.
if as_qemu ls "/proc/$pid/fd" >/dev/null 2>&1; then fail "qemu's user can list qemu's fds"; fi
if as_qemu head -c1 "/proc/$pid/environ" >/dev/null 2>&1; then
  fail "qemu's user can read qemu's process memory"
fi
if as_qemu ls "$QVM_RUNTIME_DIR/victim" >/dev/null 2>&1; then
  fail "qemu's user can list the vm's runtime dir (ctl.sock)"
fi

# The dropped qemu still serves the VM: SSH through the forward, QMP
# (graceful stop), and the serial log it opened before the drop.
expect_eq "$(qvm exec victim -- echo alive)" alive "ssh after the drop"
lines=$(wc -l <"$vmdir/serial.log")
qvm stop victim --timeout 60 >/dev/null || fail "graceful stop"
grep -q 'qvm-mini: powerdown' "$vmdir/serial.log" || fail "no powerdown marker in serial.log"
(($(wc -l <"$vmdir/serial.log") > lines)) || fail "serial.log was not written after the drop"
state=$(qvm info --json victim | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["state"])')
expect_eq "$state" stopped "state after a graceful stop"

# QVM_QEMU_USER names another user; one that does not exist is refused
# before anything starts, with the reason.
set +e
out=$(QVM_QEMU_USER=qvm-no-such-user-$$ "$qvm_bin" start victim 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "start with a missing QVM_QEMU_USER succeeded"
expect_match "$out" "does not exist" "missing QVM_QEMU_USER"
qvm rm --force victim >/dev/null
log "PASS"
