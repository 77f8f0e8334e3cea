#!/usr/bin/env bash
# End to end, the cloud guest (issue 13, "4 clones start in parallel"): four
# `qvm clone SRC cN --up` run at the same time against one stopped SRC. Each
# exits 0 and answers `qvm exec cN -- hostname` with its own name; the four
# have distinct MACs and instance-ids (none of them SRC's), each has SRC's
# files, and SRC's disk is byte-identical before and after (sha256). Clones
# of one SRC take SRC's lock in turn for the flatten step, so nothing here
# is timed; it checks correctness only. The VMs get 512M (clones inherit
# SRC's memory) so that four fit beside each other under TCG.
. "$(dirname "$0")/lib.sh"

image=$(cloud_image)
vms=$QVM_STATE_DIR/vms
clones=(e2e-c1 e2e-c2 e2e-c3 e2e-c4)
clone_pids=()

# On a failure or a signal while clones run: stop them first (a clone that
# finishes after lib.sh's cleanup listed the VMs would outlive the test),
# then remove whatever they made. lib.sh runs this after its own pass.
stop_clones() {
  local p d
  for p in "${clone_pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${clone_pids[@]}"; do wait "$p" 2>/dev/null; done
  for d in "$vms"/*/; do [[ -d $d ]] && qvm rm --force "$(basename "$d")" >/dev/null 2>&1; done
  for n in $(recorded_pids); do kill -9 "$n" 2>/dev/null; done
}
cleanup_hooks+=(stop_clones)

out=$(qvm up e2e-psrc --image "$image" --memory 512M --disk 3G 2>&1) || fail "qvm up failed: $out"
qvm exec e2e-psrc -- sh -c 'echo golden-file | sudo tee /var/tmp/golden >/dev/null && sync' ||
  fail "writing the golden file"
ident() {
  qvm exec "$1" -- sh -c 'hostname; sudo cat /var/lib/cloud/data/instance-id;
    cat /sys/class/net/$(ls /sys/class/net | grep -v "^lo$" | head -n 1)/address'
}
src_id=$(ident e2e-psrc) || fail "identity of e2e-psrc"
qvm stop e2e-psrc --timeout 60 >/dev/null || fail "stop e2e-psrc"
before=$(sha256sum "$vms/e2e-psrc/disk.qcow2" | cut -d' ' -f1)

for c in "${clones[@]}"; do
  # The binary itself in the background (not the qvm function), so that
  # $! is qvm and stop_clones' signal reaches it.
  "$qvm_bin" clone e2e-psrc "$c" --up --timeout 900 --quiet >"$tmp/$c.out" 2>&1 &
  clone_pids+=($!)
done
failed=()
for i in "${!clones[@]}"; do
  rc=0
  wait "${clone_pids[$i]}" || rc=$?
  [[ $rc -eq 0 ]] || failed+=("${clones[$i]} (exit $rc: $(tail -n 5 "$tmp/${clones[$i]}.out" | tr '\n' ' '))")
done
clone_pids=()
[[ ${#failed[@]} -eq 0 ]] || fail "clone --up failed: ${failed[*]}"

mapfile -t s <<<"$src_id"
log "e2e-psrc: ${s[*]}"
[[ ${#s[@]} -eq 3 && -n ${s[1]} && -n ${s[2]} ]] || fail "incomplete identity of e2e-psrc: ${s[*]}"
declare -A seen_mac=([${s[2]}]=e2e-psrc) seen_iid=([${s[1]}]=e2e-psrc)
for c in "${clones[@]}"; do
  expect_eq "$(qvm exec "$c" -- hostname)" "$c" "the hostname of $c"
  id=$(ident "$c") || fail "identity of $c"
  mapfile -t v <<<"$id"
  log "$c: ${v[*]}"
  [[ ${#v[@]} -eq 3 && -n ${v[1]} && -n ${v[2]} ]] || fail "incomplete identity of $c: ${v[*]}"
  [[ -z ${seen_mac[${v[2]}]:-} ]] || fail "$c has the MAC ${v[2]} of ${seen_mac[${v[2]}]}"
  [[ -z ${seen_iid[${v[1]}]:-} ]] || fail "$c has the instance-id ${v[1]} of ${seen_iid[${v[1]}]}"
  seen_mac[${v[2]}]=$c
  seen_iid[${v[1]}]=$c
  spec_mac=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spec"]["mac"])' "$vms/$c/vm.json")
  expect_eq "${v[2]}" "$spec_mac" "the guest's MAC is the one recorded for $c"
  expect_eq "$(qvm exec "$c" -- cat /var/tmp/golden)" golden-file "$c has SRC's files"
done
expect_eq "$(sha256sum "$vms/e2e-psrc/disk.qcow2" | cut -d' ' -f1)" "$before" "SRC's disk after 4 clones"

pids=$(recorded_pids)
qvm down "${clones[@]}" e2e-psrc --rm >/dev/null || fail "down --rm of the clones and SRC"
for c in "${clones[@]}" e2e-psrc; do assert_gone "$c" "$pids"; done
log "ok"
