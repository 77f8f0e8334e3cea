#!/usr/bin/env bash
# qvm cp's limits are parsed strictly (digits only, with a size suffix for
# --max-bytes): a sign, a space or a number that overflows is a usage error
# (exit 2), never a silently different limit; and 0 in any spelling ("0",
# "00", "0G") means no cap. No VM boots: an accepted value gets as far as
# looking for the vm (exit 3, "not found").
set -euo pipefail
qvm=${QVM_BINARY_DIR:?QVM_BINARY_DIR is not set (run through ctest)}/qvm
dir=$(mktemp -d "${TMPDIR:-/tmp}/qvm-hostile-sftp-cli.XXXXXX")
trap 'rm -rf "$dir"' EXIT
export QVM_STATE_DIR=$dir/state QVM_RUNTIME_DIR=$dir/run
failures=0

# expect CODE PATTERN -- ARGS...: exit code and stderr (extended regex).
expect() {
  local code=$1 pattern=$2 got=0
  shift 3
  "$qvm" "$@" >"$dir/out" 2>"$dir/err" </dev/null || got=$?
  if [[ $got != "$code" ]] || ! grep -Eq -- "$pattern" "$dir/err"; then
    echo "FAIL: qvm $* -> exit $got (want $code /$pattern/), stderr:" >&2
    sed 's/^/  /' "$dir/err" >&2
    failures=$((failures + 1))
  fi
}

accepted() { expect 3 "vm 'nope' not found" -- cp "$@" nope:/x "$dir/"; }
refused() { expect 2 "^qvm cp: $1 '.*' is invalid|^qvm cp: $1 size ('.*' )?is (invalid|too large|empty)" -- cp "--$@" nope:/x "$dir/"; }

for v in 0 00 0G 000M 0T 5 5G 200G; do accepted --max-bytes "$v"; done
for v in 0 00 5 18446744073709551615; do accepted --max-files "$v"; done
for v in 0 00 5 604800; do accepted --timeout "$v"; done

for v in '' ' 5G' '+5G' '-5G' 5X 0X 0GG 99999999999999999999G 20000000000T; do
  refused max-bytes "$v"
done
for v in '' ' 5' '+5' '-5' 5x 0x18 18446744073709551616 99999999999999999999999; do
  refused max-files "$v"
done
for v in '' ' 5' '+5' '-5' 5s 604801 99999999999999999999999; do refused timeout "$v"; done

if ((failures)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "ok"
