/**
 * {@linkcode SqliteAuditor}: the {@linkcode Auditor} that writes the audit database. Every method
 * is one short transaction, so a process killed mid-run leaves its run readable, marked `running`
 * (never finished). Text is scrubbed of credentials before it is stored.
 *
 * @example
 * ```ts
 * import { SqliteAuditor } from "./sqlite.ts";
 * const audit = SqliteAuditor.open(":memory:");
 * audit.runStarted({
 *   runId: crypto.randomUUID(), namespace: "virtwork", workloads: ["cpu"], vmCount: 1,
 *   dryRun: false, sshAuthConfigured: false,
 * });
 * audit.close();
 * ```
 * @module
 */
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import { openAuditDb, type OpenOptions } from "./schema.ts";
import { scrubText, scrubValue } from "./scrub.ts";
import type {
  Auditor,
  AuditStatus,
  AuditTool,
  CleanupRecord,
  CleanupStartRecord,
  DeletionRecord,
  EventRecord,
  ObjectRecord,
  OperationEndRecord,
  OperationStartRecord,
  ResultsRecord,
  RunEndRecord,
  RunStartRecord,
  VmRecord,
  WorkloadRecord,
} from "./types.ts";

/** Options of {@linkcode SqliteAuditor}. */
export interface SqliteAuditorOptions extends OpenOptions {
  /** Literal secrets (password, keys) to remove from everything stored. */
  secrets?: readonly string[];
  /** Clock (tests fix it). */
  now?: () => Date;
  /** Host name stored with each entry (default: this host's, when readable). */
  hostname?: string;
  /** Process id stored with each entry (default: this process). */
  pid?: number;
}

function defaultHostname(): string | null {
  try {
    return Deno.hostname();
  } catch {
    return null; // no --allow-sys: store none
  }
}

/** Writes audit records to SQLite. */
export class SqliteAuditor implements Auditor {
  /** The open database (readers may share it). */
  readonly db: DatabaseSync;
  #secrets: readonly string[];
  #now: () => Date;
  #hostname: string | null;
  #pid: number;
  #statements = new Map<string, StatementSync>();
  #ids = new Map<string, number>();

  /** Wraps an open, migrated database (see {@linkcode openAuditDb}). */
  constructor(db: DatabaseSync, opts: SqliteAuditorOptions = {}) {
    this.db = db;
    this.#secrets = (opts.secrets ?? []).filter((s) => s !== "");
    this.#now = opts.now ?? (() => new Date());
    this.#hostname = opts.hostname ?? defaultHostname();
    this.#pid = opts.pid ?? Deno.pid;
  }

  /**
   * Opens (creating and migrating) the database at `path`.
   * @throws {AuditDbError} when it cannot be opened
   */
  static open(path: string, opts: SqliteAuditorOptions = {}): SqliteAuditor {
    return new SqliteAuditor(openAuditDb(path, opts), opts);
  }

