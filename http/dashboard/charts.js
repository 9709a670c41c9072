// Draws the page's charts from the JSON the server embedded, and keeps the
// tariff request table current. Nothing else runs in the browser.
"use strict";
function drawChart(svg) {
  const W = 560, H = 180, P = 34;
  const pts = JSON.parse(document.getElementById(svg.dataset.series).textContent || "[]").map(p => ({t: Date.parse(p[0]), v: Number(p[1])}));
  const guides = svg.dataset.guide ? [{v: Number(svg.dataset.guide), label: svg.dataset.guideLabel}] : [];
  const markers = svg.dataset.markers ? JSON.parse(document.getElementById(svg.dataset.markers).textContent || "[]").map(Date.parse) : [];
  const unit = svg.dataset.unit || "";
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", "100%");
  svg.setAttribute("preserveAspectRatio", "none");
  const ns = "http://www.w3.org/2000/svg", el = (name, attrs, text) => {
    const e = document.createElementNS(ns, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    svg.appendChild(e); return e;
  };
  if (!pts.length) { el("text", {x: 20, y: 90}, "no data yet"); return; }
  const ts = pts.map(p => p.t), vs = pts.map(p => p.v).concat(guides.map(g => g.v));
  const t0 = Math.min(...ts), t1 = Math.max(...ts), v0 = Math.min(...vs), v1 = Math.max(...vs);
  const x = t => P + (W - 2 * P) * (t - t0) / ((t1 - t0) || 1), y = v => H - P - (H - 2 * P) * (v - v0) / ((v1 - v0) || 1);
  el("text", {x: 4, y: 14, "font-size": 11}, v1.toFixed(1) + unit);
  el("text", {x: 4, y: H - P + 4, "font-size": 11}, v0.toFixed(1) + unit);
  for (const g of guides) {
    el("line", {class: "guide", x1: P, x2: W - P, y1: y(g.v), y2: y(g.v), stroke: "#c0392b", "stroke-dasharray": 4});
    el("text", {x: W - P - 110, y: y(g.v) - 3, "font-size": 10, fill: "#c0392b"}, g.label);
  }
  el("polyline", {fill: "none", stroke: "#2e86de", "stroke-width": 1.5, points: pts.map(p => x(p.t) + "," + y(p.v)).join(" ")});
  for (const p of pts) el("circle", {class: "pt", cx: x(p.t), cy: y(p.v), r: 1.8, fill: "#2e86de"});
  for (const m of markers) if (m >= t0 && m <= t1) el("path", {class: "topup", d: `M${x(m)},${P - 10} l-5,-8 h10 z`, fill: "#1e8449"});
}
document.querySelectorAll("svg.chart").forEach(drawChart);
const box = document.getElementById("requests-box");
if (box) setInterval(async () => {
  const res = await fetch(box.dataset.refresh, {credentials: "same-origin"});
  if (res.ok) box.innerHTML = await res.text();
}, 1500);
