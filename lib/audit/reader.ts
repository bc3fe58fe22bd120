/**
 * Reading the audit trail back: the list of runs and cleanups (`virtwork audit list`), one run with
 * its workloads, VMs, objects, events and the cleanups that removed it (`virtwork audit show`), and
 * foundry's operation history (`foundry history [NAME]`). Returns plain data; the CLI formats it.
 *
 * @example
 * ```ts
 * import { openAuditDb } from "./schema.ts";
 * import { listEntries } from "./reader.ts";
 * const db = openAuditDb(":memory:");
 * for (const e of listEntries(db, { tool: "virtwork" })) console.log(e.runId, e.status);
 * db.close();
 * ```
 * @module
 */
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import type { AuditStatus, AuditTool, LatencyMetaRecord, PhaseSampleRecord } from "./types.ts";

/** One row of `audit_log`. A `running` entry with no `finishedAt` never recorded its end. */
export interface AuditEntry {
  /** Run, cleanup or operation id. */
  runId: string;
  /** Executable that wrote it. */
  tool: AuditTool;
  /** `run`, `cleanup`, or foundry's `create`, `destroy`, … */
  operation: string;
  /** Where it stands; `running` for an unfinished one. */
  status: AuditStatus;
  /** True when the end was recorded. */
  finished: boolean;
  /** ISO 8601 start time. */
  startedAt: string;
  /** ISO 8601 end time. */
  finishedAt: string | null;
  /** Milliseconds from start to end. */
  durationMs: number | null;
  /** Namespace (virtwork). */
  namespace: string | null;
  /** libvirt URI or API server. */
  target: string | null;
  /** foundry resource type. */
  resourceType: string | null;
  /** foundry resource name. */
  resourceName: string | null;
  /** Settings without credentials. */
  config: Record<string, unknown> | null;
  /** Whether SSH access was configured (virtwork run). */
  sshAuthConfigured: boolean;
  /** True for a dry run. */
  dryRun: boolean;
  /** VMs planned (virtwork run). */
  vmCount: number | null;
  /** Why it did not succeed. */
  errorSummary: string | null;
  /** Runs a cleanup removed objects of. */
  linkedRunIds: string[];
  /** Deletions by resource of a cleanup. */
  cleanupCounts: Record<string, number | boolean> | null;
  /** Host that wrote the entry. */
  hostname: string | null;
  /** Process that wrote the entry. */
  pid: number | null;
}

/** A workload of a run. */
export interface WorkloadDetail {
  /** Workload name. */
  name: string;
  /** VMs deployed. */
  vmCount: number;
  /** Settings without credentials. */
  config: Record<string, unknown> | null;
}

/** A VM of a run. */
export interface VmDetail {
  /** VM name. */
  name: string;
  /** Namespace. */
  namespace: string | null;
  /** Workload. */
  workload: string | null;
  /** Role. */
  role: string | null;
  /** `created`, `exists`, `failed` or `skipped`. */
  outcome: string | null;
  /** VMI phase at the end of the run. */
  phase: string | null;
  /** Whether it became Ready. */
  ready: boolean | null;
  /** Seconds to Ready. */
  secondsToReady: number | null;
  /** Why it failed or is not ready. */
  error: string | null;
  /** When it was recorded. */
  createdAt: string;
  /** When a cleanup deleted it. */
  deletedAt: string | null;
  /** Id of the cleanup that deleted it. */
  deletedBy: string | null;
  /** The latest figures its guest reported (`--results-after`), when collected. */
  results: Record<string, number> | null;
  /** Why its workload could not run, as the guest said. */
  resultError: string | null;
}

/** An object created or deleted. */
export interface ResourceDetail {
  /** Kind. */
  kind: string;
  /** Namespace. */
  namespace: string | null;
  /** Name. */
  name: string;
  /** `created`, `exists`, `failed`, `deleted` or `delete_failed`. */
  action: string;
  /** For a deletion, the run the object belonged to. */
  sourceRunId: string | null;
  /** Failure message. */
  error: string | null;
  /** When. */
  at: string;
}

/** An event. */
export interface EventDetail {
  /** When. */
  at: string;
  /** `info`, `warning` or `error`. */
  level: string;
  /** Short reason. */
  reason: string;
  /** Object concerned. */
  object: string | null;
  /** Message. */
  message: string;
}

/** Everything recorded about one entry. */
export interface EntryDetails {
  /** The entry. */
  entry: AuditEntry;
  /** Workloads (runs). */
  workloads: WorkloadDetail[];
  /** VMs (runs). */
  vms: VmDetail[];
  /** Objects it created or deleted. */
  resources: ResourceDetail[];
  /** Events. */
  events: EventDetail[];
  /** Cleanups that removed objects of this run. */
  cleanups: AuditEntry[];
  /** Deletions of this run's objects by those cleanups. */
  deletions: ResourceDetail[];
}

