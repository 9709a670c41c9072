// Flows dashboard: renders the JSON API (/api/v1) with the token kept in
// sessionStorage. No external assets.
"use strict";
const $ = (s, el = document) => el.querySelector(s);
const esc = v => String(v ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const money = v => v == null ? "–" : "£" + Number(v).toFixed(2);
let timers = [];

async function api(path, opts = {}) {
  const res = await fetch("/api/v1" + path, {...opts, headers: {"Authorization": "Bearer " + sessionStorage.getItem("flows-token"), "Content-Type": "application/json"}});
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) { sessionStorage.removeItem("flows-token"); route(); throw new Error(body.detail || "unauthorized"); }
  if (!res.ok) { const e = new Error(body.detail || res.statusText); e.field = body.field; throw e; }
  return body;
}

function showLogin(msg) {
  $("#login").hidden = false; $("#page").innerHTML = ""; $("#logout").hidden = true; $("#who").textContent = "";
  $("#login-error").textContent = msg || "";
}

$("#login-btn").onclick = async () => {
  sessionStorage.setItem("flows-token", $("#token").value.trim());
  try { await api("/fleet"); $("#login").hidden = true; route(); } catch (e) { showLogin("Token refused: " + e.message); }
};
$("#logout").onclick = () => { sessionStorage.removeItem("flows-token"); location.hash = "#/"; route(); };

function claims() {
  try { return JSON.parse(atob(sessionStorage.getItem("flows-token").split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))); } catch { return {}; }
}

async function route() {
  timers.forEach(clearInterval); timers = [];
  if (!sessionStorage.getItem("flows-token")) return showLogin();
  $("#login").hidden = true; $("#logout").hidden = false;
  const c = claims(); $("#who").textContent = (c.sub || "") + " · " + (c.role || "") + (c.esco ? " · " + c.esco : "");
  const [, page, arg] = location.hash.split("/");
  try {
    if (page === "meter") await meterPage(decodeURIComponent(arg));
    else if (page === "views") await viewsPage();
    else if (page === "rollout") await rolloutPage(arg);
    else await fleetPage();
  } catch (e) { $("#page").innerHTML = `<p class="error">${esc(e.message)}</p>`; }
}
window.addEventListener("hashchange", route);

async function fleetPage() {
  const [fleet, list] = await Promise.all([api("/fleet"), api("/meters?limit=1000")]);
  const tot = {meters: 0, healthy: 0, unhealthy: 0, offline: 0, stale: 0, low_balance: 0};
  for (const e of fleet.escos) for (const k in tot) tot[k] += e[k];
  $("#page").innerHTML = `<h1>Fleet</h1>
    <div class="cards" id="overview">${Object.entries(tot).map(([k, v]) => `<div class="card" data-count="${k}"><b>${v}</b>${k.replace("_", " ")}</div>`).join("")}</div>
    <table id="escos"><tr><th>ESCO</th><th>meters</th><th>healthy</th><th>unhealthy</th><th>offline</th><th>stale</th><th>low balance</th></tr>
    ${fleet.escos.map(e => `<tr><td>${esc(e.esco)}</td><td>${e.meters}</td><td>${e.healthy}</td><td>${e.unhealthy}</td><td>${e.offline}</td><td>${e.stale}</td><td>${e.low_balance}</td></tr>`).join("")}</table>
    <p><input id="search" placeholder="Search serial or name"> <select id="filter-health"><option value="">any health</option><option>healthy</option><option>unhealthy</option></select>
    <label><input type="checkbox" id="filter-low"> under £5</label></p>
    <table id="meters"><thead><tr><th>serial</th><th>name</th><th>ESCO</th><th>mode</th><th>hardware</th><th>balance</th><th>health</th><th>signal</th></tr></thead><tbody></tbody></table>`;
  const render = rows => { $("#meters tbody").innerHTML = rows.map(m => `<tr>
      <td><a class="meter-link" href="#/meter/${esc(m.serial)}">${esc(m.serial)}</a></td><td>${esc(m.name)}</td><td>${esc(m.esco_code)}</td>
      <td>${esc(m.mode)}</td><td>${esc(m.hardware)}</td>
      <td class="${m.stale ? "stale" : ""}">${money(m.balance)}${m.stale ? '<span class="badge">stale</span>' : ""}</td>
      <td class="${esc(m.health)}">${esc(m.health || "–")}</td><td>${m.csq ?? "–"}</td></tr>`).join(""); };
  render(list.meters);
  const refilter = async () => {
    const q = new URLSearchParams({limit: 1000, q: $("#search").value, health: $("#filter-health").value});
    if ($("#filter-low").checked) q.set("low_balance", "5");
    render((await api("/meters?" + q)).meters);
  };
  $("#search").oninput = refilter; $("#filter-health").onchange = refilter; $("#filter-low").onchange = refilter;
}

