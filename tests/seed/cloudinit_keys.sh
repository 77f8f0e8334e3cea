#!/usr/bin/env bash
# Keys added to a written seed (qvm_seed_add_authorized_key), read by
# cloud-init's own user-data code (Debian's cloud-init package, the version
# the guests run, unpacked into the cache: tests/seed/cloudinit_userdata.py):
# the pristine user-data of each kind cloud-init knows (cloud-config with
# text that is not ASCII, a script, a cloud-config archive, gzip, qvm's own
# multipart) keeps its meaning; bootcmd and runcmd carry each key and the
# user name as single arguments (a comment with quotes, backslashes and
# $(...); a user named "on", which plain YAML reads as true). Then the
# command itself runs as cloud-init would run it, as root in a mount
# namespace with a passwd of its own: the key goes in once, as the user
# (0700/0600, the user's), on its own line after a last line without a
# newline; a key the guest's admin removed is not put back at the next
# boot; a ~/.ssh that is a symlink to root's directory writes nothing there.
set -euo pipefail
bin=${QVM_BINARY_DIR:?QVM_BINARY_DIR is not set (run through ctest)}
tool=$bin/tests/seed/seed_key_tool
here=$(cd "$(dirname "$0")" && pwd)
ci() { [[ ${CI:-} == true || ${CI:-} == 1 ]]; }
skip() {
  if ci; then echo "FAIL (a skip is a failure under CI=true): $*" >&2; exit 1; fi
  echo "SKIP: $*" >&2
  exit 77
}
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || skip "needs root (a mount namespace)"
/usr/bin/python3 -c 'import requests, configobj, jsonpatch, yaml, jinja2, netifaces, oauthlib' 2>/dev/null ||
  skip "cloud-init's Python dependencies are missing (scripts/deps.sh test)"
command -v isoinfo >/dev/null || skip "needs isoinfo (genisoimage)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qvm-ci-keys.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# cloud-init, unpacked once per version into the cache
version=$(apt-cache policy cloud-init 2>/dev/null | awk '/Candidate:/ {print $2}')
[[ -n $version && $version != "(none)" ]] || skip "apt knows no cloud-init package (apt-get update)"
cache=${QVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qvm}/cloud-init/$version
if [[ ! -d $cache/root/usr/lib/python3/dist-packages/cloudinit ]]; then
  mkdir -p "$tmp/deb" "$(dirname "$cache")"
  (cd "$tmp/deb" && apt-get download "cloud-init=$version" >/dev/null 2>&1) ||
    skip "cannot download cloud-init $version from the Debian archive"
  rm -rf "$cache.new" && mkdir -p "$cache.new"
  dpkg-deb -x "$tmp"/deb/cloud-init_*.deb "$cache.new/root"
  rm -rf "$cache" && mv "$cache.new" "$cache"
fi
export PYTHONPATH=$cache/root/usr/lib/python3/dist-packages

# parse FILE: cloud-init's view of FILE's user-data as JSON
parse() { "$here/cloudinit_userdata.py" "$1"; }
jq_() { /usr/bin/python3 -c "import json,sys; o=json.load(open(sys.argv[1])); print($2)" "$1"; }
ud() { isoinfo -J -x /user-data -i "$1"; }

KA='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKEkeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA a@host'
KB='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKEkeyBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB x"q" \ $(touch /qvm-pwned) `id` '"'y'"
KC='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKEkeyCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC c'

# --- cloud-config with text that is not ASCII, two keys ----------------------
printf '#cloud-config\nusers:\n  - name: web\n    ssh_authorized_keys: [k0]\nx: "Jos\xc3\xa9 \xe2\x9c\x93"\n' >"$tmp/u1"
"$tool" write "$tmp/s1.iso" "$tmp/u1"
"$tool" add "$tmp/s1.iso" web "$KA"
"$tool" add "$tmp/s1.iso" web "$KB"
ud "$tmp/s1.iso" >"$tmp/ud1" && parse "$tmp/ud1" >"$tmp/p1"
[[ $(jq_ "$tmp/p1" 'o["config"]["x"]') == "José ✓" ]] || fail "non-ASCII text: $(jq_ "$tmp/p1" 'repr(o["config"].get("x"))')"
[[ $(jq_ "$tmp/p1" 'o["config"]["users"]') == "[{'name': 'web', 'ssh_authorized_keys': ['k0']}]" ]] ||
  fail "the user's users: $(jq_ "$tmp/p1" 'o["config"]["users"]')"
