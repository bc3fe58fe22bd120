/**
 * The HTML report in a real headless Chromium: it renders, logs no console error, and shows a
 * statistics row, a CDF and timeline markers for every phase; its controls work. A control page
 * with a console error and a blocked remote image proves the check can fail.
 */
import assert from "node:assert/strict";
import { requireTool, testNeeding } from "../_require.ts";
import { LatencyRecorder } from "../../lib/virtwork/latency.ts";
import { buildReport } from "../../lib/virtwork/report.ts";
import { reportHtml } from "../../lib/virtwork/report_html.ts";
import { loadInChromium } from "./_chromium.ts";

/** A KubeVirt run of 12 VMs with every phase, one VM that never got ready, one odd name. */
function sampleReport() {
  const rec = new LatencyRecorder("kubevirt");
  const vms = [];
  for (let i = 0; i < 12; i++) {
    const name = i === 5 ? `odd-"<b>&'-${i}` : `vw-cpu-${i}`;
    const t0 = 1000 * i;
    rec.created(name, t0, "2026-12-02T10:00:00Z");
    const steps: [string, number][] = [
      ["VMICreated", 80],
      ["Pending", 150],
      ["Scheduling", 400],
      ["Scheduled", 900],
      ["Running", 1800 + 150 * i],
    ];
    if (i !== 7) {
      steps.push(
        ["VMReady", 2000 + 300 * i],
        ["AgentConnected", 9000 + 500 * i],
        ["CloudInitDone", 40_000 + 900 * i],
        ["FirstResult", 61_000 + 700 * i],
      );
    }
    for (const [p, ms] of steps) rec.phase(name, p, t0 + ms);
    vms.push({
      name,
      workload: "cpu",
      role: "worker",
      ready: i !== 7,
      ...(i === 7 ? { error: "not ready after 600s" } : {}),
      result: { workload: "cpu", t: 0, metrics: { bogo_ops_per_s: 100 + i } },
    });
  }
  return buildReport({
    runId: "7f3c2a10-report-html",
    target: "kubevirt",
    location: "https://127.0.0.1:6443",
    vms,
    latency: rec.vms(),
  });
}

// Evaluated in the page: what is on it, then the controls exercised.
const INSPECT = `(async () => {
  const phases = (sel) => [...document.querySelectorAll(sel)].map((e) => e.getAttribute("data-phase"));
  const figures = [...document.querySelectorAll("#cdf figure")].map((f) => {
    const path = f.querySelector("path.step");
    const box = path ? path.getBBox() : null;
    return { phase: f.getAttribute("data-phase"), w: box ? box.width : 0, h: box ? box.height : 0 };
  });
  const markerPhases = [...new Set(phases("#timeline-svg circle"))];
  const rows = [...document.querySelectorAll("#timeline-svg g.row")];
  const sort = document.getElementById("sort");
  sort.value = "VMReady";
  sort.dispatchEvent(new Event("change"));
  const y = (g) => Number(/translate\\(0,([\\d.]+)\\)/.exec(g.getAttribute("transform"))[1]);
  const byReady = rows.slice().sort((a, b) => y(a) - y(b)).map((g) => g.getAttribute("data-vm"));
  const button = document.querySelector('.legend button[data-phase="AgentConnected"]');
  button.click();
  const hidden = [...document.querySelectorAll('#timeline-svg circle[data-phase="AgentConnected"]')]
    .every((c) => getComputedStyle(c).display === "none");
  const data = JSON.parse(document.getElementById("report-data").textContent);
  return {
    rendered: document.body.getAttribute("data-rendered"),
    title: document.title,
    tablePhases: phases("#latency tbody tr"),
    figures,
    markerPhases,
    rowCount: rows.length,
    byReady,
    hidden,
    dataRunId: data.runId,
    oddName: rows.some((g) => g.getAttribute("data-vm") === 'odd-"<b>&\\'-5'),
    timelineWidth: document.getElementById("timeline-svg").getBoundingClientRect().width,
  };
})()`;

interface Inspected {
  rendered: string | null;
  title: string;
  tablePhases: string[];
  figures: { phase: string; w: number; h: number }[];
  markerPhases: string[];
  rowCount: number;
  byReady: string[];
  hidden: boolean;
  dataRunId: string;
  oddName: boolean;
  timelineWidth: number;
}

testNeeding(requireTool("chromium"), {
  name: "the html report renders in headless Chromium without console errors and shows every phase",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const report = sampleReport();
    const phases = Object.keys(report.latency);
    assert.deepEqual(phases, [
      "VMICreated",
      "VMIPending",
      "VMIScheduling",
      "VMIScheduled",
      "VMIRunning",
      "VMReady",
      "AgentConnected",
      "CloudInitDone",
      "FirstResult",
    ]);
    const dir = await Deno.makeTempDir({ prefix: "virtwork-report-html-" });
    try {
      const file = `${dir}/report.html`;
      await Deno.writeTextFile(file, reportHtml(report));
      const { errors, value } = await loadInChromium<Inspected>(file, INSPECT);
      assert.deepEqual(errors, []);
      assert.equal(value.rendered, "true");
      assert.equal(value.title, "virtwork run 7f3c2a10-report-html");
      assert.deepEqual(value.tablePhases, phases);
      assert.deepEqual(value.figures.map((f) => f.phase), phases);
      for (const f of value.figures) {
        assert.ok(f.w > 0 && f.h > 0, `CDF of ${f.phase} drawn: ${JSON.stringify(f)}`);
      }
      assert.deepEqual([...value.markerPhases].sort(), [...phases].sort());
      assert.equal(value.rowCount, 12);
      assert.ok(value.timelineWidth > 100);
      // Sorted by VMReady: ready times grow with the index; the VM that never got ready is last.
      assert.deepEqual(value.byReady, [
        ...Array.from({ length: 12 }, (_, i) => i).filter((i) => i !== 7).map((i) =>
          i === 5 ? `odd-"<b>&'-5` : `vw-cpu-${i}`
        ),
        "vw-cpu-7",
      ]);
      assert.equal(value.hidden, true);
      assert.equal(value.dataRunId, report.runId);
      assert.equal(value.oddName, true);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

testNeeding(requireTool("chromium"), {
  name: "the Chromium check catches a console error and a blocked remote load (control)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "virtwork-report-html-" });
    try {
      const file = `${dir}/broken.html`;
      const html = reportHtml(sampleReport()).replace(
        "</body>",
        `<img src="http://192.0.2.1/x.png"><script>console.error("boom")</script></body>`,
      );
      await Deno.writeTextFile(file, html);
      const { errors } = await loadInChromium<null>(file, "null");
      assert.ok(errors.some((e) => e.includes("boom")), errors.join("\n"));
      assert.ok(
        errors.some((e) => /Content Security Policy|192\.0\.2\.1/.test(e)),
        errors.join("\n"),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
