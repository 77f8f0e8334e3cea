#!/usr/bin/env bash
# The README's first command: on a fresh Debian 12 machine (as root), installs
# what qvm needs to build and run (not the test-only packages), builds qvm,
# builds a Debian 12 cloud image from Debian packages if it is not cached yet
# (the same as the cloud test guest), then shows qvm's main job: `qvm up` (keys,
# seed, overlay, boot, SSH with a host key pinned before the first boot,
# cloud-init), `qvm exec`, `qvm cp` both ways, and `qvm down --rm`.
#
# The demo VM lives in its own state dir under a temp dir, which is removed at
# the end whatever happens. QVM_DEMO_NAME / QVM_DEMO_KEEP=1 for a look around.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing dependencies and building qvm (scripts/setup.sh)"
scripts/setup.sh

step "building a Debian 12 cloud image from Debian packages (cached after the first run)"
echo "installing the image tools (scripts/deps.sh image); log: build/image.log"
: >build/image.log
QVM_DEPS_LOG=$PWD/build/image.log scripts/deps.sh image
echo "building the image with mmdebstrap (a few minutes the first time); log: build/image.log"
image_dir=$(tests/guests/cloud/build.sh 2>>build/image.log | tail -n 1) || {
  echo "demo: building the image failed; the last lines of build/image.log:" >&2
  tail -n 20 build/image.log >&2
  exit 1
}
image=$image_dir/disk.qcow2
echo "image: $image"

qvm=$PWD/build/qvm
name=${QVM_DEMO_NAME:-demo}
work=$(mktemp -d "${TMPDIR:-/tmp}/qvm-demo-XXXXXX")
export QVM_STATE_DIR=$work/state QVM_RUNTIME_DIR=$work/run
cleanup() {
  local rc=$?
  if [[ ${QVM_DEMO_KEEP:-} != 1 ]]; then
    "$qvm" rm --force "$name" >/dev/null 2>&1 || true
    rm -rf -- "$work"
  else
    echo "kept: QVM_STATE_DIR=$QVM_STATE_DIR QVM_RUNTIME_DIR=$QVM_RUNTIME_DIR"
  fi
  [[ $rc -eq 0 ]] && echo "demo: OK" || echo "demo: FAILED (exit $rc)" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "qvm up $name --image $image --disk 4G"
"$qvm" up "$name" --image "$image" --disk 4G \
  --provision 'shell:echo "provisioned on $(hostname)" | sudo tee /etc/qvm-demo'

step "qvm exec $name -- uname -a"
"$qvm" exec "$name" -- uname -a

step "qvm exec $name -- sh -c 'id; df -h /'"
"$qvm" exec "$name" -- sh -c 'id; df -h /'

step "qvm cp: a file into the guest and back"
echo "hello from the host, $(date -u +%FT%TZ)" >"$work/hello.txt"
"$qvm" cp "$work/hello.txt" "$name:/tmp/hello.txt"
"$qvm" exec "$name" -- sh -c 'cat /tmp/hello.txt; echo "and back from $(hostname)" >> /tmp/hello.txt'
"$qvm" cp "$name:/tmp/hello.txt" "$work/back.txt"
cat "$work/back.txt"

step "qvm info $name"
"$qvm" info "$name"

step "qvm down $name --rm"
"$qvm" down "$name" --rm