[[ $(jq_ "$tmp/p1" 'len(o["parts"])') == 2 ]] || fail "two parts, the pristine one not wrapped twice: $(jq_ "$tmp/p1" 'o["parts"]')"
for stage in bootcmd runcmd; do
  [[ $(jq_ "$tmp/p1" "len(o['config']['$stage'])") == 1 ]] || fail "one $stage command"
  [[ $(jq_ "$tmp/p1" "o['config']['$stage'][0][3:5]") == "['qvm-keys', 'web']" ]] || fail "$stage's user"
  got=$(jq_ "$tmp/p1" "'\\n'.join(o['config']['$stage'][0][5:])")
  [[ $got == "$KA"$'\n'"$KB" ]] || fail "$stage's keys, each one argument: $got"
done
[[ ! -e /qvm-pwned ]] || fail "a key's comment ran"

# --- other kinds of pristine user-data ---------------------------------------
kind() { # NAME FILE USER: prints the parsed JSON's file
  "$tool" write "$tmp/$1.iso" "$2"
  "$tool" add "$tmp/$1.iso" "$3" "$KA"
  ud "$tmp/$1.iso" >"$tmp/$1.ud" && parse "$tmp/$1.ud" >"$tmp/$1.json"
  [[ $(jq_ "$tmp/$1.json" "o['config']['runcmd'][-1][4:]") == "['$3', '$KA']" ]] ||
    fail "$1: runcmd's user and key: $(jq_ "$tmp/$1.json" "o['config'].get('runcmd')")"
}
printf '#!/bin/sh\necho hi\n' >"$tmp/u-script"
kind script "$tmp/u-script" web
[[ $(jq_ "$tmp/script.json" '[p[0] for p in o["parts"]]') == "['text/x-shellscript', 'text/cloud-config']" ]] ||
  fail "a script stays a script: $(jq_ "$tmp/script.json" 'o["parts"]')"
printf '#cloud-config-archive\n- type: text/cloud-config\n  content: |\n    a: 1\n' >"$tmp/u-archive"
kind archive "$tmp/u-archive" web
[[ $(jq_ "$tmp/archive.json" 'o["config"]["a"]') == 1 ]] || fail "a cloud-config archive keeps its parts"
printf '#cloud-config\nb: 2\n' | gzip -n >"$tmp/u-gzip"
kind gzip "$tmp/u-gzip" web
[[ $(jq_ "$tmp/gzip.json" 'o["config"]["b"]') == 2 ]] || fail "gzip user-data keeps its config"
kind on "$tmp/u1" on # "on" stays a name, not YAML's true
# qvm's own multipart (qvm seed build merging a user's cloud-config with its
# own), with text that is not ASCII in the user's part
printf '#cloud-config\ny: "\xc3\xa9t\xc3\xa9"\n' >"$tmp/u-qvm"
"$bin/qvm" seed build -o "$tmp/qvm.iso" --user-data "$tmp/u-qvm" --hostname h1 >/dev/null
ud "$tmp/qvm.iso" >"$tmp/qvm0.ud" && parse "$tmp/qvm0.ud" >"$tmp/qvm0.json"
[[ $(jq_ "$tmp/qvm0.json" '(o["config"]["y"], o["config"]["hostname"])') == "('été', 'h1')" ]] ||
  fail "qvm's multipart with text that is not ASCII: $(jq_ "$tmp/qvm0.json" 'repr(o["config"].get("y"))')"
