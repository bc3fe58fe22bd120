/**
 * The one audit seam of both executables: virtwork's run and cleanup and foundry's operations
 * report plain records to an {@linkcode Auditor}. Records never carry credentials: a run says
 * only whether SSH access was configured.
 * @module
 */

/** Which executable wrote a record. */
export type AuditTool = "virtwork" | "foundry";

/** Where an audited execution stands. `running` after a crash means it never finished. */
export type AuditStatus = "running" | "succeeded" | "failed" | "interrupted";

/** The start of a virtwork run. */
export interface RunStartRecord {
  /** Run id (label `virtwork/run-id`). */
  runId: string;
  /** Namespace of the run. */
  namespace: string;
  /** Workload names deployed. */
  workloads: readonly string[];
  /** Number of VMs planned. */
  vmCount: number;
  /** True for `--dry-run`. */
  dryRun: boolean;
  /** Whether a password or SSH keys were configured (never the credentials). */
  sshAuthConfigured: boolean;
  /** Effective settings without credentials (stored as JSON). */
  config?: Readonly<Record<string, unknown>>;
  /** The cluster's API server, when known. */
  target?: string;
}

/** One workload of a run. */
export interface WorkloadRecord {
  /** Run id. */
  runId: string;
  /** Workload name, e.g. `cpu`. */
  name: string;
  /** VMs the workload deploys. */
  vmCount: number;
  /** Workload settings without credentials (stored as JSON). */
  config?: Readonly<Record<string, unknown>>;
}

/** An object a run or operation created, found existing, or failed to create. */
export interface ObjectRecord {
  /** Run (or operation) id. */
  runId: string;
  /** Object kind, e.g. `VirtualMachine`, `Service`, `volume`. */
  kind: string;
  /** Namespace of the object, when it has one. */
  namespace?: string;
  /** Object name. */
  name: string;
  /** Created now, found existing, or failed. */
  outcome: "created" | "exists" | "failed";
  /** Failure message, when failed. */
  error?: string;
}

/** Where a VM ended up at the end of a run. */
export interface VmRecord {
  /** Run id. */
  runId: string;
  /** Namespace of the VM. */
  namespace: string;
  /** VM name. */
  name: string;
  /** Workload name. */
  workload: string;
  /** VM role (`worker`, `server`, `client`). */
  role: string;
  /** VMI phase at the last poll. */
  phase: string;
  /** Whether the VMI became Ready. */
  ready: boolean;
  /** Seconds from creation to Ready. */
  secondsToReady?: number;
  /** Why it is not ready, when it is not. */
  error?: string;
  /** Its phase latencies by phase (virtwork latency; absent when not measured). */
  phases?: Readonly<Record<string, PhaseSampleRecord>>;
}

/** One VM's latency to one phase, as measured: what a report is computed again from. */
export interface PhaseSampleRecord {
  /** Milliseconds from the VM's creation request (the chosen source). */
  ms: number;
  /** Which source `ms` came from: `client`, `server` or `clamped`. */
  source: string;
  /** The client's receipt, ms from the create request. */
  clientMs?: number;
  /** The server's timestamp of the phase. */
  serverTime?: string;
  /** Ms from the VM's server creation timestamp. */
  serverMs?: number;
}

/** How a run measured its latencies (stored on the run's entry). */
export interface LatencyMetaRecord {
  /** Platform kind (`kubevirt`, `libvirt`). */
  targetKind: string;
  /** Phases the run expected, in order. */
  phases: readonly string[];
  /** How late the client could learn of a phase, ms. */
  clientResolutionMs: number;
}

/** The latest figures a VM's guest reported (virtwork `--results-after`). */
export interface ResultsRecord {
  /** Run id. */
  runId: string;
  /** VM name. */
  vm: string;
  /** Workload name. */
  workload: string;
  /** Figures by name (the name carries the unit). */
  metrics: Readonly<Record<string, number>>;
  /** Why the workload could not run, as the guest said. */
  error?: string;
}

/** Something that happened during a run, cleanup or operation. */
export interface EventRecord {
  /** Run, cleanup or operation id. */
  runId: string;
  /** `info`, `warning` or `error`. */
  level: "info" | "warning" | "error";
  /** Short machine-readable reason, e.g. `VmReady`, `Timeout`, `Interrupted`. */
  reason: string;
  /** What happened, for people. */
  message: string;
  /** The object concerned, as `Kind/name`, when there is one. */
  object?: string;
}

/** The end of a run. */
export interface RunEndRecord {
  /** Run id. */
  runId: string;
  /** True when every VM was created and became ready. */
  ok: boolean;
  /** True when the run was interrupted (Ctrl-C). */
  interrupted: boolean;
  /** Why the run did not succeed. */
  error?: string;
  /** How the run measured latencies (absent: not measured). */
  latency?: LatencyMetaRecord;
}

