#!/usr/bin/env bash
# Man pages and shell completion (issue 18): every verb, subcommand and flag
# that --help prints is in the generated man pages (as man renders them)
# and in docs/cli.md (the drift test); bash's completion, driven through
# its own completion function, offers verbs, subcommands, flags and the
# names of vms and snapshots; zsh and fish scripts parse where the shell is
# installed.
set -uo pipefail
src=$QVM_SOURCE_DIR bin=$QVM_BINARY_DIR
qvm=$bin/qvm man_dir=$bin/share/man/man1 comp_dir=$bin/share/completions
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
tmp=$(mktemp -d /tmp/qvm-man.XXXXXX) # mktemp's template: a private dir
trap 'rm -rf "$tmp"' EXIT

# flags of one help text: --name tokens at a word start
flags() { grep -oE '(^|[][ (|,])--[a-z][a-z0-9-]*[a-z0-9]' | sed 's/^[^-]*//' | sort -u; }

[[ -s $man_dir/qvm.1 ]] || { echo "FAIL: no generated man pages in $man_dir" >&2; exit 1; }
mapfile -t verbs < <("$qvm" --help | sed -n '/^commands:/,/^$/p' | awk 'NF>1 {print $1}')
[[ ${#verbs[@]} -ge 20 ]] || fail "qvm --help lists only ${#verbs[@]} verbs"
grep -q '__complete' <("$qvm" --help) && fail "qvm --help shows the hidden __complete"
render() { MANWIDTH=200 man -l "$1" 2>/dev/null | col -b; }
render "$man_dir/qvm.1" >"$tmp/qvm.txt"
checked=0
for v in "${verbs[@]}"; do
  page=$man_dir/qvm-$v.1
  [[ -s $page ]] || { fail "no man page for verb '$v'"; continue; }
  grep -qE "qvm-$v\(1\)" "$tmp/qvm.txt" || fail "qvm(1) does not list qvm-$v(1)"
  render "$page" >"$tmp/page.txt"
  grep -qE "^#+ .*qvm $v\b|^## qvm $v\b|^### qvm $v\b" "$src/docs/cli.md" || fail "docs/cli.md has no section for 'qvm $v'"
  subs=$("$qvm" "$v" --help | sed -n '/^subcommands:/,/^$/p' | awk 'NF>1 {print $1}')
  for s in "" $subs; do
    help=$("$qvm" "$v" $s --help) || fail "qvm $v $s --help failed"
    [[ -z $s ]] || grep -qF "qvm $v $s" "$tmp/page.txt" || fail "man qvm-$v has no 'qvm $v $s'"
    for f in $(echo "$help" | flags); do
      checked=$((checked + 1))
      grep -qF -- "$f" "$tmp/page.txt" || fail "man qvm-$v lacks $f (qvm $v $s --help has it)"
      grep -qF -- "$f" "$src/docs/cli.md" || fail "docs/cli.md lacks $f (qvm $v $s --help has it)"
    done
  done
done
[[ $checked -ge 100 ]] || fail "only $checked flags checked: the flag scan is broken"
echo "man pages and docs/cli.md: ${#verbs[@]} verbs, $checked flags checked"

# qvmd(8): every flag qvmd --help prints
page8=$bin/share/man/man8/qvmd.8
if [[ -s $page8 ]]; then
  render "$page8" >"$tmp/qvmd.txt"
  grep -q '^QVMD(8)' "$tmp/qvmd.txt" || fail "qvmd.8 is not a section 8 page"
  n=0
  for f in $("$bin/qvmd" --help | flags); do
    n=$((n + 1))
    grep -qF -- "$f" "$tmp/qvmd.txt" || fail "man qvmd lacks $f (qvmd --help has it)"
  done
  [[ $n -ge 8 ]] || fail "only $n qvmd flags found: the flag scan is broken"
  grep -qE 'qvmd\(8\)' "$tmp/qvm.txt" || fail "qvm(1) does not point to qvmd(8)"
  echo "qvmd(8): $n flags checked"
else
  fail "no generated qvmd.8 in $bin/share/man/man8"
fi

# qvm.yaml(5): every key the loader accepts (vm/config.c's VM_KEYS, the list
# its errors name), as a word of the rendered page
page5=$bin/share/man/man5/qvm.yaml.5
if [[ -s $page5 ]]; then
  render "$page5" >"$tmp/yaml.txt"
  grep -q '^QVM.YAML(5)' "$tmp/yaml.txt" || fail "qvm.yaml.5 is not a section 5 page"
  keys=$(sed -n '/^static const char VM_KEYS\[\]/,/;/p' "$src/vm/config.c" | grep -o '"[^"]*"' |
    tr -d '"' | tr ',' '\n' | tr -d ' ' | grep .)
  n=0
  for k in $keys vms; do
    n=$((n + 1))
    grep -qwF -- "$k" "$tmp/yaml.txt" || fail "man qvm.yaml lacks the key '$k' (vm/config.c accepts it)"
  done
  [[ $n -ge 15 ]] || fail "only $n qvm.yaml keys found: the key scan is broken"
  grep -qE 'qvm\.yaml\(5\)' "$tmp/qvm.txt" || fail "qvm(1) does not point to qvm.yaml(5)"
  echo "qvm.yaml(5): $n keys checked"
else
  fail "no generated qvm.yaml.5 in $bin/share/man/man5"
fi

# bash: the generated script, driven as bash's completion would drive it.
export QVM_STATE_DIR=$tmp/state QVM_RUNTIME_DIR=$tmp/run
mkdir -p "$tmp/bin" && ln -s "$qvm" "$tmp/bin/qvm"
export PATH=$tmp/bin:$PATH
: >"$tmp/kernel"
"$qvm" create comp-vm --kernel "$tmp/kernel" --disk 64M --memory 128M --net none >/dev/null || fail "qvm create (for names)"
"$qvm" create comp-other --kernel "$tmp/kernel" --memory 128M --net none >/dev/null || fail "qvm create (for names)"
cmp -s "$comp_dir/qvm" <("$qvm" completion bash) || fail "installed bash script differs from qvm completion bash"
complete_bash() { # the words of a command line; the last is the word being typed
  bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _qvm; printf "%s\n" "${COMPREPLY[@]}"' \
    _ "$comp_dir/qvm" "$@"
}
expect_has() { # WHAT OUTPUT WORD...
  local what=$1 out=$2
  shift 2
  for w in "$@"; do grep -qxF -- "$w" <<<"$out" || fail "$what: '$w' not offered (got: $(echo $out))"; done
}
expect_has "verbs" "$(complete_bash qvm sn)" snapshot
[[ $(complete_bash qvm sn) == snapshot ]] || fail "'qvm sn' offers more than snapshot: $(complete_bash qvm sn)"
expect_has "subcommands" "$(complete_bash qvm snapshot '')" create ls restore rm
expect_has "flags of up" "$(complete_bash qvm up --ke)" --keep-on-failure
expect_has "flags of a subcommand" "$(complete_bash qvm snapshot create --)" --disk-only --json
expect_has "vm names" "$(complete_bash qvm start comp)" comp-vm comp-other
expect_has "vm names with a prefix" "$(complete_bash qvm exec comp-v)" comp-vm
[[ -z $(complete_bash qvm exec comp-v | grep -x comp-other) ]] || fail "a name without the prefix offered"
expect_has "agent, then verbs" "$(complete_bash qvm --agent a1 ss)" ssh ssh-config
"$qvm" snapshot create comp-vm base >/dev/null 2>&1 || fail "qvm snapshot create (stopped vm)"
expect_has "snapshot names" "$(complete_bash qvm snapshot restore comp-vm '')" base
expect_has "snapshot after --to" "$(complete_bash qvm rollback comp-vm --to b)" base
[[ -z $(complete_bash qvm nosuchverb '') ]] || fail "an unknown verb offers something"
# names are data: a vm is never offered for a word that is not its prefix
out=$("$qvm" __complete '$(touch' "$tmp/pwned)" '')
[[ ! -e $tmp/pwned ]] || fail "__complete ran a word"
echo "bash completion: verbs, subcommands, flags, vm and snapshot names"

# zsh and fish: the scripts parse (when the shell is here).
if command -v zsh >/dev/null; then zsh -n "$comp_dir/_qvm" || fail "zsh script does not parse"; fi
if command -v fish >/dev/null; then fish -n "$comp_dir/qvm.fish" || fail "fish script does not parse"; fi
bash -n "$comp_dir/qvm" || fail "bash script does not parse"

"$qvm" completion tcsh >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "qvm completion tcsh: not a usage error"
"$qvm" rm --force comp-vm >/dev/null 2>&1
"$qvm" rm --force comp-other >/dev/null 2>&1
[[ $fails -eq 0 ]] || { echo "$fails failure(s)" >&2; exit 1; }
echo "ok"