/** Filters of {@linkcode listEntries}. */
export interface ListFilter {
  /** Only this executable's entries. */
  tool?: AuditTool;
  /** Only this operation (`run`, `cleanup`, `create`, …). */
  operation?: string;
  /** Only this status. */
  status?: AuditStatus;
  /** Only entries about this resource name, ignoring case (foundry). */
  resourceName?: string;
  /** Only this resource type (foundry). */
  resourceType?: string;
  /** Newest first, at most this many (default 50; 0 for all). */
  limit?: number;
}

type Row = Record<string, SQLInputValue>;

function json<T>(s: unknown): T | null {
  return typeof s === "string" ? JSON.parse(s) as T : null;
}

function toEntry(r: Row): AuditEntry {
  return {
    runId: r.run_id as string,
    tool: r.tool as AuditTool,
    operation: r.operation as string,
    status: r.status as AuditStatus,
    finished: r.finished_at !== null,
    startedAt: r.started_at as string,
    finishedAt: r.finished_at as string | null,
    durationMs: r.duration_ms === null ? null : Number(r.duration_ms),
    namespace: r.namespace as string | null,
    target: r.target as string | null,
    resourceType: r.resource_type as string | null,
    resourceName: r.resource_name as string | null,
    config: json(r.config_json),
    sshAuthConfigured: r.ssh_auth_configured === 1,
    dryRun: r.dry_run === 1,
    vmCount: r.vm_count === null ? null : Number(r.vm_count),
    errorSummary: r.error_summary as string | null,
    linkedRunIds: json<string[]>(r.linked_run_ids) ?? [],
    cleanupCounts: json(r.cleanup_counts),
    hostname: r.hostname as string | null,
    pid: r.pid === null ? null : Number(r.pid),
  };
}

function toResource(r: Row): ResourceDetail {
  return {
    kind: r.kind as string,
    namespace: r.namespace as string | null,
    name: r.name as string,
    action: r.action as string,
    sourceRunId: r.source_run_id as string | null,
    error: r.error as string | null,
    at: r.at as string,
  };
}

/** Entries newest first, filtered. */
export function listEntries(db: DatabaseSync, f: ListFilter = {}): AuditEntry[] {
  const where: string[] = [];
  const params: SQLInputValue[] = [];
  const eq = (col: string, v: string | undefined, collate = "") => {
    if (v === undefined) return;
    where.push(`${col} = ?${collate}`);
    params.push(v);
  };
  eq("tool", f.tool);
  eq("operation", f.operation);
  eq("status", f.status);
  eq("resource_name", f.resourceName, " COLLATE NOCASE");
  eq("resource_type", f.resourceType);
  const limit = f.limit ?? 50;
  const sql = `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
    ORDER BY started_at DESC, id DESC ${limit > 0 ? `LIMIT ${Math.trunc(limit)}` : ""}`;
  return (db.prepare(sql).all(...params) as Row[]).map(toEntry);
}

/**
 * The entry whose id is `idOrPrefix` or starts with it (like git's short ids).
 * @throws {RangeError} when a prefix matches several entries
 */
export function findEntry(db: DatabaseSync, idOrPrefix: string): AuditEntry | undefined {
  const exact = db.prepare("SELECT * FROM audit_log WHERE run_id = ?").get(idOrPrefix) as
    | Row
    | undefined;
  if (exact) return toEntry(exact);
  if (idOrPrefix.length < 4) return undefined;
  const rows = db.prepare(
    "SELECT * FROM audit_log WHERE substr(run_id, 1, length(?)) = ? ORDER BY started_at LIMIT 6",
  ).all(idOrPrefix, idOrPrefix) as Row[];
  if (rows.length > 1) {
    throw new RangeError(
      `run id prefix ${idOrPrefix} is ambiguous: ${rows.map((r) => r.run_id).join(", ")}`,
    );
  }
  return rows[0] ? toEntry(rows[0]) : undefined;
}

/**
 * The run ids of `tool`'s runs (operation `run`; not cleanups, not dry runs) that begin with
 * `prefix`, in `namespace` when one is given.
 */
export function runIdsWithPrefix(
  db: DatabaseSync,
  tool: AuditTool,
  prefix: string,
  namespace?: string,
): string[] {
  const inNamespace = namespace === undefined ? "" : " AND namespace = ?";
  return (db.prepare(
    `SELECT run_id FROM audit_log WHERE tool = ? AND operation = 'run' AND dry_run = 0
     AND substr(run_id, 1, length(?)) = ?${inNamespace} ORDER BY run_id`,
  ).all(tool, prefix, prefix, ...(namespace === undefined ? [] : [namespace])) as Row[])
    .map((r) => String(r.run_id));
}

