"use strict";
// The attention explorer. DATA (written by `ember attention`) holds, for every kept checkpoint,
// each head's weights as bytes q = round(255·√w) over the lower triangle (row i: keys 0..=i),
// the rollout likewise, per-head summaries and the next-token logits.

const T = DATA.seq, L = DATA.n_layer, H = DATA.n_head;
const TRI = T * (T + 1) / 2;
const GROUP = H / DATA.n_kv_head;
const state = { ck: DATA.selected, layer: 0, head: 0, query: T - 1, pinned: false, rollout: false, scale: "sqrt",
  sortKey: null, sortDesc: true };
const $ = (id) => document.getElementById(id);

// ---------- data ----------
const decoded = new Map();
function bytes(ck, what) {
  const key = ck + ":" + what;
  if (!decoded.has(key)) {
    const bin = atob(DATA.checkpoints[ck][what]);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    decoded.set(key, out);
  }
  return decoded.get(key);
}
const rowStart = (i) => i * (i + 1) / 2;
function weightOf(arr, base, i, j) {
  if (j > i) return 0;
  const q = arr[base + rowStart(i) + j] / 255;
  return q * q;
}
// What the current view shows at (i, j): a head's weight, or the rollout through a layer.
function viewWeight(ck, layer, head, rollout) {
  if (rollout) {
    const arr = bytes(ck, "rollout"), base = layer * TRI;
    return (i, j) => weightOf(arr, base, i, j);
  }
  const arr = bytes(ck, "weights"), base = (layer * H + head) * TRI;
  return (i, j) => weightOf(arr, base, i, j);
}
// Whether the layer's mask hides key j from query i (drawn grey, unlike a weight of 0).
function masked(layer, i, j, rollout) {
  if (j > i) return true;
  if (rollout) return false;
  const kind = DATA.layers[layer];
  return kind.kind === "sliding_window" && i - j >= kind.window;
}

// ---------- colour ----------
// Viridis, from matplotlib's colormap sampled at 9 points and interpolated.
const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
const LUT = new Uint8Array(256 * 3);
for (let k = 0; k < 256; k++) {
  const x = k / 255 * 8, i = Math.min(7, Math.floor(x)), f = x - i;
  for (let c = 0; c < 3; c++) LUT[k * 3 + c] = Math.round(VIRIDIS[i][c] * (1 - f) + VIRIDIS[i + 1][c] * f);
}
const MASKED = [233, 236, 241];
function level(w) { return Math.max(0, Math.min(255, Math.round(255 * (state.scale === "sqrt" ? Math.sqrt(w) : w)))); }

// Draws the T×T matrix of `get` onto `canvas` (one texel per cell, scaled without smoothing).
const scratch = document.createElement("canvas");
scratch.width = T; scratch.height = T;
function drawMatrix(canvas, get, layer, rollout) {
  const sctx = scratch.getContext("2d");
  const img = sctx.createImageData(T, T);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      const o = (i * T + j) * 4;
      if (masked(layer, i, j, rollout)) {
        img.data[o] = MASKED[0]; img.data[o + 1] = MASKED[1]; img.data[o + 2] = MASKED[2];
      } else {
        const k = level(get(i, j)) * 3;
        img.data[o] = LUT[k]; img.data[o + 1] = LUT[k + 1]; img.data[o + 2] = LUT[k + 2];
      }
      img.data[o + 3] = 255;
    }
  }
  sctx.putImageData(img, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}

// ---------- tokens ----------
function shown(text) {
  return text.replace(/ /g, "·").replace(/\n/g, "↵").replace(/\t/g, "→").replace(/\r/g, "␍");
}
const isSpace = (text) => /^[\s]+$/.test(text);

// ---------- layout ----------
const grid = $("grid");
const cellSize = Math.max(40, Math.min(112, Math.floor(600 / H)));
const cells = [];
function buildGrid() {
  grid.style.gridTemplateColumns = `auto repeat(${H}, ${cellSize + 4}px)`;
  grid.appendChild(document.createElement("div"));
  for (let h = 0; h < H; h++) {
    const c = document.createElement("div");
    c.className = "collabel";
    c.textContent = GROUP > 1 ? `head ${h} (kv ${Math.floor(h / GROUP)})` : `head ${h}`;
    grid.appendChild(c);
  }
  for (let l = 0; l < L; l++) {
    const label = document.createElement("div");
    label.className = "rowlabel";
    const kind = DATA.layers[l];
    label.textContent = `layer ${l}` + (kind.kind === "sliding_window" ? ` · window ${kind.window}` : kind.kind === "linear" ? " · linear" : "");
    grid.appendChild(label);
    cells.push([]);
    for (let h = 0; h < H; h++) {
      const cell = document.createElement("div");
      cell.className = "cell";
      cell.dataset.layer = l; cell.dataset.head = h;
      const canvas = document.createElement("canvas");
      canvas.width = cellSize; canvas.height = cellSize;
      const cap = document.createElement("div");
      cell.append(canvas, cap);
      cell.addEventListener("click", () => select(l, h));
      grid.appendChild(cell);
      cells[l].push({ cell, canvas, cap });
    }
  }
}

