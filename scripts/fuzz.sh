#!/usr/bin/env bash
# Reproduces the fuzzing campaign recorded in tests/fuzz/README.md; not run
# in CI. Builds the clang libFuzzer build (build-fuzz/, ASan+UBSan) and runs
# each fuzz target for N seconds, one after the other, at nice 19. Each run
# starts from a fresh scratch corpus seeded with the committed one, so the
# committed corpus is never written; crashes land in the run's artifacts/.
#
#   scripts/fuzz.sh                         # every target, 600 s each
#   QVM_FUZZ_SECONDS=60 scripts/fuzz.sh fuzz_dhcp fuzz_vm_json
#   scripts/fuzz.sh --merge [TARGET...]     # keep what the last run found
#
#   QVM_FUZZ_SECONDS  seconds per target (default 600)
#   QVM_FUZZ_BUILD    build dir (default build-fuzz)
#   QVM_FUZZ_WORK     scratch dir for corpora, logs, crashes
#                     (default $QVM_FUZZ_BUILD/campaign)
#
# Prints one Markdown row per target, in the format of the table in
# tests/fuzz/README.md. Exits 1 if any target found a crash, leak or timeout.
#
# --merge: libFuzzer's -merge=1 of the last run's corpus over a copy of the
# committed one; of the inputs that add coverage, at most QVM_FUZZ_MERGE_MAX
# (default 50), picked greedily by new features, are copied into the
# committed corpus as fuzz-<sha1 prefix>, where the replay tests
# (ctest -L fuzz) pick them up.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

seconds=${QVM_FUZZ_SECONDS:-600}
build=${QVM_FUZZ_BUILD:-build-fuzz}
work=${QVM_FUZZ_WORK:-$build/campaign}

# target  build subdir  committed corpus  dictionary (- none)  where --merge adds files
# (every qvm_fuzz_target; tests/net/corpus/dhcp must hold only packets the
# server drops, so DHCP finds go next to it)
all=(
  "fuzz_dhcp tests/net tests/net/corpus tests/fuzz/dict/dhcp.dict tests/net/corpus/dhcp-fuzz"
  "fuzz_qmp_reader tests/qmp tests/qmp/corpus/qmp_reader tests/fuzz/dict/qmp.dict -"
  "fuzz_qmp_client tests/qmp tests/qmp/corpus/qmp_client tests/fuzz/dict/qmp.dict -"
  "fuzz_seed_user_config tests/seed tests/seed/corpus/user_config tests/fuzz/dict/cloud_config.dict -"
  "fuzz_vm_json tests/vm tests/vm/corpus/vm_json tests/fuzz/dict/vm_json.dict -"
  "fuzz_vm_config tests/vm tests/vm/corpus/qvm_yaml tests/fuzz/dict/yaml.dict -"
  "fuzz_img_qcow2 tests/hostile tests/hostile/img_corpus tests/fuzz/dict/qcow2.dict -"
  "fuzz_image_checksums tests/image tests/image/corpus/checksums - -"
  "fuzz_image_catalog tests/image tests/image/corpus/catalog tests/fuzz/dict/yaml.dict -"
  "fuzz_cert_parse tests/ssh tests/ssh/corpus/cert - -"
  "fuzz_vm_audit tests/vm tests/vm/corpus/audit_log tests/fuzz/dict/vm_json.dict -"
  "fuzz_diff_part tests/diff tests/diff/corpus tests/fuzz/dict/part.dict -"
  "fuzz_diff_dpkg tests/diff tests/diff/corpus-dpkg tests/fuzz/dict/dpkg.dict -"
  "fuzz_diff_accounts tests/diff tests/diff/corpus-accounts tests/fuzz/dict/accounts.dict -"
)
merge=0
if [[ ${1:-} == --merge ]]; then
  merge=1
  shift
fi

registered=$(grep -rhoE 'qvm_fuzz_target\(NAME [a-z0-9_]+' --include=CMakeLists.txt --include='*.cmake' tests |
  awk '{print $2}' | sort)
listed=$(printf '%s\n' "${all[@]}" | awk '{print $1}' | sort)
if [[ $registered != "$listed" ]]; then
  echo "fuzz: targets registered with qvm_fuzz_target differ from this script's list:" >&2
  diff <(echo "$listed") <(echo "$registered") >&2
  exit 2
fi

