/**
 * Run and cleanup orchestration on any {@linkcode Backend}: create the plan's objects, wait until
 * the VMs are ready, optionally read the guests' figures for a while, and say what became of each
 * VM; or remove a run's objects by run id. Everything that happens goes to the caller as typed
 * {@linkcode VirtworkEvent}s (the CLI prints some, the audit subscriber records them).
 *
 * An interrupt (the AbortSignal) stops the run: the backend rolls back the creates in flight, and
 * the result says the run was interrupted. The VMs finished before it are kept.
 *
 * @example
 * ```ts
 * import { runPlan } from "./run.ts";
 * import type { Backend, NeutralPlan } from "./backend.ts";
 * declare const backend: Backend;
 * declare const plan: NeutralPlan;
 * const r = await runPlan(backend, plan, { scope: "virtwork", timeoutSeconds: 600, resultsAfterMs: 60_000 });
 * for (const vm of r.vms) console.log(vm.name, vm.ready, vm.result?.metrics);
 * ```
 * @module
 */
import type { Backend, BackendEvent, CreatedObject, NeutralPlan, TargetKind } from "./backend.ts";
import type { EventLevel, EventSink, VirtworkEvent } from "./events.ts";
import type { ResultSample } from "./results.ts";
import { LatencyRecorder, phasesOf, type VmLatency } from "./latency.ts";
import { storedPhases } from "./report.ts";

/** How a run behaves. */
export interface RunPlanOptions {
  /** Where the VMs go, for the records: the namespace, or the libvirt URI. */
  scope: string;
  /** Wait for readiness (default true). */
  wait?: boolean;
  /** Seconds to wait for every VM to become ready. */
  timeoutSeconds: number;
  /** After the VMs are ready, read their results for this long (default: not at all). */
  resultsAfterMs?: number;
  /** Aborting stops the run; the result says what exists. */
  signal?: AbortSignal;
  /** Receives what happens (a subscriber that throws is reported as progress, never fatal). */
  onEvent?: EventSink;
  /** Progress messages for verbose output. */
  onProgress?: (message: string) => void;
  /**
   * Every event the backend reports, as it reports it (with its `at` and `serverTime`): for a
   * latency recorder. Synchronous; a throw is reported as progress.
   */
  onBackendEvent?: (e: BackendEvent) => void;
  /**
   * How late the backend may learn of a phase, ms: 0 (default) when it watches or gets events,
   * its poll interval when it polls. Tells the latency recorder which clock to trust.
   */
  clientResolutionMs?: number;
  /** Context of the run's start record; never credentials. */
  context?: {
    /** Effective settings. */
    config?: Readonly<Record<string, unknown>>;
    /** Settings of each workload, by name. */
    workloads?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
    /** Whether a password or SSH keys were configured (default: some VM carries them). */
    sshAuthConfigured?: boolean;
  };
}

/** What became of one VM. */
export interface VmRunOutcome {
  /** VM name. */
  name: string;
  /** Workload name. */
  workload: string;
  /** Role. */
  role: string;
  /** What became of its create. */
  outcome: CreatedObject["outcome"];
  /** The last phase reached (`-` when not waited for, `Pending` before any). */
  phase: string;
  /** Seconds from creation to each phase reached. */
  phases: Record<string, number>;
  /** Whether it became ready. */
  ready: boolean;
  /** Whether it failed while waited for. */
  failed?: boolean;
  /** Seconds from creation to ready. */
  secondsToReady?: number;
  /** Why it failed or is not ready. */
  error?: string;
  /** The latest sample its guest reported, when results were collected. */
  result?: ResultSample;
}

/** The outcome of a run. */
export interface PlanRunResult {
  /** Run id. */
  runId: string;
  /** Platform. */
  target: TargetKind;
  /** API server URL or libvirt URI. */
  location: string;
  /** Namespace or libvirt URI (as given). */
  scope: string;
  /** Every object the backend reported, in its order (VMs included). */
  objects: CreatedObject[];
  /** The VMs, in plan order. */
  vms: VmRunOutcome[];
  /** Whether readiness was waited for. */
  waited: boolean;
  /** Whether results were collected. */
  resultsCollected: boolean;
  /** True after an interrupt. */
  interrupted: boolean;
  /** True when some VM was not ready by the timeout. */
  timedOut: boolean;
  /** VMs that failed while waited for. */
  failedVms: number;
  /** Wall time of the run. */
  elapsedSeconds: number;
  /**
   * Why the backend's create ended early (an interrupt or a failure); what it reported created
   * may since have been rolled back by it (the libvirt backend undoes its whole call).
   */
  createError?: string;
  /** Each created VM's phase latencies (ms from its creation request, with their sources). */
  latency: VmLatency[];
  /** Phases the target measures in this run, in order (FirstResult when results were read). */
  latencyPhases: string[];
  /** How late the backend could learn of a phase, ms. */
  clientResolutionMs: number;
}

