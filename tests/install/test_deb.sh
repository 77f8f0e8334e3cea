#!/usr/bin/env bash
# The Debian package (issue 18): dpkg-buildpackage -b from a copy of the
# source tree, lintian without errors, dpkg -i, then the mini-guest smoke
# test (up, exec, down --rm) with the installed /usr/bin/qvm only, its man
# page and completion; the packages are purged again at the end.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

for t in dpkg-buildpackage dh lintian git; do
  command -v "$t" >/dev/null || skip "needs $t (scripts/deps.sh installs it)"
done
if dpkg-query -W -f '${Status}' qvm 2>/dev/null | grep -q 'ok installed'; then
  skip "a qvm package is installed already: this test would replace it"
fi
mini=$(mini_guest)
cleanup_hooks+=("dpkg -P qvm libqvm-dev libqvm0 >/dev/null 2>&1")

# The tracked files only (a clean clone's tree), as they are in the worktree.
mkdir -p "$tmp/src/qvm"
(cd "$src" && git ls-files -z | xargs -0 cp --parents -t "$tmp/src/qvm") ||
  fail "copying the source tree"
start=$(date +%s)
(cd "$tmp/src/qvm" && dpkg-buildpackage -b -us -uc -j"$(nproc)") >"$tmp/build.log" 2>&1 ||
  fail "dpkg-buildpackage: $(tail -n 30 "$tmp/build.log")"
log "dpkg-buildpackage -b: $(($(date +%s) - start)) s"
debs=("$tmp"/src/qvm_*.deb "$tmp"/src/libqvm0_*.deb "$tmp"/src/libqvm-dev_*.deb)
for d in "${debs[@]}"; do [[ -f $d ]] || fail "not built: $d"; done
out=$(lintian --fail-on error "$tmp"/src/qvm_*.changes 2>&1) || fail "lintian: $out"
out=$(grep -v "running with root privileges" <<<"$out" || true)
log "lintian: no errors${out:+; other tags: $(echo $out)}"
dpkg-deb -f "${debs[0]}" Depends | grep -q 'qemu-system-x86' || fail "qvm does not depend on qemu-system-x86"
# Libraries opened on first use (lazy/lazy.h) are not NEEDED, so the
# package must name them itself: one of libqvm's, and qvmd's GnuTLS.
for dep in libcurl4 libssh2-1 libnbd0; do
  dpkg-deb -f "${debs[1]}" Depends | grep -qw "$dep" || fail "libqvm0 does not depend on $dep"
done
dpkg-deb -f "${debs[0]}" Depends | grep -qw libgnutls30 || fail "qvm does not depend on libgnutls30"

dpkg -i "${debs[@]}" >"$tmp/install.log" 2>&1 || fail "dpkg -i: $(tail -n 20 "$tmp/install.log")"
for f in /usr/bin/qvm /usr/libexec/qvm/qvm-shim /usr/share/man/man1/qvm-snapshot.1.gz \
  /usr/share/man/man5/qvm.yaml.5.gz /usr/share/man/man8/qvmd.8.gz \
  /usr/share/bash-completion/completions/qvm /usr/lib/systemd/system/qvm@.service \
  /usr/include/qvm/vm.h; do
  [[ -e $f ]] || fail "the package did not install $f"
done
[[ -z $(readelf -d /usr/bin/qvm | grep -E 'RUNPATH|RPATH') ]] || fail "/usr/bin/qvm has a RUNPATH"

# Installed paths only: a clean environment, nothing from the build tree.
iq() {
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$tmp/home" QVM_STATE_DIR="$QVM_STATE_DIR" \
    QVM_RUNTIME_DIR="$QVM_RUNTIME_DIR" /usr/bin/qvm "$@"
}
mkdir -p "$tmp/home"
libs=$(ldd /usr/bin/qvm) # not piped into grep -q: pipefail would see ldd's SIGPIPE
grep -qE "libqvm.so.0 => /(usr/)?lib/x86_64-linux-gnu/" <<<"$libs" ||
  fail "qvm does not load the installed libqvm: $(grep qvm <<<"$libs")"
out=$(iq up pkg --kernel "$mini/vmlinuz" --initrd "$mini/initrd.img" --append 'console=ttyS0' \
  --memory 256M --user root --no-wait-cloud-init --timeout 180 2>&1) || fail "installed qvm up: $out"
expect_eq "$(iq exec pkg -- echo from-the-package)" from-the-package "installed qvm exec"
shim=$(pgrep -af 'qvm-shim pkg')
[[ -n $shim ]] || fail "no shim for the vm"
shim=${shim%%$'\n'*}
pid=${shim%% *}
expect_eq "$(readlink "/proc/$pid/exe")" /usr/libexec/qvm/qvm-shim "the shim that runs"
iq down pkg --rm >/dev/null 2>&1 || fail "installed qvm down --rm"
[[ ! -e $QVM_STATE_DIR/vms/pkg ]] || fail "down --rm left the vm"
log "installed qvm: up, exec, down --rm"

man -w qvm-snapshot >/dev/null 2>&1 || fail "man qvm-snapshot: not found"
page=$(MANWIDTH=100 man qvm-snapshot 2>/dev/null)
grep -q -- '--disk-only' <<<"$page" || fail "man qvm-snapshot lacks --disk-only"
bash -c 'source /usr/share/bash-completion/completions/qvm; COMP_WORDS=(qvm snap); COMP_CWORD=1; _qvm
  [[ ${COMPREPLY[*]} == snapshot ]]' || fail "the installed bash completion"
if [[ -d /run/systemd/system ]]; then
  systemctl cat qvm@x.service >/dev/null || fail "systemctl cat qvm@x.service"
fi
dpkg -P qvm libqvm-dev libqvm0 >/dev/null 2>&1 || fail "dpkg -P"
[[ ! -e /usr/bin/qvm ]] || fail "purge left /usr/bin/qvm"
log "ok"
