"use strict";
// The run report: curves of one or more runs from their metrics.jsonl, drawn as SVG.

const COLORS = ["#1c7ed6", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#495057"];
const $ = (id) => document.getElementById(id);
const NS = "http://www.w3.org/2000/svg";
const X_LABEL = { step: "step", tokens: "tokens seen", elapsed: "seconds of training" };

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}
function escape(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}
function fmt(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a < 1e-3 || a >= 1e7) return String(parseFloat(v.toExponential(2)));
  if (a >= 1000 || Number.isInteger(v)) return Math.round(v).toLocaleString("en-US");
  return String(parseFloat(v.toPrecision(4)));
}

// "Nice" tick values covering [lo, hi].
function ticks(lo, hi, n, log) {
  if (log) {
    const out = [];
    const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
    for (let e = a; e <= b; e++) for (const m of b - a <= 2 ? [1, 2, 5] : [1]) {
      const v = m * Math.pow(10, e);
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
    if (out.length >= 3) return out;
    // Less than a decade: evenly spaced values, placed on the log scale.
    return ticks(lo, hi, n, false).filter((v) => v > 0);
  }
  const span = hi - lo || Math.abs(hi) || 1;
  const step0 = span / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

function smoothed(values, k) {
  if (k <= 1) return values;
  const half = (k - 1) / 2, out = [];
  for (let i = 0; i < values.length; i++) {
    let s = 0, n = 0;
    for (let j = Math.max(0, i - half); j <= Math.min(values.length - 1, i + half); j++) { s += values[j]; n++; }
    out.push(s / n);
  }
  return out;
}

// series: [{run, label, color, xs, ys, dash, faint, dots}]
function chart(parent, title, series, opts) {
  const box = document.createElement("div");
  box.className = "chart";
  box.innerHTML = `<h3>${escape(title)}</h3><div class="readout"></div>`;
  parent.appendChild(box);
  const W = 600, Hh = 250, m = { l: 58, r: 26, t: 10, b: 34 };
  const svg = el("svg", { viewBox: `0 0 ${W} ${Hh}` }, box);
  const pts = series.flatMap((s) => s.xs.map((x, i) => [x, s.ys[i]])).filter(([x, y]) => isFinite(x) && isFinite(y) && (!opts.log || y > 0));
  if (!pts.length) {
    el("text", { x: W / 2, y: Hh / 2, "text-anchor": "middle", fill: "#5b6475" }, svg).textContent = "no data yet";
    return;
  }
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (opts.log) { y0 = y0 / 1.05; y1 = y1 * 1.05; } else { const pad = (y1 - y0) * 0.05 || Math.abs(y1) * 0.05 || 1; y0 -= pad; y1 += pad; if (opts.zero && y0 > 0) y0 = 0; }
  const sx = (x) => m.l + (x - x0) / (x1 - x0) * (W - m.l - m.r);
  const sy = opts.log
    ? (y) => m.t + (Math.log(y1) - Math.log(y)) / (Math.log(y1) - Math.log(y0)) * (Hh - m.t - m.b)
    : (y) => m.t + (y1 - y) / (y1 - y0) * (Hh - m.t - m.b);
  const g = el("g", { class: "grid" }, svg), ax = el("g", { class: "axis" }, svg);
  for (const v of ticks(y0, y1, 5, opts.log)) {
    el("line", { x1: m.l, x2: W - m.r, y1: sy(v), y2: sy(v) }, g);
    el("text", { x: m.l - 6, y: sy(v) + 4, "text-anchor": "end" }, ax).textContent = fmt(v);
  }
  for (const v of ticks(x0, x1, 6, false)) {
    el("line", { x1: sx(v), x2: sx(v), y1: m.t, y2: Hh - m.b }, g);
    el("text", { x: sx(v), y: Hh - m.b + 15, "text-anchor": "middle" }, ax).textContent = fmt(v);
  }
  el("path", { d: `M${m.l},${m.t}V${Hh - m.b}H${W - m.r}`, fill: "none" }, ax);
  el("text", { x: (m.l + W - m.r) / 2, y: Hh - 4, "text-anchor": "middle" }, ax).textContent = X_LABEL[opts.x];
  for (const s of series) {
    const d = s.xs.map((x, i) => [x, s.ys[i]]).filter(([x, y]) => isFinite(x) && isFinite(y) && (!opts.log || y > 0))
      .map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    if (!d) continue;
    el("path", { d, fill: "none", stroke: s.color, "stroke-width": s.faint ? 1 : 1.8, "stroke-opacity": s.faint ? 0.25 : 1,
      "stroke-dasharray": s.dash ? "5 3" : "none" }, svg);
    if (s.dots) s.xs.forEach((x, i) => { if (isFinite(s.ys[i])) el("circle", { cx: sx(x), cy: sy(s.ys[i]), r: 2.6, fill: s.color }, svg); });
  }
  const cross = el("line", { y1: m.t, y2: Hh - m.b, stroke: "#868e96", "stroke-width": 1, visibility: "hidden" }, svg);
  const readout = box.querySelector(".readout");
  svg.addEventListener("mousemove", (e) => {
    const r = svg.getBoundingClientRect();
    const px = (e.clientX - r.left) / r.width * W;
    const x = x0 + (px - m.l) / (W - m.l - m.r) * (x1 - x0);
    cross.setAttribute("x1", px); cross.setAttribute("x2", px); cross.setAttribute("visibility", "visible");
    const lines = series.filter((s) => !s.faint && s.xs.length).map((s) => {
      let best = 0;
      s.xs.forEach((v, i) => { if (Math.abs(v - x) < Math.abs(s.xs[best] - x)) best = i; });
      return `<span style="color:${s.color}">${escape(s.label)}</span> ${fmt(s.ys[best])} <span class="muted">@ ${fmt(s.xs[best])}</span>`;
    });
    readout.innerHTML = lines.join("<br>");
  });
  svg.addEventListener("mouseleave", () => { cross.setAttribute("visibility", "hidden"); readout.innerHTML = ""; });
}

function xsOf(run, rows, x) {
  return rows.map((r) => (x === "step" ? r.step : x === "tokens" ? r.tokens_seen : r.elapsed_s));
}

function render() {
  const x = $("xaxis").value, log = $("logy").checked, k = +$("smooth").value;
  $("smooth-out").textContent = k <= 1 ? "off" : `${k} steps`;
  const charts = $("charts");
  charts.innerHTML = "";
  const runs = DATA.runs.map((r, i) => ({ ...r, color: COLORS[i % COLORS.length] }));
  const named = (r, what) => (runs.length > 1 ? `${r.name} ${what}` : what);
  const loss = [], ppl = [], lr = [], gn = [], tps = [];
  for (const r of runs) {
    const rows = r.metrics;
    const xs = xsOf(r, rows, x);
    const train = rows.map((m) => m.train_loss);
    if (k > 1) loss.push({ label: "", color: r.color, xs, ys: train, faint: true });
    loss.push({ label: named(r, "train"), color: r.color, xs, ys: smoothed(train, k) });
    const ev = rows.filter((m) => m.val_loss !== undefined && m.val_loss !== null);
    const evx = xsOf(r, ev, x);
    loss.push({ label: named(r, "val"), color: r.color, xs: evx, ys: ev.map((m) => m.val_loss), dash: true, dots: true });
    ppl.push({ label: named(r, "val perplexity"), color: r.color, xs: evx, ys: ev.map((m) => m.val_ppl), dots: true });
    lr.push({ label: named(r, "learning rate"), color: r.color, xs, ys: rows.map((m) => m.lr) });
    gn.push({ label: named(r, "gradient norm"), color: r.color, xs, ys: smoothed(rows.map((m) => m.grad_norm), k) });
    tps.push({ label: named(r, "tokens/s"), color: r.color, xs, ys: rows.map((m) => m.tokens_per_s) });
  }
  chart(charts, "Loss (nats per token): train solid, validation dashed", loss, { x, log });
  chart(charts, "Validation perplexity", ppl, { x, log });
  chart(charts, "Learning rate", lr, { x, log: false, zero: true });
  chart(charts, "Gradient norm before clipping", gn, { x, log: true });
  chart(charts, "Training throughput (tokens per second)", tps, { x, log: false, zero: true });
}

function renderRuns() {
  const runs = DATA.runs;
  $("summary").textContent = `${runs.length} run${runs.length > 1 ? "s" : ""} · made ${DATA.made}` +
    (DATA.refresh ? ` · this page reloads every ${DATA.refresh} s` : "");
  $("legend").innerHTML = runs.map((r, i) => `<span><span class="swatch" style="background:${COLORS[i % COLORS.length]}"></span> ${escape(r.name)}</span>`).join(" ");
  const head = "<thead><tr><th>run</th><th>model</th><th>status</th><th>best val loss</th><th>last val loss</th><th>tokens/s (median)</th><th>time</th></tr></thead>";
  const rows = runs.map((r, i) => {
    const ev = r.metrics.filter((m) => m.val_loss !== undefined && m.val_loss !== null);
    const last = ev.length ? ev[ev.length - 1] : null;
    const t = r.metrics.map((m) => m.tokens_per_s).sort((a, b) => a - b);
    const med = t.length ? t[Math.floor(t.length / 2)] : null;
    const end = r.metrics.length ? r.metrics[r.metrics.length - 1].elapsed_s : null;
    return `<tr><td><span class="swatch" style="background:${COLORS[i % COLORS.length]}"></span> <code>${escape(r.name)}</code></td>` +
      `<td>${escape(r.model)}</td><td>${escape(r.status)}</td>` +
      `<td class="num">${r.best ? `${r.best.val_loss.toFixed(4)} <span class="muted">@ ${r.best.step}</span>` : "–"}</td>` +
      `<td class="num">${last ? `${last.val_loss.toFixed(4)} <span class="muted">@ ${last.step}</span>` : "–"}</td>` +
      `<td class="num">${fmt(med)}</td><td class="num">${end === null ? "–" : end.toFixed(0) + " s"}</td></tr>`;
  });
  $("runs").innerHTML = head + "<tbody>" + rows.join("") + "</tbody>";
  $("details").innerHTML = runs.map((r, i) => {
    const sample = r.sample
      ? `<p class="hint">A sample from the checkpoint at step ${r.sample.step} (${escape(r.sample.how)}):</p><pre class="sample">${escape(r.sample.text)}</pre>`
      : `<p class="hint">${escape(r.sample_note || "no sample")}</p>`;
    return `<div class="run-block"><h2><span class="swatch" style="background:${COLORS[i % COLORS.length]}"></span> <code>${escape(r.name)}</code></h2>` +
      `<p class="muted">${escape(r.data)}</p>${sample}` +
      `<details><summary>config.toml</summary><pre>${escape(r.config)}</pre></details></div>`;
  }).join("");
}

function init() {
  for (const id of ["xaxis", "logy", "smooth"]) $(id).addEventListener("input", render);
  renderRuns();
  render();
}
init();
