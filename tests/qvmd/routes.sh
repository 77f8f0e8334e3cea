#!/usr/bin/env bash
# The route table and api/openapi.json list the same (method, path) pairs
# (vm-provisioner's aliases are in neither: `qvmd --routes` leaves them
# out), and GET /api/v1/openapi.json serves the file byte for byte.
set -euo pipefail
src=${QVM_SOURCE_DIR:?}
bin=${QVM_BINARY_DIR:?}
fail() {
  echo "qvmd_routes: FAIL: $*" >&2
  exit 1
}
tmp=$(mktemp -d /tmp/qvmd-routes-XXXXXX)
pid=
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; rm -rf -- "$tmp"' EXIT
"$bin/qvmd" --routes | sort >"$tmp/table" || fail "qvmd --routes"
python3 - "$src/api/openapi.json" >"$tmp/doc" <<'PY' || fail "api/openapi.json does not parse"
import json, sys
doc = json.load(open(sys.argv[1]))
for path, ops in doc["paths"].items():
    for method in ops:
        if method in ("get", "post", "put", "delete", "patch", "head", "options"):
            print(method.upper(), path)
PY
sort -o "$tmp/doc" "$tmp/doc"
[[ -s $tmp/table ]] || fail "the route table is empty"
diff -u "$tmp/table" "$tmp/doc" >&2 || fail "the route table (-) and api/openapi.json (+) differ"
command -v curl >/dev/null || { echo "qvmd_routes: the served document is not checked (no curl)" >&2; exit 0; }
QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run "$bin/qvmd" --socket "$tmp/s" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do [[ -S $tmp/s ]] && break; sleep 0.05; done
curl -sf -o "$tmp/served" --unix-socket "$tmp/s" http://qvmd/api/v1/openapi.json || fail "GET openapi.json"
cmp "$tmp/served" "$src/api/openapi.json" || fail "the served document is not api/openapi.json"
echo "qvmd_routes: $(wc -l <"$tmp/table") routes, the same in both" >&2
