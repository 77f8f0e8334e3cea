#!/usr/bin/env bash
# qvm seed build checks every input file, whatever the options: broken YAML,
# a meta-data that is not a mapping, a network-config without version 1/2,
# an --ssh-key file that holds no public key lines. Exit codes: 1 invalid,
# unreadable or too big; 3 missing. No VM, no root.
set -euo pipefail
qvm=${QVM_BINARY_DIR:?QVM_BINARY_DIR is not set (run through ctest)}/qvm
dir=$(mktemp -d "${TMPDIR:-/tmp}/qvm-seed-cli.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir"
failures=0

# expect CODE PATTERN ARGS...: runs qvm seed build -o out.iso ARGS, checks
# the exit code and that stderr matches the (extended) regex; an empty
# pattern means: no stderr and an image written.
expect() {
  local code=$1 pattern=$2 got=0
  shift 2
  rm -f out.iso
  "$qvm" seed build -o out.iso "$@" 2>err || got=$?
  if [[ $got != "$code" ]] || { [[ -n $pattern ]] && ! grep -zEq -- "$pattern" err; } ||
    { [[ -z $pattern ]] && { [[ -s err ]] || [[ ! -s out.iso ]]; }; }; then
    echo "FAIL: seed build $* -> exit $got (want $code), stderr:" >&2
    sed 's/^/  /' err >&2
    echo "  (wanted /$pattern/)" >&2
    failures=$((failures + 1))
  elif [[ $code != 0 && -e out.iso ]]; then
    echo "FAIL: seed build $* failed but wrote out.iso" >&2
    failures=$((failures + 1))
  fi
}

ssh-keygen -q -t ed25519 -N '' -C test -f key >/dev/null
printf '#cloud-config\nusers:\n  - name: a\n   bad: [\n' >bad.yaml
printf '#cloud-config\npackages: [curl]\n' >good.yaml
printf 'packages: [curl]\n' >no-header.yaml
printf '#cloud-config\n- a\n- b\n' >list.yaml
printf '#!/bin/sh\necho hi\n' >script.sh
printf '#!/bin/sh\r\necho hi\r\n' >crlf.sh
printf '#!sh\necho hi\n' >relative.sh
printf 'Content-Type: multipart/mixed; boundary="XX"\nMIME-Version: 1.0\n\n--XX\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n' >truncated.mime
{ cat truncated.mime; printf -- '--XX--\n'; } >good.mime
printf 'instance-id: iid-1\nlocal-hostname: h\n' >meta
printf -- '- instance-id\n' >meta-list
printf 'instance-id: [\n' >meta-broken
: >empty
printf 'version: 2\nethernets:\n  eth0: {dhcp4: true}\n' >net2
printf 'network:\n  version: 1\n  config: []\n' >net1
printf 'version: 3\n' >net3
printf 'ethernets:\n  eth0: {dhcp4: true}\n' >net-noversion
echo garbage >garbage.pub
printf 'ssh-ed25519 !!notbase64!! x\n' >badb64.pub
printf '# mine\n\n%s\n' "$(cat key.pub)" >commented.pub
head -c $((4 * 1024 * 1024 + 1)) /dev/zero >big

# Valid inputs, alone (as they are) and merged.
expect 0 '' --user-data good.yaml --meta-data meta --network-config net2
expect 0 '' --user-data script.sh --network-config net1
expect 0 '' --user-data good.mime
expect 0 '' --ssh-key commented.pub --user-data good.yaml --hostname h
expect 0 '' --ssh-key key.pub --user-data script.sh

# user-data: checked with or without --hostname / --ssh-key.
expect 1 "user-data 'bad.yaml' line 4: .*hint: user-data must start" --user-data bad.yaml
expect 1 "user-data 'bad.yaml' line 4" --user-data bad.yaml --hostname h
expect 1 "user-data 'list.yaml' line 2: the top is not a mapping" --user-data list.yaml
expect 1 "user-data 'no-header.yaml' line 1: not a type cloud-init reads" --user-data no-header.yaml
expect 1 "user-data 'crlf.sh' line 1: .*carriage return.*dos2unix" --user-data crlf.sh
expect 1 "user-data 'relative.sh' line 1: .*absolute interpreter" --user-data relative.sh
expect 1 "user-data 'truncated.mime': the closing '--XX--' line is missing" --user-data truncated.mime
expect 1 "user-data 'good.mime' is neither a cloud-config nor .*hint: leave out" \
  --user-data good.mime --ssh-key key.pub
expect 1 "user-data 'empty' is empty" --user-data empty

# meta-data and network-config.
expect 1 "meta-data 'meta-list' line 1: the top is not a mapping.*hint: meta-data is one YAML mapping" \
  --meta-data meta-list
expect 1 "meta-data 'meta-broken' line [0-9]+: " --meta-data meta-broken
expect 1 "meta-data 'empty' is empty" --meta-data empty
expect 1 "network-config 'net3' line 1: 'version' must be 1 or 2" --network-config net3
expect 1 "network-config 'net-noversion' line 1: no 'version' key" --network-config net-noversion
expect 1 "network-config 'meta-list' line 1: the top is not a mapping" --network-config meta-list

# --ssh-key: public key lines only.
expect 1 "ssh key file 'garbage.pub' line 1: not a public key line.*hint: --ssh-key takes public key" \
  --ssh-key garbage.pub
expect 1 "ssh key file 'key' line 1: a private key.*give the .pub file" --ssh-key key
expect 1 "ssh key file 'badb64.pub' line 1: .*not base64" --ssh-key badb64.pub
expect 1 "ssh key file 'empty' holds no public key" --ssh-key empty

# Missing is "not found" (3); a directory or a too-big file is a failure (1).
expect 3 "cannot read user-data 'nope': No such file" --user-data nope
expect 3 "cannot read ssh key file 'nope.pub'" --ssh-key nope.pub
expect 1 "cannot read user-data '.': Is a directory" --user-data .
expect 1 "meta-data 'big' is larger than" --meta-data big
expect 1 "network-config 'big' is larger than" --network-config big

# Usage errors: exit 2.
expect 2 "epoch 'x' is not a number" --epoch x

if ((failures)); then
  echo "test_seed_cli: $failures failure(s)" >&2
  exit 1
fi
echo "test_seed_cli: ok"
