// Draws the page's charts from the JSON the server embedded (balance,
// signal, voltage; daily and half-hourly intervals), and keeps the tariff
// request table current. Nothing else runs in the browser.
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
// Interval charts: the data is {labels, series: [{name, kind, values,
// half_hours, expected}], until}; a null value is a bucket with nothing
// derived, drawn as a gap (never as zero).
const colours = {import: ["#2e86de", "#85c1e9"], export: ["#e67e22", "#f5cba7"]};
function svgEl(svg, name, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text != null) e.textContent = text;
  svg.appendChild(e); return e;
}
function titled(e, text) { svgEl(e, "title", {}, text); }
function intervalChart(svg) {
  const W = 1100, H = 200, P = 40;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", "100%");
  const d = JSON.parse(document.getElementById(svg.dataset.series).textContent || "{}");
  const labels = d.labels || [], series = d.series || [], n = labels.length;
  if (!n || !series.length) { svgEl(svg, "text", {x: 20, y: 90}, "no interval data"); return null; }
  const vs = series.flatMap(s => s.values.filter(v => v !== null).map(Number));
  const v1 = Math.max(...vs, 0) || 1;
  const y = v => H - P - (H - 2 * P) * v / v1, slot = (W - 2 * P) / n;
  svgEl(svg, "text", {x: 2, y: P + 4, "font-size": 11}, v1.toFixed(2));
  svgEl(svg, "text", {x: 2, y: H - P + 4, "font-size": 11}, "0");
  svgEl(svg, "line", {x1: P, x2: W - P, y1: H - P, y2: H - P, stroke: "#999"});
  const seen = {};
  series.forEach((s, j) => {
    const k = seen[s.kind] || 0, c = colours[s.kind][k] || "#888";
    seen[s.kind] = k + 1;
    s.colour = c;
    svgEl(svg, "rect", {class: "legend", x: P + 130 * j, y: 4, width: 10, height: 10, fill: c});
    svgEl(svg, "text", {class: "legend", x: P + 130 * j + 14, y: 13}, s.name);
  });
  return {W, H, P, n, y, slot, labels, series, until: d.until ?? n};
}
function drawBars(svg) {
  const c = intervalChart(svg);
  if (!c) return;
  const bw = c.slot * 0.8 / c.series.length;
  for (let i = 0; i < c.n; i++) {
    if (i % 5 === 0) svgEl(svg, "text", {x: c.P + i * c.slot, y: c.H - c.P + 14, "font-size": 10}, c.labels[i].slice(5, 10));
    c.series.forEach((s, j) => {
      const x = c.P + i * c.slot + c.slot * 0.1 + j * bw, v = s.values[i], day = c.labels[i].slice(0, 10);
      if (v === null) {
        if (i < c.until) titled(svgEl(svg, "rect", {class: "missing", x, y: c.H - c.P - 3, width: bw, height: 3, fill: "#c0392b"}), `${day}: no half hour derived`);
        return;
      }
      const partial = s.half_hours[i] < s.expected;
      titled(svgEl(svg, "rect", {class: "daybar " + s.kind, x, y: c.y(Number(v)), width: bw, height: c.H - c.P - c.y(Number(v)), fill: s.colour, opacity: partial ? 0.45 : 1}),
        `${day} ${s.name}: ${v} kWh` + (partial ? ` (${s.half_hours[i]} of ${s.expected} half hours)` : ""));
    });
  }
}
function drawProfile(svg) {
  const c = intervalChart(svg);
  if (!c) return;
  const x = i => c.P + c.slot * (i + 0.5);
  for (let i = 0; i < c.n; i++) {
    if (i % 12 === 0) svgEl(svg, "text", {x: c.P + i * c.slot, y: c.H - c.P + 14, "font-size": 10}, c.labels[i].slice(11, 16));
    if (i < c.until && c.series.some(s => s.kind === "import" && s.values[i] === null))
      titled(svgEl(svg, "rect", {class: "gap", x: c.P + i * c.slot, y: c.P, width: c.slot, height: c.H - 2 * c.P, fill: "#fadbd8"}), c.labels[i].slice(11, 16) + ": no interval");
  }
  for (const s of c.series) {
    let run = [];
    const flush = () => {
      if (run.length > 1) svgEl(svg, "polyline", {class: "seg " + s.kind, fill: "none", stroke: s.colour, "stroke-width": 1.5, points: run.join(" ")});
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v === null) { flush(); return; }
      run.push(x(i) + "," + c.y(Number(v)));
      svgEl(svg, "circle", {class: "pt " + s.kind, cx: x(i), cy: c.y(Number(v)), r: 2, fill: s.colour});
    });
    flush();
  }
}
document.querySelectorAll("svg.chart").forEach(drawChart);
document.querySelectorAll("svg.bars").forEach(drawBars);
document.querySelectorAll("svg.profile").forEach(drawProfile);
const box = document.getElementById("requests-box");
if (box) setInterval(async () => {
  const res = await fetch(box.dataset.refresh, {credentials: "same-origin"});
  if (res.ok) box.innerHTML = await res.text();
}, 1500);
