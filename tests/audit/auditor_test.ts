/** The audit schema, the SQLite auditor's lifecycle records and the readers. */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  entryDetails,
  listEntries,
  migrate,
  MIGRATIONS,
  noopAuditor,
  openAuditDb,
  SCHEMA_VERSION,
  schemaVersion,
  SqliteAuditor,
} from "../../lib/audit/mod.ts";
import { steppingClock, tempDb } from "./_helpers.ts";

const TABLES = ["audit_log", "events", "resource_details", "vm_details", "workload_details"];

function names(db: DatabaseSync, type: "table" | "index"): string[] {
  return (db.prepare(
    "SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE 'sqlite_%' ORDER BY name",
  ).all(type) as { name: string }[]).map((r) => r.name);
}

function start(
  a: SqliteAuditor,
  runId: string,
  extra: Partial<{ ssh: boolean; vms: number }> = {},
) {
  a.runStarted({
    runId,
    namespace: "virtwork",
    workloads: ["cpu", "network"],
    vmCount: extra.vms ?? 3,
    dryRun: false,
    sshAuthConfigured: extra.ssh ?? false,
    config: { cpuCores: 2, memory: "2Gi", timeout: 600 },
    target: "https://127.0.0.1:6443",
  });
}

Deno.test("openAuditDb() creates the five tables, their indexes, WAL, foreign keys, version", async () => {
  const t = await tempDb();
  try {
    const db = openAuditDb(t.path);
    assert.deepEqual(names(db, "table"), TABLES);
    const indexes = names(db, "index");
    for (
      const i of [
        "idx_audit_log_started_at",
        "idx_audit_log_tool_operation",
        "idx_audit_log_status",
        "idx_audit_log_resource",
        "idx_workload_details_audit_id",
        "idx_vm_details_audit_id",
        "idx_vm_details_name",
        "idx_vm_details_deleted_by",
        "idx_resource_details_audit_id",
        "idx_resource_details_object",
        "idx_resource_details_source_run_id",
        "idx_events_audit_id",
        "idx_events_at",
      ]
    ) assert.ok(indexes.includes(i), `index ${i}`);
    assert.deepEqual({ ...db.prepare("PRAGMA journal_mode").get() }, { journal_mode: "wal" });
    assert.deepEqual({ ...db.prepare("PRAGMA foreign_keys").get() }, { foreign_keys: 1 });
    assert.equal((db.prepare("PRAGMA busy_timeout").get() as { timeout: number }).timeout, 10000);
    assert.equal(schemaVersion(db), SCHEMA_VERSION);
    // Every detail table references audit_log.
    for (const table of TABLES.filter((n) => n !== "audit_log")) {
      const fks = db.prepare(`PRAGMA foreign_key_list(${table})`).all() as { table: string }[];
      assert.ok(fks.some((f) => f.table === "audit_log"), `${table} references audit_log`);
    }
    db.close();
    // Opening again is a no-op migration.
    const again = openAuditDb(t.path);
    assert.equal(schemaVersion(again), SCHEMA_VERSION);
    again.close();
  } finally {
    await t.cleanup();
  }
});

Deno.test("migrate() moves an old database forward and keeps its rows", async () => {
  const t = await tempDb();
  try {
    const a = SqliteAuditor.open(t.path);
    start(a, "run-old");
    a.close();
    const v2 = [...MIGRATIONS, {
      version: SCHEMA_VERSION + 1,
      up: "ALTER TABLE audit_log ADD COLUMN labels TEXT; UPDATE audit_log SET labels = '{}';",
    }];
    const db = openAuditDb(t.path, { migrations: v2 });
    assert.equal(schemaVersion(db), SCHEMA_VERSION + 1);
    assert.deepEqual(
      { ...db.prepare("SELECT run_id, labels FROM audit_log").get() },
      { run_id: "run-old", labels: "{}" },
    );
    db.close();
    // An older release refuses a newer database rather than writing to it.
    assert.throws(
      () => openAuditDb(t.path),
      new RegExp(`schema version ${SCHEMA_VERSION + 1} is newer than this release`),
    );
  } finally {
    await t.cleanup();
  }
});

