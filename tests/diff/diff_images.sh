#!/usr/bin/env bash
# qvm diff --images on ext4 images built on the host with mkfs.ext4 -d: the
# exact added/modified/deleted lists (content, mode, owner, symlink target,
# type), raw, MBR- and GPT-partitioned, and a qcow2 overlay on the base; the
# ignore lists; hostile file systems (a corrupt superblock, a directory loop,
# a 10^5-entry directory, names and targets with newlines, escapes and bytes
# that are not UTF-8) give clear errors or neutralized output; no
# qemu-storage-daemon or socket dir is left, also when qvm is killed.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
command -v qemu-storage-daemon >/dev/null || skip "needs qemu-storage-daemon (scripts/deps.sh)"
command -v mkfs.ext4 >/dev/null && command -v debugfs >/dev/null || skip "needs e2fsprogs"

run_rc() {
  set +e
  out=$("$@" 2>"$tmp/stderr")
  rc=$?
  err=$(cat "$tmp/stderr")
  set -e
}
mkfs() { mkfs.ext4 -q -F ${4:+-N "$4"} -d "$1" "$2" "${3:-16M}" >/dev/null 2>&1 || fail "mkfs.ext4 -d $1"; }
# The daemons this test started carry its runtime dir in their environment.
our_daemons() {
  local p
  for p in $(pgrep -x qemu-storage-da || true); do
    grep -qzF "QVM_RUNTIME_DIR=$QVM_RUNTIME_DIR" "/proc/$p/environ" 2>/dev/null && echo "$p"
  done
  return 0
}
no_leftovers() {
  expect_eq "$(our_daemons)" "" "$1: qemu-storage-daemon left running"
  expect_eq "$(ls -A "$QVM_RUNTIME_DIR" 2>/dev/null | grep '^diff-' || true)" "" "$1: socket dir left"
}
mkdir -p "$QVM_RUNTIME_DIR"

# State A and state B of the same tree.
A=$tmp/A B=$tmp/B
mkdir -p "$A"/{etc,usr/bin,var/log,srv,d} "$B"/{etc,usr/bin,var/log,srv/sub,d}
for s in "$A" "$B"; do
  echo same > "$s/etc/same"
  echo hello > "$s/etc/chmod"
  echo owner > "$s/etc/chown"
  echo log > "$s/var/log/syslog"
  echo id1 > "$s/etc/machine-id"
done
echo 12345 > "$A/usr/bin/tool"
echo 54321 > "$B/usr/bin/tool" # same size, other content: found by sha256
echo short > "$A/etc/grow"
echo much longer > "$B/etc/grow"
echo gone > "$A/etc/gone"
echo new > "$B/srv/sub/new"
echo new-id > "$B/etc/machine-id"
echo more >> "$B/var/log/syslog"
chmod 600 "$B/etc/chmod"
chown 1000:1001 "$B/etc/chown"
ln -s /etc/same "$A/link"
ln -s /etc/grow "$B/link"
echo file > "$A/d/becomes-link"
ln -s /x "$B/d/becomes-link"
ln "$B/srv/sub/new" "$B/srv/hardlink"
mkfs "$A" "$tmp/a.raw"
mkfs "$B" "$tmp/b.raw"

want="M /d/becomes-link (type, mode)
D /etc/chmod
A /etc/chmod
M /etc/chown (owner)
D /etc/gone
M /etc/grow (content)
M /link (target)
A /srv/hardlink
A /srv/sub
A /srv/sub/new
M /usr/bin/tool (content)"
want=$(sort <<<"$want" | grep -v '/etc/chmod')
want=$(printf '%s\nM /etc/chmod (mode)\n' "$want" | sort)
table() { grep -v '^    ' <<<"$1" | sort; }

run_rc qvm diff --images "$tmp/a.raw" "$tmp/b.raw"
expect_eq "$rc" 0 "raw A vs B: $err"
expect_eq "$(table "$out")" "$want" "raw A vs B"
expect_match "$err" "^1?[0-9] added|added" "summary line"

# JSON: owner and mode values, the sha256 of new content, the symlink target.
run_rc qvm diff --images "$tmp/a.raw" "$tmp/b.raw" --json
expect_eq "$rc" 0 "json: $err"
jq_ok() { python3 -c "import json,sys; d=json.loads(sys.stdin.read()); c={x['path']:x for x in d['changes']}; sys.exit(0 if ($1) else 1)" <<<"$out" || fail "json: $1"; }
jq_ok "c['/etc/chown']['to']['uid']==1000 and c['/etc/chown']['to']['gid']==1001 and c['/etc/chown']['changed']==['owner']"
jq_ok "c['/etc/chmod']['from']['mode']=='0644' and c['/etc/chmod']['to']['mode']=='0600'"
jq_ok "c['/link']['from']['target']=='/etc/same' and c['/link']['to']['target']=='/etc/grow'"
new_sha=$(sha256sum "$B/srv/sub/new" | cut -d' ' -f1)
jq_ok "c['/srv/sub/new']['to']['sha256']=='$new_sha' and c['/srv/sub/new']['kind']=='added'"
jq_ok "c['/usr/bin/tool']['from']['sha256']!=c['/usr/bin/tool']['to']['sha256']"
jq_ok "all('path_b64' not in x for x in d['changes'])"

