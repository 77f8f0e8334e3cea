#!/usr/bin/env bash
# qvm mcp with the official MCP TypeScript SDK as its client (tests/mcp/sdk.mjs),
# installed with `npm ci` from tests/node's lock file into a temp dir, on a
# golden mini VM. Without node or npm: skipped, which under CI=true fails.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
. "$QVM_SOURCE_DIR/tests/mcp/lib.sh"

mini=$(mini_guest)
mcp_node_setup sdk.mjs
# The golden vm is never started: the sandbox is a clone of its disk.
# Its disk: an ext4 file system with one file whose bytes the agent
# overwrites in place through /dev/vda (the mini guest cannot mount ext4),
# so that sandbox_diff has a change to find on the disk.
mkdir -p "$tmp/root"
printf 'qvm-mcp-marker-AAAAAAAAAAAAAAAA\n' >"$tmp/root/marker.txt"
mkfs.ext4 -q -d "$tmp/root" "$tmp/base.raw" 16M 2>/dev/null || fail "mkfs.ext4"
marker_offset=$(python3 -c 'import sys; print(open(sys.argv[1], "rb").read().index(b"AAAAAAAAAAAAAAAA"))' "$tmp/base.raw")
qemu-img convert -O qcow2 "$tmp/base.raw" "$tmp/base.qcow2"
out=$(qvm create gold --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0 \
  --memory 256M --user root --image "$tmp/base.qcow2" --label golden=true 2>&1) ||
  fail "create gold: $out"
MARKER_OFFSET=$marker_offset QVM_BIN=$qvm_bin node "$tmp/sdk.mjs" || fail "the MCP SDK client (see above)"
log "ok"
