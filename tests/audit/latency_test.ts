/** Schema v3: a run's latency samples stored per VM and phase, and databases of v2 kept working. */
import assert from "node:assert/strict";
import {
  entryDetails,
  MIGRATIONS,
  openAuditDb,
  runLatency,
  SCHEMA_VERSION,
  schemaVersion,
  SqliteAuditor,
} from "../../lib/audit/mod.ts";
import { steppingClock, tempDb } from "./_helpers.ts";

function start(a: SqliteAuditor, runId: string) {
  a.runStarted({
    runId,
    namespace: "virtwork",
    workloads: ["cpu"],
    vmCount: 2,
    dryRun: false,
    sshAuthConfigured: false,
    target: "https://127.0.0.1:6443",
  });
}

Deno.test("a database of schema v2 with a run opens at v3 and its run reads as not measured", async () => {
  const t = await tempDb();
  try {
    const old = new SqliteAuditor(
      openAuditDb(t.path, { migrations: MIGRATIONS.filter((m) => m.version <= 2) }),
      { now: steppingClock() },
    );
    assert.equal(schemaVersion(old.db), 2);
    start(old, "run-v2");
    // What a v2 release wrote for a VM (its vmFinished had no phases_json column to fill).
    old.db.prepare(
      `INSERT INTO vm_details (audit_id, name, namespace, workload, role, outcome, phase, ready,
         seconds_to_ready, created_at)
       SELECT id, 'vm-1', 'virtwork', 'cpu', 'worker', 'created', 'Running', 1, 15, started_at
       FROM audit_log WHERE run_id = 'run-v2'`,
    ).run();
    old.runFinished({ runId: "run-v2", ok: true, interrupted: false });
    old.close();

    const a = SqliteAuditor.open(t.path, { now: steppingClock() });
    assert.equal(schemaVersion(a.db), SCHEMA_VERSION);
    const l = runLatency(a.db, "run-v2")!;
    assert.equal(l.meta, null);
    assert.deepEqual(l.vms.map((v) => [v.name, v.ready, v.phases]), [["vm-1", true, null]]);
    assert.equal(entryDetails(a.db, "run-v2")!.vms[0]!.secondsToReady, 15);
    a.close();
  } finally {
    await t.cleanup();
  }
});

Deno.test("a run's phase samples and how it measured them are stored and read back", async () => {
  const t = await tempDb();
  try {
    const a = SqliteAuditor.open(t.path, { now: steppingClock(), secrets: ["s3cret"] });
    start(a, "run-lat");
    const phases = {
      VMIRunning: {
        ms: 2000,
        source: "server",
        clientMs: 15_003.25,
        serverTime: "2026-12-02T10:00:02Z",
        serverMs: 2000,
      },
      VMReady: { ms: 3100.5, source: "client", clientMs: 3100.5 },
    };
    a.vmFinished({
      runId: "run-lat",
      namespace: "virtwork",
      name: "vm-1",
      workload: "cpu",
      role: "worker",
      phase: "Running",
      ready: true,
      secondsToReady: 3.1,
      phases,
    });
    a.resultsRecorded!({
      runId: "run-lat",
      vm: "vm-1",
      workload: "cpu",
      metrics: { bogo_ops_per_s: 5 },
    });
    // A second vmFinished without samples keeps those stored.
    a.vmFinished({
      runId: "run-lat",
      namespace: "virtwork",
      name: "vm-1",
      workload: "cpu",
      role: "worker",
      phase: "Running",
      ready: true,
    });
    a.vmFinished({
      runId: "run-lat",
      namespace: "virtwork",
      name: "vm-2",
      workload: "cpu",
      role: "worker",
      phase: "Pending",
      ready: false,
      error: "not ready after 60s, token s3cret",
      phases: {},
    });
    a.runFinished({
      runId: "run-lat",
      ok: false,
      interrupted: false,
      latency: { targetKind: "kubevirt", phases: ["VMIRunning", "VMReady"], clientResolutionMs: 0 },
    });
    a.close();

    const db = openAuditDb(t.path);
    const l = runLatency(db, "run-l")!;
    assert.equal(l.entry.runId, "run-lat");
    assert.deepEqual(l.meta, {
      targetKind: "kubevirt",
      phases: ["VMIRunning", "VMReady"],
      clientResolutionMs: 0,
    });
    assert.deepEqual(l.vms, [
      {
        name: "vm-1",
        workload: "cpu",
        role: "worker",
        ready: true,
        error: null,
        results: { bogo_ops_per_s: 5 },
        resultError: null,
        phases,
      },
      {
        name: "vm-2",
        workload: "cpu",
        role: "worker",
        ready: false,
        error: "not ready after 60s, token [REDACTED]",
        results: null,
        resultError: null,
        phases: {},
      },
    ]);
    assert.equal(runLatency(db, "nope"), undefined);
    db.close();
  } finally {
    await t.cleanup();
  }
});
