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
  const pending = new Set(names);
  const reported = new Map<string, Set<string>>(names.map((n) => [n, new Set()]));
  const vmis = new Map<string, ApiObject>();
  const vms = new Map<string, ApiObject>();
  const ac = new AbortController();
  const stopOuter = () => ac.abort();
  o.signal?.addEventListener("abort", stopOuter, { once: true });
  if (o.signal?.aborted) ac.abort();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const finishIfDone = () => {
    if (pending.size === 0) ac.abort();
  };
  const phase = (vm: string, p: string, serverTime: string | undefined) => {
    const seen = reported.get(vm);
    if (!seen || seen.has(p)) return;
    seen.add(p);
    o.onEvent({
      type: "phase",
      vm,
      phase: p,
      at: performance.now(),
      ...(serverTime !== undefined ? { serverTime } : {}),
    });
  };
  const judge = (name: string) => {
    if (!pending.has(name)) return;
    const vmi = vmis.get(name);
    const vm = vms.get(name);
    const failure = vmFailure(vmi, vm);
    if (failure) {
      pending.delete(name);
      // The phase it failed in (`Failed`, `ErrorUnschedulable`, ...) first, as the summary shows it.
      phase(name, failure.phase, undefined);
      o.onEvent({ type: "failed", vm: name, message: failure.message, at: performance.now() });
      finishIfDone();
      return;
    }
    const vmReady = condition(vm, "Ready");
    if (vmReady?.status === "True" || vmiReady(vmi)) {
      const t = vmReady?.status === "True"
        ? text(vmReady.lastTransitionTime)
        : text(condition(vmi, "Ready")?.lastTransitionTime);
      pending.delete(name);
      o.onEvent({
        type: "ready",
        vm: name,
        at: performance.now(),
        ...(t !== undefined ? { serverTime: t } : {}),
      });
      finishIfDone();
    }
  };
  const onVmi = (type: string, vmi: ApiObject) => {
    const name = vmi.metadata.name;
    if (!reported.has(name)) return;
    if (type === "DELETED") {
      vmis.delete(name);
      return;
    }
    vmis.set(name, vmi);
    phase(
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
          phase(name, s.phase, text(s.phaseTransitionTimestamp));
        }
      }
    }
    if (p && VMI_PHASES.has(p)) phase(name, p, undefined);
    const agent = condition(vmi, "AgentConnected");
    if (agent?.status === "True") phase(name, "AgentConnected", text(agent.lastTransitionTime));
    judge(name);
  };
  const onVm = (type: string, vm: ApiObject) => {
    const name = vm.metadata.name;
    if (!reported.has(name)) return;
    if (type === "DELETED") vms.delete(name);
    else vms.set(name, vm);
    judge(name);
  };
  try {
    if (pending.size > 0 && !ac.signal.aborted) {
      await Promise.all([
        followKind(api, "virtualmachineinstances", namespace, labelSelector, {
          signal: ac.signal,
          onEvent: onVmi,
          ...(o.stats ? { stats: o.stats.vmis } : {}),
          ...(o.onRetry ? { onRetry: o.onRetry } : {}),
        }),
        followKind(api, "virtualmachines", namespace, labelSelector, {
          signal: ac.signal,
          onEvent: onVm,
          ...(o.stats ? { stats: o.stats.vms } : {}),
          ...(o.onRetry ? { onRetry: o.onRetry } : {}),
        }),
      ].map((p) =>
        p.catch((e) => {
          ac.abort();
          throw e;
        })
      ));
    }
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener("abort", stopOuter);
    ac.abort();
  }
  return names.filter((n) => pending.has(n));
}
