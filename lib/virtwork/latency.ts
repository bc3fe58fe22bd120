/**
 * Per-VM phase latencies of a virtwork run and their quantiles.
 *
 * A {@linkcode LatencyRecorder} is fed the backend's events (`created`, `phase`, `result`) and
 * keeps, for every VM and phase, the first time it was seen in two clocks:
 *
 * - the **client**: `performance.now()` when the event was received (monotonic, sub-millisecond,
 *   but late by however long the backend took to notice: a watch event's network delay, or up to a
 *   whole interval when the backend polls);
 * - the **server**: the timestamp the platform wrote (`metadata.creationTimestamp`, a condition's
 *   `lastTransitionTime`), which Kubernetes truncates to whole seconds.
 *
 * A latency is measured from the VM's creation request, in each clock against its own origin (the
 * client's `created` receipt, the server's creation timestamp of the VM), so the two clocks are
 * never mixed within one figure. For each figure the recorder takes the source with the finer
 * resolution (the client's unless the caller says it polls coarser than the server's precision),
 * and falls back to the other when the preferred one is inconsistent: a latency is never negative
 * and never earlier than the phase before it (see {@linkcode PHASE_ORDER}). When neither source
 * is consistent the figure is the predecessor's, marked `clamped`. Which source each figure came
 * from is kept beside it.
 *
 * Quantiles ({@linkcode quantile}) are computed exactly from the samples by linear interpolation
 * between the closest ranks: for sorted samples `x[0..n-1]` and probability `p`, `h = (n-1)p`,
 * `q = x[⌊h⌋] + (h-⌊h⌋)(x[⌊h⌋+1]-x[⌊h⌋])`. This is Hyndman and Fan's definition 7, numpy's default
 * `method="linear"`, R's `type=7` and Excel's `PERCENTILE.INC`. VMs that never reached a phase are
 * not samples of it; they are counted apart as `missing`.
 *
 * @example
 * ```ts
 * import { LatencyRecorder, summarize } from "./latency.ts";
 * const rec = new LatencyRecorder("kubevirt");
 * rec.created("vm-1", 1000, "2026-12-02T10:00:00Z");
 * rec.phase("vm-1", "VMReady", 4200, "2026-12-02T10:00:03Z");
 * const vms = rec.vms();
 * console.log(vms[0]!.phases.VMReady, vms[0]!.sources.VMReady); // 3200 "client"
 * console.log(summarize(vms, ["VMReady"]).VMReady!.p50); // 3200
 * ```
 * @module
 */
import type { TargetKind } from "./backend.ts";

/** Phases measured on KubeVirt, in the order they happen. */
export const KUBEVIRT_PHASES = [
  "VMICreated",
  "VMIPending",
  "VMIScheduling",
  "VMIScheduled",
  "VMIRunning",
  "VMReady",
  "AgentConnected",
  "CloudInitDone",
  "FirstResult",
] as const;

/** Phases measured on libvirt, in the order they happen. */
export const LIBVIRT_PHASES = [
  "DomainDefined",
  "DomainRunning",
  "AgentConnected",
  "CloudInitDone",
  "FirstResult",
] as const;

/** The phases of a target, in order. */
export function phasesOf(target: TargetKind): readonly string[] {
  return target === "kubevirt" ? KUBEVIRT_PHASES : LIBVIRT_PHASES;
}

/**
 * What must have happened before each phase, by target: a figure is never earlier than the
 * latest of these that the VM reached (transitively: an unseen predecessor passes its own on).
 * `VMReady`, `AgentConnected`, `CloudInitDone` and the first result all follow the guest's start
 * but not each other (the agent may connect before or after the VM counts as ready).
 */
export const PHASE_ORDER: Readonly<
  Record<TargetKind, Readonly<Record<string, readonly string[]>>>
> = {
  kubevirt: {
    VMICreated: [],
    VMIPending: ["VMICreated"],
    VMIScheduling: ["VMIPending"],
    VMIScheduled: ["VMIScheduling"],
    VMIRunning: ["VMIScheduled"],
    VMReady: ["VMIRunning"],
    AgentConnected: ["VMIRunning"],
    CloudInitDone: ["VMIRunning"],
    FirstResult: ["VMIRunning"],
  },
  libvirt: {
    DomainDefined: [],
    DomainRunning: ["DomainDefined"],
    AgentConnected: ["DomainRunning"],
    CloudInitDone: ["DomainRunning"],
    FirstResult: ["DomainRunning"],
  },
};

