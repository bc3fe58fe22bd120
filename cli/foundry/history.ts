/**
 * `foundry history [NAME]`: what foundry did, newest first, from the audit database.
 * @module
 */
import { Command, InvalidArgumentError } from "npm:commander@^15.1.0";
import { type AuditEntry, listEntries } from "../../lib/audit/mod.ts";
import { formatJson, formatTable } from "../../lib/output/format.ts";
import { auditSettings, openAuditReader } from "../_audit.ts";
import type { Io } from "../_program.ts";

function outputArg(v: string): "table" | "json" {
  if (v !== "table" && v !== "json") {
    throw new InvalidArgumentError(`expected table or json, got "${v}"`);
  }
  return v;
}

function limitArg(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n) || n < 0) {
    throw new InvalidArgumentError(`expected a whole number, got "${v}"`);
  }
  return n;
}

function cell(s: string | null, max = 60): string {
  if (s === null || s === "") return "-";
  const line = s.replace(/\s+/g, " ");
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** foundry's operations as a table: time, operation, resource, outcome, duration, URI, error. */
export function historyTable(entries: readonly AuditEntry[]): string {
  return formatTable(
    ["STARTED (UTC)", "OPERATION", "TYPE", "NAME", "STATUS", "DURATION", "URI", "ERROR"],
    entries.map((e) => [
      e.startedAt.replace("T", " ").replace(/\.\d+Z$/, ""),
      e.operation,
      e.resourceType ?? "-",
      e.resourceName ?? "-",
      e.finished ? e.status : "unfinished",
      e.durationMs === null ? "-" : `${(e.durationMs / 1000).toFixed(1)}s`,
      e.target ?? "-",
      cell(e.errorSummary),
    ]),
  );
}

/** The `history` command. */
export function historyCommand(io: Io): Command {
  return new Command("history")
    .description(
      "Show what foundry did (create, destroy, start, stop, images, pools), newest first",
    )
    .argument("[name]", "only operations on this VM, image or pool")
    .option("-t, --type <type>", "only this resource type: vm, image or pool")
    .option("--limit <n>", "at most this many entries, 0 for all", limitArg, 50)
    .option("-o, --output <format>", "table or json", outputArg, "table")
    .addHelpText("after", "\nExamples:\n  foundry history\n  foundry history web-01 -o json\n")
    .action(async (name: string | undefined, _o: unknown, cmd: Command) => {
      const o = cmd.opts() as { type?: string; limit: number; output: string };
      const { path } = auditSettings(cmd, "foundry");
      const db = await openAuditReader(path);
      let entries: AuditEntry[] = [];
      try {
        if (db) {
          entries = listEntries(db, {
            tool: "foundry",
            limit: o.limit,
            ...(name !== undefined ? { resourceName: name } : {}),
            ...(o.type !== undefined ? { resourceType: o.type } : {}),
          });
        }
      } finally {
        db?.close();
      }
      io.out(o.output === "json" ? formatJson(entries) : historyTable(entries));
    });
}
