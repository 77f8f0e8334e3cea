#!/usr/bin/env bash
# scripts/man.sh QVM OUTDIR: writes the man pages qvm.1 and qvm-VERB.1 (one
# per verb, with its subcommands) from the built qvm's own --help texts, so
# that a page cannot say something --help does not (the build runs this;
# tests/install/test_man_completion.sh checks every verb and flag is there).
set -euo pipefail
qvm=$1 out=$2
mkdir -p "$out"
version=$("$qvm" --version | awk '{print $2}')
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)

# roff-safe text: backslashes, leading dots/quotes, and '-' as \- so that
# flags render as the ASCII hyphen-minus a reader copies.
esc() { sed -e 's/\\/\\e/g' -e 's/^\([.'"'"']\)/\\\&\1/' -e 's/-/\\-/g'; }

header() { # NAME SECTION-TITLE
  printf '.TH %s 1 "%s" "qvm %s" "qvm manual"\n' "$(echo "$1" | tr a-z A-Z)" "$date" "$version"
}

# Verbs: the "commands:" lines of qvm --help.
mapfile -t verbs < <("$qvm" --help | sed -n '/^commands:/,/^$/p' | awk 'NF>1 {print $1}')

{
  header qvm
  echo '.SH NAME'
  echo 'qvm \- run QEMU virtual machines directly: no libvirt, no daemon'
  echo '.SH SYNOPSIS'
  echo '.B qvm'
  echo '[\fB\-\-agent\fR \fIID\fR] \fICOMMAND\fR [\fIOPTIONS\fR]'
  echo '.SH DESCRIPTION'
  echo '.nf'
  "$qvm" --help | esc
  echo '.fi'
  echo '.SH COMMANDS'
  for v in "${verbs[@]}"; do
    summary=$("$qvm" --help | awk -v v="$v" '$1 == v {sub(/^ *[^ ]+ +/, ""); print; exit}')
    printf '.TP\n.BR qvm\\-%s (1)\n%s\n' "$(echo "$v" | esc)" "$(echo "$summary" | esc)"
  done
  echo '.SH FILES'
  echo 'State in \fI$XDG_DATA_HOME/qvm\fR (as root \fI/var/lib/qvm\fR), or \fB$QVM_STATE_DIR\fR;'
  echo 'sockets in \fI$XDG_RUNTIME_DIR/qvm\fR (as root \fI/run/qvm\fR), or \fB$QVM_RUNTIME_DIR\fR.'
  echo '.SH SEE ALSO'
  echo '.BR qemu\-system\-x86_64 (1),'
  echo '.BR ssh (1)'
} >"$out/qvm.1"

for v in "${verbs[@]}"; do
  help=$("$qvm" "$v" --help)
  summary=$("$qvm" --help | awk -v v="$v" '$1 == v {sub(/^ *[^ ]+ +/, ""); print; exit}')
  {
    header "qvm-$v"
    echo '.SH NAME'
    printf 'qvm\\-%s \\- %s\n' "$(echo "$v" | esc)" "$(echo "$summary" | esc)"
    echo '.SH DESCRIPTION'
    echo '.nf'
    echo "$help" | esc
    echo '.fi'
    mapfile -t subs < <(echo "$help" | sed -n '/^subcommands:/,/^$/p' | awk 'NF>1 {print $1}')
    if [[ ${#subs[@]} -gt 0 ]]; then
      echo '.SH SUBCOMMANDS'
      for s in "${subs[@]}"; do
        printf '.SS "qvm %s %s"\n' "$(echo "$v" | esc)" "$(echo "$s" | esc)"
        echo '.nf'
        "$qvm" "$v" "$s" --help | esc
        echo '.fi'
      done
    fi
    echo '.SH SEE ALSO'
    echo '.BR qvm (1)'
  } >"$out/qvm-$v.1"
done
