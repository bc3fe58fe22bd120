/**
 * Many writers on one audit database: 20 threads of one process, two processes at once, and a
 * process killed in the middle of a run. None may see `database is locked`.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { entryDetails, listEntries, openAuditDb, SqliteAuditor } from "../../lib/audit/mod.ts";
import { tempDb } from "./_helpers.ts";

const WRITER = fileURLToPath(new URL("./_writer.ts", import.meta.url));
const PERMS = ["--allow-read", "--allow-write", "--allow-env", "--allow-sys"];

function count(path: string, table: string): number {
  const db = openAuditDb(path);
  try {
    return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

function integrity(path: string): string {
  const db = openAuditDb(path);
  try {
    return (db.prepare("PRAGMA integrity_check").get() as { integrity_check: string })
      .integrity_check;
  } finally {
    db.close();
  }
}

Deno.test("20 writers in one process (worker threads, own connections) lose nothing", async () => {
  const t = await tempDb();
  const workers: Worker[] = [];
  try {
    const RUNS = 5;
    const write = (runs: number, prefix: string) => {
      const w = new Worker(new URL("./_writer_worker.ts", import.meta.url), { type: "module" });
      workers.push(w);
      return new Promise<{ ok: boolean; error?: string }>((resolve) => {
        w.onmessage = (e) => resolve(e.data);
        w.onerror = (e) => {
          e.preventDefault();
          resolve({ ok: false, error: e.message });
        };
        w.postMessage({ path: t.path, runs, prefix });
      });
    };
    // One worker first so the 20 do not type-check the worker module 20 times over on a cold cache.
    assert.deepEqual(await write(0, "warm"), { ok: true });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => write(RUNS, `w${i}`)));
    for (const r of results) assert.deepEqual(r, { ok: true });
    assert.equal(count(t.path, "audit_log"), 20 * RUNS);
    assert.equal(count(t.path, "vm_details"), 20 * RUNS * 2);
    assert.equal(count(t.path, "events"), 20 * RUNS * 2);
    assert.equal(integrity(t.path), "ok");
  } finally {
    for (const w of workers) w.terminate();
    await t.cleanup();
  }
});

Deno.test("20 concurrent lifecycles sharing one auditor interleave without mixing up runs", async () => {
  const a = SqliteAuditor.open(":memory:");
  await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const runId = `r${i}`;
    a.runStarted({
      runId,
      namespace: "virtwork",
      workloads: ["cpu"],
      vmCount: 1,
      dryRun: false,
      sshAuthConfigured: false,
    });
    await new Promise((r) => setTimeout(r, (i * 7) % 5));
    a.objectCreated({
      runId,
      kind: "VirtualMachine",
      namespace: "virtwork",
      name: `vm-${i}`,
      outcome: "created",
    });
    await new Promise((r) => setTimeout(r, (i * 3) % 4));
    a.runFinished({ runId, ok: i % 2 === 0, interrupted: false, error: `e${i}` });
  }));
  for (let i = 0; i < 20; i++) {
    const d = entryDetails(a.db, `r${i}`)!;
    assert.deepEqual(d.vms.map((v) => v.name), [`vm-${i}`]);
    assert.equal(d.entry.status, i % 2 === 0 ? "succeeded" : "failed");
  }
  a.close();
});

Deno.test("two processes writing at once to a new database both succeed", async () => {
  const t = await tempDb();
  try {
    const RUNS = 40;
    const spawn = (prefix: string) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", ...PERMS, WRITER, t.path, String(RUNS), prefix],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const outs = await Promise.all([spawn("p1"), spawn("p2")]);
    for (const o of outs) {
      const err = new TextDecoder().decode(o.stderr);
      assert.doesNotMatch(err, /database is locked|SQLITE_BUSY/);
      assert.equal(o.code, 0, err);
    }
    assert.equal(count(t.path, "audit_log"), 2 * RUNS);
    assert.equal(count(t.path, "resource_details"), 2 * RUNS * 2);
    const db = openAuditDb(t.path);
    const pids = db.prepare("SELECT count(DISTINCT pid) AS n FROM audit_log").get() as {
      n: number;
    };
    assert.equal(pids.n, 2);
    db.close();
    assert.equal(integrity(t.path), "ok");
  } finally {
    await t.cleanup();
  }
});

Deno.test("a process killed mid-run leaves a readable database with the run unfinished", async () => {
  const t = await tempDb();
  try {
    // Finished history first, so the crash happens with earlier data in the file.
    const done = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMS, WRITER, t.path, "3", "before"],
    }).output();
    assert.equal(done.code, 0);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMS, WRITER, t.path, "hang", "crash"],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    assert.equal(new TextDecoder().decode(value), "started\n");
    child.kill("SIGKILL");
    const status = await child.status;
    reader.releaseLock();
    await child.stdout.cancel();
    assert.equal(status.success, false);
    assert.equal(status.signal, "SIGKILL");

    assert.equal(integrity(t.path), "ok");
    const db = openAuditDb(t.path);
    try {
      const runs = listEntries(db);
      assert.equal(runs.length, 4);
      const hung = entryDetails(db, "crash-hung")!;
      assert.equal(hung.entry.status, "running");
      assert.equal(hung.entry.finished, false);
      assert.equal(hung.entry.finishedAt, null);
      assert.equal(hung.entry.durationMs, null);
      assert.deepEqual(hung.vms.map((v) => v.name), ["hung-vm-1"]);
      assert.deepEqual(hung.events.map((e) => e.reason), ["Created"]);
      assert.equal(listEntries(db, { status: "succeeded" }).length, 3);
    } finally {
      db.close();
    }
    // The database stays writable after the crash.
    const a = SqliteAuditor.open(t.path);
    a.cleanupFinished({
      namespace: "virtwork",
      linkedRunIds: ["crash-hung"],
      deleted: { virtualmachines: 1 },
      namespaceDeleted: false,
      errors: [],
    });
    a.close();
    assert.equal(count(t.path, "audit_log"), 5);
  } finally {
    await t.cleanup();
  }
});
