// qvmd's /mcp driven by the official MCP TypeScript SDK
// (@modelcontextprotocol/sdk, pinned in tests/node/package-lock.json) over
// the streamable HTTP transport, with the mini guest: run by
// tests/mcp/sdk_http.sh, which starts qvmd on QVMD_URL with the tokens below
// and makes the golden VM "gold". Each step asserts what it got; the first
// failure ends the test with exit 1.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import assert from "node:assert/strict";
import { LONG, cancelledCreate, createArgs, hostileOutput, madeAndRemoved, ok, toolError, waitReady } from "./lib.mjs";

const base = process.env.QVMD_URL;
const tokens = {
  full: "full-token-0123456789abcdef",
  read: "read-token-0123456789abcdef",
  a: "agent-a-token-0123456789abc",
  b: "agent-b-token-0123456789abc",
};
const t0 = Date.now();
const log = (m) => console.error(`mcp_sdk_http: [${((Date.now() - t0) / 1000).toFixed(1)} s] ${m}`);

async function connect(token) {
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: "qvm-mcp-http-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

// A raw POST /mcp: status, content type and body (parsed when JSON).
async function post(token, body, headers = {}) {
  const r = await fetch(`${base}/mcp`, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${token}`, "Content-Type": "application/json",
      Accept: "application/json, text/event-stream", ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: r.status, type: r.headers.get("content-type"), text, json };
}

const meta = { "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientCapabilities": {} };

// --- the transport's rules, raw ---------------------------------------------------
let r = await post(tokens.full, { jsonrpc: "2.0", id: 1, method: "server/discover", params: { _meta: meta } });
assert.equal(r.status, 200, r.text);
assert.match(r.type, /^application\/json/);
assert.equal(r.json.result.resultType, "complete");
assert.ok(r.json.result.supportedVersions.includes("2026-07-28") &&
  r.json.result.supportedVersions.includes("2025-11-25"), r.text);
assert.deepEqual(r.json.result.capabilities, { tools: {} });
assert.equal(r.json.result.serverInfo.name, "qvm");
// 2026-07-28: no session, the version in each request's _meta
r = await post(tokens.a, { jsonrpc: "2.0", id: 2, method: "tools/list", params: { _meta: meta } },
  { "MCP-Protocol-Version": "2026-07-28" });
assert.equal(r.status, 200, r.text);
assert.equal(r.json.result.resultType, "complete");
assert.ok(r.json.result.tools.some((t) => t.name === "sandbox_create"));
// the header alone says which revision (a result of 2026-07-28 has its resultType)
r = await post(tokens.a, { jsonrpc: "2.0", id: 21, method: "tools/call",
  params: { name: "sandbox_list", arguments: {} } }, { "MCP-Protocol-Version": "2026-07-28" });
assert.deepEqual([r.json.result.resultType, r.json.result.structuredContent], ["complete", { sandboxes: [] }], r.text);
r = await post(tokens.a, { jsonrpc: "2.0", id: 22, method: "tools/list" }, { "MCP-Protocol-Version": "2025-11-25" });
assert.ok(r.json.result.tools && !("resultType" in r.json.result), r.text);
r = await post(tokens.full, { jsonrpc: "2.0", id: 6, method: "ping" }, { Origin: "http://evil.example" });
assert.equal(r.status, 403, "a foreign Origin is refused");
r = await post(tokens.full, { jsonrpc: "2.0", id: 7, method: "ping" }, { Origin: "http://localhost:8080" });
assert.equal(r.status, 200, "a loopback Origin is fine");
log("discover, versions, Origin (tests/mcp/http_transport.py has the rest)");

const op = await connect(tokens.full);
const a = await connect(tokens.a);
const b = await connect(tokens.b);
const ro = await connect(tokens.read);
try {
  // --- initialize and tools/list ----------------------------------------------------
  assert.equal(a.getServerVersion().name, "qvm");
  assert.deepEqual(a.getServerCapabilities().tools, {});
  const opTools = (await op.listTools()).tools.map((t) => t.name);
  assert.ok(opTools.includes("vm_list") && opTools.includes("sandbox_destroy"));
  const aTools = (await a.listTools()).tools;
  assert.ok(aTools.length > 5 && aTools.every((t) => !t.name.startsWith("vm_")), "an agent's tools");
  const roTools = (await ro.listTools()).tools;
  assert.ok(roTools.length >= 3 && roTools.every((t) => t.annotations.readOnlyHint === true),
    `a read token lists only read-only tools: ${roTools.map((t) => t.name)}`);
  await assert.rejects(ro.callTool({ name: "sandbox_destroy", arguments: { name: "x" } }),
    (e) => e instanceof McpError && e.code === -32602 && /only read/.test(e.message));
  await a.ping();
  log("initialized, tools listed");

  // --- invalid arguments: a JSON-RPC error naming the field -----------------------
  await assert.rejects(
    a.callTool({ name: "sandbox_exec", arguments: { name: "sb-h", argv: "ls" } }),
    (e) => e instanceof McpError && e.code === -32602 && e.data?.field === "argv");

  // --- sandbox_create (progress on an event stream) ------------------------------
  const progress = [];
  const created = await ok(a, "sandbox_create", createArgs("sb-h"),
    { ...LONG, onprogress: (p) => progress.push(p) });
  assert.ok(progress.length >= 2, `progress notifications: ${JSON.stringify(progress)}`);
  assert.ok(progress.every((p, i) => i === 0 || p.progress > progress[i - 1].progress));
  assert.deepEqual([created.sandbox.name, created.sandbox.agent], ["sb-h", "agent-a"]);
  log("sandbox sb-h created");
  await waitReady("sb-h");

  // --- exec, files, snapshot and rollback ------------------------------------------
  r = await ok(a, "sandbox_exec", {
    name: "sb-h", argv: ["sh", "-c", "echo out-$((6*7)); echo err >&2; exit 3"],
  });
  assert.deepEqual([r.exitCode, r.signal, r.stdout, r.stderr], [3, null, "out-42\n", "err\n"]);
  const text = "line one\n{\"jsonrpc\": \"2.0\"}\n\u00e9t\u00e9\n";
  r = await ok(a, "sandbox_write_file", { name: "sb-h", path: "/root/note", content: text });
  assert.equal(r.size, Buffer.byteLength(text));
  r = await ok(a, "sandbox_read_file", { name: "sb-h", path: "/root/note" });
  assert.equal(r.content, text);
  r = await ok(a, "sandbox_snapshot", { name: "sb-h" });
  const ckpt = r.checkpoint;
  await ok(a, "sandbox_write_file", { name: "sb-h", path: "/root/note", content: "changed\n" });
  r = await ok(a, "sandbox_rollback", { name: "sb-h" });
  assert.equal(r.restored, ckpt);
  r = await ok(a, "sandbox_read_file", { name: "sb-h", path: "/root/note" });
  assert.equal(r.content, text, "the file as it was at the checkpoint");
  log("exec, files, snapshot and rollback");

  // --- a hostile guest, answered as JSON and as an event stream -------------------
  await hostileOutput(a, "sb-h");
  await hostileOutput(a, "sb-h", { ...LONG, onprogress: () => {} });
  log("hostile output");

  // --- another agent's token sees nothing of sb-h ----------------------------------
  r = await ok(b, "sandbox_list", {});
  assert.deepEqual(r.sandboxes, [], "agent b lists none");
  const missing = await toolError(b, "sandbox_exec", { name: "sb-zz", argv: ["true"] });
  const other = await toolError(b, "sandbox_exec", { name: "sb-h", argv: ["true"] });
  assert.equal(other.replace("sb-h", "X"), missing.replace("sb-zz", "X"));
  await toolError(b, "sandbox_destroy", { name: "sb-h" });
  await assert.rejects(b.callTool({ name: "vm_list", arguments: {} }),
    (e) => e instanceof McpError && e.code === -32602);
  r = await ok(ro, "sandbox_list", {});
  assert.deepEqual(r.sandboxes.map((s) => s.name), ["sb-h"], "a read token reads");
  log("agent scope");

  // --- cancellation: a sandbox_create cancelled half-way leaves nothing, whether
  // the SDK posts notifications/cancelled (sb-cancel) or the client just closes
  // the connection of the event stream (sb-hangup); both at once
  const cancelled = cancelledCreate(a, "sb-cancel");
  const hangup = (async () => {
    const abort = new AbortController();
    const resp = await fetch(`${base}/mcp`, {
      method: "POST", signal: abort.signal,
      headers: { Authorization: `Bearer ${tokens.a}`, "Content-Type": "application/json",
        Accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: "h1", method: "tools/call", params: {
        name: "sandbox_create", arguments: createArgs("sb-hangup"), _meta: { progressToken: "h" } } }),
    });
    assert.match(resp.headers.get("content-type"), /^text\/event-stream/);
    const reader = resp.body.getReader();
    let got = "";
    while (!/"progress":[1-9]/.test(got)) {
      const { value, done } = await reader.read();
      assert.ok(!done, `the stream ended before a progress frame: ${got}`);
      got += Buffer.from(value).toString();
    }
    assert.match(got, /^event: message\ndata: \{"jsonrpc":"2.0","method":"notifications\/progress"/);
    abort.abort(); // closes the connection
  })();
  await cancelled;
  await hangup;
  await madeAndRemoved(op, ["sb-cancel", "sb-hangup"]);
  log("cancelled creates cleaned up");

  // --- destroy ---------------------------------------------------------------------
  r = await ok(a, "sandbox_destroy", { name: "sb-h" });
  assert.deepEqual(r, { name: "sb-h", destroyed: true });
  r = await ok(op, "sandbox_list", {});
  assert.deepEqual(r.sandboxes, []);
  log("destroyed; ok");
} finally {
  await Promise.allSettled([a.close(), b.close(), op.close(), ro.close()]);
}
