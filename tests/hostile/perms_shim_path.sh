#!/usr/bin/env bash
# Another local user plants a qvm-shim where libqvm searches for one. An
# installed qvm finds its shim relative to libqvm.so
# (PREFIX/lib/../libexec/qvm/qvm-shim); if someone else owns (or may write)
# that file or a directory above it, root must not run it: the start fails
# saying a shim was skipped. Owned by root again, the same file runs.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"
[[ $(id -u) == 0 ]] || skip "needs root (chown)"
id nobody >/dev/null 2>&1 || skip "needs the user nobody"
mini=$(mini_guest)
unset QVM_SHIM

prefix=$tmp/prefix
cmake --install "$bin" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  fail "cmake --install failed: $(tail -5 "$tmp/install.log")"
shim=$prefix/libexec/qvm/qvm-shim
[[ -x $shim ]] || fail "no installed shim at $shim"
mv "$shim" "$shim.real"
# The planted shim: leaves a mark, then is the real one (so that the trusted
# case below starts a VM).
cat >"$shim" <<EOT
#!/bin/sh
touch '$tmp/planted-ran'
exec '$shim.real' "\$@"
EOT
chmod 755 "$shim"
chown -R nobody "$prefix/libexec"

installed_qvm() { "$prefix/bin/qvm" "$@"; }
out=$(installed_qvm create v --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" \
  --append 'console=ttyS0 qvm.dhcp=0' --memory 256M --net none --no-cloud-init 2>&1) ||
  fail "create: $out"
set +e
out=$(installed_qvm start v 2>&1)
rc=$?
set -e
log "$out"
[[ ! -e $tmp/planted-ran ]] || fail "root ran a qvm-shim that another user owns"
if [[ ! -e /usr/local/libexec/qvm/qvm-shim ]]; then # else that one may run instead
  ((rc != 0)) || fail "start succeeded without a trusted shim"
  expect_match "$out" "one was skipped" "the error says a shim was skipped"
fi
installed_qvm kill v >/dev/null 2>&1 || true

# The same file, owned by root and not writable by others: it runs.
chown -R root "$prefix/libexec"
chmod -R go-w "$prefix/libexec"
out=$(installed_qvm start v 2>&1) || fail "start with a root-owned shim: $out"
[[ -e $tmp/planted-ran ]] || fail "the root-owned shim did not run"
installed_qvm kill v >/dev/null 2>&1 || fail "kill"
installed_qvm rm v >/dev/null 2>&1 || fail "rm"
log "ok"
