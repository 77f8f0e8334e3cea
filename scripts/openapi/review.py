#!/usr/bin/env python3
"""Adds (or replaces) the review routes (issue 16: /api/v1/reviews...) in
api/openapi.json. Idempotent: run it again after a merge."""
import json
import os
import sys

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "api", "openapi.json")
with open(path, encoding="utf-8") as f:
    doc = json.load(f)


def ref(kind, name):
    return {"$ref": f"#/components/{kind}/{name}"}


def problems(*codes):
    return {str(c): ref("responses", f"P{c}") for c in codes}


def json_body(schema, required=True):
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def ok(desc, schema, code="200"):
    return {code: {"description": desc, "content": {"application/json": {"schema": schema}}}}


READ = (400, 401, 403, 404, 422, 429)
WRITE = (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
ID = ref("parameters", "reviewId")

schemas = doc["components"]["schemas"]
schemas["ReviewActor"] = {
    "type": "object",
    "description": "who did it: the Unix user qvmd (or qvm) runs as, and the agent id "
                   "(an agent token's, or $QVM_AGENT)",
    "properties": {
        "uid": {"type": "integer"},
        "user": {"type": ["string", "null"]},
        "agent": {"type": ["string", "null"]},
    },
}
schemas["Review"] = {
    "type": "object",
    "description": "A change set's meta (include/qvm/review.h), keys in camelCase.",
    "required": ["id", "vm", "status"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9a-f]{12}$"},
        "vm": {"type": "string"},
        "status": {"type": "string",
                   "enum": ["pending", "pending-with-differences", "approved", "rejected",
                            "applied"]},
        "author": ref("schemas", "ReviewActor"),
        "created": {"type": "string"},
        "base": {"type": "object", "description": "what the diff was taken against"},
        "changes": {"type": "integer"},
        "diffSha256": {"type": "string"},
        "playbookSha256": {"type": "string"},
        "approval": {"type": ["object", "null"],
                     "description": "the approval, bound to the two sha256s"},
        "history": {"type": "array", "items": {"type": "object"},
                    "description": "every step, with its actor"},
        "applies": {"type": "array", "items": {"type": "object"}},
    },
}
schemas["ReviewCreate"] = {
    "type": "object",
    "required": ["vm"],
    "additionalProperties": False,
    "properties": {
        "vm": {"type": "string", "description": "the VM (an agent token: its own sandbox)"},
        "from": {"type": "string", "description": "the base: an internal snapshot of the VM; "
                                                  "absent: the image the VM was made from"},
        "verify": {"type": "boolean", "default": False,
                   "description": "replay the playbook on a clone of the snapshot first "
                                  "(needs from; boots a VM: minutes)"},
        "timeoutMs": {"type": "integer", "minimum": 1000, "maximum": 3600000},
    },
}
schemas["ReviewDiff"] = {
    "type": "object",
    "description": "diff.json (qvm diff --json), keys in camelCase. Paths come from the "
                   "guest: neutralized, the raw bytes in pathB64 when that changed them.",
    "properties": {
        "changes": {"type": "array", "items": {"type": "object"}},
        "packages": {"type": "array", "items": {"type": "object"}},
        "units": {"type": "array", "items": {"type": "object"}},
        "users": {"type": "array", "items": {"type": "object"}},
        "groups": {"type": "array", "items": {"type": "object"}},
    },
}
schemas["ReviewPlaybook"] = {
    "type": "object",
    "required": ["files", "truncated"],
    "properties": {
        "id": {"type": "string"},
        "files": {
            "type": "array",
            "description": "the playbook dir's regular files, sorted; at most 256 files, "
                           "256 KiB of one, 1 MiB in all",
            "items": {
                "type": "object",
                "required": ["path", "size", "truncated"],
                "properties": {
                    "path": {"type": "string"},
                    "size": {"type": "integer"},
                    "text": {"type": "string", "description": "valid UTF-8, else neutralized "
                                                             "(the bytes in textBase64)"},
                    "textBase64": {"type": "string"},
                    "truncated": {"type": "boolean"},
                },
            },
        },
        "truncated": {"type": "boolean"},
    },
}
schemas["ReviewEdit"] = {
    "type": "object",
    "required": ["text"],
    "additionalProperties": False,
    "properties": {"text": {"type": "string", "maxLength": 524288,
                            "description": "the new playbook.yml"}},
}
schemas["ReviewEdited"] = {
    "type": "object",
    "required": ["changed", "review"],
    "properties": {"changed": {"type": "boolean"}, "review": ref("schemas", "Review")},
}
schemas["ReviewDecision"] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"comment": {"type": "string", "maxLength": 4096}},
}
schemas["ReviewApply"] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "target": {"type": "string", "description": "a running VM; absent: the review's VM"},
        "timeoutMs": {"type": "integer", "minimum": 1000, "maximum": 7200000},
    },
}
schemas["ReviewApplied"] = {
    "type": "object",
    "required": ["id", "exit"],
    "properties": {
        "id": {"type": "string"},
        "exit": {"type": "integer", "description": "ansible-playbook's exit status"},
        "recap": {"type": "boolean", "description": "ansible printed its recap"},
        "ok": {"type": "integer"},
        "changed": {"type": "integer"},
        "failed": {"type": "integer"},
        "unreachable": {"type": "integer"},
        "log": {"type": "string"},
    },
}
doc["components"]["parameters"]["reviewId"] = {
    "name": "id", "in": "path", "required": True, "description": "a review id",
    "schema": {"type": "string", "pattern": "^[0-9a-f]{12}$"},
}

