/**
 * How virtwork shows latencies to people: the per-phase table a run prints at its end and
 * `virtwork report` prints by default, the comparison table of `virtwork compare`, the gate
 * lines of `run --threshold`, and reading a stored run's report from the audit database.
 * @module
 */
import type { Command } from "npm:commander@^15.1.0";
import { ConfigError } from "../../lib/config/layered.ts";
import { formatTable, paint } from "../../lib/output/format.ts";
import { loadVirtworkConfig } from "../../lib/virtwork/config.ts";
import { formatMs, type RunComparison, type ThresholdResult } from "../../lib/virtwork/compare.ts";
import type { LatencyReport } from "../../lib/virtwork/report.ts";
import { givenAuditFlags, openAuditReader } from "../_audit.ts";
import type { VirtworkDeps } from "./_shared.ts";

function ms(n: number | null): string {
  return n === null ? "-" : formatMs(n);
}

/** The per-phase latency table with a line on how it was measured. */
export function latencyTable(r: LatencyReport): string {
  const rows = Object.entries(r.latency).map(([p, s]) => [
    p,
    String(s.count),
    String(s.missing),
    ms(s.min),
    ms(s.avg),
    ms(s.p50),
    ms(s.p95),
    ms(s.p99),
    ms(s.max),
  ]);
  const counts: Record<string, number> = { client: 0, server: 0, clamped: 0 };
  for (const v of r.vms) {
    for (const s of Object.values(v.sources)) counts[s] = (counts[s] ?? 0) + 1;
  }
  const table = formatTable(
    ["PHASE", "VMS", "NEVER", "MIN", "AVG", "P50", "P95", "P99", "MAX"],
    rows,
  );
  return `${table}\nLatency from each VM's creation request; figures from the client's clock ` +
    `${counts.client}, the server's ${counts.server}, clamped ${counts.clamped}; quantiles by ` +
    `linear interpolation between closest ranks (numpy's default)\n`;
}

/** `virtwork compare`'s table: B minus A per phase and statistic, with its 95 % interval. */
export function comparisonTable(
  c: RunComparison,
  runA: string,
  runB: string,
  color: boolean,
): string {
  const rows = c.deltas.map((d) => {
    const sign = d.delta > 0 ? "+" : "";
    const verdict = d.ci95[0] > 0
      ? paint("slower", "red", color)
      : d.ci95[1] < 0
      ? paint("faster", "green", color)
      : "~";
    return [
      d.phase,
      d.stat,
      formatMs(d.a),
      formatMs(d.b),
      `${sign}${formatMs(d.delta)}`,
      `[${formatMs(d.ci95[0])}, ${formatMs(d.ci95[1])}]`,
      d.relative === null ? "-" : `${sign}${(d.relative * 100).toFixed(1)}%`,
      verdict,
    ];
  });
  let out = `A: ${runA}\nB: ${runB}\n${
    formatTable(["PHASE", "STAT", "A", "B", "B-A", "95% CI", "CHANGE", ""], rows)
  }`;
  if (c.unpaired.length > 0) {
    out += `Not compared (no samples in one run): ${
      c.unpaired.map((u) => `${u.phase} (A ${u.countA}, B ${u.countB})`).join(", ")
    }\n`;
  }
  out +=
    `95% intervals: percentile bootstrap, ${c.resamples} resamples of each run, seed ${c.seed}; ` +
    `"slower"/"faster" when the interval excludes 0\n`;
  return out;
}

/** One line per gate: `ok` or `FAILED` with why. */
export function thresholdLines(results: readonly ThresholdResult[], color: boolean): string {
  return results.map((r) =>
    r.ok
      ? `${paint("ok", "green", color)}     threshold ${r.threshold.text} (${
        r.threshold.stat === "count" ? r.actual : formatMs(r.actual)
      })\n`
      : `${paint("FAILED", "red", color)} threshold ${r.threshold.text}: ${r.reason}\n`
  ).join("");
}

/**
 * The report of the stored run `runId` (or a unique prefix), computed again from the audit
 * database that `--audit-db`, `VIRTWORK_AUDIT_DB` or the configuration file names.
 * @throws {ConfigError} when there is no database, no such run, or it has no samples
 */
export async function storedReport(
  cmd: Command,
  deps: VirtworkDeps,
  runId: string,
): Promise<LatencyReport> {
  const env = deps.env ?? Deno.env.toObject();
  const configPath = (cmd.opts() as { config?: string }).config;
  const { auditDb: path } = await loadVirtworkConfig({
    flags: givenAuditFlags(cmd),
    env,
    ...(configPath ? { configPath } : {}),
  });
  const db = await openAuditReader(path);
  if (!db) throw new ConfigError(`no audit database at ${path}, so no run ${runId}`);
  try {
    const { runLatency } = await import("../../lib/audit/reader.ts");
    const { reportFromStored } = await import("../../lib/virtwork/report.ts");
    let stored;
    try {
      stored = runLatency(db, runId);
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
    if (!stored) throw new ConfigError(`no run ${runId} in audit database ${path}`);
    try {
      return reportFromStored(stored);
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  } finally {
    db.close();
  }
}
