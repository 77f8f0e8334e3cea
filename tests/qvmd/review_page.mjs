// qvmd's review page in Debian's chromium, driven by puppeteer-core
// (tests/qvmd/review_page.sh sets the environment): without a token, and
// with a bad one, the login form and no data; with the token, the VM, its
// change set's diff (a hostile file name as text, no element made of it),
// playbook and history; screenshots at 1280x800 and 390x844 (no sideways
// scrolling on the phone); Approve; Edit (a broken playbook refused, a good
// one voiding the approval); Approve again.
import fs from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";

const { BASE_URL, TOKEN, REVIEW_ID, ARTIFACTS, HOSTILE, CHROMIUM } = process.env;
for (const [k, v] of Object.entries({ BASE_URL, TOKEN, REVIEW_ID, ARTIFACTS, HOSTILE }))
  if (!v) throw new Error(`${k} is not set`);

function check(cond, what) {
  if (!cond) throw new Error(`review_page: ${what}`);
}

// Waits for the review's status after a decision or an edit, which qvmd
// answers after its own checks (an edit runs ansible's syntax check). In CI
// the page runs beside ASan builds of qvmd and ansible on two cores: a 30 s
// wait timed out once there (alone it takes under 2 s), so 90 s, and a
// timeout says what the page showed, to tell a slow answer from a lost one.
async function waitStatus(page, want) {
  try {
    await page.waitForFunction(
      (w) => document.getElementById("review-status")?.textContent === w,
      { timeout: 90000 },
      want,
    );
  } catch (e) {
    const seen = await page.evaluate(() => [
      document.getElementById("review-status")?.textContent,
      document.getElementById("action-result")?.textContent,
    ]);
    throw new Error(
      `review_page: status "${want}" not shown within 90 s: status "${seen[0]}", action line "${seen[1]}"`,
    );
  }
}

