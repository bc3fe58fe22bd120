/**
 * What `virtwork run` prints and writes after a run: the summary table, the results table, the
 * `--report` JSON document, and after a failed or interrupted run what exists and how to remove
 * it. Plain text from lib's results; nothing here talks to a backend.
 * @module
 */
import type { RunPlan } from "../../lib/kubevirt/plan.ts";
import type { CreateOutcome, RunResult } from "../../lib/kubevirt/run.ts";
import type { PlanRunResult } from "../../lib/virtwork/run.ts";
import type { LatencyReport } from "../../lib/virtwork/report.ts";
import { formatTable, paint } from "../../lib/output/format.ts";
import { sanitizeText } from "../../lib/output/sanitize.ts";

/** Where a run's VMs went, as the closing line says it. */
function placeText(r: PlanRunResult): string {
  return r.target === "kubevirt" ? `in namespace ${r.scope}` : `on ${r.scope}`;
}

/** The summary table and a closing line. */
export function summary(r: PlanRunResult, color: boolean): string {
  const rows = r.vms.map((v) => [
    v.workload,
    v.name,
    v.role,
    v.ready
      ? paint(v.phase, "green", color)
      : paint(v.phase, v.failed ? "red" : r.waited ? "yellow" : "dim", color),
    v.secondsToReady !== undefined ? `${v.secondsToReady.toFixed(1)}s` : "-",
  ]);
  const table = formatTable(["WORKLOAD", "VM", "ROLE", "PHASE", "READY IN"], rows);
  const ready = r.vms.filter((v) => v.ready).length;
  const failed = r.failedVms > 0 ? `, ${r.failedVms} failed` : "";
  const state = r.waited
    ? `${ready}/${r.vms.length} VMs ready${failed}`
    : `${r.vms.length} VMs created (not waited for)`;
  return `${table}\n${state} ${placeText(r)}, run id ${r.runId}, ${r.elapsedSeconds.toFixed(1)}s\n`;
}

/** Largest number of metrics shown per VM in the results table. */
const SHOWN_METRICS = 8;

/** One VM's figures as `name=value ...`, its workload's error, or `-`. */
function figures(v: PlanRunResult["vms"][number]): string {
  if (v.result?.error !== undefined) {
    return `error: ${sanitizeText(v.result.error, { singleLine: true })}`;
  }
  const entries = Object.entries(v.result?.metrics ?? {});
  if (entries.length === 0) return v.ready ? "no figures reported" : "-";
  return entries.slice(0, SHOWN_METRICS).map(([k, n]) => `${k}=${formatFigure(n)}`).join(" ");
}

function formatFigure(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(Math.abs(n) >= 100 ? 1 : 3);
}

/** The results table: VM, workload and its latest figures. */
export function resultsTable(r: PlanRunResult): string {
  const rows = r.vms.map((v) => [v.name, v.workload, figures(v)]);
  const reported = r.vms.filter((v) => v.result && !v.result.error).length;
  return `${formatTable(["VM", "WORKLOAD", "RESULTS"], rows)}\n${reported}/${r.vms.length} VMs ` +
    `reported figures\n`;
}

/**
 * The `--report` document: the latency report (per VM `phases` in ms from its creation request
 * with their `sources`, per phase `latency` statistics, per workload `results`) and, beside it,
 * what became of the run and of each VM (outcome, ready, seconds to ready, latest figures).
 */
export function reportDocument(r: PlanRunResult, latency?: LatencyReport): Record<string, unknown> {
  const base = runDocument(r);
  if (!latency) return base;
  const extra = new Map((base.vms as Record<string, unknown>[]).map((v) => [v.name, v]));
  return {
    ...base,
    ...latency,
    location: r.location,
    scope: r.scope,
    vms: latency.vms.map((v) => {
      const { phases: _secondsByPhase, ...rest } = extra.get(v.name) ?? {};
      return { ...rest, ...v };
    }),
  };
}

