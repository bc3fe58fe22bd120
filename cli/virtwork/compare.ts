/**
 * `virtwork compare RUN_A RUN_B`: per-phase differences of two stored runs (B minus A) with
 * bootstrap 95 % confidence intervals from their samples in the audit database.
 * @module
 */
import { Command, InvalidArgumentError } from "npm:commander@^15.1.0";
import { formatJson, useColor } from "../../lib/output/format.ts";
import { BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED } from "../../lib/virtwork/compare.ts";
import type { Io } from "../_program.ts";
import { comparisonTable, storedReport } from "./_latency.ts";
import type { VirtworkDeps } from "./_shared.ts";

function outputArg(v: string): "table" | "json" {
  if (v !== "table" && v !== "json") {
    throw new InvalidArgumentError(`expected table or json, got "${v}"`);
  }
  return v;
}

function resamplesArg(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 100 || n > 100_000) {
    throw new InvalidArgumentError(`expected an integer from 100 to 100000, got "${v}"`);
  }
  return n;
}

function seedArg(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 0xffff_ffff) {
    throw new InvalidArgumentError(`expected an integer from 0 to 4294967295, got "${v}"`);
  }
  return n;
}

/** The `compare` command. */
export function compareCommand(io: Io, deps: VirtworkDeps = {}): Command {
  return new Command("compare")
    .description(
      "Compare two runs' latencies: per phase, B minus A for p50, p95, p99 and avg with " +
        "bootstrap 95% confidence intervals",
    )
    .argument("<run-a>", "the baseline run (id or unique prefix)")
    .argument("<run-b>", "the run compared with it")
    .option("--config <file>", "YAML configuration file naming audit_db (env VIRTWORK_CONFIG)")
    .option("-o, --output <format>", "table or json", outputArg, "table")
    .option(
      "--resamples <n>",
      `bootstrap resamples (default ${BOOTSTRAP_RESAMPLES})`,
      resamplesArg,
    )
    .option("--seed <n>", `bootstrap generator seed (default ${BOOTSTRAP_SEED})`, seedArg)
    .action(async (runA: string, runB: string, _o: unknown, cmd: Command) => {
      const o = cmd.opts() as { output: "table" | "json"; resamples?: number; seed?: number };
      const a = await storedReport(cmd, deps, runA);
      const b = await storedReport(cmd, deps, runB);
      const { compareRuns } = await import("../../lib/virtwork/compare.ts");
      const { phaseSamples } = await import("../../lib/virtwork/report.ts");
      const c = compareRuns(phaseSamples(a), phaseSamples(b), {
        ...(o.resamples !== undefined ? { resamples: o.resamples } : {}),
        ...(o.seed !== undefined ? { seed: o.seed } : {}),
      });
      if (o.output === "json") {
        io.out(formatJson({ runA: a.runId, runB: b.runId, ...c }));
        return;
      }
      const color = useColor({
        isTerminal: deps.isTerminal ?? false,
        env: deps.env ?? Deno.env.toObject(),
      });
      io.out(comparisonTable(c, a.runId, b.runId, color));
    });
}
