#!/usr/bin/env bash
# qvmd's review page (web/, served from the source tree with --web-dir):
# its files come without a token and with strict headers (CSP default-src
# 'self', nosniff, X-Frame-Options DENY, no referrer); nothing outside the
# dir is served (.., dot files, a symlink out, unknown extensions); then
# Debian's chromium, driven by puppeteer-core (tests/node, npm ci), against
# a real qvmd on TCP with a token (tests/qvmd/review_page.mjs): the login
# form and no data without a token or with a bad one, the change set's diff
# (a file name '<img src=x onerror=...>' stays text) and playbook, Approve,
# Edit (a broken playbook refused, a good one voiding the approval), Approve
# again, whose result `qvm review show --json` reports with the edit; screenshots at 1280x800 and
# 390x844 in the build dir (test-artifacts/review-page). Without chromium,
# node or npm: skipped, which under CI=true fails.
. "$QVM_SOURCE_DIR/tests/qvmd/lib.sh"
unset QVM_AGENT
command -v node >/dev/null || skip "needs node"
command -v npm >/dev/null || skip "needs npm"
chromium=${QVM_TEST_CHROMIUM:-/usr/bin/chromium}
[[ -x $chromium ]] || skip "needs chromium (scripts/deps.sh test)"
command -v qemu-storage-daemon >/dev/null || skip "needs qemu-storage-daemon (scripts/deps.sh)"
command -v ansible-playbook >/dev/null || skip "needs ansible-playbook (scripts/deps.sh test)"

cp "$src/tests/node/package.json" "$src/tests/node/package-lock.json" \
  "$src/tests/qvmd/review_page.mjs" "$tmp/"
(cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >"$tmp/npm.log" 2>&1) || {
  cat "$tmp/npm.log" >&2
  fail "npm ci of tests/node"
}

sock=$tmp/qvmd.sock
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=page-full-token-0123456789abcdef
printf '%s full\n' "$token" >"$tmp/tokens"
chmod 600 "$tmp/tokens"
start_qvmd "$tmp/qvmd.log" --socket "$sock" --listen "127.0.0.1:$port" --tokens "$tmp/tokens" \
  --web-dir "$src/web"
base=http://127.0.0.1:$port

# --- the files ----------------------------------------------------------------------------
for p in / /ui/ /ui/app.js /ui/style.css; do
  url_base=$base req GET "$p"
  expect_status 200 "GET $p without a token"
  h=$(tr -d '\r' <"$tmp/hdrs")
  expect_match "$h" "^Content-Security-Policy: default-src 'self'" "CSP on $p"
  expect_match "$h" "^X-Content-Type-Options: nosniff" "nosniff on $p"
  expect_match "$h" "^X-Frame-Options: DENY" "X-Frame-Options on $p"
  expect_match "$h" "^Referrer-Policy: no-referrer" "Referrer-Policy on $p"
done
url_base=$base req GET /ui/app.js
expect_eq "$ctype" text/javascript "app.js's type"
cmp -s "$tmp/resp" "$src/web/app.js" || fail "app.js is not served byte for byte"
url_base=$base req GET /
expect_eq "$ctype" text/html "index.html's type"
grep -q '<meta name="viewport"' "$tmp/resp" || fail "no viewport meta"
! grep -qiE '<script>|<script [^>]*>[^<]' "$tmp/resp" || fail "an inline script in index.html"
url_base=$base req POST /ui/app.js
expect_status 405 "POST of a file"
url_base=$base req GET /api/v1/vms
expect_status 401 "the API on TCP without a token"
# a second qvmd on a copy of the dir with symlinks in it
cp -r "$src/web" "$tmp/web"
ln -s /etc/passwd "$tmp/web/passwd.txt"
ln -s /etc "$tmp/web/etc"
echo secret >"$tmp/web/.hidden.txt"
echo secret >"$tmp/outside.txt"
echo data >"$tmp/web/data.bin"
port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_qvmd "$tmp/qvmd2.log" --no-socket --listen "127.0.0.1:$port2" --tokens "$tmp/tokens" \
  --web-dir "$tmp/web"
for p in /ui/passwd.txt /ui/etc/hostname /ui/.hidden.txt /ui/../outside.txt /ui/%2e%2e/outside.txt \
  /ui/data.bin /ui//app.js /ui/./app.js /ui/nosuch.js; do
  url_base=http://127.0.0.1:$port2 req GET "$p"
  expect_status 404 "GET $p"
  ! grep -q 'secret\|root:' "$tmp/resp" || fail "GET $p served what it must not"
done
url_base=http://127.0.0.1:$port2 req GET /ui/app.js
expect_status 200 "the copy's app.js"
"$qvmd_bin" --no-socket --web-dir "$tmp/nosuch" 2>"$tmp/err" && fail "a --web-dir that does not exist"
expect_match "$(cat "$tmp/err")" "--web-dir '.*nosuch' is not a directory" "the bad --web-dir"

# --- a change set (offline, as tests/review/review_vm.sh) -------------------------------------
hostile='<img src=x onerror=window.qvmPwned=1>'
# v1: a plain vm, changed offline after an internal snapshot "base"
offline_change v1 "$hostile"
req POST /api/v1/reviews '{"vm": "v1", "from": "base"}'
expect_status 201 "create the review"
id=$(jget "$body" 'o["id"]')

# --- the browser ----------------------------------------------------------------------------
artifacts=${QVM_BINARY_DIR:-$tmp}/test-artifacts/review-page
rm -rf "$artifacts"
printf 'not a kernel' >"$tmp/vmlinuz-dummy"
BASE_URL=$base TOKEN=$token REVIEW_ID=$id DUMMY_KERNEL=$tmp/vmlinuz-dummy ARTIFACTS=$artifacts HOSTILE=$hostile CHROMIUM=$chromium \
  node "$tmp/review_page.mjs" || fail "the browser test (see above)"
out=$(qvm review show "$id" --json) || fail "review show"
expect_eq "$(jget "$out" 'o["status"], o["approval"]["comment"]')" \
  "('approved', 'approved in the browser')" "the page's Approve"
expect_eq "$(jget "$out" '[h["action"] for h in o["history"]]')" \
  "['create', 'approve', 'edit', 'approve']" "the page's steps in the history"
grep -q 'one more play from the browser' "$QVM_STATE_DIR/reviews/$id/playbook/playbook.yml" ||
  fail "the page's edit is not in playbook.yml"
python3 - "$artifacts" <<'EOF' || fail "the screenshots"
import os, struct, sys
d = sys.argv[1]
for name, w, h in (("review-1280x800.png", 1280, 800), ("review-390x844.png", 390, 844)):
    p = os.path.join(d, name)
    data = open(p, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", name
    pw, ph = struct.unpack(">II", data[16:24])
    assert (pw, ph) == (w, h), (name, pw, ph)
    assert len(data) > 20000, (name, len(data))  # a page, not a blank
EOF
log "ok (screenshots in $artifacts)"
