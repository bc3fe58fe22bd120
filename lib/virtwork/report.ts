/**
 * A run's latency report: every VM's phase latencies with their sources, the per-phase statistics
 * and the guests' figures, as one JSON-able object ({@linkcode LatencyReport}), and its CSV form.
 * The same object is built right after a run (from a {@linkcode LatencyRecorder}) and later from
 * the samples stored in the audit database, so `virtwork report` renders what `run --report`
 * wrote. The HTML form is `report_html.ts`.
 *
 * @example
 * ```ts
 * import { buildReport, reportCsv } from "./report.ts";
 * import { LatencyRecorder } from "./latency.ts";
 * const rec = new LatencyRecorder("libvirt");
 * rec.created("vm-1", 0);
 * rec.phase("vm-1", "DomainRunning", 850);
 * const report = buildReport({
 *   runId: "r1",
 *   target: "libvirt",
 *   vms: [{ name: "vm-1", workload: "cpu" }],
 *   latency: rec.vms(),
 * });
 * console.log(report.latency.DomainRunning!.p50); // 850
 * console.log(reportCsv(report));
 * ```
 * @module
 */
import type { TargetKind } from "./backend.ts";
import {
  type LatencySource,
  type PhaseObservation,
  phasesOf,
  type PhaseStats,
  QUANTILE_METHOD,
  stats,
  summarize,
  type VmLatency,
} from "./latency.ts";
import type { ResultSample } from "./results.ts";

/** The version of the report's shape; a reader refuses a newer one. */
export const REPORT_VERSION = 1;

/** What the latencies are measured from, as the report says it. */
export const LATENCY_ORIGIN: string =
  "milliseconds from the VM's creation request: on the client's monotonic clock from its " +
  "create call, on the server's clock from the VM's creation timestamp; per figure the finer " +
  "consistent source (sources: client, server, or clamped to the phase before it)";

/** One VM in a report. */
export interface ReportVm {
  /** VM name. */
  name: string;
  /** Workload. */
  workload: string;
  /** Role within the workload. */
  role?: string;
  /** Whether it became ready. */
  ready?: boolean;
  /** Why it failed or was not ready. */
  error?: string;
  /** Milliseconds from its creation request to each phase reached. */
  phases: Record<string, number>;
  /** Which clock each figure came from. */
  sources: Record<string, LatencySource>;
  /** Both observations of each phase (client ms, server timestamp and ms). */
  observed?: Record<string, PhaseObservation>;
  /** The latest figures its guest reported. */
  results: Record<string, number>;
  /** Why its workload could not run. */
  resultError?: string;
}

/** Figures of one metric over a workload's VMs. */
export interface MetricSummary {
  /** VMs that reported it. */
  count: number;
  /** Smallest. */
  min: number;
  /** Mean. */
  avg: number;
  /** Median (linear method). */
  p50: number;
  /** Largest. */
  max: number;
  /** Sum over the VMs (throughputs add up). */
  sum: number;
}

/** A run's report. */
export interface LatencyReport {
  /** Shape version ({@linkcode REPORT_VERSION}). */
  version: number;
  /** Run id. */
  runId: string;
  /** Platform. */
  target: TargetKind;
  /** API server URL or libvirt URI. */
  location?: string;
  /** Namespace or libvirt URI as given. */
  scope?: string;
  /** When the run started (ISO 8601). */
  startedAt?: string;
  /** How the latencies are measured. */
  origin: string;
  /** How quantiles are computed. */
  quantileMethod: string;
  /** How late the client could learn of a phase (0: events; the poll interval when polling). */
  clientResolutionMs: number;
  /** Phases the target measures in this run, in order. */
  phases: string[];
  /** The VMs, in plan order. */
  vms: ReportVm[];
  /** Per-phase statistics in ms; `missing` counts VMs that never reached the phase. */
  latency: Record<string, PhaseStats>;
  /** Per workload and metric, the figures over its VMs' latest samples. */
  results: Record<string, Record<string, MetricSummary>>;
}

