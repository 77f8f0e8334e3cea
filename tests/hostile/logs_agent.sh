#!/usr/bin/env bash
# Hostile guest agent: the agent on the VM's virtio-serial socket answers
# guest-network-get-interfaces with shell injections, malformed addresses, a
# 1 MiB "address" and 10,000 interfaces. `qvm ip` (text and --json) and
# `qvm info --json` never print any of them, a script that uses `qvm ip`'s
# output in a shell creates no sentinel file, and a valid address after the
# junk is still found.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
make_netns
# qvm.dhcp=0: no lease, so the guest agent is the only source.
qvm create ag --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" \
  --append 'console=ttyS0 qvm.dhcp=0' --memory 256M --net bridge >/dev/null || fail "create"
qvm start ag >/dev/null 2>&1 || fail "start"
mac=$(sed -n 's/.*"mac": *"\([0-9a-f:]*\)".*/\1/p' "$QVM_STATE_DIR/vms/ag/vm.json" | head -n 1)
[[ -n $mac ]] || fail "no mac in vm.json"

agent=
stop_agent() {
  [[ -n $agent ]] || return 0
  kill "$agent" 2>/dev/null
  wait "$agent" 2>/dev/null || true
  agent=
}
cleanup_hooks+=(stop_agent)
start_agent() {
  stop_agent
  rm -f "$tmp/ready"
  python3 "$src/tests/hostile/logs_qga.py" "$QVM_RUNTIME_DIR/ag/qga.sock" "$mac" "$tmp/ready" \
    "$1" &
  agent=$!
  for _ in $(seq 300); do
    [[ -e $tmp/ready ]] && return 0
    sleep 0.1
  done
  fail "the stand-in agent did not start"
}

# Nothing the agent sent may show up: not an injection, not a malformed
# address, not the 1 MiB string.
assert_clean() {
  local what=$1 text=$2 bad
  # shellcheck disable=SC2016 # the literal text the agent sent
  for bad in '$(id' 'rm -rf' '999.1.1.1' 'touch p' 'ProxyCommand' '0x7f' '1111111111' \
    ' 10.0.0.1' '1.2.3.4' '::ffff'; do
    if grep -qF -- "$bad" <<<"$text"; then
      fail "$what printed the agent's '$bad': $(head -c 300 <<<"$text")"
    fi
  done
  return 0
}

mkdir -p "$tmp/work"
for mode in inject huge many; do
  start_agent "$mode"
  set +e
  out=$(qvm ip ag --wait 3 2>&1)
  rc=$?
  json=$(qvm ip ag --wait 1 --json 2>/dev/null)
  info=$(qvm info --json ag 2>/dev/null)
  # A script that trusts the output: what `qvm ip` prints is run by a shell.
  (cd "$tmp/work" && sh -c "echo $(qvm ip ag --wait 1 2>/dev/null)" >/dev/null 2>&1)
  set -e
  log "$mode: rc=$rc: $(head -c 300 <<<"$out")"
  [[ ! -e $tmp/work/p ]] || fail "$mode: the sentinel file was created: qvm ip's output ran"
  assert_clean "qvm ip ($mode)" "$out"
  assert_clean "qvm ip --json ($mode)" "$json"
  assert_clean "qvm info --json ($mode)" "$info"
  expect_eq "$rc" 5 "$mode: qvm ip finds no address (exit 5)"
  python3 -c 'import json,sys; json.loads(sys.argv[1])' "$json" || fail "$mode: --json is not json"
  python3 -c 'import json,sys; json.loads(sys.argv[1])' "$info" || fail "$mode: info is not json"
done
# The reason is given, not the text.
start_agent inject
set +e
out=$(qvm ip ag --wait 1 2>&1)
set -e
expect_match "$out" "guest agent's [0-9]+ address(es were| was) skipped: not ipv4" "reason"

# Junk first, then a valid address: that one is used, and nothing else.
start_agent mixed
out=$(qvm ip ag --wait 20 --json) || fail "qvm ip with a valid address after junk: $out"
python3 - "$out" <<'PY' || fail "mixed: $out"
import json, sys
j = json.loads(sys.argv[1])
assert j["ip"] == "10.77.0.42" and j["source"] == "guest-agent", j
PY
stop_agent
log "PASS"
