#!/usr/bin/env bash
# Runs every benchmark, each printing qvm's figures beside its peer's
# (dnsmasq, OpenSSH, genisoimage/cloud-localds, a shell-launched QEMU, a
# hand-scripted cloud-image boot, libvirt's internal snapshots), measured in
# the same run. Figures only: nothing here asserts a timing. Needs root
# (network namespaces), QEMU and the test guests (built on first use);
# snapshot installs libvirt from Debian when it is missing.
#
#   scripts/bench.sh              # all of them
#   scripts/bench.sh qmp seed     # some: qmp seed net-dhcp net-ip ssh ssh-login vm up image
#                                 #   snapshot sandbox api diff
set -uo pipefail
cd "$(dirname "$0")/.."
{ scripts/deps.sh && scripts/setup.sh >/dev/null; } || { echo "bench: build failed" >&2; exit 1; }
b=build/bench
declare -A run=(
  [qmp]="$b/qmp/bench_qmp"
  [seed]="$b/seed/bench_seed $PWD/build/qvm"
  [net-dhcp]="$b/net/bench_dhcp"
  [net-ip]="$b/net/bench_ip"
  [ssh]="$b/ssh/bench_ssh"
  [ssh-login]="$b/ssh/bench_login"
  [vm]="$b/vm/bench_vm"
  [up]="bench/e2e/bench_up.sh"
  [image]="bench/image/bench_image.sh"
  [snapshot]="bench/snapshot/bench_snapshot.sh"
  [sandbox]="bench/sandbox/bench_sandbox.sh"
  [api]="bench/api/bench_api.sh"
  [diff]="bench/diff/bench_diff.sh"
)
order=(qmp seed net-dhcp net-ip ssh ssh-login vm up image snapshot sandbox api diff)
[[ $# -gt 0 ]] && order=("$@")
export QVM_SOURCE_DIR=$PWD QVM_BINARY_DIR=$PWD/build
failed=()
for name in "${order[@]}"; do
  cmd=${run[$name]:-}
  [[ -n $cmd ]] || { echo "bench: unknown benchmark '$name' (${!run[*]})" >&2; exit 2; }
  echo "=== $name: $cmd ==="
  $cmd || failed+=("$name")
done
[[ ${#failed[@]} -eq 0 ]] || { echo "bench: failed: ${failed[*]}" >&2; exit 1; }
