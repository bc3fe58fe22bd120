/**
 * `virtwork audit list` and `virtwork audit show RUN_ID`: read the audit trail back.
 * @module
 */
import { Command, InvalidArgumentError } from "npm:commander@^15.1.0";
import { countArg } from "../_args.ts";
import type { AuditDb } from "../../lib/audit/schema.ts";
import type { AuditEntry, AuditStatus, EntryDetails } from "../../lib/audit/mod.ts";
import { ConfigError } from "../../lib/config/layered.ts";
import { formatJson, formatTable } from "../../lib/output/format.ts";
import { loadVirtworkConfig } from "../../lib/kubevirt/config.ts";
import { durationLabel, givenAuditFlags, oneLine, openAuditReader, timeLabel } from "../_audit.ts";
import type { Io } from "../_program.ts";
import type { VirtworkDeps } from "./_shared.ts";

function outputArg(v: string): "table" | "json" {
  if (v !== "table" && v !== "json") {
    throw new InvalidArgumentError(`expected table or json, got "${v}"`);
  }
  return v;
}

const STATUSES = {
  succeeded: "succeeded",
  failed: "failed",
  interrupted: "interrupted",
  unfinished: "running",
} as const;

function statusArg(v: string): AuditStatus {
  const s = STATUSES[v as keyof typeof STATUSES];
  if (!s) {
    throw new InvalidArgumentError(
      `expected one of ${Object.keys(STATUSES).join(", ")}, got "${v}"`,
    );
  }
  return s;
}

/** `unfinished` for an entry whose end was never recorded (still running, or killed). */
export function statusLabel(e: AuditEntry): string {
  return e.finished ? e.status : "unfinished";
}

/** The database path: --audit-db > VIRTWORK_AUDIT_DB > the configuration file's audit_db > default. */
async function withReader<T>(
  cmd: Command,
  deps: VirtworkDeps,
  fn: (db: AuditDb | undefined, path: string) => T,
): Promise<T> {
  const env = deps.env ?? Deno.env.toObject();
  const configPath = (cmd.opts() as { config?: string }).config;
  const { auditDb: path } = await loadVirtworkConfig({
    flags: givenAuditFlags(cmd),
    env,
    ...(configPath ? { configPath } : {}),
  });
  const db = await openAuditReader(path);
  try {
    return fn(db, path);
  } finally {
    db?.close();
  }
}

/** The runs and cleanups as a table, newest first. */
export function entriesTable(entries: readonly AuditEntry[]): string {
  return formatTable(
    ["RUN ID", "OPERATION", "STATUS", "STARTED (UTC)", "DURATION", "NAMESPACE", "VMS", "ERROR"],
    entries.map((e) => [
      e.runId,
      e.dryRun ? `${e.operation} (dry)` : e.operation,
      statusLabel(e),
      timeLabel(e.startedAt),
      durationLabel(e.durationMs),
      e.namespace ?? "-",
      e.operation === "cleanup"
        ? String(e.cleanupCounts?.virtualmachines ?? 0)
        : String(e.vmCount ?? "-"),
      oneLine(e.errorSummary),
    ]),
  );
}

