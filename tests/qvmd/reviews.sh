#!/usr/bin/env bash
# Change sets through qvmd's API (/api/v1/reviews), on disks changed offline
# to a second file system state (mkfs.ext4 -d, as tests/review/review_vm.sh):
# a vm's change set made by the operator (201, Location), listed, shown, its
# diff (a hostile file name comes back as text) and playbook (JSON and YAML);
# a sandbox of agent a (the mini guest, stopped by the operator, its disk
# changed) whose change set agent a makes and reads, while agent b gets 404
# for it exactly as for an id that does not exist and agent a gets 404 on the
# operator's routes (approve, apply, edit); self-approval refused (qvmd acts
# as agent "ops", which made the vm's change set); an approval by ops of
# agent a's; an edit that fails ansible's syntax check (422, field text), a
# good one voiding the approval; reject; apply refused when not approved or
# to a stopped vm, and run (200, ansible's exit) on the running sandbox;
# bad ids and bodies; the audit trail names the actors.
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"
command -v qemu-storage-daemon >/dev/null || skip "needs qemu-storage-daemon (scripts/deps.sh)"
command -v ansible-playbook >/dev/null || skip "needs ansible-playbook (scripts/deps.sh test)"

mini=$(mini_guest)
sock=$tmp/qvmd.sock
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tok_a=agent-a-token-0123456789abc
tok_b=agent-b-token-0123456789abc
tok_r=read-token-0123456789abcdef
printf '%s agent:agent-a\n%s agent:agent-b\n%s read\n' "$tok_a" "$tok_b" "$tok_r" >"$tmp/tokens"
chmod 600 "$tmp/tokens"
# The operator's qvmd acts as agent "ops" (its audit records and approvals
# name it): a change set ops made, ops cannot approve.
QVM_AGENT=ops start_qvmd "$tmp/qvmd.log" --socket "$sock" --listen "127.0.0.1:$port" \
  --tokens "$tmp/tokens"
