// strideflow dashboard: vanilla JS over the public /v1 API. The API key lives in sessionStorage
// and goes with every data request as a bearer token; the API decides what the key may see.
"use strict";

const KEY_STORE = "strideflow.apiKey";
const SVG_NS = "http://www.w3.org/2000/svg";
const FOOT_COLORS = { left: "#1f6fb4", right: "#e0701b" };
const FEET = ["left", "right"];
// metric -> [label, unit, decimals]
const METRICS = {
  pronation_excursion_deg: ["pronation excursion", "deg", 1],
  max_pronation_velocity_dps: ["max pronation velocity", "deg/s", 0],
  toe_off_angle_deg: ["toe-off angle", "deg", 1],
  toe_off_pronation_deg: ["toe-off pronation", "deg", 1],
  push_off_rate_dps: ["push-off rate", "deg/s", 0],
  cadence_spm: ["cadence", "steps/min", 1],
  stance_time_s: ["stance time", "s", 3],
  stride_length_m: ["stride length", "m", 2],
  stride_time_s: ["stride time", "s", 3],
  foot_strike_angle_deg: ["foot-strike angle", "deg", 1],
};
const TREND_METRICS = [
  "pronation_excursion_deg", "max_pronation_velocity_dps", "toe_off_angle_deg", "toe_off_pronation_deg",
];

// ---------------------------------------------------------------------------------------------
// API access

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

function apiKey() { return sessionStorage.getItem(KEY_STORE); }

async function api(path) {
  const key = apiKey();
  if (!key) throw new ApiError(401, "not signed in");
  const resp = await fetch(path, { headers: { Authorization: `Bearer ${key}`, Accept: "application/json" } });
  let body = null;
  try { body = await resp.json(); } catch (_) { body = null; }
  if (!resp.ok) throw new ApiError(resp.status, (body && body.detail) || resp.statusText);
  return body;
}

// Every item of a paginated list route, following next_cursor.
async function apiAll(path) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < 1000; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const body = await api(cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    items.push(...body.items);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return items;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------------
// DOM helpers (text only through textContent: API strings are never parsed as HTML)

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function fmt(value, decimals) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toFixed(decimals);
}

function metricFmt(metric, value) { return fmt(value, (METRICS[metric] || ["", "", 2])[2]); }
function metricLabel(metric) {
  const [label, unit] = METRICS[metric] || [metric, ""];
  return unit ? `${label} (${unit})` : label;
}

// A table whose header cells sort the rows (numbers numerically, blanks last).
// `state` ({key, ascending}), when given, keeps the sort across re-renders of the same table.
function sortableTable(id, columns, rows, state = null) {
  const table = el("table", { id });
  const head = el("tr");
  const body = el("tbody");
  let sortKey = state ? state.key : null;
  let ascending = state ? state.ascending : true;
  const render = () => {
    body.replaceChildren();
    const sorted = rows.slice();
    if (sortKey !== null) {
      const col = columns.find((c) => c.key === sortKey);
      sorted.sort((a, b) => {
        const x = col.value(a), y = col.value(b);
        const blankX = x === null || x === undefined || x === "", blankY = y === null || y === undefined || y === "";
        if (blankX || blankY) return blankX - blankY;
        const r = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return ascending ? r : -r;
      });
    }
    for (const row of sorted) {
      const tr = el("tr", { "data-row": row._rowKey || "" });
      for (const c of columns) {
        const td = el("td", { class: c.text ? "text" : null, "data-col": c.key });
        const content = c.cell ? c.cell(row) : c.value(row);
        if (content instanceof Node) td.append(content);
        else td.textContent = content === null || content === undefined ? "–" : String(content);
        tr.append(td);
      }
      body.append(tr);
    }
  };
  for (const c of columns) {
    const th = el("th", { class: `sortable${c.text ? " text" : ""}`, "data-col": c.key, text: c.title, scope: "col" });
    th.addEventListener("click", () => {
      ascending = sortKey === c.key ? !ascending : true;
      sortKey = c.key;
      if (state) { state.key = sortKey; state.ascending = ascending; }
      for (const other of head.children) other.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      render();
    });
    if (sortKey === c.key) th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    head.append(th);
  }
  table.append(el("thead", {}, head), body);
  render();
  return table;
}

// ---------------------------------------------------------------------------------------------
// Charts: small SVG line/band and bar charts with labelled axes.

function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) { const pad = Math.abs(lo) * 0.1 || 1; lo -= pad; hi += pad; }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toFixed(10)));
  return { lo: Math.min(lo, ticks[0]), hi: Math.max(hi, ticks[ticks.length - 1]), ticks };
}