/** A run stopped by an error; `result` tells what had been reported by then. */
export class PlanRunError extends Error {
  /** The partial result. */
  readonly result: PlanRunResult;
  /** Wraps the error that stopped the run. */
  constructor(cause: Error, result: PlanRunResult) {
    super(cause.message, { cause });
    this.name = "PlanRunError";
    this.result = result;
  }
}

/** The kind a VM has in events' `object` (`VirtualMachine/x`, `domain/x`). */
export const VM_KIND: Readonly<Record<TargetKind, string>> = {
  kubevirt: "VirtualMachine",
  libvirt: "domain",
};

/**
 * Why a finished run is not a success: failed VMs, VMs not ready by the timeout, workloads whose
 * guest reported that they cannot run.
 */
export function runProblems(r: PlanRunResult, timeoutSeconds: number): string[] {
  const notReady = r.vms.filter((v) => !v.ready && !v.failed && isKept(v.outcome)).length;
  const out: string[] = [];
  if (r.failedVms > 0) {
    out.push(
      `${r.failedVms} of ${r.vms.length} VMs failed: ${
        r.vms.filter((v) => v.failed).map((v) => `${v.name} (${v.phase})`).join(", ")
      }`,
    );
  }
  if (r.timedOut) out.push(`${notReady} of ${r.vms.length} VMs not ready after ${timeoutSeconds}s`);
  const broken = r.vms.filter((v) => v.result?.error !== undefined);
  if (broken.length > 0) {
    out.push(
      `${broken.length} of ${r.vms.length} workloads cannot run: ${
        broken.map((v) => `${v.name} (${v.result!.error})`).join(", ")
      }`,
    );
  }
  return out;
}

function isKept(o: CreatedObject["outcome"]): boolean {
  return o === "created" || o === "exists";
}

/**
 * Runs `plan` on `backend`: create, wait (unless `wait: false`), collect results (when
 * `resultsAfterMs` is given and some VM is ready), and records each VM's end and the run's.
 *
 * @throws {PlanRunError} when creating or waiting fails with an error (not an interrupt)
 */
