#!/usr/bin/env python3
# qvm mcp's protocol over stdio with no VM (issue 17): initialize and its
# version negotiation, tools/list (every tool with input and output schemas
# and annotations; an agent-scoped server lists no vm_* tool), ping, every
# JSON-RPC error code, a 5 MiB line and invalid UTF-8 then a request still
# answered, nesting bounded, notifications unanswered, a failing tool as
# isError, and exit 0 at the end of the input. Every answer is one line of
# JSON on stdout.
import json
import os
import subprocess
import sys
import tempfile

qvm = os.path.join(os.environ["QVM_BINARY_DIR"], "qvm")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)


def msg(id_, method, params=None):
    m = {"jsonrpc": "2.0", "method": method}
    if id_ is not None:
        m["id"] = id_
    if params is not None:
        m["params"] = params
    return json.dumps(m).encode() + b"\n"


def run(data, *args, timeout=60, agent_env=None, key_dir=None):
    """Feeds data to `qvm mcp ARGS`; (exit status, answers by id, answers in order)."""
    with tempfile.TemporaryDirectory(prefix="qvm-mcp-") as d:
        env = dict(os.environ, QVM_STATE_DIR=d + "/state", QVM_RUNTIME_DIR=d + "/run")
        env.pop("QVM_AGENT", None)
        if agent_env:
            env["QVM_AGENT"] = agent_env
        env.pop("SSH_KEY_DIR", None)
        if key_dir:
            env["SSH_KEY_DIR"] = key_dir
        os.makedirs(d + "/state", mode=0o700)
        os.makedirs(d + "/run", mode=0o700)
        p = subprocess.run([qvm, "mcp", *args], input=data, capture_output=True,
                           env=env, timeout=timeout)
    lines = p.stdout.split(b"\n")
    check(lines[-1] == b"", "the output ends with a newline")
    answers = []
    for line in lines[:-1]:
        try:
            answers.append(json.loads(line.decode("utf-8")))
        except (ValueError, UnicodeDecodeError) as e:
            check(False, "an output line is not JSON (%s): %r" % (e, line[:200]))
    for a in answers:
        check(a.get("jsonrpc") == "2.0", "every answer says jsonrpc 2.0: %r" % a)
        if a.get("method") == "notifications/progress":  # the one notification it sends
            check("id" not in a and "result" not in a and "error" not in a, "a notification: %r" % a)
            continue
        check(("result" in a) != ("error" in a), "an answer has a result or an error: %r" % a)
    by_id = {a["id"]: a for a in answers if a.get("id") is not None}
    return p.returncode, by_id, answers


init = {"protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "protocol-test", "version": "1"}}

# --- initialize, version negotiation, ping ---------------------------------------
for asked, expect in [("2025-11-25", "2025-11-25"), ("2025-06-18", "2025-06-18"),
                      ("2025-03-26", "2025-03-26"), ("1999-01-01", "2025-11-25")]:
    rc, by_id, _ = run(msg(1, "initialize", dict(init, protocolVersion=asked)) +
                       msg(None, "notifications/initialized") + msg(2, "ping"))
    check(rc == 0, "exit 0 at EOF (asked %s)" % asked)
    r = by_id.get(1, {}).get("result", {})
    check(r.get("protocolVersion") == expect, "asked %s, got %r" % (asked, r.get("protocolVersion")))
    check(r.get("capabilities") == {"tools": {}}, "capabilities: %r" % r.get("capabilities"))
    check(r.get("serverInfo", {}).get("name") == "qvm" and r["serverInfo"].get("version"),
          "serverInfo: %r" % r.get("serverInfo"))
    check(by_id.get(2, {}).get("result") == {}, "ping answers {}")
rc, by_id, _ = run(msg(1, "initialize", {"capabilities": {}}))
e = by_id.get(1, {}).get("error", {})
check(e.get("code") == -32602 and e.get("data", {}).get("field") == "protocolVersion",
      "initialize without protocolVersion: %r" % e)

# initialize is the 2025 handshake: asked for the stateless revision, it answers 2025-11-25
rc, by_id, _ = run(msg(1, "initialize", dict(init, protocolVersion="2026-07-28")))
check(by_id.get(1, {}).get("result", {}).get("protocolVersion") == "2025-11-25",
      "initialize asked for 2026-07-28: %r" % by_id.get(1))

# --- the stateless revision (2026-07-28): server/discover, the version in _meta ------
meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}
rc, by_id, _ = run(msg(1, "server/discover", {"_meta": meta}) +
                   msg(2, "tools/list", {"_meta": meta}) +
                   msg(3, "tools/list", {"_meta": dict(meta, **{
                       "io.modelcontextprotocol/protocolVersion": "2099-01-01"})}) +
                   msg(4, "tools/list", {"_meta": dict(meta, **{
                       "io.modelcontextprotocol/protocolVersion": 5})}) +
                   msg(5, "tools/list"))