// chart draws points [{t, v}] as an SVG line with dots; extra lines are
// horizontal guides [{v, label}]; markers are times drawn as triangles.
function chart(id, pts, {lines = [], markers = [], unit = ""} = {}) {
  const W = 560, H = 180, P = 34;
  if (!pts.length) return `<svg id="${id}" width="100%" viewBox="0 0 ${W} ${H}"><text x="20" y="90">no data yet</text></svg>`;
  const ts = pts.map(p => p.t), vs = pts.map(p => p.v).concat(lines.map(l => l.v));
  const t0 = Math.min(...ts), t1 = Math.max(...ts) || t0 + 1, v0 = Math.min(...vs), v1 = Math.max(...vs);
  const x = t => P + (W - 2 * P) * (t - t0) / ((t1 - t0) || 1), y = v => H - P - (H - 2 * P) * (v - v0) / ((v1 - v0) || 1);
  return `<svg id="${id}" width="100%" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none">
    <text x="4" y="14" font-size="11">${v1.toFixed(1)}${unit}</text><text x="4" y="${H - P + 4}" font-size="11">${v0.toFixed(1)}${unit}</text>
    ${lines.map(l => `<line class="guide" x1="${P}" x2="${W - P}" y1="${y(l.v)}" y2="${y(l.v)}" stroke="#c0392b" stroke-dasharray="4"/><text x="${W - P - 110}" y="${y(l.v) - 3}" font-size="10" fill="#c0392b">${esc(l.label)}</text>`).join("")}
    <polyline fill="none" stroke="#2e86de" stroke-width="1.5" points="${pts.map(p => x(p.t) + "," + y(p.v)).join(" ")}"/>
    ${pts.map(p => `<circle class="pt" cx="${x(p.t)}" cy="${y(p.v)}" r="1.8" fill="#2e86de"/>`).join("")}
    ${markers.map(m => `<path class="topup" d="M${x(m)},${P - 10} l-5,-8 h10 z" fill="#1e8449"><title>top-up</title></path>`).join("")}
  </svg>`;
}

function tariffTable(t) {
  if (!t) return "<p>not read yet</p>";
  const rows = ["standing_charge", "unit_rate_element_a", "unit_rate_element_b", "prepayment_emergency_credit", "prepayment_ecredit_availability", "prepayment_debt_recovery_rate", "activation_datetime"];
  return `<table>${rows.filter(k => t[k] != null).map(k => `<tr><th>${k.replace(/_/g, " ")}</th><td>${esc(t[k])}</td></tr>`).join("")}</table>`;
}