Deno.test("migrate() rolls back a failing step and leaves the version as it was", () => {
  const db = new DatabaseSync(":memory:");
  migrate(db);
  assert.throws(
    () =>
      migrate(db, [...MIGRATIONS, {
        version: SCHEMA_VERSION + 1,
        up: "CREATE TABLE x (a); SELECT nope;",
      }]),
    /no such column|nope/,
  );
  assert.equal(schemaVersion(db), SCHEMA_VERSION);
  assert.ok(!names(db, "table").includes("x"));
  db.close();
});

Deno.test("a full run: start, workloads, objects, VMs, events, success", () => {
  const a = SqliteAuditor.open(":memory:", { now: steppingClock(), hostname: "h1", pid: 42 });
  start(a, "run-1", { ssh: true });
  a.workloadRecorded({ runId: "run-1", name: "cpu", vmCount: 1, config: { cpuCores: 2 } });
  a.workloadRecorded({ runId: "run-1", name: "network", vmCount: 2 });
  a.objectCreated({ runId: "run-1", kind: "Namespace", name: "virtwork", outcome: "exists" });
  a.objectCreated({
    runId: "run-1",
    kind: "Service",
    namespace: "virtwork",
    name: "virtwork-iperf3-server",
    outcome: "created",
  });
  for (const vm of ["virtwork-cpu-1", "virtwork-network-server-1", "virtwork-network-client-1"]) {
    a.objectCreated({
      runId: "run-1",
      kind: "VirtualMachine",
      namespace: "virtwork",
      name: vm,
      outcome: "created",
    });
  }
  a.event({
    runId: "run-1",
    level: "info",
    reason: "VmReady",
    object: "VirtualMachine/virtwork-cpu-1",
    message: "ready after 12.5s",
  });
  a.vmFinished({
    runId: "run-1",
    namespace: "virtwork",
    name: "virtwork-cpu-1",
    workload: "cpu",
    role: "worker",
    phase: "Running",
    ready: true,
    secondsToReady: 12.5,
  });
  a.runFinished({ runId: "run-1", ok: true, interrupted: false });

  const [e] = listEntries(a.db);
  assert.equal(e?.runId, "run-1");
  assert.equal(e?.status, "succeeded");
  assert.equal(e?.finished, true);
  assert.equal(e?.tool, "virtwork");
  assert.equal(e?.operation, "run");
  assert.equal(e?.startedAt, "2026-01-02T03:04:05.000Z");
  assert.ok((e?.durationMs ?? 0) > 0);
  assert.equal(e?.sshAuthConfigured, true);
  assert.equal(e?.vmCount, 3);
  assert.equal(e?.hostname, "h1");
  assert.equal(e?.pid, 42);
  assert.deepEqual(e?.config, {
    workloads: ["cpu", "network"],
    cpuCores: 2,
    memory: "2Gi",
    timeout: 600,
  });
  const d = entryDetails(a.db, "run-1")!;
  assert.deepEqual(d.workloads.map((w) => [w.name, w.vmCount]), [["cpu", 1], ["network", 2]]);
  assert.equal(d.resources.length, 5);
  assert.equal(d.vms.length, 3);
  const cpu = d.vms.find((v) => v.name === "virtwork-cpu-1")!;
  assert.deepEqual(
    [cpu.outcome, cpu.workload, cpu.role, cpu.phase, cpu.ready, cpu.secondsToReady],
    ["created", "cpu", "worker", "Running", true, 12.5],
  );
  assert.deepEqual(d.events.map((x) => x.reason), ["VmReady"]);
  assert.equal(d.events[0]?.object, "VirtualMachine/virtwork-cpu-1");
  a.close();
});

Deno.test("a failed run keeps its error summary; an interrupted one says so", () => {
  const a = SqliteAuditor.open(":memory:");
  start(a, "run-f");
  a.objectCreated({
    runId: "run-f",
    kind: "VirtualMachine",
    namespace: "virtwork",
    name: "virtwork-cpu-1",
    outcome: "failed",
    error: "create VirtualMachine virtwork-cpu-1: 403 Forbidden",
  });
  a.runFinished({
    runId: "run-f",
    ok: false,
    interrupted: false,
    error: "create VirtualMachine virtwork-cpu-1: 403 Forbidden",
  });
  start(a, "run-i");
  a.runFinished({ runId: "run-i", ok: false, interrupted: true });
  const f = entryDetails(a.db, "run-f")!;
  assert.equal(f.entry.status, "failed");
  assert.equal(f.entry.errorSummary, "create VirtualMachine virtwork-cpu-1: 403 Forbidden");
  assert.equal(f.vms[0]?.outcome, "failed");
  assert.match(f.vms[0]?.error ?? "", /403/);
  assert.equal(listEntries(a.db, { status: "failed" }).length, 1);
  assert.equal(entryDetails(a.db, "run-i")!.entry.status, "interrupted");
  a.close();
});

