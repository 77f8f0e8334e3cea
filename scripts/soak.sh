#!/usr/bin/env bash
# Runs the soak test (tests/soak/soak.sh; results in tests/soak/README.md):
# builds qvm in the normal build (build/), finds or builds the mini guest,
# then QVM_SOAK_CYCLES (default 200) start/stop cycles. Not run in CI
# (scripts/test.sh leaves the soak label out). Needs root for the bridge
# network in a private netns; otherwise the VM uses --net user.
#
#   scripts/soak.sh
#   QVM_SOAK_CYCLES=20 scripts/soak.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

build=${QVM_SOAK_BUILD:-build}
if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null ||
   ! cmake --build "$build" -j"$(nproc)" --target qvm; then
  echo "soak: building qvm in $build failed" >&2
  exit 2
fi
[[ $build == /* ]] || build=$PWD/$build
QVM_SOURCE_DIR=$PWD QVM_BINARY_DIR=$build exec tests/soak/soak.sh