async function meterPage(serial) {
  const enc = encodeURIComponent(serial);
  const [st, bal, sig, ev, tar] = await Promise.all([api(`/meters/${enc}`), api(`/meters/${enc}/balance`), api(`/meters/${enc}/signal`), api(`/meters/${enc}/events`), api(`/meters/${enc}/tariffs`)]);
  const r = st.registry, s = st.shadow, stale = new Set(st.stale || []);
  const mark = g => stale.has(g) ? ' class="stale"' : "";
  const badge = g => stale.has(g) ? '<span class="badge">stale</span>' : "";
  const pts = bal.points.slice().reverse().map(p => ({t: Date.parse(p.timestamp), v: Number(p.balance)}));
  const topups = pts.filter((p, i) => i > 0 && p.v - pts[i - 1].v > 0.5).map(p => p.t);
  const ec = s.emergency_credit != null ? [{v: -Number(s.emergency_credit), label: "emergency credit limit"}] : [];
  const csq = sig.points.filter(p => p.csq != null).map(p => ({t: Date.parse(p.timestamp), v: p.csq}));
  const volt = sig.points.filter(p => p.voltage != null).map(p => ({t: Date.parse(p.timestamp), v: Number(p.voltage)}));
  $("#page").innerHTML = `<h1>${esc(r.serial)} <small>${esc(r.name)}</small></h1>
  <div class="grid">
    <div class="panel" id="status"><h2>Status</h2><table>
      <tr><th>balance</th><td${mark("balance")}>${money(s.balance)}${badge("balance")}</td></tr>
      <tr><th>emergency credit</th><td>${money(s.emergency_credit)}</td></tr>
      <tr><th>health</th><td class="${esc(s.health)}">${esc(s.health || "–")} ${esc(s.health_details)}</td></tr>
      <tr><th>signal (csq)</th><td${mark("csq")}>${s.csq ?? "–"}${badge("csq")}</td></tr>
      <tr><th>voltage</th><td${mark("voltage")}>${s.voltage ?? "–"} V${badge("voltage")}</td></tr>
      <tr><th>clock drift</th><td${mark("clock")}>${s.clock_time_diff_seconds ?? "–"} s${badge("clock")}</td></tr>
      <tr><th>mode · hardware</th><td>${esc(r.mode)} · ${esc(r.hardware)} · ${esc(r.ip_address)}:${r.port}</td></tr>
      <tr><th>updated</th><td>${esc(s.updated_at)}</td></tr></table>
      <p>Stale values: <span id="stale-list">${esc([...stale].join(", ") || "none")}</span></p>
      <button id="sync-btn">Sync now</button> <span id="sync-msg"></span></div>
    <div class="panel"><h2>Balance</h2>${chart("balance-chart", pts, {lines: ec, markers: topups})}</div>
    <div class="panel"><h2>Signal</h2>${chart("csq-chart", csq)}</div>
    <div class="panel"><h2>Voltage</h2>${chart("voltage-chart", volt, {unit: " V"})}</div>
    <div class="panel" id="tariffs"><h2>Tariffs</h2><h3>Active${badge("tariffs_active")}</h3>${tariffTable(tar.active)}<h3>Future (as the meter reports)${badge("tariffs_future")}</h3>${tariffTable(tar.future)}
      <h3>Requests</h3><table id="requests"><tr><th>created</th><th>activation</th><th>status</th><th>note</th></tr>
      ${tar.requests.map(q => `<tr data-id="${q.id}"><td>${esc(q.created_at)}</td><td>${esc(q.activation_at)}</td><td class="status">${esc(q.status)}</td><td>${esc(q.last_error)}</td></tr>`).join("")}</table></div>
    <div class="panel"><h2>Schedule a future tariff</h2><form id="tariff-form">
      ${[["standing_charge", "0.58680"], ["unit_rate_element_a", "0.28430"], ["unit_rate_element_b", "0.15000"], ["prepayment_emergency_credit", "15.00"], ["prepayment_ecredit_availability", "10.00"], ["prepayment_debt_recovery_rate", "0.25"]]
        .map(([k, v]) => `<label for="${k}">${k.replace(/_/g, " ")}</label><input id="${k}" name="${k}" value="${v}"><br>`).join("")}
      <label for="activation_datetime">activation (meter clock)</label><input id="activation_datetime" name="activation_datetime" placeholder="2026-12-01T00:00:00"><br>
      <button>Schedule</button> <span id="tariff-msg"></span></form>
      <h2>Top up</h2><form id="token-form"><label for="topup-token">20-digit token</label><input id="topup-token" maxlength="20"><br><button>Send</button> <span id="token-msg"></span></form></div>
    <div class="panel"><h2>Events</h2><table id="events"><tr><th>time</th><th>event</th><th>set</th></tr>
      ${ev.events.slice(0, 50).map(e => `<tr><td>${esc(e.timestamp)}</td><td>${esc(e.type_name || e.event_type)}</td><td>${e.event_set}</td></tr>`).join("")}</table></div>
  </div>`;
  $("#sync-btn").onclick = async () => { try { await api(`/meters/${enc}/sync`, {method: "POST"}); $("#sync-msg").textContent = "queued"; } catch (e) { $("#sync-msg").textContent = e.message; } };
  $("#tariff-form").onsubmit = async ev => {
    ev.preventDefault();
    const body = Object.fromEntries(new FormData(ev.target));
    try { const q = await api(`/meters/${enc}/tariffs/future`, {method: "PUT", body: JSON.stringify(body)}); $("#tariff-msg").textContent = "request " + q.status; refreshRequests(); }
    catch (e) { $("#tariff-msg").textContent = (e.field ? e.field + ": " : "") + e.message; }
  };
  $("#token-form").onsubmit = async ev => {
    ev.preventDefault();
    try { const t = await api(`/meters/${enc}/tokens`, {method: "POST", body: JSON.stringify({token: $("#topup-token").value.trim()})}); $("#token-msg").textContent = "top-up " + t.status; }
    catch (e) { $("#token-msg").textContent = (e.field ? e.field + ": " : "") + e.message; }
  };
  const refreshRequests = async () => {
    const t = await api(`/meters/${enc}/tariffs`);
    $("#requests").innerHTML = `<tr><th>created</th><th>activation</th><th>status</th><th>note</th></tr>` +
      t.requests.map(q => `<tr data-id="${q.id}"><td>${esc(q.created_at)}</td><td>${esc(q.activation_at)}</td><td class="status">${esc(q.status)}</td><td>${esc(q.last_error)}</td></tr>`).join("");
  };
  timers.push(setInterval(refreshRequests, 1500));
}

