/**
 * `virtwork report RUN_ID [-o table|json|csv|html]`: a run's latency report computed again from
 * the samples in the audit database (the same figures `run --report` wrote).
 * @module
 */
import { Command, InvalidArgumentError } from "npm:commander@^15.1.0";
import { formatJson } from "../../lib/output/format.ts";
import type { Io } from "../_program.ts";
import { latencyTable, storedReport } from "./_latency.ts";
import type { VirtworkDeps } from "./_shared.ts";

const FORMATS = ["table", "json", "csv", "html"] as const;
type Format = typeof FORMATS[number];

function formatArg(v: string): Format {
  if (!(FORMATS as readonly string[]).includes(v)) {
    throw new InvalidArgumentError(`expected one of ${FORMATS.join(", ")}, got "${v}"`);
  }
  return v as Format;
}

/** The `report` command. */
export function reportCommand(io: Io, deps: VirtworkDeps = {}): Command {
  return new Command("report")
    .description(
      "Show a run's per-phase latencies again from the audit database: a table, the --report " +
        "JSON, CSV samples (one row per VM and phase) or one self-contained HTML file",
    )
    .argument("<run-id>", "run id, or a unique prefix of at least 4 characters")
    .option("--config <file>", "YAML configuration file naming audit_db (env VIRTWORK_CONFIG)")
    .option("-o, --output <format>", "table, json, csv or html", formatArg, "table")
    .action(async (runId: string, _o: unknown, cmd: Command) => {
      const { output } = cmd.opts() as { output: Format };
      const report = await storedReport(cmd, deps, runId);
      switch (output) {
        case "json":
          io.out(formatJson(report));
          return;
        case "csv": {
          const { reportCsv } = await import("../../lib/virtwork/report.ts");
          io.out(reportCsv(report));
          return;
        }
        case "html": {
          const { reportHtml } = await import("../../lib/virtwork/report_html.ts");
          io.out(reportHtml(report));
          return;
        }
        default:
          io.out(`Run ${report.runId} (${report.target}, ${report.vms.length} VMs)\n`);
          io.out(latencyTable(report));
      }
    });
}