r = by_id.get(1, {}).get("result", {})
check(r.get("resultType") == "complete" and r.get("supportedVersions", [None])[0] == "2026-07-28" and
      "2025-11-25" in r.get("supportedVersions", []), "server/discover's versions: %r" % r)
check(r.get("capabilities") == {"tools": {}} and r.get("serverInfo", {}).get("name") == "qvm",
      "server/discover's capabilities and identity: %r" % r)
check(r.get("cacheScope") == "private" and isinstance(r.get("ttlMs"), int), "cache hints: %r" % r)
check(by_id.get(2, {}).get("result", {}).get("resultType") == "complete" and
      by_id[2]["result"].get("tools"), "a 2026-07-28 tools/list without initialize: %r" % by_id.get(2))
e = by_id.get(3, {}).get("error", {})
check(e.get("code") == -32022 and e.get("data", {}).get("requested") == "2099-01-01" and
      "2026-07-28" in e.get("data", {}).get("supported", []), "an unknown version: %r" % e)
check(by_id.get(4, {}).get("error", {}).get("code") == -32022, "a version that is no string")
check("resultType" not in by_id.get(5, {}).get("result", {"resultType": 1}),
      "a 2025 request's result has no resultType")
# notifications/cancelled for nothing under way: no answer, nothing breaks
rc, by_id, answers = run(msg(None, "notifications/cancelled", {"requestId": 7}) +
                         msg(None, "notifications/cancelled", {"requestId": None}) + msg(8, "ping"))
check(rc == 0 and len(answers) == 1 and by_id.get(8, {}).get("result") == {},
      "cancelling nothing: %r" % answers)

# --- tools/list --------------------------------------------------------------------
sandbox_tools = ["sandbox_create", "sandbox_list", "sandbox_exec", "sandbox_read_file",
                 "sandbox_write_file", "sandbox_snapshot", "sandbox_rollback", "sandbox_diff",
                 "review_create", "sandbox_destroy"]
vm_tools = ["vm_list", "vm_create", "vm_start", "vm_stop", "vm_delete", "ssh_key_generate",
            "ssh_key_list", "vm_inject_ssh_key"]