// series: [{name, color, points: [[x, y]], band: [[x, lo, hi]], dashed, markers}]
function median(values) {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  return v.length ? (v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : null;
}

// clipBands: the y range holds the lines plus the median band half-width, so a few points with a huge
// SD cannot squash the chart; every series (bands included) is clipped to the plot area.
function lineChart({ id, title, xLabel, yLabel, series, xTicks = null, xMin = null, xMax = null, clipBands = false }) {
  const W = 460, H = 280, m = { l: 58, r: 12, t: 30, b: 44 };
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "data-chart": id, "aria-label": title });
  root.append(svg("text", { x: 8, y: 18, "font-size": 14, "font-weight": 600, class: "chart-title" }, title));
  // A legend that would run into the title gets a row of its own below it.
  const legendWidth = series.filter((s) => !s.dashed).reduce((w, s) => w + 20 + 7 * s.name.length, 0);
  const legendRow = legendWidth > W - m.r - 16 - 8 * title.length;
  if (legendRow) m.t += 16;
  const legendY = legendRow ? 34 : 18;
  const xs = [], ys = [];
  for (const s of series) {
    for (const [x, y] of s.points) if (y !== null && Number.isFinite(y)) { xs.push(x); ys.push(y); }
    if (clipBands) {
      const half = median((s.band || []).map(([, lo, hi]) => (hi - lo) / 2)) ?? 0;
      for (const [x, y] of s.points) if (y !== null && Number.isFinite(y)) { xs.push(x); ys.push(y - half, y + half); }
      continue;
    }
    for (const [x, lo, hi] of s.band || []) if (Number.isFinite(lo) && Number.isFinite(hi)) { xs.push(x); ys.push(lo, hi); }
  }
  if (!ys.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#666" }, "no data"));
    return root;
  }
  const xr = niceTicks(xMin ?? Math.min(...xs), xMax ?? Math.max(...xs));
  if (xMin !== null) xr.lo = xMin;
  if (xMax !== null) xr.hi = xMax;
  const yr = niceTicks(Math.min(...ys), Math.max(...ys));
  const X = (x) => m.l + ((x - xr.lo) / (xr.hi - xr.lo || 1)) * (W - m.l - m.r);
  const Y = (y) => H - m.b - ((y - yr.lo) / (yr.hi - yr.lo || 1)) * (H - m.t - m.b);
  const axes = svg("g", { class: "axes", "font-size": 11, fill: "#333" });
  for (const t of yr.ticks) {
    axes.append(svg("line", { x1: m.l, x2: W - m.r, y1: Y(t), y2: Y(t), stroke: "#e6e9ef" }));
    axes.append(svg("text", { x: m.l - 6, y: Y(t) + 4, "text-anchor": "end" }, String(t)));
  }
  for (const [x, label, tip] of xTicks || xr.ticks.filter((t) => t >= xr.lo && t <= xr.hi).map((t) => [t, String(t)])) {
    axes.append(svg("line", { x1: X(x), x2: X(x), y1: H - m.b, y2: H - m.b + 4, stroke: "#333" }));
    // The first and last labels grow inwards, so they are never cut at the chart's edge.
    const anchor = x <= xr.lo ? "start" : x >= xr.hi ? "end" : "middle";
    const text = svg("text", { x: X(x), y: H - m.b + 16, "text-anchor": anchor, class: "x-tick", "data-x": String(x) }, label);
    if (tip) text.append(svg("title", {}, tip));
    axes.append(text);
  }
  axes.append(svg("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, stroke: "#333" }));
  axes.append(svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, stroke: "#333" }));
  axes.append(svg("text", { x: (m.l + W - m.r) / 2, y: H - 8, "text-anchor": "middle", class: "x-label" }, xLabel));
  axes.append(svg("text", { x: 14, y: (m.t + H - m.b) / 2, "text-anchor": "middle", class: "y-label",
    transform: `rotate(-90 14 ${(m.t + H - m.b) / 2})` }, yLabel));
  root.append(axes);
  const clipId = `clip-${id}`.replace(/[^A-Za-z0-9_-]/g, "_");
  const defs = svg("defs");
  const clip = svg("clipPath", { id: clipId });
  clip.append(svg("rect", { x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b }));
  defs.append(clip);
  root.append(defs);
  const named = series.filter((s) => !s.dashed);
  let legendX = W - m.r - named.reduce((w, s) => w + 20 + 7 * s.name.length, 0);
  for (const s of series) {
    const g = svg("g", { class: "series", "data-series": s.name, "clip-path": `url(#${clipId})` });
    if (s.band && s.band.length) {
      const ok = s.band.filter(([, lo, hi]) => Number.isFinite(lo) && Number.isFinite(hi));
      const upper = ok.map(([x, , hi]) => `${X(x).toFixed(1)},${Y(hi).toFixed(1)}`);
      const lower = ok.slice().reverse().map(([x, lo]) => `${X(x).toFixed(1)},${Y(lo).toFixed(1)}`);
      g.append(svg("polygon", { points: upper.concat(lower).join(" "), fill: s.color, "fill-opacity": 0.16,
        class: "band" }));
    }
    const pts = s.points.filter(([, y]) => y !== null && Number.isFinite(y));
    if (pts.length) {
      const d = pts.map(([x, y], i) => `${i ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join("");
      g.append(svg("path", { d, fill: "none", stroke: s.color, "stroke-width": s.dashed ? 1.2 : 2,
        "stroke-dasharray": s.dashed ? "5 4" : s.dash || "none", class: "line" }));
      if (s.markers) for (const [x, y] of pts) g.append(svg("circle", { cx: X(x), cy: Y(y), r: 3.5, fill: s.color }));
    }
    root.append(g);
    if (!s.dashed) {
      root.append(svg("rect", { x: legendX, y: legendY - 9, width: 10, height: 10, fill: s.color }));
      root.append(svg("text", { x: legendX + 14, y: legendY, "font-size": 11 }, s.name));
      legendX += 20 + 7 * s.name.length;
    }
  }
  return root;
}

// Grouped bars: groups [{label, values: {left, right}}]
function barChart({ id, title, yLabel, groups }) {
  const W = 460, H = 260, m = { l: 58, r: 12, t: 30, b: 44 };
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "data-chart": id, "aria-label": title });
  root.append(svg("text", { x: 8, y: 18, "font-size": 14, "font-weight": 600, class: "chart-title" }, title));
  const vals = groups.flatMap((g) => FEET.map((f) => g.values[f])).filter((v) => v !== null && Number.isFinite(v));
  if (!vals.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#666" }, "no data"));
    return root;
  }
  const yr = niceTicks(Math.min(0, ...vals), Math.max(0, ...vals));
  const Y = (y) => H - m.b - ((y - yr.lo) / (yr.hi - yr.lo || 1)) * (H - m.t - m.b);
  const slot = (W - m.l - m.r) / groups.length;
  const g = svg("g", { "font-size": 11, fill: "#333" });
  for (const t of yr.ticks) {
    g.append(svg("line", { x1: m.l, x2: W - m.r, y1: Y(t), y2: Y(t), stroke: "#e6e9ef" }));
    g.append(svg("text", { x: m.l - 6, y: Y(t) + 4, "text-anchor": "end" }, String(t)));
  }
  groups.forEach((grp, i) => {
    const bw = Math.min(28, slot / 3);
    FEET.forEach((foot, j) => {
      const v = grp.values[foot];
      if (v === null || !Number.isFinite(v)) return;
      const x = m.l + i * slot + slot / 2 - bw + j * bw;
      const y0 = Y(0), y1 = Y(v);
      g.append(svg("rect", { x, y: Math.min(y0, y1), width: bw - 2, height: Math.max(1, Math.abs(y1 - y0)),
        fill: FOOT_COLORS[foot], class: "bar", "data-foot": foot, "data-athlete": grp.label,
        "data-value": String(v) }));
    });
    g.append(svg("text", { x: m.l + i * slot + slot / 2, y: H - m.b + 16, "text-anchor": "middle" }, grp.label));
  });
  g.append(svg("line", { x1: m.l, x2: W - m.r, y1: Y(0), y2: Y(0), stroke: "#333" }));
  g.append(svg("text", { x: 14, y: (m.t + H - m.b) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(m.t + H - m.b) / 2})` }, yLabel));
  g.append(svg("text", { x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle" }, "athlete"));
  FEET.forEach((foot, j) => {
    g.append(svg("rect", { x: W - m.r - 110 + j * 55, y: 9, width: 10, height: 10, fill: FOOT_COLORS[foot] }));
    g.append(svg("text", { x: W - m.r - 96 + j * 55, y: 18 }, foot));
  });
  root.append(g);
  return root;
}

function chartBox(node) { return el("div", { class: "chart" }, node); }

// ---------------------------------------------------------------------------------------------
// Views

// Each navigation renders into a container of its own (routeRoot). A slower earlier view that
// finishes after the user has moved on writes into its detached container and never reaches the page.
let routeRoot = null;
const view = () => routeRoot;

const ACTIVITY_WORDS = { walk: "walking", run: "running" };
// The session's main activity (the API lists its feet with the activity of most steady strides first).
function mainActivity(session) {
  const f = (session.feet || [])[0];
  return f && f.activity ? f.activity : null;
}

function activitiesOf(rows) {
  const counts = new Map();
  for (const r of rows) counts.set(r.activity ?? null, (counts.get(r.activity ?? null) || 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k);
}

function footMedian(session, foot, metric) {
  const f = (session.feet || []).find((x) => x.foot === foot);
  return f && f.median ? f.median[metric] ?? null : null;
}

function footCount(session, foot) {
  const f = (session.feet || []).find((x) => x.foot === foot);
  return f ? f.stride_count : null;
}

async function latestSession(athleteId) {
  const sessions = await apiAll(`/v1/athletes/${enc(athleteId)}/sessions`);
  return { sessions, latest: sessions.length ? sessions[sessions.length - 1] : null };
}

async function sessionFlags(athleteId, sessionId) {
  return apiAll(`/v1/sessions/${enc(sessionId)}/flags?athlete_id=${enc(athleteId)}`);
}

// The team row of an athlete who is streaming (GET /v1/streams: a stream not ended) is about the live
// session: its stored figures (stored every few seconds while it streams), marked "live" with a link
// to the Live view. Before its first strides are stored (the 20 s warm-up and the first store) the row
// shows the athlete's previous analysed session, says so, and keeps the live marker: a coach sees at
// once who is out on a run now and still has the last known numbers instead of a row of dashes. While
// anyone is live the view refreshes itself every TEAM_REFRESH_S (keeping the sort).
const TEAM_REFRESH_S = 15;
let teamSort = { key: null, ascending: true };

async function liveSessions() {
  try {
    const streams = await apiAll("/v1/streams");
    const out = new Map();
    for (const s of streams) if (!s.ended) out.set(s.athlete_id, s.session_id);
    return out;
  } catch (_) { return new Map(); } // an older server without the route: no live markers
}

async function teamRow(a, live) {
  const { sessions } = await latestSession(a.athlete_id);
  const liveId = live.get(a.athlete_id) ?? null;
  // Newest by date, then by when it was created (the list orders one day's sessions by id).
  const byTime = sessions.slice().sort((x, y) => String(x.session_date ?? "").localeCompare(String(y.session_date ?? ""))
    || String(x.created).localeCompare(String(y.created)));
  const current = (liveId && sessions.find((x) => x.session_id === liveId)) || (byTime.length ? byTime[byTime.length - 1] : null);
  // figures: the current session's when stored, else the newest analysed one before it
  let shown = current;
  if (current && !current.analysed) {
    const earlier = byTime.filter((x) => x !== current && x.analysed && (x.feet || []).length);
    shown = earlier.length ? earlier[earlier.length - 1] : current;
  }
  const flags = shown && shown.analysed ? await sessionFlags(a.athlete_id, shown.session_id) : [];
  return { athlete: a, current, latest: shown, liveId: current && current.session_id === liveId ? liveId : null,
    flags, _rowKey: a.athlete_id };
}

function latestCell(r) {
  if (!r.current) return "–";
  const box = el("span", {}, r.current.session_id);
  if (r.liveId) box.append(" ", el("a", { class: "badge live", href: `#/live/${enc(r.athlete.athlete_id)}`,
    title: "streaming now: open the Live view", text: "live" }));
  if (r.liveId && !r.current.analysed && r.latest === r.current) {
    box.append(el("span", { class: "note figures-from", text: " (no strides stored yet)" }));
  } else if (r.latest && r.latest !== r.current) {
    const why = r.liveId ? "no strides stored yet" : "not analysed yet";
    box.append(el("span", { class: "note figures-from", "data-session": r.latest.session_id,
      text: ` (${why}; figures of ${r.latest.session_id})` }));
  }
  return box;
}

async function showTeam(refreshOf = null) {
  const root = refreshOf || view();
  if (!refreshOf) root.replaceChildren(el("h1", { text: "Team" }), el("p", { class: "note", text: "loading…" }));
  const [athletes, live] = await Promise.all([apiAll("/v1/athletes"), liveSessions()]);
  const rows = await Promise.all(athletes.map((a) => teamRow(a, live)));
  if (routeRoot !== root) return;
  const num = (metric, foot) => (r) => (r.latest ? footMedian(r.latest, foot, metric) : null);
  const columns = [
    { key: "athlete", title: "athlete", text: true, value: (r) => r.athlete.athlete_id,
      cell: (r) => el("a", { href: `#/athlete/${enc(r.athlete.athlete_id)}`, text: r.athlete.athlete_id }) },
    { key: "sessions", title: "sessions", value: (r) => r.athlete.session_count },
    { key: "latest", title: "latest session", text: true, value: (r) => (r.current ? r.current.session_id : null),
      cell: latestCell },
    { key: "date", title: "date", text: true, value: (r) => (r.latest ? r.latest.session_date : null) },
    { key: "activity", title: "activity", text: true, value: (r) => (r.latest ? mainActivity(r.latest) : null),
      cell: (r) => {
        const kinds = r.latest ? [...new Set((r.latest.feet || []).map((f) => f.activity).filter(Boolean))] : [];
        return kinds.length ? kinds.map((k) => ACTIVITY_WORDS[k] || k).join(" + ") : "–";
      } },
    { key: "strides", title: "steady strides L/R", value: (r) => (r.latest ? (footCount(r.latest, "left") || 0) + (footCount(r.latest, "right") || 0) : null),
      cell: (r) => (r.latest ? `${footCount(r.latest, "left") ?? "–"} / ${footCount(r.latest, "right") ?? "–"}` : "–") },
  ];
  for (const metric of ["pronation_excursion_deg", "toe_off_angle_deg", "toe_off_pronation_deg"]) {
    for (const foot of FEET) {
      const value = num(metric, foot);
      columns.push({ key: `${metric}.${foot}`, title: `${METRICS[metric][0]} ${foot[0].toUpperCase()} (${METRICS[metric][1]})`,
        value, cell: (r) => metricFmt(metric, value(r)) });
    }
  }
  columns.push({ key: "flags", title: "flags", text: true, value: (r) => r.flags.length,
    cell: (r) => {
      const box = el("span");
      if (!r.flags.length) box.textContent = "none";
      for (const f of r.flags) box.append(el("span", { class: "flag", title: f.text, text: `${f.flag}${f.foot ? ` (${f.foot})` : ""}` }));
      return box;
    } });
  const chart = barChart({
    id: "team-pronation", title: "Pronation excursion, latest session",
    yLabel: "median pronation excursion (deg)",
    groups: rows.map((r) => ({ label: r.athlete.athlete_id,
      values: { left: num("pronation_excursion_deg", "left")(r), right: num("pronation_excursion_deg", "right")(r) } })),
  });
  root.replaceChildren(
    el("h1", { text: "Team" }),
    el("p", { class: "note", text: `${athletes.length} athlete(s) visible to this key. Medians of the latest session's steady strides; click a column to sort, an athlete to open.` }),
    el("div", { class: "wide" }, sortableTable("team-table", columns, rows, teamSort)),
    el("h2", { text: "Latest sessions at a glance" }),
    el("div", { class: "charts" }, chartBox(chart)),
    el("p", { class: "note", text: "Flags are configurable heuristics, not a diagnosis; hover a flag for its explanation." }),
  );
  root.setAttribute("data-live", String(rows.filter((r) => r.liveId).length));
  if (rows.some((r) => r.liveId)) {
    setTimeout(() => { if (routeRoot === root) showTeam(root).catch(() => {}); }, TEAM_REFRESH_S * 1000);
  }
}

function curveChart(points, phase, angle, title, xLabel, yLabel, activity = null) {
  const series = FEET.map((foot) => {
    const mine = points.filter((p) => p.foot === foot && p.phase === phase && (activity === null || p.activity === activity))
      .sort((a, b) => a.pct - b.pct);
    const mean = `${angle}_mean`, sd = `${angle}_sd`;
    return {
      name: foot, color: FOOT_COLORS[foot],
      points: mine.map((p) => [p.pct, p[mean]]),
      band: mine.map((p) => [p.pct, p[mean] - (p[sd] ?? 0), p[mean] + (p[sd] ?? 0)]),
    };
  }).filter((s) => s.points.length);
  const suffix = activity ? ` (${ACTIVITY_WORDS[activity] || activity})` : "";
  return lineChart({ id: `${phase}-${angle}${activity ? `-${activity}` : ""}`, title: title + suffix, xLabel, yLabel,
    series, xMin: 0, xMax: 100, clipBands: true });
}

// Sessions in date order (undated last, then by id): the one list a trend chart's x-axis and its lines use.
function sessionTimeline(sessions, trends) {
  const byId = new Map();
  for (const s of sessions) byId.set(s.session_id, s.session_date ?? null);
  for (const t of trends) if (!byId.has(t.session_id) || byId.get(t.session_id) === null) byId.set(t.session_id, t.session_date ?? null);
  const key = ([id, date]) => `${date ?? "9999-99-99"}\u0000${id}`;
  return [...byId.entries()].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
    .map(([id, date]) => ({ session_id: id, session_date: date }));
}

const shorten = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

function trendChart(trends, metric, timeline) {
  const rows = trends.filter((t) => t.metric === metric);
  const index = new Map(timeline.map((s, i) => [s.session_id, i]));
  // Tick label: the date (MM-DD) where known, else the session id, shortened; the full text is the tooltip.
  const xTicks = timeline.map((s, i) => [i, s.session_date ? s.session_date.slice(5) : shorten(s.session_id, 6),
    `${s.session_id}${s.session_date ? ` · ${s.session_date}` : " · no date"}`]);
  const kinds = activitiesOf(rows);
  const series = [];
  for (const kind of kinds) {
    for (const foot of FEET) {
      const mine = rows.filter((r) => r.foot === foot && (r.activity ?? null) === kind && index.has(r.session_id))
        .sort((a, b) => index.get(a.session_id) - index.get(b.session_id));
      if (!mine.length) continue;
      const name = kinds.length > 1 && kind ? `${foot} ${kind}` : foot;
      series.push({ name, color: FOOT_COLORS[foot], markers: true, dash: kind === "run" && kinds.length > 1 ? "2 3" : null,
        points: mine.map((r) => [index.get(r.session_id), r.median]) });
      const base = mine.find((r) => r.baseline !== null);
      if (base) series.push({ name: `${name} baseline`, color: FOOT_COLORS[foot], dashed: true,
        points: [[0, base.baseline], [Math.max(1, timeline.length - 1), base.baseline]] });
    }
  }
  return lineChart({ id: `trend-${metric}`, title: METRICS[metric][0], xLabel: "session date (MM-DD), oldest first",
    yLabel: metricLabel(metric), series, xTicks, xMin: 0, xMax: Math.max(1, timeline.length - 1) });
}

async function showAthlete(athleteId) {
  const root = view();
  root.replaceChildren(el("h1", { text: `Athlete ${athleteId}` }), el("p", { class: "note", text: "loading…" }));
  const { sessions, latest } = await latestSession(athleteId);
  const trends = await apiAll(`/v1/athletes/${enc(athleteId)}/trends`);
  const parts = [el("h1", { text: `Athlete ${athleteId}` })];
  if (!latest) {
    parts.push(el("p", { text: "No sessions yet." }));
    root.replaceChildren(...parts);
    return;
  }
  const sid = latest.session_id;
  parts.push(el("p", { class: "note", id: "latest-session",
    text: `${sessions.length} session(s); latest ${sid}${latest.session_date ? ` on ${latest.session_date}` : ""}.` }));
  const timeline = sessionTimeline(sessions, trends);
  parts.push(el("h2", { text: "Trends against baseline" }),
    el("div", { class: "charts", id: "trend-charts" }, ...TREND_METRICS.map((m) => chartBox(trendChart(trends, m, timeline)))),
    el("p", { class: "note", text: "Session medians per foot and activity (walking and running apart; running dotted), sessions in date order; dashed: the athlete's baseline (mean of the first sessions)." }));
  const [curves, flags, strides] = await Promise.all([
    apiAll(`/v1/sessions/${enc(sid)}/curves?athlete_id=${enc(athleteId)}`),
    sessionFlags(athleteId, sid),
    api(`/v1/sessions/${enc(sid)}/strides?athlete_id=${enc(athleteId)}&limit=500`),
  ]);
  parts.push(el("h2", { text: `Latest curves (session ${sid})` }));
  if (curves.length) {
    // One pair of charts per activity: walking and running strides never share a mean or a band.
    parts.push(el("div", { class: "charts", id: "curve-charts" }, ...activitiesOf(curves).flatMap((kind) => [
      chartBox(curveChart(curves, "stance", "pronation_deg", "Pronation over stance (mean ± SD)",
        "stance (% IC → toe-off)", "pronation (deg, eversion +)", kind)),
      chartBox(curveChart(curves, "stride", "pitch_deg", "Pitch over the stride (mean ± SD)",
        "stride (% IC → next IC)", "pitch (deg, toes up +)", kind))])));
  } else {
    parts.push(el("p", { class: "note", text: "No curves stored for this session." }));
  }
  parts.push(el("h2", { text: "Flags" }));
  if (flags.length) parts.push(el("ul", { class: "flags", id: "flag-list" }, ...flags.map((f) => el("li", { text: f.text }))));
  else parts.push(el("p", { id: "flag-list", text: "No flag raised in this session." }));
  parts.push(el("h2", { text: `Strides (session ${sid})` }));
  const strideCols = [
    { key: "foot", title: "foot", text: true, value: (s) => s.foot },
    { key: "stride_index", title: "stride", value: (s) => s.stride_index },
    { key: "activity", title: "activity", text: true, value: (s) => s.activity ?? null },
    { key: "ic_t", title: "IC (s)", value: (s) => s.ic_t, cell: (s) => fmt(s.ic_t, 2) },
    // a valid stride outside the statistics (a turn, the gait start) says why: "yes (turn)"
    { key: "valid", title: "valid", text: true,
      value: (s) => (s.valid ? (s.context ? `yes (${s.context})` : "yes") : `no (${s.reason || "?"})`) },
  ];
  for (const m of ["stride_time_s", "pronation_excursion_deg", "max_pronation_velocity_dps", "toe_off_angle_deg", "toe_off_pronation_deg"]) {
    strideCols.push({ key: m, title: metricLabel(m), value: (s) => s[m], cell: (s) => metricFmt(m, s[m]) });
  }
  const strideRows = strides.items.map((s) => ({ ...s, _rowKey: `${s.foot}-${s.stride_index}` }));
  parts.push(el("div", { class: "scroll" }, sortableTable("strides-table", strideCols, strideRows)));
  if (strides.next_cursor) parts.push(el("p", { class: "note", text: "First 500 strides shown." }));
  root.replaceChildren(...parts);
}

// ---------------------------------------------------------------------------------------------
// Live view: WS /v1/stream/subscribe. Per athlete and foot a card with the latest stride; a
// "stance" message (provisional, sent at the toe-off) is replaced by the "stride" message with the
// same foot and ic_t (final, stored).

const LIVE_METRICS = [
  "pronation_excursion_deg", "max_pronation_velocity_dps", "toe_off_pronation_deg", "toe_off_angle_deg",
  "stance_time_s",
];
// Short column titles of the recent-strides table in a card (the card's headline uses metricLabel).
const LIVE_SHORT = {
  pronation_excursion_deg: "excursion (deg)", max_pronation_velocity_dps: "max vel. (deg/s)",
  toe_off_pronation_deg: "TO pron. (deg)", toe_off_angle_deg: "TO angle (deg)", stance_time_s: "stance (s)",
};
const LIVE_SPARKS = ["toe_off_pronation_deg", "pronation_excursion_deg"];
const LIVE_HISTORY = 30; // strides kept per foot (sparklines)
const LIVE_RECENT = 8; // rows of a card's recent-strides table
const LIVE_BACKOFF_S = [1, 2, 4, 8, 15, 30];
// Close codes after which reconnecting cannot help: the key or the request itself is refused.
const LIVE_FINAL_CODES = new Set([4400, 4401, 4403]);
const LIVE_CODE_TEXT = {
  1000: "closed", 1001: "server going away", 1006: "connection lost", 1011: "server error",
  1012: "server restarting", 4400: "bad request", 4401: "API key not accepted", 4403: "not allowed for this key",
  4408: "timed out",
};

let live = null; // state of the open Live view; null on other views

function stopLive() {
  if (!live) return;
  live.stopped = true;
  clearTimeout(live.retryTimer);
  clearTimeout(live.devicesTimer);
  if (live.ws) {
    try { live.ws.close(1000, "view closed"); } catch (_) { /* already closing */ }
  }
  live = null;
}

const rowKey = (row) => `${row.foot}|${Number(row.ic_t).toFixed(4)}`;

function liveStatus(state, text, code = null) {
  const node = document.getElementById("live-status");
  if (!node) return;
  node.setAttribute("data-state", state);
  if (code === null) node.removeAttribute("data-code");
  else node.setAttribute("data-code", String(code));
  node.replaceChildren(el("span", { class: "dot", "aria-hidden": "true" }), el("span", { text }));
}

function liveCounts() {
  const node = document.getElementById("live-counts");
  if (!node || !live) return;
  const c = live.counts;
  node.setAttribute("data-stance", String(c.stance));
  node.setAttribute("data-stride", String(c.stride));
  node.setAttribute("data-replaced", String(c.replaced));
  node.textContent = `${c.stance} provisional, ${c.stride} final rows received; ${c.replaced} provisional rows replaced by their final row`;
}

function connectLive() {
  const state = live;
  // After a disconnect, ask for what was published since the last message (replayed at least
  // once; liveIngest drops what it already has).
  const params = new URLSearchParams();
  if (state.filter) params.set("athlete_id", state.filter);
  if (state.lastPublished !== null) params.set("since", String(state.lastPublished));
  const query = params.toString() ? `?${params}` : "";
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/stream/subscribe${query}`;
  liveStatus("connecting", state.attempt ? `connecting (attempt ${state.attempt + 1})…` : "connecting…");
  state.lastError = null;
  const ws = new WebSocket(url);
  state.ws = ws;
  // Browsers cannot set headers on a WebSocket: the key goes as the first message.
  ws.addEventListener("open", () => ws.send(JSON.stringify({ key: apiKey() })));
  ws.addEventListener("message", (ev) => {
    if (live !== state || state.ws !== ws) return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch (_) { return; }
    if (msg.subscribed) {
      state.attempt = 0;
      // Resume point before any message: the server's clock when the subscription started.
      if (state.lastPublished === null && msg.subscribed.server_time != null) state.lastPublished = msg.subscribed.server_time;
      const who = msg.subscribed.athlete_id;
      liveStatus("live", `live: ${who ? `athlete ${who}` : `every athlete of team ${msg.subscribed.team_id}`}`);
      const form = document.getElementById("live-filter");
      if (form) form.hidden = who !== null && !state.filter;
    } else if (msg.error) {
      state.lastError = { code: msg.code, text: msg.error };
    } else if (msg.type === "stance" || msg.type === "stride") {
      liveIngest(msg);
    }
  });
  ws.addEventListener("close", (ev) => {
    if (live !== state || state.ws !== ws || state.stopped) return;
    const code = ev.code;
    const reason = ev.reason || (state.lastError && state.lastError.text) || LIVE_CODE_TEXT[code] || "closed";
    if (LIVE_FINAL_CODES.has(code)) {
      liveStatus("closed", `closed (${code}): ${reason}`, code);
      return;
    }
    const delay = LIVE_BACKOFF_S[Math.min(state.attempt, LIVE_BACKOFF_S.length - 1)];
    state.attempt += 1;
    liveStatus("reconnecting", `closed (${code}): ${reason}; reconnecting in ${delay} s`, code);
    state.retryTimer = setTimeout(() => { if (live === state && !state.stopped) connectLive(); }, delay * 1000);
  });
}

// Merge one stance/stride message into the athlete's history.
function liveIngest(msg) {
  const state = live;
  const id = msg.athlete_id;
  let a = state.athletes.get(id);
  if (!a || a.session !== msg.session_id) {
    if (a && a.oldSessions.has(msg.session_id)) return; // a late row of a session already replaced
    const oldSessions = a ? new Set([...a.oldSessions, a.session]) : new Set();
    a = { session: msg.session_id, oldSessions, feet: { left: [], right: [] }, ended: false, updated: null };
    state.athletes.set(id, a);
  }
  const rows = a.feet[msg.foot];
  if (!rows) return;
  if (msg.published_at != null) state.lastPublished = Math.max(state.lastPublished ?? 0, msg.published_at);
  const key = rowKey(msg);
  const at = rows.findIndex((r) => rowKey(r) === key);
  const old = at >= 0 ? rows[at] : null;
  // a replayed message already shown, or a stance after its final row: nothing new
  if (old && (old.type === msg.type || (old.type === "stride" && msg.type === "stance"))) return;
  state.counts[msg.type] += 1;
  if (old) {
    if (old.type === "stance" && msg.type === "stride") state.counts.replaced += 1;
    rows[at] = msg;
  } else {
    rows.push(msg);
    rows.sort((x, y) => x.ic_t - y.ic_t);
    if (rows.length > LIVE_HISTORY) rows.splice(0, rows.length - LIVE_HISTORY);
  }
  if (msg.closed_by && msg.closed_by !== "packet") a.ended = true;
  a.updated = msg.published_at ?? a.updated;
  state.dirty.add(id);
  // Rendered at once (one athlete's section, about a millisecond), so every provisional row is
  // shown, even in a burst where its final row follows in the next message.
  renderLive();
}

function statusBadge(row) {
  if (!row.valid) return el("span", { class: "badge invalid", text: `invalid: ${row.reason || "?"}` });
  if (row.type === "stance") return el("span", { class: "badge provisional", text: "provisional" });
  // a turn or the gait start: measured (valid), but not in the session's statistics (not steady)
  return el("span", { class: "badge final", text: row.context ? `final: ${row.context}` : "final" });
}

function rowClass(row) {
  return [row.type === "stance" ? "provisional" : "final", row.valid ? null : "invalid"].filter(Boolean).join(" ");
}

function liveCard(athleteId, a, foot) {
  const rows = a.feet[foot];
  const latest = rows[rows.length - 1];
  const card = el("article", { class: `live-card foot-${foot}`, "data-athlete": athleteId, "data-foot": foot });
  const title = el("h3", {}, el("span", { class: foot, text: `${foot} foot` }));
  card.append(title);
  if (!latest) {
    card.append(el("p", { class: "note", text: "waiting for this foot's first stride…" }));
    return card;
  }
  title.append(" ", statusBadge(latest));
  card.setAttribute("data-kind", latest.type);
  card.setAttribute("data-ic-t", String(latest.ic_t));
  card.setAttribute("data-valid", String(latest.valid));
  card.classList.add(...rowClass(latest).split(" "));
  const index = latest.type === "stride" ? `stride ${latest.stride_index}` : "stance (stride not closed yet)";
  const kind = latest.activity ? `, ${ACTIVITY_WORDS[latest.activity] || latest.activity}` : "";
  card.append(el("p", { class: "note", text: `${index}, IC at ${fmt(latest.ic_t, 2)} s${kind}` }));
  const grid = el("dl", { class: "live-metrics latest" });
  for (const m of LIVE_METRICS) {
    grid.append(el("div", {}, el("dt", { text: metricLabel(m) }), el("dd", { "data-metric": m, text: metricFmt(m, latest[m]) })));
  }
  grid.append(el("div", {}, el("dt", { text: "strike type" }), el("dd", { "data-metric": "strike_type", text: latest.strike_type ?? "–" })));
  card.append(grid);
  const head = el("tr", {}, el("th", { scope: "col", class: "text", text: "IC (s)" }), el("th", { scope: "col", class: "text", text: "status" }),
    ...LIVE_METRICS.map((m) => el("th", { scope: "col", text: LIVE_SHORT[m] })), el("th", { scope: "col", class: "text", text: "strike" }));
  const body = el("tbody");
  for (const row of rows.slice(-LIVE_RECENT).reverse()) {
    const tr = el("tr", { class: rowClass(row), "data-foot": foot, "data-ic-t": String(row.ic_t), "data-kind": row.type,
      title: row.valid ? null : `invalid stride: ${row.reason || "?"}` });
    tr.append(el("td", { "data-col": "ic_t", text: fmt(row.ic_t, 2) }),
      el("td", { class: "text", "data-col": "status" }, statusBadge(row)),
      ...LIVE_METRICS.map((m) => el("td", { "data-col": m, text: metricFmt(m, row[m]) })),
      el("td", { class: "text", "data-col": "strike_type", title: row.strike_type ?? null,
        text: row.strike_type ? row.strike_type.replace(/foot$/, "") : "–" }));
    body.append(tr);
  }
  card.append(el("div", { class: "live-recent-box" }, el("table", { class: "live-recent" }, el("thead", {}, head), body)));
  return card;
}

// A rolling sparkline of one metric over the last LIVE_HISTORY strides, left and right, x = IC time.
function liveSpark(athleteId, a, metric) {
  const W = 460, H = 130, m = { l: 44, r: 10, t: 22, b: 22 };
  const [label, unit, decimals] = METRICS[metric];
  const title = `${label} (${unit}), last ${LIVE_HISTORY} strides`;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "spark",
    "data-spark": `${athleteId}-${metric}` });
  root.append(svg("text", { x: 6, y: 14, "font-size": 12, "font-weight": 600 }, title));
  const points = FEET.flatMap((f) => a.feet[f].filter((r) => r.valid && Number.isFinite(r[metric])).map((r) => [f, r]));
  if (!points.length) {
    root.append(svg("text", { x: W / 2, y: H / 2 + 4, "text-anchor": "middle", fill: "#666", "font-size": 12 }, "no valid stride yet"));
    return root;
  }
  const ts = points.map(([, r]) => r.ic_t), vs = points.map(([, r]) => r[metric]);
  let [lo, hi] = [Math.min(...vs), Math.max(...vs)];
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const t0 = Math.min(...ts), t1 = Math.max(...ts);
  const X = (t) => m.l + ((t - t0) / (t1 - t0 || 1)) * (W - m.l - m.r);
  const Y = (v) => H - m.b - ((v - lo) / (hi - lo)) * (H - m.t - m.b);
  const axes = svg("g", { "font-size": 10, fill: "#555" });
  for (const v of [lo, hi]) {
    axes.append(svg("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), stroke: "#e6e9ef" }));
    axes.append(svg("text", { x: m.l - 4, y: Y(v) + 3, "text-anchor": "end" }, fmt(v, decimals)));
  }
  if (lo < 0 && hi > 0) {
    axes.append(svg("line", { x1: m.l, x2: W - m.r, y1: Y(0), y2: Y(0), stroke: "#9aa3b2", "stroke-dasharray": "3 3" }));
    if (Math.min(Y(lo) - Y(0), Y(0) - Y(hi)) > 10) axes.append(svg("text", { x: m.l - 4, y: Y(0) + 3, "text-anchor": "end" }, "0"));
  }
  axes.append(svg("text", { x: m.l, y: H - 6 }, `IC ${fmt(t0, 1)} s`));
  axes.append(svg("text", { x: W - m.r, y: H - 6, "text-anchor": "end" }, `${fmt(t1, 1)} s`));
  root.append(axes);
  FEET.forEach((foot, j) => {
    const mine = points.filter(([f]) => f === foot).map(([, r]) => r);
    const g = svg("g", { class: "series", "data-foot": foot });
    if (mine.length) {
      const d = mine.map((r, i) => `${i ? "L" : "M"}${X(r.ic_t).toFixed(1)},${Y(r[metric]).toFixed(1)}`).join("");
      g.append(svg("path", { d, fill: "none", stroke: FOOT_COLORS[foot], "stroke-width": 1.6, "data-points": mine.length }));
      for (const r of mine) {
        g.append(svg("circle", { cx: X(r.ic_t).toFixed(1), cy: Y(r[metric]).toFixed(1), r: 2.4,
          fill: r.type === "stance" ? "#fff" : FOOT_COLORS[foot], stroke: FOOT_COLORS[foot],
          class: r.type === "stance" ? "provisional" : "final" }));
      }
    }
    root.append(g);
    root.append(svg("rect", { x: W - m.r - 100 + j * 52, y: 5, width: 9, height: 9, fill: FOOT_COLORS[foot] }));
    root.append(svg("text", { x: W - m.r - 88 + j * 52, y: 13, "font-size": 11 }, foot));
  });
  return root;
}

function liveSection(athleteId, a) {
  const updated = a.updated ? new Date(a.updated * 1000).toLocaleTimeString() : "–";
  const head = el("h2", {}, `${athleteId} `, el("span", { class: "note", text: `session ${a.session}, updated ${updated}` }));
  if (a.ended) head.append(" ", el("span", { class: "badge ended", text: "stream ended" }));
  return el("section", { class: "live-athlete", "data-athlete": athleteId, "data-session": a.session },
    head,
    el("div", { class: "live-cards" }, ...FEET.map((f) => liveCard(athleteId, a, f))),
    el("div", { class: "live-sparks" }, ...LIVE_SPARKS.map((mt) => el("div", { class: "chart" }, liveSpark(athleteId, a, mt)))));
}

function renderLive() {
  const state = live;
  const box = document.getElementById("live-athletes");
  if (!box) return;
  const ids = [...state.athletes.keys()].sort();
  for (const id of state.dirty) {
    const fresh = liveSection(id, state.athletes.get(id));
    const old = [...box.children].find((n) => n.getAttribute("data-athlete") === id);
    if (old) old.replaceWith(fresh);
    else {
      const next = [...box.children].find((n) => (n.getAttribute("data-athlete") || "") > id);
      box.insertBefore(fresh, next || null);
    }
  }
  state.dirty.clear();
  document.getElementById("live-empty").hidden = ids.length > 0;
  liveCounts();
}

// The device streams the server holds (GET /v1/streams), refreshed every LIVE_DEVICES_S.
const LIVE_DEVICES_S = 5;

async function pollDevices(state) {
  if (live !== state || state.stopped) return;
  const node = document.getElementById("live-devices");
  try {
    let streams = await apiAll("/v1/streams");
    if (state.filter) streams = streams.filter((s) => s.athlete_id === state.filter);
    if (live !== state || !node) return;
    const open = streams.filter((s) => !s.ended);
    node.setAttribute("data-count", String(open.length));
    node.replaceChildren(open.length
      ? el("span", { text: `Streaming now (${open.length}): ` + open.map((s) =>
        `${s.athlete_id} ${s.foot} (${s.device_id}${s.connected ? "" : ", disconnected"}, last packet ${s.idle_s.toFixed(0)} s ago)`).join("; ") })
      : el("span", { text: "No device is streaming now." }));
  } catch (_) { /* the socket reports key problems */ }
  state.devicesTimer = setTimeout(() => pollDevices(state), LIVE_DEVICES_S * 1000);
}

function showLive(filter) {
  const root = view();
  const input = el("input", { id: "live-athlete", name: "athlete", list: "live-athlete-list", size: 14,
    placeholder: "all athletes", spellcheck: "false", value: filter || "" });
  const options = el("datalist", { id: "live-athlete-list" });
  const form = el("form", { id: "live-filter", class: "live-filter" },
    el("label", { for: "live-athlete", text: "Athlete" }), input, options,
    el("button", { type: "submit", id: "live-watch", text: "Watch" }),
    filter ? el("a", { href: "#/live", text: "all athletes" }) : null);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const want = input.value.trim();
    location.hash = want ? `#/live/${enc(want)}` : "#/live";
  });
  root.replaceChildren(
    el("h1", { text: filter ? `Live: ${filter}` : "Live" }),
    el("div", { class: "live-bar" }, el("p", { id: "live-status", class: "live-status", "aria-live": "polite" }), form),
    el("p", { class: "note", text: "Each stride appears at its toe-off as a provisional row (italic), and is replaced by its final, stored row "
      + "about one stride later. Greyed rows are invalid strides (reason shown); sparklines plot valid strides only "
      + "(hollow dots: provisional)." }),
    el("p", { id: "live-devices", class: "note" }),
    el("p", { id: "live-empty", class: "note", text: "No stride yet: start a stream (strideflow stream …) and its strides appear here." }),
    el("div", { id: "live-athletes" }),
    el("p", { id: "live-counts", class: "note" }),
  );
  live = { filter, ws: null, attempt: 0, retryTimer: null, stopped: false, lastError: null, lastPublished: null,
    athletes: new Map(), dirty: new Set(), counts: { stance: 0, stride: 0, replaced: 0 } };
  liveCounts();
  connectLive();
  pollDevices(live);
  // Suggestions for the filter; the server decides what the key may watch anyway.
  apiAll("/v1/athletes").then((athletes) => {
    options.replaceChildren(...athletes.map((a) => el("option", { value: a.athlete_id })));
  }).catch(() => { /* the socket reports key problems */ });
}

// ---------------------------------------------------------------------------------------------
// Routing and sign-in

function showLogin(message = "") {
  document.getElementById("login").hidden = false;
  document.getElementById("view").hidden = true;
  document.getElementById("nav").hidden = true;
  document.getElementById("login-error").textContent = message;
}

async function route() {
  if (!apiKey()) { showLogin(); return; }
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  const page = document.getElementById("view");
  page.hidden = false;
  page.removeAttribute("data-ready");
  const root = el("div", { class: "route" });
  routeRoot = root;
  page.replaceChildren(root);
  const current = () => routeRoot === root;
  const hash = location.hash || "#/team";
  stopLive();
  for (const link of document.querySelectorAll("#nav a")) {
    if (hash.startsWith(link.getAttribute("href"))) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    const match = hash.match(/^#\/athlete\/(.+)$/);
    const liveMatch = hash.match(/^#\/live(?:\/(.+))?$/);
    if (match) await showAthlete(decodeURIComponent(match[1]));
    else if (liveMatch) showLive(liveMatch[1] ? decodeURIComponent(liveMatch[1]) : null);
    else await showTeam();
    if (current()) page.setAttribute("data-ready", hash);
  } catch (err) {
    if (!current()) return;
    if (err instanceof ApiError && err.status === 401) {
      sessionStorage.removeItem(KEY_STORE);
      showLogin("That key was not accepted: " + err.message);
      return;
    }
    const text = err instanceof ApiError && err.status === 404 ? `Not found (or not visible to this key): ${err.message}` : `Error: ${err.message}`;
    root.replaceChildren(el("p", { class: "error", id: "view-error", text }));
    page.setAttribute("data-ready", hash);
  }
}

async function whoAmI() {
  try {
    const athletes = await api("/v1/athletes?limit=2");
    const who = document.getElementById("who");
    who.textContent = athletes.items.length === 1 && !athletes.next_cursor ? `athlete view: ${athletes.items[0].athlete_id}` : "team view";
  } catch (_) { /* route() reports errors */ }
}

document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const key = document.getElementById("api-key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  document.getElementById("api-key").value = "";
  await whoAmI();
  await route();
});
document.getElementById("logout").addEventListener("click", () => {
  stopLive();
  sessionStorage.removeItem(KEY_STORE);
  routeRoot = null;
  document.getElementById("view").replaceChildren();
  showLogin("Signed out.");
});
window.addEventListener("hashchange", route);
if (apiKey()) whoAmI();
route();
