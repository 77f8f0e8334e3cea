#!/usr/bin/env bash
# GET /api/v1/vms (qvm_vm_list_info, whose infos libqvm keeps while vm.json
# is unchanged, and qvmd's reply kept while libqvm's text is the same) gives
# exactly what GET /api/v1/vms/NAME gives VM by VM (qvm_vm_open and
# qvm_vm_info, what the list did before it was made fast), byte for byte,
# and never a state from before it changed:
#   - three VMs defined, a listing twice (the second one from what was kept);
#   - one started: the next listing says so;
#   - its shim and QEMU killed with SIGKILL, so that nothing rewrites
#     vm.json: the next listing says "crashed" all the same;
#   - one deleted: the next listing lacks it.
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"

mini=$(mini_guest)
sock=$tmp/qvmd.sock
start_qvmd "$tmp/qvmd.log" --socket "$sock"

# The list beside "[" + each GET /api/v1/vms/NAME joined by "," + "]", NAMEs
# as the list has them; the answers' bytes compared, but for the members
# given in $volatile (a running VM's uptime), which may tick in between.
volatile=
list_matches_gets() { # WHAT
  req GET /api/v1/vms
  expect_status 200 "$1: list"
  local list=$body names name gets=
  names=$(jget "$list" '" ".join(v["name"] for v in o)')
  for name in $names; do
    req GET "/api/v1/vms/$name"
    expect_status 200 "$1: get $name"
    gets+=${gets:+,}$body
  done
  if [[ -z $volatile ]]; then
    [[ $list == "[$gets]" ]] || fail "$1: the list differs from the GETs:
list: $list
GETs: [$gets]"
  else
    python3 - "$volatile" "$list" "[$gets]" <<'EOF' || fail "$1: the list differs from the GETs"
import json, sys
drop = sys.argv[1].split(",")
def strip(a):
    return [{k: v for k, v in o.items() if k not in drop} for o in a]
a, b = json.loads(sys.argv[2]), json.loads(sys.argv[3])
if strip(a) != strip(b):
    print("list:", sys.argv[2], "\nGETs:", sys.argv[3], file=sys.stderr)
    sys.exit(1)
EOF
  fi
  listed=$list
}
state_of() { jget "$listed" "[v['state'] for v in o if v['name'] == '$1'][0]"; }

boot="\"kernel\": \"$mini/vmlinuz\", \"initrd\": \"$mini/initrd.img\", \"append\": \"console=ttyS0\", \"memory\": \"256M\", \"user\": \"root\""
for vm in l1 l2 l3; do
  req POST /api/v1/vms "{\"name\": \"$vm\", $boot, \"labels\": {\"set\": \"$vm\"}}"
  expect_status 201 "create $vm"
done
list_matches_gets "three defined"
expect_eq "$(jget "$listed" '[v["name"] for v in o]')" "['l1', 'l2', 'l3']" "the names, sorted"
first=$listed
sleep 1.2 # past the racy second: from now on the infos are kept
list_matches_gets "again"
list_matches_gets "kept"
expect_eq "$listed" "$first" "a listing from what was kept"

req POST /api/v1/vms/l2/start '{"timeoutMs": 120000}'
expect_status 200 "start l2"
volatile=uptimeS
list_matches_gets "l2 started"
expect_eq "$(state_of l2)" running "l2's state right after its start"
expect_eq "$(state_of l1)" created "l1's state"
sleep 1.2 # vm.json past the racy second: only l2's live processes keep it from being kept
list_matches_gets "l2 running"
expect_eq "$(state_of l2)" running "l2's state"

shim=$(jget "$listed" "[v['shimPid'] for v in o if v['name'] == 'l2'][0]")
qemu=$(jget "$listed" "[v['pid'] for v in o if v['name'] == 'l2'][0]")
[[ $shim =~ ^[0-9]+$ && $qemu =~ ^[0-9]+$ ]] || fail "no shim and QEMU pids for l2: $listed"
before=$(stat -c '%i %s %Y' "$QVM_STATE_DIR/vms/l2/vm.json")
kill -9 "$shim"
kill -9 "$qemu"
gone() { [[ ! -e /proc/$1 ]] || grep -q '^[^(]*(.*) Z' "/proc/$1/stat" 2>/dev/null; } # or a zombie
for _ in $(seq 100); do
  gone "$shim" && gone "$qemu" && break
  sleep 0.1
done
gone "$shim" && gone "$qemu" || fail "l2's shim or QEMU outlived SIGKILL"
expect_eq "$(stat -c '%i %s %Y' "$QVM_STATE_DIR/vms/l2/vm.json")" "$before" "vm.json after the kill"
volatile=
list_matches_gets "l2's processes killed"
expect_eq "$(state_of l2)" crashed "l2's state once its processes are gone"

req DELETE /api/v1/vms/l3
expect_status 204 "delete l3"
list_matches_gets "l3 deleted"
expect_eq "$(jget "$listed" '[v["name"] for v in o]')" "['l1', 'l2']" "the names after the delete"
log "PASS"
