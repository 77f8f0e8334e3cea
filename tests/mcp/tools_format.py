#!/usr/bin/env python3
# qvm tools --format mcp|openai|anthropic (issue 17): the definitions are the
# ones `qvm mcp` lists (the same table); every input and output schema is a
# valid JSON Schema 2020-12 (jsonschema's metaschema check); each openai and
# anthropic definition round-trips to the MCP one (name, description, input
# schema); an agent gets no vm_* tool; a bad --format is exit 2.
import json
import os
import subprocess
import sys
import tempfile

from jsonschema import Draft202012Validator

qvm = os.path.join(os.environ["QVM_BINARY_DIR"], "qvm")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)


def env_for(d):
    env = dict(os.environ, QVM_STATE_DIR=d + "/state", QVM_RUNTIME_DIR=d + "/run")
    env.pop("QVM_AGENT", None)
    return env


def tools(d, *args):
    p = subprocess.run([qvm, "tools", *args], capture_output=True, env=env_for(d), timeout=60)
    check(p.returncode == 0, "qvm tools %s: exit %d: %s" % (args, p.returncode, p.stderr))
    return json.loads(p.stdout)


def served(d, *args):
    """What `qvm mcp ARGS` answers to tools/list."""
    lines = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "t", "version": "1"}}},
             {"jsonrpc": "2.0", "method": "notifications/initialized"},
             {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    data = "".join(json.dumps(m) + "\n" for m in lines).encode()
    p = subprocess.run([qvm, "mcp", *args], input=data, capture_output=True, env=env_for(d),
                       timeout=60)
    check(p.returncode == 0, "qvm mcp exit %d" % p.returncode)
    answers = {a.get("id"): a for a in map(json.loads, p.stdout.splitlines())}
    return answers[2]["result"]


def mcp_core(t):
    return {"name": t["name"], "description": t["description"], "inputSchema": t["inputSchema"]}


with tempfile.TemporaryDirectory(prefix="qvm-tools-") as d:
    for scope in ([], ["--agent", "agent-7"]):
        mcp = tools(d, *scope)
        check(mcp == served(d, *scope), "qvm tools %s differs from qvm mcp's tools/list" % scope)
        names = [t["name"] for t in mcp["tools"]]
        check(len(names) == len(set(names)) and len(names) >= 8, "tool names: %s" % names)
        if scope:
            check(not [n for n in names if n.startswith("vm_")], "an agent got vm_* tools: %s" % names)
        else:
            check("vm_list" in names and "sandbox_exec" in names, "tool names: %s" % names)
        for t in mcp["tools"]:
            for key in ("inputSchema", "outputSchema"):
                try:
                    Draft202012Validator.check_schema(t[key])
                except Exception as e:  # jsonschema.SchemaError
                    check(False, "%s.%s is not a 2020-12 schema: %s" % (t["name"], key, e))
                check(t[key].get("type") == "object", "%s.%s is not an object" % (t["name"], key))
        want = [mcp_core(t) for t in mcp["tools"]]

        openai = tools(d, "--format", "openai", *scope)
        check(all(set(f) == {"type", "function"} and f["type"] == "function" and
                  set(f["function"]) == {"name", "description", "parameters"} for f in openai),
              "openai shape")
        for f in openai:
            try:
                Draft202012Validator.check_schema(f["function"]["parameters"])
            except Exception as e:
                check(False, "openai %s parameters: %s" % (f["function"]["name"], e))
        back = [{"name": f["function"]["name"], "description": f["function"]["description"],
                 "inputSchema": f["function"]["parameters"]} for f in openai]
        check(back == want, "openai does not round-trip to the MCP definitions")

        anthropic = tools(d, "--format", "anthropic", *scope)
        check(all(set(t) == {"name", "description", "input_schema"} for t in anthropic),
              "anthropic shape")
        back = [{"name": t["name"], "description": t["description"],
                 "inputSchema": t["input_schema"]} for t in anthropic]
        check(back == want, "anthropic does not round-trip to the MCP definitions")

    # A schema the check would refuse is refused (the check can fail).
    try:
        Draft202012Validator.check_schema({"type": "object", "properties": {"a": {"type": 7}}})
        check(False, "jsonschema accepted a bad schema")
    except Exception:
        pass

    for bad in (["--format", "gemini"], ["--format"], ["extra"], ["--agent", "bad agent"]):
        p = subprocess.run([qvm, "tools", *bad], capture_output=True, env=env_for(d), timeout=60)
        check(p.returncode == 2 and not p.stdout, "qvm tools %s: exit %d" % (bad, p.returncode))
    p = subprocess.run([qvm, "tools", "--format", "gemini"], capture_output=True, env=env_for(d))
    check(b"use mcp, openai or anthropic" in p.stderr, "the bad format's message: %s" % p.stderr)

if failures:
    sys.exit(1)
print("ok")