Deno.test("a cleanup of one run links it, counts deletions and marks its VMs deleted", () => {
  const a = SqliteAuditor.open(":memory:", { now: steppingClock() });
  start(a, "run-a");
  for (const vm of ["vm-a1", "vm-a2"]) {
    a.objectCreated({
      runId: "run-a",
      kind: "VirtualMachine",
      namespace: "virtwork",
      name: vm,
      outcome: "created",
    });
  }
  a.runFinished({ runId: "run-a", ok: true, interrupted: false });
  a.cleanupStarted({ cleanupId: "clean-1", namespace: "virtwork", runId: "run-a" });
  a.objectDeleted({
    cleanupId: "clean-1",
    kind: "VirtualMachine",
    namespace: "virtwork",
    name: "vm-a1",
    runId: "run-a",
    outcome: "deleted",
  });
  a.objectDeleted({
    cleanupId: "clean-1",
    kind: "VirtualMachine",
    namespace: "virtwork",
    name: "vm-a2",
    runId: "run-a",
    outcome: "failed",
    error: "403 Forbidden",
  });
  a.cleanupFinished({
    cleanupId: "clean-1",
    namespace: "virtwork",
    runId: "run-a",
    linkedRunIds: ["run-a"],
    deleted: { virtualmachines: 1, services: 0, secrets: 0 },
    namespaceDeleted: false,
    errors: ["VirtualMachine vm-a2: 403 Forbidden"],
  });
  const c = entryDetails(a.db, "clean-1")!;
  assert.equal(c.entry.operation, "cleanup");
  assert.equal(c.entry.status, "failed");
  assert.match(c.entry.errorSummary ?? "", /^1 error: VirtualMachine vm-a2: 403 Forbidden$/);
  assert.deepEqual(c.entry.linkedRunIds, ["run-a"]);
  assert.deepEqual(c.entry.cleanupCounts, {
    virtualmachines: 1,
    services: 0,
    secrets: 0,
    namespaceDeleted: false,
  });
  assert.deepEqual(c.entry.config, { runId: "run-a", deleteNamespace: false });
  assert.deepEqual(c.resources.map((r) => [r.name, r.action]), [
    ["vm-a1", "deleted"],
    ["vm-a2", "delete_failed"],
  ]);
  const r = entryDetails(a.db, "run-a")!;
  assert.deepEqual(r.cleanups.map((x) => x.runId), ["clean-1"]);
  assert.deepEqual(r.deletions.map((x) => x.name), ["vm-a1", "vm-a2"]);
  const [a1, a2] = r.vms;
  assert.equal(a1?.deletedBy, "clean-1");
  assert.ok(a1?.deletedAt);
  assert.equal(a2?.deletedBy, null);
  assert.equal(a2?.deletedAt, null);
  a.close();
});

Deno.test("a cleanup of several runs links each; cleanupFinished alone makes its own entry", () => {
  const a = SqliteAuditor.open(":memory:");
  for (const id of ["run-x", "run-y", "run-z"]) {
    start(a, id);
    a.runFinished({ runId: id, ok: true, interrupted: false });
  }
  a.cleanupFinished({
    namespace: "virtwork",
    linkedRunIds: ["run-y", "run-x", "run-y"],
    deleted: { virtualmachines: 4, services: 1, secrets: 2 },
    namespaceDeleted: true,
    errors: [],
  });
  const [cleanup] = listEntries(a.db, { operation: "cleanup" });
  assert.equal(cleanup?.status, "succeeded");
  assert.deepEqual(cleanup?.linkedRunIds, ["run-x", "run-y"]);
  assert.equal(cleanup?.cleanupCounts?.namespaceDeleted, true);
  assert.equal(cleanup?.cleanupCounts?.virtualmachines, 4);
  assert.deepEqual(entryDetails(a.db, "run-x")!.cleanups.map((c) => c.runId), [cleanup?.runId]);
  assert.deepEqual(entryDetails(a.db, "run-y")!.cleanups.map((c) => c.runId), [cleanup?.runId]);
  assert.deepEqual(entryDetails(a.db, "run-z")!.cleanups, []);
  a.close();
});

