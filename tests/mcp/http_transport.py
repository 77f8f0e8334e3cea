#!/usr/bin/env python3
# qvmd's /mcp (the streamable HTTP transport) with no VM, raw HTTP from a
# hostile client's side (issue 17): server/discover and initialize without a
# session (a session id sent is ignored), both revisions' version checks
# (the MCP-Protocol-Version header and _meta), the scopes (a read token lists
# and calls only read-only tools, an agent token gets no vm_* tool), a
# tools/call with a progress token as an event stream and without one as
# JSON, 202 for notifications (a notifications/cancelled for nothing under
# way too), 405 for GET, 403 for a foreign Host or Origin (DNS rebinding),
# 400 for bad JSON, 406, 413, 401; then qvmd still answers.
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

qvmd = os.path.join(os.environ["QVM_BINARY_DIR"], "qvmd")
failures = []
TOKENS = {"full": "full-token-0123456789abcdef", "read": "read-token-0123456789abcdef",
          "agent": "agent-a-token-0123456789abc"}


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)


def post(port, body, token="full", headers=None, method="POST"):
    """(status, headers, body bytes) of one request to /mcp."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = {"Authorization": "Bearer " + TOKENS.get(token, token),
         "Accept": "application/json, text/event-stream"}
    if body is not None:
        h["Content-Type"] = "application/json"
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
    h.update(headers or {})
    c.request(method, "/mcp", body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def rpc(port, id_, method, params=None, **kw):
    m = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        m["params"] = params
    status, hdrs, data = post(port, m, **kw)
    try:
        return status, hdrs, json.loads(data)
    except ValueError:
        return status, hdrs, data


with tempfile.TemporaryDirectory(prefix="qvm-mcp-http-") as d:
    env = dict(os.environ, QVM_STATE_DIR=d + "/state", QVM_RUNTIME_DIR=d + "/run")
    env.pop("QVM_AGENT", None)
    os.makedirs(d + "/state", mode=0o700)
    os.makedirs(d + "/run", mode=0o700)
    with open(d + "/tokens", "w") as f:
        f.write("%s full\n%s read\n%s agent:agent-a\n" %
                (TOKENS["full"], TOKENS["read"], TOKENS["agent"]))
    os.chmod(d + "/tokens", 0o600)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = open(d + "/qvmd.log", "w+")
    p = subprocess.Popen([qvmd, "--socket", d + "/qvmd.sock", "--listen", "127.0.0.1:%d" % port,
                          "--tokens", d + "/tokens", "--rate-limit", "0"], env=env, stderr=log)
    try:
        for _ in range(100):
            log.seek(0)
            if "qvmd: serving" in log.read():
                break
            time.sleep(0.05)
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}}

        # --- the two revisions, no session ---------------------------------------
        st, h, r = rpc(port, 1, "server/discover", {"_meta": meta})
        res = r.get("result", {}) if isinstance(r, dict) else {}
        check(st == 200 and h.get("content-type", "").startswith("application/json"),
              "server/discover: %d %r" % (st, h))
        check(res.get("resultType") == "complete" and "2026-07-28" in res.get("supportedVersions", [])
              and "2025-11-25" in res["supportedVersions"] and res.get("capabilities") == {"tools": {}},
              "server/discover: %r" % res)
        check("mcp-session-id" not in h, "no session id is issued")
        st, h, r = rpc(port, 2, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                               "clientInfo": {"name": "t", "version": "1"}},
                       headers={"Mcp-Session-Id": "ignored"})
        check(st == 200 and r.get("result", {}).get("protocolVersion") == "2025-11-25" and
              "mcp-session-id" not in h, "initialize, a session id sent is ignored: %r" % r)
        st, h, r = rpc(port, 3, "tools/list", {"_meta": dict(meta, **{
            "io.modelcontextprotocol/protocolVersion": "2099-01-01"})})
        check(r.get("error", {}).get("code") == -32022, "an unknown _meta version: %r" % r)
        st, h, r = rpc(port, 4, "ping", headers={"MCP-Protocol-Version": "1999-01-01"})
        check(st == 400, "an unknown MCP-Protocol-Version header: %d" % st)
        st, h, r = rpc(port, 5, "tools/list", {"_meta": meta},
                       headers={"MCP-Protocol-Version": "2025-11-25"})
        check(st == 400, "a header and a _meta that differ: %d" % st)

        # --- scopes --------------------------------------------------------------
        st, h, r = rpc(port, 6, "tools/list", token="read")
        tools = r.get("result", {}).get("tools", [])
        check(tools and all(t["annotations"]["readOnlyHint"] for t in tools) and
              "sandbox_list" in [t["name"] for t in tools], "a read token's tools: %r" %
              [t["name"] for t in tools])
        st, h, r = rpc(port, 7, "tools/call", {"name": "vm_delete", "arguments": {"name": "x"}},
                       token="read")
        e = r.get("error", {})
        check(e.get("code") == -32602 and e.get("data", {}).get("field") == "name",
              "a read token calls a tool that changes things: %r" % e)
        st, h, r = rpc(port, 8, "tools/call", {"name": "sandbox_list", "arguments": {}}, token="read")
        check(r.get("result", {}).get("structuredContent") == {"sandboxes": []},
              "a read token calls a read-only tool: %r" % r)
        st, h, r = rpc(port, 9, "tools/list", token="agent")
        names = [t["name"] for t in r.get("result", {}).get("tools", [])]
        check(names and not any(n.startswith("vm_") or n.startswith("ssh_key") for n in names),
              "an agent token's tools: %r" % names)

        # --- a tools/call: JSON, or an event stream with a progress token -------------
        st, h, r = rpc(port, 10, "tools/call", {"name": "vm_list", "arguments": {}})
        check(st == 200 and r.get("result", {}).get("structuredContent") == {"vms": []},
              "tools/call as JSON: %r" % r)
        st, h, data = post(port, {"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {
            "name": "sandbox_create", "arguments": {"from": "no-such-image"},
            "_meta": {"progressToken": "p"}}})
        check(st == 200 and h.get("content-type", "").startswith("text/event-stream"),
              "a progress token gets an event stream: %d %r" % (st, h))
        events = [e for e in data.decode().split("\n\n") if e.strip()]
        msgs = [json.loads(e.split("data: ", 1)[1]) for e in events
                if e.startswith("event: message\ndata: ")]
        check(len(msgs) == len(events) and len(msgs) >= 2, "every event is a message: %r" % data)
        check(msgs and msgs[0].get("method") == "notifications/progress" and
              msgs[0]["params"]["progressToken"] == "p", "progress first: %r" % msgs[:1])
        check(msgs and msgs[-1].get("id") == 11 and msgs[-1].get("result", {}).get("isError") is True,
              "the answer last (a tool error): %r" % msgs[-1:])
        st, h, r = rpc(port, 12, "tools/call", {"name": "sandbox_exec",
                                                "arguments": {"name": "sb", "argv": "ls"}})
        check(r.get("error", {}).get("data", {}).get("field") == "argv", "bad args: %r" % r)

        # --- notifications, methods, hostile requests ---------------------------------
        st, h, data = post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        check((st, data) == (202, b""), "a notification: %d %r" % (st, data))
        st, h, data = post(port, {"jsonrpc": "2.0", "method": "notifications/cancelled",
                                  "params": {"requestId": 99}})
        check((st, data) == (202, b""), "cancelling nothing: %d %r" % (st, data))
        st, h, data = post(port, {"jsonrpc": "2.0", "id": 5, "result": {}})
        check(st == 202, "a response from the client: %d" % st)
        st, h, data = post(port, None, method="GET")
        check(st == 405 and h.get("allow") == "POST", "GET: %d %r" % (st, h))
        for hdrs, what in [({"Origin": "http://evil.example"}, "a foreign Origin"),
                           ({"Host": "evil.example"}, "a foreign Host"),
                           ({"Host": "evil.example:%d" % port, "Origin": "http://evil.example:%d" % port},
                            "a rebound name as Host and Origin"),
                           ({"Origin": "http://127.0.0.1:x"}, "a bad port")]:
            st, h, r = rpc(port, 13, "ping", headers=hdrs)
            check(st == 403, "%s: %d" % (what, st))
        st, h, r = rpc(port, 14, "ping", headers={"Origin": "http://localhost:3000"})
        check(st == 200, "a loopback Origin: %d" % st)
        for body, status, what in [(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"', 400, "cut JSON"),
                                   (b'\xff{"jsonrpc": "2.0", "id": 1, "method": "ping"}', 400, "not UTF-8"),
                                   (b"[" * 5000 + b"]" * 5000, 400, "deep nesting")]:
            st, h, data = post(port, body)
            check(st == status, "%s: %d, not %d" % (what, st, status))
        # over 1 MiB: refused by its length, before the body is read
        with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
            c.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                      b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" %
                      (TOKENS["full"].encode(), (1 << 20) + 1))
            head = c.recv(4096)
        check(head.startswith(b"HTTP/1.1 413"), "over 1 MiB: %r" % head[:60])
        st, h, data = post(port, {"jsonrpc": "2.0", "id": 15, "method": "ping"},
                           headers={"Accept": "text/html"})
        check(st == 406, "Accept without JSON: %d" % st)
        st, h, data = post(port, {"jsonrpc": "2.0", "id": 16, "method": "ping"}, token="nope")
        check(st == 401, "a bad token: %d" % st)
        st, h, r = rpc(port, 17, "ping")
        check(st == 200 and r.get("result") == {}, "still answering: %r" % r)
        check(p.poll() is None, "qvmd is still running")
    finally:
        p.terminate()
        p.wait(timeout=30)
        log.seek(0)
        out = log.read()
        check("Sanitizer" not in out, "no sanitizer report: %s" % out[-2000:])

if failures:
    sys.exit(1)
print("mcp_http: ok")
