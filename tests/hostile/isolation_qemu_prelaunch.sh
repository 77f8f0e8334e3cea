#!/usr/bin/env bash
# QEMU 7.2 starts the vCPUs just before -runas drops its privileges, so a
# guest would run for a moment inside a QEMU that is still root. qvm starts
# QEMU paused (-S) and the shim sends cont only once QMP answers and
# /proc/<qemu>/status shows the unprivileged uid and gid. This proves it from
# outside: the shim's events.jsonl shows QEMU in 'prelaunch' until the
# shim's cont (QEMU's RESUME comes after it); a QEMU that does not drop
# (a wrapper that strips -runas) never gets its guest started: the start
# fails with the reason, QEMU is killed, the serial log stays empty. A VM a
# user paused stays paused when a new shim re-attaches to it.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

chmod 755 "$tmp"
mini=$(mini_guest)
qvm create victim --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0 \
  --memory 256M --net none >/dev/null || fail "create"
vmdir=$QVM_STATE_DIR/vms/victim
qmp_sock=$QVM_RUNTIME_DIR/victim/qmp.sock

# The events of the newest shim run, one "event status dropped_to pid" per line.
run_events() {
  python3 - "$vmdir/events.jsonl" <<'PY'
import json, sys
run = []
for line in open(sys.argv[1]):
    ev = json.loads(line)
    if ev.get("event") == "qvm-shim-start":
        run = []
    d = ev.get("data") if isinstance(ev.get("data"), dict) else {}
    run.append("%s %s %s %s" % (ev.get("event"), d.get("status", "-"), d.get("dropped_to", "-"),
                                d.get("pid", "-")))
print("\n".join(run))
PY
}
info() { qvm info --json victim | python3 -c "import json,sys; j=json.load(sys.stdin); print(j$1)"; }
# One QMP command on QEMU's own socket (only while no shim holds it); prints
# query-status's status.
qmp() {
  python3 - "$qmp_sock" "$@" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
f = s.makefile("rw")
def reply():
    while True:
        m = json.loads(f.readline())
        if "event" not in m:
            return m
reply()  # greeting
for c in ["qmp_capabilities"] + sys.argv[2:]:
    f.write(json.dumps({"execute": c}) + "\n")
    f.flush()
    r = reply()
    if "error" in r:
        sys.exit("qmp %s: %s" % (c, r["error"]))
print(r["return"].get("status", "") if isinstance(r["return"], dict) else "")
PY
}
# The shim of the VM dies (QEMU stays): the next qvm command re-attaches.
kill_shim() {
  local shim
  shim=$(info '["shim_pid"]')
  [[ $shim =~ ^[0-9]+$ ]] || fail "no shim pid: $shim"
  kill -9 "$shim"
  while kill -0 "$shim" 2>/dev/null; do sleep 0.1; done
}

# 1. A normal start: prelaunch until the shim's cont, which comes only after
#    the check that QEMU runs as qvm-qemu.
out=$(qvm start victim 2>&1) || fail "start: $out"
want="$(id -u qvm-qemu):$(id -g qvm-qemu)"
ev=$(run_events)
log "events of the start:"$'\n'"$ev"
expect_match "$ev" "^qvm-cont prelaunch $want -\$" "the shim's cont after checking the drop to $want"
[[ $(grep -n '^RESUME ' <<<"$ev" | head -1 | cut -d: -f1) -gt \
  $(grep -n '^qvm-cont ' <<<"$ev" | cut -d: -f1) ]] || fail "QEMU resumed before the shim's cont"
grep -q '^qvm-qmp-ready ' <<<"$ev" || fail "no qvm-qmp-ready"
pid=$(info '["pid"]')
expect_eq "$(sed -n 's/^Uid:[[:space:]]*//p' "/proc/$pid/status" | tr -s '\t ' ' ')" \
  "$(id -u qvm-qemu) $(id -u qvm-qemu) $(id -u qvm-qemu) $(id -u qvm-qemu)" "qemu's uids"