function select(layer, head) {
  state.layer = layer; state.head = head;
  $("layer").value = layer; $("head").value = head;
  render();
}

// ---------- rendering ----------
function ckpt() { return DATA.checkpoints[state.ck]; }

function renderGrid() {
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < H; h++) {
      const { cell, canvas, cap } = cells[l][h];
      drawMatrix(canvas, viewWeight(state.ck, l, h, false), l, false);
      const s = ckpt().stats[l][h];
      cap.textContent = `prev ${s[2].toFixed(2)} · H ${s[0].toFixed(1)}`;
      cell.classList.toggle("selected", l === state.layer && h === state.head);
    }
  }
}

// Token labels along the large view's edges (positions only, when tokens are too small to read).
function drawAxes() {
  const cell = 520 / T;
  const top = $("big-top").getContext("2d"), left = $("big-left").getContext("2d");
  for (const ctx of [top, left]) {
    ctx.clearRect(0, 0, 520, 520);
    ctx.fillStyle = "#5b6475";
    ctx.font = `${Math.max(8, Math.min(13, Math.floor(cell) - 1))}px "DejaVu Sans Mono", monospace`;
  }
  // A token's first characters where its cell is wide enough, else every few positions' number.
  const chars = Math.max(1, Math.floor(cell / 7));
  const label = (i) => (cell >= 7 ? shown(DATA.tokens[i]).slice(0, chars) : String(i));
  const every = cell >= 7 ? 1 : Math.ceil(28 / cell);
  left.textAlign = "right"; left.textBaseline = "middle";
  top.textAlign = "center"; top.textBaseline = "bottom";
  for (let i = 0; i < T; i += every) {
    const centre = (i + 0.5) * cell;
    const bold = i === state.query;
    left.font = left.font.replace(/^bold /, "");
    if (bold) left.font = "bold " + left.font;
    left.fillStyle = bold ? "#1c7ed6" : "#5b6475";
    left.fillText(label(i), 36, centre);
    top.fillText(label(i), centre, 36);
  }
}

function renderFocus() {
  const l = state.layer, h = state.head;
  const big = $("big");
  drawAxes();
  drawMatrix(big, viewWeight(state.ck, l, h, state.rollout), l, state.rollout);
  // Mark the selected query row.
  const ctx = big.getContext("2d"), cell = big.height / T;
  ctx.strokeStyle = "rgba(28,126,214,0.9)";
  ctx.lineWidth = 1.5;
  ctx.strokeRect(0.75, state.query * cell + 0.75, big.width - 1.5, Math.max(cell, 2) - 0.5);
  const kind = DATA.layers[l];
  if (state.rollout) {
    $("focus-title").textContent = `Rollout through layer ${l}`;
    $("focus-note").textContent = "How much each input position (column) has flowed into each position (row) by the end of this layer, taking every head and the residual stream into account.";
    return;
  }
  $("focus-title").textContent = `Layer ${l}, head ${h}`;
  const notes = [];
  if (kind.kind === "sliding_window") notes.push(`Sliding window: each query sees itself and the ${kind.window - 1} positions before it; grey cells are hidden by the mask.`);
  else if (kind.kind === "linear") notes.push("Linear attention: these are the weights φ(q)·φ(k) / Σ φ(q)·φ(k) that its running sums apply without ever computing them.");
  else notes.push("Causal softmax attention: each query sees itself and every earlier position.");
  if (GROUP > 1) {
    const kv = Math.floor(h / GROUP);
    notes.push(`Grouped-query attention: this head reads key/value head ${kv}, shared with heads ${kv * GROUP}–${kv * GROUP + GROUP - 1}.`);
  }
  const s = ckpt().stats[l][h];
  notes.push(`Entropy ${s[0].toFixed(2)} nats, mean distance ${s[1].toFixed(1)}, previous ${s[2].toFixed(2)}, first ${s[3].toFixed(2)}, itself ${s[4].toFixed(2)}.`);
  $("focus-note").textContent = notes.join(" ");
}

