#!/usr/bin/env bash
# End to end, qvm review with the cloud guest (issue 15, "Review with a human
# gate"), on one boot: the guest's apt is pointed at a local repository
# only (served from this test's tmp dir on the host's loopback, 10.0.2.2 to
# the guest; no guest traffic leaves the host); an agent changes a vm after
# a snapshot with RAM (a package installed from that repository and its
# conffile edited, its unit enabled, a user and a group added, a config
# file, a new tree with a mode, a symlink, a deleted file); `review create`
# records it, and its diff lists exactly that; the agent cannot approve it,
# a person does; the vm is restored to the snapshot and forked (a clone at
# the base that needs no boot); `review apply --target` the fork makes the
# fork's diff from the base equal to the vm's (same paths, types, modes,
# owners, hashes; same packages, units, users, groups); a second apply
# reports changed=0; the audit log has every step.
# Then the guest lies (a tmpfs over a directory hides a new file, a
# tampered dpkg status bind-mounted over the real one hides a new package)
# and `qvm diff --json`, read from the disk, still lists both.
. "$(dirname "$0")/lib.sh"
command -v ansible-playbook >/dev/null || skip "needs ansible-playbook (scripts/deps.sh test)"
command -v qemu-storage-daemon >/dev/null || skip "needs qemu-storage-daemon (scripts/deps.sh)"
command -v dpkg-scanpackages >/dev/null || skip "needs dpkg-scanpackages (dpkg-dev)"

image=$(cloud_image)
t0=$SECONDS

# --- A local apt repository, built on the host ------------------------------
# qvm-rv-tool 1.2-1: a program, a conffile and a unit it does not enable.
repo=$tmp/repo pkg=$tmp/pkg
mkdir -p "$repo" "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/etc" "$pkg/lib/systemd/system"
printf '#!/bin/sh\necho qvm-rv-tool\n' >"$pkg/usr/bin/qvm-rv-tool"
chmod 755 "$pkg/usr/bin/qvm-rv-tool"
printf 'level = 1\n' >"$pkg/etc/qvm-rv-tool.conf"
printf '[Unit]\nDescription=qvm review e2e\n[Service]\nType=oneshot\nExecStart=/usr/bin/qvm-rv-tool\n[Install]\nWantedBy=multi-user.target\n' \
  >"$pkg/lib/systemd/system/qvm-rv-tool.service"
printf 'Package: qvm-rv-tool\nVersion: 1.2-1\nArchitecture: all\nMaintainer: qvm <qvm@localhost>\nDescription: qvm review e2e\n' \
  >"$pkg/DEBIAN/control"
echo /etc/qvm-rv-tool.conf >"$pkg/DEBIAN/conffiles"
dpkg-deb --root-owner-group --build "$pkg" "$repo/qvm-rv-tool_1.2-1_all.deb" >/dev/null ||
  fail "dpkg-deb --build"
# Ansible's apt module needs python3-apt on the target (it would install it
# from the target's sources, which here have no Debian): the image's owner
# installs it before the base, from debs rebuilt out of the host's own
# installed files and maintainer scripts (the same bookworm packages; no
# download).
repack() {
  local p=$1 d=$tmp/repack/$1 f
  mkdir -p "$d/DEBIAN"
  dpkg-query -W -f='Package: ${Package}\nVersion: ${Version}\nArchitecture: ${Architecture}\nMaintainer: ${Maintainer}\nDepends: ${Depends}\nDescription: ${binary:Summary}\n' "$p" \
    >"$d/DEBIAN/control" || skip "the host has no $p to give the guest"
  sed -i '/^Depends: $/d' "$d/DEBIAN/control"
  while IFS= read -r f; do
    if [[ -L $f || -f $f ]]; then printf '%s\n' "${f#/}"; fi
  done < <(dpkg-query -L "$p") >"$tmp/repack/$p.files"
  tar -C / -cf - --no-recursion -T "$tmp/repack/$p.files" | tar -C "$d" -xf - || fail "repack $p"
  # and its maintainer scripts: python3-apt's postinst byte-compiles it
  # (py3compile), as a real install does; without, the first import (by
  # Ansible's apt module on the fork) would write __pycache__ there
  for f in preinst postinst prerm postrm; do
    for g in "/var/lib/dpkg/info/$p.$f" /var/lib/dpkg/info/"$p":*."$f"; do
      if [[ -f $g ]]; then install -m 755 "$g" "$d/DEBIAN/$f"; fi
    done
  done
  dpkg-deb --root-owner-group --build "$d" "$repo/${p}.deb" >/dev/null || fail "repack $p"
}
for p in python3-apt python-apt-common distro-info-data; do repack "$p"; done
(cd "$repo" && dpkg-scanpackages --multiversion . /dev/null >Packages 2>/dev/null) ||
  fail "dpkg-scanpackages"
{
  printf 'Origin: qvm-e2e\nLabel: qvm-e2e\nSuite: qvm-e2e\nCodename: qvm-e2e\n'
  printf 'Date: %s\nArchitectures: amd64 all\nSHA256:\n' "$(date -u -R -d '-1 day')"
  printf ' %s %s Packages\n' "$(sha256sum <"$repo/Packages" | cut -c1-64)" "$(stat -c %s "$repo/Packages")"
} >"$repo/Release"
http_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$repo" "$http_port" >"$tmp/http.log" 2>&1 &
cleanup_hooks+=("kill $! 2>/dev/null")
for _ in $(seq 50); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:$http_port/Release" 2>/dev/null && break
  sleep 0.2
