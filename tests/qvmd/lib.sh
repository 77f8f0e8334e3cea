# Shared by the qvmd tests: tests/e2e/lib.sh (temp state and runtime dirs,
# cleanup, skip/fail) plus a qvmd of their own and a curl-based client.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
qvmd_bin=$bin/qvmd
[[ -x $qvmd_bin ]] || fail "no qvmd binary at $qvmd_bin"
command -v curl >/dev/null || skip "needs curl (scripts/deps.sh test)"
command -v python3 >/dev/null || skip "needs python3"

qvmd_pids=()
qvmd_stop_all() {
  local p
  for p in "${qvmd_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  return 0
}
cleanup_hooks+=(qvmd_stop_all)

# start_qvmd LOG ARGS...: starts qvmd in the background ($qvmd_pid) and waits
# until it says it is serving.
start_qvmd() {
  local log=$1 _
  shift
  "$qvmd_bin" "$@" 2>"$log" &
  qvmd_pid=$!
  qvmd_pids+=("$qvmd_pid")
  for _ in $(seq 100); do
    grep -q 'qvmd: serving' "$log" 2>/dev/null && return 0
    kill -0 "$qvmd_pid" 2>/dev/null || fail "qvmd exited at start: $(cat "$log")"
    sleep 0.05
  done
  fail "qvmd did not start: $(cat "$log")"
}

# req METHOD PATH [BODY] [CURL ARGS...]: one request to $sock (or, with
# $url_base set, over TCP), a body as $req_ctype (default application/json);
# $status, $body and $ctype are the answer.
req() {
  local method=$1 path=$2 data=${3-} ; shift 3 2>/dev/null || shift $#
  local args=(-s -o "$tmp/resp" -D "$tmp/hdrs" -w '%{http_code}' -X "$method" --max-time 600 --path-as-is)
  if [[ -n ${url_base:-} ]]; then
    args+=("$url_base$path")
  else
    args+=(--unix-socket "$sock" "http://qvmd$path")
  fi
  [[ -n $data ]] && args+=(-H "Content-Type: ${req_ctype:-application/json}" --data-binary "$data")
  status=$(curl "${args[@]}" "$@") || status=000
  body=$(cat "$tmp/resp" 2>/dev/null || true)
  ctype=$(sed -n 's/^[Cc]ontent-[Tt]ype: *\([^;\r]*\).*/\1/p' "$tmp/hdrs" 2>/dev/null | tail -n 1)
  contract_record "$method" "$path"
}

# With $QVM_CONTRACT_DIR set (ctest sets it), every answer req got is kept
# there for tests/qvmd/contract.py, which validates each against
# api/openapi.json and checks that every documented route was called:
# NAME-N.meta (method, path, status, content type, a line each) and
# NAME-N.body.
contract_n=0
# contract_keep METHOD PATH STATUS CTYPE FILE: an answer a test got with
# curl itself (a download, a stream), kept as req keeps its own.
contract_keep() {
  local saved_status=$status saved_ctype=${ctype-}
  status=$3 ctype=$4
  [[ -n ${QVM_CONTRACT_DIR:-} ]] && cp "$5" "$tmp/resp"
  contract_record "$1" "$2"
  status=$saved_status ctype=$saved_ctype
}
contract_record() {
  [[ -n ${QVM_CONTRACT_DIR:-} && $status != 000 ]] || return 0
  mkdir -p "$QVM_CONTRACT_DIR"
  contract_n=$((contract_n + 1))
  local f=$QVM_CONTRACT_DIR/$e2e_name-$$-$contract_n
  printf '%s\n%s\n%s\n%s\n' "$1" "$2" "$status" "$ctype" >"$f.meta"
  cp "$tmp/resp" "$f.body" 2>/dev/null || : >"$f.body"
}

problem_check='
import json, sys
p = json.load(sys.stdin)
assert p["status"] == int(sys.argv[1]), p
for k in ("type", "title", "detail", "code"):
    assert isinstance(p[k], str) and p[k], k
'
# expect_status CODE WHAT: the last answer had CODE; an error is a valid
# problem+json document with status CODE.
expect_status() {
  [[ $status == "$1" ]] || fail "$2: status $status, expected $1: $body"
  if ((status >= 400)); then
    [[ $ctype == application/problem+json ]] || fail "$2: content type '$ctype', not problem+json"
    python3 -c "$problem_check" "$1" <<<"$body" || fail "$2: not a problem document: $body"
  fi
}

# jq-like access with python: jget JSON EXPR (EXPR applied to o).
# The JSON comes on stdin: it may be larger than an argument may be.
jget() { python3 -c 'import json,sys; o=json.load(sys.stdin); print(eval(sys.argv[1]))' "$2" <<<"$1"; }

# offline_change VM HOSTILE: VM made from a small ext4 image and changed
# offline after its internal snapshot "base" (no boot, as
# tests/review/review_vm.sh): /etc/conf edited, /etc/gone deleted,
# /opt/app/bin and a file named HOSTILE (in /etc) added.
offline_change() {
  local vm=$1 hostile=$2 A=$tmp/$1-A B=$tmp/$1-B
  mkdir -p "$A/etc" "$B/etc" "$B/opt/app"
  echo one >"$A/etc/conf"
  echo two >"$B/etc/conf"
  echo gone >"$A/etc/gone"
  echo app >"$B/opt/app/bin"
  echo x >"$B/etc/$hostile"
  mkfs.ext4 -q -d "$A" "$tmp/$vm-a.raw" 16M 2>/dev/null || fail "mkfs.ext4 A"
  mkfs.ext4 -q -d "$B" "$tmp/$vm-b.raw" 16M 2>/dev/null || fail "mkfs.ext4 B"
  qemu-img convert -O qcow2 "$tmp/$vm-a.raw" "$tmp/$vm-golden.qcow2"
  qvm create "$vm" --image "$tmp/$vm-golden.qcow2" --image-format qcow2 --memory 256M >/dev/null ||
    fail "create $vm"
  local disk=$QVM_STATE_DIR/vms/$vm/disk.qcow2
  qemu-img snapshot -c base "$disk"
  qemu-img convert -n -f raw -O qcow2 "$tmp/$vm-b.raw" "$disk"
}