/** A VMI's `status.phase` as KubeVirt writes it, mapped to the phase it is measured as. */
const KUBEVIRT_VMI_PHASE: Readonly<Record<string, string>> = {
  Pending: "VMIPending",
  Scheduling: "VMIScheduling",
  Scheduled: "VMIScheduled",
  Running: "VMIRunning",
};

/**
 * The measured name of a phase a backend reports: KubeVirt's bare VMI phases (`Running`) become
 * `VMIRunning`; every other name is kept.
 */
export function phaseName(target: TargetKind, phase: string): string {
  return target === "kubevirt" ? KUBEVIRT_VMI_PHASE[phase] ?? phase : phase;
}

/** Where a figure came from. */
export type LatencySource = "client" | "server" | "clamped";

/** Both observations of one phase of one VM. */
export interface PhaseObservation {
  /** Milliseconds from the creation request to receipt, on the client's monotonic clock. */
  clientMs: number;
  /** The server's timestamp of the phase, as it wrote it. */
  serverTime?: string;
  /** Milliseconds from the VM's server creation timestamp to `serverTime`. */
  serverMs?: number;
  /** Resolution of `serverMs` in milliseconds (1000 for whole-second timestamps). */
  serverPrecisionMs?: number;
}

/** The latencies of one VM. */
export interface VmLatency {
  /** VM name. */
  name: string;
  /** Milliseconds from the creation request to each phase reached (the chosen source). */
  phases: Record<string, number>;
  /** Which source each figure of `phases` came from. */
  sources: Record<string, LatencySource>;
  /** Both raw observations of each phase. */
  observed: Record<string, PhaseObservation>;
  /** The server's creation timestamp of the VM, when known. */
  createdServerTime?: string;
}

/** Options of {@linkcode LatencyRecorder}. */
export interface LatencyRecorderOptions {
  /**
   * How late the client may learn of a phase, in milliseconds: 0 (the default) for event-driven
   * backends (watches, libvirt events), the poll interval for a backend that polls. When it is
   * coarser than the server's timestamp precision, server figures are preferred.
   */
  clientResolutionMs?: number;
}

/** Longest server timestamp read, in characters. */
const MAX_TIMESTAMP = 64;

/** Most VMs one recorder keeps; more are ignored (a run has at most a few thousand). */
export const MAX_RECORDED_VMS = 100_000;

/** Most distinct phases kept per VM (canonical ones and whatever else a backend reports). */
export const MAX_PHASES_PER_VM = 32;

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$/;

/**
 * An RFC 3339 timestamp as epoch milliseconds and its precision (1000 for whole seconds, 1 for
 * milliseconds or finer), or undefined when it is not one.
 */
export function parseServerTime(s: string): { ms: number; precisionMs: number } | undefined {
  if (s.length > MAX_TIMESTAMP) return undefined;
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const ms = Date.parse(s.replace(/\.(\d{3})\d+/, ".$1"));
  if (!Number.isFinite(ms)) return undefined;
  const digits = m[7]?.length ?? 0;
  return { ms, precisionMs: Math.max(1, 10 ** (3 - Math.min(3, digits))) };
}

interface Raw {
  createdAt?: number;
  createdServer?: { text: string; ms: number; precisionMs: number };
  seen: Map<string, { at: number; serverTime?: string }>;
}

/** Rounds to a microsecond: figures are milliseconds with three decimals. */
function roundMs(n: number): number {
  return Math.round(n * 1000) / 1000;
}

/**
 * Collects the events of one run and turns them into per-VM latencies. Only the first sighting of
 * each phase counts; events of a VM before its `created` are kept and measured once it comes.
 */
export class LatencyRecorder {
  readonly #target: TargetKind;
  readonly #clientResolutionMs: number;
  readonly #vms = new Map<string, Raw>();

  /** A recorder for a run on `target`. */
  constructor(target: TargetKind, o: LatencyRecorderOptions = {}) {
    this.#target = target;
    const r = o.clientResolutionMs ?? 0;
    if (!Number.isFinite(r) || r < 0) {
      throw new RangeError(`clientResolutionMs must be a non-negative number, got ${r}`);
    }
    this.#clientResolutionMs = r;
  }

  #vm(name: string): Raw | undefined {
    let v = this.#vms.get(name);
    if (!v) {
      if (this.#vms.size >= MAX_RECORDED_VMS) return undefined;
      v = { seen: new Map() };
      this.#vms.set(name, v);
    }
    return v;
  }

