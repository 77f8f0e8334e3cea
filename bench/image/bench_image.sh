#!/usr/bin/env bash
# bench/image: `qvm image pull` (download + verified sha256, hashed while the
# bytes arrive, then imported into the store) against its peers on the same
# local server and file, in one run:
#   - `curl -o FILE` followed by `sha256sum FILE` (what a script does to get a
#     verified image), and
#   - `curl -o FILE` alone (the download's ceiling).
# Prints medians and ratios; asserts nothing. The server is busybox httpd on
# 127.0.0.1 (one server for all three, so the comparison is the clients').
#
#   QVM_BINARY_DIR=build bench/image/bench_image.sh
#   QVM_BENCH_IMAGE_MIB   file size (default 512)
#   QVM_BENCH_RUNS        runs of each (default 5)
set -euo pipefail
bin=${QVM_BINARY_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
qvm=$bin/qvm
mib=${QVM_BENCH_IMAGE_MIB:-512}
runs=${QVM_BENCH_RUNS:-5}
for t in busybox curl sha256sum python3; do
  command -v "$t" >/dev/null || { echo "bench_image: needs $t" >&2; exit 1; }
done
[[ -x $qvm ]] || { echo "bench_image: no qvm at $qvm (build first)" >&2; exit 1; }

tmp=$(mktemp -d /var/tmp/qvm-bench-image.XXXXXX)
srv=
cleanup() { [[ -n $srv ]] && kill "$srv" 2>/dev/null; wait 2>/dev/null; rm -rf -- "$tmp"; }
trap cleanup EXIT
mkdir "$tmp/www" "$tmp/out"
# Incompressible bytes with an MBR signature, so that it is a plausible raw disk.
head -c "$((mib << 20))" /dev/urandom >"$tmp/www/disk.img"
printf '\x55\xaa' | dd of="$tmp/www/disk.img" bs=1 seek=510 conv=notrunc status=none
sum=$(sha256sum "$tmp/www/disk.img" | cut -d' ' -f1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
busybox httpd -f -p "127.0.0.1:$port" -h "$tmp/www" &
srv=$!
url=http://127.0.0.1:$port/disk.img
for _ in $(seq 50); do curl -sfI "$url" >/dev/null && break; sleep 0.1; done

now() { date +%s.%N; }
declare -A times
run() { # name command...
  local name=$1 t0 t1
  shift
  sync
  t0=$(now)
  "$@" >/dev/null
  t1=$(now)
  times[$name]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }') "
}
pull() {
  rm -rf "$tmp/state"
  QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run "$qvm" image pull "$url" --sha256 "$sum" \
    --json 2>/dev/null
}
curl_sum() {
  rm -f "$tmp/out/disk.img"
  curl -sf -o "$tmp/out/disk.img" "$url"
  sha256sum "$tmp/out/disk.img" | grep -q "^$sum "
}
curl_only() {
  rm -f "$tmp/out/disk.img"
  curl -sf -o "$tmp/out/disk.img" "$url"
}
# Warm the server's page cache once, then interleave the three.
curl_only
for _ in $(seq "$runs"); do
  run qvm pull
  run curl_sha256sum curl_sum
  run curl curl_only
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
q=$(median <<<"${times[qvm]}")
cs=$(median <<<"${times[curl_sha256sum]}")
c=$(median <<<"${times[curl]}")
mbs() { awk -v m="$mib" -v t="$1" 'BEGIN { printf "%d", m * 1048576 / t / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "image pull of a ${mib} MiB file from busybox httpd on 127.0.0.1, median of $runs runs:"
printf '  %-34s %7.3f s  %5s MB/s\n' "qvm image pull --sha256 (verified)" "$q" "$(mbs "$q")"
printf '  %-34s %7.3f s  %5s MB/s\n' "curl -o + sha256sum" "$cs" "$(mbs "$cs")"
printf '  %-34s %7.3f s  %5s MB/s\n' "curl -o (no verification)" "$c" "$(mbs "$c")"
echo "  qvm / (curl + sha256sum) wall time: $(ratio "$q" "$cs")x (goal <= 0.6x)"
echo "  qvm throughput / curl throughput:   $(ratio "$c" "$q")x (goal >= 0.95x)"
