import assert from "node:assert/strict";
import { LatencyRecorder } from "./latency.ts";
import {
  buildReport,
  latencyCsv,
  NoLatencyError,
  phaseSamples,
  reportCsv,
  reportFromRun,
  reportFromStored,
  storedPhases,
  summarizeResults,
} from "./report.ts";
import { openAuditDb } from "../audit/schema.ts";
import { SqliteAuditor } from "../audit/sqlite.ts";
import { runLatency } from "../audit/reader.ts";
import type { PlanRunResult } from "./run.ts";
import { reportHtml } from "./report_html.ts";

function libvirtRun() {
  const rec = new LatencyRecorder("libvirt");
  rec.created("a", 0);
  rec.phase("a", "DomainDefined", 10);
  rec.phase("a", "DomainRunning", 1000);
  rec.phase("a", "AgentConnected", 30_000);
  rec.created("b", 100);
  rec.phase("b", "DomainDefined", 150);
  rec.phase("b", "DomainRunning", 3100);
  return buildReport({
    runId: "r1",
    target: "libvirt",
    location: "qemu:///system",
    vms: [
      {
        name: "a",
        workload: "cpu",
        role: "worker",
        ready: true,
        result: { workload: "cpu", t: 1, metrics: { bogo_ops_per_s: 100 } },
      },
      { name: "b", workload: "cpu", ready: false, error: "not ready after 60s" },
      {
        name: 'c,"x"',
        workload: "disk",
        result: { workload: "disk", t: 1, metrics: {}, error: "no fio" },
      },
    ],
    latency: rec.vms(),
  });
}

Deno.test("buildReport joins latencies to the run's VMs and summarizes each phase", () => {
  const r = libvirtRun();
  assert.equal(r.version, 1);
  assert.deepEqual(r.phases, ["DomainDefined", "DomainRunning", "AgentConnected", "CloudInitDone"]);
  assert.deepEqual(r.vms.map((v) => v.name), ["a", "b", 'c,"x"']);
  assert.deepEqual(r.vms[0]!.phases, {
    DomainDefined: 10,
    DomainRunning: 1000,
    AgentConnected: 30_000,
  });
  assert.deepEqual(r.vms[1]!.phases, { DomainDefined: 50, DomainRunning: 3000 });
  assert.deepEqual(r.vms[2]!.phases, {});
  assert.equal(r.vms[2]!.resultError, "no fio");
  assert.deepEqual(r.latency.DomainRunning, {
    count: 2,
    min: 1000,
    avg: 2000,
    p50: 2000,
    p95: 2900,
    p99: 2980,
    max: 3000,
    missing: 1,
  });
  assert.equal(r.latency.AgentConnected!.missing, 2);
  assert.equal(r.latency.CloudInitDone!.count, 0);
  assert.ok(!("FirstResult" in r.latency), "no results were read: FirstResult is not expected");
  assert.deepEqual(r.results, {
    cpu: { bogo_ops_per_s: { count: 1, min: 100, avg: 100, p50: 100, max: 100, sum: 100 } },
  });
  assert.match(r.quantileMethod, /numpy 'linear'/);
  // JSON round trip keeps it whole (what --report writes and `report` reads).
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
});

Deno.test("phaseSamples gives each phase's figures", () => {
  assert.deepEqual(phaseSamples(libvirtRun()), {
    DomainDefined: [10, 50],
    DomainRunning: [1000, 3000],
    AgentConnected: [30_000],
  });
});

Deno.test("reportCsv: one row per VM and phase, fields quoted, formulas defused", () => {
  const r = libvirtRun();
  r.vms[0]!.observed!.DomainRunning!.serverTime = "=cmd()";
  const csv = reportCsv(r);
  assert.equal(
    csv,
    [
      "vm,workload,phase,ms,source,client_ms,server_time,server_ms",
      "a,cpu,DomainDefined,10,client,10,,",
      "a,cpu,DomainRunning,1000,client,1000,'=cmd(),",
      "a,cpu,AgentConnected,30000,client,30000,,",
      "b,cpu,DomainDefined,50,client,50,,",
      "b,cpu,DomainRunning,3000,client,3000,,",
      '"c,""x""",disk,,,,,,',
      "",
    ].join("\n"),
  );
});

Deno.test("latencyCsv lists the statistics, empty where there are no samples", () => {
  const lines = latencyCsv(libvirtRun()).trim().split("\n");
  assert.equal(lines[0], "phase,count,missing,min_ms,avg_ms,p50_ms,p95_ms,p99_ms,max_ms");
  assert.equal(lines[2], "DomainRunning,2,1,1000,2000,2000,2900,2980,3000");
  assert.equal(lines[4], "CloudInitDone,0,3,,,,,,");
});