/** A VM as the run knows it, before latencies are joined in. */
export interface ReportVmInput {
  /** VM name. */
  name: string;
  /** Workload. */
  workload: string;
  /** Role. */
  role?: string;
  /** Became ready. */
  ready?: boolean;
  /** Why not. */
  error?: string;
  /** Its latest sample. */
  result?: ResultSample;
}

/** What {@linkcode buildReport} needs. */
export interface ReportInput {
  /** Run id. */
  runId: string;
  /** Platform. */
  target: TargetKind;
  /** API server URL or libvirt URI. */
  location?: string;
  /** Namespace or libvirt URI. */
  scope?: string;
  /** When the run started. */
  startedAt?: string;
  /** The run's VMs in plan order. */
  vms: readonly ReportVmInput[];
  /** Their latencies (a VM absent here reached no phase). */
  latency: readonly VmLatency[];
  /** Phases expected (default: the target's, without `FirstResult` unless some VM has it). */
  phases?: readonly string[];
  /** As {@linkcode LatencyReport.clientResolutionMs} (default 0). */
  clientResolutionMs?: number;
}

/** The report of a run. */
export function buildReport(input: ReportInput): LatencyReport {
  const byName = new Map(input.latency.map((l) => [l.name, l]));
  const vms: ReportVm[] = input.vms.map((v) => {
    const l = byName.get(v.name);
    return {
      name: v.name,
      workload: v.workload,
      ...(v.role !== undefined ? { role: v.role } : {}),
      ...(v.ready !== undefined ? { ready: v.ready } : {}),
      ...(v.error !== undefined ? { error: v.error } : {}),
      phases: { ...(l?.phases ?? {}) },
      sources: { ...(l?.sources ?? {}) },
      ...(l ? { observed: structuredClone(l.observed) } : {}),
      results: { ...(v.result?.metrics ?? {}) },
      ...(v.result?.error !== undefined ? { resultError: v.result.error } : {}),
    };
  });
  const anyResult = vms.some((v) => "FirstResult" in v.phases);
  const phases = input.phases
    ? [...input.phases]
    : phasesOf(input.target).filter((p) => p !== "FirstResult" || anyResult);
  return {
    version: REPORT_VERSION,
    runId: input.runId,
    target: input.target,
    ...(input.location !== undefined ? { location: input.location } : {}),
    ...(input.scope !== undefined ? { scope: input.scope } : {}),
    ...(input.startedAt !== undefined ? { startedAt: input.startedAt } : {}),
    origin: LATENCY_ORIGIN,
    quantileMethod: QUANTILE_METHOD,
    clientResolutionMs: input.clientResolutionMs ?? 0,
    phases,
    vms,
    latency: summarize(vms, phases),
    results: summarizeResults(vms),
  };
}

/** Per workload and metric, count/min/avg/p50/max/sum over the VMs that reported it. */
export function summarizeResults(
  vms: readonly Pick<ReportVm, "workload" | "results">[],
): Record<string, Record<string, MetricSummary>> {
  const by = new Map<string, Map<string, number[]>>();
  for (const v of vms) {
    for (const [k, n] of Object.entries(v.results)) {
      let w = by.get(v.workload);
      if (!w) by.set(v.workload, w = new Map());
      let xs = w.get(k);
      if (!xs) w.set(k, xs = []);
      xs.push(n);
    }
  }
  const out: Record<string, Record<string, MetricSummary>> = {};
  for (const [workload, metrics] of by) {
    const o: Record<string, MetricSummary> = {};
    for (const [k, xs] of metrics) {
      const s = stats(xs);
      const sum = xs.reduce((a, b) => a + b, 0);
      o[k] = {
        count: s.count,
        min: s.min!,
        avg: s.avg!,
        p50: s.p50!,
        max: s.max!,
        sum: Math.round(sum * 1000) / 1000,
      };
    }
    out[workload] = o;
  }
  return out;
}

/** Each phase's samples (ms) in a report: what {@linkcode compareRuns} and gates take. */
export function phaseSamples(report: Pick<LatencyReport, "vms">): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const v of report.vms) {
    for (const [p, ms] of Object.entries(v.phases)) (out[p] ??= []).push(ms);
  }
  return out;
}

