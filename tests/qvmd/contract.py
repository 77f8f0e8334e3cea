#!/usr/bin/env python3
"""qvmd's contract test: every answer the qvmd tests got (recorded by
tests/qvmd/lib.sh's req into QVM_CONTRACT_DIR) is checked against
api/openapi.json, and every documented route must have been called.

For each recorded answer: the route (method and path template) is in the
document, its status is one the operation documents, its content type is one
that status documents, and a JSON body validates against that content's schema
(JSON Schema 2020-12, as OpenAPI 3.1 has it, with the document's
#/components for $ref). Routes outside the document (vm-provisioner's /api/...
aliases, /mcp, the review page's files) are counted and left alone.

Coverage: every documented (method, path) must have at least one answer of a
2xx status, when every test named in --tests left records (a partial ctest
run prints what it could not check instead).

usage: contract.py OPENAPI_JSON RECORD_DIR --tests NAME[,NAME...]
"""
import argparse
import json
import os
import re
import sys
from collections import defaultdict

from jsonschema import Draft202012Validator

METHODS = ("get", "post", "put", "patch", "delete")


def load_records(d):
    recs = []
    for name in sorted(os.listdir(d)):
        if not name.endswith(".meta"):
            continue
        base = name[: -len(".meta")]
        with open(os.path.join(d, name), encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        if len(lines) < 4:
            raise SystemExit(f"contract: {name}: a record of {len(lines)} lines")
        with open(os.path.join(d, base + ".body"), "rb") as f:
            body = f.read()
        recs.append(
            {
                "test": "qvmd_" + re.sub(r"-\d+-\d+$", "", base),
                "id": base,
                "method": lines[0].lower(),
                "path": lines[1],
                "status": lines[2],
                "ctype": lines[3].strip().lower(),
                "body": body,
            }
        )
    return recs


def template_regex(template):
    parts = re.split(r"(\{[^}/]+\})", template)
    rx = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile("^" + rx + "$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("openapi")
    ap.add_argument("records")
    ap.add_argument("--tests", default="")
    a = ap.parse_args()

    with open(a.openapi, encoding="utf-8") as f:
        doc = json.load(f)
    def resolve(obj):
        """A response object with its $ref followed."""
        while isinstance(obj, dict) and "$ref" in obj:
            ref = obj["$ref"]
            assert ref.startswith("#/"), ref
            node = doc
            for part in ref[2:].split("/"):
                node = node[part]
            obj = node
        return obj

    routes = []  # (regex, template, method, operation)
    for template, item in doc["paths"].items():
        rx = template_regex(template)
        for m in METHODS:
            if m in item:
                routes.append((rx, template, m, item[m]))
    # Literal segments win over {params} (as /images/catalog over /images/{ref}).
    routes.sort(key=lambda r: r[1].count("{"))

    if not os.path.isdir(a.records):
        raise SystemExit(f"contract: no records in {a.records}: did the qvmd tests run?")
    recs = load_records(a.records)
    failures = []
    covered = defaultdict(set)  # (method, template) -> statuses
    outside = defaultdict(int)
    validated = 0
    by_mhd = []
    for r in recs:
        path = r["path"].split("?", 1)[0]
        # A request line or header over its memory (64 KiB) is answered by
        # libmicrohttpd itself, before qvmd sees the request: an HTML page.
        if r["status"] in ("414", "431") and r["ctype"] in ("", "text/html"):
            by_mhd.append(f"{r['status']} for a {len(r['path'])}-byte path")
            continue
        found = None
        for rx, template, m, op in routes:
            if m == r["method"] and rx.match(path):
                found = (template, op)
                break
        if not found:
            # A documented path with another method (405), an unknown path
            # (404): the error shape still has to be a problem document.
            outside[(r["method"].upper(), re.sub(r"/[^/]*[^a-z/-][^/]*", "/…", path))] += 1
            if r["status"].startswith(("4", "5")) and r["ctype"] != "application/problem+json":
                failures.append(f"{r['id']}: {r['method'].upper()} {path} {r['status']}: "
                                f"content type {r['ctype']!r}, not application/problem+json")
            continue
        template, op = found
        shown = path if len(path) <= 100 else path[:100] + f"...({len(path)} bytes)"
        ctx = f"{r['id']}: {r['method'].upper()} {shown} ({template}) {r['status']}"
        covered[(r["method"], template)].add(r["status"])
        responses = op.get("responses", {})
        resp = responses.get(r["status"]) or responses.get(r["status"][0] + "XX") or responses.get("default")
        if resp is None:
            failures.append(f"{ctx}: status not documented (documented: {', '.join(responses)})")
            continue
        resp = resolve(resp)
        content = resp.get("content")
        if not content:
            if r["body"] and r["status"] != "204":
                failures.append(f"{ctx}: documented without a body, got {len(r['body'])} bytes")
            continue
        media = content.get(r["ctype"])
        if media is None:
            failures.append(f"{ctx}: content type {r['ctype']!r} not documented ({', '.join(content)})")
            continue
        schema = media.get("schema")
        if schema is None or not (r["ctype"].endswith("json") and "ndjson" not in r["ctype"]):
            continue
        try:
            instance = json.loads(r["body"])
        except ValueError as e:
            failures.append(f"{ctx}: the body is not JSON: {e}")
            continue
        # The document's components beside the schema, at its root, so that
        # its "#/components/..." refs resolve (with any jsonschema version).
        full = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
                "components": doc["components"]}
        v = Draft202012Validator(full)
        errs = sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errs:
            e = errs[0]
            where = "/".join(str(p) for p in e.absolute_path) or "(top)"
            failures.append(f"{ctx}: {where}: {e.message[:300]}")
            continue
        validated += 1

    tests_wanted = [t for t in a.tests.split(",") if t]
    tests_seen = sorted({r["test"] for r in recs})
    missing_tests = [t for t in tests_wanted if t not in tests_seen]
    uncovered = []
    for rx, template, m, op in routes:
        if not any(s.startswith("2") for s in covered.get((m, template), ())):
            uncovered.append(f"{m.upper()} {template}")
    print(f"contract: {len(recs)} answers from {len(tests_seen)} tests "
          f"({', '.join(tests_seen)}); {validated} JSON bodies validated against their schemas")
    print(f"contract: {len(routes) - len(uncovered)} of {len(routes)} documented routes had a 2xx answer")
    for what in by_mhd:
        print(f"contract: answered by libmicrohttpd itself (not checked): {what}")
    for (m, p), n in sorted(outside.items()):
        print(f"contract: not in the document (not checked): {m} {p} x{n}")
    if missing_tests:
        print(f"contract: coverage not checked: no records from {', '.join(missing_tests)} "
              "(a partial run)")
    elif uncovered:
        failures += [f"documented but never answered 2xx: {u}" for u in uncovered]
    else:
        print("contract: every documented route was answered 2xx at least once")
    if missing_tests or uncovered:
        for u in uncovered:
            print(f"contract: no 2xx answer yet: {u}")
    for f in failures:
        print("contract: FAIL " + f, file=sys.stderr)
    return 1 if failures else 0


def self_test(openapi):
    """The checker itself fails what it must: a body off its schema, an
    undocumented status, a problem with the wrong content type; and passes
    a good answer."""
    import subprocess
    import tempfile

    cases = [
        ("GET", "/api/v1/vms", "200", "application/json", b'[{"name": "web", "state": "running"}]', None),
        ("GET", "/api/v1/vms", "200", "application/json", b'[{"name": "Bad_Name", "state": "running"}]',
         "does not match"),
        ("GET", "/api/v1/vms", "200", "application/json", b'[{"name": "web", "state": "dancing"}]',
         "is not one of"),
        ("GET", "/api/v1/vms", "418", "application/problem+json", b'{}', "status not documented"),
        ("GET", "/api/v1/vms/web", "404", "text/plain", b"no", "content type 'text/plain' not documented"),
    ]
    for method, path, status, ctype, body, expect in cases:
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "self-1-1.meta"), "w") as f:
                f.write(f"{method}\n{path}\n{status}\n{ctype}\n")
            with open(os.path.join(d, "self-1-1.body"), "wb") as f:
                f.write(body)
            p = subprocess.run([sys.executable, __file__, openapi, d, "--tests", "qvmd_absent"],
                               capture_output=True, text=True)
            if expect is None and p.returncode != 0:
                raise SystemExit(f"self-test: a good answer failed: {p.stderr}")
            if expect is not None and (p.returncode == 0 or expect not in p.stderr):
                raise SystemExit(f"self-test: {body!r} ({status}) should fail with {expect!r}: "
                                 f"rc {p.returncode}, {p.stderr}")
    print(f"contract: self-test: {len(cases)} cases as expected")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--self-test":
        sys.exit(self_test(sys.argv[2]))
    sys.exit(main())
