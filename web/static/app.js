// graft's operator view: a hash-routed page over the control API (/api/)
// and its event stream (/events). Everything from the core is put in the
// page as text (textContent), never as HTML: actor names are anyone's.
"use strict";

const state = { view: null, seq: 0, page: { offset: 0, limit: 100, q: "", sort: "name", desc: false }, stream: null, focus: "" };

// The token comes once in the #token= fragment the core logs, and is kept
// for this tab only.
(function takeToken() {
  const m = location.hash.match(/[#&]token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("graft-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + "#/actors");
  }
})();
const token = () => sessionStorage.getItem("graft-token") || "";

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) e.append(k instanceof Node ? k : document.createTextNode(String(k ?? "")));
  return e;
}

function notice(text) {
  const n = document.getElementById("notice");
  n.textContent = text;
  n.className = "show";
  clearTimeout(notice.t);
  notice.t = setTimeout(() => (n.className = ""), 5000);
}

async function api(method, path, body) {
  const r = await fetch("/api" + path, {
    method,
    headers: { "Content-Type": "application/json", "X-Graft-Token": token() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || r.status + " " + r.statusText);
  return data;
}

// seg is an actor's or behaviour's name as one path segment. A name "."
// or ".." would be taken out of the URL by the browser, encoded or not:
// it goes as "%2E;" or "%2E%2E;", which the web view undoes (dotNames).
const seg = (s) => (s === "." || s === ".." ? s.replace(/\./g, "%2E") + ";" : encodeURIComponent(s).replace(/\./g, "%2E"));

// The event stream, reopened when the page, filter or sort changes.
function openStream() {
  if (state.stream) state.stream.close();
  const p = state.page;
  const q = new URLSearchParams({ offset: p.offset, limit: p.limit, q: p.q, sort: p.sort, desc: p.desc ? "1" : "0" });
  if (token()) q.set("token", token());
  const r = route();
  state.focus = r.page === "actor" ? r.arg : "";
  if (state.focus) q.set("actor", state.focus);
  const s = new EventSource("/events?" + q);
  s.addEventListener("view", (ev) => {
    state.view = JSON.parse(ev.data);
    state.seq++;
    document.getElementById("live").className = "on";
    render();
  });
  s.addEventListener("failure", (ev) => notice(JSON.parse(ev.data).error));
  s.onerror = () => (document.getElementById("live").className = "");
  state.stream = s;
}

function route() {
  const h = location.hash.replace(/^#\/?/, "") || "actors";
  const [page, ...rest] = h.split("/");
  let arg = "";
  try { arg = rest.length ? decodeURIComponent(rest.join("/")) : ""; } catch (e) { arg = rest.join("/"); }
  return { page, arg };
}

function render() {
  const v = state.view;
  if (!v) return;
  const r = route();
  for (const a of document.querySelectorAll("header nav a")) a.className = a.id === "nav-" + r.page ? "on" : "";
  document.getElementById("core").textContent = `core pid ${v.core.pid} · ${v.core.socket}`;
  const main = document.getElementById("main");
  const focused = document.activeElement && document.activeElement.id;
  const pages = { actors: actorsPage, actor: actorPage, behaviours: behavioursPage, upgrades: upgradesPage, history: historyPage };
  const next = (pages[r.page] || actorsPage)(v, r.arg);
  // Unchanged, the page keeps its nodes: a button being clicked, or text
  // being selected, is not swapped out under the pointer.
  if (main.firstChild && main.firstChild.outerHTML === next.outerHTML) return;
  main.replaceChildren(next);
  if (focused) document.getElementById(focused)?.focus();
}

const cols = [
  ["name", "Actor"], ["behaviour", "Behaviour"], ["module", "Version"], ["schema", "Schema"], ["status", "Status"],
  ["depth", "Depth", 1], ["rate", "Msg/s", 1], ["processed", "Processed", 1], ["failed", "Failed", 1], ["restarts", "Restarts", 1], ["dead", "Dead", 1],
  ["origin", "Origin"], ["owner", "Owner"],
];

function actorsPage(v) {
  const p = state.page;
  const search = el("input", { type: "search", id: "filter", placeholder: "filter: name, behaviour, version, status", value: p.q });
  search.addEventListener("input", () => { p.q = search.value; p.offset = 0; openStream(); });
  const head = el("tr", {}, cols.map(([key, label, num]) =>
    el("th", { class: num ? "num" : "", "data-sort": key, onclick: () => { p.desc = p.sort === key ? !p.desc : false; p.sort = key; openStream(); } },
      label + (p.sort === key ? (p.desc ? " ▼" : " ▲") : ""))));
  const rows = v.actors.map((a) => el("tr", { "data-actor": a.name, class: a.status === "failed" ? "failed" : "" },
    el("td", {}, el("a", { href: "#/actor/" + encodeURIComponent(a.name) }, a.name)),
    el("td", {}, a.behaviour), el("td", { class: "module" }, a.module || "-"), el("td", {}, a.schema),
    el("td", { class: "status" }, a.status), el("td", { class: "num" }, a.depth), el("td", { class: "num rate" }, (a.rate || 0).toFixed(1)),
    el("td", { class: "num" }, a.processed),
    el("td", { class: "num" }, a.failed), el("td", { class: "num" }, `${a.restarts}/${a.module_restarts}`),
    el("td", { class: "num dead" }, a.dead_letters), el("td", {}, a.origin || "-"), el("td", { class: "owner" }, a.owner || "-")));
  const last = Math.min(v.offset + v.actors.length, v.total);
  const pager = el("span", {},
    el("button", { id: "prev", disabled: p.offset === 0, onclick: () => { p.offset = Math.max(0, p.offset - p.limit); openStream(); } }, "‹ prev"), " ",
    `${v.total ? v.offset + 1 : 0}–${last} of ${v.total} `,
    el("button", { id: "next", disabled: last >= v.total, onclick: () => { p.offset += p.limit; openStream(); } }, "next ›"));
  return el("section", {}, el("div", { class: "tools" }, search, pager), el("table", { id: "actors" }, el("thead", {}, head), el("tbody", {}, rows)));
}

// One actor: its status row, state, timers and dead letters (read again
// at each event, so they stay live).
const detail = { name: "", data: null, busy: false, seq: -1 };

function actorPage(v, name) {
  const a = v.focus && v.focus.name === name ? v.focus : v.actors.find((x) => x.name === name);
  if (detail.name !== name) { detail.name = name; detail.data = null; detail.seq = -1; }
  if (!detail.busy && detail.seq !== state.seq) { // once per event, not once per render
    detail.busy = true;
    detail.seq = state.seq;
    Promise.all([
      api("GET", `/v1/actors/${seg(name)}/state`).catch((e) => ({ error: e.message })),
      api("GET", `/v1/actors/${seg(name)}/timers`).catch((e) => ({ error: e.message })),
      api("GET", `/v1/actors/${seg(name)}/deadletters`).catch((e) => ({ error: e.message })),
      api("GET", `/v1/actors/${seg(name)}/messages`).catch((e) => ({ error: e.message })),
    ]).then(([st, timers, dead, msgs]) => { detail.data = { st, timers, dead, msgs }; detail.busy = false; if (detail.name === name) render(); });
  }
  const d = detail.data;
  const head = el("div", { class: "card" }, el("h2", {}, name),
    a ? `${a.behaviour} ${a.module || "-"} (schema ${a.schema}) · ${a.status} · depth ${a.depth} · processed ${a.processed} · dead letters ${a.dead_letters} ` : "",
    a && a.status !== "stopped" ? el("button", { id: "stop", onclick: () => act(name, "stop") }, "Stop") : "",
    a && a.status === "stopped" ? el("button", { id: "start", onclick: () => act(name, "start") }, "Start") : "");
  if (!d) return el("section", {}, head, el("p", {}, "loading…"));
  // An actor the core does not know (or cannot show) is one error, not
  // four empty tables.
  const failed = [d.st, d.timers, d.dead, d.msgs].find((x) => x && x.error);
  if (failed && !a) return el("section", {}, head, el("p", { id: "error", class: "error" }, failed.error));
  if (d.timers.error) d.timers = [];
  if (d.dead.error) d.dead = [];
  if (d.msgs.error) d.msgs = { queued: [], handled: [], depth: 0, error: d.msgs.error };
  const st = d.st.error ? d.st.error : (d.st.text !== undefined && d.st.text !== "" ? d.st.text : JSON.stringify(d.st, null, 2));
  const timers = el("table", { id: "timers" }, el("tr", {}, el("th", {}, "Timer"), el("th", {}, "Due"), el("th", {}, "To"), el("th", {}, "Message")),
    d.timers.map((t) => el("tr", {}, el("td", {}, t.id), el("td", {}, t.due), el("td", {}, t.to), el("td", {}, t.text ?? ""))));
  const dead = el("table", { id: "deadletters" },
    el("tr", {}, el("th", {}, "Seq"), el("th", {}, "Id"), el("th", {}, "Error"), el("th", {}, "Message"), el("th", {}, "")),
    d.dead.map((x) => el("tr", { "data-seq": x.seq }, el("td", {}, x.seq), el("td", {}, x.id || "-"), el("td", {}, x.last_error),
      el("td", {}, payloadText(x.payload)),
      el("td", {}, el("button", { class: "retry", onclick: () => retry(name, x.seq) }, "Retry")))));
  const m = d.msgs;
  const queued = el("table", { id: "queued" },
    el("tr", {}, el("th", {}, "Seq"), el("th", {}, "From"), el("th", {}, "Message"), el("th", {}, "Queued at"), el("th", {}, "Tries")),
    m.queued.map((x) => el("tr", { "data-seq": x.seq }, el("td", {}, x.seq), el("td", {}, x.sender || "-"), el("td", {}, payloadText(x.payload, x.payload_size)),
      el("td", {}, x.enqueued_at), el("td", {}, x.attempts ? `${x.attempts} (${x.last_error})` : ""))));
  const handled = m.handled.length
    ? el("table", { id: "handled" },
      el("tr", {}, el("th", {}, "Seq"), el("th", {}, "From"), el("th", {}, "Message"), el("th", {}, "Reply"), el("th", { class: "num" }, "Sent")),
      m.handled.map((x) => el("tr", { "data-seq": x.seq }, el("td", {}, x.seq), el("td", {}, x.sender || "-"), el("td", {}, payloadText(x.payload, x.payload_size)),
        el("td", {}, x.refusal ? "refused: " + x.refusal : (x.reply ? payloadText(x.reply, x.reply_size) : "")), el("td", { class: "num" }, x.sends))))
    : el("p", { id: "handled" }, `None kept: give behaviour ${a ? a.behaviour : ""} verify_window: N in the config to keep its actors' last N messages.`);
  return el("section", {}, head, el("h3", {}, "State"), el("pre", { id: "state" }, st),
    el("h3", {}, `Waiting messages (${m.depth}${m.depth > m.queued.length ? `, first ${m.queued.length} shown` : ""})`), m.error ? el("p", { class: "error" }, m.error) : "", queued,
    el("h3", {}, `Last handled messages (${m.handled.length})`), handled,
    el("h3", {}, `Pending timers (${d.timers.length})`), timers, el("h3", {}, `Dead letters (${d.dead.length})`), dead);
}

// payloadText is a base64 payload as text when it is printable UTF-8,
// else its size; size, when given, is the whole payload's length (the
// API sends the first bytes of a large one), said after a cut text.
function payloadText(b64, size) {
  const bytes = Uint8Array.from(atob(b64 || ""), (c) => c.charCodeAt(0));
  const whole = size ?? bytes.length;
  let text = null;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    // A preview may end inside a character: text up to the cut is still text.
    if (whole > bytes.length) try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, Math.max(0, bytes.length - 3))); } catch (e2) { text = null; }
  }
  if (text === null || /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) return `(${whole} bytes)`;
  return whole > bytes.length ? `${text}… (${whole} bytes)` : text;
}