Deno.test("summarizeResults adds up throughput over a workload's VMs", () => {
  const s = summarizeResults([
    { workload: "disk", results: { write_iops: 100 } },
    { workload: "disk", results: { write_iops: 300 } },
    { workload: "cpu", results: {} },
  ]);
  assert.deepEqual(s, {
    disk: { write_iops: { count: 2, min: 100, avg: 200, p50: 200, max: 300, sum: 400 } },
  });
});

Deno.test("reportHtml is self-contained and escapes what the run named", () => {
  const r = libvirtRun();
  r.vms[1]!.name = "</script><script>alert(1)</script>";
  const html = reportHtml(r);
  assert.ok(html.startsWith("<!doctype html>"));
  assert.ok(!/\b(src|href)=/.test(html), "nothing is loaded from anywhere");
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  assert.equal(html.match(/<\/script>/g)!.length, 2, "the name cannot close a script element");
  assert.ok(html.includes("&#60;/script&#62;&#60;script&#62;alert(1)"));
  for (const p of r.phases) assert.ok(html.includes(`<figure data-phase="${p}">`), p);
  assert.ok(html.includes("no VM reached CloudInitDone"));
});

Deno.test("a report stored in the audit database is computed again to the same figures", () => {
  const r = libvirtRun();
  const a = new SqliteAuditor(openAuditDb(":memory:"));
  try {
    a.runStarted({
      runId: r.runId,
      namespace: "qemu:///system",
      workloads: ["cpu", "disk"],
      vmCount: 3,
      dryRun: false,
      sshAuthConfigured: false,
      target: "qemu:///system",
    });
    for (const v of r.vms) {
      a.vmFinished({
        runId: r.runId,
        namespace: "qemu:///system",
        name: v.name,
        workload: v.workload,
        role: v.role ?? "worker",
        phase: "-",
        ready: v.ready ?? false,
        ...(v.error !== undefined ? { error: v.error } : {}),
        phases: storedPhases(v),
      });
      a.resultsRecorded({
        runId: r.runId,
        vm: v.name,
        workload: v.workload,
        metrics: v.results,
        ...(v.resultError !== undefined ? { error: v.resultError } : {}),
      });
    }
    a.runFinished({
      runId: r.runId,
      ok: true,
      interrupted: false,
      latency: { targetKind: r.target, phases: r.phases, clientResolutionMs: 0 },
    });
    const again = reportFromStored(runLatency(a.db, r.runId)!);
    assert.deepEqual(again.latency, r.latency);
    assert.deepEqual(again.phases, r.phases);
    assert.deepEqual(again.results, r.results);
    assert.deepEqual(
      again.vms.map((v) => [v.name, v.phases, v.sources, v.resultError]),
      r.vms.map((
        v,
      ) => [v.name, v.phases, v.sources, v.resultError]),
    );
    assert.equal(reportCsv(again), reportCsv(r));

    a.cleanupStarted({ cleanupId: "c1", namespace: "x" });
    assert.throws(() => reportFromStored(runLatency(a.db, "c1")!), NoLatencyError);
  } finally {
    a.close();
  }
});

Deno.test("reportFromRun takes a finished run; FirstResult is expected only when results were read", () => {
  const rec = new LatencyRecorder("libvirt");
  rec.created("a", 0);
  rec.phase("a", "DomainRunning", 500);
  const run: PlanRunResult = {
    runId: "r2",
    target: "libvirt",
    location: "qemu:///system",
    scope: "qemu:///system",
    objects: [],
    vms: [{
      name: "a",
      workload: "cpu",
      role: "worker",
      outcome: "created",
      phase: "DomainRunning",
      phases: {},
      ready: true,
    }],
    waited: true,
    resultsCollected: false,
    interrupted: false,
    timedOut: false,
    failedVms: 0,
    elapsedSeconds: 1,
    latency: [],
    latencyPhases: [],
    clientResolutionMs: 0,
  };
  const r = reportFromRun(run, rec.vms(), { clientResolutionMs: 0 });
  assert.deepEqual(r.phases, ["DomainDefined", "DomainRunning", "AgentConnected", "CloudInitDone"]);
  assert.equal(r.latency.DomainRunning!.p50, 500);
  assert.equal(r.latency.DomainDefined!.missing, 1);
  assert.ok(
    reportFromRun({ ...run, resultsCollected: true }, rec.vms()).phases.includes("FirstResult"),
  );
});
