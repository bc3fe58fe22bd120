/**
 * Waiting for VMs to become ready by watching, not polling: one {@linkcode followKind} of the run's
 * VirtualMachineInstances and one of its VirtualMachines, each change turned into the backend's
 * `phase`, `ready` and `failed` events as it arrives, with the server's timestamp of the phase:
 *
 * - phase `VMICreated`: the VMI's `metadata.creationTimestamp`
 * - phases `Pending`, `Scheduling`, `Scheduled`, `Running` (KubeVirt's names, which the summary
 *   shows; the latency recorder measures them as `VMIPending`...): the VMI's `status.phase`, timed
 *   by its `status.phaseTransitionTimestamps` entry when KubeVirt wrote one
 * - `ready` (measured as `VMReady`): the VM's `Ready` condition (or, before the VM's status
 *   follows, the VMI's), timed by its `lastTransitionTime`
 * - phase `AgentConnected`: the VMI's `AgentConnected` condition, by its `lastTransitionTime`
 *
 * The wait ends as soon as every VM is ready or failed (or the timeout passes, or the signal
 * aborts), which ends both watches.
 *
 * @example
 * ```ts
 * import { watchReadiness } from "./readiness.ts";
 * import type { WatchApi } from "./watch.ts";
 * declare const api: WatchApi;
 * const pending = await watchReadiness(api, "virtwork", "virtwork/run-id=r1", ["vm-1"], 600_000, {
 *   onEvent: (e) => console.log(e),
 * });
 * ```
 * @module
 */
import type { BackendEvent } from "../virtwork/backend.ts";
import type { ApiObject } from "./client.ts";
import { vmFailure, vmiReady } from "./run.ts";
import { followKind, type FollowStats, type WatchApi } from "./watch.ts";

/** Options of {@linkcode watchReadiness}. */
export interface WatchReadinessOptions {
  /** Receives `phase`, `ready` and `failed` events (`at`: `performance.now()` of receipt). */
  onEvent: (e: BackendEvent) => void;
  /** Ends the wait; the VMs not ready are returned as pending. */
  signal?: AbortSignal;
  /** Counters of the VMI and VM watches. */
  stats?: { vmis: FollowStats; vms: FollowStats };
  /** Told of a watch retried after a failure. */
  onRetry?: (e: Error) => void;
}

interface Conditioned {
  type?: string;
  status?: string;
  lastTransitionTime?: string;
}

/** VMI phases reported, by KubeVirt's names (the latency recorder measures them as `VMI...`). */
const VMI_PHASES: ReadonlySet<string> = new Set(["Pending", "Scheduling", "Scheduled", "Running"]);

function condition(o: ApiObject | undefined, type: string): Conditioned | undefined {
  const cs = (o?.status?.conditions ?? []) as Conditioned[];
  return Array.isArray(cs) ? cs.find((c) => c?.type === type) : undefined;
}

function text(v: unknown): string | undefined {
  return typeof v === "string" && v.length <= 64 ? v : undefined;
}

/**
 * Watches until every VM of `names` is ready or failed, `timeoutMs` passes or the signal aborts;
 * resolves with the names still pending. A VMI that appears again (restarted, new uid) reports
 * no phase twice: the first sighting of each phase counts.
 */
export async function watchReadiness(
  api: WatchApi,
  namespace: string,
  labelSelector: string,
  names: readonly string[],
  timeoutMs: number,
  o: WatchReadinessOptions,
): Promise<string[]> {
  const w = new ReadinessWatch(api, namespace, labelSelector, names, o);
  try {
    return await w.wait(names, timeoutMs, o.signal);
  } finally {
    await w.stop();
  }
}

/** Options of {@linkcode ReadinessWatch}. */
export type ReadinessWatchOptions = Omit<WatchReadinessOptions, "signal">;

/**
 * The watches of {@linkcode watchReadiness}, started at once and kept until {@linkcode stop}: a
 * run starts them before it creates its VMs, so each phase is seen as it happens (a VM created
 * early in a long, rate-limited run is not first seen when the creating is over), and
 * {@linkcode wait}s for the VMs it made.
 */
export class ReadinessWatch {
  readonly #pending: Set<string>;
  readonly #reported: Map<string, Set<string>>;
  readonly #vmis = new Map<string, ApiObject>();
  readonly #vms = new Map<string, ApiObject>();
  readonly #ac = new AbortController();
  readonly #o: ReadinessWatchOptions;
  readonly #following: Promise<void>;
  #error: unknown;
  #failedFollowing = false;
  readonly #waiters = new Set<() => void>();

