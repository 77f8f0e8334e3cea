// SPDX-License-Identifier: MIT
// qvm's review page: VMs and sandboxes, their change sets (diff, playbook,
// history) and the gate (approve, reject, edit). Plain JavaScript, no
// framework. Every name on this page can come from a hostile guest (file
// names, package names, users): text goes in with textContent only, never
// as HTML.
"use strict";

const TOKEN_KEY = "qvm-token";
// The list follows qvmd's event stream (/api/v1/events); a slow poll is
// only the fallback for when that stream is down.
const POLL_MS = 30000;
const EVENTS_RETRY_MS = 3000;
const EVENTS_BUF_MAX = 1 << 20;
const $ = (id) => document.getElementById(id);

let pollTimer = null;
let events = null; // the event stream's AbortController, while one is wanted
let live = false; // the event stream is open
let refreshTimer = null;
let currentVm = null;
let currentReview = null;

// --- the API --------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && problem.detail) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

async function api(method, path, body, accept) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    showLogin("");
    throw new ApiError(401, { detail: "no token" });
  }
  const headers = { Authorization: `Bearer ${token}` };
  if (accept) headers.Accept = accept;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const type = resp.headers.get("Content-Type") || "";
  let data = null;
  if (type.startsWith("application/json") || type.startsWith("application/problem+json")) {
    data = await resp.json().catch(() => null);
  } else {
    data = await resp.text();
  }
  if (resp.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("The token is not valid (any more): log in again.");
    throw new ApiError(401, data);
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

// --- small DOM helpers (text only) ------------------------------------------------

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function cellText(v) {
  if (v === null || v === undefined) return "";
  if (Array.isArray(v)) return v.map(cellText).join(", ");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// A table of rows (objects) with the given columns [[key, title], ...].
function table(rows, columns) {
  const wrap = el("div", null, "table-wrap");
  const t = el("table", null, "list");
  const head = el("tr");
  for (const [, title] of columns) head.appendChild(el("th", title));
  t.appendChild(el("thead")).appendChild(head);
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr");
    for (const [key] of columns) tr.appendChild(el("td", cellText(typeof key === "function" ? key(r) : r[key])));
    body.appendChild(tr);
  }
  t.appendChild(body);
  wrap.appendChild(t);
  return wrap;
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(node, e) {
  node.textContent = e instanceof ApiError ? `${e.status}: ${e.message}` : String(e);
  node.className = "error";
}

// --- login ------------------------------------------------------------------------

function showLogin(message) {
  stopPolling();
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  currentVm = currentReview = null;
  setStatus("");
}

async function tryLogin() {
  // One request decides: the list of VMs. Nothing is shown before it
  // succeeded.
  const vms = await api("GET", "/api/v1/vms");
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  await renderVms(vms);
  startPolling();
  route();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const token = $("token").value.trim();
  $("token").value = "";
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await tryLogin();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showError($("login-error"), e);
  }
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = "";
  showLogin("");
});

// --- VMs and sandboxes ------------------------------------------------------------

function refreshVms() {
  api("GET", "/api/v1/vms")
    .then(renderVms)
    .catch((e) => {
      if (!(e instanceof ApiError && e.status === 401)) setStatus(`update failed: ${e.message}`);
    });
}

// Several events in a burst make one refresh.
function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refreshVms();
  }, 250);
}

// The event stream through fetch (EventSource cannot send the token):
// every frame that names an event (a VM's state, created, removed) makes
// the list refresh. Only the frame boundaries are looked at; the data,
// which can hold guest-derived text, is never shown.
async function followEvents() {
  const ctl = new AbortController();
  events = ctl;
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return;
  try {
    const resp = await fetch("/api/v1/events", {
      headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
      cache: "no-store",
      credentials: "omit",
      signal: ctl.signal,
    });
    if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
    live = true;
    scheduleRefresh();
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, end);
        buf = buf.slice(end + 2);
        if (/^event: /m.test(frame)) scheduleRefresh();
      }
      if (buf.length > EVENTS_BUF_MAX) buf = ""; // no frame is that long
    }
  } catch (e) {
    // aborted (log out), or the stream failed: retried below
  }
  live = false;
  if (events === ctl && !ctl.signal.aborted)
    setTimeout(() => {
      if (events === ctl) followEvents();
    }, EVENTS_RETRY_MS);
}

function startPolling() {
  stopPolling();
  followEvents();
  pollTimer = setInterval(refreshVms, POLL_MS);
}

function stopPolling() {
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = null;
  if (events) events.abort();
  events = null;
  live = false;
}