for args, expect in [((), vm_tools + sandbox_tools), (("--agent", "agent-a"), sandbox_tools)]:
    rc, by_id, _ = run(msg(1, "initialize", init) + msg(2, "tools/list"), *args)
    tools = by_id.get(2, {}).get("result", {}).get("tools", [])
    check(sorted(t.get("name") for t in tools) == sorted(expect),
          "tools listed with %r: %r" % (args, [t.get("name") for t in tools]))
    for t in tools:
        n = t.get("name")
        for k in ("title", "description"):
            check(isinstance(t.get(k), str) and t[k], "%s has a %s" % (n, k))
        for k in ("inputSchema", "outputSchema"):
            s = t.get(k, {})
            check(s.get("type") == "object" and s.get("additionalProperties") is False and
                  isinstance(s.get("properties"), dict), "%s's %s: %r" % (n, k, s))
            for req in s.get("required", []):
                check(req in s.get("properties", {}), "%s's %s requires a known %s" % (n, k, req))
        a = t.get("annotations", {})
        for k in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"):
            check(isinstance(a.get(k), bool), "%s's annotation %s: %r" % (n, k, a.get(k)))
    ann = {t["name"]: t["annotations"] for t in tools}
    check(ann.get("sandbox_list", {}).get("readOnlyHint") is True, "sandbox_list is read-only")
    check(ann.get("sandbox_destroy", {}).get("destructiveHint") is True, "sandbox_destroy is destructive")
# QVM_AGENT (what `qvm --agent ID mcp` sets) scopes it too
rc, by_id, _ = run(msg(2, "tools/list"), agent_env="agent-b")
check([t["name"] for t in by_id.get(2, {}).get("result", {}).get("tools", [])] == sandbox_tools,
      "$QVM_AGENT scopes the server")
rc, by_id, _ = run(msg(2, "tools/list"), "--agent", "Bad Agent!")
check(rc == 2 and not by_id, "an invalid --agent is refused before serving (exit %d)" % rc)