# The default ignore list hid /var/log and /etc/machine-id; without it they show.
run_rc qvm diff --images "$tmp/a.raw" "$tmp/b.raw" --no-default-ignore
expect_match "$out" "^M /var/log/syslog \(content\)" "no default ignore: syslog"
expect_match "$out" "^M /etc/machine-id \(content\)" "no default ignore: machine-id"
# --ignore: a directory glob leaves out its subtree; '*' crosses '/'.
run_rc qvm diff --images "$tmp/a.raw" "$tmp/b.raw" --ignore /srv/sub --ignore '/usr/*'
expect_eq "$(table "$out" | grep -c '/srv/sub' || true)" 0 "--ignore /srv/sub"
expect_eq "$(table "$out" | grep -c '/usr/bin/tool' || true)" 0 "--ignore /usr/*"
expect_match "$out" "^A /srv/hardlink" "--ignore keeps the rest"
run_rc qvm diff --images "$tmp/a.raw" "$tmp/b.raw" --ignore 'relative'
expect_eq "$rc" 2 "a relative --ignore is a usage error"
# A state against itself: nothing.
run_rc qvm diff --images "$tmp/b.raw" "$tmp/b.raw"
expect_eq "$rc/$out" "0/" "B vs B"

# qcow2: the base converted, B as an overlay on it holding what differs.
qemu-img convert -O qcow2 "$tmp/a.raw" "$tmp/a.qcow2"
qemu-img convert -O qcow2 -B "$tmp/a.qcow2" -F qcow2 "$tmp/b.raw" "$tmp/b.qcow2"
run_rc qvm diff --images "$tmp/a.qcow2" "$tmp/b.qcow2" --from-format qcow2 --to-format qcow2
expect_eq "$rc" 0 "qcow2 overlay: $err"
expect_eq "$(table "$out")" "$want" "qcow2 overlay"

# Partitioned disks: MBR (root in partition 2 of 2) and GPT (partition 3).
truncate -s 40M "$tmp/mbr.raw" "$tmp/gpt.raw"
printf 'start=2048,size=4096,type=83\nstart=8192,size=40000,type=83\n' | sfdisk -q "$tmp/mbr.raw" >/dev/null
dd if="$tmp/b.raw" of="$tmp/mbr.raw" bs=512 seek=8192 conv=notrunc status=none
printf 'label: gpt\nstart=2048,size=2048\nstart=4096,size=2048\nstart=8192,size=40000\n' | sfdisk -q "$tmp/gpt.raw" >/dev/null
dd if="$tmp/b.raw" of="$tmp/gpt.raw" bs=512 seek=8192 conv=notrunc status=none
for t in mbr gpt; do
  run_rc qvm diff --images "$tmp/a.raw" "$tmp/$t.raw"
  expect_eq "$rc" 0 "$t: $err"
  expect_eq "$(table "$out")" "$want" "$t-partitioned B"
done
no_leftovers "after the good runs"

# Hostile: no file system at all; a corrupt superblock (magic kept).
truncate -s 16M "$tmp/blank.raw"
run_rc qvm diff --images "$tmp/a.raw" "$tmp/blank.raw"
expect_eq "$rc" 1 "blank disk"
expect_match "$err" "no ext2/3/4 file system found" "blank disk"
cp "$tmp/b.raw" "$tmp/corrupt.raw"
# s_inodes_count, s_blocks_count and s_log_block_size garbage
printf '\xff\xff\xff\xff\xff\xff\xff\xff' | dd of="$tmp/corrupt.raw" bs=1 seek=1024 conv=notrunc status=none
printf '\x05\x00\x00\x00' | dd of="$tmp/corrupt.raw" bs=1 seek=1048 conv=notrunc status=none
run_rc qvm diff --images "$tmp/a.raw" "$tmp/corrupt.raw"
expect_eq "$rc" 1 "corrupt superblock"
expect_match "$err" "cannot open the ext2/3/4 file system" "corrupt superblock: $err"
# A directory loop: /d/sub/loop is /d again.
mkdir -p "$tmp/L/d/sub"
mkfs "$tmp/L" "$tmp/loop.raw"
debugfs -w -R "link /d /d/sub/loop" "$tmp/loop.raw" >/dev/null 2>&1 || fail "debugfs link"
run_rc timeout 120 "$qvm_bin" diff --images "$tmp/a.raw" "$tmp/loop.raw"
expect_eq "$rc" 1 "directory loop"
expect_match "$err" "directory loop: '/d/sub/loop'" "directory loop: $err"