Deno.test("deletion tracking: a VM deleted without a run label matches by namespace and name", () => {
  const a = SqliteAuditor.open(":memory:");
  start(a, "run-d");
  a.objectCreated({
    runId: "run-d",
    kind: "VirtualMachine",
    namespace: "ns1",
    name: "vm-1",
    outcome: "created",
  });
  a.objectCreated({
    runId: "run-d",
    kind: "Service",
    namespace: "ns1",
    name: "svc-1",
    outcome: "created",
  });
  a.cleanupStarted({ cleanupId: "c-d", namespace: "ns1", deleteNamespace: true });
  for (const [kind, name] of [["VirtualMachine", "vm-1"], ["Service", "svc-1"]] as const) {
    a.objectDeleted({ cleanupId: "c-d", kind, namespace: "ns1", name, outcome: "deleted" });
  }
  a.cleanupFinished({
    cleanupId: "c-d",
    namespace: "ns1",
    linkedRunIds: [],
    deleted: { virtualmachines: 1, services: 1, secrets: 0 },
    namespaceDeleted: true,
    errors: [],
  });
  const d = entryDetails(a.db, "run-d")!;
  assert.equal(d.vms[0]?.deletedBy, "c-d");
  const c = entryDetails(a.db, "c-d")!;
  assert.deepEqual(c.resources.map((r) => `${r.action} ${r.kind}/${r.name}`), [
    "deleted VirtualMachine/vm-1",
    "deleted Service/svc-1",
  ]);
  assert.deepEqual(c.entry.config, { deleteNamespace: true });
  a.close();
});

Deno.test("events need an existing entry; deleting an entry deletes its details", () => {
  const a = SqliteAuditor.open(":memory:");
  start(a, "run-e");
  a.event({ runId: "run-e", level: "warning", reason: "Timeout", message: "1 of 3 not ready" });
  a.workloadRecorded({ runId: "run-e", name: "cpu", vmCount: 1 });
  a.objectCreated({
    runId: "run-e",
    kind: "VirtualMachine",
    namespace: "v",
    name: "vm",
    outcome: "created",
  });
  assert.throws(
    () => a.event({ runId: "nope", level: "info", reason: "X", message: "m" }),
    /no audit entry for run nope/,
  );
  // The database itself refuses orphans, whoever writes.
  assert.throws(
    () =>
      a.db.prepare(
        "INSERT INTO events (audit_id, at, level, reason, message) VALUES (999, 'x', 'info', 'r', 'm')",
      ).run(),
    /FOREIGN KEY constraint failed/,
  );
  assert.throws(
    () =>
      a.db.prepare("INSERT INTO vm_details (audit_id, name, created_at) VALUES (999, 'v', 'x')")
        .run(),
    /FOREIGN KEY constraint failed/,
  );
  assert.throws(
    () =>
      a.db.prepare(
        "INSERT INTO events (audit_id, at, level, reason, message) VALUES (1, 'x', 'loud', 'r', 'm')",
      ).run(),
    /CHECK constraint failed/,
  );
  a.db.prepare("DELETE FROM audit_log WHERE run_id = 'run-e'").run();
  for (const table of ["events", "workload_details", "vm_details", "resource_details"]) {
    const { n } = a.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number };
    assert.equal(n, 0, table);
  }
  a.close();
});

Deno.test("SSH auth is stored as a boolean only", () => {
  const a = SqliteAuditor.open(":memory:");
  start(a, "with", { ssh: true });
  start(a, "without", { ssh: false });
  const rows = a.db.prepare("SELECT run_id, ssh_auth_configured FROM audit_log ORDER BY id").all();
  assert.deepEqual(rows.map((r) => ({ ...r })), [
    { run_id: "with", ssh_auth_configured: 1 },
    { run_id: "without", ssh_auth_configured: 0 },
  ]);
  a.close();
});

Deno.test("findEntry()/entryDetails() accept a unique prefix and reject an ambiguous one", () => {
  const a = SqliteAuditor.open(":memory:");
  start(a, "3f2a1b00-aaaa");
  start(a, "3f2a1c00-bbbb");
  assert.equal(entryDetails(a.db, "3f2a1b")?.entry.runId, "3f2a1b00-aaaa");
  assert.throws(() => entryDetails(a.db, "3f2a1"), /ambiguous/);
  assert.equal(entryDetails(a.db, "ffff"), undefined);
  assert.equal(entryDetails(a.db, "3f2"), undefined); // prefixes shorter than 4 are not guessed
  a.close();
});

