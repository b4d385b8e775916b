// The tgs dashboard: applies the server's updates (server-sent events) and draws them.
"use strict";
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2",
  "#c7c7c7", "#dbdb8d", "#9edae5"];
const SVG = "http://www.w3.org/2000/svg";
const WINDOW = 60;  // seconds of task stream shown
const ROW = 14;     // pixels per slot row
const $ = (id) => document.getElementById(id);
const state = {run: null, loops: [], workers: [], failures: [], functions: [], outputs: [],
  bars: new Map(), statuses: ""};
let layout = null, layoutAsked = 0, drawPending = false;

function el(tag, attrs = {}, text) {
  const node = tag === "svg" || /^(rect|line|text|circle|g|title)$/.test(tag)
    ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function secs(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}
function natural(a, b) { return a.localeCompare(b, undefined, {numeric: true}); }
function colours() {
  const names = [...state.functions].sort(natural);
  return new Map(names.map((name, i) => [name, PALETTE[i % PALETTE.length]]));
}

// -- updates -------------------------------------------------------------------------
function apply(msg) {
  if (msg.full) { state.bars.clear(); state.statuses = ""; }
  for (const key of ["run", "loops", "workers", "failures", "functions", "outputs"]) {
    if (key in msg) state[key] = msg[key];
  }
  for (const bar of msg.bars || []) state.bars.set(bar[0], bar);
  for (const uid of msg.drop || []) state.bars.delete(uid);
  if ("statuses" in msg) state.statuses = msg.statuses;
  if (msg.status_changes) {
    const letters = state.statuses.split("");
    for (const [i, letter] of msg.status_changes) letters[i] = letter;
    state.statuses = letters.join("");
    recolour(msg.status_changes);
  }
  if (!drawPending) { drawPending = true; requestAnimationFrame(draw); }
}
function connect() {
  const source = new EventSource("/events");
  source.onmessage = (event) => apply(JSON.parse(event.data));
  source.onerror = () => { $("state").textContent = "reconnecting…"; };
}

// -- drawing -------------------------------------------------------------------------
function draw() {
  drawPending = false;
  if (!state.run) return;
  drawHeader(); drawLoops(); drawWorkers(); drawStream(); drawFailures(); drawGraph();
}
function drawHeader() {
  const run = state.run;
  const word = run.ended ? (run.stopped ? "stopped" : "ended")
    : run.started ? "running" : "waiting for workers";
  $("state").textContent = `${word}, ${secs(run.elapsed)}`;
  $("state").className = run.ended ? (run.failed ? "failed" : "ended") : "";
  let text = `${run.done} / ${run.total} done`;
  if (run.failed) text += `, ${run.failed} failed`;
  if (run.skipped) text += `, ${run.skipped} skipped`;
  $("progress").textContent = text;
  let pace = `${run.workers} worker${run.workers === 1 ? "" : "s"}`;
  if (run.rate !== null) pace += `, ${run.rate} tasks/s`;
  if (run.left !== null) pace += `, ~${secs(run.left)} left`;
  $("pace").textContent = pace;
  const outputs = $("outputs");
  outputs.replaceChildren(...state.outputs.map((o) => el("a", {href: o.href, target: "_blank"}, o.label)));
}
function stacked(parts, total) {
  const bar = el("div", {class: "bar"});
  for (const [cls, n] of parts) {
    if (!n || !total) continue;
    const span = el("span", {class: "c-" + cls, title: `${n} ${cls}`});
    span.style.width = (100 * n / total) + "%";
    bar.append(span);
  }
  return bar;
}
function drawLoops() {
  const rows = state.loops.map((loop) => {
    const total = loop.waiting + loop.ready + loop.running + loop.succeeded + loop.failed + loop.skipped;
    const tr = el("tr", {"data-loop": loop.name});
    tr.append(el("td", {}, loop.name));
    const slots = el("td");
    slots.append(el("span", {"data-count": "slots"}, `${loop.running} / ${loop.concurrency}`),
      stacked([["running", loop.running]], loop.concurrency));
    tr.append(slots);
    for (const key of ["waiting", "ready", "running", "succeeded", "failed", "skipped"]) {
      tr.append(el("td", {class: "num", "data-count": key}, String(loop[key])));
    }
    const bar = el("td");
    bar.append(stacked(["succeeded", "failed", "skipped", "running", "ready", "waiting"]
      .map((k) => [k, loop[k]]), total));
    tr.append(bar);
    return tr;
  });
  $("loops").tBodies[0].replaceChildren(...rows);
}
function drawWorkers() {
  const rows = [...state.workers].sort((a, b) => natural(a.id, b.id)).map((w) => {
    const tr = el("tr", {"data-worker": w.id, class: w.lost ? "lost" : w.left !== null ? "left" : ""});
    tr.append(el("td", {class: "name"}, `${w.name} (${w.id})`), el("td", {}, w.loops.join(", ")));
    const now = el("td");
    now.append(el("span", {"data-count": "running"}, String(w.running)));
    if (w.now.length) now.append(el("span", {class: "now"}, "  " + w.now.map((t) => t[1]).join(", ")
      + (w.running > w.now.length ? ", …" : "")));
    tr.append(now, el("td", {class: "num", "data-count": "done"}, String(w.done)),
      el("td", {}, secs(Math.max(0, w.joined)) + " in"));
    const left = w.left === null ? "" : `${secs(w.left)} in: ${w.lost ? "lost, " : ""}${w.because}`;
    tr.append(el("td", {}, left));
    return tr;
  });
  $("workers").tBodies[0].replaceChildren(...rows);
}
function drawStream() {
  const svg = $("stream");
  const width = svg.clientWidth || 1000, label = 150;
  // From the oldest bar held: past the server's cap on bars, that is less than a minute.
  const now = state.run.elapsed;
  let from = Math.max(0, now - WINDOW), oldest = now;
  const rows = new Map();
  for (const bar of state.bars.values()) {
    rows.set(`${bar[2]}\u0000${bar[3]}`, [bar[2], bar[3]]);
    oldest = Math.min(oldest, bar[4]);
  }
  from = Math.max(from, Math.min(oldest, now));
  const keys = [...rows.keys()].sort((a, b) => {
    const [wa, la] = rows.get(a), [wb, lb] = rows.get(b);
    return natural(wa, wb) || la - lb;
  });
  const rowOf = new Map(keys.map((k, i) => [k, i]));
  const names = new Map(state.workers.map((w) => [w.id, w.name]));
  const height = Math.max(3, keys.length) * ROW + 16;
  svg.setAttribute("height", height);
  const x = (t) => label + (width - label - 4) * (Math.max(t, from) - from) / Math.max(1e-9, now - from || WINDOW);
  const children = [];
  keys.forEach((k, i) => {
    const [worker, lane] = rows.get(k);
    children.push(el("text", {x: 2, y: i * ROW + 11}, `${names.get(worker) || worker} #${lane}`));
  });
  const palette = colours();
  for (const bar of state.bars.values()) {
    const [uid, fn, worker, lane, start, end, failed] = bar;
    const stop = end === null ? now : end;
    if (stop < from) continue;
    const i = rowOf.get(`${worker}\u0000${lane}`);
    const x0 = x(start), w = Math.max(1.5, x(stop) - x0);
    const rect = el("rect", {class: "bar-run" + (failed ? " failed" : "") + (end === null ? " open" : ""),
      x: x0.toFixed(1), y: i * ROW + 2, width: w.toFixed(1), height: ROW - 4,
      fill: failed ? "#ff2a2a" : palette.get(fn) || "#888", "data-uid": uid, "data-function": fn});
    const took = end === null ? `running for ${secs(now - start)}` : `took ${secs(end - start)}`;
    rect.append(el("title", {}, `${fn} ${uid}\n${names.get(worker) || worker} #${lane}, ${took}` +
      (failed ? "\nFAILED" : "")));
    children.push(rect);
  }
  children.push(el("line", {class: "now-line", x1: label, x2: width, y1: height - 12, y2: height - 12}));
  children.push(el("text", {x: label, y: height - 2}, secs(from)), el("text", {x: width - 50, y: height - 2}, secs(now)));
  svg.replaceChildren(...children);
  $("legend").replaceChildren(...[...palette].map(([fn, colour]) => {
    const item = el("span", {}, fn), swatch = el("i");
    swatch.style.background = colour; item.prepend(swatch); return item;
  }));
}
function drawFailures() {
  const list = $("failures");
  if (!state.failures.length) { list.replaceChildren(el("li", {class: "none"}, "none")); return; }
  list.replaceChildren(...state.failures.map((f) => {
    const li = el("li");
    li.append(el("span", {class: "count"}, `${f.count}×`), " ", el("b", {}, f.function), " ",
      el("span", {class: "headline"}, f.headline), " ");
    const a = el("a", {href: "#search=" + encodeURIComponent(f.example)}, "e.g. " + f.example.slice(0, 13) + "…");
    li.append(a);
    return li;
  }));
}

// -- the graph view ------------------------------------------------------------------
function drawGraph() {
  const n = state.statuses.length;
  const note = $("graph-note");
  if (!n) {
    const total = state.run.total;
    note.textContent = total ? `${total} tasks: more than this view draws.` : "no tasks yet";
    if (layout) { layout = null; $("graph").replaceChildren(); }
    return;
  }
  if ((!layout || layout.n !== n) && Date.now() - layoutAsked > 3000) {
    layoutAsked = Date.now();
    fetch("/api/graph").then((r) => r.json()).then((data) => { if (data) { layout = data; renderGraph(); } });
  }
}
function renderGraph() {
  const svg = $("graph"), {xy, edges, uids, functions} = layout;
  let minX = Infinity, maxX = -Infinity, maxY = 0;
  for (const [x, y] of xy) { minX = Math.min(minX, x); maxX = Math.max(maxX, x); maxY = Math.max(maxY, y); }
  svg.setAttribute("viewBox", `${minX - 1} -1 ${maxX - minX + 2} ${maxY + 2}`);
  svg.setAttribute("height", Math.min(600, Math.max(120, (maxY + 2) * 24)));
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  const children = edges.map(([a, b]) => el("line", {x1: xy[a][0], y1: xy[a][1], x2: xy[b][0], y2: xy[b][1]}));
  uids.forEach((uid, i) => {
    const c = el("circle", {cx: xy[i][0], cy: xy[i][1], r: 0.35, class: "s-" + (state.statuses[i] || "w"), "data-uid": uid});
    c.append(el("title", {}, `${functions[i]} ${uid}`));
    children.push(c);
  });
  svg.replaceChildren(...children);
  $("graph-note").textContent = `${layout.n} tasks` +
    (layout.edges_left_out ? `; ${layout.edges_left_out} edges not drawn (too many)` : "");
}
function recolour(changes) {
  if (!layout) return;
  const circles = $("graph").getElementsByTagName("circle");
  for (const [i, letter] of changes) if (circles[i]) circles[i].setAttribute("class", "s-" + letter);
}

// -- search and one task -------------------------------------------------------------
function moment(t) {
  if (t === null || t === undefined) return "–";
  return t < 0 ? `${secs(-t)} before the run started` : `${secs(t)} into the run`;
}
function showTask(task, why) {
  const box = $("task");
  if (!task) { box.replaceChildren(...(why ? [el("pre", {class: "why"}, why)] : [])); return; }
  const dl = el("dl");
  const worker = task.worker ? `${task.worker_name || ""} (${task.worker})` : "–";
  const fields = [["uid", task.uid], ["function", task.function], ["key", task.key ?? "–"],
    ["status", task.status], ["attempts", task.attempts], ["worker", worker],
    ["queued", moment(task.queued)], ["started", moment(task.started)], ["ended", moment(task.ended)],
    ["end reason", task.end_reason ?? "–"], ["error", task.error ?? "–"]];
  for (const [k, v] of fields) dl.append(el("dt", {}, k), el("dd", {"data-field": k}, String(v)));
  const parts = [dl, el("pre", {class: "why"}, task.why)];
  if (task.trace) parts.push(el("pre", {class: "trace"}, task.trace));
  box.replaceChildren(...parts);
}
async function openTask(uid) {
  const task = await (await fetch("/api/task?uid=" + encodeURIComponent(uid))).json();
  showTask(task);
  $("search-box").scrollIntoView({block: "nearest"});
}
async function runSearch(query) {
  $("search").value = query;
  const answer = await (await fetch("/api/search?q=" + encodeURIComponent(query))).json();
  const found = $("found");
  if (!answer.found.length) {
    found.replaceChildren(el("p", {class: "none"}, answer.why ? "a condition:" : `nothing matches ${query}`));
  } else {
    const table = el("table");
    for (const row of answer.found) {
      const tr = el("tr", {"data-uid": row.uid});
      for (const v of [row.uid, row.function, row.key ?? "", row.status, row.error ?? ""]) tr.append(el("td", {}, v));
      tr.onclick = () => openTask(row.uid);
      table.append(tr);
    }
    found.replaceChildren(table);
    if (answer.more) found.append(el("p", {}, "more match: narrow the search"));
  }
  showTask(answer.task || null, answer.why);
}
function fromHash() {
  const match = location.hash.match(/^#search=(.*)$/);
  if (match) runSearch(decodeURIComponent(match[1]));
}
function clickTask(event) {
  const uid = event.target.getAttribute && event.target.getAttribute("data-uid");
  if (uid) openTask(uid);
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").onsubmit = (event) => {
    event.preventDefault();
    const query = $("search").value.trim();
    if (location.hash === "#search=" + encodeURIComponent(query)) runSearch(query);
    else location.hash = "search=" + encodeURIComponent(query);
  };
  window.addEventListener("hashchange", fromHash);
  $("stream").addEventListener("click", clickTask);
  $("graph").addEventListener("click", clickTask);
  fromHash();
  connect();
});