want=("$@")
selected=()
for entry in "${all[@]}"; do
  name=${entry%% *}
  if [[ ${#want[@]} -eq 0 ]] || printf '%s\n' "${want[@]}" | grep -qx "$name"; then
    selected+=("$entry")
  fi
done
if [[ ${#selected[@]} -eq 0 ]]; then
  echo "fuzz: no such target: ${want[*]}" >&2
  exit 2
fi

command -v clang >/dev/null || { echo "fuzz: clang is needed (scripts/deps.sh)" >&2; exit 2; }
names=()
for entry in "${selected[@]}"; do names+=("${entry%% *}"); done
if ! CC=clang cmake -S . -B "$build" -DQVM_FUZZ=ON -DQVM_SANITIZE=ON \
       -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null ||
   ! nice -n 19 cmake --build "$build" -j"$(nproc)" --target "${names[@]}"; then
  echo "fuzz: building $build failed" >&2
  exit 2
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

merge_run() {
  local name=$1 subdir=$2 committed=$3 dest=$4 dir=$work/$1 f i=0
  [[ $dest != - ]] || dest=$committed
  [[ -d $dir/corpus ]] || { echo "fuzz: no run of $name to merge ($dir/corpus)" >&2; return 1; }
  rm -rf "$dir/merge" "$dir/merge.ctl"
  mkdir -p "$dir/merge" "$dest"
  while IFS= read -r -d '' f; do
    cp "$f" "$dir/merge/committed-$((i++))"
  done < <(find "$committed" -type f ! -name '*.py' -print0)
  nice -n 19 "$build/$subdir/$name" -merge=1 -merge_control_file="$dir/merge.ctl" \
    "$dir/merge" "$dir/corpus" >"$dir/merge.log" 2>&1 ||
    { echo "fuzz: merging $name failed, see $dir/merge.log" >&2; return 1; }
  # Greedy set cover over the control file's features: the committed
  # corpus's features count as covered; then, up to the cap, the input that
  # adds the most features not yet covered (the smaller on a tie).
  python3 - "$dir/merge.ctl" "${QVM_FUZZ_MERGE_MAX:-50}" >"$dir/merge.picked" <<'PY' || return 1
import os, sys
lines = open(sys.argv[1]).read().split("\n")
n, first = int(lines[0]), int(lines[1])
files = lines[2:2 + n]
ft = {}
for line in lines[2 + n:]:
    p = line.split()
    if p and p[0] == "FT":
        ft[int(p[1])] = set(p[2:])
covered = set().union(*[ft.get(i, set()) for i in range(first)])
cands = {i: ft[i] - covered for i in range(first, n) if i in ft and ft[i] - covered}
useful, total = len(cands), len(set().union(*cands.values())) if cands else 0
picked, gained = [], 0
while cands and len(picked) < int(sys.argv[2]):
    best = max(cands, key=lambda i: (len(cands[i]), -os.path.getsize(files[i])))
    gain = cands.pop(best)
    if not gain:
        break
    picked.append(files[best])
    gained += len(gain)
    for j in cands:
        cands[j] -= gain
print(f"# {useful} inputs add {total} features; {len(picked)} picked add {gained}")
print("\n".join(picked))
PY
  while read -r f; do
    [[ -n $f && $f != "#"* ]] && cp "$f" "$dest/fuzz-$(sha1sum <"$f" | cut -c1-12)"
  done <"$dir/merge.picked"
  echo "$name: $(head -n 1 "$dir/merge.picked" | cut -c3-); now in $dest"
}

if [[ $merge == 1 ]]; then
  status=0
  for entry in "${selected[@]}"; do
    read -r name subdir committed _ dest <<<"$entry"
    merge_run "$name" "$subdir" "$committed" "$dest" || status=1
  done
  exit $status
fi
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo "+dirty")
rows=()
found=0
for entry in "${selected[@]}"; do
  read -r name subdir committed dict _ <<<"$entry"
  dir=$work/$name
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  echo "=== $name: ${seconds}s, log in $dir/log ==="
  start=$(date -u +%Y-%m-%dT%H:%MZ)
  dict_opt=()
  [[ $dict == - ]] || dict_opt=(-dict="$dict")
  nice -n 19 "$build/$subdir/$name" -max_total_time="$seconds" -print_final_stats=1 \
    -timeout=25 "${dict_opt[@]}" -artifact_prefix="$dir/artifacts/" \
    "$dir/corpus" "$committed" >"$dir/log" 2>&1
  rc=$?
  execs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$dir/log" | tail -1)
  rate=$(awk '/stat::average_exec_per_sec:/ {print $2}' "$dir/log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$dir/log" | grep ' cov: ' | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
  crashes=$(find "$dir/artifacts" -type f | wc -l)
  if [[ $rc -ne 0 || $crashes -ne 0 ]]; then
    found=1
    echo "fuzz: $name exited $rc; artifacts:" >&2
    find "$dir/artifacts" -type f >&2
  fi
  rows+=("| $name | $start | $commit | $seconds | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $crashes |")
done

echo
echo "| target | started (UTC) | commit | seconds | executions | exec/s | cov | ft | corpus (files/size) | crashes |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $found
