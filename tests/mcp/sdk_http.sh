#!/usr/bin/env bash
# qvmd's /mcp (the streamable HTTP transport) with the official MCP
# TypeScript SDK as its client (tests/mcp/sdk_http.mjs): one qvmd on TCP
# 127.0.0.1 with a full, a read and two agent tokens, a golden mini VM, one
# sandbox (and two whose creation is cancelled). Without node or npm:
# skipped, which under CI=true fails.
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"
. "$QVM_SOURCE_DIR/tests/mcp/lib.sh"

mini=$(mini_guest)
mcp_node_setup sdk_http.mjs
# The golden vm is never started: the sandboxes are clones of its disk.
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M
out=$(qvm create gold --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0 \
  --memory 256M --user root --image "$tmp/base.qcow2" --label golden=true 2>&1) ||
  fail "create gold: $out"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf '%s full\n%s read\n%s agent:agent-a\n%s agent:agent-b\n' \
  full-token-0123456789abcdef read-token-0123456789abcdef \
  agent-a-token-0123456789abc agent-b-token-0123456789abc >"$tmp/tokens"
chmod 600 "$tmp/tokens"
start_qvmd "$tmp/qvmd.log" --socket "$tmp/qvmd.sock" --listen "127.0.0.1:$port" --tokens "$tmp/tokens" \
  --rate-limit 0
QVMD_URL="http://127.0.0.1:$port" node "$tmp/sdk_http.mjs" || {
  tail -n 30 "$tmp/qvmd.log" >&2
  fail "the MCP SDK client over HTTP (see above)"
}
log "ok"