export async function runPlan(
  backend: Backend,
  plan: NeutralPlan,
  opts: RunPlanOptions,
): Promise<PlanRunResult> {
  const started = performance.now();
  const progress = opts.onProgress ?? (() => {});
  const runId = plan.runId;
  const vmKind = VM_KIND[backend.target];
  const result: PlanRunResult = {
    runId,
    target: backend.target,
    location: backend.location,
    scope: opts.scope,
    objects: [],
    vms: plan.vms.map((v) => ({
      name: v.name,
      workload: v.workload,
      role: v.role,
      outcome: "skipped",
      phase: "-",
      phases: {},
      ready: false,
    })),
    waited: false,
    resultsCollected: false,
    interrupted: false,
    timedOut: false,
    failedVms: 0,
    elapsedSeconds: 0,
    latency: [],
    latencyPhases: [],
    clientResolutionMs: opts.clientResolutionMs ?? 0,
  };
  const byName = new Map(result.vms.map((v) => [v.name, v]));
  const latency = new LatencyRecorder(backend.target, {
    clientResolutionMs: result.clientResolutionMs,
  });
  const createdAt = new Map<string, number>();

  // Backends report synchronously; the subscribers may be slow: one queue keeps their order.
  let queue: Promise<void> = Promise.resolve();
  const emit = (e: VirtworkEvent) => {
    queue = queue.then(async () => {
      try {
        await opts.onEvent?.(e);
      } catch (err) {
        progress(`audit: ${(err as Error).message}`);
      }
    });
  };
  const flush = () => queue;
  const note = (level: EventLevel, reason: string, message: string, object?: string) =>
    emit({
      type: "note",
      runId,
      level,
      reason,
      message,
      ...(object !== undefined ? { object } : {}),
    });
  const onEvent = (e: BackendEvent) => {
    latency.record(e);
    try {
      opts.onBackendEvent?.(e);
    } catch (err) {
      progress(`backend event subscriber: ${(err as Error).message}`);
    }
    const vm = "vm" in e ? byName.get(e.vm) : undefined;
    switch (e.type) {
      case "created":
        if (!vm) return;
        vm.outcome = e.outcome;
        createdAt.set(e.vm, e.at);
        emit({ type: "vmCreated", runId, name: e.vm, outcome: e.outcome });
        emit({ type: "objectCreated", runId, kind: vmKind, name: e.vm, outcome: e.outcome });
        return;
      case "object": {
        const target = e.kind === vmKind ? byName.get(e.name) : undefined;
        if (target && e.outcome === "failed") {
          target.outcome = "failed";
          if (e.error !== undefined) target.error = e.error;
        }
        emit({
          type: "objectCreated",
          runId,
          kind: e.kind,
          name: e.name,
          outcome: e.outcome,
          ...(e.error !== undefined ? { error: e.error } : {}),
        });
        return;
      }
      case "note":
        note(e.level, e.reason, e.message, e.object);
        return;
      case "phase": {
        if (!vm) return;
        const seconds = (e.at - (createdAt.get(e.vm) ?? e.at)) / 1000;
        vm.phase = e.phase;
        vm.phases[e.phase] ??= seconds;
        emit({ type: "vmPhase", runId, name: e.vm, phase: e.phase, seconds });
        return;
      }
      case "ready": {
        if (!vm || vm.ready) return;
        vm.ready = true;
        vm.secondsToReady = (e.at - (createdAt.get(e.vm) ?? e.at)) / 1000;
        emit({ type: "vmReady", runId, name: e.vm, seconds: vm.secondsToReady });
        return;
      }
      case "failed":
        if (!vm || vm.failed) return;
        vm.failed = true;
        vm.error = `failed: ${e.message}`;
        result.failedVms++;
        emit({ type: "vmFailed", runId, name: e.vm, message: e.message });
        return;
      case "result":
        if (!vm) return;
        vm.result = e.sample;
        emit({ type: "result", runId, name: e.vm, sample: e.sample });
        return;
    }
  };
  const call = { onEvent, ...(opts.signal ? { signal: opts.signal } : {}) };
  const fail = async (e: unknown): Promise<never> => {
    result.elapsedSeconds = (performance.now() - started) / 1000;
    const err = e instanceof Error ? e : new Error(String(e));
    note("error", "RunFailed", err.message);
    emit({
      type: "runFinished",
      runId,
      ok: false,
      interrupted: result.interrupted,
      error: err.message,
    });
    await flush();
    throw new PlanRunError(err, result);
  };

  const names = [...new Set(plan.vms.map((v) => v.workload))];
  emit({
    type: "runStarted",
    runId,
    target: backend.target,
    scope: opts.scope,
    location: backend.location,
    workloads: names.map((name) => {
      const config = opts.context?.workloads?.[name];
      return {
        name,
        vmCount: plan.vms.filter((v) => v.workload === name).length,
        ...(config ? { config } : {}),
      };
    }),
    vmCount: plan.vms.length,
    dryRun: false,
    sshAuthConfigured: opts.context?.sshAuthConfigured ??
      plan.vms.some((v) => v.carriesCredentials),
    ...(opts.context?.config ? { config: opts.context.config } : {}),
  });

  // Create.
  try {
    result.objects = await backend.create(plan, call);
    for (const o of result.objects) {
      const vm = o.kind === vmKind ? byName.get(o.name) : undefined;
      if (!vm) continue;
      vm.outcome = o.outcome;
      if (o.error !== undefined) vm.error = o.error;
    }
  } catch (e) {
    result.createError = (e as Error).message ?? String(e);
    if (!opts.signal?.aborted) await fail(e);
    progress(`create interrupted: ${result.createError}`);
  }
  if (opts.signal?.aborted) result.interrupted = true;

  // Wait.
  const kept = result.vms.filter((v) => isKept(v.outcome)).map((v) => v.name);
  if (opts.wait !== false && !result.interrupted && kept.length > 0) {
    result.waited = true;
    // A backend that follows phases from the create on may have reported some already.
    for (const n of kept) {
      const v = byName.get(n)!;
      if (v.phase === "-") v.phase = "Pending";
    }
    try {
      const pending = await backend.waitReady(kept, opts.timeoutSeconds * 1000, call);
      for (const n of pending) {
        const v = byName.get(n);
        if (!v || v.ready || v.failed) continue;
        result.timedOut = true;
        v.error = `not ready after ${opts.timeoutSeconds}s (phase ${v.phase})`;
        note("warning", "Timeout", v.error, `${vmKind}/${n}`);
      }
    } catch (e) {
      if (!opts.signal?.aborted) await fail(e);
    }
    if (opts.signal?.aborted) result.interrupted = true;
  }

  // Results.
  const ready = result.vms.filter((v) => v.ready).map((v) => v.name);
  if (opts.resultsAfterMs !== undefined && !result.interrupted && ready.length > 0) {
    progress(`reading results of ${ready.length} VMs for ${opts.resultsAfterMs / 1000}s`);
    try {
      const samples = await backend.collectResults(ready, opts.resultsAfterMs, call);
      for (const [name, s] of samples) {
        const v = byName.get(name);
        if (v) v.result = s;
      }
      result.resultsCollected = true;
    } catch (e) {
      if (!opts.signal?.aborted) {
        note("warning", "ResultsFailed", `reading results failed: ${(e as Error).message}`);
      }
    }
    if (opts.signal?.aborted) result.interrupted = true;
  }

  if (result.interrupted) note("warning", "Interrupted", "run interrupted");
  result.latency = latency.vms();
  result.latencyPhases = phasesOf(backend.target).filter((p) =>
    p !== "FirstResult" || result.resultsCollected
  );
  const samples = new Map(result.latency.map((l) => [l.name, storedPhases(l)]));
  for (const v of result.vms) {
    emit({
      type: "vmFinished",
      runId,
      name: v.name,
      workload: v.workload,
      role: v.role,
      phase: v.phase,
      ready: v.ready,
      ...(v.secondsToReady !== undefined ? { secondsToReady: v.secondsToReady } : {}),
      ...(v.error !== undefined ? { error: v.error } : {}),
      ...(result.resultsCollected && v.ready ? { results: v.result?.metrics ?? {} } : {}),
      ...(v.result?.error !== undefined ? { resultError: v.result.error } : {}),
      ...(samples.has(v.name) ? { phaseSamples: samples.get(v.name)! } : {}),
    });
  }
  result.elapsedSeconds = (performance.now() - started) / 1000;
  const problems = runProblems(result, opts.timeoutSeconds);
  emit({
    type: "runFinished",
    runId,
    ok: problems.length === 0 && !result.interrupted,
    interrupted: result.interrupted,
    ...(problems.length > 0 ? { error: problems.join("; ") } : {}),
    latency: {
      targetKind: backend.target,
      phases: result.latencyPhases,
      clientResolutionMs: result.clientResolutionMs,
    },
  });
  await flush();
  return result;
}

