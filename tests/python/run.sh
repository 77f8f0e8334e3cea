#!/usr/bin/env bash
# The Python SDK (python/, docs/qvmd.md "Python SDK") under pytest (Debian's
# python3-pytest). It is installed first as a user would, offline:
# `pip install --no-build-isolation` of a copy of python/ into a temp dir.
#   run.sh unit   its own bounds against fake servers (tests/python/test_bounds.py)
#   run.sh qvmd   against a real qvmd and the mini guest (test_qvmd.py): qvmd
#                 on a temp UNIX socket and on TCP with full, read and agent tokens
# No pytest is a skip (77), which under CI=true is a failure.
set -euo pipefail
mode=${1:?usage: run.sh unit|qvmd}
src=${QVM_SOURCE_DIR:?QVM_SOURCE_DIR is not set (run through ctest)}

case $mode in
  unit)
    e2e_name=python_sdk_unit
    skip() {
      if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
        echo "$e2e_name: FAIL (a skip is a failure under CI=true): $*" >&2
        exit 1
      fi
      echo "$e2e_name: SKIP: $*" >&2
      exit 77
    }
    fail() { echo "$e2e_name: FAIL: $*" >&2; exit 1; }
    tmp=$(mktemp -d /tmp/qvm-pysdk-XXXXXX)
    trap 'rm -rf -- "$tmp"' EXIT
    ;;
  qvmd)
    . "$src/tests/qvmd/lib.sh"
    e2e_name=python_sdk
    ;;
  *) echo "run.sh: unknown mode '$mode' (unit, qvmd)" >&2; exit 2 ;;
esac

# The first python3 with pytest: PATH's, else Debian's.
py=
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import pytest' 2>/dev/null; then py=$p; break; fi
done
[[ -n $py ]] || skip "needs pytest (python3-pytest; scripts/deps.sh test)"
"$py" -c 'import setuptools' 2>/dev/null || skip "needs setuptools (python3-setuptools) to install the SDK"
"$py" -m pip --version >/dev/null 2>&1 || skip "needs pip (python3-pip) to install the SDK"

# A copy, so that the build leaves nothing in the source tree.
cp -r "$src/python" "$tmp/sdk-src"
"$py" -m pip install --quiet --disable-pip-version-check --no-index --no-deps \
  --no-build-isolation --root-user-action=ignore --target "$tmp/site" "$tmp/sdk-src" \
  >"$tmp/pip.log" 2>&1 || fail "pip install of python/: $(cat "$tmp/pip.log")"
[[ -f $tmp/site/qvm/py.typed ]] || fail "the installed SDK has no py.typed"
export PYTHONPATH=$tmp/site PYTHONDONTWRITEBYTECODE=1
got=$(cd "$tmp" && "$py" -c 'import qvm; print(qvm.__file__)')
[[ $got == "$tmp/site/qvm/__init__.py" ]] || fail "imported qvm from '$got', not the installed copy"

pytest_run() {
  (cd "$tmp" && "$py" -m pytest -q -p no:cacheprovider --rootdir "$tmp" "$@")
}

if [[ $mode == unit ]]; then
  pytest_run "$src/tests/python/test_bounds.py"
  exit 0
fi

mini=$(mini_guest)
sock=$tmp/qvmd.sock
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rnd() { head -c 18 /dev/urandom | base64 | tr '/+' '_-'; }
tok_full=$(rnd) tok_read=$(rnd) tok_a=$(rnd) tok_b=$(rnd)
printf '%s full\n%s read\n%s agent:agent-a\n%s agent:agent-b\n' \
  "$tok_full" "$tok_read" "$tok_a" "$tok_b" >"$tmp/tokens"
chmod 600 "$tmp/tokens"
start_qvmd "$tmp/qvmd.log" --socket "$sock" --listen "127.0.0.1:$port" --tokens "$tmp/tokens"
# The golden VM's disk: an overlay on an empty base (as tests/qvmd/mini.sh).
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 16M

# Snapshots, clones, forks and checkpoints: when this qvmd serves them
# (main after c7028db); an older qvmd says so in the log.
tests=("$src/tests/python/test_keys.py" "$src/tests/python/test_qvmd.py")
if "$qvmd_bin" --routes | grep -q '/api/v1/operations'; then
  tests+=("$src/tests/python/test_ops.py")
fi
tests+=("$src/tests/python/test_stream.py")
if "$qvmd_bin" --routes | grep -q '/api/v1/sandboxes/{name}/checkpoint'; then
  tests+=("$src/tests/python/test_snapshots.py")
else
  log "this qvmd has no snapshot routes: test_snapshots.py is not run"
fi

# Change sets: when this qvmd serves them, with what they need on the host.
if "$qvmd_bin" --routes | grep -q '/api/v1/reviews/{id}/approve'; then
  for t in qemu-storage-daemon ansible-playbook mkfs.ext4; do
    command -v "$t" >/dev/null || skip "needs $t for test_reviews.py (scripts/deps.sh)"
  done
  tests+=("$src/tests/python/test_reviews.py")
else
  log "this qvmd has no review routes: test_reviews.py is not run"
fi

QVM_TEST_SOCK=$sock QVM_TEST_URL=http://127.0.0.1:$port QVM_TEST_MINI=$mini \
  QVM_TEST_BASE=$tmp/base.qcow2 QVM_TEST_TOKEN_FULL=$tok_full QVM_TEST_TOKEN_READ=$tok_read \
  QVM_TEST_TOKEN_A=$tok_a QVM_TEST_TOKEN_B=$tok_b \
  pytest_run -x -rs "${tests[@]}" 2>&1 | tee "$tmp/pytest.log" >&2 || {
    log "qvmd's log (last 30 lines):"
    tail -n 30 "$tmp/qvmd.log" >&2
    fail "pytest"
  }
# Every test ran: a skipped one (no QVM_TEST_SOCK) would pass quietly.
! grep -q skipped "$tmp/pytest.log" || fail "pytest skipped tests"
grep -qE '^[0-9]+ passed' "$tmp/pytest.log" || fail "pytest passed nothing"
log "PASS"
