#!/usr/bin/env bash
# Datamancy vm-provisioner's VM requests verbatim against qvmd (issue 16):
# POST /api/vms with name, memory, vcpus, diskSize and an imageUrl served
# by a local HTTP server (127.0.0.1) with a SHA256SUMS beside the image, as
# cloud image sites have; start; the guest boots from that disk (the mini
# guest's kernel behind syslinux); stop; get; delete. The checksum file is
# found by itself on these routes, and holds: one that lists a wrong digest
# fails the create with nothing made; a directory without one is 422
# ImageUnverified. /api/v1 takes imageSha256 or imageChecksums instead.
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"
for t in mkfs.vfat mcopy syslinux; do
  command -v "$t" >/dev/null || skip "needs $t (scripts/deps.sh test: dosfstools, mtools, syslinux)"
done

mini=$(mini_guest)
sock=$tmp/qvmd.sock
start_qvmd "$tmp/qvmd.log" --socket "$sock"

# A disk that boots: a FAT file system with syslinux in its boot sector, the
# mini guest's kernel and initrd, no partition table (SeaBIOS boots it).
www=$tmp/www
mkdir -p "$www/images" "$www/bad" "$www/none" "$tmp/fat"
printf 'DEFAULT mini\nPROMPT 0\nTIMEOUT 0\nLABEL mini\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND console=ttyS0\n' \
  >"$tmp/fat/syslinux.cfg"
mkfs.vfat -C "$tmp/boot.raw" 24576 >/dev/null || fail "mkfs.vfat"
mcopy -i "$tmp/boot.raw" "$mini/vmlinuz" "$mini/initrd.img" "$tmp/fat/syslinux.cfg" :: || fail "mcopy"
syslinux --install "$tmp/boot.raw" || fail "syslinux --install"
img=debian-12-generic-amd64.qcow2
qemu-img convert -O qcow2 "$tmp/boot.raw" "$www/images/$img"
cp "$www/images/$img" "$www/bad/$img"
cp "$www/images/$img" "$www/none/$img"
sum=$(sha256sum "$www/images/$img" | cut -d' ' -f1)
printf '%s  other.qcow2\n%s  %s\n' "$(printf 0%.0s {1..64})" "$sum" "$img" >"$www/images/SHA256SUMS"
printf '%s  %s\n' "$(printf 1%.0s {1..64})" "$img" >"$www/bad/SHA256SUMS"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$www" "$port" >"$tmp/http.log" 2>&1 &
http_pid=$!
cleanup_hooks+=("kill $http_pid 2>/dev/null")
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/images/SHA256SUMS" && break; sleep 0.1; done
base=http://127.0.0.1:$port

# --- refusals: nothing made ----------------------------------------------------------
req POST /api/vms "{\"name\": \"vm-none\", \"memory\": 256, \"vcpus\": 1, \"diskSize\": 1, \"imageUrl\": \"$base/none/$img\"}"
expect_status 422 "an image with no checksum file beside it"
expect_eq "$(jget "$body" 'o["class"], o["field"]')" "('ImageUnverified', 'imageUrl')" "its class and field"
expect_match "$body" "no SHA256SUMS or SHA512SUMS beside it" "the refusal says what was looked for"
req POST /api/vms "{\"name\": \"vm-bad\", \"memory\": 256, \"vcpus\": 1, \"diskSize\": 1, \"imageUrl\": \"$base/bad/$img\"}"
((status >= 400)) || fail "a SHA256SUMS with the wrong digest: $status $body"
expect_match "$body" "sha256|checksum|digest" "the mismatch is named"
req GET /api/vms
expect_eq "$body" "[]" "no vm made by the refused creates"
[[ -z $(ls "$QVM_STATE_DIR/vms" 2>/dev/null) ]] || fail "vm dirs left: $(ls "$QVM_STATE_DIR/vms")"

# --- vm-provisioner's flow, verbatim ----------------------------------------------------
req POST /api/vms "{\"name\": \"test-vm\", \"memory\": 256, \"vcpus\": 1, \"diskSize\": 1, \"imageUrl\": \"$base/images/$img\"}"
expect_status 201 "POST /api/vms with an imageUrl whose SHA256SUMS is beside it"
expect_eq "$(jget "$body" 'o["name"], o["state"], o["memoryMib"], o["cpus"]')" "('test-vm', 'created', 256, 1)" "the vm"
grep -q "GET /images/SHA256SUMS" "$tmp/http.log" || fail "qvm did not read the SHA256SUMS: $(cat "$tmp/http.log")"
out=$(qvm image ls --json) || fail "qvm image ls"
expect_match "$out" "checksums:$base/images/SHA256SUMS" "the store says how the image was verified"
req POST /api/vms/test-vm/start
expect_status 200 "start"
expect_eq "$(jget "$body" 'o["state"]')" running "running after start"
booted=
for _ in $(seq 600); do
  grep -q 'qvm-mini: userspace' "$QVM_STATE_DIR/vms/test-vm/serial.log" 2>/dev/null && booted=1 && break
  sleep 0.1
done
[[ -n $booted ]] || fail "the guest did not boot from the pulled disk: $(tail -5 "$QVM_STATE_DIR/vms/test-vm/serial.log")"
req GET /api/vms/test-vm
expect_status 200 "get"
req POST /api/vms/test-vm/stop
expect_status 200 "stop"
expect_eq "$(jget "$body" 'o["state"]')" stopped "stopped after stop"
req DELETE /api/vms/test-vm
expect_status 204 "delete"
req GET /api/vms
expect_eq "$body" "[]" "no vm left"

# --- /api/v1: the checksum given -------------------------------------------------------
req POST /api/v1/vms "{\"name\": \"v1-img\", \"imageUrl\": \"$base/none/$img\", \"imageSha256\": \"$sum\", \"memory\": 256}"
expect_status 201 "v1 with imageSha256"
req POST /api/v1/vms "{\"name\": \"v1-sums\", \"imageUrl\": \"$base/none/$img\", \"imageChecksums\": \"$base/images/SHA256SUMS\"}"
expect_status 201 "v1 with imageChecksums"
req POST /api/v1/vms "{\"name\": \"v1-x\", \"imageUrl\": \"$base/none/$img\", \"imageChecksums\": \"file:///etc/passwd\"}"
expect_status 422 "imageChecksums must be http(s)"
expect_eq "$(jget "$body" 'o["field"]')" imageChecksums "the field"
req POST /api/v1/vms "{\"name\": \"v1-y\", \"imageUrl\": \"$base/none/$img\"}"
expect_status 422 "v1 finds no checksum by itself"
for v in v1-img v1-sums; do req DELETE "/api/v1/vms/$v"; expect_status 204 "delete $v"; done
log "PASS"
