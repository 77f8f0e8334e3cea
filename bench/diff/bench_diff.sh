#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_diff: `qvm diff --images` on a 3 GiB guest disk with about 200
# changed files, beside virt-diff (Debian's guestfs-tools) on the same two
# states when it runs here, and `qemu-img compare` (which only says whether
# the disks differ: a floor), in one run. Prints medians and ratios; never
# asserts a timing. See bench/diff/README.md.
#
# usage: bench/diff/bench_diff.sh [-n RUNS] [--virt-diff-runs N] [--qvm PATH]
#                                 [--timeout S]
#   -n RUNS             runs of qvm diff and qemu-img compare (default 5)
#   --virt-diff-runs N  runs of virt-diff (default 3; 0 leaves it out)
#   --qvm PATH          the qvm binary (default: $QVM, else $QVM_BINARY_DIR/qvm,
#                       else build/qvm)
#   --timeout S         bound for each virt-diff run (default 300)
# Needs root (the changed state is made through a loop mount), e2fsprogs,
# qemu-img and qemu-storage-daemon. virt-diff is used when it is installed
# (apt-get install guestfs-tools, plus a kernel in /boot for its appliance).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
runs=5
vd_runs=3
qvm=${QVM:-}
timeout_s=300

die() {
  echo "bench_diff: $*" >&2
  exit 1
}
log() { echo "bench_diff: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case $1 in
  -n) runs=${2:?-n needs a number}; shift 2 ;;
  --virt-diff-runs) vd_runs=${2:?--virt-diff-runs needs a number}; shift 2 ;;
  --qvm) qvm=${2:?--qvm needs a path}; shift 2 ;;
  --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
  -h | --help) sed -n '4,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]?$ ]] || die "-n '$runs' is invalid: use 1 to 99"
[[ $vd_runs =~ ^[0-9]$ ]] || die "--virt-diff-runs '$vd_runs' is invalid: use 0 to 9"
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout '$timeout_s' is invalid: use seconds"
[[ $(id -u) == 0 ]] || die "needs root (a loop mount makes the changed state)"
for tool in mkfs.ext4 qemu-img qemu-storage-daemon python3 timeout; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: run scripts/deps.sh"
done
[[ -n $qvm ]] || qvm=${QVM_BINARY_DIR:-$repo/build}/qvm
[[ -x $qvm ]] || die "no qvm binary at '$qvm': build it or pass --qvm"
qvm=$(realpath "$qvm")

