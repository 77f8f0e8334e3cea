#!/usr/bin/env bash
# qvm diff on images built with mkfs.ext4 -d that carry a fake Debian
# system (dpkg status and file lists, systemd enablement links, passwd and
# group): the exact lists of files, packages, units, users and groups, and
# the exact playbook (golden: tests/diff/golden/, QVM_TEST_REGENERATE=1),
# which ansible-playbook --syntax-check accepts. Hostile: guest file names
# and symlink targets carrying Jinja ('{{ lookup("pipe", ...) }}'), quotes
# and newlines are applied for real with ansible-playbook -c local to a
# scratch tree, and nothing runs on the controller; a second run changes
# nothing. Names that are not UTF-8, device nodes, a file over the content
# cap, a symlink or non-empty output directory are refused clearly.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v qemu-storage-daemon >/dev/null || skip "needs qemu-storage-daemon (scripts/deps.sh)"
command -v mkfs.ext4 >/dev/null || skip "needs e2fsprogs"
command -v ansible-playbook >/dev/null || skip "needs ansible-core (scripts/deps.sh test)"
mkdir -p "$QVM_RUNTIME_DIR" "$tmp/tmpdir"
export TMPDIR=$tmp/tmpdir # where qvm keeps the contents while it diffs
export ANSIBLE_HOME=$tmp/ansible-home ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0
golden=$QVM_SOURCE_DIR/tests/diff/golden

run_rc() {
  set +e
  out=$("$@" 2>"$tmp/stderr")
  rc=$?
  err=$(cat "$tmp/stderr")
  set -e
}
mkfs() { mkfs.ext4 -q -F -d "$1" "$2" "${3:-16M}" >/dev/null 2>&1 || fail "mkfs.ext4 -d $1"; }
check_golden() { # file name
  if [[ -n ${QVM_TEST_REGENERATE:-} ]]; then
    cp "$1" "$golden/$2"
    log "regenerated $golden/$2"
  fi
  diff -u "$golden/$2" "$1" >&2 || fail "$2 differs from the golden file"
}

# --- A fake Debian system, before (S1) and after (S2) -----------------------
S1=$tmp/S1 S2=$tmp/S2
mkdir -p "$S1"/etc/systemd/system/multi-user.target.wants "$S1"/var/lib/dpkg/info \
  "$S1"/usr/lib/systemd/system "$S1"/home "$S1"/var/log
cat >"$S1/var/lib/dpkg/status" <<'EOF'
Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21.22

Package: oldpkg
Status: install ok installed
Architecture: all
Version: 1.0

Package: libfoo1
Status: install ok installed
Architecture: amd64
Version: 2.0-1

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 0.1
EOF
printf 'root:x:0:0:root:/root:/bin/bash\nold:x:1001:1001:Old:/home/old:/bin/sh\n' >"$S1/etc/passwd"
printf 'root:x:0:\nold:x:1001:\nsudo:x:27:\n' >"$S1/etc/group"
for u in foo bar was; do echo '[Unit]' >"$S1/usr/lib/systemd/system/$u.service"; done
ln -s /lib/systemd/system/was.service "$S1/etc/systemd/system/multi-user.target.wants/was.service"
# merged /usr: dpkg's lists say /lib/..., the walk sees /usr/lib/...
mkdir -p "$S1/usr/lib/oldpkg"
ln -s usr/lib "$S1/lib"
echo data >"$S1/usr/lib/oldpkg/data"
printf '/.\n/lib\n/lib/oldpkg\n/lib/oldpkg/data\n' >"$S1/var/lib/dpkg/info/oldpkg.list"
echo keep >"$S1/etc/motd"
echo old-log >"$S1/var/log/syslog"
cp -a "$S1/." "$S2"
cat >"$S2/var/lib/dpkg/status" <<'EOF'
Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21.22

Package: libfoo1
Status: install ok installed
Architecture: amd64
Version: 2.1-1

