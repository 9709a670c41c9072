// Draws the page's charts from the JSON the server embedded (balance,
// signal, voltage with uPlot; daily and half-hourly intervals as SVG), and
// keeps the tariff request table current. Nothing else runs in the browser.
"use strict";
// Time-series charts (balance, signal, voltage) are uPlot's (vendored in
// /static/vendor/uplot): a time axis, the value under the cursor in the
// legend, drag to zoom and double-click to reset. The y axis fits the data;
// a reference line (the emergency-credit limit) is drawn when it lies near
// the data, and named under the chart when it does not. Top-ups are marked
// from the ledger.
const charts = {};
window.flowsCharts = charts; // for the browser tests and the curious
function timeChart(div) {
  const pts = JSON.parse(document.getElementById(div.dataset.series).textContent || "[]");
  const note = document.getElementById(div.id + "-note");
  if (!pts.length) { div.textContent = "No readings in this range yet."; div.classList.add("empty"); charts[div.id] = {points: 0}; return; }
  const xs = pts.map(p => Date.parse(p[0]) / 1000), ys = pts.map(p => Number(p[1]));
  const prefix = div.dataset.prefix || "", unit = div.dataset.unit || "", dp = Number(div.dataset.decimals ?? 2);
  const guide = div.dataset.guide ? Number(div.dataset.guide) : null, guideLabel = div.dataset.guideLabel || "";
  const markers = div.dataset.markers ? JSON.parse(document.getElementById(div.dataset.markers).textContent || "[]").map(t => Date.parse(t) / 1000) : [];
  let lo = Math.min(...ys), hi = Math.max(...ys);
  const pad = Math.max((hi - lo) * 0.1, Math.abs(hi) * 0.02, dp === 0 ? 2 : 0.5);
  lo -= pad; hi += pad;
  // Near the data: within a quarter of its span below it.
  const guideShown = guide !== null && guide <= hi && guide >= lo - (hi - lo) * 0.25;
  if (guideShown) lo = Math.min(lo, guide - pad / 2);
  if (note) note.textContent = guide !== null && !guideShown ? `${guideLabel}: ${fmtValue(guide, prefix, unit, dp)}, below the range shown.` : "";
  const dpr = window.devicePixelRatio || 1;
  const draw = u => {
    const ctx = u.ctx, {left, top, width, height} = u.bbox;
    ctx.save();
    if (guideShown) {
      const y = u.valToPos(guide, "y", true);
      ctx.strokeStyle = ctx.fillStyle = "#c0392b"; ctx.setLineDash([4 * dpr, 4 * dpr]); ctx.lineWidth = dpr;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + width, y); ctx.stroke();
      ctx.font = `${11 * dpr}px system-ui, sans-serif`; ctx.fillText(guideLabel, left + 6 * dpr, y - 4 * dpr);
    }
    ctx.setLineDash([2 * dpr, 3 * dpr]); ctx.strokeStyle = ctx.fillStyle = "#1e8449"; ctx.lineWidth = dpr;
    for (const m of markers) {
      const x = u.valToPos(m, "x", true);
      if (x < left || x > left + width) continue;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(x - 5 * dpr, top); ctx.lineTo(x + 5 * dpr, top); ctx.lineTo(x, top + 8 * dpr); ctx.fill();
    }
    ctx.restore();
  };
  const opts = {
    width: Math.max(div.clientWidth, 280), height: 220,
    cursor: {drag: {x: true, y: false}},
    scales: {x: {time: true}, y: {range: () => [lo, hi]}},
    series: [{value: (u, v) => v == null ? "–" : new Date(v * 1000).toISOString().slice(0, 16).replace("T", " ") + "Z"},
      {label: div.dataset.label || "value", stroke: "#2e86de", width: 1.5, points: {size: 4}, value: (u, v) => fmtValue(v, prefix, unit, dp)}],
    // A whole-number series (signal) gets whole-number ticks.
    axes: [{}, Object.assign({size: 64, values: (u, vals) => vals.map(v => fmtValue(v, prefix, unit, Math.min(dp, 2)))}, dp === 0 ? {incrs: [1, 2, 5, 10, 20, 50]} : {})],
    hooks: {draw: [draw]},
  };
  const u = new uPlot(opts, [xs, ys], div);
  charts[div.id] = {plot: u, points: xs.length, guideShown, markers: markers.filter(m => m >= xs[0] && m <= xs[xs.length - 1]).length};
  new ResizeObserver(() => u.setSize({width: Math.max(div.clientWidth, 280), height: 220})).observe(div);
}
function fmtValue(v, prefix, unit, dp) {
  if (v == null) return "–";
  return (v < 0 ? "−" : "") + prefix + Math.abs(v).toFixed(dp) + unit;
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
if (window.uPlot) document.querySelectorAll("div.uchart").forEach(timeChart);
document.querySelectorAll("svg.bars").forEach(drawBars);
document.querySelectorAll("svg.profile").forEach(drawProfile);
const box = document.getElementById("requests-box");
if (box) setInterval(async () => {
  const res = await fetch(box.dataset.refresh, {credentials: "same-origin"});
  if (res.ok) box.innerHTML = await res.text();
}, 1500);
