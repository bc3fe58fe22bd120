/**
 * The audit database holds every operation's target, names and errors: only its owner may read
 * it. A new database and its -wal and -shm files are 0600 and a directory made for it 0700; an
 * existing database with looser modes is tightened when opened; a directory that already existed
 * (the working directory of virtwork's default `virtwork.db`) is left as it was.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openAuditor } from "../../cli/_audit.ts";
import { openAuditDb, SqliteAuditor } from "../../lib/audit/mod.ts";
import { tempDb } from "./_helpers.ts";

function mode(path: string): number {
  return (Deno.statSync(path).mode ?? 0) & 0o777;
}

function octal(m: number): string {
  return `0${m.toString(8)}`;
}

function writeOne(audit: SqliteAuditor): void {
  audit.operationStarted({
    operationId: crypto.randomUUID(),
    operation: "create",
    resourceType: "vm",
    name: "web-1",
    uri: "qemu:///system",
  });
}

Deno.test("a new audit database and its -wal and -shm files are 0600", async () => {
  const db = await tempDb();
  try {
    const audit = SqliteAuditor.open(db.path);
    writeOne(audit);
    for (const p of [db.path, `${db.path}-wal`, `${db.path}-shm`]) {
      assert.equal(octal(mode(p)), "0600", p);
    }
    audit.close();
  } finally {
    await db.cleanup();
  }
});

Deno.test("openAuditDb() creates a missing directory 0700 by itself", async () => {
  const db = await tempDb();
  try {
    const path = join(db.dir, "new", "audit.db");
    openAuditDb(path).close();
    assert.equal(octal(mode(join(db.dir, "new"))), "0700");
    assert.equal(octal(mode(path)), "0600");
  } finally {
    await db.cleanup();
  }
});

Deno.test("openAuditor() creates the missing directories of the database 0700", async () => {
  const db = await tempDb();
  try {
    const path = join(db.dir, "data", "foundry", "audit.db");
    const audit = await openAuditor({ enabled: true, path });
    try {
      assert.equal(octal(mode(join(db.dir, "data"))), "0700");
      assert.equal(octal(mode(join(db.dir, "data", "foundry"))), "0700");
      assert.equal(octal(mode(path)), "0600");
    } finally {
      audit.close();
    }
  } finally {
    await db.cleanup();
  }
});

Deno.test("an existing database with looser modes is tightened to 0600 when opened", async () => {
  const db = await tempDb();
  try {
    const old = openAuditDb(db.path);
    const audit = new SqliteAuditor(old);
    writeOne(audit);
    // As an earlier release left it: world-readable, -wal and -shm too (still open here).
    for (const p of [db.path, `${db.path}-wal`, `${db.path}-shm`]) Deno.chmodSync(p, 0o644);
    const again = SqliteAuditor.open(db.path);
    writeOne(again);
    for (const p of [db.path, `${db.path}-wal`, `${db.path}-shm`]) {
      assert.equal(octal(mode(p)), "0600", p);
    }
    again.close();
    audit.close();
  } finally {
    await db.cleanup();
  }
});

Deno.test("a directory that already existed keeps its mode", async () => {
  const db = await tempDb();
  try {
    Deno.chmodSync(db.dir, 0o755);
    const audit = await openAuditor({ enabled: true, path: db.path });
    writeOne(audit as SqliteAuditor);
    audit.close();
    assert.equal(octal(mode(db.dir)), "0755");
    assert.equal(octal(mode(db.path)), "0600");
  } finally {
    await db.cleanup();
  }
});