const browser = await puppeteer.launch({
  executablePath: CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    ...(process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : []),
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
  ],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  page.setDefaultTimeout(30000);
  const apiOk = []; // API calls answered 2xx
  const errors = []; // script errors and CSP violations
  page.on("response", (r) => {
    if (new URL(r.url()).pathname.startsWith("/api/") && r.status() < 300) apiOk.push(r.url());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    // the 401s of the bad token and the 422 of the refused edit are meant
    const meant = /^Failed to load resource: the server responded with a status of (401|422)\b/;
    if (m.type() === "error" && !meant.test(m.text())) errors.push(m.text());
  });

  // --- no token -------------------------------------------------------------------
  await page.goto(`${BASE_URL}/`, { waitUntil: "networkidle0" });
  await page.waitForSelector("#login:not([hidden])");
  check(await page.$eval("#app", (e) => e.hidden), "the app is shown without a token");
  check(apiOk.length === 0, `data requests succeeded without a token: ${apiOk}`);
  const direct = await page.evaluate(async () => (await fetch("/api/v1/vms")).status);
  check(direct === 401, `the API without a token answered ${direct}`);
  check((await page.$$("#vm-table tbody tr")).length === 0, "VM rows without a token");

  // --- a bad token ------------------------------------------------------------------
  await page.type("#token", "not-a-valid-token-0000000000");
  await page.click("#login-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("login-error").textContent.length > 0);
  check(await page.$eval("#app", (e) => e.hidden), "the app is shown with a bad token");
  check(!(await page.$eval("#login", (e) => e.hidden)), "the login form is gone with a bad token");
  check(apiOk.length === 0, `data requests succeeded with a bad token: ${apiOk}`);
  check(
    (await page.evaluate(() => sessionStorage.getItem("qvm-token"))) === null,
    "a bad token is kept",
  );

  // --- the token: the VM, its review ---------------------------------------------------
  await page.type("#token", TOKEN);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector('#vm-table tr[data-vm="v1"]');
  check(
    (await page.evaluate(() => sessionStorage.getItem("qvm-token"))) === TOKEN,
    "the token is not in sessionStorage",
  );
  check((await page.evaluate(() => localStorage.length)) === 0, "something in localStorage");
  // Live: a VM made now appears through the event stream, well before the
  // fallback poll (30 s) could show it.
  await page.waitForFunction(() => document.getElementById("status").textContent.includes("(live)"));
  const made = await fetch(`${BASE_URL}/api/v1/vms`, {
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "v2", kernel: process.env.DUMMY_KERNEL, memory: 64 }),
  });
  check(made.status === 201, `creating v2 through the API: ${made.status}`);
  await page.waitForSelector('#vm-table tr[data-vm="v2"]', { timeout: 10000 });
  await page.click('#vm-table tr[data-vm="v1"]');
  await page.waitForSelector(`#review-table tr[data-review="${REVIEW_ID}"]`);
  await page.click(`#review-table tr[data-review="${REVIEW_ID}"]`);
  await page.waitForSelector('#diff [data-section="files"] td');
  await page.waitForSelector('#playbook pre[data-path="playbook.yml"]');
  await page.waitForFunction(
    () => document.querySelectorAll("#review-history tbody tr").length > 0,
  );

  const cells = await page.$$eval("#diff td", (tds) => tds.map((td) => td.textContent));
  for (const want of ["/etc/conf", "/etc/gone", "/opt/app/bin", `/etc/${HOSTILE}`])
    check(cells.includes(want), `the diff does not show '${want}' as text: ${cells}`);
  check((await page.$$("img")).length === 0, "an <img> element was made from a file name");
  check((await page.evaluate(() => window.qvmPwned)) === undefined, "the file name's script ran");
  const playbook = await page.$eval('#playbook pre[data-path="playbook.yml"]', (e) => e.textContent);
  check(playbook.includes("/opt/app/bin"), `the playbook misses /opt/app/bin: ${playbook.slice(0, 400)}`);
  const actions = await page.$$eval("#review-history tbody tr td:nth-child(3)", (t) =>
    t.map((e) => e.textContent),
  );
  check(actions.includes("review-create"), `the history misses review-create: ${actions}`);
  check(
    (await page.$eval("#review-status", (e) => e.textContent)) === "pending",
    "the review is not shown as pending",
  );

  // --- screenshots ----------------------------------------------------------------------
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, "review-1280x800.png") });
  await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
  await new Promise((r) => setTimeout(r, 300)); // a layout at the new size
  // Nothing sticks out on a phone: no box whose content is wider than it,
  // but for those that scroll themselves (tables, the playbook).
  const wide = await page.evaluate(() =>
    [...document.querySelectorAll("body *")]
      .filter((e) => {
        if (e.closest("pre, .table-wrap, textarea, input, [hidden]")) return false;
        const cs = getComputedStyle(e);
        if (cs.display === "inline" || cs.display === "none" || cs.overflowX !== "visible")
          return false;
        return e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > window.innerWidth + 1;
      })
      .map((e) => `${e.tagName}#${e.id} ${e.textContent.slice(0, 40)}`),
  );
  check(wide.length === 0, `too wide for a phone: ${wide.join(" | ")}`);
  const [sw, iw] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(sw <= 391 && iw === 390, `the page scrolls sideways on a phone (${sw} px wide, ${iw} px view)`);
  await page.screenshot({ path: path.join(ARTIFACTS, "review-390x844.png") });
  await page.screenshot({ path: path.join(ARTIFACTS, "review-390x844-full.png"), fullPage: true });
  await page.setViewport({ width: 1280, height: 800 });

  // --- approve ---------------------------------------------------------------------------
  await page.type("#comment", "approved in the browser");
  await page.click("#approve");
  await waitStatus(page, "approved");
  check(await page.$eval("#approve", (e) => e.disabled), "Approve stays enabled after approval");
  await page.waitForFunction(() =>
    [...document.querySelectorAll("#review-history tbody tr td:nth-child(3)")].some(
      (td) => td.textContent === "review-approve",
    ),
  );

  // --- edit: a broken playbook is refused, a good one voids the approval ---------------
  await page.click("#edit");
  await page.waitForSelector("#editor:not([hidden])");
  const original = await page.$eval("#playbook-text", (e) => e.value);
  check(original.includes("/opt/app/bin"), "the editor does not hold playbook.yml");
  const setText = (t) =>
    page.$eval("#playbook-text", (e, v) => {
      e.value = v;
    }, t);
  await setText("- hosts: all\n  tasks:\n    - name: [unclosed\n");
  await page.click("#save");
  await page.waitForFunction(() => document.getElementById("action-result").className === "error");
  const refused = await page.$eval("#action-result", (e) => e.textContent);
  check(refused.startsWith("422"), `a broken playbook was not refused: ${refused}`);
  check(
    (await page.$eval("#review-status", (e) => e.textContent)) === "approved",
    "a refused edit changed the status",
  );
  await setText(`${original}- name: one more play from the browser\n  hosts: all\n  gather_facts: false\n  tasks:\n  - ansible.builtin.ping:\n`);
  await page.click("#save");
  await waitStatus(page, "pending");
  // the page loads the change set again: the edited playbook is shown
  await page.waitForFunction(() =>
    document
      .querySelector('#playbook pre[data-path="playbook.yml"]')
      ?.textContent.includes("one more play from the browser"),
  );
  await page.type("#comment", "approved in the browser");
  await page.click("#approve");
  await waitStatus(page, "approved");

  // --- log out -----------------------------------------------------------------------------
  await page.click("#logout");
  await page.waitForSelector("#login:not([hidden])");
  check(
    (await page.evaluate(() => sessionStorage.getItem("qvm-token"))) === null,
    "the token outlives log out",
  );
  check(errors.length === 0, `script errors or CSP violations: ${errors.join(" | ")}`);
  console.log("review_page: ok");
} finally {
  await browser.close();
}
