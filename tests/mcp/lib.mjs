// What tests/mcp/sdk.mjs (stdio) and sdk_http.mjs (qvmd's /mcp) share: tool
// calls that must succeed or fail, the mini guest's readiness, and a
// sandbox_create cancelled half-way, whose sandbox must be made and then
// removed.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export const LONG = { timeout: 300000 };

// A tool call that must succeed: its structured content.
export async function ok(client, name, args, opts = LONG) {
  const r = await client.callTool({ name, arguments: args }, undefined, opts);
  assert.equal(r.isError, false, `${name}: ${JSON.stringify(r.content)}`);
  assert.ok(r.structuredContent, `${name} has structured content`);
  assert.deepEqual(JSON.parse(r.content[0].text), r.structuredContent, `${name}: text = structured`);
  return r.structuredContent;
}

// A tool call that must fail as a tool (isError): its message.
export async function toolError(client, name, args) {
  const r = await client.callTool({ name, arguments: args }, undefined, LONG);
  assert.equal(r.isError, true, `${name} ${JSON.stringify(args)} should fail: ${JSON.stringify(r)}`);
  return r.content[0].text;
}

export async function waitReady(name) {
  const stateDir = process.env.QVM_STATE_DIR;
  for (let i = 0; i < 1800; i++) {
    try {
      if (readFileSync(`${stateDir}/vms/${name}/serial.log`, "latin1").includes("qvm-mini: ready"))
        return;
    } catch {}
    await sleep(100);
  }
  throw new Error(`the mini guest '${name}' never printed 'qvm-mini: ready'`);
}

// sandbox_create's arguments for a sandbox of the golden vm "gold".
export const createArgs = (name) => ({
  from: "gold", name, ttl: "10m", waitCloudInit: false, timeoutMs: 240000,
});

// A sandbox_create by client, cancelled by the SDK (notifications/cancelled)
// once the create is under way (its first qvm up phase is done).
export async function cancelledCreate(client, name) {
  const ac = new AbortController();
  const call = client.callTool({ name: "sandbox_create", arguments: createArgs(name) }, undefined,
    { ...LONG, signal: ac.signal, onprogress: (p) => { if (p.progress >= 1) ac.abort("test"); } });
  await assert.rejects(call);
}

// Waits (at most 5 minutes) until each of names was seen in op's vm_list and
// then was gone from it.
export async function madeAndRemoved(op, names) {
  const seen = new Set();
  let left = names;
  for (let i = 0; i < 1500 && left.length; i++) {
    const now = (await ok(op, "vm_list", {})).vms.map((v) => v.name);
    now.forEach((x) => seen.add(x));
    left = names.filter((x) => !seen.has(x) || now.includes(x));
    if (left.length) await sleep(200);
  }
  assert.deepEqual(left, [], `cancelled sandboxes made and not removed, or never made: ${left}`);
}
