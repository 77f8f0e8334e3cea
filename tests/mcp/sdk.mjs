// qvm mcp driven by the official MCP TypeScript SDK (@modelcontextprotocol/sdk,
// pinned in tests/node/package-lock.json) over stdio, with the mini guest:
// run by tests/mcp/sdk.sh, which makes the golden VM "gold" and sets
// QVM_BIN, QVM_STATE_DIR and QVM_RUNTIME_DIR. Each step asserts what it
// got; the first failure ends the test with exit 1.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import assert from "node:assert/strict";
import { LONG, cancelledCreate, hostileOutput, madeAndRemoved, ok, toolError, waitReady } from "./lib.mjs";

const qvm = process.env.QVM_BIN;
const t0 = Date.now();
const log = (m) => console.error(`mcp_sdk: [${((Date.now() - t0) / 1000).toFixed(1)} s] ${m}`);

async function connect(agent) {
  const env = { ...process.env };
  delete env.QVM_AGENT;
  const transport = new StdioClientTransport({
    command: qvm,
    args: agent ? ["mcp", "--agent", agent] : ["mcp"],
    env,
    stderr: "inherit",
  });
  const client = new Client({ name: "qvm-mcp-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

const a = await connect("agent-a");
const b = await connect("agent-b");
const op = await connect(null);
try {
  // --- initialize and tools/list ----------------------------------------------------
  assert.equal(a.getServerVersion().name, "qvm");
  assert.deepEqual(a.getServerCapabilities().tools, {});
  const opTools = (await op.listTools()).tools.map((t) => t.name).sort();
  assert.deepEqual(opTools, [
    "review_create", "sandbox_create", "sandbox_destroy", "sandbox_diff", "sandbox_exec",
    "sandbox_list", "sandbox_read_file", "sandbox_rollback", "sandbox_snapshot",
    "sandbox_write_file", "ssh_key_generate", "ssh_key_list",
    "vm_create", "vm_delete", "vm_inject_ssh_key", "vm_list", "vm_start", "vm_stop",
  ]);
  const aTools = (await a.listTools()).tools;
  assert.ok(aTools.every((t) => !t.name.startsWith("vm_") && !t.name.startsWith("ssh_key")),
    "an agent gets no vm_* or ssh_key_* tools");
  for (const t of aTools) {
    assert.equal(t.inputSchema.type, "object", `${t.name}'s inputSchema`);
    assert.equal(t.outputSchema?.type, "object", `${t.name}'s outputSchema`);
    assert.equal(typeof t.annotations?.readOnlyHint, "boolean", `${t.name}'s annotations`);
  }
  await a.ping();
  log("initialized, tools listed");

  // --- invalid arguments: a JSON-RPC error naming the field -----------------------
  await assert.rejects(
    a.callTool({ name: "sandbox_exec", arguments: { name: "sb-a", argv: "ls" } }),
    (e) => e instanceof McpError && e.code === -32602 && /argv/.test(e.message) &&
      e.data?.field === "argv",
  );
  await assert.rejects(
    a.callTool({ name: "sandbox_create", arguments: { from: "gold", ttl: "10m", bogus: 1 } }),
    (e) => e instanceof McpError && e.code === -32602 && e.data?.field === "bogus",
  );

  // --- sandbox_create from the golden VM, by agent a ------------------------------
  // with a progress token: qvm up's phases come as notifications/progress
  const progress = [];
  const created = await ok(a, "sandbox_create", {
    from: "gold", name: "sb-a", ttl: "10m", waitCloudInit: false, timeoutMs: 240000,
  }, { ...LONG, onprogress: (p) => progress.push(p) });
  assert.ok(progress.length >= 2, `progress notifications: ${JSON.stringify(progress)}`);
  assert.ok(progress.every((p, i) => i === 0 || p.progress > progress[i - 1].progress),
    `progress grows: ${JSON.stringify(progress)}`);
  assert.ok(progress.every((p) => p.total === 7 && p.progress <= p.total));
  assert.match(progress[progress.length - 1].message, /^(ssh|tcp|cloud-init|provision) (done|skipped)/,
    JSON.stringify(progress));
  assert.equal(created.sandbox.name, "sb-a");
  assert.equal(created.sandbox.agent, "agent-a");
  assert.equal(created.sandbox.state, "running");
  log("sandbox sb-a created");
  await waitReady("sb-a");

  // --- exec: stdout, stderr, exit apart ------------------------------------------
  let r = await ok(a, "sandbox_exec", {
    name: "sb-a", argv: ["sh", "-c", "echo out-$((6*7)); echo err >&2; exit 3"],
  });
  assert.deepEqual([r.exitCode, r.signal, r.stdout, r.stderr, r.checkpoint],
    [3, null, "out-42\n", "err\n", null]);
  r = await ok(a, "sandbox_exec", { name: "sb-a", argv: ["cat"], stdin: "from stdin\n" });
  assert.equal(r.stdout, "from stdin\n", "stdin reaches the command");
  log("exec");

  // --- write then read a file ---------------------------------------------------
  const text = "line one\n{\"jsonrpc\": \"2.0\"}\n\u00e9t\u00e9\n";
  r = await ok(a, "sandbox_write_file", { name: "sb-a", path: "/root/note", content: text });
  assert.equal(r.size, Buffer.byteLength(text));
  r = await ok(a, "sandbox_read_file", { name: "sb-a", path: "/root/note" });
  assert.deepEqual([r.content, r.size], [text, Buffer.byteLength(text)]);
  assert.match(await toolError(a, "sandbox_read_file", { name: "sb-a", path: "/no/such" }),
    /reading '\/no\/such' failed/);
  log("write and read");

  // --- snapshot, change, rollback: the change is gone -----------------------------
  r = await ok(a, "sandbox_snapshot", { name: "sb-a" });
  const ckpt = r.checkpoint;
  assert.match(ckpt, /^ckpt-\d+$/);
  await ok(a, "sandbox_write_file", { name: "sb-a", path: "/root/note", content: "changed\n" });
  await ok(a, "sandbox_exec", { name: "sb-a", argv: ["touch", "/root/new"] });
  r = await ok(a, "sandbox_rollback", { name: "sb-a" });
  assert.equal(r.restored, ckpt);
  r = await ok(a, "sandbox_read_file", { name: "sb-a", path: "/root/note" });
  assert.equal(r.content, text, "the file as it was at the checkpoint");
  r = await ok(a, "sandbox_exec", { name: "sb-a", argv: ["test", "-e", "/root/new"] });
  assert.equal(r.exitCode, 1, "the file made after the checkpoint is gone");
  log("snapshot and rollback");

  // --- sandbox_diff reads the change from the disk; review_create records it ----
  r = await ok(a, "sandbox_diff", { name: "sb-a" });
  assert.deepEqual([r.changesTotal, r.changesTruncated], [0, false], "no change yet");
  r = await ok(a, "sandbox_exec", {
    name: "sb-a",
    argv: ["sh", "-c", `printf BBBBBBBBBBBBBBBB | dd of=/dev/vda bs=1 seek=${process.env.MARKER_OFFSET} conv=notrunc 2>/dev/null && sync`],
  });
  assert.equal(r.exitCode, 0, `the agent's write: ${r.stderr}`);
  r = await ok(a, "sandbox_diff", { name: "sb-a" });
  assert.deepEqual(r.changes.map((c) => [c.path, c.kind, c.changed]),
    [["/marker.txt", "modified", ["content"]]], JSON.stringify(r.changes));
  assert.equal(r.changesTotal, 1);
  r = await ok(a, "review_create", { name: "sb-a" });
  assert.match(r.review.id, /^[0-9a-f]{12}$/);
  assert.equal(r.review.author.agent, "agent-a", JSON.stringify(r.review));
  assert.equal(r.review.vm, "sb-a");
  assert.match(await toolError(b, "sandbox_diff", { name: "sb-a" }), /ENOTFOUND.*sb-a/);
  log("diff and review");

  // --- a hostile guest: JSON-RPC-looking text, 2 MB, invalid UTF-8 ----------------
  await hostileOutput(a, "sb-a");
  log("hostile output");

  // --- another agent sees nothing of sb-a ----------------------------------------
  r = await ok(b, "sandbox_list", {});
  assert.deepEqual(r.sandboxes, [], "agent b lists none");
  const missing = await toolError(b, "sandbox_exec", { name: "sb-zz", argv: ["true"] });
  const other = await toolError(b, "sandbox_exec", { name: "sb-a", argv: ["true"] });
  assert.equal(other.replace("sb-a", "X"), missing.replace("sb-zz", "X"),
    "another agent's sandbox answers as a missing one");
  await toolError(b, "sandbox_destroy", { name: "sb-a" });
  await toolError(b, "sandbox_snapshot", { name: "sb-a" });
  await toolError(b, "sandbox_read_file", { name: "sb-a", path: "/root/note" });
  await assert.rejects(b.callTool({ name: "vm_list", arguments: {} }),
    (e) => e instanceof McpError && e.code === -32602);
  r = await ok(a, "sandbox_list", {});
  assert.deepEqual(r.sandboxes.map((s) => s.name), ["sb-a"]);
  r = await ok(op, "vm_list", {});
  assert.deepEqual(r.vms.map((v) => v.name).sort(), ["gold", "sb-a"]);
  log("agent scope");

  // --- cancellation: the reader reads on while a call runs; a sandbox_create
  // cancelled half-way (notifications/cancelled) answers nothing and leaves nothing
  await cancelledCreate(a, "sb-cancel");
  await a.ping(); // answered while the cancelled call winds down
  await madeAndRemoved(op, ["sb-cancel"]);
  log("cancelled create cleaned up");

  // --- destroy -----------------------------------------------------------------
  r = await ok(a, "sandbox_destroy", { name: "sb-a" });
  assert.deepEqual(r, { name: "sb-a", destroyed: true });
  r = await ok(op, "sandbox_list", {});
  assert.deepEqual(r.sandboxes, []);
  log("destroyed; ok");
} finally {
  await Promise.allSettled([a.close(), b.close(), op.close()]);
}
