// The dashboard page: polls /api/snapshot every POLL_MS and redraws. The state it
// shows is also on the DOM (data-* attributes) so that a headless browser can read it.
"use strict";

const POLL_MS = 2000;
// Series colours, given to values in order of first appearance and kept, so a value
// keeps its colour while data streams in. MARK is for crossovers only.
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#0891b2", "#db2777", "#475569", "#65a30d", "#7c2d12"];
const MARK = "#f59e0b";

const form = document.getElementById("controls");
const chartBox = document.getElementById("chart");
const colours = new Map();
let plot = null;
let plotKey = "";
let marks = [];
let latest = null;
let updates = 0;
let timer = null;

const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
const pct = (x) => (x * 100).toFixed(1) + "%";
const day = (iso) => Date.UTC(+iso.slice(0, 4), +iso.slice(5, 7) - 1, +iso.slice(8, 10)) / 1000;

function colourOf(value) {
  if (!colours.has(value)) colours.set(value, PALETTE[colours.size % PALETTE.length]);
  return colours.get(value);
}

function params() {
  const data = new FormData(form);
  const p = new URLSearchParams();
  for (const name of ["dimension", "measure", "window"]) p.set(name, data.get(name));
  p.set("identified", form.identified.checked ? "1" : "0");
  return p;
}

function fill(select, options, chosen) {
  select.replaceChildren(...options.map((o) => new Option(o, o, false, o === chosen)));
}

async function start() {
  const meta = await (await fetch("/api/meta")).json();
  const asked = new URLSearchParams(location.search);
  const pick = (name) => asked.get(name) || meta.default[name];
  fill(form.dimension, meta.dimensions, pick("dimension"));
  fill(form.measure, meta.measures, pick("measure"));
  fill(form.window, meta.windows, pick("window"));
  form.identified.checked = (asked.get("identified") || "1") !== "0";
  form.addEventListener("change", () => {
    history.replaceState(null, "", "?" + params().toString());
    colours.clear();
    plotKey = ""; // a new chart: its strokes take the new colours
    poll();
  });
  window.addEventListener("resize", () => plot && plot.setSize(size()));
  poll();
}

async function poll() {
  clearTimeout(timer);
  const asked = params().toString();
  try {
    const reply = await fetch("/api/snapshot?" + asked);
    const doc = await reply.json();
    if (!reply.ok) throw new Error(doc.error + (doc.hint ? " — " + doc.hint : ""));
    if (asked === params().toString()) render(doc); // not a reply to an older choice
    document.getElementById("banner").hidden = true;
    document.body.dataset.state = "ready";
  } catch (err) {
    const banner = document.getElementById("banner");
    banner.textContent = "cannot read the store: " + err.message;
    banner.hidden = false;
    document.body.dataset.state = "error";
  }
  timer = setTimeout(poll, POLL_MS);
}

function render(doc) {
  latest = doc;
  window.tokenshareSnapshot = doc;
  updates += 1;
  document.body.dataset.updates = String(updates);
  document.getElementById("updated").textContent =
    "updated " + doc.generated_at.slice(11, 19) + " UTC · every " + POLL_MS / 1000 + " s";
  setNumber("events", doc.totals.events, compact.format(doc.totals.events));
  setNumber("tokens", doc.totals.tokens, compact.format(doc.totals.tokens));
  setNumber("spend", doc.totals.spend_usd, "$" + compact.format(doc.totals.spend_usd));
  setNumber("unidentified", doc.totals.unidentified_events, compact.format(doc.totals.unidentified_events));
  document.getElementById("latest").textContent = doc.totals.latest_event || "–";
  drawChart(doc);
  drawCrossovers(doc);
  drawMovers(doc);
  drawAlerts(doc);
  drawGaps(doc);
}

function setNumber(id, value, text) {
  const el = document.getElementById(id);
  el.dataset.value = String(value);
  el.textContent = text;
}

function size() {
  return { width: chartBox.clientWidth || 900, height: 340 };
}

function drawChart(doc) {
  const v = doc.view;
  const kind = v.window === "iso_week" ? "ISO weeks" : "rolling 7-day windows";
  document.getElementById("chart-title").textContent =
    `share of ${v.measure} by ${v.dimension}, ${kind}` + (v.identified ? " (identified traffic)" : "");
  const names = doc.series.map((s) => s.value);
  const data = [doc.periods.map(day), ...doc.series.map((s) => s.shares.map((x) => x * 100))];
  marks = doc.crossovers;
  chartBox.dataset.series = JSON.stringify(names.map((n) => ({ value: n, colour: colourOf(n) })));
  chartBox.dataset.mark = MARK;
  const key = JSON.stringify(names);
  if (plot && key === plotKey) {
    plot.setData(data);
  } else {
    if (plot) plot.destroy();
    plotKey = key;
    plot = new uPlot(options(names), data, chartBox);
  }
  chartBox.dataset.crossovers = String(marksShown());
}