tmp=$(mktemp -d /var/tmp/qvm-bench-diff.XXXXXX)
mnt=
cleanup() {
  [[ -n $mnt ]] && umount "$mnt" 2>/dev/null
  rm -rf -- "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run
mkdir -p "$QVM_RUNTIME_DIR"
t_start=$SECONDS

# State A: a Debian-like root file system, 3 GiB, filled from the host's
# /usr (about 1.7 GiB of real files: programs, libraries' data, docs,
# headers) and a small /etc that libguestfs's inspection recognizes.
log "building state A (3 GiB ext4 from the host's /usr/bin, /usr/share, /usr/include)"
A=$tmp/A
mkdir -p "$A/usr" "$A/etc" "$A/opt" "$A/var/lib" "$A/root" "$A/tmp"
cp -a /usr/bin /usr/share /usr/include "$A/usr/"
ln -s usr/bin "$A/bin"
cp /etc/os-release /etc/debian_version "$A/etc/" 2>/dev/null || {
  printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' >"$A/etc/os-release"
  echo 12.0 >"$A/etc/debian_version"
}
printf '/dev/sda / ext4 defaults 0 1\n' >"$A/etc/fstab"
echo bench >"$A/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$A/etc/passwd"
printf 'root:x:0:\n' >"$A/etc/group"
# Files that the changes below pick, by index: regular, non-empty, not
# hard-linked, sorted so that two runs pick alike.
(cd "$A" && find usr -type f -links 1 -size +0 | LC_ALL=C sort) >"$tmp/files"
nfiles=$(find "$A" | wc -l)
used=$(du -sb "$A" | cut -f1)
mkfs.ext4 -q -F -d "$A" "$tmp/a.raw" 3G >/dev/null 2>&1 || die "mkfs.ext4 -d (is 3G enough for the tree?)"
rm -rf -- "$A"

# State B: A plus 200 changes, made through a loop mount (as a guest would
# make them): 80 files added (text and binary, 100 B to 64 KiB), 40 grown,
# 20 changed in place (same size: only a hash finds them), 20 chmod, 20
# chown, 20 deleted.
log "building state B (200 changes through a loop mount)"
cp --sparse=always "$tmp/a.raw" "$tmp/b.raw"
mnt=$tmp/mnt
mkdir -p "$mnt"
mount -o loop "$tmp/b.raw" "$mnt" || die "cannot loop-mount the image"
python3 - "$mnt" "$tmp/files" <<'EOF'
import os, random, sys
root, files = sys.argv[1], open(sys.argv[2]).read().split("\n")[:-1]
rng = random.Random(15)
picks = rng.sample(files, 120)
os.makedirs(f"{root}/etc/bench", mode=0o755)
os.makedirs(f"{root}/opt/app/data", mode=0o755)
for i in range(40):
    open(f"{root}/etc/bench/conf-{i}.conf", "w").write(f"setting_{i} = {rng.random()}\n" * (1 + i))
for i in range(40):
    open(f"{root}/opt/app/data/blob-{i}", "wb").write(rng.randbytes(100 + rng.randrange(64 << 10)))
for p in picks[:40]:
    open(f"{root}/{p}", "ab").write(b"# changed by bench_diff\n")
for p in picks[40:60]:
    with open(f"{root}/{p}", "r+b") as f:
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 0xFF]))
for p in picks[60:80]:
    os.chmod(f"{root}/{p}", os.stat(f"{root}/{p}").st_mode & 0o7777 ^ 0o020)
for p in picks[80:100]:
    os.chown(f"{root}/{p}", 1000, 1000)
for p in picks[100:120]:
    os.unlink(f"{root}/{p}")
EOF
umount "$mnt" || die "umount"
mnt=
sync

# The two states as a VM holds them: the golden image (qcow2) and the VM's
# disk, a qcow2 overlay on it with only the 64 KiB clusters that differ
# (qemu-img convert -B would copy every allocated cluster of B), written
# with qemu-io from the differing ranges of the raw images; then checked.
qemu-img convert -O qcow2 "$tmp/a.raw" "$tmp/a.qcow2"
qemu-img create -q -f qcow2 -b "$tmp/a.qcow2" -F qcow2 "$tmp/b.qcow2"
mkdir "$tmp/ranges"
python3 - "$tmp/a.raw" "$tmp/b.raw" "$tmp/ranges" >"$tmp/qemu-io.cmds" <<'EOF'
import sys
a, b, out = open(sys.argv[1], "rb"), open(sys.argv[2], "rb"), sys.argv[3]
C = 64 << 10
off, run, n = 0, None, 0
def flush(start, data):
    global n
    name = f"{out}/{n}"
    open(name, "wb").write(data)
    print(f"write -q -s {name} {start} {len(data)}")
    n += 1
while True:
    x, y = a.read(C), b.read(C)
    if not y:
        break
    if x != y:
        run = (run[0], run[1] + y) if run else (off, y)
    elif run:
        flush(*run)
        run = None
    off += len(y)
if run:
    flush(*run)
EOF
mapfile -t cmds <"$tmp/qemu-io.cmds"
args=()
for c in "${cmds[@]}"; do args+=(-c "$c"); done
qemu-io -f qcow2 "${args[@]}" "$tmp/b.qcow2" >/dev/null || die "qemu-io could not write B's clusters"
qemu-img compare -q -f raw -F qcow2 "$tmp/b.raw" "$tmp/b.qcow2" || die "the overlay is not state B"
rm -rf "$tmp/a.raw" "$tmp/b.raw" "$tmp/ranges"
a_size=$(du -b "$tmp/a.qcow2" | cut -f1)
b_size=$(du -b "$tmp/b.qcow2" | cut -f1)

