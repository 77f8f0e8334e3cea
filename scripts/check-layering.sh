#!/usr/bin/env bash
# Enforces the layering table of DESIGN.md on #include lines: each module may
# include only the internal headers of the modules its row allows, and tools/
# may include only the public API in include/qvm/.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
  [util]="util"
  [qmp]="util qmp"
  [seed]="util seed"
  [net]="util net"
  [ssh]="util ssh"
  [image]="util image"
  [vm]="util qmp seed net ssh image vm"
  [diff]="util image vm diff"
  [review]="util image vm diff review"
  [tools]=""
)
bad=0
for mod in "${!allowed[@]}"; do
  [[ -d $mod ]] || continue
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include[[:space:]]*"([^"]+)".*/\1/' <<<"${line#*:}")
    dep=${inc%%/*}
    [[ $inc == */* ]] || continue # same-directory header
    case " ${allowed[$mod]} " in
      *" $dep "*) ;;
      *) echo "layering: $file includes \"$inc\", but $mod/ may use only: ${allowed[$mod]:-include/qvm}" >&2
         bad=1 ;;
    esac
  done < <(grep -rn --include='*.c' --include='*.h' -E '^[[:space:]]*#include[[:space:]]*"' "$mod" | cut -d: -f1,3- || true)
done
if [[ $bad -ne 0 ]]; then
  echo "layering check failed" >&2
  exit 1
fi
echo "layering ok"