/** One run (or cleanup) in full, for people. */
export function detailsText(d: EntryDetails): string {
  const e = d.entry;
  const lines = [
    `Run ID:      ${e.runId}`,
    `Operation:   ${e.operation}${e.dryRun ? " (dry run)" : ""}`,
    `Status:      ${statusLabel(e)}${
      e.finished ? "" : " (no end recorded: still running or killed)"
    }`,
    `Started:     ${timeLabel(e.startedAt)} UTC`,
    `Finished:    ${e.finishedAt ? `${timeLabel(e.finishedAt)} UTC` : "-"}`,
    `Duration:    ${durationLabel(e.durationMs)}`,
    `Namespace:   ${e.namespace ?? "-"}`,
    `Cluster:     ${e.target ?? "-"}`,
    `Host:        ${e.hostname ?? "-"} (pid ${e.pid ?? "-"})`,
  ];
  if (e.operation === "run") {
    lines.push(`SSH auth:    ${e.sshAuthConfigured ? "configured" : "none"}`);
    lines.push(`VMs planned: ${e.vmCount ?? "-"}`);
  }
  if (e.operation === "cleanup") {
    const c = e.cleanupCounts ?? {};
    lines.push(
      `Deleted:     ${c.virtualmachines ?? 0} VMs, ${c.services ?? 0} Services, ${
        c.secrets ?? 0
      } Secrets; namespace ${c.namespaceDeleted ? "deleted" : "kept"}`,
    );
    lines.push(`Linked runs: ${e.linkedRunIds.length ? e.linkedRunIds.join(", ") : "-"}`);
  }
  if (e.errorSummary) lines.push(`Error:       ${e.errorSummary}`);
  let out = `${lines.join("\n")}\n`;
  if (d.workloads.length) {
    out += `\nWorkloads:\n${
      formatTable(
        ["NAME", "VMS", "CPU", "MEMORY"],
        d.workloads.map((w) => [
          w.name,
          String(w.vmCount),
          String(w.config?.cpuCores ?? "-"),
          String(w.config?.memory ?? "-"),
        ]),
      )
    }`;
  }
  if (d.vms.length) {
    out += `\nVMs:\n${
      formatTable(
        ["NAME", "WORKLOAD", "ROLE", "OUTCOME", "PHASE", "READY IN", "DELETED BY"],
        d.vms.map((v) => [
          v.name,
          v.workload ?? "-",
          v.role ?? "-",
          v.outcome ?? "-",
          v.phase ?? "-",
          v.secondsToReady === null ? "-" : `${v.secondsToReady.toFixed(1)}s`,
          v.deletedBy ?? "-",
        ]),
      )
    }`;
    const withResults = d.vms.filter((v) => v.results !== null || v.resultError !== null);
    if (withResults.length) {
      out += `\nResults:\n${
        formatTable(
          ["NAME", "WORKLOAD", "RESULTS"],
          withResults.map((v) => [
            v.name,
            v.workload ?? "-",
            v.resultError !== null
              ? `error: ${oneLine(v.resultError)}`
              : Object.entries(v.results ?? {}).map(([k, n]) => `${k}=${n}`).join(" ") || "-",
          ]),
        )
      }`;
    }
  }
  const objects = d.resources.filter((r) => r.kind !== "VirtualMachine" || r.action !== "created");
  if (objects.length) {
    out += `\nObjects:\n${
      formatTable(
        ["ACTION", "KIND", "NAME", "RUN", "ERROR"],
        objects.map((r) => [r.action, r.kind, r.name, r.sourceRunId ?? "-", oneLine(r.error)]),
      )
    }`;
  }
  if (d.events.length) {
    out += `\nEvents:\n${
      formatTable(
        ["TIME (UTC)", "LEVEL", "REASON", "OBJECT", "MESSAGE"],
        d.events.map((
          ev,
        ) => [timeLabel(ev.at), ev.level, ev.reason, ev.object ?? "-", oneLine(ev.message, 80)]),
      )
    }`;
  }
  if (d.cleanups.length) {
    out += `\nCleaned up by:\n${entriesTable(d.cleanups)}`;
  }
  return out;
}

/** The `audit` command with `list` and `show`. */
export function auditCommand(io: Io, deps: VirtworkDeps = {}): Command {
  const audit = new Command("audit").description(
    "Read the audit trail: what ran, when, with which settings, what it created and removed",
  );
  audit.addCommand(
    new Command("list")
      .description("List runs and cleanups, newest first")
      .option("--config <file>", "YAML configuration file naming audit_db (env VIRTWORK_CONFIG)")
      .option("-o, --output <format>", "table or json", outputArg, "table")
      .option("--limit <n>", "at most this many entries, 0 for all", countArg, 50)
      .option("--operation <name>", "only run or cleanup entries")
      .option(
        "--status <status>",
        "only succeeded, failed, interrupted or unfinished entries",
        statusArg,
      )
      .action(async (_o: unknown, cmd: Command) => {
        const o = cmd.opts() as {
          output: string;
          limit: number;
          operation?: string;
          status?: AuditStatus;
        };
        const { listEntries } = await import("../../lib/audit/mod.ts");
        const entries = await withReader(cmd, deps, (db) =>
          db
            ? listEntries(db, {
              tool: "virtwork",
              limit: o.limit,
              ...(o.operation ? { operation: o.operation } : {}),
              ...(o.status ? { status: o.status } : {}),
            })
            : []);
        io.out(o.output === "json" ? formatJson(entries) : entriesTable(entries));
      }),
  );
  audit.addCommand(
    new Command("show")
      .description("Show one run or cleanup: settings, workloads, VMs, objects, events, cleanups")
      .argument("<run-id>", "run id, or a unique prefix of at least 4 characters")
      .option("--config <file>", "YAML configuration file naming audit_db (env VIRTWORK_CONFIG)")
      .option("-o, --output <format>", "table or json", outputArg, "table")
      .action(async (runId: string, _o: unknown, cmd: Command) => {
        const o = cmd.opts() as { output: string };
        const { entryDetails } = await import("../../lib/audit/mod.ts");
        const details = await withReader(cmd, deps, (db, path) => {
          let d: EntryDetails | undefined;
          try {
            d = db ? entryDetails(db, runId) : undefined;
          } catch (e) {
            throw new ConfigError((e as Error).message);
          }
          if (!d) throw new ConfigError(`no run ${runId} in audit database ${path}`);
          return d;
        });
        io.out(o.output === "json" ? formatJson(details) : detailsText(details));
      }),
  );
  return audit;
}
