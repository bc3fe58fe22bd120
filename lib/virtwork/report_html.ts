/**
 * A run's report as one self-contained HTML file: the per-phase statistics, a latency CDF per
 * phase and a per-VM timeline, drawn as inline SVG when the file is written (so it shows without
 * scripts), with a small inline script for sorting the timeline and hiding phases. No network:
 * the page's Content-Security-Policy allows nothing to load, and the report's JSON rides along
 * in a `<script type="application/json">` element for anyone who wants the data.
 *
 * @example
 * ```ts
 * import { reportHtml } from "./report_html.ts";
 * import { buildReport } from "./report.ts";
 * const html = reportHtml(buildReport({ runId: "r1", target: "libvirt", vms: [], latency: [] }));
 * console.log(html.startsWith("<!doctype html>"));
 * ```
 * @module
 */
import type { PhaseStats } from "./latency.ts";
import type { LatencyReport } from "./report.ts";

/** Colours of the phases, in phase order (Okabe-Ito first, readable for colour-blind people). */
const PALETTE = [
  "#0072B2",
  "#E69F00",
  "#009E73",
  "#CC79A7",
  "#56B4E9",
  "#D55E00",
  "#7F7F00",
  "#000000",
  "#999999",
  "#8C564B",
  "#17BECF",
  "#9467BD",
];

function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A step of 1, 2 or 5 × 10^k so that `max` spans about `n` of them. */
function niceStep(max: number, n: number): number {
  if (!(max > 0)) return 1;
  const raw = max / n;
  const k = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * k >= raw) return m * k;
  return 10 * k;
}

/** Milliseconds for an axis or a tooltip. */
function fmt(ms: number | null, unitSeconds: boolean): string {
  if (ms === null) return "-";
  if (!unitSeconds) return `${Math.round(ms * 10) / 10} ms`;
  const s = ms / 1000;
  return `${s >= 100 ? Math.round(s) : Math.round(s * 100) / 100} s`;
}

function fmtStat(ms: number | null): string {
  return ms === null ? "-" : fmt(ms, ms >= 1000);
}

interface Axis {
  max: number;
  step: number;
  seconds: boolean;
}

function axisFor(maxMs: number): Axis {
  // 5 % headroom, so a step at the largest sample does not sit on the frame.
  const top = (maxMs || 1) * 1.05;
  const step = niceStep(top, 5);
  return { max: Math.ceil(top / step) * step, step, seconds: maxMs >= 2000 };
}

function xTicks(a: Axis, x: (ms: number) => number, y0: number, y1: number): string {
  const out: string[] = [];
  for (let t = 0; t <= a.max + a.step / 2; t += a.step) {
    const px = x(t).toFixed(1);
    out.push(
      `<line class="grid" x1="${px}" x2="${px}" y1="${y0}" y2="${y1}"/>` +
        `<text class="tick" x="${px}" y="${y1 + 14}" text-anchor="middle">${
          esc(fmt(t, a.seconds))
        }</text>`,
    );
  }
  return out.join("");
}

