#!/usr/bin/env bash
# The guest is hostile: it writes a qcow2 header into its own raw disk whose
# backing file is a host file (a sentinel here; /etc/shadow or /dev/sda in
# real life). Whoever later opens that disk with format probing (QEMU without
# format=, or qemu-img info at a new create) gives the guest that host file.
# qvm records the format once, at create, from the user's own image; QEMU
# always gets format=; a later create of the same disk refuses the header
# (it names the backing file and --allow-backing); a vm.json drive without
# a format is refused rather than probed.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v qemu-img >/dev/null || skip "needs qemu-img"

mini=$(mini_guest)
boot=(--kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0'
  --memory 256M --user root --no-wait-cloud-init --timeout 180)
sentinel=$tmp/host-secret
echo "host secret" >"$sentinel"
data=$tmp/data.img
truncate -s 16M "$data"
qemu-img create -q -f qcow2 -b "$sentinel" -F raw "$tmp/hdr.qcow2" 16M

qemu_pid() { sed -n 's/.*"qemu":{"pid":\([0-9]*\).*/\1/p' <<<"$(tr -d ' \n' <"$QVM_STATE_DIR/vms/$1/vm.json")"; }
# QEMU of vm $1 has not opened the sentinel and opened $2 as format $3.
assert_opened_as() {
  local pid
  pid=$(qemu_pid "$1")
  [[ -n $pid ]] || fail "no qemu pid recorded for '$1'"
  if ls -l "/proc/$pid/fd" | grep -qF "$sentinel"; then
    fail "QEMU of '$1' opened the host file the guest named ($sentinel)"
  fi
  # -blockdev JSON: the file node of $2, and a format node of driver $3 on it
  python3 - "/proc/$pid/cmdline" "$2" "$3" <<'PY' ||
import json, sys
args = open(sys.argv[1], "rb").read().split(b"\0")
nodes = [json.loads(args[i + 1]) for i, a in enumerate(args[:-1]) if a == b"-blockdev"]
files = {n["node-name"] for n in nodes if n.get("driver") == "file" and n.get("filename") == sys.argv[2]}
sys.exit(0 if any(n.get("file") in files and n.get("driver") == sys.argv[3] for n in nodes) else 1)
PY
    fail "QEMU of '$1' was not told format=$3 for $2: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
}
drive_format() {
  python3 - "$QVM_STATE_DIR/vms/$1/vm.json" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print([x.get("format") for x in d["spec"]["drives"] if x["path"] == sys.argv[2]][0])
PY
}

# 1. A vm on the user's raw data disk: detected once, recorded as raw.
out=$(qvm up g1 "${boot[@]}" --drive "$data" 2>&1) || fail "up g1: $out"
expect_eq "$(drive_format g1 "$data")" raw "recorded format of the data disk"
assert_opened_as g1 "$data" raw

# 2. The guest writes the header into its disk (the 16M virtio disk).
dev=$(qvm exec g1 -- sh -c 'for d in /sys/block/vd*; do [ "$(cat $d/size)" = 32768 ] && echo /dev/${d##*/}; done; true')
[[ $dev == /dev/vd* ]] || fail "cannot find the data disk in the guest: '$dev'"
qvm exec g1 -- dd of="$dev" conv=fsync <"$tmp/hdr.qcow2" >/dev/null 2>&1 || fail "guest dd"
qemu-img info -U "$data" | grep -qF "backing file: $sentinel" ||
  fail "the guest's header did not land: $(qemu-img info -U "$data")"

# 3. Restarted, QEMU still opens it as raw: the guest sees its own bytes.
qvm restart g1 >/dev/null 2>&1 || fail "restart g1"
assert_opened_as g1 "$data" raw
for _ in $(seq 60); do qvm exec g1 -- true >/dev/null 2>&1 && break; sleep 1; done
magic=$(qvm exec g1 -- sh -c "dd if=$dev bs=4 count=1 2>/dev/null | od -An -c" | tr -d ' ')
expect_match "$magic" '^QFI' "the guest reads the raw bytes it wrote"
qvm down g1 --rm >/dev/null || fail "down g1"

# 4. The disk is used again for a new vm: qvm must not take the guest's word
# for the format. Refused, naming the backing file and the way out.
set +e
out=$(qvm up g2 "${boot[@]}" --drive "$data" 2>&1)
rc=$?
set -e
if [[ $rc -eq 0 ]]; then
  assert_opened_as g2 "$data" raw
  fail "a disk whose header names a host file was accepted: $out"
fi
expect_match "$out" "backing file '$sentinel'" "the refusal names the backing file"
expect_match "$out" "--allow-backing" "the refusal names --allow-backing"
expect_match "$out" "format=raw" "the refusal says how to give the format"
[[ ! -e $QVM_STATE_DIR/vms/g2 ]] || fail "a refused create left vm g2"
set +e
out=$(qvm create g2i --image "$data" --no-cloud-init 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "--image of a disk whose header names a host file was accepted"
expect_match "$out" "--image-format raw" "the --image refusal says how to give the format"

# 5. With the format given, the same disk is raw again, for a drive and for
# an image (whose overlay pins the base's format in its own header).
out=$(qvm up g3 "${boot[@]}" --drive "$data,format=raw" 2>&1) || fail "up g3: $out"
assert_opened_as g3 "$data" raw
qvm down g3 --rm >/dev/null || fail "down g3"
out=$(qvm create g4 --image "$data" --image-format raw --no-cloud-init 2>&1) || fail "create g4: $out"
info=$(qemu-img info -U --output=json "$QVM_STATE_DIR/vms/g4/disk.qcow2")
expect_match "$info" '"backing-filename-format": "raw"' "overlay pins the base's format"
expect_match "$(cat "$QVM_STATE_DIR/vms/g4/vm.json")" '"image_format": ?"raw"' "recorded image format"

# 6. A drive in vm.json without a format (an old or edited file) is refused,
# never handed to QEMU to probe.
out=$(qvm create g5 "${boot[@]:0:6}" --no-cloud-init --drive "$data,format=raw" 2>&1) ||
  fail "create g5: $out"
python3 - "$QVM_STATE_DIR/vms/g5/vm.json" <<'PY'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
for x in d["spec"]["drives"]:
    x.pop("format", None)
json.dump(d, open(p, "w"))
PY
set +e
out=$(qvm start g5 2>&1)
rc=$?
set -e
if [[ $rc -eq 0 ]]; then
  pid=$(qemu_pid g5)
  ls -l "/proc/$pid/fd" | grep -qF "$sentinel" && fail "QEMU probed the drive and opened $sentinel"
  fail "a drive without a format was started: $out"
fi
expect_match "$out" "format" "the refusal names the missing format"
log "PASS"
