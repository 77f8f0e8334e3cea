#!/usr/bin/env bash
# End to end, qvm review with the cloud guest (issue 15, "Review with a human
# gate"), on one boot: an agent changes a vm after a snapshot with RAM
# (a config file, a new tree with a mode, a symlink, a deleted file);
# `review create` records it; the agent cannot approve it, a person does;
# the vm is restored to the snapshot and forked (a clone at the base that
# needs no boot); `review apply --target` the fork makes the fork's diff
# from the base equal to the vm's (same paths, types, modes, owners,
# hashes); a second apply reports changed=0; the audit log has every step.
# Then the guest lies (a tmpfs over a directory hides a new file, a
# tampered dpkg status bind-mounted over the real one hides a new package)
# and `qvm diff --json`, read from the disk, still lists both.
. "$(dirname "$0")/lib.sh"
command -v ansible-playbook >/dev/null || skip "needs ansible-playbook (scripts/deps.sh test)"
command -v qemu-storage-daemon >/dev/null || skip "needs qemu-storage-daemon (scripts/deps.sh)"

image=$(cloud_image)
t0=$SECONDS
out=$(qvm up e2e-rv --image "$image" --memory 1G --disk 3G 2>&1) || fail "qvm up failed: $out"
log "up after $((SECONDS - t0)) s"
# qvm diff does not replay ext4's journal: a freeze checkpoints it, so
# each disk state read below is complete (else the base shows half-written
# inodes and the playbook recreates them).
flush() { qvm exec "$1" -- sudo sh -c 'sync; fsfreeze -f / && fsfreeze -u /' || fail "flush $1"; }
flush e2e-rv
out=$(qvm snapshot create e2e-rv base 2>&1) || fail "snapshot create: $out"
# What an agent does in its sandbox.
qvm --agent agent-1 exec e2e-rv -- sudo sh -c '
  printf "setting = 1\n" > /etc/review-e2e.conf
  mkdir -p /opt/rv && printf "#!/bin/sh\necho rv\n" > /opt/rv/tool && chmod 750 /opt/rv/tool
  ln -s /opt/rv/tool /usr/local/bin/rv-tool
  rm /etc/motd
  sync' || fail "the agent's changes"
flush e2e-rv

run_rc() {
  set +e
  out=$("$@" 2>"$tmp/stderr")
  rc=$?
  err=$(cat "$tmp/stderr")
  set -e
}
run_rc qvm --agent agent-1 review create e2e-rv --from base --no-verify --json
expect_eq "$rc" 0 "review create: $err"
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$out")
log "review $id created after $((SECONDS - t0)) s"
rdir=$QVM_STATE_DIR/reviews/$id
python3 - "$rdir/diff.json" <<'EOF' || fail "the diff: $(cat "$rdir/diff.json")"
import json, sys
d = {c["path"]: c for c in json.load(open(sys.argv[1]))["changes"]}
for p, kind in [("/etc/review-e2e.conf", "added"), ("/opt/rv", "added"), ("/opt/rv/tool", "added"),
                ("/usr/local/bin/rv-tool", "added"), ("/etc/motd", "deleted")]:
    assert d.get(p, {}).get("kind") == kind, (p, d.get(p))
assert d["/opt/rv/tool"]["to"]["mode"] == "0750", d["/opt/rv/tool"]
half = [p for p, c in d.items() if (c.get("from") or {}).get("type") == "?"]
assert not half, ("half-written inodes in the base", half)
EOF

run_rc qvm --agent agent-1 review approve "$id"
expect_eq "$rc" 1 "self-approval: $err"
expect_match "$err" "the same agent cannot approve it" "self-approval"
run_rc qvm review apply "$id" --target e2e-rv
expect_eq "$rc" 6 "apply before approval: $err"
run_rc qvm review approve "$id" --comment "checked the diff"
expect_eq "$rc" 0 "approve: $err"

# The fork is a clone of the vm at the base, resumed without a boot.
out=$(qvm snapshot restore e2e-rv base 2>&1) || fail "snapshot restore: $out"
flush e2e-rv
out=$(qvm fork e2e-rv --prefix e2e-tgt --json --quiet 2>"$tmp/fork.err") ||
  fail "fork: $out $(cat "$tmp/fork.err")"
qvm exec e2e-tgt-1 -- test -e /etc/motd || fail "the fork is not at the base"
log "fork ready after $((SECONDS - t0)) s"

run_rc qvm review apply "$id" --target e2e-tgt-1 --json
expect_eq "$rc" 0 "apply: $err $out $(tail -n 30 "$rdir"/apply-1/ansible.log 2>/dev/null)"
changed=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["changed"])' "$out")
[[ $changed -gt 0 ]] || fail "the first apply changed nothing: $out"
[[ ! -e $rdir/apply-1/client_key ]] || fail "the copy of the client key was left"
expect_eq "$(stat -c %a "$rdir/apply-1" "$rdir/apply-1/known_hosts" "$rdir/apply-1/inventory.json")" \
  "700
