/**
 * The audit trail of both executables on SQLite (`node:sqlite`, built into Deno): a versioned
 * schema, the {@linkcode Auditor} seam with a SQLite implementation and a no-op one, foundry's
 * {@linkcode recordOperation} wrapper, credential scrubbing and the readers behind
 * `virtwork audit list|show` and `foundry history`.
 *
 * @example
 * ```ts
 * import { listEntries, recordOperation, SqliteAuditor } from "./mod.ts";
 * const audit = SqliteAuditor.open(":memory:");
 * await recordOperation(
 *   audit,
 *   { resourceType: "vm", name: "web-1", uri: "qemu:///system", operation: "start" },
 *   () => {},
 * );
 * console.log(listEntries(audit.db, { tool: "foundry" })[0]?.status); // "succeeded"
 * audit.close();
 * ```
 * @module
 */
export { noopAuditor } from "./types.ts";
export type {
  Auditor,
  AuditStatus,
  AuditTool,
  CleanupRecord,
  CleanupStartRecord,
  DeletionRecord,
  EventRecord,
  LatencyMetaRecord,
  ObjectRecord,
  OperationEndRecord,
  OperationStartRecord,
  PhaseSampleRecord,
  ResultsRecord,
  RunEndRecord,
  RunStartRecord,
  VmRecord,
  WorkloadRecord,
} from "./types.ts";
export {
  AUDIT_DB_MODE,
  AUDIT_DIR_MODE,
  AuditDbError,
  BUSY_TIMEOUT_MS,
  migrate,
  MIGRATIONS,
  openAuditDb,
  restrictAuditDbFiles,
  SCHEMA_VERSION,
  schemaVersion,
} from "./schema.ts";
export type { AuditDb, Migration, OpenOptions } from "./schema.ts";
export { SqliteAuditor } from "./sqlite.ts";
export type { SqliteAuditorOptions } from "./sqlite.ts";
export { recordOperation } from "./operation.ts";
export type { OperationContext, OperationInfo, RecordOperationOptions } from "./operation.ts";
export { REDACTED, scrubText, scrubValue } from "./scrub.ts";
export { entryDetails, findEntry, listEntries, runIdsWithPrefix, runLatency } from "./reader.ts";
export type {
  AuditEntry,
  EntryDetails,
  EventDetail,
  ListFilter,
  ResourceDetail,
  RunLatency,
  VmDetail,
  VmLatencyDetail,
  WorkloadDetail,
} from "./reader.ts";
