#!/usr/bin/env bash
# Reproduces the fuzzing campaign recorded in tests/fuzz/README.md; not run
# in CI. Builds the clang libFuzzer build (build-fuzz/, ASan+UBSan) and runs
# each fuzz target for N seconds, one after the other, at nice 19. Each run
# starts from a fresh scratch corpus seeded with the committed one, so the
# committed corpus is never written; crashes land in the run's artifacts/.
#
#   scripts/fuzz.sh                         # every target, 600 s each
#   QVM_FUZZ_SECONDS=60 scripts/fuzz.sh fuzz_dhcp fuzz_vm_json
#
#   QVM_FUZZ_SECONDS  seconds per target (default 600)
#   QVM_FUZZ_BUILD    build dir (default build-fuzz)
#   QVM_FUZZ_WORK     scratch dir for corpora, logs, crashes
#                     (default $QVM_FUZZ_BUILD/campaign)
#
# Prints one Markdown row per target, in the format of the table in
# tests/fuzz/README.md. Exits 1 if any target found a crash, leak or timeout.
# To keep new coverage, merge a run's corpus into the committed one:
#   build-fuzz/tests/vm/fuzz_vm_json -merge=1 tests/vm/corpus/vm_json \
#     build-fuzz/campaign/fuzz_vm_json/corpus
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

seconds=${QVM_FUZZ_SECONDS:-600}
build=${QVM_FUZZ_BUILD:-build-fuzz}
work=${QVM_FUZZ_WORK:-$build/campaign}

# target  build subdir  committed corpus  dictionary (every qvm_fuzz_target)
all=(
  "fuzz_dhcp tests/net tests/net/corpus tests/fuzz/dict/dhcp.dict"
  "fuzz_qmp_reader tests/qmp tests/qmp/corpus/qmp_reader tests/fuzz/dict/qmp.dict"
  "fuzz_qmp_client tests/qmp tests/qmp/corpus/qmp_client tests/fuzz/dict/qmp.dict"
  "fuzz_seed_user_config tests/seed tests/seed/corpus/user_config tests/fuzz/dict/cloud_config.dict"
  "fuzz_vm_json tests/vm tests/vm/corpus/vm_json tests/fuzz/dict/vm_json.dict"
  "fuzz_vm_config tests/vm tests/vm/corpus/qvm_yaml tests/fuzz/dict/yaml.dict"
)

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
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo "+dirty")
rows=()
found=0
for entry in "${selected[@]}"; do
  read -r name subdir committed dict <<<"$entry"
  dir=$work/$name
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  echo "=== $name: ${seconds}s, log in $dir/log ==="
  start=$(date -u +%Y-%m-%dT%H:%MZ)
  nice -n 19 "$build/$subdir/$name" -max_total_time="$seconds" -print_final_stats=1 \
    -timeout=25 -dict="$dict" -artifact_prefix="$dir/artifacts/" \
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
