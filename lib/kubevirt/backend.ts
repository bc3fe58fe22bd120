/**
 * virtwork's {@linkcode Backend} for KubeVirt clusters: renders a neutral plan into the Namespace,
 * Secrets, Services and VirtualMachines of {@linkcode renderRunPlan}, creates them with the
 * create half of {@linkcode executeRun} (preflight, Services first, a pool of workers, rollback
 * of what was in flight at an interrupt), follows the VMIs until Ready or failed, reads the
 * guests' result lines from the VMI console, and cleans up by label.
 *
 * @example
 * ```ts
 * import { openKubevirtBackend } from "./backend.ts";
 * import { connect } from "./client.ts";
 * const { client } = connect();
 * const backend = openKubevirtBackend(client, {
 *   namespace: "virtwork",
 *   containerDiskImage: "quay.io/containerdisks/fedora:41",
 *   pollIntervalSeconds: 15,
 * });
 * ```
 * @module
 */
import type {
  Backend,
  BackendCallOptions,
  BackendCleanup,
  BackendEvent,
  CreatedObject,
  NeutralPlan,
} from "../virtwork/backend.ts";
import type { EventSink } from "../virtwork/events.ts";
import type { PlanSkeleton } from "../virtwork/plan.ts";
import type { ResultSample } from "../virtwork/results.ts";
import { cleanup, type CleanupOptions, type CleanupResult } from "./cleanup.ts";
import type { ClusterApi } from "./client.ts";
import type { KubeObject } from "./manifests.ts";
import { kubePeerAddresses, planObjects, renderRunPlan, type RunPlan } from "./plan.ts";
import { managedSelector } from "./constants.ts";
import { ReadinessWatch } from "./readiness.ts";
import { createRunObjects, newRunResult, type RunResult, waitForReady } from "./run.ts";
import type { WatchApi } from "./watch.ts";

/**
 * Reads the result lines of one VMI's serial console for `durationMs` (the console subresource).
 * `lib/kubevirt/console.ts`'s `readConsoleResults` has this shape.
 */
export type ConsoleResultReader = (
  api: ClusterApi,
  namespace: string,
  vmiName: string,
  durationMs: number,
  o: { signal?: AbortSignal },
) => Promise<ResultSample[]>;

/** Options of {@linkcode openKubevirtBackend}. */
export interface KubevirtBackendOptions {
  /** Namespace of every object. */
  namespace: string;
  /** OS container disk image of every VM. */
  containerDiskImage: string;
  /** Seconds between readiness polls (fractions allowed), when not watching. */
  pollIntervalSeconds: number;
  /**
   * Follows readiness through watches of the run's VMIs and VMs (one list and one watch per
   * kind, resumed and relisted as needed) instead of polling: phases arrive as they happen, with
   * the server's timestamps, and the wait ends at the last VM. Absent: polls. The watches start
   * as soon as the Namespace exists, before the VMs are created, so a VM made early in a long
   * (rate-limited) create is followed from its start; they end with the wait, an interrupted
   * create, or {@linkcode Backend.close}.
   */
  watch?: WatchApi;
  /** VM creations in flight at once (default 20). */
  concurrency?: number;
  /** Seconds to spend after an interrupt undoing creates in flight (default 10). */
  rollbackTimeoutSeconds?: number;
  /** Progress messages for verbose output. */
  onProgress?: (message: string) => void;
  /** Reads a VMI's console (default: `readConsoleResults` of `console.ts`). */
  readConsole?: ConsoleResultReader;
  /** Cleanup settings beyond the run id (delete the namespace, wait until gone). */
  cleanup?: Omit<CleanupOptions, "namespace" | "runId" | "signal" | "record">;
  /** Receives the cleanup's per-object records (the audit trail's deletions). */
  cleanupRecord?: EventSink;
  /** A plan already rendered (`executeRun`'s): create() takes it as it is. */
  prebuilt?: RunPlan;
}

/** The KubeVirt backend, with what it adds to the contract. */
export interface KubevirtBackend extends Backend {
  /** The objects of the plan, as `--dry-run` prints them. */
  render(plan: NeutralPlan): KubeObject[];
  /** The KubeVirt plan of the last {@linkcode Backend.create}. */
  readonly runPlan: RunPlan | undefined;
  /** What became of each object of the last create (namespace, Services, Secrets, VMs). */
  readonly runResult: RunResult | undefined;
  /** The full outcome of the last cleanup. */
  readonly cleanupResult: CleanupResult | undefined;
}