600
600" "the apply dir is private"
log "applied after $((SECONDS - t0)) s (changed=$changed)"
run_rc qvm review apply "$id" --target e2e-tgt-1 --json
expect_eq "$rc" 0 "second apply: $err"
expect_eq "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["changed"])' "$out")" 0 \
  "the second apply changes nothing"
expect_match "$(qvm review show "$id")" "status +applied" "status applied"

# The fork's diff from its base is the vm's.
flush e2e-tgt-1
run_rc qvm diff e2e-tgt-1 --json
expect_eq "$rc" 0 "diff of the fork: $err"
python3 - "$rdir/diff.json" <(printf '%s' "$out") <<'EOF' || fail "the fork's diff differs from the vm's"
import fnmatch, json, sys
def load(p):
    return {c["path"]: c for c in json.load(open(p))["changes"]}
want, got = load(sys.argv[1]), load(sys.argv[2])
# ansible's own files, and the fork's clock, set from the host through the
# guest agent when it resumed (hwclock writes /etc/adjtime)
noise = ["/home/*/.ansible", "/home/*/.ansible/*", "/root/.ansible", "/root/.ansible/*",
         "/etc/adjtime"]
got = {p: c for p, c in got.items() if p in want or not any(fnmatch.fnmatch(p, n) for n in noise)}
def state(c):
    t = c.get("to") or {}
    return (c["kind"] == "deleted", t.get("type"), t.get("mode"), t.get("uid"), t.get("gid"),
            t.get("sha256"), t.get("target"))
bad = sorted(p for p in set(want) | set(got)
             if p not in want or p not in got or state(want[p]) != state(got[p]))
for p in bad:
    print(p, want.get(p), got.get(p), file=sys.stderr)
assert not bad
EOF

audit=$(qvm audit --json)
python3 -c '
import json, sys
recs = [r for r in json.loads(sys.argv[1]) if r["details"].get("review") == sys.argv[2]]
acts = [(r["action"], r["actor"].get("agent"), "error" in r["details"]) for r in recs]
want = [("review-create", "agent-1", False), ("review-approve", "agent-1", True),
        ("review-apply", None, True), ("review-approve", None, False),
        ("review-apply", None, False), ("review-apply", None, False)]
assert acts == want, acts
' "$audit" "$id" || fail "audit"
qvm down e2e-tgt-1 --rm >/dev/null || fail "down e2e-tgt-1"

# A change made while the guest lies is still found from the disk. After
# the review (its playbook must not carry a package no mirror has), on
# e2e-rv, back at the base: a file under a directory that a tmpfs mounted
# over hides, and a package (built in the guest, dpkg -i) whose stanza a
# copy of dpkg's status bind-mounted over the real one leaves out.
qvm exec e2e-rv -- sudo sh -ec '
  mkdir -p /etc/qvm-hidden.d /run/qvm-lie/DEBIAN
  printf "hidden = 1\n" > /etc/qvm-hidden.d/hidden.conf
  printf "Package: qvm-lie\nVersion: 1.0\nArchitecture: all\nMaintainer: qvm <qvm@localhost>\nDescription: qvm e2e\n" \
    > /run/qvm-lie/DEBIAN/control
  dpkg-deb --build /run/qvm-lie /run/qvm-lie.deb >/dev/null
  dpkg -i /run/qvm-lie.deb >/dev/null
  dpkg -s qvm-lie >/dev/null
  mount -t tmpfs qvm-lie /etc/qvm-hidden.d
  awk -v RS= -v ORS="\n\n" "!/^Package: qvm-lie\n/" /var/lib/dpkg/status > /run/qvm-lie.status
  mount --bind /run/qvm-lie.status /var/lib/dpkg/status' || fail "the lying guest's changes"
flush e2e-rv
# The guest lies.
out=$(qvm exec e2e-rv -- ls -A /etc/qvm-hidden.d) || fail "ls in the guest"
expect_eq "$out" "" "the guest lists the hidden dir as empty"
! qvm exec e2e-rv -- cat /etc/qvm-hidden.d/hidden.conf >/dev/null 2>&1 || fail "the guest still shows the hidden file"
! qvm exec e2e-rv -- dpkg -s qvm-lie >/dev/null 2>&1 || fail "the guest still reports qvm-lie installed"
qvm exec e2e-rv -- dpkg -s base-files >/dev/null || fail "the tampered status lost other packages"
# The disk does not.
run_rc qvm diff e2e-rv --from base --json
expect_eq "$rc" 0 "diff of the lying guest: $err"
python3 - <(printf '%s' "$out") "$(printf 'hidden = 1\n' | sha256sum | cut -c1-64)" <<'EOF' ||
import json, sys
d = json.load(open(sys.argv[1]))
c = {x["path"]: x for x in d["changes"]}
f = c.get("/etc/qvm-hidden.d/hidden.conf")
assert f and f["kind"] == "added" and f["to"]["sha256"] == sys.argv[2], f
p = [(x["kind"], x["to_version"]) for x in d["packages"] if x["name"] == "qvm-lie"]
assert p == [("installed", "1.0")], d["packages"]
EOF
  fail "the diff from the disk misses what the guest hides: $out"
log "PASS after $((SECONDS - t0)) s"
