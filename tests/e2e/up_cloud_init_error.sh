#!/usr/bin/env bash
# End to end (issue 7, test 4): a cloud-config with a failing module fails up,
# naming the module; --allow-cloud-init-errors goes on.
. "$(dirname "$0")/lib.sh"

image=$(cloud_image)
cat >"$tmp/bad.yaml" <<'YAML'
#cloud-config
write_files:
  - path: /etc/qvm-e2e/bad.txt
    content: "not base64 at all"
    encoding: b64
    permissions: "not-a-mode"
YAML
set +e
out=$(qvm up e2e-cierr --image "$image" --disk 3G --cloud-config "$tmp/bad.yaml" 2>&1)
rc=$?
set -e
log "$out"
[[ $rc -ne 0 ]] || fail "up succeeded despite a failing cloud-init module"
expect_match "$out" "phase 'cloud-init'" "the failing phase is named"
expect_match "$out" "write_files|write-files" "the failing module is named"
expect_match "$out" "status: error" "cloud-init's own status is shown"
# SSH worked, so the VM is up for inspection; allowing the errors goes on.
out=$(qvm up e2e-cierr --image "$image" --disk 3G --cloud-config "$tmp/bad.yaml" \
  --allow-cloud-init-errors 2>&1) || fail "up --allow-cloud-init-errors failed: $out"
pids=$(recorded_pids)
qvm down e2e-cierr --rm >/dev/null || fail "down --rm"
assert_gone e2e-cierr "$pids"
log "PASS"