function options(names) {
  return {
    ...size(),
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: { y: { range: (u, min, max) => [0, Math.max(10, Math.ceil(max / 10) * 10)] } },
    axes: [{}, { values: (u, ticks) => ticks.map((t) => t + "%") }],
    series: [
      { label: "period" },
      ...names.map((n) => ({
        label: n, stroke: colourOf(n), width: 2.5, points: { show: true, size: 5 },
        value: (u, x) => (x == null ? "–" : x.toFixed(1) + "%"),
      })),
    ],
    hooks: { draw: [drawMarks] },
  };
}

// Crossover marks on the chart: a dashed line at the window, a dot on the leader's
// share, and "leader > overtaken" at the top.
function drawMarks(u) {
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  const ratio = window.devicePixelRatio || 1;
  ctx.save();
  ctx.font = `${12 * ratio}px system-ui, sans-serif`;
  for (const m of marks) {
    const t = day(m.period);
    const x = u.valToPos(t, "x", true);
    if (x < left - 1 || x > left + width + 1) continue;
    ctx.strokeStyle = MARK;
    ctx.fillStyle = MARK;
    ctx.lineWidth = 3 * ratio;
    ctx.setLineDash([8 * ratio, 5 * ratio]);
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    ctx.setLineDash([]);
    const i = u.data[0].indexOf(t);
    const s = u.series.findIndex((ser) => ser.label === m.leader);
    if (i >= 0 && s > 0) {
      ctx.beginPath();
      ctx.arc(x, u.valToPos(u.data[s][i], "y", true), 6 * ratio, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.fillStyle = "#b45309";
    ctx.fillText(`${m.leader} > ${m.overtaken}`, x + 5 * ratio, top + 14 * ratio);
  }
  ctx.restore();
}

function marksShown() {
  if (!plot || !latest || latest.periods.length === 0) return 0;
  const first = day(latest.periods[0]);
  const last = day(latest.periods[latest.periods.length - 1]);
  return marks.filter((m) => day(m.period) >= first && day(m.period) <= last).length;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function rows(id, items, make) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...items.map((item) => {
    const tr = document.createElement("tr");
    tr.append(...make(item, tr));
    return tr;
  }));
  if (items.length === 0) {
    const tr = document.createElement("tr");
    const td = cell("nothing yet", "empty");
    td.colSpan = body.parentElement.querySelectorAll("th").length;
    tr.append(td);
    body.append(tr);
  }
  document.getElementById(id).dataset.rows = String(items.length);
}

function drawCrossovers(doc) {
  const list = document.getElementById("crossovers");
  list.replaceChildren(...doc.crossovers.map((m) => {
    const li = document.createElement("li");
    Object.assign(li.dataset, { period: m.period, leader: m.leader, overtaken: m.overtaken, status: m.status });
    li.textContent = `${m.label}: ${m.leader} overtakes ${m.overtaken} by ${m.margin_pp.toFixed(1)} pp (${m.status})`;
    return li;
  }));
}

function drawMovers(doc) {
  rows("movers", doc.movers, (m, tr) => {
    tr.dataset.value = m.value;
    const name = cell(m.value);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colours.get(m.value) || "#cbd5e1";
    name.prepend(swatch);
    const sign = m.change_pp > 0 ? "+" : "";
    return [name, cell(pct(m.share), "num"),
            cell(`${sign}${m.change_pp.toFixed(1)} pp`, "num " + (m.change_pp >= 0 ? "up" : "down"))];
  });
}

function drawAlerts(doc) {
  rows("alerts", doc.alerts, (a, tr) => {
    tr.dataset.rule = a.rule;
    return [cell(a.window_label), cell(a.rule), cell(a.status, "status-" + a.status), cell(a.text)];
  });
}

function drawGaps(doc) {
  rows("gaps", doc.gaps, (g, tr) => {
    tr.dataset.model = g.model;
    return [cell(g.model), cell(compact.format(g.requests), "num"),
            cell(compact.format(g.tokens), "num"), cell(pct(g.share), "num")];
  });
}

start();