async function viewsPage() {
  const [low, off, drift] = await Promise.all([api("/views/low-balance?threshold=5"), api("/views/offline?scope=all"), api("/views/clock-drift")]);
  const link = s => `<a href="#/meter/${esc(s)}">${esc(s)}</a>`;
  $("#page").innerHTML = `<h1>Needs attention</h1><div class="grid">
    <div class="panel"><h2>Low balance (under £5)</h2><table id="low-balance">${low.meters.map(m => `<tr><td>${link(m.serial)}</td><td>${esc(m.name)}</td><td>${money(m.balance)}</td></tr>`).join("")}</table></div>
    <div class="panel"><h2>Offline</h2><table id="offline">${off.meters.map(m => `<tr><td>${link(m.serial)}</td><td>${esc(m.name)}</td><td>last online ${esc(m.last_online)}</td></tr>`).join("")}</table></div>
    <div class="panel"><h2>Clock drift</h2><table id="clock-drift">${drift.meters.map(m => `<tr><td>${link(m.serial)}</td><td>${esc(m.name)}</td><td>${m.clock_time_diff_seconds} s</td></tr>`).join("")}</table></div></div>`;
}

async function rolloutPage(id) {
  const draw = async () => {
    const ro = await api(`/rollouts/${encodeURIComponent(id)}`);
    const done = (ro.progress.verified || 0) + (ro.progress.active || 0), pct = ro.meters ? Math.round(100 * done / ro.meters) : 0;
    $("#page").innerHTML = `<h1>Rollout ${esc(ro.id)}</h1><p>status <b id="rollout-status">${esc(ro.status)}</b> ${esc(ro.note)}</p>
      <div class="bar"><div style="width:${pct}%"></div></div><p id="rollout-progress">${done} of ${ro.meters} meters confirmed · ${Object.entries(ro.progress).map(([k, v]) => esc(k) + " " + v).join(", ")}</p>`;
  };
  await draw();
  timers.push(setInterval(draw, 2000));
}

route();
