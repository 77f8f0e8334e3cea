#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Adds (or replaces) the long-operations and images part of api/openapi.json:
/api/v1/operations..., /api/v1/images..., their components, and the 202
(Prefer: respond-async) answers of POST /api/v1/vms, POST /api/v1/sandboxes
and POST /api/v1/vms/{name}/start. Idempotent: run it again after a merge.

    scripts/openapi/ops.py [api/openapi.json]
"""
import json
import os
import sys

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "api", "openapi.json")
with open(path, encoding="utf-8") as f:
    doc = json.load(f)


def p(code):
    return {"$ref": "#/components/responses/P%s" % code}


def errors(*codes):
    return {str(c): p(c) for c in codes}


def json_body(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def ref(name):
    return {"$ref": "#/components/schemas/%s" % name}


comp = doc["components"]
comp["schemas"]["OperationProgress"] = {
    "type": "object",
    "required": ["phase", "done", "total"],
    "properties": {
        "phase": {"type": "string", "description": "queued, create, start, resolve, connect, "
                  "download, retry, verify, inspect, done, ..."},
        "done": {"type": "integer", "format": "int64", "minimum": 0,
                 "description": "bytes (an image pull), else 0"},
        "total": {"type": "integer", "format": "int64", "minimum": 0,
                  "description": "0: unknown"},
    },
}
comp["schemas"]["Operation"] = {
    "type": "object",
    "description": "Long work (docs/qvmd.md, \"Operations\"). result is what the synchronous "
                   "route would have answered (a Vm, a Sandbox, an Image); error a problem.",
    "required": ["id", "kind", "target", "state", "interrupted", "cancelRequested",
                 "createdAt", "updatedAt", "progress", "result", "error"],
    "properties": {
        "id": {"type": "string", "pattern": "^op-[0-9a-f]{32}$"},
        "kind": {"type": "string",
                 "enum": ["image.pull", "vm.create", "vm.start", "sandbox.create"]},
        "target": {"type": "string", "description": "the VM, sandbox or image (name or source)"},
        "state": {"type": "string",
                  "enum": ["running", "succeeded", "failed", "cancelled", "interrupted"]},
        "interrupted": {"type": "boolean",
                        "description": "the qvmd running it stopped; state is what was found "
                                       "when the next qvmd reconciled its target"},
        "cancelRequested": {"type": "boolean"},
        "createdAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
        "progress": ref("OperationProgress"),
        "result": {"description": "succeeded: the outcome (null otherwise)"},
        "error": {"description": "failed or cancelled: a problem",
                  "oneOf": [ref("Problem"), {"type": "null"}]},
    },
}
comp["schemas"]["Image"] = {
    "type": "object",
    "description": "A stored image (include/qvm/image.h, qvm_image_list)",
    "properties": {
        "digest": {"type": "string"},
        "names": {"type": "array", "items": {"type": "string"}},
        "format": {"type": "string"},
        "virtualSize": {"type": "integer", "format": "int64"},
        "fileSize": {"type": "integer", "format": "int64"},
        "source": {"type": "string"},
        "verified": {"type": ["string", "null"]},
        "created": {"type": "string"},
        "usedBy": {"type": "array", "items": {"type": "string"}},
    },
}
comp["schemas"]["CatalogEntry"] = {
    "type": "object",
    "properties": {
        "alias": {"type": "string"},
        "url": {"type": "string"},
        "checksums": {"type": "string"},
        "sha256": {"type": "string"},
        "sha512": {"type": "string"},
        "description": {"type": "string"},
        "origin": {"type": "string"},
        "stored": {"type": ["string", "null"]},
    },
}
comp["schemas"]["ImagePull"] = {
    "type": "object",
    "required": ["source"],
    "additionalProperties": False,
    "properties": {
        "source": {"type": "string", "maxLength": 4096,
                   "description": "an http(s):// or file:// URL, a path or a catalog alias"},
        "name": {"type": "string", "maxLength": 128, "description": "a store name for it"},
        "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
        "sha512": {"type": "string", "pattern": "^[0-9a-fA-F]{128}$"},
        "checksums": {"type": "string", "maxLength": 4096,
                      "description": "the URL of a SHA256SUMS or SHA512SUMS file"},
    },
}
comp["parameters"]["operationId"] = {
    "name": "id", "in": "path", "required": True, "description": "an operation id",
    "schema": {"type": "string", "pattern": "^op-[0-9a-f]{32}$"},
}
comp["parameters"]["imageRef"] = {
    "name": "ref", "in": "path", "required": True,
    "description": "a store name, sha256:DIGEST or a unique digest prefix",
    "schema": {"type": "string", "maxLength": 4096},
}
comp["parameters"]["prefer"] = {
    "name": "Prefer", "in": "header", "required": False,
    "description": "respond-async (RFC 7240): answer 202 with an operation",
    "schema": {"type": "string"},
}
accepted = {
    "description": "Accepted: an operation (Location: /api/v1/operations/{id})",
    "headers": {
        "Location": {"description": "the operation", "schema": {"type": "string"}},
        "Preference-Applied": {"description": "respond-async, when it was asked",
                               "schema": {"type": "string"}},
    },
    "content": {"application/json": {"schema": ref("Operation")}},
}
comp["responses"]["Accepted"] = accepted
acc = {"$ref": "#/components/responses/Accepted"}

paths = doc["paths"]
paths["/api/v1/operations"] = {"get": {
    "operationId": "listOperations",
    "summary": "List operations, newest first (an agent token: its own)",
    "tags": ["operations"],
    "parameters": [{"name": "limit", "in": "query", "required": False,
                    "description": "at most this many (default 50)",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 1224}}],
    "responses": {"200": json_body({"type": "array", "items": ref("Operation")},
                                   "The operations"), **errors(401, 422, 429)},
}}
paths["/api/v1/operations/{id}"] = {
    "parameters": [{"$ref": "#/components/parameters/operationId"}],
    "get": {
        "operationId": "getOperation",
        "summary": "An operation; with waitMs, once it ended or waitMs passed",
        "tags": ["operations"],
        "parameters": [{"name": "waitMs", "in": "query", "required": False,
                        "description": "long-poll: wait up to this many ms (capped at 60000) "
                                       "for the operation to end",
                        "schema": {"type": "integer", "minimum": 0}}],
        "responses": {"200": json_body(ref("Operation"), "The operation"),
                      **errors(401, 404, 422, 429)},
    },
    "delete": {
        "operationId": "cancelOperation",
        "summary": "Cancel a running operation",
        "description": "202: the cancel was asked; the work stops at its next step (an image "
                       "pull within a moment, a create between its steps) and removes what it "
                       "made. 409: the operation has ended already.",
        "tags": ["operations"],
        "responses": {"202": json_body(ref("Operation"), "Cancel asked"),
                      **errors(401, 403, 404, 409, 429)},
    },
}
paths["/api/v1/operations/{id}/events"] = {
    "parameters": [{"$ref": "#/components/parameters/operationId"}],
    "get": {
        "operationId": "operationEvents",
        "summary": "Follow an operation (Server-Sent Events) until it ends",
        "description": "text/event-stream: 'event: state' frames (the whole operation: the "
                       "first frame and every change of state) and 'event: progress' frames "
                       "({phase, done, total}); comments as keep-alives; the stream ends with "
                       "the operation.",
        "tags": ["operations"],
        "responses": {"200": {"description": "The event stream",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                      **errors(401, 404, 429)},
    },
}
paths["/api/v1/images"] = {
    "get": {
        "operationId": "listImages",
        "summary": "List the stored images",
        "tags": ["images"],
        "responses": {"200": json_body({"type": "array", "items": ref("Image")}, "The images"),
                      **errors(401, 429)},
    },
    "post": {
        "operationId": "pullImage",
        "summary": "Pull an image into the store (an operation)",
        "description": "Always 202 with an operation. An http(s) URL without a checksum is "
                       "422 (class ImageUnverified) before any operation starts.",
        "tags": ["images"],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": ref("ImagePull")}}},
        "responses": {"202": acc, **errors(400, 401, 403, 404, 413, 415, 422, 429, 503)},
    },
}
paths["/api/v1/images/catalog"] = {"get": {
    "operationId": "imageCatalog",
    "summary": "The image catalog (aliases)",
    "tags": ["images"],
    "responses": {"200": json_body({"type": "array", "items": ref("CatalogEntry")},
                                   "The catalog"), **errors(401, 429)},
}}
paths["/api/v1/images/{ref}"] = {
    "parameters": [{"$ref": "#/components/parameters/imageRef"}],
    "get": {
        "operationId": "getImage",
        "summary": "One stored image",
        "tags": ["images"],
        "responses": {"200": json_body(ref("Image"), "The image"),
                      **errors(401, 404, 422, 429)},
    },
    "delete": {
        "operationId": "deleteImage",
        "summary": "Remove a name, or the image (409 while a VM uses it)",
        "tags": ["images"],
        "responses": {"204": {"description": "Removed"},
                      **errors(401, 403, 404, 409, 422, 429)},
    },
}

# The routes that become operations with Prefer: respond-async.
for route in ("/api/v1/vms", "/api/v1/sandboxes", "/api/v1/vms/{name}/start"):
    op = paths[route]["post"]
    params = [x for x in op.get("parameters", [])
              if x != {"$ref": "#/components/parameters/prefer"}]
    params.append({"$ref": "#/components/parameters/prefer"})
    op["parameters"] = params
    op["responses"]["202"] = acc
    note = "With Prefer: respond-async, 202 and an operation instead."
    desc = op.get("description", "")
    if note not in desc:
        op["description"] = (desc + " " + note).strip()

tags = doc["tags"]
for name, description in (("operations", "Long operations (202 Accepted)"),
                          ("images", "The image store")):
    if not any(t["name"] == name for t in tags):
        tags.append({"name": name, "description": description})

with open(path, "w", encoding="utf-8") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
    f.write("\n")
