#!/usr/bin/env bash
# api/openapi.json linted by @redocly/cli, pinned in tests/node/package-lock.json
# and installed with `npm ci` (the npm registry, or npm's cache) into a temp
# dir. Without node or npm: skipped, which under CI=true is a failure.
set -euo pipefail
src=${QVM_SOURCE_DIR:?}
skip() {
  if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
    echo "qvmd_openapi_lint: FAIL (a skip is a failure under CI=true): $*" >&2
    exit 1
  fi
  echo "qvmd_openapi_lint: SKIP: $*" >&2
  exit 77
}
command -v node >/dev/null || skip "needs node"
command -v npm >/dev/null || skip "needs npm"
tmp=$(mktemp -d /tmp/qvmd-lint-XXXXXX)
trap 'rm -rf -- "$tmp"' EXIT
cp "$src/tests/node/package.json" "$src/tests/node/package-lock.json" "$tmp/"
(cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >"$tmp/npm.log" 2>&1) || {
  cat "$tmp/npm.log" >&2
  echo "qvmd_openapi_lint: FAIL: npm ci of tests/node" >&2
  exit 1
}
# recommended-strict: every warning is an error.
if ! "$tmp/node_modules/.bin/redocly" lint --extends=recommended-strict \
  "$src/api/openapi.json" >"$tmp/lint.log" 2>&1; then
  grep -v '[║╔╚]' "$tmp/lint.log" >&2
  echo "qvmd_openapi_lint: FAIL: api/openapi.json" >&2
  exit 1
fi
echo "qvmd_openapi_lint: api/openapi.json is valid (recommended-strict)" >&2