# --- error codes -------------------------------------------------------------------
cases = [
    (b'{"jsonrpc": "2.0", "id": 1, "method": "ping"', -32700, None),  # cut short
    (b'{"jsonrpc": "2.0", "id": 1, "method": "ping"} {}', -32700, None),  # data after it
    (b'\xff\xfe{"jsonrpc": "2.0", "id": 1, "method": "ping"}', -32700, None),  # not UTF-8
    (b'{"jsonrpc": "2.0", "id": 1, "method": "p\xc3"}', -32700, None),  # cut UTF-8 sequence
    (b"[" * 10000 + b"]" * 10000, -32700, None),  # nesting
    (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', -32600, None),  # a batch
    (b'"ping"', -32600, None),
    (b'{"id": 7, "method": "ping"}', -32600, 7),  # no jsonrpc
    (b'{"jsonrpc": "1.0", "id": 7, "method": "ping"}', -32600, 7),
    (b'{"jsonrpc": "2.0", "id": 7}', -32600, 7),  # no method
    (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', -32600, None),
    (b'{"jsonrpc": "2.0", "id": null, "method": "ping"}', -32600, None),
    (b'{"jsonrpc": "2.0", "id": 7, "method": 5}', -32600, 7),
    (b'{"jsonrpc": "2.0", "id": 7, "method": "resources/list"}', -32601, 7),
    (b'{"jsonrpc": "2.0", "id": "s", "method": "tools/call", "params": []}', -32602, "s"),
]
for line, code, id_ in cases:
    rc, _, answers = run(line + b"\n" + msg(99, "ping"))
    check(rc == 0, "exit 0 after %r" % line[:60])
    check(len(answers) == 2, "one error and the ping's answer after %r: %r" % (line[:60], answers))
    if len(answers) == 2:
        check(answers[0].get("error", {}).get("code") == code and answers[0].get("id") == id_,
              "%r gets %d with id %r: %r" % (line[:60], code, id_, answers[0]))
        check(answers[0]["error"].get("message"), "the error has a message")
        check(answers[1].get("id") == 99 and answers[1].get("result") == {},
              "the ping after %r is answered" % line[:60])


def call(name, arguments, *args, **kw):
    rc, by_id, answers = run(msg(1, "initialize", init) +
                             msg(2, "tools/call", {"name": name, "arguments": arguments}), *args,
                             **kw)
    return by_id.get(2, {})


for name, arguments, field in [
    ("no_such_tool", {}, "name"),
    ("vm_list", {"extra": 1}, "extra"),
    ("sandbox_exec", {"name": "sb"}, "argv"),
    ("sandbox_exec", {"name": "sb", "argv": []}, "argv"),
    ("sandbox_exec", {"name": "sb", "argv": ["a\u0000b"]}, "argv"),
    ("sandbox_exec", {"name": "sb", "argv": ["true"], "timeoutMs": "5"}, "timeoutMs"),
    ("sandbox_exec", {"name": "sb", "argv": ["true"], "timeoutMs": 0}, "timeoutMs"),
    ("sandbox_exec", {"name": 5, "argv": ["true"]}, "name"),
    ("sandbox_create", {"from": "x", "net": "bridge"}, "net"),
    ("sandbox_create", {"from": "x", "ttl": "forever"}, "ttl"),
    ("sandbox_create", {"from": "x", "name": "Bad Name"}, "name"),
    ("sandbox_create", {"from": "x", "checkpointEach": "yes"}, "checkpointEach"),
    ("sandbox_write_file", {"name": "sb", "path": "/x"}, "content"),
    ("ssh_key_generate", {"name": "k", "type": "dsa"}, "type"),
    ("ssh_key_generate", {"name": "k", "comment": "c" * 129}, "comment"),
    ("vm_create", {"name": "v"}, "image"),
    ("vm_create", {"name": "v", "image": "/x", "memoryMib": 8}, "memoryMib"),
    ("vm_inject_ssh_key", {"name": "v"}, "key"),
    ("sandbox_diff", {"name": "sb", "from": ""}, "from"),
    ("review_create", {"name": "sb", "verify": 1}, "verify"),
]:
    e = call(name, arguments).get("error", {})
    check(e.get("code") == -32602 and e.get("data", {}).get("field") == field and
          field in e.get("message", ""), "%s %r: -32602 naming %s: %r" % (name, arguments, field, e))
# the vm_* tools do not exist for an agent
e = call("vm_list", {}, "--agent", "agent-a").get("error", {})
check(e.get("code") == -32602, "an agent's vm_list is an unknown tool: %r" % e)
# a tool that fails is a result with isError, not a JSON-RPC error
r = call("sandbox_exec", {"name": "nosuch", "argv": ["true"]}).get("result", {})
check(r.get("isError") is True and "nosuch" in r.get("content", [{}])[0].get("text", "") and
      "structuredContent" not in r, "a missing sandbox is isError: %r" % r)
r = call("sandbox_list", {}, "--agent", "agent-a").get("result", {})
check(r.get("isError") is False and r.get("structuredContent") == {"sandboxes": []} and
      json.loads(r["content"][0]["text"]) == r["structuredContent"],
      "sandbox_list: structured content and the same JSON as text: %r" % r)

# --- vm-provisioner's key tools, on a key store of the test's own --------------------
with tempfile.TemporaryDirectory(prefix="qvm-mcp-keys-") as kd:
    os.chmod(kd, 0o700)
    r = call("ssh_key_generate", {"name": "deploy", "comment": "ci"}, key_dir=kd).get("result", {})
    k = r.get("structuredContent", {})
    check(r.get("isError") is False and k.get("name") == "deploy" and k.get("type") == "ed25519" and
          k.get("publicKey", "").startswith("ssh-ed25519 ") and k.get("fingerprint", "").startswith("SHA256:"),
          "ssh_key_generate: %r" % r)
    check(os.stat(os.path.join(kd, "deploy")).st_mode & 0o777 == 0o600, "the private key is 0600")
    check("PRIVATE KEY" not in json.dumps(r), "the private key is never returned")
    r = call("ssh_key_generate", {"name": "deploy"}, key_dir=kd).get("result", {})
    check(r.get("isError") is True and "EEXISTS" in r["content"][0]["text"],
          "a taken key name is isError EEXISTS: %r" % r)
    r = call("ssh_key_generate", {"name": "../etc"}, key_dir=kd).get("result", {})
    check(r.get("isError") is True and not os.path.exists(os.path.join(kd, "..", "etc.pub")),
          "a key name with a path is refused: %r" % r)
    r = call("ssh_key_list", {}, key_dir=kd).get("result", {})
    keys = r.get("structuredContent", {}).get("keys", [])
    check([x.get("name") for x in keys] == ["deploy"] and keys[0].get("publicKey") == k.get("publicKey"),
          "ssh_key_list: %r" % r)
    r = call("vm_inject_ssh_key", {"name": "nosuch", "key": "deploy"}, key_dir=kd).get("result", {})
    check(r.get("isError") is True and "ENOTFOUND" in r["content"][0]["text"],
          "vm_inject_ssh_key into a missing vm: %r" % r)
    r = call("vm_inject_ssh_key", {"name": "nosuch", "key": "nokey"}, key_dir=kd).get("result", {})
    check(r.get("isError") is True and "nokey" in r["content"][0]["text"],
          "vm_inject_ssh_key of a missing key: %r" % r)
    e = call("ssh_key_list", {}, "--agent", "agent-a", key_dir=kd).get("error", {})
    check(e.get("code") == -32602, "an agent has no ssh_key_list: %r" % e)
r = call("vm_create", {"name": "v1", "image": "/nonexistent.qcow2"}).get("result", {})
check(r.get("isError") is True and "ENOTFOUND" in r["content"][0]["text"],
      "vm_create from a missing image: %r" % r)
for tool in ("sandbox_diff", "review_create"):
    r = call(tool, {"name": "nosuch"}, "--agent", "agent-a").get("result", {})
    check(r.get("isError") is True and "nosuch" in r["content"][0]["text"],
          "%s of a missing sandbox is isError: %r" % (tool, r))

# --- progress: only for a request with _meta.progressToken, with that token ----
for token in ("tok-1", 42, None):
    params = {"name": "sandbox_create", "arguments": {"from": "/nonexistent.qcow2"}}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    rc, by_id, answers = run(msg(1, "initialize", init) + msg(2, "tools/call", params))
    notes = [a for a in answers if a.get("method") == "notifications/progress"]
    if token is None:
        check(not notes, "no progress without a token: %r" % notes)
    else:
        check(notes and all(n["params"]["progressToken"] == token and "id" not in n for n in notes),
              "progress notifications carry the token %r: %r" % (token, notes))
    check(by_id.get(2, {}).get("result", {}).get("isError") is True and answers[-1].get("id") == 2,
          "the call still ends in its answer, after the notifications: %r" % answers)

# --- framing: a 5 MiB line, an unterminated last line, requests before initialize --
rc, by_id, answers = run(b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "x": "' +
                         b"a" * (5 << 20) + b'"}\n' + msg(2, "ping") + msg(None, "notifications/x") +
                         msg(3, "ping").rstrip(b"\n"))
check(rc == 0, "exit 0 after a 5 MiB line")
check(len(answers) == 3, "three answers (the long line's error, two pings): %r" % answers)
if answers:
    check(answers[0].get("error", {}).get("code") == -32600 and answers[0].get("id") is None,
          "a 5 MiB line is -32600 with id null: %r" % answers[0])
check(by_id.get(2, {}).get("result") == {} and by_id.get(3, {}).get("result") == {},
      "the pings after a 5 MiB line (the last without a newline) are answered")
rc, by_id, answers = run(b"")
check(rc == 0 and answers == [], "empty input: exit 0, nothing said")
rc, by_id, answers = run(b"\n  \n\r\n" + b"a" * (5 << 20))
check(rc == 0 and len(answers) == 1 and answers[0].get("error", {}).get("code") == -32600,
      "an overlong last line without newline: one -32600, exit 0: %r" % answers)

if failures:
    print("mcp_protocol: %d failure(s)" % len(failures), file=sys.stderr)
    sys.exit(1)
print("mcp_protocol: ok", file=sys.stderr)