  /** Starts following the VMIs and VMs of `labelSelector` in `namespace` for `names`. */
  constructor(
    api: WatchApi,
    namespace: string,
    labelSelector: string,
    names: readonly string[],
    o: ReadinessWatchOptions,
  ) {
    this.#o = o;
    this.#pending = new Set(names);
    this.#reported = new Map(names.map((n) => [n, new Set()]));
    const follow = (resource: "virtualmachineinstances" | "virtualmachines") =>
      followKind(api, resource, namespace, labelSelector, {
        signal: this.#ac.signal,
        onEvent: resource === "virtualmachines"
          ? (t, obj) => this.#onVm(t, obj)
          : (t, obj) => this.#onVmi(t, obj),
        ...(o.stats ? { stats: resource === "virtualmachines" ? o.stats.vms : o.stats.vmis } : {}),
        ...(o.onRetry ? { onRetry: o.onRetry } : {}),
      }).catch((e) => {
        if (!this.#failedFollowing) {
          this.#failedFollowing = true;
          this.#error = e;
        }
        this.#ac.abort();
      });
    this.#following = this.#pending.size === 0
      ? Promise.resolve()
      : Promise.all([follow("virtualmachineinstances"), follow("virtualmachines")]).then(() => {
        this.#wake();
      });
  }

  /** Names not yet ready or failed. */
  get pending(): ReadonlySet<string> {
    return this.#pending;
  }

  /**
   * Resolves with those of `names` still pending once all of them are ready or failed,
   * `timeoutMs` passes or `signal` aborts.
   * @throws the watches' error when following failed for good
   */
  async wait(names: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<string[]> {
    const left = () => names.filter((n) => this.#pending.has(n));
    const settled = () => left().length === 0 || this.#ac.signal.aborted;
    if (!settled() && !signal?.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", done);
          this.#waiters.delete(check);
          resolve();
        };
        const check = () => {
          if (settled()) done();
        };
        const timer = setTimeout(done, timeoutMs);
        signal?.addEventListener("abort", done, { once: true });
        this.#waiters.add(check);
      });
    }
    if (this.#failedFollowing) throw this.#error;
    return left();
  }

  /** Ends both watches. */
  async stop(): Promise<void> {
    this.#ac.abort();
    await this.#following;
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  #phase(vm: string, p: string, serverTime: string | undefined): void {
    const seen = this.#reported.get(vm);
    if (!seen || seen.has(p)) return;
    seen.add(p);
    this.#o.onEvent({
      type: "phase",
      vm,
      phase: p,
      at: performance.now(),
      ...(serverTime !== undefined ? { serverTime } : {}),
    });
  }

  #judge(name: string): void {
    if (!this.#pending.has(name)) return;
    const vmi = this.#vmis.get(name);
    const vm = this.#vms.get(name);
    const failure = vmFailure(vmi, vm);
    if (failure) {
      this.#pending.delete(name);
      // The phase it failed in (`Failed`, `ErrorUnschedulable`, ...) first, as the summary shows it.
      this.#phase(name, failure.phase, undefined);
      this.#o.onEvent({
        type: "failed",
        vm: name,
        message: failure.message,
        at: performance.now(),
      });
      this.#wake();
      return;
    }
    const vmReady = condition(vm, "Ready");
    if (vmReady?.status === "True" || vmiReady(vmi)) {
      const t = vmReady?.status === "True"
        ? text(vmReady.lastTransitionTime)
        : text(condition(vmi, "Ready")?.lastTransitionTime);
      this.#pending.delete(name);
      this.#o.onEvent({
        type: "ready",
        vm: name,
        at: performance.now(),
        ...(t !== undefined ? { serverTime: t } : {}),
      });
      this.#wake();
    }
  }

  #onVmi(type: string, vmi: ApiObject): void {
    const name = vmi.metadata.name;
    if (!this.#reported.has(name)) return;
    if (type === "DELETED") {
      this.#vmis.delete(name);
      return;
    }
    this.#vmis.set(name, vmi);
    this.#phase(
      name,
      "VMICreated",
      text((vmi.metadata as { creationTimestamp?: unknown }).creationTimestamp),
    );
    const p = text(vmi.status?.phase);
    const stamps = (vmi.status?.phaseTransitionTimestamps ?? []) as {
      phase?: string;
      phaseTransitionTimestamp?: string;
    }[];
    // Phases KubeVirt passed through between two events still have their timestamps.
    if (Array.isArray(stamps)) {
      for (const s of stamps) {
        if (s?.phase && VMI_PHASES.has(s.phase)) {
          this.#phase(name, s.phase, text(s.phaseTransitionTimestamp));
        }
      }
    }
    if (p && VMI_PHASES.has(p)) this.#phase(name, p, undefined);
    const agent = condition(vmi, "AgentConnected");
    if (agent?.status === "True") {
      this.#phase(name, "AgentConnected", text(agent.lastTransitionTime));
    }
    this.#judge(name);
  }

  #onVm(type: string, vm: ApiObject): void {
    const name = vm.metadata.name;
    if (!this.#reported.has(name)) return;
    if (type === "DELETED") this.#vms.delete(name);
    else this.#vms.set(name, vm);
    this.#judge(name);
  }
}