# The changes qvm finds must be the 200 made plus the 2 new directories
# /etc/bench, /opt/app and /opt/app/data: a wrong answer fast is no figure.
out=$("$qvm" diff --images "$tmp/a.qcow2" "$tmp/b.qcow2" --from-format qcow2 --to-format qcow2 \
  --json) || die "qvm diff failed"
found=$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["changes"]))' <<<"$out")
[[ $found == 203 ]] || die "qvm diff found $found changes, not 203"

virt_diff=no
vd_note=
if [[ $vd_runs -gt 0 ]]; then
  if ! command -v virt-diff >/dev/null; then
    vd_note="not installed (apt-get install guestfs-tools)"
  elif ! compgen -G '/boot/vmlinuz-*' >/dev/null; then
    vd_note="no kernel in /boot for libguestfs's appliance (apt-get install linux-image-amd64)"
  else
    virt_diff=yes
  fi
fi
# The appliance under TCG: /dev/kvm may exist without being usable here.
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
export LIBGUESTFS_CACHEDIR=$tmp/guestfs-cache TMPDIR=$tmp
mkdir -p "$LIBGUESTFS_CACHEDIR"

now() { date +%s.%N; }
declare -A times
timed() { # name command...: appends the seconds to times[name]
  local name=$1 t0 rc
  shift
  t0=$(now)
  rc=0
  "$@" >"$tmp/out.$name" 2>"$tmp/err.$name" || rc=$?
  times[$name]+="$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }') "
  return "$rc"
}
qvm_diff() { "$qvm" diff --images "$tmp/a.qcow2" "$tmp/b.qcow2" --from-format qcow2 --to-format qcow2 --json; }
vd_args=(--checksum=sha256)
vdiff() {
  timeout --kill-after=10 "$timeout_s" virt-diff --format=qcow2 -a "$tmp/a.qcow2" -A "$tmp/b.qcow2" \
    "${vd_args[@]}"
}
img_compare() { qemu-img compare -f qcow2 -F qcow2 "$tmp/a.qcow2" "$tmp/b.qcow2"; }

# A first read of each (not timed) puts both images in the page cache for all.
qvm_diff >/dev/null
img_compare >/dev/null 2>&1 || true
if [[ $virt_diff == yes ]]; then
  log "virt-diff: building libguestfs's appliance (virt-filesystems -a A, not timed)"
  if ! timeout --kill-after=10 "$timeout_s" virt-filesystems --format=qcow2 -a "$tmp/a.qcow2" \
    >/dev/null 2>"$tmp/vf.err"; then
    virt_diff=no
    vd_note="libguestfs's appliance did not start here: $(tail -n 3 "$tmp/vf.err" | tr '\n' ' ')"
  fi
fi

