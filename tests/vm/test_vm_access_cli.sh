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

# expect_stdout CODE PATTERN -- ARGS...: the exit code and stdout matching PATTERN.
expect_stdout() {
  local code=$1 pattern=$2 got=0
  shift 3
  "$qvm" "$@" >"$dir/out" 2>"$dir/err" </dev/null || got=$?
  if [[ $got != "$code" ]] || ! grep -zEq -- "$pattern" "$dir/out"; then
    echo "FAIL: qvm $* -> exit $got (want $code), stdout:" >&2
    sed 's/^/  /' "$dir/out" >&2
    echo "  (wanted /$pattern/)" >&2
    failures=$((failures + 1))
  fi
}

# qvm help VERB is that verb's --help; an unknown verb is a usage error
expect_stdout 0 "^usage: qvm up NAME" -- help up
expect_stdout 0 "^usage: qvm rm NAME" -- help rm
expect 2 "^qvm help: unknown command 'nosuch'" -- help nosuch

# a long option matches only in full: no getopt abbreviations, a suggestion instead
expect 2 "^qvm ls: unknown option '--jso' \\(did you mean '--json'\\?\\)" -- ls --jso
expect 2 "^qvm create: unknown option '--mem' \\(did you mean '--memory'\\?\\)" -- \
  create t1 "${k[@]}" --mem=1G
expect 2 "^qvm create: unknown option '--mem' \\(did you mean '--memory'\\?\\)" -- \
  create t1 "${k[@]}" --mem
expect 2 "^qvm rm: unknown option '--forc' \\(did you mean '--force'\\?\\)" -- rm --forc nope
expect 2 "^qvm up: unknown option '--jso' \\(did you mean '--json'\\?\\)" -- up x --jso
expect 2 "^qvm exec: unknown option '--tim' \\(did you mean '--timeout'\\?\\)" -- \
  exec x --tim 3 -- true
# (the exact --name=value form still works)
expect 2 "cpus '0' is invalid" -- create t1 "${k[@]}" --cpus=0
if [[ -e $QVM_STATE_DIR/vms/t1 ]]; then
  echo "FAIL: an abbreviated option made vms/t1" >&2
  failures=$((failures + 1))
  "$qvm" rm --force t1 >/dev/null 2>&1 || true
fi

# up without anything to boot is a usage error, and prints no header first
expect 2 "^qvm up: missing --image PATH" -- up x
if grep -q "up: vm" "$dir/out"; then
  echo "FAIL: qvm up x printed its header before the usage error" >&2
  failures=$((failures + 1))
fi

# a vm that does not exist: the hint start, stop, rm, ssh-config... give, here too
for verb in info logs down console; do
  expect 3 "^qvm $verb: vm 'nope' not found.*hint: see 'qvm ls' for the vms that exist" -- \
    "$verb" nope
done

# a changed spec lists sizes as they are written, not in bytes (qemu fails
# at once here: nothing boots)
QVM_QEMU=/bin/false "$qvm" up s1 "${k[@]}" --memory 1536M --timeout 20 >/dev/null 2>&1 || true
QVM_QEMU=/bin/false expect 4 "memory: was 1536M, now 2G.*disk: was unset, now 10G" "[0-9]{9}" -- \
  up s1 "${k[@]}" --memory 2G --disk 10G --timeout 20
"$qvm" rm --force s1 >/dev/null 2>&1 || true

# a vm whose vm.json does not parse: rm refuses, rm --force removes it and
# says what it could not read
"$qvm" create c1 "${k[@]}" >/dev/null 2>&1 || { echo "FAIL: create c1" >&2 && exit 1; }
printf '{"schema": 2, "spec": ' >"$QVM_STATE_DIR/vms/c1/vm.json"
expect 1 "^qvm rm: .*vm.json' is not a json object" -- rm c1
[[ -e $QVM_STATE_DIR/vms/c1 ]] || { echo "FAIL: rm without --force removed c1" >&2 && exit 1; }
expect 0 "^qvm rm: warning: .*vm.json.*removing vm 'c1' anyway" -- rm --force c1
if [[ -e $QVM_STATE_DIR/vms/c1 ]]; then
  echo "FAIL: rm --force left the vm with an unreadable vm.json" >&2
  failures=$((failures + 1))
fi
expect 3 "^qvm rm: .*vm 'c1' not found" -- rm --force c1