const tokenSpans = [];
function buildText() {
  const box = $("text");
  DATA.tokens.forEach((t, i) => {
    const span = document.createElement("span");
    span.className = "tok" + (isSpace(t) ? " ws" : "");
    span.textContent = shown(t);
    span.title = `${i}: ${JSON.stringify(t)} (id ${DATA.ids[i]})`;
    span.addEventListener("mouseenter", () => { if (!state.pinned) { state.query = i; renderQuery(); renderFocus(); } });
    span.addEventListener("click", () => { state.pinned = !(state.pinned && state.query === i); state.query = i; renderQuery(); renderFocus(); });
    box.appendChild(span);
    tokenSpans.push(span);
    if (t.includes("\n")) box.appendChild(document.createElement("br"));
  });
}

function renderQuery() {
  const get = viewWeight(state.ck, state.layer, state.head, state.rollout);
  const i = state.query;
  const row = [];
  tokenSpans.forEach((span, j) => {
    span.classList.toggle("query", j === i);
    span.classList.toggle("future", j > i);
    if (j > i) { span.style.background = ""; return; }
    const w = get(i, j);
    row.push([w, j]);
    const a = state.scale === "sqrt" ? Math.sqrt(w) : w;
    span.style.background = a > 0.01 ? `rgba(217, 72, 15, ${Math.min(1, a).toFixed(3)})` : "";
    span.style.color = a > 0.55 ? "#fff" : "";
  });
  row.sort((a, b) => b[0] - a[0]);
  const top = row.slice(0, 10);
  const max = top.length ? top[0][0] : 1;
  const lines = top.map(([w, j]) =>
    `<tr><td>${w.toFixed(3)}</td><td><code>${escape(shown(DATA.tokens[j]))}</code> <span class="muted">@${j} (${i - j} back)</span></td>` +
    `<td><span class="bar" style="width:${Math.round(80 * w / Math.max(max, 1e-9))}px"></span></td></tr>`);
  $("topkeys").innerHTML = `<b>query ${i}</b> <code>${escape(shown(DATA.tokens[i]))}</code>${state.pinned ? " (pinned: click again to release)" : ""}` +
    `<table><thead><tr><th>weight</th><th>key</th><th></th></tr></thead><tbody>${lines.join("")}</tbody></table>`;
}

function escape(s) {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

const STAT_NAMES = ["entropy", "distance", "previous", "first", "itself"];
function renderStats() {
  const stats = ckpt().stats;
  let rows = [];
  for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) rows.push([l, h, stats[l][h]]);
  if (state.sortKey !== null) {
    const k = state.sortKey;
    rows.sort((a, b) => (state.sortDesc ? b[2][k] - a[2][k] : a[2][k] - b[2][k]));
  }
  const max = STAT_NAMES.map((_, k) => Math.max(1e-9, ...rows.map((r) => r[2][k])));
  const head = `<thead><tr><th>layer</th><th>head</th>${STAT_NAMES.map((n, k) =>
    `<th class="sortable" data-k="${k}">${n}${state.sortKey === k ? (state.sortDesc ? " ▼" : " ▲") : ""}</th>`).join("")}</tr></thead>`;
  const body = rows.map(([l, h, s]) =>
    `<tr data-l="${l}" data-h="${h}" class="${l === state.layer && h === state.head ? "selected" : ""}"><td>${l}</td><td>${h}</td>` +
    s.map((v, k) => `<td>${v.toFixed(k === 1 ? 1 : 2)} <span class="bar" style="width:${Math.round(36 * v / max[k])}px;background:#74a9e0"></span></td>`).join("") + "</tr>").join("");
  const table = $("stats");
  table.innerHTML = head + "<tbody>" + body + "</tbody>";
  table.querySelectorAll("th.sortable").forEach((th) => th.addEventListener("click", () => {
    const k = +th.dataset.k;
    state.sortDesc = state.sortKey === k ? !state.sortDesc : true;
    state.sortKey = k;
    renderStats();
  }));
  table.querySelectorAll("tbody tr").forEach((tr) => tr.addEventListener("click", () => select(+tr.dataset.l, +tr.dataset.h)));
}