/** A KubeVirt backend on `api` (its `server`, when it has one, is the backend's location). */
export function openKubevirtBackend(
  api: ClusterApi & { readonly server?: string },
  o: KubevirtBackendOptions,
): KubevirtBackend {
  return new ClusterBackend(api, o);
}

class ClusterBackend implements KubevirtBackend {
  readonly target = "kubevirt" as const;
  readonly location: string;
  runPlan: RunPlan | undefined;
  runResult: RunResult | undefined;
  cleanupResult: CleanupResult | undefined;
  #api: ClusterApi;
  #o: KubevirtBackendOptions;
  #created = new Map<string, number>();
  /** The readiness watch of the last create, while it runs. */
  #readiness: ReadinessWatch | undefined;
  /** Where the readiness watch's events go (the current call's subscriber). */
  #emitReadiness: (e: BackendEvent) => void = () => {};
  /** VMs whose `created` was reported: their readiness events pass; others' wait here. */
  #announced = new Set<string>();
  #held = new Map<string, BackendEvent[]>();
  /** The last create's VMs by name. */
  #vmByName = new Map<string, RunResult["vms"][number]>();

  constructor(api: ClusterApi & { readonly server?: string }, o: KubevirtBackendOptions) {
    this.#api = api;
    this.#o = o;
    this.location = api.server ?? "";
  }

