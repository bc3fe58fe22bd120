/**
 * The seam for audit tracking: run and cleanup report plain records to an {@linkcode Auditor}.
 * The SQLite implementation lives elsewhere; {@linkcode noopAuditor} is the default. Records never
 * carry credentials, only whether SSH access was configured.
 * @module
 */

/** The start of a run. */
export interface RunStartRecord {
  runId: string;
  namespace: string;
  workloads: readonly string[];
  vmCount: number;
  dryRun: boolean;
  sshAuthConfigured: boolean;
}

/** An object a run created (or found existing). */
export interface ObjectRecord {
  runId: string;
  kind: string;
  namespace: string;
  name: string;
  outcome: "created" | "exists" | "failed";
  error?: string;
}

/** Where a VM ended up. */
export interface VmRecord {
  runId: string;
  namespace: string;
  name: string;
  workload: string;
  role: string;
  phase: string;
  ready: boolean;
  secondsToReady?: number;
  error?: string;
}

/** The end of a run. */
export interface RunEndRecord {
  runId: string;
  ok: boolean;
  interrupted: boolean;
  error?: string;
}

/** The outcome of a cleanup. */
export interface CleanupRecord {
  namespace: string;
  runId?: string;
  linkedRunIds: readonly string[];
  deleted: Readonly<Record<string, number>>;
  namespaceDeleted: boolean;
  errors: readonly string[];
}

/** Receives audit records; implementations must not throw for a caller's sake (log instead). */
export interface Auditor {
  runStarted(r: RunStartRecord): void | Promise<void>;
  objectCreated(r: ObjectRecord): void | Promise<void>;
  vmFinished(r: VmRecord): void | Promise<void>;
  runFinished(r: RunEndRecord): void | Promise<void>;
  cleanupFinished(r: CleanupRecord): void | Promise<void>;
}

/** An auditor that records nothing. */
export const noopAuditor: Auditor = {
  runStarted() {},
  objectCreated() {},
  vmFinished() {},
  runFinished() {},
  cleanupFinished() {},
};
