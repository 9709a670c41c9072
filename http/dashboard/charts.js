// Draws the page's charts from the JSON the server embedded (balance,
// signal, voltage, daily and half-hourly intervals, all with uPlot), and
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
    width: Math.max(div.clientWidth, 280), height: 220, tzDate: utc,
    cursor: {drag: {x: true, y: false}},
    // One reading alone gets a day around it, not uPlot's years.
    scales: {x: {time: true, range: (u, mn, mx) => xs.length && xs[0] === xs[xs.length - 1] ? [xs[0] - 43200, xs[0] + 43200] : [mn, mx]}, y: {range: () => [lo, hi]}},
    series: [{value: (u, v) => v == null ? "–" : new Date(v * 1000).toISOString().slice(0, 16).replace("T", " ") + "Z"},
      {label: div.dataset.label || "value", stroke: "#2e86de", width: 1.5, points: {size: 4}, value: (u, v) => fmtValue(v, prefix, unit, dp)}],
    // A whole-number series (signal) gets whole-number ticks.
    axes: [{values: timeTicks}, Object.assign({size: 64, values: (u, vals) => vals.map(v => fmtValue(v, prefix, unit, Math.min(dp, 2)))}, dp === 0 ? {incrs: [1, 2, 5, 10, 20, 50]} : {})],
    hooks: {draw: [draw]},
  };
  const u = new uPlot(opts, [xs, ys], div);
  charts[div.id] = {plot: u, points: xs.length, guideShown, markers: markers.filter(m => m >= xs[0] && m <= xs[xs.length - 1]).length};
  new ResizeObserver(() => u.setSize({width: Math.max(div.clientWidth, 280), height: 220})).observe(div);
}
// The time axis's ticks in UTC, the way the rest of the dashboard writes
// times (ISO dates, 24-hour clock), never uPlot's US defaults ("12/3",
// "3am"): hours as "15:00" with the day ("3 Dec") at midnight, days as
// "3 Dec", longer steps as "Dec 2026".
const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
function timeTicks(u, splits, axis, space, incr) {
  return splits.map(ts => {
    const d = new Date(ts * 1000), day = `${d.getUTCDate()} ${months[d.getUTCMonth()]}`;
    if (incr >= 28 * 86400) return `${months[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
    if (incr >= 86400) return day;
    const hm = d.toISOString().slice(11, 16);
    return hm === "00:00" ? day : incr < 60 ? d.toISOString().slice(11, 19) : hm;
  });
}
function fmtValue(v, prefix, unit, dp) {
  if (v == null) return "–";
  return (v < 0 ? "−" : "") + prefix + Math.abs(v).toFixed(dp) + unit;
}
// Interval charts, uPlot too: the data is {labels, series: [{name, kind,
// values, half_hours, expected}], until}, expected being the half hours
// each bucket should hold (0 before the register was commissioned). A
// null value where some were expected is a bucket with nothing derived: a
// gap in the day's lines (shaded) and a red tick under the daily bars,
// never a zero. A day with fewer half hours than expected is drawn paler
// and says so in the legend. Buckets from until on have not ended yet:
// not missing, just not yet; buckets before commissioning are neither.
const colours = {import: ["#2e86de", "#85c1e9"], export: ["#e67e22", "#f5cba7"]};
const utc = ts => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
function intervalChart(div) {
  const bars = div.classList.contains("bars"), step = bars ? 86400 : 1800;
  const d = JSON.parse(document.getElementById(div.dataset.series).textContent || "{}");
  const labels = d.labels || [], series = d.series || [], n = labels.length, until = Math.min(d.until ?? n, n);
  // Each bucket sits at its middle (the cursor picks the bucket under it);
  // the legend names the bucket by its start.
  const xs = labels.map(l => Date.parse(l) / 1000 + step / 2);
  // A bucket is missing when it has ended with no import on some element
  // that was commissioned by then.
  const due = (s, i) => (s.expected || [])[i] > 0;
  const missing = [];
  for (let i = 0; i < until; i++) if (series.some(s => s.kind === "import" && s.values[i] === null && due(s, i))) missing.push(i);
  const info = {kind: bars ? "bars" : "lines", series: series.map(s => s.name), missing: missing.length,
    missingAt: missing.map(i => labels[i]), drawn: {}, runs: {}};
  charts[div.id] = info;
  if (!n || !series.length) { div.textContent = "No interval data."; div.classList.add("empty"); return; }
  const ys = series.map(s => s.values.map(v => v === null ? null : Number(v)));
  for (const [j, s] of series.entries()) {
    const drawn = ys[j].filter(v => v !== null).length;
    let runs = 0;
    ys[j].forEach((v, i) => { if (v !== null && (i === 0 || ys[j][i - 1] === null)) runs++; });
    info.drawn[s.kind] = (info.drawn[s.kind] || 0) + drawn;
    info.runs[s.kind] = (info.runs[s.kind] || 0) + runs;
  }
  const hi = Math.max(0, ...ys.flat().filter(v => v !== null)) * 1.1 || 1;
  const partial = (j, i) => ys[j][i] !== null && series[j].half_hours[i] < series[j].expected[i];
  // Bars side by side in the day's slot: series j of k at its own offset.
  const barPaths = (u, sidx) => {
    const j = sidx - 1, k = series.length, p = new Path2D();
    const slot = u.valToPos(xs[0] + step, "x", true) - u.valToPos(xs[0], "x", true), bw = slot * 0.8 / k;
    const y0 = u.valToPos(0, "y", true);
    ys[j].forEach((v, i) => {
      if (v === null) return;
      const x = u.valToPos(xs[i] - step / 2, "x", true) + slot * 0.1 + j * bw, y = u.valToPos(v, "y", true);
      p.rect(x, y, bw, y0 - y);
    });
    return {stroke: p, fill: p};
  };
  const dpr = window.devicePixelRatio || 1;
  const draw = u => {
    const ctx = u.ctx, {top, height} = u.bbox;
    const x0 = i => u.valToPos(xs[i] - step / 2, "x", true), x1 = i => u.valToPos(xs[i] + step / 2, "x", true);
    ctx.save();
    for (const i of missing) {
      if (bars) { ctx.fillStyle = "#c0392b"; ctx.fillRect(x0(i) + 1, top + height - 3 * dpr, x1(i) - x0(i) - 2, 3 * dpr); }
      else { ctx.fillStyle = "rgba(192, 57, 43, 0.15)"; ctx.fillRect(x0(i), top, x1(i) - x0(i), height); }
    }
    if (bars) { // partial days, paler
      const slot = x1(0) - x0(0), bw = slot * 0.8 / series.length, y0 = u.valToPos(0, "y", true);
      ctx.fillStyle = "rgba(255, 255, 255, 0.55)";
      series.forEach((s, j) => ys[j].forEach((v, i) => {
        if (!partial(j, i)) return;
        const y = u.valToPos(v, "y", true);
        ctx.fillRect(x0(i) + slot * 0.1 + j * bw, y, bw, y0 - y);
      }));
    }
    ctx.restore();
  };
  const seen = {};
  const opts = {
    width: Math.max(div.clientWidth, 280), height: 200, tzDate: utc,
    cursor: {drag: {x: !bars, y: false}, points: {show: !bars}},
    scales: {x: {time: true, range: () => [xs[0] - step / 2, xs[n - 1] + step / 2]}, y: {range: () => [0, hi]}},
    legend: {live: true},
    series: [{value: (u, v) => v == null ? "–" : new Date((v - step / 2) * 1000).toISOString().slice(0, bars ? 10 : 16).replace("T", " ") + (bars ? "" : "Z")},
      ...series.map((s, j) => {
        const k = seen[s.kind] || 0, c = colours[s.kind][k] || "#888";
        seen[s.kind] = k + 1;
        const value = (u, v, si, i) => {
          if (i == null) return "–";
          if (v == null) return i >= until ? "not yet" : due(s, i) ? "missing" : "before commissioning";
          return `${s.values[i]} kWh` + (partial(j, i) ? ` (${s.half_hours[i]} of ${s.expected[i]} half hours)` : "");
        };
        return bars ? {label: s.name, stroke: c, fill: c, width: 0, paths: barPaths, points: {show: false}, value}
          : {label: s.name, stroke: c, width: 1.5, points: {show: true, size: 4}, value};
      })],
    axes: [{values: timeTicks}, {size: 56, values: (u, vals) => vals.map(v => v.toFixed(hi < 0.25 ? 3 : 2))}],
    hooks: {draw: [draw]},
  };
  const u = new uPlot(opts, [xs, ...ys], div);
  info.plot = u;
  // What the legend says of bucket i (as the cursor over it would show).
  info.legendAt = i => { u.setCursor({left: u.valToPos(xs[i], "x"), top: 10}); return [...div.querySelectorAll(".u-legend .u-series")].slice(1).map(e => e.querySelector(".u-value").textContent); };
  info.barHeight = (j, i) => ys[j][i] === null ? 0 : (u.valToPos(0, "y") - u.valToPos(ys[j][i], "y"));
  new ResizeObserver(() => u.setSize({width: Math.max(div.clientWidth, 280), height: 200})).observe(div);
}
if (window.uPlot) {
  document.querySelectorAll("div.uchart").forEach(timeChart);
  document.querySelectorAll("div.ichart").forEach(intervalChart);
}
// Lists whose rows move on as pushes go (tariff requests, top-ups,
// commands, writes) are fetched again every 1.5 s while the page is shown
// and one of their requests is still on its way (a page with nothing in
// flight asks the server nothing; a new request reloads the page anyway).
const moving = '[data-refresh] [data-status="pending"], [data-refresh] [data-status="sending"], ' +
  '[data-refresh] [data-status="sent"], [data-refresh] [data-status="wait_token_push"]';
const boxes = [...document.querySelectorAll("[data-refresh]")];
if (boxes.length) setInterval(async () => {
  if (document.visibilityState !== "visible" || !document.querySelector(moving)) return;
  await Promise.all(boxes.map(async box => {
    const res = await fetch(box.dataset.refresh, {credentials: "same-origin"});
    if (res.ok) box.innerHTML = await res.text();
  }));
}, 1500);