/** What {@linkcode cleanupRun} did. */
export interface CleanupRunResult {
  /** Id of the cleanup (its audit entry). */
  cleanupId: string;
  /** Namespace or libvirt URI cleaned. */
  scope: string;
  /** Run id it was narrowed to. */
  runId?: string;
  /** Objects removed, by kind. */
  deleted: Record<string, number>;
  /** Run ids found on what was removed. */
  runIds: string[];
  /** Failures. */
  errors: { kind: string; name: string; message: string }[];
  /** True after an interrupt. */
  interrupted: boolean;
}

/** Options of {@linkcode cleanupRun}. */
export interface CleanupRunOptions {
  /** Namespace or libvirt URI, for the records. */
  scope: string;
  /** Only this run's objects. */
  runId?: string;
  /** Aborts the cleanup (what is removed stays removed). */
  signal?: AbortSignal;
  /** Receives cleanupStarted and cleaned. */
  onEvent?: EventSink;
  /** Id of the cleanup (default: a new UUID). */
  cleanupId?: string;
}

/**
 * Removes what virtwork made on `backend` (of one run, with `runId`), recording the cleanup's
 * start and end. Never throws for one object: failures are listed.
 */
export async function cleanupRun(
  backend: Backend,
  o: CleanupRunOptions,
): Promise<CleanupRunResult> {
  const cleanupId = o.cleanupId ?? crypto.randomUUID();
  const emit = async (e: VirtworkEvent) => {
    try {
      await o.onEvent?.(e);
    } catch { /* the audit trail is best effort */ }
  };
  await emit({
    type: "cleanupStarted",
    cleanupId,
    scope: o.scope,
    ...(o.runId !== undefined ? { runId: o.runId } : {}),
    location: backend.location,
  });
  let interrupted = false;
  let r;
  try {
    r = await backend.cleanup(o.runId, o.signal ? { signal: o.signal } : {});
  } catch (e) {
    interrupted = o.signal?.aborted ?? false;
    r = {
      deleted: {},
      runIds: [],
      errors: [{ kind: "cleanup", name: "*", message: (e as Error).message }],
    };
  }
  const result: CleanupRunResult = {
    cleanupId,
    scope: o.scope,
    ...(o.runId !== undefined ? { runId: o.runId } : {}),
    deleted: { ...r.deleted },
    runIds: [...r.runIds].sort(),
    errors: [...r.errors],
    interrupted: interrupted || (o.signal?.aborted ?? false),
  };
  await emit({
    type: "cleaned",
    cleanupId,
    scope: o.scope,
    ...(o.runId !== undefined ? { runId: o.runId } : {}),
    linkedRunIds: result.runIds,
    deleted: result.deleted,
    scopeDeleted: false,
    errors: result.errors.map((e) => `${e.kind} ${e.name}: ${e.message}`),
    interrupted: result.interrupted,
  });
  return result;
}