tag = "reviews"
if not any(t["name"] == tag for t in doc["tags"]):
    doc["tags"].append({"name": tag, "description": "Change sets with a human gate"})

paths = doc["paths"]
paths["/api/v1/reviews"] = {
    "get": {
        "operationId": "listReviews", "summary": "List change sets", "tags": [tag],
        "description": "Oldest first. An agent token sees the ones its agent made.",
        "parameters": [{"name": "vm", "in": "query", "required": False,
                        "description": "only this VM's", "schema": {"type": "string"}}],
        "responses": {**ok("The change sets", {"type": "array",
                                               "items": ref("schemas", "Review")}),
                      **problems(*READ)},
    },
    "post": {
        "operationId": "createReview", "summary": "Make a change set of a VM", "tags": [tag],
        "description": "Diffs the VM's disk against its base and writes the playbook "
                       "(seconds; counted against --max-work). Agent tokens: their own "
                       "sandboxes, and the change set's author is their agent.",
        "requestBody": json_body(ref("schemas", "ReviewCreate")),
        "responses": {
            "201": {"description": "The change set",
                    "headers": {"Location": {"description": "the review's URL",
                                             "schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": ref("schemas", "Review")}}},
            **problems(*WRITE, 502, 504)},
    },
}
paths["/api/v1/reviews/{id}"] = {
    "get": {
        "operationId": "getReview", "summary": "Show a change set", "tags": [tag],
        "parameters": [ID],
        "responses": {**ok("The change set", ref("schemas", "Review")), **problems(*READ)},
    },
}
paths["/api/v1/reviews/{id}/diff"] = {
    "get": {
        "operationId": "getReviewDiff", "summary": "A change set's diff", "tags": [tag],
        "parameters": [ID],
        "responses": {**ok("The diff", ref("schemas", "ReviewDiff")), **problems(*READ)},
    },
}
paths["/api/v1/reviews/{id}/playbook"] = {
    "get": {
        "operationId": "getReviewPlaybook", "summary": "A change set's playbook", "tags": [tag],
        "description": "JSON: every file of the playbook dir (bounded). format=yaml (or "
                       "Accept: text/yaml): playbook.yml as text.",
        "parameters": [ID, {"name": "format", "in": "query", "required": False,
                            "description": "json (default) or yaml",
                            "schema": {"type": "string", "enum": ["json", "yaml"]}}],
        "responses": {
            "200": {"description": "The playbook",
                    "content": {"application/json": {"schema": ref("schemas", "ReviewPlaybook")},
                                "text/yaml": {"schema": {"type": "string"}}}},
            **problems(*READ)},
    },
    "put": {
        "operationId": "editReviewPlaybook", "summary": "Edit a change set's playbook",
        "tags": [tag],
        "description": "Replaces playbook.yml after ansible-playbook --syntax-check (422, "
                       "field text, when it fails). An accepted change voids an approval. "
                       "Operator tokens only.",
        "parameters": [ID],
        "requestBody": json_body(ref("schemas", "ReviewEdit")),
        "responses": {**ok("The edit", ref("schemas", "ReviewEdited")), **problems(*WRITE)},
    },
}
for verb, summary, desc in (
        ("approve", "Approve a change set",
         "Bound to the diff's and playbook's sha256. 403 (class SelfApproval) when the "
         "approver's agent made or edited it. Operator tokens only."),
        ("reject", "Reject a change set", "Final. Operator tokens only.")):
    paths[f"/api/v1/reviews/{{id}}/{verb}"] = {
        "post": {
            "operationId": f"{verb}Review", "summary": summary, "tags": [tag],
            "description": desc, "parameters": [ID],
            "requestBody": json_body(ref("schemas", "ReviewDecision"), required=False),
            "responses": {**ok("The change set", ref("schemas", "Review")),
                          **problems(*WRITE)},
        },
    }
paths["/api/v1/reviews/{id}/apply"] = {
    "post": {
        "operationId": "applyReview", "summary": "Apply an approved change set", "tags": [tag],
        "description": "Runs ansible-playbook against a running VM (default: the review's "
                       "own); 200 also when ansible failed (see exit). Operator tokens only.",
        "parameters": [ID],
        "requestBody": json_body(ref("schemas", "ReviewApply"), required=False),
        "responses": {**ok("The run", ref("schemas", "ReviewApplied")),
                      **problems(*WRITE, 502, 504)},
    },
}

with open(path, "w", encoding="utf-8") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
    f.write("\n")
