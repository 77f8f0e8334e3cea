# SPDX-License-Identifier: MIT
# A libvirtd of the benchmark's own, for the benchmarks that measure qvm
# beside libvirt (bench/snapshot, bench/api). Sourced; the caller sets
#   tmp     its private temp dir (libvirt's dirs go under $tmp/libvirt)
#   netns   a network namespace it created (libvirtd runs in it)
# and defines die() and log(). Provides lv_install, start_libvirtd,
# stop_libvirtd, in_ns, virsh_, stop_pid; sets lv, lv_pid, made_dirs.
#
# libvirtd runs in the netns, in a private mount namespace: its config, run,
# state, cache and log dirs are bind mounts of temp dirs, so it sees no
# other libvirt's domains and leaves nothing behind; virsh reaches it
# through the socket's path in the temp dir. qemu.conf: QEMU as root with no
# relabelling (images live in root's cache), no cgroups or per-domain mount
# namespaces (containers), QEMU's output straight to a file (no virtlogd).
# The Debian build resolves its qemu user at start, so a libvirt-qemu entry
# is added to a private copy of passwd and group when the host has none.

lv=$tmp/libvirt
lv_pid=
made_dirs=()

in_ns() { ip netns exec "$netns" "$@"; }
virsh_() { in_ns virsh -q -c "qemu:///system?socket=$lv/run/libvirt-sock" "$@"; }
# virsh_ bounded to S seconds (timeout(1) cannot run a shell function)
virsh_timeout() { # S ARGS...
  local s=$1
  shift
  timeout "$s" ip netns exec "$netns" virsh -q -c "qemu:///system?socket=$lv/run/libvirt-sock" "$@"
}

stop_pid() { # pid [seconds]: TERM, wait, KILL
  local p=$1 n=$((${2:-10} * 5))
  kill "$p" 2>/dev/null || return 0
  while ((n-- > 0)) && kill -0 "$p" 2>/dev/null; do sleep 0.2; done
  kill -9 "$p" 2>/dev/null || true
}

# libvirt from Debian, the smallest set with virsh and the QEMU driver.
# libvirt-daemon-system is not needed: it would add systemd units and
# users, and the benchmark runs its own libvirtd.
lv_install() {
  local driver=/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so
  if ! command -v virsh >/dev/null || ! command -v libvirtd >/dev/null || [[ ! -e $driver ]]; then
    log "installing libvirt (apt-get install libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients >&2 ||
      die "apt-get could not install libvirt"
  fi
}

start_libvirtd() {
  local d
  mkdir -p "$lv"/{etc,run,lib,cache,log}
  cp -a /etc/libvirt/. "$lv/etc/"
  cat >"$lv/etc/qemu.conf" <<'QEMUCONF'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
namespaces = [ ]
cgroup_controllers = [ ]
QEMUCONF
  cp /etc/passwd "$lv/passwd"
  cp /etc/group "$lv/group"
  getent group libvirt-qemu >/dev/null || echo "libvirt-qemu:x:64055:" >>"$lv/group"
  getent passwd libvirt-qemu >/dev/null ||
    echo "libvirt-qemu:x:64055:64055:libvirt bench:/var/lib/libvirt:/usr/sbin/nologin" >>"$lv/passwd"
  for d in /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
    [[ -e $d ]] && continue
    mkdir "$d" && made_dirs+=("$d")
  done
  # ip netns exec, unshare and sh all exec (no shell function here: that
  # would fork a subshell): $! is libvirtd itself. Its pid file is ours too
  # (the default, /run/libvirtd.pid, would be a system libvirtd's).
  ip netns exec "$netns" unshare --mount --propagation private sh -ec "
    mount --bind '$lv/passwd' /etc/passwd
    mount --bind '$lv/group' /etc/group
    mount --bind '$lv/etc' /etc/libvirt
    mount --bind '$lv/run' /run/libvirt
    mount --bind '$lv/lib' /var/lib/libvirt
    mount --bind '$lv/cache' /var/cache/libvirt
    mount --bind '$lv/log' /var/log/libvirt
    exec libvirtd --pid-file '$lv/libvirtd.pid'" >"$lv/libvirtd.log" 2>&1 &
  lv_pid=$!
  local _
  for _ in $(seq 150); do
    virsh_ version >/dev/null 2>&1 && return 0
    kill -0 "$lv_pid" 2>/dev/null || break
    sleep 0.2
  done
  tail -n 20 "$lv/libvirtd.log" >&2
  die "libvirtd did not answer within 30 s"
}

# libvirtd and the dirs start_libvirtd made (call from the caller's cleanup,
# after its domains are gone).
stop_libvirtd() {
  if [[ -n $lv_pid ]]; then
    stop_pid "$lv_pid" 10
    wait "$lv_pid" 2>/dev/null
  fi
  # libvirtd's own record of itself, in case $! ever was not libvirtd.
  [[ -s $lv/libvirtd.pid ]] && stop_pid "$(cat "$lv/libvirtd.pid")" 10
  local d
  for d in "${made_dirs[@]}"; do rmdir "$d" 2>/dev/null; done
  return 0
}