  #stmt(sql: string): StatementSync {
    let s = this.#statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  #run(sql: string, ...params: SQLInputValue[]): { lastInsertRowid: number | bigint } {
    return this.#stmt(sql).run(...params);
  }

  #tx<T>(f: () => T): T {
    // IMMEDIATE takes the write lock up front: a deferred transaction that reads and then writes
    // fails at once with SQLITE_BUSY when another writer got in between, busy timeout or not.
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const r = f();
      this.db.exec("COMMIT");
      return r;
    } catch (e) {
      this.db.exec("ROLLBACK");
      throw e;
    }
  }

  #text(s: string | undefined): string | null {
    return s === undefined ? null : scrubText(s, this.#secrets);
  }

  #json(v: unknown): string | null {
    return v === undefined ? null : JSON.stringify(scrubValue(v, this.#secrets));
  }

  #at(): string {
    return this.#now().toISOString();
  }

  #auditId(runId: string): number {
    const cached = this.#ids.get(runId);
    if (cached !== undefined) return cached;
    const row = this.#stmt("SELECT id FROM audit_log WHERE run_id = ?").get(runId) as
      | { id: number }
      | undefined;
    if (!row) throw new RangeError(`no audit entry for run ${runId}`);
    this.#ids.set(runId, row.id);
    return row.id;
  }

  #start(
    runId: string,
    tool: AuditTool,
    operation: string,
    cols: Record<string, SQLInputValue>,
  ): void {
    const all: Record<string, SQLInputValue> = {
      run_id: runId,
      tool,
      operation,
      status: "running",
      started_at: this.#at(),
      hostname: this.#hostname,
      pid: this.#pid,
      ...cols,
    };
    const names = Object.keys(all);
    const r = this.#run(
      `INSERT INTO audit_log (${names.join(", ")}) VALUES (${names.map(() => "?").join(", ")})`,
      ...names.map((n) => all[n]!),
    );
    this.#ids.set(runId, Number(r.lastInsertRowid));
  }

  #finish(
    runId: string,
    status: Exclude<AuditStatus, "running">,
    cols: Record<string, SQLInputValue>,
  ) {
    const id = this.#auditId(runId);
    const at = this.#now();
    const row = this.#stmt("SELECT started_at FROM audit_log WHERE id = ?").get(id) as {
      started_at: string;
    };
    const all: Record<string, SQLInputValue> = {
      status,
      finished_at: at.toISOString(),
      duration_ms: Math.max(0, at.getTime() - Date.parse(row.started_at)),
      ...cols,
    };
    const names = Object.keys(all);
    this.#run(
      `UPDATE audit_log SET ${names.map((n) => `${n} = ?`).join(", ")} WHERE id = ?`,
      ...names.map((n) => all[n]!),
      id,
    );
  }

  /** Records the start of a run (status `running`). */
  runStarted(r: RunStartRecord): void {
    this.#start(r.runId, "virtwork", "run", {
      namespace: r.namespace,
      target: this.#text(r.target),
      config_json: this.#json({ workloads: r.workloads, ...r.config }),
      ssh_auth_configured: r.sshAuthConfigured ? 1 : 0,
      dry_run: r.dryRun ? 1 : 0,
      vm_count: r.vmCount,
    });
  }

  /** Records one workload of a run. */
  workloadRecorded(r: WorkloadRecord): void {
    this.#run(
      `INSERT INTO workload_details (audit_id, name, vm_count, config_json) VALUES (?, ?, ?, ?)
       ON CONFLICT (audit_id, name) DO UPDATE SET vm_count = excluded.vm_count,
         config_json = excluded.config_json`,
      this.#auditId(r.runId),
      r.name,
      r.vmCount,
      this.#json(r.config),
    );
  }

  /** Records a created (existing, failed) object; VMs also get their `vm_details` row. */
  objectCreated(r: ObjectRecord): void {
    const id = this.#auditId(r.runId);
    const at = this.#at();
    this.#tx(() => {
      this.#run(
        `INSERT INTO resource_details (audit_id, kind, namespace, name, action, error, at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
        id,
        r.kind,
        r.namespace ?? null,
        r.name,
        r.outcome,
        this.#text(r.error),
        at,
      );
      if (r.kind === "VirtualMachine") {
        this.#run(
          `INSERT INTO vm_details (audit_id, name, namespace, outcome, error, created_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (audit_id, name) DO UPDATE SET outcome = excluded.outcome,
             error = excluded.error`,
          id,
          r.name,
          r.namespace ?? null,
          r.outcome,
          this.#text(r.error),
          at,
        );
      }
    });
  }

  /** Records where a VM ended up. */
  vmFinished(r: VmRecord): void {
    this.#run(
      `INSERT INTO vm_details (audit_id, name, namespace, workload, role, outcome, phase, ready,
         seconds_to_ready, error, created_at, phases_json)
       VALUES (?, ?, ?, ?, ?, 'skipped', ?, ?, ?, ?, ?, ?)
       ON CONFLICT (audit_id, name) DO UPDATE SET namespace = excluded.namespace,
         workload = excluded.workload, role = excluded.role, phase = excluded.phase,
         ready = excluded.ready, seconds_to_ready = excluded.seconds_to_ready,
         error = coalesce(excluded.error, vm_details.error),
         phases_json = coalesce(excluded.phases_json, vm_details.phases_json)`,
      this.#auditId(r.runId),
      r.name,
      r.namespace,
      r.workload,
      r.role,
      r.phase,
      r.ready ? 1 : 0,
      r.secondsToReady ?? null,
      this.#text(r.error),
      this.#at(),
      this.#json(r.phases),
    );
  }

  /** Records a VM's latest result figures on its `vm_details` row. */
  resultsRecorded(r: ResultsRecord): void {
    this.#run(
      `INSERT INTO vm_details (audit_id, name, workload, results_json, result_error, created_at)
       VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (audit_id, name) DO UPDATE SET results_json = excluded.results_json,
         result_error = excluded.result_error`,
      this.#auditId(r.runId),
      r.vm,
      r.workload,
      this.#json(r.metrics),
      this.#text(r.error),
      this.#at(),
    );
  }

  /** Records an event. */
  event(r: EventRecord): void {
    this.#run(
      `INSERT INTO events (audit_id, at, level, reason, object, message) VALUES (?, ?, ?, ?, ?, ?)`,
      this.#auditId(r.runId),
      this.#at(),
      r.level,
      r.reason,
      r.object ?? null,
      this.#text(r.message) ?? "",
    );
  }

  /** Records the end of a run with its status and error summary. */
  runFinished(r: RunEndRecord): void {
    const status = r.interrupted ? "interrupted" : r.ok ? "succeeded" : "failed";
    this.#finish(r.runId, status, {
      error_summary: this.#text(r.error),
      ...(r.latency ? { latency_json: this.#json(r.latency) } : {}),
    });
  }

  /** Records the start of a cleanup (its own entry, status `running`). */
  cleanupStarted(r: CleanupStartRecord): void {
    this.#start(r.cleanupId, "virtwork", "cleanup", {
      namespace: r.namespace,
      target: this.#text(r.target),
      config_json: this.#json({
        ...(r.runId ? { runId: r.runId } : {}),
        deleteNamespace: r.deleteNamespace ?? false,
      }),
    });
  }

  /** Records a deletion; a deleted VM's `vm_details` row of its run is marked deleted. */
  objectDeleted(r: DeletionRecord): void {
    const id = this.#auditId(r.cleanupId);
    const at = this.#at();
    this.#tx(() => {
      this.#run(
        `INSERT INTO resource_details (audit_id, kind, namespace, name, action, source_run_id,
           error, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        id,
        r.kind,
        r.namespace,
        r.name,
        r.outcome === "deleted" ? "deleted" : "delete_failed",
        r.runId ?? null,
        this.#text(r.error),
        at,
      );
      if (r.kind === "VirtualMachine" && r.outcome === "deleted") {
        this.#run(
          `UPDATE vm_details SET deleted_at = ?, deleted_by = ?
           WHERE namespace = ? AND name = ? AND deleted_at IS NULL
             AND (? IS NULL OR audit_id = (SELECT id FROM audit_log WHERE run_id = ?))`,
          at,
          id,
          r.namespace,
          r.name,
          r.runId ?? null,
          r.runId ?? null,
        );
      }
    });
  }

  /** Records the end of a cleanup: counts, linked runs, errors. */
  cleanupFinished(r: CleanupRecord): void {
    const cleanupId = r.cleanupId ?? crypto.randomUUID();
    if (!r.cleanupId) {
      this.cleanupStarted({
        cleanupId,
        namespace: r.namespace,
        ...(r.runId ? { runId: r.runId } : {}),
      });
    }
    const status = r.interrupted ? "interrupted" : r.errors.length > 0 ? "failed" : "succeeded";
    const summary = r.errors.length === 0
      ? undefined
      : `${r.errors.length} error${r.errors.length === 1 ? "" : "s"}: ${
        r.errors.slice(0, 5).join("; ")
      }${r.errors.length > 5 ? "; …" : ""}`;
    this.#finish(cleanupId, status, {
      linked_run_ids: JSON.stringify([...new Set(r.linkedRunIds)].sort()),
      cleanup_counts: JSON.stringify({ ...r.deleted, namespaceDeleted: r.namespaceDeleted }),
      error_summary: this.#text(summary),
    });
  }

  /** Records the start of a foundry operation. */
  operationStarted(r: OperationStartRecord): void {
    this.#start(r.operationId, "foundry", r.operation, {
      target: this.#text(r.uri),
      resource_type: r.resourceType,
      resource_name: r.name,
      config_json: this.#json(r.details),
    });
  }

  /** Records the end of a foundry operation. */
  operationFinished(r: OperationEndRecord): void {
    this.#finish(r.operationId, r.status, { error_summary: this.#text(r.error) });
  }

  /** Closes the database. */
  close(): void {
    this.#statements.clear();
    if (this.db.isOpen) this.db.close();
  }
}