function renderNext() {
  const { next_ids: ids, next_logits: logits } = ckpt();
  const temp = +$("temp").value;
  let k = Math.floor(+$("topk").value) || 0;
  $("temp-out").textContent = temp === 0 ? "0 (greedy)" : temp.toFixed(2);
  const order = ids.map((_, i) => i).sort((a, b) => logits[b] - logits[a]);
  const keep = k > 0 ? order.slice(0, k) : order;
  let probs;
  if (temp === 0) {
    probs = keep.map((_, r) => (r === 0 ? 1 : 0));
  } else {
    const m = logits[keep[0]] / temp;
    const e = keep.map((i) => Math.exp(logits[i] / temp - m));
    const z = e.reduce((a, b) => a + b, 0);
    probs = e.map((x) => x / z);
  }
  const rows = keep.slice(0, 12).map((i, r) => {
    const p = probs[r];
    const text = DATA.vocab_text[ids[i]] ?? `#${ids[i]}`;
    return `<div class="row"><span class="tokname" title="id ${ids[i]}">${escape(shown(text))}</span>` +
      `<span class="track"><span class="fill" style="display:block;width:${(100 * p).toFixed(1)}%"></span></span>` +
      `<span>${(100 * p).toFixed(1)}%</span></div>`;
  });
  $("bars").innerHTML = rows.join("");
}

function renderHeader() {
  const c = ckpt();
  $("ckpt-out").textContent = `step ${c.step}`;
  $("layer-out").textContent = String(state.layer);
  $("head-out").textContent = String(state.head);
  const parts = [`${L} layers × ${H} heads` + (GROUP > 1 ? ` (${DATA.n_kv_head} key/value heads)` : ""),
    `${T} prompt tokens`, `checkpoint ${state.ck + 1} of ${DATA.checkpoints.length} (step ${c.step}` +
      (c.val_loss == null ? ")" : `, val loss ${c.val_loss.toFixed(4)})`)];
  $("summary").textContent = parts.join(" · ") + (DATA.note ? ` · ${DATA.note}` : "");
}

function render() {
  renderHeader();
  renderGrid();
  renderFocus();
  renderQuery();
  renderStats();
  renderNext();
}

// ---------- wiring ----------
function init() {
  $("run").textContent = DATA.run;
  for (const [id, max] of [["ckpt", DATA.checkpoints.length - 1], ["layer", L - 1], ["head", H - 1]]) $(id).max = max;
  $("ckpt").value = state.ck;
  $("ckpt").addEventListener("input", (e) => { state.ck = +e.target.value; render(); });
  $("layer").addEventListener("input", (e) => { state.layer = +e.target.value; render(); });
  $("head").addEventListener("input", (e) => { state.head = +e.target.value; render(); });
  $("rollout").addEventListener("change", (e) => { state.rollout = e.target.checked; renderFocus(); renderQuery(); });
  $("scale").addEventListener("change", (e) => { state.scale = e.target.value; render(); });
  $("temp").addEventListener("input", renderNext);
  $("topk").addEventListener("input", renderNext);
  const bar = $("colorbar").getContext("2d");
  for (let x = 0; x < 120; x++) {
    const k = Math.round(x / 119 * 255) * 3;
    bar.fillStyle = `rgb(${LUT[k]},${LUT[k + 1]},${LUT[k + 2]})`;
    bar.fillRect(x, 0, 1, 12);
  }
  const big = $("big"), tip = $("tooltip");
  const at = (e) => {
    const r = big.getBoundingClientRect();
    const j = Math.floor((e.clientX - r.left) / r.width * T), i = Math.floor((e.clientY - r.top) / r.height * T);
    return [Math.max(0, Math.min(T - 1, i)), Math.max(0, Math.min(T - 1, j))];
  };
  big.addEventListener("mousemove", (e) => {
    const [i, j] = at(e);
    const w = masked(state.layer, i, j, state.rollout) ? null : viewWeight(state.ck, state.layer, state.head, state.rollout)(i, j);
    tip.textContent = `query ${i} ${JSON.stringify(DATA.tokens[i])}\nkey ${j} ${JSON.stringify(DATA.tokens[j])}\n` +
      (w === null ? "hidden by the mask" : `weight ${w.toFixed(3)}`);
    const box = $("focus").getBoundingClientRect();
    tip.style.left = (e.clientX - box.left + 14) + "px";
    tip.style.top = (e.clientY - box.top + 14) + "px";
    tip.style.display = "block";
  });
  big.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  big.addEventListener("click", (e) => { state.query = at(e)[0]; state.pinned = true; renderQuery(); renderFocus(); });
  buildGrid();
  buildText();
  render();
}
init();
