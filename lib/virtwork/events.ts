/**
 * What a virtwork run or cleanup reports as it works, on either backend: plain typed records the
 * edge subscribes to. The CLI prints some as progress; one audit subscriber
 * (`audit_subscriber.ts`) writes them to the audit database. lib code never writes the audit trail
 * itself.
 *
 * @example
 * ```ts
 * import type { VirtworkEvent } from "./events.ts";
 * const seen: VirtworkEvent[] = [];
 * const onEvent = (e: VirtworkEvent) => void seen.push(e);
 * ```
 * @module
 */
import type { TargetKind } from "./backend.ts";
import type { ResultSample } from "./results.ts";

/** How serious a {@linkcode NoteEvent} is. */
export type EventLevel = "info" | "warning" | "error";

/** A run began (also for `--dry-run`, which creates nothing). */
export interface RunStartedEvent {
  /** Discriminant. */
  type: "runStarted";
  /** Run id. */
  runId: string;
  /** Platform. */
  target: TargetKind;
  /** Where the VMs go: the namespace on KubeVirt, the libvirt URI on libvirt. */
  scope: string;
  /** The API server URL or libvirt URI, when connected. */
  location?: string;
  /** Workloads deployed, with how many VMs each and their settings (no credentials). */
  workloads: { name: string; vmCount: number; config?: Readonly<Record<string, unknown>> }[];
  /** VMs planned. */
  vmCount: number;
  /** True for a dry run. */
  dryRun: boolean;
  /** Whether a password or SSH keys were configured (never the credentials). */
  sshAuthConfigured: boolean;
  /** Effective settings without credentials. */
  config?: Readonly<Record<string, unknown>>;
}

/** An object of the run was created, found already this run's, or failed to be created. */
export interface ObjectCreatedEvent {
  /** Discriminant. */
  type: "objectCreated";
  /** Run id. */
  runId: string;
  /** Kind in the backend's terms (`VirtualMachine`, `Secret`, `domain`, `volume`). */
  kind: string;
  /** Name. */
  name: string;
  /** What became of it. */
  outcome: "created" | "exists" | "failed";
  /** Why it failed. */
  error?: string;
}

/** A VM of the plan was created (or was already this run's). */
export interface VmCreatedEvent {
  /** Discriminant. */
  type: "vmCreated";
  /** Run id. */
  runId: string;
  /** VM name. */
  name: string;
  /** Created now or found. */
  outcome: "created" | "exists";
}

/** A VM reached a lifecycle phase (`VMIRunning`, `DomainRunning`, `AgentConnected`, ...). */
export interface VmPhaseEvent {
  /** Discriminant. */
  type: "vmPhase";
  /** Run id. */
  runId: string;
  /** VM name. */
  name: string;
  /** Phase reached. */
  phase: string;
  /** Seconds since the VM was created. */
  seconds: number;
}

/** A VM became ready for its workload. */
export interface VmReadyEvent {
  /** Discriminant. */
  type: "vmReady";
  /** Run id. */
  runId: string;
  /** VM name. */
  name: string;
  /** Seconds from its creation to ready. */
  seconds: number;
}

/** A VM cannot become ready. */
export interface VmFailedEvent {
  /** Discriminant. */
  type: "vmFailed";
  /** Run id. */
  runId: string;
  /** VM name. */
  name: string;
  /** Why. */
  message: string;
}

/** Something worth recording that is not a state change of its own (rollback, timeout, ...). */
export interface NoteEvent {
  /** Discriminant. */
  type: "note";
  /** Run or cleanup id. */
  runId: string;
  /** Severity. */
  level: EventLevel;
  /** Short machine-readable reason: `RolledBack`, `MayExist`, `Timeout`, `Interrupted`, ... */
  reason: string;
  /** What happened, for people. */
  message: string;
  /** The object concerned, as `Kind/name`. */
  object?: string;
}

/** A result sample arrived from a guest. */
export interface ResultEvent {
  /** Discriminant. */
  type: "result";
  /** Run id. */
  runId: string;
  /** VM name. */
  name: string;
  /** The sample. */
  sample: ResultSample;
}