for _ in $(seq 100); do grep -q 'Linux version' "$vmdir/serial.log" && break; sleep 0.1; done
grep -q 'Linux version' "$vmdir/serial.log" || fail "the guest did not run after cont"

# 2. Re-attaching never sends cont: a VM paused by hand stays paused.
kill_shim
expect_eq "$(qmp stop query-status)" paused "status after stop"
expect_eq "$(info '["state"]')" running "state after the shim was re-attached"
ev=$(run_events)
expect_match "$ev" "^qvm-shim-adopted " "a shim re-attached"
if grep -q '^qvm-cont ' <<<"$ev"; then fail "the re-attached shim sent cont: $ev"; fi
kill_shim
expect_eq "$(qmp query-status)" paused "status after a re-attach"
qvm kill victim >/dev/null 2>&1 || fail "kill"

# 3. A QEMU that keeps root (this wrapper drops -runas, as a QEMU that ignored
#    it would): its guest is never started.
# fake_qemu NAME OPTION N: a QEMU that drops OPTION and the N-1 words after it.
fake_qemu() {
  cat >"$tmp/$1" <<SH
#!/usr/bin/env bash
args=()
while ((\$#)); do
  if [[ \$1 == $2 ]]; then shift $3; continue; fi
  args+=("\$1")
  shift
done
exec qemu-system-x86_64 "\${args[@]}"
SH
  chmod 755 "$tmp/$1"
  echo "$tmp/$1"
}
fake=$(fake_qemu qemu-keeps-root -runas 2)
for verb in start run; do
  set +e
  out=$(QVM_QEMU=$fake timeout 30 "$qvm_bin" "$verb" victim 2>&1)
  rc=$?
  set -e
  log "qvm $verb with a qemu that keeps root: exit $rc: $out"
  [[ $rc -ne 0 ]] || fail "qvm $verb succeeded with a qemu that kept root"
  expect_match "$out" "did not drop its privileges to $want" "qvm $verb's error"
  ev=$(run_events)
  qpid=$(sed -n 's/^qvm-qemu-spawned - - //p' <<<"$ev")
  [[ $qpid =~ ^[0-9]+$ ]] || fail "qvm $verb: qemu was not spawned once: $ev"
  if grep -qE '^(qvm-cont|RESUME) ' <<<"$ev"; then fail "qvm $verb: the guest was started: $ev"; fi
  expect_match "$ev" "^qvm-exit " "qvm $verb: an exit record"
  [[ ! -s $vmdir/serial.log ]] || fail "qvm $verb: the guest wrote to its serial port"
  expect_eq "$(info '["state"]')" crashed "qvm $verb: state after the refused start (as any failed start)"
  expect_match "$(info '["last_exit"]["detail"]')" "did not drop its privileges" "last exit"
  if [[ -e /proc/$qpid ]] && grep -q 'guest=victim,' "/proc/$qpid/cmdline" 2>/dev/null; then
    fail "qvm $verb: qemu $qpid still runs"
  fi
done
# A QEMU that started its guest on its own (no -S) is refused as well.
set +e
out=$(QVM_QEMU=$(fake_qemu qemu-no-S -S 1) "$qvm_bin" start victim 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "start succeeded with a qemu that ran its guest before cont"
expect_match "$out" "qemu is 'running' before qvm started its guest" "start without -S"
expect_eq "$(info '["state"]')" crashed "state after a start without -S"

# 4. No drop asked (QVM_QEMU_USER=root): nothing to check, the guest starts.
out=$(QVM_QEMU=$fake QVM_QEMU_USER=root qvm start victim 2>&1) || fail "start as root: $out"
expect_match "$(run_events)" "^qvm-cont prelaunch - -\$" "cont without a drop"
qvm kill victim >/dev/null 2>&1 || fail "kill"
log "PASS"