Deno.test("noopAuditor has every method SqliteAuditor has, returns nothing and cannot change", () => {
  const n = noopAuditor;
  // The Auditor interface as SqliteAuditor implements it: the noop must answer the same calls.
  const proto = SqliteAuditor.prototype as unknown as Record<string, unknown>;
  const methods = Object.getOwnPropertyNames(proto)
    .filter((k) => k !== "constructor" && typeof proto[k] === "function")
    .sort();
  assert.deepEqual(Object.keys(n).sort(), methods);
  const calls: Record<string, () => unknown> = {
    runStarted: () =>
      n.runStarted({
        runId: "r",
        namespace: "n",
        workloads: [],
        vmCount: 0,
        dryRun: true,
        sshAuthConfigured: false,
      }),
    workloadRecorded: () => n.workloadRecorded({ runId: "r", name: "cpu", vmCount: 1 }),
    objectCreated: () => n.objectCreated({ runId: "r", kind: "K", name: "n", outcome: "created" }),
    vmFinished: () =>
      n.vmFinished({
        runId: "r",
        namespace: "n",
        name: "v",
        workload: "w",
        role: "r",
        phase: "p",
        ready: true,
      }),
    event: () => n.event({ runId: "r", level: "info", reason: "x", message: "m" }),
    resultsRecorded: () =>
      n.resultsRecorded?.({ runId: "r", vm: "v", workload: "cpu", metrics: { tps: 1 } }),
    runFinished: () => n.runFinished({ runId: "r", ok: true, interrupted: false }),
    cleanupStarted: () => n.cleanupStarted({ cleanupId: "c", namespace: "n" }),
    objectDeleted: () =>
      n.objectDeleted({ cleanupId: "c", kind: "K", namespace: "n", name: "x", outcome: "deleted" }),
    cleanupFinished: () =>
      n.cleanupFinished({
        namespace: "n",
        linkedRunIds: [],
        deleted: {},
        namespaceDeleted: false,
        errors: [],
      }),
    operationStarted: () =>
      n.operationStarted({
        operationId: "o",
        resourceType: "vm",
        name: "v",
        uri: "u",
        operation: "start",
      }),
    operationFinished: () => n.operationFinished({ operationId: "o", status: "succeeded" }),
    close: () => n.close(),
  };
  assert.deepEqual(Object.keys(calls).sort(), methods, "the test calls every method");
  // Every call returns undefined at once (nothing to await), before and after close().
  for (const round of ["first", "after close"]) {
    for (const [name, call] of Object.entries(calls)) {
      assert.equal(call(), undefined, `${name} (${round})`);
    }
  }
  // Frozen: nothing can swap a method for one that records something.
  assert.throws(() => {
    (n as unknown as Record<string, unknown>).event = () => {};
  }, TypeError);
});

Deno.test("results: the latest figures of a VM are stored on its row and read back", () => {
  const a = SqliteAuditor.open(":memory:", { now: steppingClock(), hostname: "h1", pid: 42 });
  start(a, "run-r");
  a.vmFinished({
    runId: "run-r",
    namespace: "qemu:///system",
    name: "virtwork-disk-1",
    workload: "disk",
    role: "worker",
    phase: "AgentConnected",
    ready: true,
  });
  a.resultsRecorded({
    runId: "run-r",
    vm: "virtwork-disk-1",
    workload: "disk",
    metrics: { write_iops: 850, read_p99_ms: 4.1 },
  });
  a.resultsRecorded({
    runId: "run-r",
    vm: "virtwork-database-1",
    workload: "database",
    metrics: {},
    error: "postgresql is not installed",
  });
  const d = entryDetails(a.db, "run-r")!;
  const disk = d.vms.find((v) => v.name === "virtwork-disk-1")!;
  assert.deepEqual(disk.results, { write_iops: 850, read_p99_ms: 4.1 });
  assert.equal(disk.ready, true);
  assert.equal(disk.resultError, null);
  const db = d.vms.find((v) => v.name === "virtwork-database-1")!;
  assert.equal(db.resultError, "postgresql is not installed");
  a.close();
});