/** Where a VM ended up at the end of a run. */
export interface VmFinishedEvent {
  /** Discriminant. */
  type: "vmFinished";
  /** Run id. */
  runId: string;
  /** VM name. */
  name: string;
  /** Workload name. */
  workload: string;
  /** Role. */
  role: string;
  /** Last phase seen. */
  phase: string;
  /** Whether it became ready. */
  ready: boolean;
  /** Seconds from creation to ready. */
  secondsToReady?: number;
  /** Why it is not ready. */
  error?: string;
  /** The latest figures its guest reported, when results were collected. */
  results?: Readonly<Record<string, number>>;
  /** Why its workload could not run, as the guest reported it. */
  resultError?: string;
  /** Its phase latencies (ms from its creation request, source, both observations). */
  phaseSamples?: Readonly<Record<string, PhaseSample>>;
}

/** One VM's latency to one phase, as the audit trail keeps it. */
export interface PhaseSample {
  /** Milliseconds from the creation request (the chosen source). */
  ms: number;
  /** `client`, `server` or `clamped`. */
  source: string;
  /** The client's receipt, ms from the create request. */
  clientMs?: number;
  /** The server's timestamp of the phase. */
  serverTime?: string;
  /** Ms from the VM's server creation timestamp. */
  serverMs?: number;
}

/** A run ended. */
export interface RunFinishedEvent {
  /** Discriminant. */
  type: "runFinished";
  /** Run id. */
  runId: string;
  /** Every VM created and ready (and nothing failed). */
  ok: boolean;
  /** Stopped by an interrupt. */
  interrupted: boolean;
  /** Why it did not succeed. */
  error?: string;
  /** How latencies were measured (platform, phases expected, client resolution in ms). */
  latency?: { targetKind: string; phases: readonly string[]; clientResolutionMs: number };
}

/** A cleanup began. */
export interface CleanupStartedEvent {
  /** Discriminant. */
  type: "cleanupStarted";
  /** Id of the cleanup. */
  cleanupId: string;
  /** Namespace or libvirt URI cleaned. */
  scope: string;
  /** Run id it is narrowed to. */
  runId?: string;
  /** Whether the namespace is to go too (KubeVirt). */
  deleteScope?: boolean;
  /** API server URL or libvirt URI. */
  location?: string;
}

/** A cleanup deleted an object, or failed to. */
export interface ObjectDeletedEvent {
  /** Discriminant. */
  type: "objectDeleted";
  /** Id of the cleanup. */
  cleanupId: string;
  /** Object kind. */
  kind: string;
  /** Object name. */
  name: string;
  /** The run the object belonged to. */
  runId?: string;
  /** Deleted, or not. */
  outcome: "deleted" | "failed";
  /** Why it failed. */
  error?: string;
}

/** A cleanup ended. */
export interface CleanedEvent {
  /** Discriminant. */
  type: "cleaned";
  /** Id of the cleanup. */
  cleanupId: string;
  /** Namespace or libvirt URI cleaned. */
  scope: string;
  /** Run id it was narrowed to. */
  runId?: string;
  /** Run ids found on what was removed. */
  linkedRunIds: readonly string[];
  /** Removals by kind. */
  deleted: Readonly<Record<string, number>>;
  /** Whether the namespace was deleted (KubeVirt). */
  scopeDeleted: boolean;
  /** Failures, as `Kind name: message`. */
  errors: readonly string[];
  /** Stopped by an interrupt. */
  interrupted: boolean;
}

/** Everything a run or cleanup reports. */
export type VirtworkEvent =
  | RunStartedEvent
  | ObjectCreatedEvent
  | VmCreatedEvent
  | VmPhaseEvent
  | VmReadyEvent
  | VmFailedEvent
  | NoteEvent
  | ResultEvent
  | VmFinishedEvent
  | RunFinishedEvent
  | CleanupStartedEvent
  | ObjectDeletedEvent
  | CleanedEvent;

/**
 * A subscriber. It may be asynchronous; callers await it and treat a throw as its own problem
 * (reported, never failing the run).
 */
export type EventSink = (e: VirtworkEvent) => void | Promise<void>;

/**
 * Calls every sink in `sinks` with each event, in order; a sink that throws is reported to
 * `onError` and the others still get the event.
 */
export function fanOut(
  sinks: readonly (EventSink | undefined)[],
  onError: (e: unknown) => void = () => {},
): EventSink {
  const live = sinks.filter((s): s is EventSink => s !== undefined);
  return async (e) => {
    for (const s of live) {
      try {
        await s(e);
      } catch (err) {
        onError(err);
      }
    }
  };
}