# Names: a newline, ESC sequences, a byte that is not UTF-8, a backslash.
N=$tmp/N
mkdir -p "$N/names"
nl_name=$'a\nb' esc_name=$'x\e[31mred\e]0;title\a' bad_name=$'bad\xff\xfe' bs_name='back\x41slash'
for n in "$nl_name" "$esc_name" "$bad_name" "$bs_name"; do echo x > "$N/names/$n"; done
ln -s $'/tmp/\e[2Jcleared\n' "$N/names/evil-target"
mkfs "$N" "$tmp/names.raw"
mkdir -p "$tmp/E"
mkfs "$tmp/E" "$tmp/empty.raw"
run_rc qvm diff --images "$tmp/empty.raw" "$tmp/names.raw" -v
expect_eq "$rc" 0 "names: $err"
[[ $out != *$'\e'* ]] || fail "names: an ESC byte reached the table"
[[ $out != *$'\xff'* ]] || fail "names: a non-UTF-8 byte reached the table"
expect_eq "$(grep -c "^A " <<<"$out")" 6 "names: /names, 4 files, a symlink: one line each"
expect_match "$out" '^A /names/a\\nb$' "newline shown as \\n"
expect_match "$out" '^A /names/x\\x1b\[31mred\\x1b\]0;title\\x07$' "escapes shown as \\xNN"
expect_match "$out" '^A /names/bad\\xff\\xfe$' "invalid UTF-8 shown as \\xNN"
expect_match "$out" '-> /tmp/\\x1b\[2Jcleared\\n' "symlink target neutralized"
run_rc qvm diff --images "$tmp/empty.raw" "$tmp/names.raw" --json
expect_eq "$rc" 0 "names json: $err"
python3 - "$out" <<'PY' || fail "names: path_b64 does not give the raw bytes back"
import base64, json, sys
d = json.loads(sys.argv[1])
raw = {base64.b64decode(c["path_b64"]) if "path_b64" in c else c["path"].encode() for c in d["changes"]}
want = {b"/names/a\nb", b"/names/x\x1b[31mred\x1b]0;title\x07", b"/names/bad\xff\xfe", b"/names/back\\x41slash"}
assert want <= raw, raw
t = [c for c in d["changes"] if c["path"] == "/names/evil-target"][0]["to"]
assert base64.b64decode(t["target_b64"]) == b"/tmp/\x1b[2Jcleared\n", t
assert all("\x1b" not in c["path"] for c in d["changes"])
# the backslash name is printable: no b64, and the text is the name
assert [c for c in d["changes"] if c["path"] == "/names/back\\x41slash" and "path_b64" not in c]
PY

# 10^5 entries in one directory.
# mkfs.ext4 -d links entries one by one (quadratic: many minutes for 10^5),
# so the directory is filled through a loop mount; the diff itself mounts
# nothing.
mkdir -p "$tmp/M" "$tmp/mnt"
mkfs "$tmp/M" "$tmp/big.raw" 200M 120000
mount -o loop "$tmp/big.raw" "$tmp/mnt" || skip "cannot loop-mount an ext4 image"
mkdir "$tmp/mnt/big"
(cd "$tmp/mnt/big" && seq 1 100000 | xargs touch)
umount "$tmp/mnt" || fail "umount"
sync
debugfs -R "stat /big" "$tmp/big.raw" 2>/dev/null | grep -q '^Inode:' || fail "the loop mount left no /big in big.raw"
start=$(date +%s)
run_rc timeout 300 "$qvm_bin" diff --images "$tmp/empty.raw" "$tmp/big.raw"
expect_eq "$rc" 0 "10^5 entries: $err"
expect_eq "$(grep -c '^A /big/' <<<"$out")" 100000 "10^5 entries listed (stderr: $err)"
log "10^5-entry directory diffed in $(($(date +%s) - start)) s"
no_leftovers "after the hostile runs"

# Killed mid-diff: its daemons die with it (PR_SET_PDEATHSIG).
"$qvm_bin" diff --images "$tmp/empty.raw" "$tmp/big.raw" >/dev/null 2>&1 &
qpid=$!
for _ in $(seq 50); do [[ -n $(our_daemons) ]] && break; sleep 0.1; done
[[ -n $(our_daemons) ]] || fail "no daemon seen while qvm diff ran"
kill -9 "$qpid"
wait "$qpid" 2>/dev/null || true
for _ in $(seq 50); do [[ -z $(our_daemons) ]] && break; sleep 0.1; done
expect_eq "$(our_daemons)" "" "daemons after qvm was killed"
log "PASS"