  /** Each VM a peer connects to is reached by its workload's Service DNS name. */
  peerAddresses(plan: PlanSkeleton): Promise<Map<string, string>> {
    return Promise.resolve(kubePeerAddresses(plan, this.#o.namespace));
  }

  render(plan: NeutralPlan): KubeObject[] {
    return planObjects(this.#render(plan));
  }

  #render(plan: NeutralPlan): RunPlan {
    return renderRunPlan(plan, {
      namespace: this.#o.namespace,
      containerDiskImage: this.#o.containerDiskImage,
    });
  }

  async create(plan: NeutralPlan, c: BackendCallOptions = {}): Promise<CreatedObject[]> {
    const kp = this.#o.prebuilt ?? this.#render(plan);
    const result = newRunResult(kp);
    this.runPlan = kp;
    this.runResult = result;
    this.#created = new Map();
    await this.#stopReadiness();
    this.#announced = new Set();
    this.#held = new Map();
    this.#vmByName = new Map(result.vms.map((v) => [v.name, v]));
    const emit = c.onEvent ?? (() => {});
    this.#emitReadiness = emit;
    try {
      await this.#create(kp, result, emit, c);
    } catch (e) {
      await this.#stopReadiness();
      throw e;
    }
    // Interrupted: nothing will be waited for.
    if (c.signal?.aborted) await this.#stopReadiness();
    return objectsOf(result);
  }

  async #create(
    kp: RunPlan,
    result: RunResult,
    emit: (e: BackendEvent) => void,
    c: BackendCallOptions,
  ): Promise<void> {
    const watch = this.#o.watch;
    await createRunObjects(this.#api, kp, result, this.#created, {
      ...(c.signal ? { signal: c.signal } : {}),
      ...(this.#o.concurrency !== undefined ? { concurrency: this.#o.concurrency } : {}),
      ...(this.#o.rollbackTimeoutSeconds !== undefined
        ? { rollbackTimeoutSeconds: this.#o.rollbackTimeoutSeconds }
        : {}),
      ...(this.#o.onProgress ? { onProgress: this.#o.onProgress } : {}),
      ...(watch
        ? {
          onNamespaceReady: () => {
            this.#readiness = this.#startReadiness(watch, result, kp.vms.map((v) => v.name));
          },
        }
        : {}),
      onVmCreated: (vm, outcome, serverTime, sentAt) => {
        emit({
          type: "created",
          vm,
          outcome,
          at: sentAt,
          ...(serverTime !== undefined ? { serverTime } : {}),
        });
        // What the watch saw of it before its create was answered follows its `created`.
        this.#announced.add(vm);
        const held = this.#held.get(vm);
        this.#held.delete(vm);
        for (const e of held ?? []) this.#applyReadiness(result, e);
      },
      record: (e) => {
        const at = performance.now();
        if (e.type === "objectCreated") {
          // A VM's creation comes as `created`; its failure and every other object as `object`.
          if (e.kind === "VirtualMachine" && e.outcome !== "failed") return;
          emit({
            type: "object",
            kind: e.kind,
            name: e.name,
            outcome: e.outcome,
            ...(e.error !== undefined ? { error: e.error } : {}),
            at,
          });
        } else if (e.type === "note") {
          emit({
            type: "note",
            level: e.level,
            reason: e.reason,
            message: e.message,
            ...(e.object !== undefined ? { object: e.object } : {}),
            at,
          });
        }
      },
    });
  }

  /** Starts following the readiness of `names` in `result`'s namespace. */
  #startReadiness(watch: WatchApi, result: RunResult, names: string[]): ReadinessWatch {
    const progress = this.#o.onProgress ?? (() => {});
    return new ReadinessWatch(watch, result.namespace, managedSelector(result.runId), names, {
      onRetry: (e) => progress(`watch: ${e.message}; retrying`),
      onEvent: (e) => {
        const vm = "vm" in e ? e.vm : undefined;
        if (vm !== undefined && !this.#announced.has(vm)) {
          // At most a VM's few phases, until its create is answered.
          const held = this.#held.get(vm) ?? [];
          if (held.length < 64) held.push(e);
          this.#held.set(vm, held);
          return;
        }
        this.#applyReadiness(result, e);
      },
    });
  }

  /** Keeps `result` as the polling wait does, and passes the event on. */
  #applyReadiness(result: RunResult, e: BackendEvent): void {
    const progress = this.#o.onProgress ?? (() => {});
    const v = "vm" in e ? this.#vmByName.get(e.vm) : undefined;
    if (v && e.type === "phase" && e.phase !== "VMICreated" && e.phase !== "AgentConnected") {
      v.phase = e.phase;
    } else if (v && e.type === "ready") {
      v.ready = true;
      v.secondsToReady = (e.at - (this.#created.get(v.name) ?? e.at)) / 1000;
      progress(`VM ${v.name}: ready after ${v.secondsToReady.toFixed(1)}s`);
    } else if (v && e.type === "failed") {
      v.failed = true;
      v.error = `failed: ${e.message}`;
      result.failedVms++;
      progress(`VM ${v.name}: ${v.error}`);
    }
    this.#emitReadiness(e);
  }

  async #stopReadiness(): Promise<void> {
    const r = this.#readiness;
    this.#readiness = undefined;
    await r?.stop();
  }

  async waitReady(
    vms: string[],
    timeoutMs: number,
    c: BackendCallOptions = {},
  ): Promise<string[]> {
    const kp = this.runPlan;
    const result = this.runResult;
    if (!kp || !result) throw new TypeError("waitReady() before create()");
    const emit: (e: BackendEvent) => void = c.onEvent ?? (() => {});
    const only = new Set(vms);
    result.waited = true;
    if (this.#o.watch) return await this.#watchReady(this.#o.watch, result, only, timeoutMs, c);
    try {
      await waitForReady(
        this.#api,
        kp,
        result,
        this.#created,
        {
          timeoutSeconds: timeoutMs / 1000,
          pollIntervalSeconds: this.#o.pollIntervalSeconds,
          ...(c.signal ? { signal: c.signal } : {}),
        },
        this.#o.onProgress ?? (() => {}),
        {
          phase: (vm, phase) => emit({ type: "phase", vm, phase, at: performance.now() }),
          ready: (vm) => emit({ type: "ready", vm, at: performance.now() }),
          failed: (vm, message) => {
            const phase = result.vms.find((v) => v.name === vm)?.phase;
            if (phase) emit({ type: "phase", vm, phase, at: performance.now() });
            emit({ type: "failed", vm, message, at: performance.now() });
          },
        },
        only,
      );
    } catch (e) {
      if (c.signal?.aborted) result.interrupted = true;
      throw e;
    }
    if (c.signal?.aborted) result.interrupted = true;
    return result.vms.filter((v) => only.has(v.name) && !v.ready && !v.failed).map((v) => v.name);
  }

  /** {@linkcode waitReady} through watches: keeps `result` as the polling wait does. */
  async #watchReady(
    watch: WatchApi,
    result: RunResult,
    only: ReadonlySet<string>,
    timeoutMs: number,
    c: BackendCallOptions,
  ): Promise<string[]> {
    const names = result.vms
      .filter((v) => only.has(v.name) && (v.outcome === "created" || v.outcome === "exists"))
      .map((v) => v.name);
    for (const n of names) {
      const v = this.#vmByName.get(n)!;
      if (v.phase === "-") v.phase = "Pending";
    }
    this.#emitReadiness = c.onEvent ?? (() => {});
    // Started with the create; a backend that did not create through it (or a create that
    // found no namespace to watch yet) starts it now, for these VMs.
    if (!this.#readiness) {
      for (const n of names) this.#announced.add(n);
      this.#readiness = this.#startReadiness(watch, result, names);
    }
    const readiness = this.#readiness;
    let pending: string[];
    try {
      pending = await readiness.wait(names, timeoutMs, c.signal);
    } catch (e) {
      if (c.signal?.aborted) result.interrupted = true;
      throw e;
    } finally {
      await this.#stopReadiness();
    }
    if (c.signal?.aborted) {
      result.interrupted = true;
      return pending;
    }
    for (const n of pending) {
      const v = this.#vmByName.get(n)!;
      result.timedOut = true;
      v.error = `not ready after ${timeoutMs / 1000}s (phase ${v.phase})`;
    }
    return pending;
  }

  async collectResults(
    vms: string[],
    durationMs: number,
    c: BackendCallOptions = {},
  ): Promise<Map<string, ResultSample>> {
    const out = new Map<string, ResultSample>();
    // The console's websocket code loads only when results are read.
    const read = this.#o.readConsole ?? (await import("./console.ts")).readConsoleResults;
    await Promise.all(vms.map(async (vm) => {
      let samples: ResultSample[];
      try {
        samples = await read(this.#api, this.#o.namespace, vm, durationMs, {
          ...(c.signal ? { signal: c.signal } : {}),
        });
      } catch (e) {
        if (c.signal?.aborted) return;
        c.onEvent?.({
          type: "note",
          level: "warning",
          reason: "ResultsUnreadable",
          object: `VirtualMachineInstance/${vm}`,
          message: `reading the console failed: ${(e as Error).message}`,
          at: performance.now(),
        });
        return;
      }
      for (const s of samples) {
        c.onEvent?.({ type: "result", vm, sample: s, at: performance.now() });
      }
      const latest = samples[samples.length - 1];
      if (latest) out.set(vm, latest);
    }));
    c.signal?.throwIfAborted();
    return out;
  }

  async cleanup(runId: string | undefined, c: BackendCallOptions = {}): Promise<BackendCleanup> {
    const r = await cleanup(this.#api, {
      ...this.#o.cleanup,
      namespace: this.#o.namespace,
      ...(runId !== undefined ? { runId } : {}),
      ...(c.signal ? { signal: c.signal } : {}),
      ...(this.#o.cleanupRecord ? { record: this.#o.cleanupRecord } : {}),
    });
    this.cleanupResult = r;
    return {
      deleted: {
        VirtualMachine: r.deleted.virtualmachines,
        Service: r.deleted.services,
        Secret: r.deleted.secrets,
        ...(r.namespaceDeleted ? { Namespace: 1 } : {}),
      },
      runIds: r.runIds,
      errors: r.errors,
    };
  }

  /** Ends a readiness watch still running (a create that was not waited for). */
  async close(): Promise<void> {
    await this.#stopReadiness();
  }
}

/** Every object of a run result, Namespace first, in the backend's terms. */
function objectsOf(r: RunResult): CreatedObject[] {
  return [
    { kind: "Namespace", name: r.namespace, outcome: r.namespaceOutcome },
    ...r.services.map((s) => ({ kind: "Service", name: s.name, outcome: s.outcome })),
    ...r.secrets.map((s) => ({ kind: "Secret", name: s.name, outcome: s.outcome })),
    ...r.vms.map((v) => ({
      kind: "VirtualMachine",
      name: v.name,
      outcome: v.outcome,
      ...(v.error !== undefined ? { error: v.error } : {}),
    })),
  ];
}