const CSV_HEADER = [
  "vm",
  "workload",
  "phase",
  "ms",
  "source",
  "client_ms",
  "server_time",
  "server_ms",
] as const;

/** One CSV field, quoted when it must be (RFC 4180); a leading `=+-@` is defused for spreadsheets. */
function csvField(v: string | number | undefined): string {
  if (v === undefined) return "";
  let s = String(v);
  if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/**
 * The report's samples as CSV (RFC 4180, CRLF-free `\n` lines): one row per VM and phase reached,
 * with the chosen figure, its source and both raw observations, so the statistics can be
 * recomputed elsewhere; a VM that reached no phase has one row with an empty phase.
 */
export function reportCsv(report: LatencyReport): string {
  const lines = [CSV_HEADER.join(",")];
  for (const v of report.vms) {
    const phases = Object.keys(v.phases);
    if (phases.length === 0) {
      lines.push([v.name, v.workload, "", "", "", "", "", ""].map(csvField).join(","));
      continue;
    }
    for (const p of phases) {
      const o = v.observed?.[p];
      lines.push(
        [v.name, v.workload, p, v.phases[p], v.sources[p], o?.clientMs, o?.serverTime, o?.serverMs]
          .map(csvField).join(","),
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** The per-phase statistics as CSV: `phase,count,missing,min,avg,p50,p95,p99,max` in ms. */
export function latencyCsv(report: Pick<LatencyReport, "latency">): string {
  const lines = ["phase,count,missing,min_ms,avg_ms,p50_ms,p95_ms,p99_ms,max_ms"];
  for (const [p, s] of Object.entries(report.latency)) {
    lines.push(
      [p, s.count, s.missing, s.min, s.avg, s.p50, s.p95, s.p99, s.max]
        .map((x) => csvField(x ?? undefined)).join(","),
    );
  }
  return lines.join("\n") + "\n";
}

/** A run's latency as the audit database keeps it (`runLatency` of lib/audit, structurally). */
export interface StoredRunLatency {
  /** The run's entry. */
  entry: {
    runId: string;
    namespace: string | null;
    target: string | null;
    startedAt: string;
    operation: string;
  };
  /** How it measured; null for a run recorded before latencies were. */
  meta: { targetKind: string; phases: readonly string[]; clientResolutionMs: number } | null;
  /** Its VMs. */
  vms: readonly {
    name: string;
    workload: string | null;
    role: string | null;
    ready: boolean | null;
    error: string | null;
    results: Record<string, number> | null;
    resultError: string | null;
    phases:
      | Record<
        string,
        { ms: number; source: string; clientMs?: number; serverTime?: string; serverMs?: number }
      >
      | null;
  }[];
}

/** A stored run that carries no latency samples (a cleanup, or a run of an older release). */
export class NoLatencyError extends Error {
  /** The run. */
  readonly runId: string;
  /** Says why `runId` has no report. */
  constructor(runId: string, why: string) {
    super(`run ${runId} ${why}`);
    this.name = "NoLatencyError";
    this.runId = runId;
  }
}

const SOURCES: readonly string[] = ["client", "server", "clamped"];

/**
 * The report of a run computed again from what the audit database stored: the same per-VM
 * figures, so the same statistics as `run --report` wrote.
 *
 * @throws {NoLatencyError} when the entry is not a run or stored no samples
 */
export function reportFromStored(s: StoredRunLatency): LatencyReport {
  const id = s.entry.runId;
  if (s.entry.operation !== "run") throw new NoLatencyError(id, `is a ${s.entry.operation}`);
  if (!s.meta) {
    throw new NoLatencyError(
      id,
      "has no latency samples (recorded by an older release or a dry run)",
    );
  }
  const target: TargetKind = s.meta.targetKind === "libvirt" ? "libvirt" : "kubevirt";
  const latency: VmLatency[] = s.vms.map((v) => {
    const phases: Record<string, number> = {};
    const sources: Record<string, LatencySource> = {};
    const observed: Record<string, PhaseObservation> = {};
    for (const [p, x] of Object.entries(v.phases ?? {})) {
      if (typeof x?.ms !== "number" || !Number.isFinite(x.ms)) continue;
      phases[p] = x.ms;
      sources[p] = (SOURCES.includes(x.source) ? x.source : "client") as LatencySource;
      observed[p] = {
        clientMs: x.clientMs ?? x.ms,
        ...(x.serverTime !== undefined ? { serverTime: x.serverTime } : {}),
        ...(x.serverMs !== undefined ? { serverMs: x.serverMs } : {}),
      };
    }
    return { name: v.name, phases, sources, observed };
  });
  return buildReport({
    runId: id,
    target,
    ...(s.entry.target !== null ? { location: s.entry.target } : {}),
    ...(s.entry.namespace !== null ? { scope: s.entry.namespace } : {}),
    startedAt: s.entry.startedAt,
    vms: s.vms.map((v) => ({
      name: v.name,
      workload: v.workload ?? "-",
      ...(v.role !== null ? { role: v.role } : {}),
      ...(v.ready !== null ? { ready: v.ready } : {}),
      ...(v.error !== null ? { error: v.error } : {}),
      ...(v.results !== null || v.resultError !== null
        ? {
          result: {
            workload: v.workload ?? "-",
            t: 0,
            metrics: v.results ?? {},
            ...(v.resultError !== null ? { error: v.resultError } : {}),
          },
        }
        : {}),
    })),
    latency,
    phases: s.meta.phases,
    clientResolutionMs: s.meta.clientResolutionMs,
  });
}

/**
 * What the audit database keeps of each VM's latency (one record per phase), from a report's VM:
 * the inverse of {@linkcode reportFromStored}.
 */
export function storedPhases(
  v: Pick<ReportVm, "phases" | "sources" | "observed">,
): Record<
  string,
  { ms: number; source: string; clientMs?: number; serverTime?: string; serverMs?: number }
> {
  const out: Record<
    string,
    { ms: number; source: string; clientMs?: number; serverTime?: string; serverMs?: number }
  > = {};
  for (const [p, ms] of Object.entries(v.phases)) {
    const o = v.observed?.[p];
    out[p] = {
      ms,
      source: v.sources[p] ?? "client",
      ...(o ? { clientMs: o.clientMs } : {}),
      ...(o?.serverTime !== undefined ? { serverTime: o.serverTime } : {}),
      ...(o?.serverMs !== undefined ? { serverMs: o.serverMs } : {}),
    };
  }
  return out;
}

/** What {@linkcode reportFromRun} reads of a finished run (`PlanRunResult`, structurally). */
export interface FinishedRun {
  /** Run id. */
  runId: string;
  /** Platform. */
  target: TargetKind;
  /** API server URL or libvirt URI. */
  location: string;
  /** Namespace or libvirt URI. */
  scope: string;
  /** Whether results were collected (then `FirstResult` is expected). */
  resultsCollected: boolean;
  /** Its VMs in plan order. */
  vms: readonly {
    name: string;
    workload: string;
    role: string;
    ready: boolean;
    error?: string;
    result?: ResultSample;
  }[];
}

/**
 * The report of a run that just finished, from its result and the latencies a
 * {@linkcode LatencyRecorder} took of its backend's events.
 */
export function reportFromRun(
  r: FinishedRun,
  latency: readonly VmLatency[],
  o: { clientResolutionMs?: number; startedAt?: string } = {},
): LatencyReport {
  const phases = phasesOf(r.target).filter((p) => p !== "FirstResult" || r.resultsCollected);
  return buildReport({
    runId: r.runId,
    target: r.target,
    location: r.location,
    scope: r.scope,
    ...(o.startedAt !== undefined ? { startedAt: o.startedAt } : {}),
    vms: r.vms.map((v) => ({
      name: v.name,
      workload: v.workload,
      role: v.role,
      ready: v.ready,
      ...(v.error !== undefined ? { error: v.error } : {}),
      ...(v.result !== undefined ? { result: v.result } : {}),
    })),
    latency,
    phases,
    ...(o.clientResolutionMs !== undefined ? { clientResolutionMs: o.clientResolutionMs } : {}),
  });
}