done

out=$(qvm up e2e-rv --image "$image" --memory 1G --disk 3G 2>&1) || fail "qvm up failed: $out"
log "up after $((SECONDS - t0)) s"
# The image's owner, before the base: the local repository as apt's only
# source (the Debian ones moved away), and python3-apt for Ansible.
qvm exec e2e-rv -- sudo sh -ec "
  mkdir -p /root/qvm-apt-sources
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do
    if [ -e \"\$f\" ]; then mv \"\$f\" /root/qvm-apt-sources/; fi
  done
  echo 'deb [trusted=yes] http://10.0.2.2:$http_port/ ./' >/etc/apt/sources.list
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-apt >/dev/null
  python3 -c 'import apt_pkg'
  test -d /usr/lib/python3/dist-packages/apt/__pycache__" || fail "the guest's apt on the local repository: $(tail -n 5 "$tmp/http.log")"
log "apt ready after $((SECONDS - t0)) s"
# qvm diff does not replay ext4's journal: a freeze checkpoints it, so
# each disk state read below is complete (else the base shows half-written
# inodes and the playbook recreates them).
flush() { qvm exec "$1" -- sudo sh -c 'sync; fsfreeze -f / && fsfreeze -u /' || fail "flush $1"; }
flush e2e-rv
out=$(qvm snapshot create e2e-rv base 2>&1) || fail "snapshot create: $out"
# What an agent does in its sandbox.
qvm --agent agent-1 exec e2e-rv -- sudo sh -c '
  set -e
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q qvm-rv-tool >/dev/null
  printf "level = 2\n" > /etc/qvm-rv-tool.conf
  systemctl enable qvm-rv-tool.service 2>/dev/null
  useradd -m -s /bin/bash -c "RV user" qvmrv
  groupadd qvmrv-ops
  usermod -aG qvmrv-ops qvmrv
  printf "setting = 1\n" > /etc/review-e2e.conf
  mkdir -p /opt/rv && printf "#!/bin/sh\necho rv\n" > /opt/rv/tool && chmod 750 /opt/rv/tool
  ln -s /opt/rv/tool /usr/local/bin/rv-tool
  rm /etc/motd
  sync' || fail "the agent's changes"
# No flush here: qvm diff freezes a running vm through its guest agent
# while it takes its snapshot, which checkpoints the journal.

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
python3 - "$rdir/diff.json" "$(printf 'level = 2\n' | sha256sum | cut -c1-64)" <<'EOF' ||
import fnmatch, json, sys
j = json.load(open(sys.argv[1]))
d = {c["path"]: c for c in j["changes"]}
for p, kind in [("/etc/review-e2e.conf", "added"), ("/opt/rv", "added"), ("/opt/rv/tool", "added"),
                ("/usr/local/bin/rv-tool", "added"), ("/etc/motd", "deleted"),
                ("/etc/qvm-rv-tool.conf", "added"),
                ("/etc/systemd/system/multi-user.target.wants/qvm-rv-tool.service", "added"),
                ("/home/qvmrv", "added"), ("/home/qvmrv/.profile", "added"),
                ("/etc/passwd", "modified"), ("/etc/group", "modified"),
                ("/etc/shadow", "modified"), ("/etc/gshadow", "modified")]:
    assert d.get(p, {}).get("kind") == kind, (p, d.get(p))
assert d["/opt/rv/tool"]["to"]["mode"] == "0750", d["/opt/rv/tool"]
half = [p for p, c in d.items() if (c.get("from") or {}).get("type") == "?"]
assert not half, ("half-written inodes in the base", half)
# The package's own files are apt's ("package": true), all but the edited
# conffile, whose content is not the package's.
conf = d["/etc/qvm-rv-tool.conf"]
assert "package" not in conf and conf["to"]["sha256"] == sys.argv[2], conf
for p in ["/usr/bin/qvm-rv-tool", "/usr/lib/systemd/system/qvm-rv-tool.service"]:
    assert d.get(p, {}).get("package") is True, (p, d.get(p))
# Nothing else: what the agent did, the new home's files (from /etc/skel)
# and the account files useradd, groupadd and usermod rewrite (and their
# backups); no noise.
agent = {"/etc/review-e2e.conf", "/opt/rv", "/opt/rv/tool", "/usr/local/bin/rv-tool", "/etc/motd",
         "/etc/qvm-rv-tool.conf", "/etc/systemd/system/multi-user.target.wants/qvm-rv-tool.service"}
accounts = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/subuid", "/etc/subgid"]
other = sorted(p for p, c in d.items() if not c.get("package") and p not in agent
               and p.rstrip("-") not in accounts and p != "/home/qvmrv"
               and not fnmatch.fnmatch(p, "/home/qvmrv/.*"))
assert not other, ("changes nobody asked for", other)
pk = [(x["kind"], x["name"], x["from_version"], x["to_version"]) for x in j["packages"]]
assert pk == [("installed", "qvm-rv-tool", None, "1.2-1")], pk
assert [(u["name"], u["change"]) for u in j["units"]] == [("qvm-rv-tool.service", "enabled")], j["units"]
us = [(u["kind"], u["name"], u["home"], u["shell"], u["gecos"], u["groups"]) for u in j["users"]]
assert us == [("added", "qvmrv", "/home/qvmrv", "/bin/bash", "RV user", ["qvmrv-ops"])], us
gs = [(g["kind"], g["name"], g["members"]) for g in j["groups"]]
assert gs == [("added", "qvmrv", []), ("added", "qvmrv-ops", ["qvmrv"])], gs
assert j["users"][0]["gid"] == j["groups"][0]["gid"], (j["users"], j["groups"])
EOF
  fail "the diff: $(cat "$rdir/diff.json")"

# The freeze, on its own: from the image (which has no journal to replay)
# to the running disk, nothing is "incomplete"; the guest is thawed after.
run_rc qvm diff e2e-rv --json
expect_eq "$rc" 0 "diff of the running vm: $err"
expect_eq "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["incomplete"])' "$out")" None \
  "a running vm's diff is complete (frozen through the guest agent)"
timeout 120 "$qvm_bin" exec e2e-rv -- sudo touch /var/tmp/qvm-thawed || fail "the guest was left frozen"

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

# sshd's logins on the fork (each qvm exec is one, this one included)
logins() { qvm exec e2e-tgt-1 -- sudo journalctl -u ssh.service -o cat | grep -c 'Accepted publickey'; }
logins0=$(logins) || fail "sshd's journal on the fork"
run_rc qvm review apply "$id" --target e2e-tgt-1 --json
expect_eq "$rc" 0 "apply: $err $out $(tail -n 30 "$rdir"/apply-1/ansible.log 2>/dev/null)"
changed=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["changed"])' "$out")
[[ $changed -gt 0 ]] || fail "the first apply changed nothing: $out"
# qvm's own login to the target (it checks the host key before ansible
# runs), then one SSH connection for the whole run, each task a session on
# it (before, a new connection for each: 55 logins here for 15 changes), and
# its master gone with the run.
applied_logins=$(($(logins) - logins0 - 1))
log "the apply logged in $applied_logins time(s) for its $changed changes"
((applied_logins >= 1 && applied_logins <= 3)) ||
  fail "the apply made $applied_logins SSH connections (one per task?)"
