#!/usr/bin/env python3
"""api/openapi.json: the stream helper's routes (issue 16): exec as NDJSON
(on the two exec operations), files, ip, console and events (SSE).
Idempotent: it adds or replaces only these paths and components."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATH = os.path.join(ROOT, "api", "openapi.json")


def ref(kind, name):
    return {"$ref": f"#/components/{kind}/{name}"}


def problems(*codes):
    return {str(c): ref("responses", f"P{c}") for c in codes}


def name_param():
    return ref("parameters", "name")


GUEST_PATH = {
    "name": "path",
    "in": "query",
    "required": True,
    "description": "the file's absolute path in the guest (at most 4096 bytes, no control "
    "characters, not ending in '/')",
    "schema": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^/"},
}

SCHEMAS = {
    "ExecFrame": {
        "type": "object",
        "description": "One line of an NDJSON exec: output as it comes ({stream, data}), "
        "{truncated} once a stream is over 1 MiB, then one final {exit} or {error}.",
        "properties": {
            "stream": {"type": "string", "enum": ["stdout", "stderr"]},
            "data": {
                "type": "string",
                "description": "at most 64 KiB of output; valid UTF-8 as is, else neutralized "
                "text and dataBase64 has the bytes",
            },
            "dataBase64": {"type": "string"},
            "truncated": {
                "type": "string",
                "enum": ["stdout", "stderr"],
                "description": "this stream passed 1 MiB: the rest of it is dropped",
            },
            "exit": {
                "type": "object",
                "required": ["exitCode", "signal", "durationMs", "checkpoint"],
                "properties": {
                    "exitCode": {"type": ["integer", "null"]},
                    "signal": {"type": ["string", "null"]},
                    "durationMs": {"type": "integer"},
                    "checkpoint": {"type": ["string", "null"]},
                },
            },
            "error": ref("schemas", "Problem"),
        },
    },
    "FileWritten": {
        "type": "object",
        "required": ["path", "bytes", "mode"],
        "properties": {
            "path": {"type": "string"},
            "bytes": {"type": "integer"},
            "mode": {"type": "string", "pattern": "^0[0-7]{3}$"},
        },
    },
    "VmAddress": {
        "type": "object",
        "required": ["ip", "source"],
        "properties": {
            "ip": {
                "type": ["string", "null"],
                "description": "the guest's IPv4 address; null with user networking",
            },
            "source": {
                "type": "string",
                "description": "qvm-dhcp, dhcp-watch, neighbour, guest-agent, or user-network",
            },
            "sshHost": {"type": "string", "description": "user networking: SSH is forwarded here"},
            "sshPort": {"type": "integer"},
        },
    },
    "Console": {
        "type": "object",
        "required": ["text", "truncated"],
        "properties": {
            "text": {
                "type": "string",
                "description": "the serial log's last bytes; valid UTF-8 as is, else neutralized "
                "text and textBase64 has the bytes",
            },
            "textBase64": {"type": "string"},
            "truncated": {"type": "boolean", "description": "the log has more before these bytes"},
        },
    },
}


def files_ops(prefix, tag, agent):
    who = " (an agent token: its own sandboxes)" if agent else ""
    op = "Sandbox" if agent else "Vm"
    return {
        "put": {
            "operationId": f"upload{op}File",
            "summary": f"Write a file into the guest{who}",
            "description": "The body is the file's bytes (at most 64 MiB). A path naming a "
            "directory in the guest gets the file in it, under the path's last name.",
            "tags": [tag],
            "parameters": [
                name_param(),
                GUEST_PATH,
                {
                    "name": "mode",
                    "in": "query",
                    "required": False,
                    "description": "octal permission bits (default 0644)",
                    "schema": {"type": "string", "pattern": "^[0-7]{1,4}$"},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary", "maxLength": 67108864}
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "Written",
                    "content": {"application/json": {"schema": ref("schemas", "FileWritten")}},
                },
                **problems(401, 403, 404, 409, 413, 415, 422, 429, 502, 503, 504),
            },
        },
        "get": {
            "operationId": f"download{op}File",
            "summary": f"Read a file from the guest{who}",
            "description": "At most 64 MiB (the guest may serve an endless file).",
            "tags": [tag],
            "parameters": [name_param(), GUEST_PATH],
            "responses": {
                "200": {
                    "description": "The file's bytes",
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                **problems(401, 404, 409, 422, 429, 502, 503, 504),
            },
        },
    }


def main():
    with open(PATH, encoding="utf-8") as f:
        doc = json.load(f)
    comps = doc.setdefault("components", {})
    comps.setdefault("schemas", {}).update(SCHEMAS)
    exec_req = comps["schemas"].get("ExecRequest")
    if exec_req:
        exec_req.setdefault("properties", {})["stream"] = {
            "type": "boolean",
            "description": "answer as NDJSON frames (ExecFrame) as the command runs, as "
            "'Accept: application/x-ndjson' does",
        }
    paths = doc.setdefault("paths", {})
    for p in ("/api/v1/vms/{name}/exec", "/api/v1/sandboxes/{name}/exec"):
        resp = paths.get(p, {}).get("post", {}).get("responses", {}).get("200")
        if resp is not None:
            resp.setdefault("content", {})["application/x-ndjson"] = {
                "schema": ref("schemas", "ExecFrame")
            }
    paths["/api/v1/vms/{name}/files"] = files_ops("/api/v1/vms", "vms", False)
    paths["/api/v1/sandboxes/{name}/files"] = files_ops("/api/v1/sandboxes", "sandboxes", True)
    paths["/api/v1/vms/{name}/ip"] = {
        "get": {
            "operationId": "getVmIp",
            "summary": "The guest's address and where it came from",
            "tags": ["vms"],
            "parameters": [name_param()],
            "responses": {
                "200": {
                    "description": "The address",
                    "content": {"application/json": {"schema": ref("schemas", "VmAddress")}},
                },
                **problems(401, 404, 409, 422, 429),
            },
        }
    }
    paths["/api/v1/vms/{name}/console"] = {
        "get": {
            "operationId": "getVmConsole",
            "summary": "The last bytes of the VM's serial console log",
            "tags": ["vms"],
            "parameters": [
                name_param(),
                {
                    "name": "tail",
                    "in": "query",
                    "required": False,
                    "description": "how many bytes from the end (default 65536)",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1048576},
                },
            ],
            "responses": {
                "200": {
                    "description": "The log's tail",
                    "content": {"application/json": {"schema": ref("schemas", "Console")}},
                },
                **problems(401, 404, 422, 429),
            },
        }
    }
    paths["/api/v1/events"] = {
        "get": {
            "operationId": "streamEvents",
            "summary": "The VMs' events as Server-Sent Events",
            "description": "Frames 'id: VM.FILE.OFFSET', 'event: NAME', 'data: {\"vm\": VM, "
            "...}' from each VM's events.jsonl, 'vm-created' and 'vm-removed' frames, and a "
            "comment every 15 s. Last-Event-ID resumes that VM after that event. An agent "
            "token sees its own sandboxes only. At most 64 streams at once.",
            "tags": ["vms"],
            "parameters": [
                {
                    "name": "vm",
                    "in": "query",
                    "required": False,
                    "description": "one VM's events",
                    "schema": {"type": "string"},
                },
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "description": "the id of the last event received",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": {
                    "description": "The stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **problems(401, 404, 422, 429, 503),
            },
        }
    }
    with open(PATH, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