function runDocument(r: PlanRunResult): Record<string, unknown> {
  return {
    runId: r.runId,
    target: r.target,
    location: r.location,
    scope: r.scope,
    interrupted: r.interrupted,
    timedOut: r.timedOut,
    elapsedSeconds: r.elapsedSeconds,
    vms: r.vms.map((v) => ({
      name: v.name,
      workload: v.workload,
      role: v.role,
      outcome: v.outcome,
      ready: v.ready,
      ...(v.secondsToReady !== undefined ? { secondsToReady: v.secondsToReady } : {}),
      phases: { ...v.phases },
      results: { ...(v.result?.metrics ?? {}) },
      ...(v.result?.error !== undefined ? { resultError: v.result.error } : {}),
      ...(v.error !== undefined ? { error: v.error } : {}),
    })),
  };
}

/** After a failed or interrupted libvirt run: what happened and how to remove what is left. */
export function libvirtExistsReport(r: PlanRunResult): string {
  const stopped = r.interrupted ? "Interrupted" : "Stopped";
  const kept = r.vms.filter((v) => v.outcome === "created" || v.outcome === "exists");
  const lines = [
    r.createError !== undefined
      ? `${stopped} while creating VMs of run ${r.runId} on ${r.scope}: ${
        sanitizeText(r.createError, { singleLine: true })
      }`
      : kept.length === 0
      ? `${stopped}: no VM of run ${r.runId} was created on ${r.scope}`
      : `${stopped}: VMs of run ${r.runId} on ${r.scope}: ${kept.map((v) => v.name).join(", ")}`,
    `Remove anything left with: virtwork cleanup --target libvirt --connect ${r.scope} ` +
    `--run-id ${r.runId}`,
  ];
  return `${lines.join("\n")}\n`;
}

/**
 * Tells what exists after a failed or interrupted run and how to remove it: every object of the
 * run that exists, that was rolled back after the interrupt, or that may exist.
 */
export function kubeExistsReport(r: RunResult, plan: RunPlan): string {
  const kept = (o: { outcome: CreateOutcome }) => o.outcome === "created" || o.outcome === "exists";
  const vms = r.vms.filter(kept);
  const services = r.services.filter(kept);
  const secrets = r.secrets.filter(kept);
  const objects = [
    ...r.services.map((o) => ({ kind: "Service", ...o })),
    ...r.secrets.map((o) => ({ kind: "Secret", ...o })),
    ...r.vms.map((o) => ({ kind: "VirtualMachine", ...o })),
  ];
  const named = (outcome: CreateOutcome) =>
    objects.filter((o) => o.outcome === outcome).map((o) => `${o.kind} ${o.name}`).join(", ");
  const rolledBack = named("rolled back");
  const unknown = named("unknown");
  const stopped = r.interrupted ? "Interrupted" : "Stopped";
  const lines: string[] = [];
  const nsUnknown = r.namespaceOutcome === "unknown"
    ? `Namespace ${r.namespace} exists; its create was in flight at the interrupt, so this run ` +
      `may have made it (virtwork cleanup --namespace ${r.namespace} --delete-namespace removes it)`
    : undefined;
  if (vms.length + services.length + secrets.length === 0 && unknown === "") {
    const ns = r.namespaceOutcome === "created"
      ? ` (it created namespace ${r.namespace}; virtwork cleanup --namespace ${r.namespace} --delete-namespace removes it)`
      : "";
    lines.push(
      `${stopped}: nothing of run ${r.runId} was created in namespace ${r.namespace}${ns}`,
    );
    if (nsUnknown) lines.push(nsUnknown);
    if (rolledBack) lines.push(`Rolled back (in flight at the interrupt): ${rolledBack}`);
    return `${lines.join("\n")}\n`;
  }
  lines.push(
    `${stopped}: in namespace ${r.namespace} there are now ` +
      `${vms.length} of ${plan.vms.length} VMs, ${services.length} Services and ${secrets.length} Secrets of run ${r.runId}`,
  );
  if (vms.length > 0) lines.push(`VMs: ${vms.map((v) => v.name).join(", ")}`);
  if (rolledBack) lines.push(`Rolled back (in flight at the interrupt): ${rolledBack}`);
  if (unknown) lines.push(`May exist (in flight at the interrupt, not confirmed): ${unknown}`);
  if (nsUnknown) lines.push(nsUnknown);
  lines.push(`Remove them with: virtwork cleanup --namespace ${r.namespace} --run-id ${r.runId}`);
  return `${lines.join("\n")}\n`;
}