/** Everything recorded about the entry `idOrPrefix`, or undefined when there is none. */
export function entryDetails(db: DatabaseSync, idOrPrefix: string): EntryDetails | undefined {
  const entry = findEntry(db, idOrPrefix);
  if (!entry) return undefined;
  const { id } = db.prepare("SELECT id FROM audit_log WHERE run_id = ?").get(entry.runId) as {
    id: number;
  };
  const workloads = (db.prepare(
    "SELECT name, vm_count, config_json FROM workload_details WHERE audit_id = ? ORDER BY id",
  ).all(id) as Row[]).map((r) => ({
    name: r.name as string,
    vmCount: Number(r.vm_count),
    config: json<Record<string, unknown>>(r.config_json),
  }));
  const vms = (db.prepare(
    `SELECT v.*, c.run_id AS deleted_by_run FROM vm_details v
     LEFT JOIN audit_log c ON c.id = v.deleted_by WHERE v.audit_id = ? ORDER BY v.id`,
  ).all(id) as Row[]).map((r) => ({
    name: r.name as string,
    namespace: r.namespace as string | null,
    workload: r.workload as string | null,
    role: r.role as string | null,
    outcome: r.outcome as string | null,
    phase: r.phase as string | null,
    ready: r.ready === null ? null : r.ready === 1,
    secondsToReady: r.seconds_to_ready === null ? null : Number(r.seconds_to_ready),
    error: r.error as string | null,
    createdAt: r.created_at as string,
    deletedAt: r.deleted_at as string | null,
    deletedBy: r.deleted_by_run as string | null,
    results: json<Record<string, number>>(r.results_json ?? null) ?? null,
    resultError: (r.result_error ?? null) as string | null,
  }));
  const resources = (db.prepare(
    "SELECT * FROM resource_details WHERE audit_id = ? ORDER BY id",
  ).all(id) as Row[]).map(toResource);
  const events = (db.prepare(
    "SELECT at, level, reason, object, message FROM events WHERE audit_id = ? ORDER BY id",
  ).all(id) as Row[]).map((r) => ({
    at: r.at as string,
    level: r.level as string,
    reason: r.reason as string,
    object: r.object as string | null,
    message: r.message as string,
  }));
  const cleanups = (db.prepare(
    `SELECT * FROM audit_log WHERE operation = 'cleanup' AND linked_run_ids IS NOT NULL
       AND EXISTS (SELECT 1 FROM json_each(audit_log.linked_run_ids) WHERE value = ?)
     ORDER BY started_at, id`,
  ).all(entry.runId) as Row[]).map(toEntry);
  const deletions = (db.prepare(
    "SELECT * FROM resource_details WHERE source_run_id = ? ORDER BY id",
  ).all(entry.runId) as Row[]).map(toResource);
  return { entry, workloads, vms, resources, events, cleanups, deletions };
}

/** A VM's stored latency samples (see {@linkcode runLatency}). */
export interface VmLatencyDetail {
  /** VM name. */
  name: string;
  /** Workload. */
  workload: string | null;
  /** Role. */
  role: string | null;
  /** Whether it became ready. */
  ready: boolean | null;
  /** Why it failed or is not ready. */
  error: string | null;
  /** Latest result figures. */
  results: Record<string, number> | null;
  /** Why its workload could not run. */
  resultError: string | null;
  /** Its phase samples by phase (null: not measured, a run of an older release). */
  phases: Record<string, PhaseSampleRecord> | null;
}

/** What a run stored of its latencies: enough to compute its report again. */
export interface RunLatency {
  /** The run's entry. */
  entry: AuditEntry;
  /** How it measured (null: a run of a release before latencies were stored). */
  meta: LatencyMetaRecord | null;
  /** Its VMs in the order recorded. */
  vms: VmLatencyDetail[];
}

/**
 * The latency samples of the virtwork run `idOrPrefix`, or undefined when there is no such entry.
 * @throws {RangeError} when a prefix matches several entries
 */
export function runLatency(db: DatabaseSync, idOrPrefix: string): RunLatency | undefined {
  const entry = findEntry(db, idOrPrefix);
  if (!entry) return undefined;
  const row = db.prepare("SELECT id, latency_json FROM audit_log WHERE run_id = ?").get(
    entry.runId,
  ) as Row;
  const vms = (db.prepare(
    `SELECT name, workload, role, ready, error, results_json, result_error, phases_json
     FROM vm_details WHERE audit_id = ? ORDER BY id`,
  ).all(Number(row.id)) as Row[]).map((r) => ({
    name: r.name as string,
    workload: r.workload as string | null,
    role: r.role as string | null,
    ready: r.ready === null ? null : r.ready === 1,
    error: r.error as string | null,
    results: json<Record<string, number>>(r.results_json ?? null) ?? null,
    resultError: (r.result_error ?? null) as string | null,
    phases: json<Record<string, PhaseSampleRecord>>(r.phases_json ?? null) ?? null,
  }));
  return {
    entry,
    meta: json<LatencyMetaRecord>(row.latency_json ?? null) ?? null,
    vms,
  };
}
