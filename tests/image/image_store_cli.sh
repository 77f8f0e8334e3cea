#!/usr/bin/env bash
# qvm image against tests/image/http_server.py on 127.0.0.1: pulls by URL
# with --sha256 and by alias from a user catalog with a SHA256SUMS file; a
# wrong checksum (both digests named, nothing stored); a checksum file
# without the file's entry; two concurrent pulls of one URL (one download);
# a qcow2 with a backing file refused, then accepted with --allow-backing;
# rm of an image a vm uses refused naming the vm; tag, inspect, ls, rm and
# prune with --json. Exit 77 = skip (a failure under CI=true).
set -euo pipefail

name=image_store_cli
log() { echo "$name: $*" >&2; }
skip() {
  if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
    log "FAIL (a skip is a failure under CI=true): $*"
    exit 1
  fi
  log "SKIP: $*"
  exit 77
}
fail() {
  log "FAIL: $*"
  exit 1
}

src=${QVM_SOURCE_DIR:?run through ctest}
bin=${QVM_BINARY_DIR:?run through ctest}
command -v qemu-img >/dev/null || skip "needs qemu-img"
command -v python3 >/dev/null || skip "needs python3"
[[ -x $bin/qvm ]] || fail "no qvm binary at $bin/qvm"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qvm-$name-XXXXXX")
export QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run QVM_CATALOG=$tmp/catalog.yaml
server=
cleanup() {
  local rc=$?
  set +e
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
  fi
  "$bin/qvm" rm --force user1 >/dev/null 2>&1
  chmod -R u+w "$tmp" 2>/dev/null || true
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
qvm() { "$bin/qvm" "$@"; }
# jget FILE EXPR: a python expression over the parsed JSON `j`.
jget() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
store=$QVM_STATE_DIR/images

srv=$tmp/srv
mkdir -p "$srv"
qemu-img create -q -f qcow2 "$srv/good.qcow2" 16M
qemu-img create -q -f qcow2 "$srv/alias.qcow2" 32M
qemu-img create -q -f qcow2 "$srv/unlisted.qcow2" 48M
qemu-img create -q -f qcow2 "$srv/loose.qcow2" 24M
qemu-img create -q -f qcow2 -b good.qcow2 -F qcow2 "$srv/backed.qcow2" 16M
# big enough, and served slowly, for two pulls to overlap
qemu-img create -q -f qcow2 -o preallocation=metadata "$srv/big.qcow2" 8M
# a raw disk: 1 MiB with an MBR signature
truncate -s 1M "$srv/raw.img"
printf '\x55\xaa' | dd of="$srv/raw.img" bs=1 seek=510 conv=notrunc status=none
gzip -k "$srv/raw.img"
sha() { sha256sum "$1" | cut -d' ' -f1; }
good_sha=$(sha "$srv/good.qcow2")
big_sha=$(sha "$srv/big.qcow2")
printf '%s *alias.qcow2\n%s  good.qcow2\n' "$(sha "$srv/alias.qcow2")" "$good_sha" >"$srv/SHA256SUMS"

python3 "$src/tests/image/http_server.py" "$srv" "$tmp/port" &
server=$!
for _ in $(seq 100); do [[ -s $tmp/port ]] && break; sleep 0.05; done
[[ -s $tmp/port ]] || fail "the http server did not start"
base=http://127.0.0.1:$(cat "$tmp/port")
cat >"$QVM_CATALOG" <<EOF
images:
  mini:
    url: $base/alias.qcow2
    checksums: $base/SHA256SUMS
    description: a test image
  nolist:
    url: $base/unlisted.qcow2
    checksums: $base/SHA256SUMS
EOF

log "wrong checksum: both digests named, nothing stored"
zero=$(printf '0%.0s' $(seq 64))
set +e
qvm image pull "$base/good.qcow2" --sha256 "$zero" -q 2>"$tmp/err"
rc=$?
set -e
[[ $rc != 0 ]] || fail "a wrong checksum was accepted"
grep -q "$zero" "$tmp/err" && grep -q "$good_sha" "$tmp/err" ||
  fail "the error does not name both digests: $(cat "$tmp/err")"
qvm image ls --json >"$tmp/ls.json"
[[ $(jget "$tmp/ls.json" 'len(j)') == 0 ]] || fail "an image was stored after a mismatch"
[[ -z $(ls -A "$store/sha256") ]] || fail "a file is in sha256/ after a mismatch"
[[ -z $(ls "$store/tmp" | grep -v '\.lock$' || true) ]] || fail "a partial file was kept"

log "good pull by url with --sha256"
qvm image pull "$base/good.qcow2" --sha256 "$good_sha" --name good --json >"$tmp/pull.json" 2>"$tmp/progress"
[[ $(jget "$tmp/pull.json" 'j["format"]') == qcow2 ]] || fail "format not recorded"
[[ $(jget "$tmp/pull.json" 'j["names"]') == "['good']" ]] || fail "name not set"
[[ $(jget "$tmp/pull.json" 'j["reused"]') == False ]] || fail "a first pull said reused"
[[ $(jget "$tmp/pull.json" 'j["verified"]') == sha256 ]] || fail "not recorded as verified"
good_path=$(jget "$tmp/pull.json" 'j["path"]')
[[ $(stat -c %a "$good_path") == 444 ]] || fail "store file is not 0444"
[[ $(stat -c %a "$store") == 700 ]] || fail "store dir is not 0700"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$tmp/progress" ||
  fail "--json progress is not JSON lines: $(head -3 "$tmp/progress")"
grep -q '"phase":"verify"' "$tmp/progress" || fail "no verify phase in the progress"

log "alias from the user catalog, verified by its SHA256SUMS"
qvm image catalog --json >"$tmp/cat.json"
[[ $(jget "$tmp/cat.json" '[e["origin"] for e in j if e["alias"]=="mini"][0]') == "$QVM_CATALOG" ]] ||
  fail "the user entry is not listed"
qvm image pull mini --json >"$tmp/alias.json" 2>/dev/null
[[ $(jget "$tmp/alias.json" 'j["names"]') == "['mini']" ]] || fail "an alias pull is not named by the alias"
[[ $(jget "$tmp/alias.json" 'j["verified"]') == "checksums:$base/SHA256SUMS" ]] ||
  fail "verified: $(jget "$tmp/alias.json" 'j["verified"]')"
qvm image catalog --json >"$tmp/cat.json"
[[ $(jget "$tmp/cat.json" '[e["stored"] for e in j if e["alias"]=="mini"][0]') == sha256:* ]] ||
  fail "the catalog does not show mini as stored"

log "a checksum file without the file's entry"
set +e
qvm image pull nolist -q 2>"$tmp/err"
rc=$?
set -e
[[ $rc == 3 ]] || fail "missing entry: exit $rc, want 3"
grep -q "no entry for 'unlisted.qcow2'" "$tmp/err" || fail "missing entry: $(cat "$tmp/err")"

log "a checksum file over 1 MiB is refused"
head -c 2000000 /dev/zero | tr '\0' 'a' >"$srv/HUGESUMS"
set +e
qvm image pull "$base/good.qcow2" --checksums "$base/HUGESUMS" -q 2>"$tmp/err"
rc=$?
set -e
[[ $rc == 1 ]] && grep -q 'HUGESUMS' "$tmp/err" || fail "huge checksum file: exit $rc $(cat "$tmp/err")"

log "a url without any checksum is refused"
set +e
qvm image pull "$base/loose.qcow2" -q 2>"$tmp/err"
rc=$?
set -e
[[ $rc == 1 ]] && grep -q 'no checksum' "$tmp/err" || fail "unverified pull: exit $rc $(cat "$tmp/err")"

log "two concurrent pulls of one url download it once"
curl -fsS "$base/_ctl/fault?path=/big.qcow2&mode=slow&rate=2000000&times=0" >/dev/null
qvm image pull "$base/big.qcow2" --sha256 "$big_sha" --json >"$tmp/c1.json" 2>/dev/null &
p1=$!
sleep 0.3
qvm image pull "$base/big.qcow2" --sha256 "$big_sha" --json >"$tmp/c2.json" 2>/dev/null &
p2=$!
wait "$p1" || fail "the first concurrent pull failed"
wait "$p2" || fail "the second concurrent pull failed"
curl -fsS "$base/_ctl/clear" >/dev/null
# The server logs a request once its last (paced) byte is out, which can be
# after the client has it all: wait for the log, then a little longer.
downloads() {
  curl -fsS "$base/_ctl/log" >"$tmp/log.json"
  jget "$tmp/log.json" 'len([e for e in j if e["path"]=="/big.qcow2" and e["sent"]>0])'
}
for _ in $(seq 100); do [[ $(downloads) != 0 ]] && break; sleep 0.1; done
sleep 1
n=$(downloads)
[[ $n == 1 ]] || fail "big.qcow2 was downloaded $n times"
[[ $(jget "$tmp/c1.json" 'j["digest"]') == "$(jget "$tmp/c2.json" 'j["digest"]')" ]] ||
  fail "the two pulls gave different images"
reused=$(jget "$tmp/c1.json" 'j["reused"]')$(jget "$tmp/c2.json" 'j["reused"]')
[[ $reused == FalseTrue || $reused == TrueFalse ]] || fail "reused: $reused"

if [[ $(id -u) == 0 ]] && command -v unshare >/dev/null; then
  log "a full disk: a clear error, nothing in the store"
  mkdir "$tmp/small"
  set +e
  unshare -m bash -c '
    mount -t tmpfs -o size=2m,mode=0700 tmpfs "$1" || exit 99
    QVM_STATE_DIR=$1/state "$2" image pull "$3" --sha256 "$4" -q 2>"$5"
    rc=$?
    ls -A "$1/state/images/sha256" >"$5.sha"
    exit $rc' _ "$tmp/small" "$bin/qvm" "$base/big.qcow2" "$big_sha" "$tmp/full.err"
  rc=$?
  set -e
  [[ $rc != 99 ]] || fail "cannot mount a tmpfs"
  [[ $rc == 1 ]] && grep -q 'No space left on device' "$tmp/full.err" ||
    fail "full disk: exit $rc $(cat "$tmp/full.err")"
  [[ ! -s $tmp/full.err.sha ]] || fail "full disk: an image is in sha256/"
else
  log "(not root: no full-disk case)"
fi

log "a qcow2 with a backing file: refused, then accepted with --allow-backing"
backed_sha=$(sha "$srv/backed.qcow2")
set +e
qvm image pull "$base/backed.qcow2" --sha256 "$backed_sha" -q 2>"$tmp/err"
rc=$?
set -e
[[ $rc == 1 ]] && grep -q "backing file 'good.qcow2'" "$tmp/err" || fail "backing: exit $rc $(cat "$tmp/err")"
[[ $(qvm image ls --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') == 3 ]] ||
  fail "the refused image was stored"
qvm image pull "$base/backed.qcow2" --sha256 "$backed_sha" --allow-backing --name backed -q

log "a gzip-compressed raw disk: decompressed while downloading, format raw"
gz_sha=$(sha "$srv/raw.img.gz")
qvm image pull "$base/raw.img.gz" --sha256 "$gz_sha" --name rawdisk --json >"$tmp/raw.json" 2>/dev/null
[[ $(jget "$tmp/raw.json" 'j["format"], j["compression"], j["source_sha256"]') == "raw gzip $gz_sha" ]] ||
  fail "raw.img.gz: $(jget "$tmp/raw.json" 'j["format"], j["compression"], j["source_sha256"]')"
[[ $(jget "$tmp/raw.json" 'j["digest"]') == "sha256:$(sha "$srv/raw.img")" ]] ||
  fail "the store digest is not the decompressed content's"

log "tag, inspect, rm of a name, prune"
qvm image tag good good2
qvm image inspect good2 --json >"$tmp/insp.json"
[[ $(jget "$tmp/insp.json" 'sorted(j["names"])') == "['good', 'good2']" ]] || fail "tag: names"
short=$(jget "$tmp/insp.json" 'j["digest"][:19]')
qvm image inspect "$short" --json >/dev/null || fail "inspect by a 12-digit prefix"
qvm image rm good2
[[ -f $good_path ]] || fail "rm of one of two names removed the image"
set +e
qvm image inspect good2 >/dev/null 2>&1
rc=$?
set -e
[[ $rc == 3 ]] || fail "inspect of a removed name: exit $rc"
big_ref=$(jget "$tmp/c1.json" 'j["digest"]')
qvm image prune --json >"$tmp/prune.json"
[[ $(jget "$tmp/prune.json" 'j["removed"]') == "['$big_ref']" ]] ||
  fail "prune removed $(jget "$tmp/prune.json" 'j["removed"]'), want the unnamed big image"
[[ $(jget "$tmp/prune.json" 'j["bytes"] > 0') == True ]] || fail "prune freed nothing"

log "rm of an image a vm uses is refused, naming the vm"
qvm create user1 --image "$good_path" --image-format qcow2 --no-cloud-init >/dev/null 2>"$tmp/err" ||
  fail "create: $(cat "$tmp/err")"
qvm image ls --json >"$tmp/ls.json"
[[ $(jget "$tmp/ls.json" '[i["used_by"] for i in j if "good" in i["names"]][0]') == "['user1']" ]] ||
  fail "ls does not show the vm using the image"
set +e
qvm image rm good 2>"$tmp/err"
rc=$?
set -e
[[ $rc == 6 ]] || fail "rm of a used image: exit $rc, want 6 (conflict)"
grep -q "user1" "$tmp/err" && grep -q "hint: remove the vms first: qvm rm user1" "$tmp/err" ||
  fail "rm of a used image: $(cat "$tmp/err")"
qvm rm user1 >/dev/null
qvm image rm good
[[ ! -e $good_path ]] || fail "rm left the image file"
log "ok"
