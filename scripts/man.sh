#!/usr/bin/env bash
# scripts/man.sh QVM OUTDIR: writes the man pages qvm.1 and qvm-VERB.1 (one
# per verb, with its subcommands) from the built qvm's own --help texts, so
# that a page cannot say something --help does not (the build runs this;
# tests/install/test_man_completion.sh checks every verb and flag is there).
#
# scripts/man.sh --qvmd QVMD OUTDIR: qvmd.8 from `qvmd --help` (every flag
# there is in the page; the same test checks it).
# scripts/man.sh --yaml QVM CLI_MD OUTDIR: qvm.yaml.5 from the "qvm.yaml"
# section of docs/cli.md (the reference `qvm up --help` points to; the test
# checks that every key vm/config.c accepts is in the page).
set -euo pipefail
mode=man1
if [[ ${1:-} == --qvmd || ${1:-} == --yaml ]]; then
  mode=${1#--}
  shift
fi
qvm=$1
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)

# roff-safe text: backslashes, leading dots/quotes, and '-' as \- so that
# flags render as the ASCII hyphen-minus a reader copies.
esc() { sed -e 's/\\/\\e/g' -e 's/^\([.'"'"']\)/\\\&\1/' -e 's/-/\\-/g'; }

header() { # NAME [SECTION]
  printf '.TH %s %s "%s" "qvm %s" "qvm manual"\n' "$(echo "$1" | tr a-z A-Z)" "${2:-1}" "$date" \
    "$version"
}

if [[ $mode == qvmd ]]; then
  out=$2
  mkdir -p "$out"
  version=$("$qvm" --version | awk '{print $NF}')
  help=$("$qvm" --help)
  {
    header qvmd 8
    echo '.SH NAME'
    echo 'qvmd \- the qvm REST API daemon'
    echo '.SH SYNOPSIS'
    echo '.B qvmd'
    echo '[\fIOPTIONS\fR]'
    echo '.SH DESCRIPTION'
    echo '.nf'
    echo "$help" | esc
    echo '.fi'
    echo '.PP'
    echo 'The API, its callers, scopes and limits are described in docs/qvmd.md and'
    echo 'docs/SECURITY.md of the source tree. The installed units qvmd.service and'
    echo 'qvmd.socket run it under systemd (socket activation).'
    echo '.SH FILES'
    echo 'As root: the socket \fI/run/qvm/qvmd.sock\fR; VMs and images in \fI/var/lib/qvm\fR.'
    echo '.SH SEE ALSO'
    echo '.BR qvm (1),'
    echo '.BR qvm.yaml (5),'
    echo '.BR systemd.socket (5)'
  } >"$out/qvmd.8"
  exit 0
fi

if [[ $mode == yaml ]]; then
  cli_md=$2 out=$3
  mkdir -p "$out"
  version=$("$qvm" --version | awk '{print $2}')
  # The section: from its heading to the next heading of any level.
  section=$(awk '/^#+ qvm\.yaml$/ {on = 1; next} on && /^#/ {exit} on' "$cli_md")
  [[ -n $section ]] || { echo "man.sh: no 'qvm.yaml' section in $cli_md" >&2; exit 1; }
  # Markdown to roff: fenced blocks verbatim, a blank line a paragraph,
  # `code` bold, [text](link) its text.
  md_roff() {
    # a paragraph is joined into one line, so that a `code` span may wrap
    esc | awk '
      function flush() { if (para != "") print para; para = "" }
      /^```/ { flush(); if (pre) { print ".fi"; pre = 0 } else { print ".PP"; print ".nf"; pre = 1 } next }
      pre { print; next }
      /^[ \t]*$/ { flush(); print ".PP"; next }
      { para = para == "" ? $0 : para " " $0 }
      END { flush() }' |
      sed -E -e '/^\.(nf|fi|PP)$/!s/`([^`]*)`/\\fB\1\\fR/g' -e 's/\[([^]]*)\]\([^)]*\)/\1/g'
  }
  {
    header qvm.yaml 5
    echo '.SH NAME'
    echo 'qvm.yaml \- VMs for qvm up \-f and qvm down \-f'
    echo '.SH SYNOPSIS'
    echo '.B qvm up'
    echo '[\fB\-f\fR \fIFILE\fR] [\fINAME\fR...]'
    echo '.SH DESCRIPTION'
    echo 'A YAML file with one mapping \fBvms\fR: one entry per VM, whose keys are'
    echo 'the options of \fBqvm create\fR with \(aq_\(aq for \(aq\-\(aq.'
    echo 'Plain \fBqvm up\fR reads \fI./qvm.yaml\fR.'
    echo "$section" | md_roff
    echo '.SH SEE ALSO'
    echo '.BR qvm\-up (1),'
    echo '.BR qvm\-down (1),'
    echo '.BR qvm\-create (1)'
  } >"$out/qvm.yaml.5"
  exit 0
fi

out=$2
mkdir -p "$out"
version=$("$qvm" --version | awk '{print $2}')

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
  echo '.BR qvm.yaml (5),'
  echo '.BR qvmd (8),'
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