async function renderVms(vms) {
  let reviews = [];
  try {
    reviews = await api("GET", "/api/v1/reviews");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) throw e;
  }
  const count = new Map();
  for (const r of reviews) count.set(r.vm, (count.get(r.vm) || 0) + 1);
  const body = $("vm-table").querySelector("tbody");
  clear(body);
  for (const vm of vms) {
    const tr = el("tr", null, "clickable");
    tr.dataset.vm = vm.name;
    if (vm.name === currentVm) tr.classList.add("selected");
    tr.appendChild(el("td", vm.name));
    tr.appendChild(el("td", vm.state, `state-${String(vm.state).replace(/[^a-z-]/g, "")}`));
    tr.appendChild(el("td", vm.sandbox ? `sandbox${vm.agent ? ` (${vm.agent})` : ""}` : "vm"));
    tr.appendChild(el("td", count.get(vm.name) || 0));
    tr.addEventListener("click", () => {
      location.hash = `#vm=${encodeURIComponent(vm.name)}`;
    });
    body.appendChild(tr);
  }
  setStatus(
    `${vms.length} VMs, updated ${new Date().toLocaleTimeString()}${live ? " (live)" : ""}`,
  );
}

async function showVm(name) {
  currentVm = name;
  for (const tr of $("vm-table").querySelectorAll("tbody tr"))
    tr.classList.toggle("selected", tr.dataset.vm === name);
  $("vm-pane").hidden = false;
  $("vm-name").textContent = name;
  const body = $("review-table").querySelector("tbody");
  clear(body);
  try {
    const reviews = await api("GET", `/api/v1/reviews?vm=${encodeURIComponent(name)}`);
    $("no-reviews").hidden = reviews.length > 0;
    for (const r of reviews.slice().reverse()) {
      const tr = el("tr", null, "clickable");
      tr.dataset.review = r.id;
      tr.appendChild(el("td", r.id));
      tr.appendChild(el("td", r.status, `status-${String(r.status).replace(/[^a-z-]/g, "")}`));
      tr.appendChild(el("td", actorText(r.author)));
      tr.appendChild(el("td", r.created));
      tr.addEventListener("click", () => {
        location.hash = `#vm=${encodeURIComponent(name)}&review=${encodeURIComponent(r.id)}`;
      });
      body.appendChild(tr);
    }
  } catch (e) {
    $("no-reviews").hidden = false;
    showError($("no-reviews"), e);
  }
  await showHistory(name);
}

function actorText(a) {
  if (!a) return "";
  const who = a.user || (a.uid !== undefined ? `uid ${a.uid}` : "");
  return a.agent ? `${who}/${a.agent}` : who;
}