async function act(actor, what) {
  try { await api("POST", `/v1/actors/${seg(actor)}/${what}`); notice(`${what} of ${actor} done`); } catch (e) { notice(`${what} refused: ${e.message}`); }
}

async function retry(actor, seq) {
  try {
    const r = await api("POST", `/v1/actors/${seg(actor)}/deadletters/retry`, { seq });
    notice(`retried ${(r.requeued || []).length} message(s) of ${actor}`);
    detail.seq = -1;
  } catch (e) {
    notice("retry refused: " + e.message);
  }
}

function behavioursPage(v) {
  return el("section", {}, el("table", { id: "behaviours" },
    el("tr", {}, el("th", {}, "Behaviour"), el("th", { class: "num" }, "Actors"), el("th", {}, "Versions running (actors)"), el("th", {}, "")),
    v.behaviours.map((b) => el("tr", { "data-behaviour": b.name }, el("td", {}, b.name), el("td", { class: "num" }, b.actors),
      el("td", {}, Object.entries(b.versions).map(([ver, n]) => `${ver} (${n})`).join(", ")),
      el("td", {}, el("button", { class: "rollback", onclick: () => rollback(b.name) }, "Roll back"))))));
}

async function rollback(b) {
  if (!confirm(`Roll every actor of ${b} back to its previous version?`)) return;
  try { const r = await api("POST", `/v1/behaviours/${seg(b)}/rollback`); notice(`rollback of ${b}: ${r.outcome}`); } catch (e) { notice("rollback refused: " + e.message); }
}

