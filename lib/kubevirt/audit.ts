/**
 * The seam for audit tracking: run and cleanup report plain records to an {@linkcode Auditor}.
 * The SQLite implementation lives elsewhere; {@linkcode noopAuditor} is the default. Records never
 * carry credentials, only whether SSH access was configured.
 * @module
 */

/** The start of a run. */
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
}

/** An object a run created (or found existing). */
export interface ObjectRecord {
  /** Run id. */
  runId: string;
  /** Object kind, e.g. `VirtualMachine`. */
  kind: string;
  /** Namespace of the object. */
  namespace: string;
  /** Object name. */
  name: string;
  /** Created now, found existing, or failed. */
  outcome: "created" | "exists" | "failed";
  /** Failure message, when failed. */
  error?: string;
}

/** Where a VM ended up. */
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
}

/** The end of a run. */
export interface RunEndRecord {
  /** Run id. */
  runId: string;
  /** True when every VM was created and became ready. */
  ok: boolean;
  /** True when the run was interrupted (Ctrl-C). */
  interrupted: boolean;
  /** Error that stopped the run. */
  error?: string;
}

/** The outcome of a cleanup. */
export interface CleanupRecord {
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
}

/** Receives audit records; implementations must not throw for a caller's sake (log instead). */
export interface Auditor {
  /** A run started. */
  runStarted(r: RunStartRecord): void | Promise<void>;
  /** An object was created, found existing or failed. */
  objectCreated(r: ObjectRecord): void | Promise<void>;
  /** A VM's final state at the end of a run. */
  vmFinished(r: VmRecord): void | Promise<void>;
  /** A run ended. */
  runFinished(r: RunEndRecord): void | Promise<void>;
  /** A cleanup ended. */
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
