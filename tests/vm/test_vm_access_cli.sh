#!/usr/bin/env bash
# The CLI's own error messages and exit codes, through the qvm binary, with
# no VM booted: one clear message per unknown option (getopt's own line never
# appears), bad option values are usage errors (exit 2) that name the option,
# and hints that do not repeat the message or suggest the wrong thing.
set -euo pipefail
qvm=${QVM_BINARY_DIR:?QVM_BINARY_DIR is not set (run through ctest)}/qvm
dir=$(mktemp -d "${TMPDIR:-/tmp}/qvm-cli-errors.XXXXXX")
trap 'rm -rf "$dir"' EXIT
export QVM_STATE_DIR=$dir/state QVM_RUNTIME_DIR=$dir/run
failures=0
: >"$dir/kernel"

# expect CODE PATTERN [!ABSENT] -- ARGS...: the exit code, stderr matching
# the extended regex PATTERN (across lines), and not matching ABSENT.
expect() {
  local code=$1 pattern=$2 absent='' got=0
  shift 2
  if [[ $1 != -- ]]; then absent=$1 && shift; fi
  shift
  "$qvm" "$@" >"$dir/out" 2>"$dir/err" </dev/null || got=$?
  if [[ $got != "$code" ]] || ! grep -zEq -- "$pattern" "$dir/err" ||
    { [[ -n $absent ]] && grep -zEq -- "$absent" "$dir/err"; }; then
    echo "FAIL: qvm $* -> exit $got (want $code), stderr:" >&2
    sed 's/^/  /' "$dir/err" >&2
    echo "  (wanted /$pattern/${absent:+, not /$absent/})" >&2
    failures=$((failures + 1))
  fi
}

getopt_line='invalid option|unrecognized option|requires an argument'
k=(--kernel "$dir/kernel")

# unknown options: one message naming the option, for every verb
for verb in create start stop restart rm ls info logs exec ssh cp provision ip up down; do
  expect 2 "^qvm $verb: unknown option '-Q'.*try 'qvm $verb --help'" "$getopt_line" -- "$verb" -Q x
done
expect 2 "^qvm create: unknown option '-r'" "$getopt_line" -- create t1 -r
expect 2 "^qvm create: unknown option '--bogus'" "$getopt_line" -- create t1 --bogus=3
expect 2 "^qvm create: option '--memory' needs a value" "$getopt_line" -- create t1 --memory
expect 2 "^qvm seed build: unknown option '-Z'" "$getopt_line" -- seed build -Z
expect 2 "^qvm console: unknown option '-r'" -- console -r
expect 2 "^qvm exec: unknown option '--bogus'" "$getopt_line" -- exec x --bogus -- true

# bad option values: usage errors (2) that name the option
expect 2 "cpus '0' is invalid" -- create t1 "${k[@]}" --cpus 0
expect 2 "--memory: memory size '1X' is invalid" -- create t1 "${k[@]}" --memory 1X
expect 2 "--memory: memory size '2048' is too small" -- create t1 "${k[@]}" --memory 2048
expect 2 "--disk: disk size 'lots' is invalid" -- create t1 "${k[@]}" --disk lots
expect 2 "--drive '$dir/kernel,file=x': unknown drive option 'file=x'" "not found" -- \
  create t1 "${k[@]}" --drive "$dir/kernel,file=x"
expect 2 "--hostkey 'x' is unknown" -- create t1 "${k[@]}" --hostkey x
expect 2 "^qvm create: --provision 'bogus:x': unknown step kind: use shell:CMD" \
  "provision step.*provision step" -- create t1 "${k[@]}" --provision bogus:x
expect 2 "--provision 'file:a': a file step is file:SRC:DST" -- create t1 "${k[@]}" --provision file:a
expect 2 "give --identity or --agent, not both" -- exec x --identity k --agent -- true
expect 2 "timeout 'soon' is invalid" -- exec x --timeout soon -- true
[[ ! -e $QVM_STATE_DIR/vms/t1 ]] || { echo "FAIL: a usage error left vms/t1" >&2 && exit 1; }

# "check the path" once, not in the message and the hint too
expect 3 "drive '/nonexistent/d.img' not found: check the path" "hint: check the path" -- \
  create t1 "${k[@]}" --drive /nonexistent/d.img
expect 3 "script '/nonexistent/s.sh' not found" "hint: check the path" -- \
  create t1 "${k[@]}" --provision script:/nonexistent/s.sh

# a vm that does not exist: not "start it"
expect 3 "^qvm console: vm 'nope' not found.*qvm ls" "start it" -- console nope
expect 255 "vm 'nope' not found" "start it" -- exec nope -- true

if ((failures)); then
  echo "test_vm_access_cli: $failures failure(s)" >&2
  exit 1
fi
echo "test_vm_access_cli: ok"