// lastOps are, per behaviour, the last dry run's verdict and the last
// upgrade's per-actor pauses, from the history.
function lastOps(v) {
  const cards = [];
  const dry = v.history.find((r) => r.kind === "dry-run");
  if (dry) cards.push(el("div", { class: "card", id: "last-dry-run" }, el("h3", {}, `Last dry run: ${dry.behaviour} ${dry.from} → ${dry.to}`),
    el("p", {}, dry.outcome), dry.error ? el("pre", {}, dry.error) : ""));
  const up = v.history.find((r) => r.kind === "upgrade" || r.kind === "rollback");
  if (up) {
    const pauses = (up.steps || []).filter((x) => x.step === "pause").map((x) => x.duration_seconds * 1000).sort((a, b) => a - b);
    const q = (f) => (pauses.length ? pauses[Math.min(pauses.length - 1, Math.floor(f * (pauses.length - 1)))].toFixed(2) + " ms" : "-");
    cards.push(el("div", { class: "card", id: "last-upgrade" }, el("h3", {}, `Last ${up.kind}: ${up.behaviour} ${up.from} → ${up.to}`),
      el("p", {}, `${up.outcome} · ${up.actors} actors moved in ${up.duration_seconds.toFixed(2)} s · pause per actor: p50 ${q(0.5)}, p99 ${q(0.99)}, max ${q(1)}`),
      up.canary ? el("p", {}, "canary " + up.canary) : ""));
  }
  return cards;
}

