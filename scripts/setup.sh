#!/usr/bin/env bash
# Installs every dependency (apt packages included) and builds qvm into
# build/. Idempotent and safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: built build/qvm"
