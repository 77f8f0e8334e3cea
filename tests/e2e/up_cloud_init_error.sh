#!/usr/bin/env bash
# End to end (issue 7, test 4): a cloud-config with a failing module fails up,
# naming the module; --allow-cloud-init-errors goes on. The image comes from
# a URL (issue 12): the first up pulls it from a local HTTP server, verifies
# its sha256 and boots the store's copy.
. "$(dirname "$0")/lib.sh"

image=$(cloud_image)
mkdir "$tmp/www"
ln "$image" "$tmp/www/disk.qcow2" 2>/dev/null || cp "$image" "$tmp/www/disk.qcow2"
serve_dir "$tmp/www"
sum=$(sha256sum "$image" | cut -d' ' -f1)
image=http://127.0.0.1:$http_port/disk.qcow2
cat >"$tmp/bad.yaml" <<'YAML'
#cloud-config
write_files:
  - path: /etc/qvm-e2e/bad.txt
    content: "not base64 at all"
    encoding: b64
    permissions: "not-a-mode"
YAML
set +e
out=$(qvm up e2e-cierr --image "$image" --image-sha256 "$sum" --disk 3G \
  --cloud-config "$tmp/bad.yaml" --keep-on-failure 2>&1)
rc=$?
set -e
log "$out"
# Pulled once into the store, verified, and the VM's disk is backed by it.
stored=$(qvm image ls --json) || fail "image ls: $stored"
expect_eq "$(jq -r 'length' <<<"$stored")" 1 "one image in the store"
expect_eq "$(jq -r '.[0].digest' <<<"$stored")" "sha256:$sum" "the store's digest is the image's sha256"
expect_eq "$(jq -r '.[0].source' <<<"$stored")" "$image" "the image's source is the URL"
expect_eq "$(jq -r '.[0].used_by[0]' <<<"$stored")" e2e-cierr "the VM uses the stored image"
backing=$(qemu-img info -U --output=json "$QVM_STATE_DIR/vms/e2e-cierr/disk.qcow2" |
  jq -r '."backing-filename"')
expect_eq "$backing" "$QVM_STATE_DIR/images/sha256/$sum" "the overlay's backing file"
[[ $rc -ne 0 ]] || fail "up succeeded despite a failing cloud-init module"
expect_match "$out" "phase 'cloud-init'" "the failing phase is named"
expect_match "$out" "write_files|write-files" "the failing module is named"
expect_match "$out" "status: error" "cloud-init's own status is shown"
# SSH worked, so the VM is up for inspection; allowing the errors goes on.
out=$(qvm up e2e-cierr --image "$image" --image-sha256 "$sum" --disk 3G \
  --cloud-config "$tmp/bad.yaml" --allow-cloud-init-errors 2>&1) || fail "up --allow-cloud-init-errors failed: $out"
pids=$(recorded_pids)
qvm down e2e-cierr --rm >/dev/null || fail "down --rm"
assert_gone e2e-cierr "$pids"
log "PASS"
