#!/usr/bin/env bash
# check_exports.sh LIBQVM_SO INCLUDE_QVM_DIR
# libqvm exports exactly the public API: every dynamic symbol it defines is
# a qvm_* function declared with QVM_API in the public headers, in version
# node QVM_0.1, and every such declaration is exported. Nothing internal
# (qvm_qmp_*, qvm_net_*, util helpers) leaks.
set -euo pipefail
lib=${1:?usage: check_exports.sh LIBQVM_SO INCLUDE_QVM_DIR}
inc=${2:?usage: check_exports.sh LIBQVM_SO INCLUDE_QVM_DIR}
fail() {
  echo "check_exports: FAIL: $*" >&2
  exit 1
}
[[ -f $lib ]] || fail "no library at '$lib'"
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

nm -D --defined-only "$lib" >"$tmp/nm" || fail "nm -D failed on '$lib'"
# The version node itself is an absolute symbol named after the node.
awk '$2 == "A" { print $3 }' "$tmp/nm" | sort -u >"$tmp/nodes"
[[ $(cat "$tmp/nodes") == QVM_0.1 ]] || fail "version nodes are not exactly QVM_0.1: $(tr '\n' ' ' <"$tmp/nodes")"
awk '$2 != "A" { print $3 }' "$tmp/nm" >"$tmp/syms"
if grep -v '@@QVM_0.1$' "$tmp/syms" >"$tmp/unversioned"; then
  fail "symbols outside version QVM_0.1: $(head -5 "$tmp/unversioned" | tr '\n' ' ')"
fi
sed 's/@.*//' "$tmp/syms" | sort -u >"$tmp/exported"
if grep -v '^qvm_' "$tmp/exported" >"$tmp/foreign"; then
  fail "exports symbols without the qvm_ prefix: $(head -10 "$tmp/foreign" | tr '\n' ' ')"
fi
[[ $(awk '$2 != "A" && $2 != "T"' "$tmp/nm" | wc -l) -eq 0 ]] ||
  fail "exports something that is not a function: $(awk '$2 != "A" && $2 != "T"' "$tmp/nm" | head -5)"

# Declared: "QVM_API <type> qvm_name(" (a declaration may go on over lines).
grep -ho 'QVM_API[^(]*(' "$inc"/*.h | grep -o 'qvm_[a-z0-9_]*($' | tr -d '(' | sort -u >"$tmp/declared"
[[ $(wc -l <"$tmp/declared") -ge 50 ]] || fail "found only $(wc -l <"$tmp/declared") QVM_API declarations in '$inc'"
if ! diff -u "$tmp/declared" "$tmp/exported" >"$tmp/diff"; then
  cat "$tmp/diff" >&2
  fail "exported symbols (+) and QVM_API declarations (-) differ"
fi
# Every function declaration in a public header carries QVM_API.
if grep -nE '^(const )?(unsigned )?[a-z_][a-z0-9_]*( \*+| )\**qvm_[a-z0-9_]+\(' "$inc"/*.h >"$tmp/bare"; then
  cat "$tmp/bare" >&2
  fail "public declarations without QVM_API"
fi
for internal in qvm_qmp_execute qvm_net_bridge_ensure qvm_error_set qvm_strbuf_printf; do
  if grep -qx "$internal" "$tmp/exported"; then fail "internal '$internal' is exported"; fi
done
echo "check_exports: ok ($(wc -l <"$tmp/exported") symbols, all declared with QVM_API)"