Package: newpkg
Status: install ok installed
Architecture: amd64
Version: 3.0
Conffiles:
 /etc/newpkg/a.conf 0cc175b9c0f1b6a831c399e269772661
 /etc/newpkg/b.conf 92eb5ffee6ae2fec3ad71c777531578f
 /etc/newpkg/old.conf 92eb5ffee6ae2fec3ad71c777531578f obsolete

Package: libbar1
Status: install ok installed
Architecture: i386
Version: 1.0
EOF
rm -r "$S2/usr/lib/oldpkg" # apt removed it with oldpkg
mkdir -p "$S2/etc/newpkg" "$S2/usr/bin" "$S2/usr/lib/newpkg"
echo plugin >"$S2/usr/lib/newpkg/plugin.so" # shipped as /lib/newpkg/plugin.so
printf a >"$S2/etc/newpkg/a.conf"                # md5 as shipped: apt makes it
printf 'b changed' >"$S2/etc/newpkg/b.conf"      # changed conffile: copied
echo bin >"$S2/usr/bin/newpkg"                   # shipped: apt makes it
echo not-shipped >"$S2/usr/bin/local-tool"       # no package has it: copied
printf '/.\n/etc\n/etc/newpkg\n/etc/newpkg/a.conf\n/etc/newpkg/b.conf\n/usr\n/usr/bin\n/usr/bin/newpkg\n/lib/newpkg\n/lib/newpkg/plugin.so\n' \
  >"$S2/var/lib/dpkg/info/newpkg.list"
printf 'root:x:0:0:root:/root:/bin/bash\nbob:x:1002:1002:Bob {{ 7*7 }}:/home/bob:/bin/bash\n' >"$S2/etc/passwd"
printf 'root:x:0:\nsudo:x:27:bob\nbob:x:1002:\n' >"$S2/etc/group"
rm "$S2/etc/systemd/system/multi-user.target.wants/was.service"
ln -s /lib/systemd/system/foo.service "$S2/etc/systemd/system/multi-user.target.wants/foo.service"
ln -s /dev/null "$S2/etc/systemd/system/bar.service"
mkdir -p "$S2/home/bob"
echo hi >"$S2/home/bob/.profile"
chown -R 1002:1002 "$S2/home/bob"
chmod 0640 "$S2/etc/motd"
echo new-log >>"$S2/var/log/syslog"
mkfs "$S1" "$tmp/s1.raw"
mkfs "$S2" "$tmp/s2.raw"

run_rc qvm diff --images "$tmp/s1.raw" "$tmp/s2.raw"
expect_eq "$rc" 0 "system diff: $err"
want='M /etc/group (content)
M /etc/motd (mode)
A /etc/newpkg
A /etc/newpkg/a.conf
A /etc/newpkg/b.conf
M /etc/passwd (content)
A /etc/systemd/system/bar.service
A /etc/systemd/system/multi-user.target.wants/foo.service
D /etc/systemd/system/multi-user.target.wants/was.service
A /home/bob
A /home/bob/.profile
A /usr/bin
A /usr/bin/local-tool
A /usr/bin/newpkg
A /usr/lib/newpkg
A /usr/lib/newpkg/plugin.so
D /usr/lib/oldpkg
D /usr/lib/oldpkg/data
package installed libbar1:i386 1.0
package upgraded libfoo1:amd64 2.0-1 -> 2.1-1
package installed newpkg:amd64 3.0
package removed oldpkg:all 1.0
unit masked bar.service
unit enabled foo.service
unit disabled was.service
user added bob uid=1002 gid=1002 home=/home/bob shell=/bin/bash groups=sudo
user deleted old uid=1001 gid=1001 home=/home/old shell=/bin/sh groups=
group added bob gid=1002
group deleted old gid=1001
group modified sudo gid=27'
expect_eq "$out" "$want" "files, packages, units, users, groups (/var/lib/dpkg, /var/log hidden)"