# qvm.yaml: a near miss gets a suggestion, and the hint says where the format is
mkdir -p "$dir/proj"
printf 'vms:\n  a:\n    kernel: %s\n    memroy: 1G\n' "$dir/kernel" >"$dir/proj/qvm.yaml"
expect 1 "unknown key 'memroy' in vm 'a': did you mean 'memory'\\?.*hint: .*docs/cli.md, section \"qvm.yaml\"" \
  -- up -f "$dir/proj/qvm.yaml"
# plain 'qvm up' reads ./qvm.yaml, and says so; without one it is the usage error
(cd "$dir/proj" && expect 1 "^using ./qvm.yaml.*unknown key 'memroy'" -- up)
(cd "$dir" && expect 2 "^qvm up: missing the vm name" -- up)
# the example parses: the file loads before its NAMEs are looked up
src=${QVM_SOURCE_DIR:-$(dirname "$0")/../..}
expect 2 "'$src/examples/qvm.yaml' describes no vm 'nosuch'" -- up -f "$src/examples/qvm.yaml" nosuch

# qvm authorize: a stopped vm's key goes into its seed (isoinfo reads it
# back); bad key files are usage errors naming the file and line.
ssh-keygen -q -t ed25519 -N '' -C 'cli key' -f "$dir/k" </dev/null
"$qvm" create a1 "${k[@]}" >/dev/null 2>"$dir/err" || { cat "$dir/err" >&2; failures=$((failures + 1)); }
expect 2 "missing the key file" -- authorize a1
expect 2 "unknown option '--bogus'" "$getopt_line" -- authorize a1 "$dir/k.pub" --bogus
expect 2 "cannot open '$dir/nosuch'" -- authorize a1 "$dir/nosuch"
printf '# only a comment\n\n' >"$dir/empty.pub"
expect 2 "'$dir/empty.pub' holds no public key line" -- authorize a1 "$dir/empty.pub"
printf '%s\nssh-ed25519 AAAA-not-base64 x\n' "$(cat "$dir/k.pub")" >"$dir/bad.pub"
expect 1 "'$dir/bad.pub' line 2 \\(1 key added before it\\)" -- authorize a1 "$dir/bad.pub"
expect 3 "vm 'nosuch' not found" -- authorize nosuch "$dir/k.pub"
out=$("$qvm" authorize a1 - --json <"$dir/k.pub" 2>"$dir/err") || { cat "$dir/err" >&2; failures=$((failures + 1)); }
if [[ $out != '{"name": "a1", "keys": 1, "via": "seed"}' ]] ||
  [[ $(isoinfo -J -x /qvm-authorized-keys -i "$QVM_STATE_DIR/vms/a1/seed.iso") != "$(cat "$dir/k.pub")" ]]; then
  echo "FAIL: qvm authorize a1 - --json -> $out; the seed's keys:" >&2
  isoinfo -J -x /qvm-authorized-keys -i "$QVM_STATE_DIR/vms/a1/seed.iso" >&2 || true
  failures=$((failures + 1))
fi
"$qvm" rm a1 >/dev/null 2>&1 || failures=$((failures + 1))

# Not root, and no XDG_RUNTIME_DIR (su, cron, a CI job): the message names
# both variables and the hint how to get one; nothing is created.
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null; then
  got=0
  (cd / && env -i PATH=/usr/bin:/bin HOME=/nonexistent-qvm-home \
    setpriv --reuid=65534 --regid=65534 --clear-groups \
    "$qvm" create x --kernel /etc/hostname --no-cloud-init) >"$dir/out" 2>"$dir/err" || got=$?
  if [[ $got != 3 ]] || ! grep -q "neither QVM_RUNTIME_DIR nor XDG_RUNTIME_DIR is set" "$dir/err" ||
    ! grep -q "^hint: .*XDG_RUNTIME_DIR" "$dir/err" || [[ -e /nonexistent-qvm-home ]]; then
    echo "FAIL: create as a user without XDG_RUNTIME_DIR -> exit $got:" >&2
    sed 's/^/  /' "$dir/err" >&2
    failures=$((failures + 1))
  fi
fi

if ((failures)); then
  echo "test_vm_access_cli: $failures failure(s)" >&2
  exit 1
fi
echo "test_vm_access_cli: ok"
