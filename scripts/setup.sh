#!/usr/bin/env bash
# Installs what qvm needs to build and run (apt packages included; not the
# test-only ones: scripts/deps.sh test) and builds qvm into build/.
# Idempotent and safe to re-run. One line per step; the full output of apt
# and the build goes to build/setup.log.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
export QVM_DEPS_LOG=$PWD/build/setup.log
: >"$QVM_DEPS_LOG"
fail() {
  echo "setup: $1 failed; the last lines of $QVM_DEPS_LOG:" >&2
  tail -n 20 "$QVM_DEPS_LOG" >&2
  exit 1
}
echo "setup: installing packages to build and run qvm (scripts/deps.sh build run)"
scripts/deps.sh build run || fail "installing packages"
echo "setup: configuring and building qvm in build/"
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
  cmake --build build -j"$(nproc)"; } >>"$QVM_DEPS_LOG" 2>&1 || fail "building"
echo "setup: built build/qvm (install it with: cmake --install build)"
