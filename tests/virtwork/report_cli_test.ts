/**
 * `virtwork report` and `virtwork compare` through `main()`, on an audit database holding two runs'
 * latency samples as a run stores them (the same records the audit subscriber writes).
 */
import assert from "node:assert/strict";
import { main } from "../../cli/virtwork.ts";
import { SqliteAuditor } from "../../lib/audit/mod.ts";
import { LatencyRecorder } from "../../lib/virtwork/latency.ts";
import { buildReport, type LatencyReport, storedPhases } from "../../lib/virtwork/report.ts";

async function virtwork(args: string[], env: Record<string, string>) {
  let out = "";
  let err = "";
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s) }, { env });
  return { code, out, err };
}

/** A KubeVirt run of `n` VMs whose VMReady is `readyMs(i)` after creation. */
function run(runId: string, n: number, readyMs: (i: number) => number): LatencyReport {
  const rec = new LatencyRecorder("kubevirt");
  const vms = [];
  for (let i = 0; i < n; i++) {
    const name = `vw-cpu-${i}`;
    rec.created(name, 0, "2026-12-02T10:00:00Z");
    rec.phase(name, "Running", readyMs(i) - 500);
    rec.phase(name, "VMReady", readyMs(i));
    vms.push({ name, workload: "cpu", role: "worker", ready: true });
  }
  return buildReport({
    runId,
    target: "kubevirt",
    location: "https://127.0.0.1:6443",
    vms,
    latency: rec.vms(),
  });
}

function store(path: string, reports: LatencyReport[]) {
  const a = SqliteAuditor.open(path);
  try {
    for (const r of reports) {
      a.runStarted({
        runId: r.runId,
        namespace: "virtwork",
        workloads: ["cpu"],
        vmCount: r.vms.length,
        dryRun: false,
        sshAuthConfigured: false,
        target: r.location!,
      });
      for (const v of r.vms) {
        a.vmFinished({
          runId: r.runId,
          namespace: "virtwork",
          name: v.name,
          workload: v.workload,
          role: v.role!,
          phase: "Running",
          ready: true,
          phases: storedPhases(v),
        });
      }
      a.runFinished({
        runId: r.runId,
        ok: true,
        interrupted: false,
        latency: { targetKind: r.target, phases: r.phases, clientResolutionMs: 0 },
      });
    }
  } finally {
    a.close();
  }
}

async function withDb(
  fn: (env: Record<string, string>, a: LatencyReport, b: LatencyReport) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "virtwork_report_cli_" });
  try {
    const path = `${dir}/audit.db`;
    const a = run("11111111-aaaa-run-a", 40, (i) => 2000 + 50 * i);
    const b = run("22222222-bbbb-run-b", 40, (i) => 6000 + 50 * i);
    store(path, [a, b]);
    await fn({ VIRTWORK_AUDIT_DB: path, HOME: "/nonexistent" }, a, b);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("virtwork report renders a stored run as table, json, csv and html", async () => {
  await withDb(async (env, a) => {
    const json = await virtwork(["report", "1111", "-o", "json"], env);
    assert.equal(json.code, 0, json.err);
    const doc = JSON.parse(json.out);
    assert.equal(doc.runId, a.runId);
    assert.deepEqual(doc.latency, a.latency);
    assert.equal(doc.latency.VMReady.p50, 2975);

    const table = await virtwork(["report", a.runId], env);
    assert.equal(table.code, 0, table.err);
    assert.match(
      table.out,
      /^VMReady\s+40\s+0\s+2\.00s\s+2\.98s\s+2\.98s\s+3\.85s\s+3\.93s\s+3\.95s$/m,
    );
    assert.match(table.out, /VMIScheduling\s+0\s+40\s+-/);

    const csv = await virtwork(["report", a.runId, "-o", "csv"], env);
    assert.equal(
      csv.out.split("\n")[0],
      "vm,workload,phase,ms,source,client_ms,server_time,server_ms",
    );
    assert.equal(csv.out.trim().split("\n").length, 1 + 40 * 2);

    const html = await virtwork(["report", a.runId, "-o", "html"], env);
    assert.ok(html.out.startsWith("<!doctype html>"));
    assert.ok(html.out.includes('<figure data-phase="VMReady">'));
  });
});

Deno.test("virtwork report: unknown run, bad format, run without samples", async () => {
  await withDb(async (env) => {
    const none = await virtwork(["report", "nope-nope"], env);
    assert.equal(none.code, 1);
    assert.match(none.err, /no run nope-nope in audit database/);
    const bad = await virtwork(["report", "1111", "-o", "pdf"], env);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /expected one of table, json, csv, html, got "pdf"/);
    const a = SqliteAuditor.open(env.VIRTWORK_AUDIT_DB!);
    a.cleanupStarted({ cleanupId: "33333333-cleanup", namespace: "virtwork" });
    a.close();
    const cleanup = await virtwork(["report", "33333333-cleanup"], env);
    assert.equal(cleanup.code, 1);
    assert.match(cleanup.err, /run 33333333-cleanup is a cleanup/);
  });
});

Deno.test("virtwork compare shows B slower by its shift with a 95% interval excluding 0", async () => {
  await withDb(async (env, a, b) => {
    const t = await virtwork(["compare", a.runId, b.runId], env);
    assert.equal(t.code, 0, t.err);
    assert.match(
      t.out,
      /^VMReady\s+p50\s+2\.98s\s+6\.98s\s+\+4\.00s\s+\[[\d.]+s, [\d.]+s\]\s+\+134\.5%\s+slower$/m,
    );
    assert.match(t.out, /2000 resamples/);
    const j = await virtwork([
      "compare",
      "1111",
      "2222",
      "-o",
      "json",
      "--seed",
      "7",
      "--resamples",
      "500",
    ], env);
    assert.equal(j.code, 0, j.err);
    const c = JSON.parse(j.out);
    assert.equal(c.seed, 7);
    assert.equal(c.resamples, 500);
    const p50 = c.deltas.find((d: { phase: string; stat: string }) =>
      d.phase === "VMReady" && d.stat === "p50"
    );
    assert.equal(p50.delta, 4000);
    assert.ok(p50.ci95[0] > 0 && p50.ci95[0] <= 4000 && p50.ci95[1] >= 4000, String(p50.ci95));
    const again = await virtwork([
      "compare",
      "1111",
      "2222",
      "-o",
      "json",
      "--seed",
      "7",
      "--resamples",
      "500",
    ], env);
    assert.equal(again.out, j.out, "the same seed gives the same intervals");
    const bad = await virtwork(["compare", "1111", "2222", "--resamples", "5"], env);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--resamples.*expected an integer from 100 to 100000, got "5"/);
  });
});
