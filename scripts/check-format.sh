#!/usr/bin/env bash
# Fails if any tracked C source differs from what clang-format would write.
# Fix with: scripts/check-format.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
[[ ${#files[@]} -gt 0 ]] || { echo "no sources"; exit 0; }
if [[ ${1:-} == --fix ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
clang-format --dry-run -Werror "${files[@]}"
echo "format ok (${#files[@]} files)"