run_rc qvm diff --images "$tmp/s1.raw" "$tmp/s2.raw" --json
expect_eq "$rc" 0 "system json: $err"
python3 - "$out" <<'PY' || fail "system json"
import json, sys
d = json.loads(sys.argv[1])
assert [(p["kind"], p["name"], p["arch"], p["from_version"], p["to_version"]) for p in d["packages"]] == [
    ("installed", "libbar1", "i386", None, "1.0"), ("upgraded", "libfoo1", "amd64", "2.0-1", "2.1-1"),
    ("installed", "newpkg", "amd64", None, "3.0"), ("removed", "oldpkg", "all", "1.0", None)], d["packages"]
assert [(u["name"], u["change"]) for u in d["units"]] == [
    ("bar.service", "masked"), ("foo.service", "enabled"), ("was.service", "disabled")], d["units"]
bob = [u for u in d["users"] if u["name"] == "bob"][0]
assert (bob["kind"], bob["uid"], bob["gid"], bob["gecos"], bob["groups"]) == ("added", 1002, 1002, "Bob {{ 7*7 }}", ["sudo"]), bob
assert [(g["kind"], g["name"], g["gid"], g["members"]) for g in d["groups"]] == [
    ("added", "bob", 1002, []), ("deleted", "old", 1001, []), ("modified", "sudo", 27, ["bob"])], d["groups"]
# apt's part of the package changes is marked (what the playbook leaves to
# apt), without --ansible too: a.conf has the md5 newpkg recorded, b.conf
# was edited, local-tool no package ships; oldpkg's files went with it.
apt = sorted(c["path"] for c in d["changes"] if c.get("package") is True)
assert apt == ["/etc/newpkg", "/etc/newpkg/a.conf", "/usr/bin", "/usr/bin/newpkg", "/usr/lib/newpkg",
               "/usr/lib/newpkg/plugin.so", "/usr/lib/oldpkg", "/usr/lib/oldpkg/data"], apt
assert all(c.get("package", True) is True for c in d["changes"]), d["changes"]
PY

run_rc qvm diff --images "$tmp/s1.raw" "$tmp/s2.raw" --ansible -o "$tmp/pb"
expect_eq "$rc" 0 "system playbook: $err"
expect_eq "$(stat -c %a "$tmp/pb")" 700 "the playbook dir's mode"
expect_eq "$(stat -c %a "$tmp/pb/playbook.yml")" 600 "playbook.yml's mode"
check_golden "$tmp/pb/playbook.yml" system-playbook.yml
# the contents copied: b.conf, local-tool, .profile; not a.conf, newpkg nor
# plugin.so (apt makes them), and oldpkg's files are not deleted (apt does)
grep -E '!unsafe "(/usr/lib/oldpkg|/usr/lib/newpkg|/etc/newpkg/a\.conf|/usr/bin/newpkg)' "$tmp/pb/playbook.yml" &&
  fail "the playbook makes or deletes a file apt does"