# One virt-diff run, timed; its first answer is checked. --checksum=sha256
# (what qvm does: contents by hash) unless it did not finish in time, then
# once without it (sizes and times only).
vd_run() {
  local rc=0
  timed vd vdiff || rc=$?
  if [[ $rc -eq 124 && ${#vd_args[@]} -gt 0 ]]; then
    vd_note="--checksum=sha256 did not finish within $timeout_s s; timed without it"
    log "virt-diff --checksum=sha256 did not finish within $timeout_s s: timing it without --checksum"
    vd_args=()
    times[vd]=
    rc=0
    timed vd vdiff || rc=$?
  fi
  if [[ $rc -eq 124 && $vd_ok -gt 0 ]]; then
    # a later run cut by the timeout: its time stays, as a lower bound
    vd_cut=$((vd_cut + 1))
  elif [[ $rc -eq 124 ]]; then
    virt_diff=no
    vd_note="did not finish within $timeout_s s, with or without --checksum"
  elif [[ $rc -ne 0 ]]; then
    virt_diff=no
    vd_note="failed here (exit $rc): $(tail -n 3 "$tmp/err.vd" | tr '\n' ' ')"
  elif ! grep -q '^+ .* /etc/bench/conf-0.conf$' "$tmp/out.vd"; then
    virt_diff=no
    vd_note="ran but did not list /etc/bench/conf-0.conf: $(head -c 300 "$tmp/err.vd")"
  else
    vd_ok=$((vd_ok + 1))
  fi
}
vd_ok=0 vd_cut=0

log "timing: $runs runs of qvm diff and qemu-img compare, up to $vd_runs of virt-diff, interleaved"
for i in $(seq "$runs"); do
  timed qvm qvm_diff || die "qvm diff failed in run $i: $(cat "$tmp/err.qvm")"
  rc=0
  timed compare img_compare || rc=$?
  [[ $rc -eq 1 ]] || die "qemu-img compare exited $rc (1 = the images differ): $(cat "$tmp/err.compare")"
  if [[ $virt_diff == yes && $i -le $vd_runs ]]; then vd_run; fi
done

stats() { # "t1 t2 ...": median [min .. max]
  python3 -c '
import statistics, sys
v = sorted(float(x) for x in sys.argv[1].split())
print("%.2f [%.2f .. %.2f]" % (statistics.median(v), v[0], v[-1]))' "$1"
}
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1].split()))' "$1"; }
ratio() { python3 -c 'import sys; print("%.2fx" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }

mib() { echo $(($1 >> 20)); }
echo "bench_diff: two states of a 3 GiB ext4 guest disk (no partition table)"
echo "  A: golden image, qcow2, $(mib "$a_size") MiB on disk; $nfiles files and directories, $(mib "$used") MiB of data"
echo "     (the host's /usr/bin, /usr/share, /usr/include; a small Debian /etc)"
echo "  B: qcow2 overlay on A, $(mib "$b_size") MiB in ${#cmds[@]} written ranges: 200 changes (40 files added in /etc/bench, 40 in"
echo "     /opt/app/data; 40 grown, 20 changed in place at the same size, 20 chmod, 20 chown, 20 deleted)"
echo "     qvm diff lists $found changes (the 200 and 3 new directories)"
echo "  host: $(nproc) cores, no KVM used, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; both images in the page cache"
echo "  qvm:  $qvm ($("$qvm" --version 2>/dev/null | head -n 1))"
if [[ $virt_diff == yes ]]; then
  echo "  virt-diff: $(virt-diff --version 2>/dev/null | head -n 1), libguestfs appliance under TCG (force_tcg)"
  [[ -n $vd_note ]] && echo "             $vd_note"
else
  echo "  virt-diff: $vd_note"
fi
echo "  whole run: $((SECONDS - t_start)) s"
echo
echo "Seconds, median [min .. max]:"
printf '  %-58s %s (%d runs)\n' "qvm diff --images A B --json" "$(stats "${times[qvm]}")" "$runs"
if [[ $virt_diff == yes ]]; then
  n=$(wc -w <<<"${times[vd]}")
  printf '  %-58s %s (%d runs%s)\n' "virt-diff -a A -A B ${vd_args[*]}" "$(stats "${times[vd]}")" "$n" \
    "$([[ $vd_cut -gt 0 ]] && echo ", $vd_cut cut at $timeout_s s")"
fi
printf '  %-58s %s (%d runs)\n' "qemu-img compare A B (differ or not; no file list)" "$(stats "${times[compare]}")" "$runs"
echo
mq=$(median "${times[qvm]}")
[[ $virt_diff == yes ]] && printf '  %-58s %s (goal < 1)\n' "qvm diff / virt-diff" "$(ratio "$mq" "$(median "${times[vd]}")")"
printf '  %-58s %s\n' "qvm diff / qemu-img compare" "$(ratio "$mq" "$(median "${times[compare]}")")"
echo
echo "qvm diff: both file systems read through qemu-storage-daemon (NBD, libnbd) and libext2fs;"
echo "  same-size regular files are hashed (sha256) on both sides, new content on B's."
echo "virt-diff: a libguestfs appliance (a small Linux VM, here under TCG) per disk; with"
echo "  --checksum=sha256 each regular file's sha256 is computed in them, else sizes and times compared."
echo "qemu-img compare: the two images' guest-visible bytes, cluster by cluster, until the first"
echo "  difference (exit 1): what a tool knows without reading the file system."
echo "Figures only: nothing is asserted."