  /**
   * The create request of `vm`: `at` is the client's `performance.now()` of the request (or of
   * its acceptance, when that is all the backend reports), `serverTime` the VM's creation
   * timestamp on the server. A second call for the same VM is ignored.
   */
  created(vm: string, at: number, serverTime?: string): void {
    const v = this.#vm(vm);
    if (!v || v.createdAt !== undefined) return;
    v.createdAt = at;
    this.setCreatedServerTime(vm, serverTime);
  }

  /** The VM's creation timestamp on the server, when it is learnt after the create. */
  setCreatedServerTime(vm: string, serverTime: string | undefined): void {
    const v = this.#vm(vm);
    if (!v || v.createdServer || serverTime === undefined) return;
    const p = parseServerTime(serverTime);
    if (p) v.createdServer = { text: serverTime, ...p };
  }

  /** `vm` reached `phase` (a backend's name; KubeVirt's bare VMI phases are mapped). */
  phase(vm: string, phase: string, at: number, serverTime?: string): void {
    const v = this.#vm(vm);
    if (!v) return;
    const name = phaseName(this.#target, phase);
    if (v.seen.has(name) || v.seen.size >= MAX_PHASES_PER_VM) return;
    v.seen.set(name, {
      at,
      ...(serverTime !== undefined && serverTime.length <= MAX_TIMESTAMP ? { serverTime } : {}),
    });
  }

  /** A result sample of `vm` arrived (the first is its `FirstResult`). */
  result(vm: string, at: number): void {
    this.phase(vm, "FirstResult", at);
  }

  /**
   * Feeds one backend event: `created`, `phase`, `result` (the first is `FirstResult`) and, on
   * KubeVirt, `ready` (`VMReady`, unless a `VMReady` phase came first); others are ignored.
   */
  record(e: { type: string; vm?: string; at: number; phase?: string; serverTime?: string }): void {
    if (e.vm === undefined) return;
    if (e.type === "created") this.created(e.vm, e.at, e.serverTime);
    else if (e.type === "phase" && e.phase !== undefined) {
      this.phase(e.vm, e.phase, e.at, e.serverTime);
    } else if (e.type === "result") this.result(e.vm, e.at);
    // On KubeVirt, ready is the VM's Ready condition; libvirt's ready follows CloudInitDone.
    else if (e.type === "ready" && this.#target === "kubevirt") {
      this.phase(e.vm, "VMReady", e.at, e.serverTime);
    }
  }

  /** The latencies of every VM that was created, in the order they were first seen. */
  vms(): VmLatency[] {
    const out: VmLatency[] = [];
    for (const [name, raw] of this.#vms) {
      if (raw.createdAt === undefined) continue;
      out.push(this.#measure(name, raw, raw.createdAt));
    }
    return out;
  }

  #measure(name: string, raw: Raw, createdAt: number): VmLatency {
    const observed: Record<string, PhaseObservation> = {};
    for (const [phase, s] of raw.seen) {
      const o: PhaseObservation = { clientMs: roundMs(s.at - createdAt) };
      if (s.serverTime !== undefined) {
        o.serverTime = s.serverTime;
        const p = parseServerTime(s.serverTime);
        if (p && raw.createdServer) {
          o.serverMs = p.ms - raw.createdServer.ms;
          o.serverPrecisionMs = Math.max(p.precisionMs, raw.createdServer.precisionMs);
        }
      }
      observed[phase] = o;
    }
    const { phases, sources } = choose(
      this.#target,
      observed,
      this.#clientResolutionMs,
    );
    return {
      name,
      phases,
      sources,
      observed,
      ...(raw.createdServer ? { createdServerTime: raw.createdServer.text } : {}),
    };
  }
}

/**
 * Picks each phase's figure from its observations, in phase order (canonical phases first, then
 * any other the backend reported, in the order seen). Exported for recomputing stored samples.
 */
export function choose(
  target: TargetKind,
  observed: Readonly<Record<string, PhaseObservation>>,
  clientResolutionMs = 0,
): { phases: Record<string, number>; sources: Record<string, LatencySource> } {
  const order = PHASE_ORDER[target];
  const names = [
    ...phasesOf(target).filter((p) => p in observed),
    ...Object.keys(observed).filter((p) => !(p in order)),
  ];
  const phases: Record<string, number> = {};
  const sources: Record<string, LatencySource> = {};
  // The earliest a phase may be: the latest figure among its reached predecessors, transitively.
  const floorOf = (p: string, depth = 0): number => {
    if (depth > 16) return 0;
    let f = 0;
    for (const q of order[p] ?? []) {
      f = Math.max(f, phases[q] ?? floorOf(q, depth + 1));
    }
    return f;
  };
  for (const p of names) {
    const o = observed[p]!;
    const floor = floorOf(p);
    const serverFirst = o.serverMs !== undefined &&
      clientResolutionMs > (o.serverPrecisionMs ?? 1000);
    const candidates: [LatencySource, number | undefined][] = serverFirst
      ? [["server", o.serverMs], ["client", o.clientMs]]
      : [["client", o.clientMs], ["server", o.serverMs]];
    const ok = candidates.find(([, ms]) => ms !== undefined && ms >= 0 && ms >= floor);
    if (ok) {
      phases[p] = ok[1]!;
      sources[p] = ok[0];
    } else {
      phases[p] = floor;
      sources[p] = "clamped";
    }
  }
  return { phases, sources };
}

/** The figures of one phase over a run's VMs, in milliseconds (null without samples). */
export interface PhaseStats {
  /** VMs that reached the phase (the samples). */
  count: number;
  /** Smallest sample. */
  min: number | null;
  /** Arithmetic mean. */
  avg: number | null;
  /** Median (linear interpolation between closest ranks). */
  p50: number | null;
  /** 95th percentile (same method). */
  p95: number | null;
  /** 99th percentile (same method). */
  p99: number | null;
  /** Largest sample. */
  max: number | null;
  /** VMs of the run that never reached the phase (not samples). */
  missing: number;
}

/** The statistics {@linkcode PhaseStats} carries, as `--threshold` names them. */
export const STAT_NAMES = ["count", "min", "avg", "p50", "p95", "p99", "max"] as const;

/** One of {@linkcode STAT_NAMES}. */
export type StatName = typeof STAT_NAMES[number];

/** How quantiles are computed, as the report states it. */
export const QUANTILE_METHOD: string =
  "linear interpolation between closest ranks (Hyndman-Fan 7, numpy 'linear'): h=(n-1)p, " +
  "q=x[floor(h)]+(h-floor(h))(x[floor(h)+1]-x[floor(h)])";

/**
 * The `p` quantile (0 ≤ p ≤ 1) of `sorted` (ascending, non-empty) by linear interpolation between
 * closest ranks ({@linkcode QUANTILE_METHOD}).
 */
export function quantile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError("quantile of no samples");
  if (!(p >= 0 && p <= 1)) throw new RangeError(`quantile probability must be in [0, 1], got ${p}`);
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const a = sorted[lo]!;
  if (h === lo) return a;
  const b = sorted[lo + 1]!;
  return a + (h - lo) * (b - a);
}