/** The start of a cleanup. */
export interface CleanupStartRecord {
  /** Id of this cleanup (its own audit entry). */
  cleanupId: string;
  /** Namespace cleaned. */
  namespace: string;
  /** Run id the cleanup is narrowed to. */
  runId?: string;
  /** Whether the Namespace is to be deleted. */
  deleteNamespace?: boolean;
  /** The cluster's API server, when known. */
  target?: string;
}

/** An object a cleanup deleted (or failed to delete). */
export interface DeletionRecord {
  /** Id of the cleanup. */
  cleanupId: string;
  /** Object kind. */
  kind: string;
  /** Namespace of the object. */
  namespace: string;
  /** Object name. */
  name: string;
  /** The run the object belonged to (its `virtwork/run-id` label). */
  runId?: string;
  /** Deleted, or the deletion failed. */
  outcome: "deleted" | "failed";
  /** Failure message, when failed. */
  error?: string;
}

/** The outcome of a cleanup. */
export interface CleanupRecord {
  /** Id of this cleanup; without one, a cleanup entry is created on the spot. */
  cleanupId?: string;
  /** Namespace cleaned. */
  namespace: string;
  /** Run id the cleanup was narrowed to. */
  runId?: string;
  /** Run ids found on the deleted objects. */
  linkedRunIds: readonly string[];
  /** Successful deletions by resource. */
  deleted: Readonly<Record<string, number>>;
  /** Whether the Namespace was deleted. */
  namespaceDeleted: boolean;
  /** Failure messages. */
  errors: readonly string[];
  /** True when the cleanup was interrupted. */
  interrupted?: boolean;
}

/** The start of a foundry operation on one resource. */
export interface OperationStartRecord {
  /** Id of this operation. */
  operationId: string;
  /** Kind of resource: `vm`, `image`, `pool`, … */
  resourceType: string;
  /** Resource name. */
  name: string;
  /** libvirt URI the operation talks to. */
  uri: string;
  /** What is done: `create`, `destroy`, `start`, `stop`, `import`, `pull`, `delete`, `add`, … */
  operation: string;
  /** Settings of the operation without credentials (stored as JSON). */
  details?: Readonly<Record<string, unknown>>;
}

/** The end of a foundry operation. */
export interface OperationEndRecord {
  /** Id of the operation. */
  operationId: string;
  /** Succeeded, failed or interrupted. */
  status: Exclude<AuditStatus, "running">;
  /** Why it failed (credentials scrubbed). */
  error?: string;
}

/**
 * Receives audit records. Callers treat an auditor as best effort: a failing auditor must not fail
 * the work it watches, so callers catch and report what a method throws.
 */
export interface Auditor {
  /** A run started. */
  runStarted(r: RunStartRecord): void | Promise<void>;
  /** A workload of a run. */
  workloadRecorded(r: WorkloadRecord): void | Promise<void>;
  /** An object was created, found existing or failed. */
  objectCreated(r: ObjectRecord): void | Promise<void>;
  /** A VM's final state at the end of a run. */
  vmFinished(r: VmRecord): void | Promise<void>;
  /** Something happened. */
  event(r: EventRecord): void | Promise<void>;
  /** A VM's latest result figures (optional: auditors written before results may lack it). */
  resultsRecorded?(r: ResultsRecord): void | Promise<void>;
  /** A run ended. */
  runFinished(r: RunEndRecord): void | Promise<void>;
  /** A cleanup started. */
  cleanupStarted(r: CleanupStartRecord): void | Promise<void>;
  /** A cleanup deleted an object (or failed to). */
  objectDeleted(r: DeletionRecord): void | Promise<void>;
  /** A cleanup ended. */
  cleanupFinished(r: CleanupRecord): void | Promise<void>;
  /** A foundry operation started. */
  operationStarted(r: OperationStartRecord): void | Promise<void>;
  /** A foundry operation ended. */
  operationFinished(r: OperationEndRecord): void | Promise<void>;
  /** Releases the database; later calls fail. */
  close(): void;
}

/** An auditor that records nothing (`--no-audit`). */
export const noopAuditor: Auditor = Object.freeze({
  runStarted() {},
  workloadRecorded() {},
  objectCreated() {},
  vmFinished() {},
  event() {},
  resultsRecorded() {},
  runFinished() {},
  cleanupStarted() {},
  objectDeleted() {},
  cleanupFinished() {},
  operationStarted() {},
  operationFinished() {},
  close() {},
});