"$tool" add "$tmp/qvm.iso" web "$KA"
ud "$tmp/qvm.iso" >"$tmp/qvm1.ud" && parse "$tmp/qvm1.ud" >"$tmp/qvm1.json"
[[ $(jq_ "$tmp/qvm1.json" '(o["config"]["y"], o["config"]["hostname"], len(o["config"]["runcmd"]))') == "('été', 'h1', 2)" ]] ||
  fail "qvm's multipart, nested: $(jq_ "$tmp/qvm1.json" 'o["config"]')"

# --- the command, run as cloud-init runs it -----------------------------------
# root in a mount namespace whose /etc/passwd has user web (uid 4242) with a
# home in $tmp, and whose /var/lib/cloud is $tmp's
ns=$tmp/ns
mkdir -p "$ns/home/web" "$ns/cloud/instance" "$ns/rootssh"
chmod 755 "$tmp" "$ns" "$ns/home"
chown 4242:4242 "$ns/home/web"
cp /etc/passwd "$ns/passwd" && echo "web:x:4242:4242::$ns/home/web:/bin/sh" >>"$ns/passwd"
cp /etc/group "$ns/group" && echo "web:x:4242:" >>"$ns/group"
printf 'root-key\n' >"$ns/rootssh/authorized_keys"
argv_of() { jq_ "$1" "'\\0'.join(o['config']['bootcmd'][-1])" | head -c -1; }
argv_of "$tmp/p1" >"$ns/argv"
boot() { # runs the bootcmd command once, as root in the namespace; prints its status
  unshare -m sh -c 'mount --bind "$1/passwd" /etc/passwd && mount --bind "$1/group" /etc/group &&
    mkdir -p /var/lib/cloud && mount --bind "$1/cloud" /var/lib/cloud &&
    xargs -0 -a "$1/argv" sh -c "\"\$@\"" x 2>/dev/null; echo $?' x "$ns"
}
keys=$ns/home/web/.ssh/authorized_keys
[[ $(boot) == 0 ]] || fail "the command failed"
[[ $(cat "$keys") == "$KA"$'\n'"$KB" ]] || fail "the keys, once each: $(cat "$keys")"
[[ $(stat -c '%u %a' "$ns/home/web/.ssh" "$keys" | tr '\n' ' ') == "4242 700 4242 600 " ]] ||
  fail "owner and modes: $(stat -c '%n %u %a' "$ns/home/web/.ssh" "$keys")"
[[ ! -e /qvm-pwned ]] || fail "a key's comment ran"
# the admin removes KA; the next boot does not put it back
grep -vxF -e "$KA" "$keys" >"$keys.new" && cat "$keys.new" >"$keys" && rm "$keys.new"
[[ $(boot) == 0 && $(cat "$keys") == "$KB" ]] || fail "a removed key came back: $(cat "$keys")"
# a key added later (KC) after a last line without a newline
"$tool" add "$tmp/s1.iso" web "$KC"
ud "$tmp/s1.iso" >"$tmp/ud2" && parse "$tmp/ud2" >"$tmp/p2" && argv_of "$tmp/p2" >"$ns/argv"
printf 'no-newline' >>"$keys"
[[ $(boot) == 0 ]] || fail "the command failed on a file without a last newline"
[[ $(tail -n 2 "$keys") == "$KB"$'\n'"no-newline" || $(tail -n 1 "$keys") == "$KC" ]] ||
  fail "KC on its own line: $(cat "$keys")"
[[ $(tail -n 1 "$keys") == "$KC" && $(grep -c . "$keys") == 3 ]] || fail "the file: $(cat "$keys")"
# ~/.ssh a symlink to a directory of root's: nothing is written there
rm -rf "$ns/home/web/.ssh" "$ns/cloud/instance/qvm-seed-keys"
ln -s "$ns/rootssh" "$ns/home/web/.ssh"
[[ $(boot) != 0 ]] || fail "the command did not fail on a ~/.ssh it may not write"
[[ $(cat "$ns/rootssh/authorized_keys") == root-key && $(stat -c %u "$ns/rootssh/authorized_keys") == 0 ]] ||
  fail "root's file was changed: $(stat -c '%u %a' "$ns/rootssh/authorized_keys"; cat "$ns/rootssh/authorized_keys")"
echo "cloudinit_keys: ok"