function upgradesPage(v) {
  if (!v.upgrades.length) return el("section", {}, el("p", { id: "no-upgrades" }, "No upgrade, rollback or dry run in progress."), lastOps(v));
  return el("section", { id: "upgrades" }, v.upgrades.map((u) => el("div", { class: "card", "data-behaviour": u.behaviour },
    el("h3", {}, `${u.kind} of ${u.behaviour}: ${u.from} → ${u.to}`),
    el("p", {}, el("span", { class: "phase" }, u.phase),
      u.canary ? ` · canary ${u.canary} (${(u.group || []).join(", ")})` : "",
      u.phase === "baking" ? ` · ${Math.round(u.bake_left_seconds)} s left` : "", u.verdict ? ` · ${u.verdict}` : "",
      u.to_move && u.phase !== "baking" ? el("span", { class: "moved" }, ` · ${u.moved} of ${u.to_move} actors moved, ${u.groups_moved} of ${u.groups} groups`) : ""),
    u.health ? healthTable(u.health) : "",
    u.phase === "baking" ? el("p", {},
      el("button", { id: "promote", onclick: () => decide(u.behaviour, "promote") }, "Promote now"), " ",
      el("button", { id: "abort", onclick: () => decide(u.behaviour, "abort") }, "Abort (roll the canary back)")) : "")), lastOps(v));
}

// healthTable is a baking canary beside the old version's actors, as the
// gates judge them.
function healthTable(h) {
  const row = (label, g) => el("tr", {}, el("td", {}, label), el("td", { class: "num" }, g.handled), el("td", { class: "num" }, g.failed),
    el("td", { class: "num" }, (100 * g.failure_rate).toFixed(2) + " %"), el("td", { class: "num" }, g.dead_lettered),
    el("td", { class: "num" }, (1000 * g.p99_seconds).toFixed(2) + " ms"));
  return el("table", { class: "health" },
    el("tr", {}, ["", "Handled", "Failed attempts", "Failure rate", "Dead letters", "Handle p99"].map((x) => el("th", {}, x))),
    row("canary (new version)", h.canary), row("old version", h.old));
}

async function decide(b, what) {
  try { await api("POST", `/v1/behaviours/${seg(b)}/${what}`); notice(`${what} of ${b} sent`); } catch (e) { notice(e.message); }
}

// historyPage lists the records, one per op: in a cluster, the members
// that carried out a share of it.
function historyPage(v) {
  const cluster = v.history.some((r) => r.member || r.members);
  const members = (r) => cluster ? [el("td", {}, r.members ? r.members.map((m) => m.member).join(", ") : r.member)] : [];
  return el("section", {}, el("table", { id: "history" },
    el("tr", {}, ["Id", "Kind", "Behaviour", "From", "To", "Started", "Took", ...(cluster ? ["Members"] : []), "Actors", "Outcome"].map((h) => el("th", {}, h))),
    v.history.map((r) => el("tr", {}, el("td", {}, r.id), el("td", {}, r.kind), el("td", {}, r.behaviour), el("td", {}, r.from), el("td", {}, r.to),
      el("td", {}, new Date(r.started).toLocaleString()), el("td", {}, r.duration_seconds.toFixed(2) + " s"), ...members(r), el("td", { class: "num" }, r.actors),
      el("td", {}, r.outcome + (r.canary ? ` (canary ${r.canary})` : "") + (r.error ? ": " + r.error : ""))))));
}

window.addEventListener("hashchange", () => {
  const r = route();
  if ((r.page === "actor" ? r.arg : "") !== state.focus) openStream(); // the stream follows the actor looked at
  else render();
});
openStream();
