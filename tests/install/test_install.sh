#!/usr/bin/env bash
# cmake --install into a temporary prefix, then use what it installed the
# way another project would: the layout, a relocatable qvm.pc, RUNPATHs that
# work without LD_LIBRARY_PATH, the exported symbols, and a program built
# with `pkg-config --cflags --libs qvm` that creates, starts, stops and
# removes a mini-guest VM.
. "$QVM_SOURCE_DIR/tests/e2e/lib.sh"

mini=$(mini_guest)
command -v pkg-config >/dev/null || skip "needs pkg-config"
unset LD_LIBRARY_PATH
prefix=$tmp/prefix
cmake --install "$bin" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  fail "cmake --install failed: $(tail -5 "$tmp/install.log")"

for f in bin/qvm bin/qvmd lib/systemd/system/qvmd.service lib/systemd/system/qvmd.socket lib/libqvm.so lib/libqvm.so.0 lib/pkgconfig/qvm.pc include/qvm/vm.h \
  include/qvm/up.h include/qvm/ssh.h include/qvm/seed.h include/qvm/text.h include/qvm/error.h include/qvm/snapshot.h \
  include/qvm/export.h include/qvm/shim.h libexec/qvm/qvm-shim share/man/man1/qvm.1 \
  share/man/man1/qvm-snapshot.1 share/bash-completion/completions/qvm \
  share/zsh/vendor-completions/_qvm share/fish/vendor_completions.d/qvm.fish \
  lib/systemd/system/qvm@.service; do
  [[ -e $prefix/$f ]] || fail "not installed: $f"
done
for f in include/qvm/net.h include/qvm/qmp.h; do
  [[ ! -e $prefix/$f ]] || fail "internal header installed: $f"
done
[[ $(readlink "$prefix/lib/libqvm.so") == libqvm.so.0 ]] || fail "libqvm.so is not a link to libqvm.so.0"
soname=$(readelf -d "$prefix/lib/libqvm.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
expect_eq "$soname" libqvm.so.0 "SONAME"
ls "$prefix"/lib/libqvm.so.0.* >/dev/null 2>&1 || fail "no versioned libqvm.so.0.x.y"

# The installed CLI finds the installed library through its RUNPATH.
runpath=$(readelf -d "$prefix/bin/qvm" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
expect_eq "$runpath" '$ORIGIN/../lib' "RUNPATH of bin/qvm"
ldd "$prefix/bin/qvm" | grep -F "libqvm.so.0 => $prefix/bin/../lib/libqvm.so.0" >/dev/null ||
  fail "bin/qvm does not resolve the installed libqvm: $(ldd "$prefix/bin/qvm" | grep qvm)"
"$prefix/bin/qvm" --version >/dev/null || fail "installed qvm does not run"

"$src/tests/install/check_exports.sh" "$prefix/lib/libqvm.so" "$prefix/include/qvm" ||
  fail "exports of the installed libqvm"

# The .pc file is found, relocatable (the prefix is given only at install
# time) and enough to build a client.
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
libdir=$(pkg-config --variable=libdir qvm) || fail "pkg-config does not find qvm"
[[ $(realpath "$libdir") == $(realpath "$prefix/lib") ]] || fail "qvm.pc libdir '$libdir' is not $prefix/lib"
expect_eq "$(pkg-config --modversion qvm)" "$("$prefix/bin/qvm" --version | awk '{print $2}')" "version"
read -ra flags <<<"$(pkg-config --cflags --libs qvm)"
# A sanitizer build's libqvm needs its runtime first in the process: the
# client is then built with the same sanitizers (nothing else changes).
san=()
if readelf -d "$prefix/lib/libqvm.so" | grep -q 'libasan'; then san=(-fsanitize=address,undefined); fi
cc -std=c17 -Wall -Wextra -Werror "${san[@]}" -o "$tmp/client" "$src/tests/install/install_client.c" \
  "${flags[@]}" -Wl,-rpath,"$libdir" 2>"$tmp/cc.log" || fail "client does not build: $(cat "$tmp/cc.log")"
ldd "$tmp/client" | grep -F "libqvm.so.0 => $libdir/libqvm.so.0" >/dev/null ||
  fail "client does not use the installed libqvm: $(ldd "$tmp/client" | grep qvm)"
# The headers stand alone (each compiles by itself, also as C++ when a
# compiler is there) and carry no json-c type.
if grep -l 'json-c\|json_object' "$prefix"/include/qvm/*.h; then fail "json-c in a public header"; fi
for h in "$prefix"/include/qvm/*.h; do
  echo "#include <qvm/$(basename "$h")>" |
    cc -std=c17 -Wall -Wextra -Werror -fsyntax-only -x c - $(pkg-config --cflags qvm) ||
    fail "$(basename "$h") does not compile on its own"
  if command -v c++ >/dev/null; then
    echo "#include <qvm/$(basename "$h")>" |
      c++ -Wall -Wextra -Werror -fsyntax-only -x c++ - $(pkg-config --cflags qvm) ||
      fail "$(basename "$h") does not compile as C++"
  fi
done

# No QVM_SHIM: the installed libqvm finds the installed qvm-shim by itself.
out=$(env -u QVM_SHIM "$tmp/client" inst "$mini/vmlinuz" "$mini/initrd.img" 2>&1) ||
  fail "client failed: $out"
expect_match "$out" "install_client: ok" "client result"
expect_match "$out" "install_client: shim $(realpath "$prefix")/libexec/qvm/qvm-shim" "the shim libqvm ran"
[[ ! -e $QVM_STATE_DIR/vms/inst ]] || fail "the client's vm is still there"
log "ok"