want_files=$( (printf 'b changed' | sha256sum; echo hi | sha256sum; echo not-shipped | sha256sum) | cut -c1-64 | sort)
expect_eq "$(ls "$tmp/pb/files" | sort)" "$want_files" "files/: the three contents the playbook copies"
for f in "$tmp"/pb/files/*; do
  expect_eq "$(sha256sum <"$f" | cut -c1-64)" "$(basename "$f")" "files/ named by sha256"
done
run_rc ansible-playbook --syntax-check -i localhost, "$tmp/pb/playbook.yml"
expect_eq "$rc" 0 "syntax-check of the system playbook: $out $err"

# --- Hostile names, applied for real to a scratch tree -----------------------
# The scratch tree R exists on this host; image A holds the same tree, B
# the changed one. The default ignore list would hide /tmp: off.
R=$tmp/root
ctl=$tmp/ctl # ansible-playbook's working directory (a pipe lookup runs in the playbook's)
mkdir -p "$R/keep" "$R/del/sub" "$ctl"
echo keep >"$R/keep/same"
echo old >"$R/keep/changed"
echo bye >"$R/del/sub/f"
chmod 0755 "$R" "$R/keep" "$R/del" "$R/del/sub"
chmod 0644 "$R/keep/same" "$R/keep/changed" "$R/del/sub/f"
A=$tmp/hA B=$tmp/hB
mkdir -p "$A$R" "$B$R"
cp -a "$R/." "$A$R/"
cp -a "$R/." "$B$R/"
rm -r "$B$R/del"
echo new >"$B$R/keep/changed"
j1="{{ lookup('pipe', 'touch PWNED-name') }}"
j2='{% for x in lookup("pipe", "touch PWNED-dir", wantlist=True) %}{% endfor %}'
q=$'quote"\'back\\slash\nnewline'
mkdir "$B$R/$j2"
echo 'inside {{ lookup("pipe", "touch PWNED-content") }}' >"$B$R/$j2/$j1"
echo q >"$B$R/$q"
ln -s "/x/{{ lookup('pipe', 'touch PWNED-target') }}" "$B$R/link"
printf 'secret' >"$B$R/keep/private"
chmod 0600 "$B$R/keep/private"
chmod 0700 "$B$R/$j2"
mkfs "$A" "$tmp/ha.raw"
mkfs "$B" "$tmp/hb.raw"
run_rc qvm diff --images "$tmp/ha.raw" "$tmp/hb.raw" --no-default-ignore --ansible -o "$tmp/hpb"
expect_eq "$rc" 0 "hostile playbook: $err"
grep -q '!unsafe "/x/{{ lookup' "$tmp/hpb/playbook.yml" || fail "the symlink target is not !unsafe"
run_rc ansible-playbook --syntax-check -i localhost, "$tmp/hpb/playbook.yml"
expect_eq "$rc" 0 "syntax-check of the hostile playbook: $out $err"

# The canary: the same lookup without !unsafe does run (so that the check
# below can fail).
printf -- '- hosts: all\n  gather_facts: false\n  tasks:\n  - ansible.builtin.debug:\n      msg: "%s"\n' \
  "{{ lookup('pipe', 'touch CANARY') }}" >"$tmp/canary.yml"
(cd "$ctl" && ansible-playbook -i localhost, -c local "$tmp/canary.yml" >/dev/null 2>&1) || fail "canary playbook"
[[ -e $tmp/CANARY ]] || fail "an unprotected lookup did not run: the PWNED check below proves nothing"
rm "$tmp/CANARY"

apply() { (cd "$ctl" && ansible-playbook -i localhost, -c local "$tmp/hpb/playbook.yml" 2>&1); }
run_rc apply
expect_eq "$rc" 0 "apply: $out"
expect_eq "$(ls -A "$ctl")" "" "something ran on the controller (in its cwd)"
expect_eq "$(ls -A "$tmp/hpb")" "files
playbook.yml" "something ran on the controller (in the playbook's dir)"
expect_eq "$(find "$tmp" "$HOME" -maxdepth 3 -name 'PWNED*' 2>/dev/null || true)" "" "a PWNED file"
[[ -d $R/$j2 && -f $R/$j2/$j1 ]] || fail "the Jinja-named directory and file were not made literally"
expect_eq "$(cat "$R/$j2/$j1")" 'inside {{ lookup("pipe", "touch PWNED-content") }}' "content copied as is"
expect_eq "$(stat -c %a "$R/$j2")" 700 "the directory's mode"
expect_eq "$(cat "$R/$q")" q "the quote/backslash/newline name"
expect_eq "$(readlink "$R/link")" "/x/{{ lookup('pipe', 'touch PWNED-target') }}" "the symlink target, literally"
expect_eq "$(cat "$R/keep/changed")" new "a changed file"
expect_eq "$(stat -c %a "$R/keep/private")" 600 "a new file's mode"
[[ ! -e $R/del ]] || fail "the deleted directory is still there"
# Now R is B: the diff of B against an image of R is empty, and a second
# run changes nothing.
mkdir -p "$tmp/hR$R"
cp -a "$R/." "$tmp/hR$R/"
chmod 0755 "$tmp/hR$R"
mkfs "$tmp/hR" "$tmp/hr.raw"
run_rc qvm diff --images "$tmp/hb.raw" "$tmp/hr.raw" --no-default-ignore
expect_eq "$rc/$out" "0/" "the applied tree against B"
run_rc apply
expect_eq "$rc" 0 "second apply: $out"
expect_match "$out" "changed=0 " "a second run changes nothing"

# --- Refusals -------------------------------------------------------------------
E=$tmp/E N=$tmp/N
mkdir -p "$E/etc" "$N/etc"
echo x >"$N/etc/"$'bad\xff\xfe'
mkfs "$E" "$tmp/e.raw"
mkfs "$N" "$tmp/n.raw"
run_rc qvm diff --images "$tmp/e.raw" "$tmp/n.raw" --ansible -o "$tmp/bad-utf8"
expect_eq "$rc" 1 "a name that is not UTF-8"
expect_match "$err" "'/etc/bad\\\\xff\\\\xfe' is not valid UTF-8" "the path, neutralized: $err"
[[ $err != *$'\xff'* ]] || fail "a raw non-UTF-8 byte reached the error"
[[ ! -e $tmp/bad-utf8 ]] || fail "the refused playbook's dir was left"
# a fifo (mkfs -d copies it)
F=$tmp/F
mkdir -p "$F/etc"
mkfifo "$F/etc/pipe"
mkfs "$F" "$tmp/f.raw"
run_rc qvm diff --images "$tmp/e.raw" "$tmp/f.raw" --ansible -o "$tmp/fifo"
expect_eq "$rc" 1 "a fifo"
expect_match "$err" "'/etc/pipe' is a fifo, which the playbook cannot create" "fifo: $err"
# names Ansible's path arguments would expand on the target (expandvars,
# expanduser), !unsafe or not: '/$HOME' would be the target's /root
X=$tmp/X
mkdir -p "$X/etc" "$X/"'$HOME'
touch "$X/etc/"'${USER}-copied'
mkfs "$X" "$tmp/x.raw"
run_rc qvm diff --images "$tmp/e.raw" "$tmp/x.raw" --ansible -o "$tmp/expand"
expect_eq "$rc" 1 "a name with \$"
expect_match "$err" "holds '\\\$' or starts with '~', which Ansible expands on the target" "\$: $err"
[[ ! -e $tmp/expand ]] || fail "the refused playbook's dir was left"
T=$tmp/T
mkdir -p "$T/etc"
ln -s '~root/.ssh' "$T/etc/keys"
mkfs "$T" "$tmp/t.raw"
run_rc qvm diff --images "$tmp/e.raw" "$tmp/t.raw" --ansible -o "$tmp/tilde"
expect_eq "$rc" 1 "a symlink target with ~"
expect_match "$err" "the symlink target of '/etc/keys' holds" "~: $err"
# over the per-file and the total cap
H=$tmp/H
mkdir -p "$H/etc"
head -c 3000000 /dev/urandom >"$H/etc/huge"
head -c 100000 /dev/urandom >"$H/etc/small1"
head -c 100000 /dev/urandom >"$H/etc/small2"
mkfs "$H" "$tmp/h.raw" 32M
run_rc qvm diff --images "$tmp/e.raw" "$tmp/h.raw" --ansible -o "$tmp/huge" --max-file-size 1M
expect_eq "$rc" 1 "a file over the per-file cap"
expect_match "$err" "'/etc/huge' is 3000000 bytes, over the per-file content cap \(content_max_file\) of 1048576 bytes" "per-file cap: $err"
run_rc qvm diff --images "$tmp/e.raw" "$tmp/h.raw" --ansible -o "$tmp/huge" --max-total-size 3100000
expect_eq "$rc" 1 "over the total cap"
expect_match "$err" "total content cap of 3100000 bytes \(content_max_total\)" "total cap: $err"
[[ ! -e $tmp/huge ]] || fail "a refused playbook's dir was left"
expect_eq "$(ls -A "$TMPDIR")" "" "a content dir was left behind"
# the output dir: a symlink, a file, a non-empty dir are refused; an empty one is used
mkdir "$tmp/target" "$tmp/full" "$tmp/empty"
touch "$tmp/full/x" "$tmp/plain"
ln -s "$tmp/target" "$tmp/link-dir"
for d in link-dir plain full; do
  run_rc qvm diff --images "$tmp/s1.raw" "$tmp/s2.raw" --ansible -o "$tmp/$d"
  expect_eq "$rc" 4 "output dir $d"
done
expect_match "$err" "directory '$tmp/full' is not empty" "non-empty dir"
expect_eq "$(ls -A "$tmp/target")" "" "nothing was written through the symlink"
run_rc qvm diff --images "$tmp/s1.raw" "$tmp/s2.raw" --ansible -o "$tmp/empty"
expect_eq "$rc" 0 "an empty output dir: $err"
cmp "$tmp/empty/playbook.yml" "$tmp/pb/playbook.yml" || fail "the same diff wrote another playbook"
# A guest's dpkg status and account files are hostile: garbage, a name
# that could be an option or a template, a gecos that is not UTF-8.
G=$tmp/G
mkdir -p "$G/etc" "$G/var/lib/dpkg"
cp "$S1/etc/group" "$G/etc/group"
printf 'Package: ok\nStatus: install ok installed\nVersion: 1\n\nPackage: --force-all\n' >"$G/var/lib/dpkg/status"
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$G/etc/passwd"
mkfs "$G" "$tmp/g.raw"
run_rc qvm diff --images "$tmp/s1.raw" "$tmp/g.raw"
expect_eq "$rc" 1 "a hostile dpkg status"
expect_match "$err" "the new state: /var/lib/dpkg/status: line 5: an invalid package name" "status: $err"
printf 'Package: ok\nStatus: install ok installed\nVersion: 1\n' >"$G/var/lib/dpkg/status"
printf 'root:x:0:0:root:/root:/bin/bash\n+::::::\n' >"$G/etc/passwd"
mkfs "$G" "$tmp/g.raw"
run_rc qvm diff --images "$tmp/s1.raw" "$tmp/g.raw"
expect_eq "$rc" 1 "a NIS line in /etc/passwd"
expect_match "$err" "/etc/passwd: line 2: an invalid user name" "passwd: $err"
printf 'root:x:0:0:root:/root:/bin/bash\nold:x:1001:1001:Old:/home/old:/bin/sh\neve:x:1003:1003:\xff\xfe\x1b[2J:/home/eve:/bin/sh\n' >"$G/etc/passwd"
cp "$S1/var/lib/dpkg/status" "$G/var/lib/dpkg/status"
mkfs "$G" "$tmp/g.raw"
run_rc qvm diff --images "$tmp/s1.raw" "$tmp/g.raw" --ansible -o "$tmp/gecos"
expect_eq "$rc" 1 "a gecos that is not UTF-8"
expect_match "$err" "the gecos of user 'eve' is not valid UTF-8" "gecos: $err"
run_rc qvm diff --images "$tmp/s1.raw" "$tmp/g.raw"
expect_eq "$rc" 0 "a gecos that is not UTF-8, listed: $err"
[[ $out != *$'\e'* && $out != *$'\xff'* ]] || fail "a raw gecos byte reached the table"
run_rc qvm diff --images "$tmp/s1.raw" "$tmp/g.raw" --json
python3 -c '
import base64, json, sys
u = [u for u in json.loads(sys.argv[1])["users"] if u["name"] == "eve"][0]
assert base64.b64decode(u["gecos_b64"]) == b"\xff\xfe\x1b[2J", u
assert "\x1b" not in u["gecos"], u
' "$out" || fail "gecos in the JSON: $out"

run_rc qvm diff --images "$tmp/s1.raw" "$tmp/s2.raw" --json --ansible
expect_eq "$rc" 2 "--json with --ansible"
run_rc qvm diff --images "$tmp/s1.raw" "$tmp/s2.raw" -o "$tmp/x"
expect_eq "$rc" 2 "-o without --ansible"
log "PASS"
