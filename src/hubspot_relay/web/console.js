// hubspot-relay's console: reads and acts through the operations API (/admin/api/...).
// Every value shown comes from messages clients sent: it is set as text, never as HTML.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);

// Why messages were skipped (end-user consent, integrations off, sent by the browser, ...), most first.
function reasons(byReason) {
  return Object.entries(byReason || {}).map(([why, n]) => `${number(n)} ${why}`).join("\n");
}

function skippedBecause(byReason) {
  const entries = Object.entries(byReason || {});
  if (!entries.length) return el("span");
  return el("ul", { class: "hint skipped-because" },
    ...entries.map(([why, n]) => el("li", {}, `skipped ${number(n)}: ${why}`)));
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options };
  if (init.body && typeof init.body !== "string") {
    init.body = JSON.stringify(init.body);
    init.headers = { "Content-Type": "application/json" };
  }
  const response = await fetch(path, init);
  if (response.status === 401 || response.status === 403) {
    window.location.assign("/admin");
    throw new Error("signed out");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok && !body.requests) throw new Error(body.message || `${response.status} ${response.statusText}`);
  return body;
}

function showError(error) {
  const box = $("#error");
  box.hidden = !error;
  box.textContent = error ? String(error.message || error) : "";
}

const number = (n) => (n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US"));
const age = (s) => (s === null || s === undefined ? "-" : s < 120 ? `${Math.round(s)} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);

// ---- tabs ------------------------------------------------------------------------------

let current = "overview";
for (const button of document.querySelectorAll("nav button")) {
  button.addEventListener("click", () => {
    current = button.dataset.tab;
    for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b === button);
    for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== current;
    refresh();
  });
}

// ---- overview --------------------------------------------------------------------------

let lastStatus = null;
const SERIES = [
  ["received", "received"],
  ["delivered", "delivered"],
  ["skipped", "skipped"],
  ["waiting", "waiting for an email"],
  ["retrying", "retrying"],
  ["dead", "dead-lettered"],
];

function chart(values, start) {
  const width = 300, height = 90, max = Math.max(1, ...values);
  const step = width / Math.max(1, values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 4 - (v / max) * (height - 12)).toFixed(1)}`);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const area = document.createElementNS(svg.namespaceURI, "polygon");
  area.setAttribute("points", `0,${height} ${points.join(" ")} ${width},${height}`);
  area.setAttribute("fill", "#ffe3da");
  const line = document.createElementNS(svg.namespaceURI, "polyline");
  line.setAttribute("points", points.join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#ff7a59");
  line.setAttribute("stroke-width", "1.5");
  const title = document.createElementNS(svg.namespaceURI, "title");
  title.textContent = `per minute since ${new Date(start * 1000).toLocaleTimeString()}; peak ${max}`;
  svg.append(title, area, line);
  return svg;
}

// Where the portal serves custom events (HubSpot has published several spellings; the relay asks).
const eventsAt = (a) => (!a.paths ? "" : a.paths.custom_events ? ` · custom events at ${a.paths.custom_events}` : " · custom events: no published path answered yet");

function bar(percent) {
  const fill = el("div");
  fill.style.width = `${percent.toFixed(2)}%`; // through the CSSOM: the page allows no inline styles
  return fill;
}

async function overview() {
  const [status, activity] = await Promise.all([api("/admin/api/status"), api("/admin/api/activity")]);
  lastStatus = status;
  const health = $("#health");
  health.textContent = { ok: "healthy", unavailable: "store down" }[status.status] || "degraded";
  health.className = status.status === "ok" ? "pill" : "pill bad";
  const store = status.store && !status.store.up
    ? [el("p", { class: "problem" }, `The queue's store (${status.store.name}) has not taken writes since ${new Date(status.store.since).toLocaleString()}: ingest answers 503 and delivery waits. ${status.store.error || ""}`)]
    : [];
  $("#degraded").replaceChildren(...store, ...(status.degraded || []).map((r) => el("p", { class: "problem" }, `Ingest is refusing messages: ${r}`)));

  const accounts = Object.entries(status.accounts || {}).map(([name, a]) => {
    const budget = a.budget || {};
    const share = budget.per_day ? Math.min(100, (100 * budget.calls_today) / budget.per_day) : 0;
    const problems = (a.problems || []).map((p) => el("p", { class: "problem" }, `${p.kind}: ${p.message}`));
    if (a.paused) problems.unshift(el("p", { class: "problem" }, "Paused by an operator: nothing is sent until resumed (messages keep queuing)."));
    if (a.daily_limit_until) problems.unshift(el("p", { class: "problem" }, `HubSpot's daily limit is reached; delivery resumes at ${new Date(a.daily_limit_until * 1000).toLocaleString()}.`));
    const toggle = el("button", {
      class: "small",
      "data-account": name,
      onclick: async () => {
        await api(`/admin/api/accounts/${encodeURIComponent(name)}/${a.paused ? "resume" : "pause"}`, { method: "POST" });
        refresh();
      },
    }, a.paused ? "Resume" : "Pause");
    return el("div", { class: "card account", "data-account": name },
      el("h3", {}, `${name} `, el("span", { class: "hint" }, `hub ${a.hub_id} · ${a.api_mode === "legacy" ? "legacy API key" : `API ${a.api_version} · ${a.auth}`}${eventsAt(a)}${a.sandbox ? " · local sandbox" : ""}`)),
      el("div", {}, a.paused ? "paused " : a.delivering ? "delivering " : "not delivering here ", toggle),
      el("div", { class: "hint" }, `HubSpot calls today: ${number(budget.calls_today)} of ${number(budget.per_day)} (this process) · last 10 s: ${number(budget.calls_last_10s)} of ${number(budget.per_10s)}`),
      el("div", { class: "bar" }, bar(share)),
      el("div", { class: "hint" }, `queued ${number(a.queued)} · retrying ${number(a.retrying)} · delivered ${number(a.delivered)} · dead ${number(a.dead)} · oldest ${age(a.oldest_queued_age_s)}`),
      skippedBecause(a.skipped_because),
      problems.length ? problems : el("p", { class: "hint" }, "No problems."),
    );
  });
  $("#accounts").replaceChildren(...accounts);

  $("#sources tbody").replaceChildren(...Object.entries(status.sources || {}).map(([name, s]) =>
    el("tr", { "data-source": name },
      el("td", {}, name, s.enabled === false ? " (HubSpot off)" : ""), el("td", {}, s.account || ""),
      ...["queued", "in_flight", "retrying", "delivered", "skipped", "waiting", "dead"].map((k) =>
        el("td", { class: "n", title: k === "skipped" ? reasons(s.skipped_because) : "" }, number(s[k]))),
      el("td", { class: "n" }, age(s.oldest_queued_age_s)))));

  $("#process").textContent = `(per minute, as relay process ${activity.process} saw it since ${new Date(activity.since * 1000).toLocaleTimeString()})`;
  const keys = activity.keys || {};
  const charts = [];
  for (const [kind, label] of SERIES) {
    const values = new Array(activity.minutes).fill(0);
    for (const [key, series] of Object.entries(keys)) {
      if (key.split(":")[0] === kind) series.forEach((v, i) => (values[i] += v));
    }
    const total = values.reduce((a, b) => a + b, 0);
    charts.push(el("div", { class: "chart", "data-series": kind },
      el("h4", {}, el("span", {}, label), el("span", { class: "total" }, number(total))), chart(values, activity.start)));
  }
  $("#charts").replaceChildren(...charts);

  const rows = [];
  for (const [key, series] of Object.entries(keys)) {
    if (!key.startsWith("endpoint:")) continue;
    const rest = key.slice("endpoint:".length);
    const account = rest.slice(0, rest.indexOf(":"));
    const statusCode = rest.slice(rest.lastIndexOf(":") + 1);
    const endpoint = rest.slice(account.length + 1, rest.lastIndexOf(":"));
    rows.push([account, endpoint, statusCode, series.reduce((a, b) => a + b, 0)]);
  }
  rows.sort((a, b) => b[3] - a[3]);
  $("#endpoints tbody").replaceChildren(...(rows.length ? rows.map(([a, e, s, n]) =>
    el("tr", {}, el("td", {}, a), el("td", {}, e), el("td", { class: `status-${String(s)[0]}` }, s), el("td", { class: "n" }, number(n))))
    : [el("tr", {}, el("td", { colspan: "4", class: "hint" }, "No call in the last hour."))]));
  fillSources(status);
}

function fillSources(status) {
  const names = Object.keys(status.sources || {});
  for (const select of [$("#dead-source"), $("#tester-source")]) {
    const keep = select.value;
    const first = select.id === "dead-source" ? [el("option", { value: "" }, "all")] : [];
    select.replaceChildren(...first, ...names.map((n) => el("option", { value: n }, n)));
    if (keep && names.includes(keep)) select.value = keep;
  }
}

// ---- dead letters ----------------------------------------------------------------------

async function deadLetters() {
  const source = $("#dead-source").value;
  const query = new URLSearchParams({ limit: "1000" });
  if (source) query.set("source", source);
  const { dead_letters: dead } = await api(`/admin/api/dead-letters?${query}`);
  $("#dead-count").textContent = dead.length ? String(dead.length) : "";
  const groups = new Map();
  for (const d of dead) {
    if (!groups.has(d.reason)) groups.set(d.reason, []);
    groups.get(d.reason).push(d);
  }
  const blocks = [...groups.entries()].sort((a, b) => b[1].length - a[1].length).map(([reason, items]) =>
    el("details", { class: "dead-group" },
      el("summary", {}, el("strong", {}, `${items.length} × `), reason, " ",
        el("button", { class: "small replay-reason", onclick: (e) => { e.preventDefault(); replay({ reason, source: source || null }); } }, "Replay these")),
      ...items.map((d) => el("details", { class: "dead-letter", "data-message-id": d.messageId },
        el("summary", {}, `${d.type} ${d.messageId} · ${d.source} · ${d.attempts} attempt(s) · ${new Date(d.failed_at * 1000).toLocaleString()} `,
          el("button", { class: "small replay-one", onclick: (e) => { e.preventDefault(); replay({ source: d.source, messageIds: [d.messageId] }); } }, "Replay")),
        el("pre", {}, JSON.stringify(d.message, null, 2))))));
  $("#dead-groups").replaceChildren(...(blocks.length ? blocks : [el("p", { class: "hint" }, "No dead letters.")]));
}

async function replay(filter) {
  const result = await api("/admin/api/replay", { method: "POST", body: filter });
  showError(null);
  $("#dead-groups").prepend(el("p", { class: "hint replayed" }, `Re-queued ${result.replayed} message(s).`));
  setTimeout(refresh, 500);
}

$("#dead-source").addEventListener("change", refresh);
$("#dead-refresh").addEventListener("click", refresh);
$("#replay-source").addEventListener("click", () => replay({ source: $("#dead-source").value || null }));

// ---- live debugger ---------------------------------------------------------------------

async function debuggerView() {
  const { messages } = await api("/admin/api/messages?limit=50");
  const open = new Set([...document.querySelectorAll("#messages tr[data-message-id] details[open]")].map((d) => d.closest("tr").dataset.messageId));
  $("#messages tbody").replaceChildren(...messages.map((m) => {
    const outcome = m.outcome || m.state;
    const calls = (m.calls || []).map((c) => el("div", { class: `status-${String(c.status)[0]}` }, `${c.call} → ${c.status}${c.inputs ? ` (${c.inputs} in the call)` : ""}`, c.answer ? el("div", { class: "hint" }, c.answer) : null));
    return el("tr", { "data-message-id": m.messageId },
      el("td", {}, el("details", open.has(m.messageId) ? { open: "" } : {}, el("summary", {}, m.messageId), el("pre", {}, JSON.stringify(m.message, null, 2)))),
      el("td", {}, m.type, m.message && m.message.event ? ` "${m.message.event}"` : ""),
      el("td", {}, m.state),
      el("td", { class: `outcome-${outcome}` }, outcome, m.reason ? el("div", { class: "hint" }, m.reason) : null),
      el("td", {}, calls.length ? calls : el("span", { class: "hint" }, "-")));
  }));
}

// ---- event tester ----------------------------------------------------------------------

$("#tester-message").value = JSON.stringify({
  type: "identify",
  userId: "user-42",
  traits: { email: "ada@example.com", firstName: "Ada", plan: "pro", createdAt: "2026-11-02T10:00:00Z" },
}, null, 2);

async function test(send) {
  let message;
  try {
    message = JSON.parse($("#tester-message").value);
  } catch (e) {
    $("#tester-result").replaceChildren(el("p", { class: "error" }, `Not JSON: ${e.message}`));
    return;
  }
  try {
    const r = await api("/admin/api/preview", { method: "POST", body: { source: $("#tester-source").value, message, send } });
    const out = [el("p", { class: `outcome-${r.outcome}`, id: "tester-outcome" }, `It would be ${r.outcome}`, r.reason ? `: ${r.reason}` : "", ".")];
    if (r.sent) out.push(el("p", { class: "hint", id: "tester-sent" }, `Queued as ${r.message.messageId}: watch it in the live debugger.`));
    if (r.note) out.push(el("p", { class: "hint" }, r.note));
    out.push(el("p", { class: "hint" }, r.requests.length ? `${r.requests.length} request(s) to HubSpot:` : "No request to HubSpot."));
    for (const q of r.requests) {
      out.push(el("div", { class: "request" }, el("span", { class: "method" }, q.method), " ", q.url,
        q.params ? el("pre", {}, JSON.stringify(q.params, null, 2)) : null,
        q.body ? el("pre", {}, JSON.stringify(q.body, null, 2)) : null));
    }
    if (r.reads && r.reads.length) out.push(el("p", { class: "hint" }, `Read from HubSpot to build them: ${r.reads.join(", ")}`));
    if (r.read_errors && r.read_errors.length) out.unshift(el("p", { class: "error" }, `Reading the portal from HubSpot failed (${r.read_errors[0]}): what follows is partial.`));
    $("#tester-result").replaceChildren(...out);
  } catch (e) {
    $("#tester-result").replaceChildren(el("p", { class: "error", id: "tester-outcome" }, e.message));
  }
}
$("#tester-preview").addEventListener("click", () => test(false));
$("#tester-send").addEventListener("click", () => test(true));

// ---- refreshing ------------------------------------------------------------------------

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    if (current === "overview") await overview();
    else if (current === "dead") await deadLetters();
    else if (current === "debugger") await debuggerView();
    else if (current === "tester" && !lastStatus) await overview();
    showError(null);
  } catch (e) {
    showError(e);
  } finally {
    busy = false;
  }
}

refresh().then(() => deadCount());
async function deadCount() {
  try {
    const { dead_letters: dead } = await api("/admin/api/dead-letters?limit=1000");
    $("#dead-count").textContent = dead.length ? String(dead.length) : "";
  } catch (e) { /* shown by the next refresh */ }
}
setInterval(() => {
  if (current === "debugger" && !$("#follow").checked) return;
  if (current === "tester" || current === "dead") return; // refreshed when asked (or after a replay)
  refresh();
}, 2000);
setInterval(deadCount, 10000);
