#!/usr/bin/env bash
# End to end, sandboxes from an image (issue 14): qvm sandbox create --from
# IMAGE brings a cloud guest up on the isolated network (user-mode, restrict):
# it cannot reach a service on the host's loopback, while a sandbox on --net
# user reaches the same service (so the probe itself works); exec works in
# both; destroy leaves nothing.
. "$(dirname "$0")/lib.sh"

image=$(cloud_image)
serve_dir "$tmp" # a service on the host's 127.0.0.1: $http_port
jget() { python3 -c 'import json,sys; o=json.loads(sys.argv[1]); print(eval("o"+sys.argv[2]))' "$1" "$2"; }
probe() { qvm exec "$1" -- timeout 10 bash -c "echo > /dev/tcp/10.0.2.2/$http_port"; }

json=$(qvm sandbox create --from "$image" --ttl 30m --agent e2e --label suite=cloud --json) ||
  fail "sandbox create (isolated): $json"
iso=$(jget "$json" '["name"]')
expect_match "$iso" '^sb-[0-9a-f]{8}$' "the generated name"
expect_eq "$(jget "$json" '["kind"]')" image "made from an image"
expect_eq "$(jget "$json" '["net"]')" isolated "the default network"
expect_eq "$(jget "$json" '["state"]')" running "the sandbox runs"
expect_eq "$(qvm exec "$iso" -- id -un)" qvm "exec in the isolated sandbox"

json=$(qvm sandbox create sb-user --from "$image" --net user --ttl 30m --json) ||
  fail "sandbox create (user): $json"
expect_eq "$(jget "$json" '["net"]')" user "--net user"
probe sb-user || fail "a --net user sandbox does not reach the host's service (the probe is broken)"
if probe "$iso"; then fail "the isolated sandbox reached a service on the host's loopback"; fi
log "the isolated sandbox cannot reach 10.0.2.2:$http_port; the user one can"

out=$(qvm sandbox ls --agent e2e --json)
expect_eq "$(jget "$out" '[0]["name"]')" "$iso" "sandbox ls --agent e2e"
for n in "$iso" sb-user; do
  read -r pids <<<"$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["runtime"]; print(r["shim"]["pid"], r["qemu"]["pid"])' "$QVM_STATE_DIR/vms/$n/vm.json")"
  qvm sandbox destroy "$n" >/dev/null || fail "destroy $n"
  assert_gone "$n" "$pids"
done
log "PASS"
