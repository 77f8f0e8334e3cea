# Sourced by tests/mcp/sdk.sh and sdk_http.sh after tests/e2e/lib.sh: the
# official MCP TypeScript SDK, installed with `npm ci` from tests/node's lock
# file into $tmp beside the test's files (tests/mcp/lib.mjs and those named).
# Without node or npm: skipped, which under CI=true fails.
unset QVM_AGENT
command -v node >/dev/null || skip "needs node"
command -v npm >/dev/null || skip "needs npm"

mcp_node_setup() {
  local f
  cp "$src/tests/node/package.json" "$src/tests/node/package-lock.json" "$src/tests/mcp/lib.mjs" "$tmp/"
  for f in "$@"; do cp "$src/tests/mcp/$f" "$tmp/"; done
  (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >"$tmp/npm.log" 2>&1) || {
    cat "$tmp/npm.log" >&2
    fail "npm ci of tests/node"
  }
}