cpdir=$(sed -n 's/^control_path_dir = //p' "$rdir/apply-1/ansible.cfg")
[[ $cpdir == /tmp/qvm-cp-* ]] || fail "the apply's control path dir: '$cpdir'"
[[ ! -e $cpdir ]] || fail "the apply's control path dir $cpdir was left"
if pgrep -f -- "$cpdir/" >/dev/null; then
  fail "an ssh connection master outlived the apply: $(pgrep -af -- "$cpdir/")"
fi
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
wj, gj = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
want, got = ({c["path"]: c for c in j["changes"]} for j in (wj, gj))
# ansible's own files, and the fork's clock, set from the host through the
# guest agent when it resumed (hwclock writes /etc/adjtime)
noise = ["/home/*/.ansible", "/home/*/.ansible/*", "/root/.ansible", "/root/.ansible/*",
         "/etc/adjtime"]
got = {p: c for p, c in got.items() if p in want or not any(fnmatch.fnmatch(p, n) for n in noise)}
def state(c):
    t = c.get("to") or {}
    return (c["kind"] == "deleted", t.get("type"), t.get("mode"), t.get("uid"), t.get("gid"),
            t.get("sha256"), t.get("target"), c.get("package", False))
bad = sorted(p for p in set(want) | set(got)
             if p not in want or p not in got or state(want[p]) != state(got[p]))
for p in bad:
    print(p, want.get(p), got.get(p), file=sys.stderr)
assert not bad
# and the same packages, units, users and groups
for k in ["packages", "units", "users", "groups"]:
    assert wj[k] == gj[k], (k, wj[k], gj[k])
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