/** One phase's CDF: share of all the run's VMs that reached the phase by each time. */
function cdfSvg(phase: string, samples: number[], s: PhaseStats, color: string): string {
  const W = 340, H = 210, L = 44, R = 22, T = 26, B = 30;
  const total = s.count + s.missing;
  if (s.count === 0 || total === 0) {
    return `<svg class="cdf" data-phase="${esc(phase)}" viewBox="0 0 ${W} ${H}" width="${W}" ` +
      `height="${H}" role="img" aria-label="${esc(phase)}: no samples"><text class="empty" ` +
      `x="${W / 2}" y="${H / 2}" text-anchor="middle">no VM reached ${esc(phase)}</text></svg>`;
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const a = axisFor(sorted[sorted.length - 1]!);
  const x = (ms: number) => L + (ms / a.max) * (W - L - R);
  const y = (f: number) => H - B - f * (H - T - B);
  let d = `M${x(0).toFixed(1)},${y(0).toFixed(1)}`;
  sorted.forEach((ms, i) => {
    d += `H${x(ms).toFixed(1)}V${y((i + 1) / total).toFixed(1)}`;
  });
  d += `H${x(a.max).toFixed(1)}`;
  const yt = [0, 0.5, 1].map((f) =>
    `<line class="grid" x1="${L}" x2="${W - R}" y1="${y(f)}" y2="${y(f)}"/>` +
    `<text class="tick" x="${L - 4}" y="${y(f) + 4}" text-anchor="end">${f * 100}%</text>`
  ).join("");
  const marks = (["p50", "p95", "p99"] as const).map((k, i) => {
    const v = s[k]!;
    const px = x(v).toFixed(1);
    return `<g class="mark"><line x1="${px}" x2="${px}" y1="${T}" y2="${H - B}"/>` +
      `<text x="${px}" y="${T - 16 + 8 * i}" text-anchor="middle">${k}</text>` +
      `<title>${k} ${esc(fmtStat(v))}</title></g>`;
  }).join("");
  return `<svg class="cdf" data-phase="${esc(phase)}" viewBox="0 0 ${W} ${H}" width="${W}" ` +
    `height="${H}" role="img" aria-label="${esc(phase)} latency CDF">` +
    `${xTicks(a, x, T, H - B)}${yt}` +
    `<path class="step" d="${d}" stroke="${color}"/>${marks}</svg>`;
}

/** The per-VM timeline: one row per VM, a marker at each phase. */
function timelineSvg(r: LatencyReport, colors: Map<string, string>): string {
  const rowH = 18, L = 200, R = 16, T = 8, B = 30, W = 960;
  let max = 0;
  for (const v of r.vms) for (const ms of Object.values(v.phases)) max = Math.max(max, ms);
  const a = axisFor(max);
  const H = T + B + Math.max(1, r.vms.length) * rowH;
  const x = (ms: number) => L + (ms / a.max) * (W - L - R);
  const rows = r.vms.map((v, i) => {
    const entries = Object.entries(v.phases).sort((p, q) => p[1] - q[1]);
    const last = entries.length > 0 ? entries[entries.length - 1]![1] : 0;
    const label = v.name.length > 30 ? `${v.name.slice(0, 29)}…` : v.name;
    const bad = v.ready === false;
    const dots = entries.map(([p, ms]) =>
      `<circle data-phase="${esc(p)}" cx="${x(ms).toFixed(1)}" cy="0" r="4.5" fill="${
        colors.get(p) ?? "#444"
      }"><title>${esc(v.name)}: ${esc(p)} at ${esc(fmtStat(ms))} (${
        esc(v.sources[p] ?? "?")
      })</title></circle>`
    ).join("");
    const keys = Object.entries(v.phases).map(([p, ms]) => `${p}:${ms}`).join(" ");
    return `<g class="row${bad ? " notready" : ""}" data-vm="${esc(v.name)}" data-index="${i}" ` +
      `data-phases="${esc(keys)}" transform="translate(0,${T + i * rowH + rowH / 2})">` +
      `<text class="vm" x="${L - 8}" y="4" text-anchor="end">${esc(label)}<title>${esc(v.name)} (${
        esc(v.workload)
      })${v.error ? ` ${esc(v.error)}` : ""}</title></text>` +
      `<line class="span" x1="${x(0)}" x2="${x(last).toFixed(1)}" y1="0" y2="0"/>${dots}</g>`;
  }).join("");
  return `<svg id="timeline-svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" ` +
    `aria-label="per-VM timeline">${xTicks(a, x, T, H - B)}${rows}</svg>`;
}

const CSS = `
:root { font-family: system-ui, sans-serif; color: #222; background: #fff; }
body { margin: 1.5rem auto; max-width: 1000px; padding: 0 1rem; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.meta { color: #555; margin: 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .6rem; text-align: right; border-bottom: 1px solid #ddd; }
th:first-child, td:first-child { text-align: left; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 50%; margin-right: .4em; }
.grid-figs { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1rem; }
figure { margin: 0; } figcaption { font-weight: 600; }
svg text { font-size: 11px; fill: #333; } .tick { fill: #666; }
.grid { stroke: #e4e4e4; } .step { fill: none; stroke-width: 2; }
.mark line { stroke: #888; stroke-dasharray: 3 3; } .mark text { fill: #666; font-size: 9px; }
.span { stroke: #bbb; stroke-width: 2; } .notready .vm { fill: #b00020; }
.empty { fill: #999; font-style: italic; }
.legend button { border: 1px solid #ccc; background: #fafafa; border-radius: 1rem; margin: 0 .3rem .3rem 0;
  padding: .15rem .6rem; cursor: pointer; font: inherit; }
.legend button[aria-pressed="false"] { opacity: .4; }
.hidden { display: none; }
.method { color: #666; font-size: .85rem; }
`;

// Runs in the page: sorting rows and hiding phases. Plain ES2017, no globals left behind.
const SCRIPT = `
(function () {
  "use strict";
  var svg = document.getElementById("timeline-svg");
  var rows = svg ? Array.prototype.slice.call(svg.querySelectorAll("g.row")) : [];
  var rowH = 18, top = 8;
  function phaseAt(g, phase) {
    var parts = (g.getAttribute("data-phases") || "").split(" ");
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].split(":");
      if (kv[0] === phase) return Number(kv[1]);
    }
    return Infinity;
  }
  var sort = document.getElementById("sort");
  if (sort) sort.addEventListener("change", function () {
    var key = sort.value;
    var ordered = rows.slice().sort(function (a, b) {
      if (key === "plan") return Number(a.getAttribute("data-index")) - Number(b.getAttribute("data-index"));
      if (key === "name") return a.getAttribute("data-vm") < b.getAttribute("data-vm") ? -1 : 1;
      return phaseAt(a, key) - phaseAt(b, key);
    });
    ordered.forEach(function (g, i) {
      g.setAttribute("transform", "translate(0," + (top + i * rowH + rowH / 2) + ")");
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".legend button"), function (b) {
    b.addEventListener("click", function () {
      var on = b.getAttribute("aria-pressed") !== "false";
      b.setAttribute("aria-pressed", on ? "false" : "true");
      var sel = '[data-phase="' + b.getAttribute("data-phase") + '"]';
      Array.prototype.forEach.call(document.querySelectorAll("#timeline-svg circle" + sel + ", figure" + sel),
        function (el) { el.classList.toggle("hidden", on); });
    });
  });
  document.body.setAttribute("data-rendered", "true");
})();
`;

/** The report as one self-contained HTML document. */
export function reportHtml(r: LatencyReport): string {
  const phases = Object.keys(r.latency);
  const colors = new Map(phases.map((p, i) => [p, PALETTE[i % PALETTE.length]!]));
  const samples: Record<string, number[]> = {};
  for (const v of r.vms) {
    for (const [p, ms] of Object.entries(v.phases)) (samples[p] ??= []).push(ms);
  }
  const swatch = (p: string) =>
    `<span class="swatch" style="background:${colors.get(p) ?? "#444"}"></span>`;
  const statRows = phases.map((p) => {
    const s = r.latency[p]!;
    return `<tr data-phase="${esc(p)}"><td>${swatch(p)}${
      esc(p)
    }</td><td>${s.count}</td><td>${s.missing}</td>${
      (["min", "avg", "p50", "p95", "p99", "max"] as const).map((k) =>
        `<td>${esc(fmtStat(s[k]))}</td>`
      )
        .join("")
    }</tr>`;
  }).join("");
  const figures = phases.map((p) => {
    const s = r.latency[p]!;
    const note = s.missing > 0 ? ` (${s.missing} of ${s.count + s.missing} never)` : "";
    return `<figure data-phase="${esc(p)}"><figcaption>${swatch(p)}${esc(p)}${
      esc(note)
    }</figcaption>${cdfSvg(p, samples[p] ?? [], s, colors.get(p)!)}</figure>`;
  }).join("");
  const legend = phases.map((p) =>
    `<button type="button" data-phase="${esc(p)}" aria-pressed="true">${swatch(p)}${
      esc(p)
    }</button>`
  ).join("");
  const sortOptions = [
    '<option value="plan">plan order</option>',
    '<option value="name">name</option>',
  ]
    .concat(phases.map((p) => `<option value="${esc(p)}">${esc(p)}</option>`)).join("");
  const metricRows = Object.entries(r.results).flatMap(([w, ms]) =>
    Object.entries(ms).map(([k, s]) =>
      `<tr><td>${esc(w)}</td><td>${
        esc(k)
      }</td><td>${s.count}</td><td>${s.min}</td><td>${s.avg}</td><td>${s.p50}</td><td>${s.max}</td><td>${s.sum}</td></tr>`
    )
  ).join("");
  const results = metricRows
    ? `<section id="results"><h2>Guest results</h2><table><thead><tr><th>workload</th><th>metric</th>` +
      `<th>VMs</th><th>min</th><th>avg</th><th>p50</th><th>max</th><th>sum</th></tr></thead>` +
      `<tbody>${metricRows}</tbody></table></section>`
    : "";
  const ready = r.vms.filter((v) => v.ready).length;
  const meta = [
    `target ${r.target}`,
    r.location ? `at ${r.location}` : "",
    r.scope && r.scope !== r.location ? `scope ${r.scope}` : "",
    `${r.vms.length} VMs${r.vms.some((v) => v.ready !== undefined) ? `, ${ready} ready` : ""}`,
    r.startedAt ? `started ${r.startedAt}` : "",
  ].filter(Boolean).map(esc).join(" · ");
  const data = JSON.stringify(r).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>virtwork run ${esc(r.runId)}</title><style>${CSS}</style></head>
<body>
<header><h1>virtwork run <code>${esc(r.runId)}</code></h1><p class="meta">${meta}</p></header>
<section id="latency"><h2>Latency per phase</h2>
<table><thead><tr><th>phase</th><th>VMs</th><th>never</th><th>min</th><th>avg</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr></thead>
<tbody>${statRows}</tbody></table>
<p class="method">${esc(r.origin)}. Quantiles: ${esc(r.quantileMethod)}.</p></section>
<section id="cdf"><h2>Latency CDF per phase</h2><p class="method">Share of all ${r.vms.length} VMs that reached the phase by each time since their creation request.</p>
<div class="grid-figs">${figures}</div></section>
<section id="timeline"><h2>Per-VM timeline</h2>
<div class="legend">${legend}</div>
<p><label>Sort by <select id="sort">${sortOptions}</select></label></p>
${timelineSvg(r, colors)}</section>
${results}
<script type="application/json" id="report-data">${data}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