auth_a=(-H "Authorization: Bearer $tok_a")
auth_b=(-H "Authorization: Bearer $tok_b")
auth_r=(-H "Authorization: Bearer $tok_r")
tcp() { url_base=http://127.0.0.1:$port req "$@"; }

hostile='<img src=x onerror=alert(1)>'
# v1: a plain vm, changed offline after an internal snapshot "base"
offline_change v1 "$hostile"

# --- the operator's change set ---------------------------------------------------------
req POST /api/v1/reviews '{"vm": "v1", "from": "base"}'
expect_status 201 "create a review of v1"
id=$(jget "$body" 'o["id"]')
[[ $id =~ ^[0-9a-f]{12}$ ]] || fail "id '$id'"
grep -qi "^location: /api/v1/reviews/$id" "$tmp/hdrs" || fail "no Location: $(cat "$tmp/hdrs")"
expect_eq "$(jget "$body" 'o["status"], o["vm"], o["author"]["agent"], o["changes"]')" \
  "('pending', 'v1', 'ops', 6)" "the new change set"
req GET /api/v1/reviews
expect_status 200 "list"
expect_eq "$(jget "$body" '[r["id"] for r in o]')" "['$id']" "the list"
req GET "/api/v1/reviews?vm=nosuch"
expect_eq "$(jget "$body" 'len(o)')" 0 "the list of another vm's"
req GET "/api/v1/reviews/$id"
expect_status 200 "show"
expect_eq "$(jget "$body" 'o["id"]')" "$id" "show"
req GET "/api/v1/reviews/$id/diff"
expect_status 200 "diff"
python3 -c '
import json, sys
d = json.load(sys.stdin)
paths = {c["path"] for c in d["changes"]}
assert {"/etc/conf", "/etc/gone", "/opt/app/bin", "/etc/" + sys.argv[1]} <= paths, paths
for k in ("packages", "units", "users", "groups"):
    assert isinstance(d[k], list), k
' "$hostile" <<<"$body" || fail "the diff: $body"
req GET "/api/v1/reviews/$id/playbook"
expect_status 200 "playbook (JSON)"
python3 -c '
import json, sys
p = json.load(sys.stdin)
files = {f["path"]: f for f in p["files"]}
assert "playbook.yml" in files, files.keys()
assert "/opt/app/bin" in files["playbook.yml"]["text"], files["playbook.yml"]
assert p["truncated"] is False, p
' <<<"$body" || fail "the playbook JSON: $body"
req GET "/api/v1/reviews/$id/playbook?format=yaml"
expect_status 200 "playbook (YAML)"
expect_eq "$ctype" text/yaml "the YAML playbook's content type"
cmp -s "$tmp/resp" "$QVM_STATE_DIR/reviews/$id/playbook/playbook.yml" || fail "the YAML is not playbook.yml"
req GET "/api/v1/reviews/$id/playbook" '' -H 'Accept: text/yaml'
expect_eq "$ctype" text/yaml "Accept: text/yaml"
req GET "/api/v1/reviews/$id/playbook?format=xml"
expect_status 422 "format=xml"

# --- bad ids and bodies -----------------------------------------------------------------
req GET /api/v1/reviews/0123456789ab
expect_status 404 "an unknown id"
req GET /api/v1/reviews/NOT-AN-ID
expect_status 422 "a malformed id"
expect_eq "$(jget "$body" 'o["field"]')" id "the malformed id's field"
for bad in '{}|vm' '{"vm": "Bad_Name"}|vm' '{"vm": "v1", "from": 7}|from' \
  '{"vm": "v1", "extra": 1}|extra' '{"vm": "v1", "verify": true}|verify'; do
  req POST /api/v1/reviews "${bad%|*}"
  expect_status 422 "create with ${bad%|*}"
  expect_eq "$(jget "$body" 'o.get("field")')" "${bad#*|}" "the field named for ${bad%|*}"
done
req POST /api/v1/reviews '{"vm": "nosuch"}'
expect_status 404 "a review of an unknown vm"
req POST /api/v1/reviews '{"vm": "v1", "from": "nosuch"}'
expect_status 404 "a review from an unknown snapshot"
expect_eq "$(jget "$body" 'o["class"]')" SnapshotUnknown "the unknown snapshot's class"
req POST "/api/v1/reviews/$id/approve" '{"comment": "bad\u0007bell"}'
expect_status 422 "a comment with a control character"
expect_eq "$(jget "$body" 'o["field"]')" comment "the comment's field"
tcp POST "/api/v1/reviews/$id/approve" '{}' "${auth_r[@]}"
expect_status 403 "a read token approves"

# --- self-approval -------------------------------------------------------------------------
req POST "/api/v1/reviews/$id/approve" '{"comment": "mine"}'
expect_status 403 "ops approves its own change set"
expect_eq "$(jget "$body" 'o["class"]')" SelfApproval "the self-approval's class"
req GET "/api/v1/reviews/$id"
expect_eq "$(jget "$body" 'o["status"]')" pending "still pending after a refused approval"

# --- an agent's sandbox and its change set ---------------------------------------------------
qvm create gold --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append console=ttyS0 \
  --memory 256M --user root --image "$tmp/v1-golden.qcow2" --label golden=true >/dev/null ||
  fail "create gold"
tcp POST /api/v1/sandboxes '{"name": "sb-a", "from": "gold", "ttl": "20m", "waitCloudInit": false}' "${auth_a[@]}"
expect_status 201 "agent a's sandbox"
req POST /api/v1/vms/sb-a/stop '{}'
expect_status 200 "the operator stops sb-a"
sdisk=$QVM_STATE_DIR/vms/sb-a/disk.qcow2
qemu-img snapshot -c base "$sdisk" || fail "snapshot of sb-a's disk"
qemu-img convert -n -f raw -O qcow2 "$tmp/v1-b.raw" "$sdisk" || fail "sb-a's disk changed"

tcp POST /api/v1/reviews '{"vm": "sb-a", "from": "base"}' "${auth_b[@]}"
expect_status 404 "agent b's review of agent a's sandbox"
b404=$(jget "$body" 'o["detail"]')
tcp POST /api/v1/reviews '{"vm": "v1", "from": "base"}' "${auth_a[@]}"
expect_status 404 "agent a's review of a vm that is no sandbox of its"
tcp POST /api/v1/reviews '{"vm": "sb-a", "from": "base"}' "${auth_a[@]}"
expect_status 201 "agent a's review of its sandbox"
aid=$(jget "$body" 'o["id"]')
expect_eq "$(jget "$body" 'o["author"]["agent"], o["vm"]')" "('agent-a', 'sb-a')" "the author is agent a"
tcp GET /api/v1/reviews '' "${auth_a[@]}"
expect_eq "$(jget "$body" '[r["id"] for r in o]')" "['$aid']" "agent a lists only its own"
tcp GET /api/v1/reviews '' "${auth_b[@]}"
expect_eq "$(jget "$body" 'len(o)')" 0 "agent b lists none"
for p in "" /diff /playbook; do
  tcp GET "/api/v1/reviews/$aid$p" '' "${auth_a[@]}"
  expect_status 200 "agent a reads its review$p"
  tcp GET "/api/v1/reviews/$aid$p" '' "${auth_b[@]}"
  expect_status 404 "agent b reads agent a's review$p"
  d1=$(jget "$body" 'o["detail"]')
  tcp GET "/api/v1/reviews/0123456789ab$p" '' "${auth_b[@]}"
  expect_status 404 "agent b reads an unknown review$p"
  expect_eq "$(jget "$body" 'o["detail"]' | sed 's/0123456789ab/ID/')" \
    "$(sed "s/$aid/ID/" <<<"$d1")" "another's review reads as one that does not exist$p"
  tcp GET "/api/v1/reviews/$id$p" '' "${auth_a[@]}"
  expect_status 404 "agent a reads the operator's review$p"
done
[[ -n $b404 ]] || fail "no detail in agent b's 404"
for call in "POST /approve" "POST /reject" "POST /apply" "PUT /playbook"; do
  tcp "${call% *}" "/api/v1/reviews/$aid${call#* }" '{}' "${auth_a[@]}"
  expect_status 404 "agent a: ${call}"
  expect_eq "$(jget "$body" 'o["detail"]')" "no such resource" "agent a: ${call} is not its route"
done
req GET "/api/v1/reviews/$aid"
expect_eq "$(jget "$body" 'o["status"]')" pending "agent a's calls changed nothing"

# --- approve, edit, reject, apply ---------------------------------------------------------
req POST "/api/v1/reviews/$aid/apply" '{}'
expect_status 409 "apply of a pending change set"
req POST "/api/v1/reviews/$aid/approve" '{"comment": "looks right"}'
expect_status 200 "ops approves agent a's change set"
expect_eq "$(jget "$body" 'o["status"], o["approval"]["actor"]["agent"]')" "('approved', 'ops')" \
  "approved by ops"
pb=$QVM_STATE_DIR/reviews/$aid/playbook/playbook.yml
cp "$pb" "$tmp/pb.yml"
req PUT "/api/v1/reviews/$aid/playbook" '{"text": "- hosts: all\n  tasks:\n    - name: [unclosed\n"}'
expect_status 422 "an edit that fails the syntax check"
expect_eq "$(jget "$body" 'o["field"], o["class"]')" "('text', 'PlaybookSyntax')" "the refused edit"
cmp -s "$tmp/pb.yml" "$pb" || fail "a refused edit changed the playbook"
req GET "/api/v1/reviews/$aid"
expect_eq "$(jget "$body" 'o["status"]')" approved "a refused edit keeps the approval"
req PUT "/api/v1/reviews/$aid/playbook" '{"text": 7}'
expect_status 422 "an edit with a number"
newpb=$(python3 -c 'import json,sys; t=open(sys.argv[1]).read()+"- name: one more play\n  hosts: all\n  gather_facts: false\n  tasks:\n  - ansible.builtin.ping:\n"; print(json.dumps({"text": t}))' "$pb")
req PUT "/api/v1/reviews/$aid/playbook" "$newpb"
expect_status 200 "a good edit"
expect_eq "$(jget "$body" 'o["changed"], o["review"]["status"], o["review"]["approval"]')" \
  "(True, 'pending', None)" "an edit voids the approval"
grep -q 'one more play' "$pb" || fail "the edit is not in playbook.yml"
req PUT "/api/v1/reviews/$aid/playbook" "$newpb"
expect_eq "$(jget "$body" 'o["changed"]')" False "the same text again is no edit"
req POST "/api/v1/reviews/$aid/reject" '{"comment": "not now"}'
expect_status 200 "reject"
expect_eq "$(jget "$body" 'o["status"]')" rejected "rejected"
req POST "/api/v1/reviews/$aid/approve"
expect_status 409 "approve after reject"
req POST "/api/v1/reviews/$aid/apply" '{"target": "sb-a"}'
expect_status 409 "apply of a rejected change set"
req POST "/api/v1/reviews/$aid/apply" '{"target": "Bad_Name"}'
expect_status 422 "apply to a bad target name"
expect_eq "$(jget "$body" 'o["field"]')" target "the target's field"
req POST /api/v1/reviews/0123456789ab/apply '{}'
expect_status 404 "apply of an unknown review"

# A symlink in a playbook dir (planted by hand: libqvm writes none) is not
# followed: its target's bytes never come back.
ln -s /etc/passwd "$QVM_STATE_DIR/reviews/$aid/playbook/passwd.yml"
ln -s /etc "$QVM_STATE_DIR/reviews/$aid/playbook/etc"
req GET "/api/v1/reviews/$aid/playbook"
expect_status 200 "the playbook beside symlinks"
expect_eq "$(jget "$body" 'sorted(f["path"] for f in o["files"] if not f["path"].startswith("files/"))')" \
  "['playbook.yml']" "only regular files are listed"
! grep -q 'root:x:0:0' <<<"$body" || fail "a symlink's target was served"
rm "$QVM_STATE_DIR/reviews/$aid/playbook/passwd.yml" "$QVM_STATE_DIR/reviews/$aid/playbook/etc"

# An approved change set applied to its running sandbox: the mini guest has
# no Python, so ansible fails there, and the answer says so (200, "exit").
tcp POST /api/v1/reviews '{"vm": "sb-a", "from": "base"}' "${auth_a[@]}"
expect_status 201 "agent a's second review"
aid2=$(jget "$body" 'o["id"]')
req POST "/api/v1/reviews/$aid2/approve" '{}'
expect_status 200 "ops approves it"
req POST "/api/v1/reviews/$aid2/apply" '{}'
[[ $status == 409 ]] || fail "apply to a stopped vm: status $status: $body"
req POST /api/v1/vms/sb-a/start '{"timeoutMs": 120000}'
expect_status 200 "start sb-a again"
for _ in $(seq 1800); do
  grep -q 'qvm-mini: ready' "$QVM_STATE_DIR/vms/sb-a/serial.log" 2>/dev/null && break
  sleep 0.1
done
req POST "/api/v1/reviews/$aid2/apply" '{"timeoutMs": 300000}'
expect_status 200 "apply to the running sandbox"
python3 -c '
import json, os, sys
r = json.load(sys.stdin)
assert r["id"] == sys.argv[1], r
assert isinstance(r["exit"], int) and r["exit"] != 0, r  # no Python in the mini guest
assert os.path.isfile(r["log"]), r
' "$aid2" <<<"$body" || fail "the apply result: $body"
req GET "/api/v1/reviews/$aid2"
expect_eq "$(jget "$body" 'o["status"], len(o["applies"])')" "('approved', 1)" \
  "a failed apply is recorded and leaves the approval"

# --- the audit trail ----------------------------------------------------------------------
req GET "/api/v1/audit?vm=sb-a"
expect_status 200 "audit of sb-a"
python3 -c '
import json, sys
recs = json.load(sys.stdin)
acts = [(r["action"], (r.get("actor") or {}).get("agent")) for r in recs]
for want in (("review-create", "agent-a"), ("review-approve", "ops"), ("review-edit", "ops"),
             ("review-reject", "ops")):
    assert want in acts, (want, acts)
' <<<"$body" || fail "the audit trail of sb-a: $body"
req GET "/api/v1/audit?vm=v1"
python3 -c '
import json, sys
recs = json.load(sys.stdin)
assert any(r["action"] == "review-approve" and (r.get("details") or {}).get("error") and
           (r.get("actor") or {}).get("agent") == "ops" for r in recs), recs
' <<<"$body" || fail "the refused self-approval is not in the audit log: $body"
log "ok"