// The VM's audit records (newest first) into a table's body: the commands
// run in it, the snapshots, the review steps, with their actors.
async function showHistory(name, tableId = "audit-table") {
  const body = $(tableId).querySelector("tbody");
  clear(body);
  try {
    const recs = await api("GET", `/api/v1/audit?vm=${encodeURIComponent(name)}`);
    for (const r of recs.slice(-100).reverse()) {
      const tr = el("tr");
      tr.appendChild(el("td", r.time || r.ts || ""));
      tr.appendChild(el("td", actorText(r.actor)));
      tr.appendChild(el("td", r.action));
      tr.appendChild(el("td", cellText(r.details)));
      body.appendChild(tr);
    }
  } catch (e) {
    const tr = el("tr");
    const td = el("td");
    td.colSpan = 4;
    showError(td, e);
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

// --- one change set ----------------------------------------------------------------

async function showReview(id) {
  currentReview = id;
  $("review-pane").hidden = false;
  $("review-id").textContent = id;
  $("editor").hidden = true;
  $("action-result").textContent = "";
  for (const tr of $("review-table").querySelectorAll("tbody tr"))
    tr.classList.toggle("selected", tr.dataset.review === id);
  const meta = $("review-meta");
  clear(meta);
  clear($("diff"));
  clear($("playbook"));
  clear($("review-history").querySelector("tbody"));
  $("review-vm").textContent = "";
  let m;
  try {
    m = await api("GET", `/api/v1/reviews/${encodeURIComponent(id)}`);
  } catch (e) {
    const dd = el("dd");
    showError(dd, e);
    meta.appendChild(el("dt", "error"));
    meta.appendChild(dd);
    return;
  }
  renderMeta(m);
  $("review-vm").textContent = m.vm;
  showHistory(m.vm, "review-history");
  const [diff, playbook] = await Promise.allSettled([
    api("GET", `/api/v1/reviews/${encodeURIComponent(id)}/diff`),
    api("GET", `/api/v1/reviews/${encodeURIComponent(id)}/playbook`),
  ]);
  if (diff.status === "fulfilled") renderDiff(diff.value);
  else showError($("diff").appendChild(el("p")), diff.reason);
  if (playbook.status === "fulfilled") renderPlaybook(playbook.value);
  else showError($("playbook").appendChild(el("p")), playbook.reason);
}

function renderMeta(m) {
  const meta = $("review-meta");
  clear(meta);
  const rows = [
    ["status", m.status],
    ["vm", m.vm],
    ["author", actorText(m.author)],
    ["created", m.created],
    ["base", m.base ? cellText(m.base.snapshot || m.base.image || m.base) : ""],
    ["changes", m.changes],
  ];
  if (m.approval) rows.push(["approved by", `${actorText(m.approval.actor)} ${m.approval.comment || ""}`]);
  for (const [k, v] of rows) {
    meta.appendChild(el("dt", k));
    const dd = el("dd", cellText(v));
    if (k === "status") {
      dd.id = "review-status";
      dd.className = `status-${String(v).replace(/[^a-z-]/g, "")}`;
    }
    meta.appendChild(dd);
  }
  const final = m.status === "rejected" || m.status === "applied";
  $("approve").disabled = final || m.status === "approved";
  $("reject").disabled = final;
  $("edit").disabled = m.status === "rejected";
}

function renderDiff(d) {
  const box = $("diff");
  clear(box);
  const sections = [
    ["Files", d.changes, [["kind", "Change"], ["path", "Path"], ["changed", "What"]]],
    ["Packages", d.packages, [["kind", "Change"], ["name", "Name"], ["arch", "Arch"], ["fromVersion", "From"], ["toVersion", "To"]]],
    ["Units", d.units, [["name", "Unit"], ["change", "Change"]]],
    ["Users", d.users, [["kind", "Change"], ["name", "Name"], ["uid", "uid"], ["gid", "gid"], ["home", "Home"], ["shell", "Shell"], ["groups", "Groups"]]],
    ["Groups", d.groups, [["kind", "Change"], ["name", "Name"], ["gid", "gid"], ["members", "Members"]]],
  ];
  for (const [title, rows, cols] of sections) {
    const list = Array.isArray(rows) ? rows : [];
    const h = el("h4", `${title} (${list.length})`);
    box.appendChild(h);
    if (list.length) {
      const t = table(list, cols);
      t.dataset.section = title.toLowerCase();
      box.appendChild(t);
    }
  }
}

function renderPlaybook(p) {
  const box = $("playbook");
  clear(box);
  // playbook.yml first, then the files it copies
  const files = (p.files || []).slice().sort((a, b) => (b.path === "playbook.yml") - (a.path === "playbook.yml"));
  for (const f of files) {
    box.appendChild(el("h4", `${f.path}${f.truncated ? " (truncated)" : ""}`));
    const pre = el("pre", f.text !== undefined ? f.text : "");
    pre.dataset.path = f.path;
    box.appendChild(pre);
    if (f.path === "playbook.yml") $("playbook-text").value = f.text || "";
  }
  if (p.truncated) box.appendChild(el("p", "(more files than shown)"));
}

// --- the gate -----------------------------------------------------------------------

async function decide(verb) {
  const out = $("action-result");
  out.className = "";
  out.textContent = `${verb}…`;
  const comment = $("comment").value;
  try {
    const m = await api("POST", `/api/v1/reviews/${encodeURIComponent(currentReview)}/${verb}`,
      comment ? { comment } : {});
    renderMeta(m);
    out.textContent = `${verb}: now ${m.status}`;
    $("comment").value = "";
    if (currentVm) showHistory(currentVm);
    showHistory(m.vm, "review-history");
  } catch (e) {
    showError(out, e);
  }
}

$("approve").addEventListener("click", () => decide("approve"));
$("reject").addEventListener("click", () => decide("reject"));
$("edit").addEventListener("click", () => {
  $("editor").hidden = false;
  $("playbook-text").focus();
});
$("cancel").addEventListener("click", () => {
  $("editor").hidden = true;
});
$("save").addEventListener("click", async () => {
  const out = $("action-result");
  out.className = "";
  out.textContent = "checking the playbook…";
  try {
    const r = await api("PUT", `/api/v1/reviews/${encodeURIComponent(currentReview)}/playbook`,
      { text: $("playbook-text").value });
    out.textContent = r.changed ? "saved: the change set is pending approval again" : "no change";
    await showReview(currentReview);
  } catch (e) {
    showError(out, e);
  }
});

// --- navigation (#vm=NAME&review=ID) -------------------------------------------------

function route() {
  if ($("app").hidden) return;
  const params = new URLSearchParams(location.hash.slice(1));
  const vm = params.get("vm");
  const review = params.get("review");
  if (vm && vm !== currentVm) showVm(vm);
  if (!vm) {
    currentVm = null;
    $("vm-pane").hidden = true;
  }
  if (review && review !== currentReview) showReview(review);
  if (!review) {
    currentReview = null;
    $("review-pane").hidden = true;
  }
}

window.addEventListener("hashchange", route);

if (sessionStorage.getItem(TOKEN_KEY)) {
  tryLogin().catch((e) => {
    if (!(e instanceof ApiError && e.status === 401)) showLogin(String(e.message || e));
  });
} else {
  showLogin("");
}