/** The statistics of `samples` (any order), `missing` counted apart. */
export function stats(samples: readonly number[], missing = 0): PhaseStats {
  if (samples.length === 0) {
    return { count: 0, min: null, avg: null, p50: null, p95: null, p99: null, max: null, missing };
  }
  const s = [...samples].sort((a, b) => a - b);
  // Summed in ascending order: the mean of equal samples is that sample exactly.
  let sum = 0;
  for (const x of s) sum += x;
  return {
    count: s.length,
    min: s[0]!,
    avg: roundMs(sum / s.length),
    p50: roundMs(quantile(s, 0.5)),
    p95: roundMs(quantile(s, 0.95)),
    p99: roundMs(quantile(s, 0.99)),
    max: s[s.length - 1]!,
    missing,
  };
}

/**
 * Per phase, the statistics over `vms`: every phase of `phases` (those the target measures in
 * this run), then any other phase some VM reached. A VM without a phase counts as `missing`.
 */
export function summarize(
  vms: readonly Pick<VmLatency, "phases">[],
  phases: readonly string[],
): Record<string, PhaseStats> {
  const names = [...phases];
  for (const v of vms) {
    for (const p of Object.keys(v.phases)) if (!names.includes(p)) names.push(p);
  }
  const out: Record<string, PhaseStats> = {};
  for (const p of names) {
    const samples: number[] = [];
    for (const v of vms) {
      const ms = v.phases[p];
      if (ms !== undefined) samples.push(ms);
    }
    out[p] = stats(samples, vms.length - samples.length);
  }
  return out;
}
