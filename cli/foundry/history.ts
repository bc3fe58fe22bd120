/**
 * `foundry history [NAME]`: what foundry did, newest first, from the audit database.
 * @module
 */
import { Command, InvalidArgumentError } from "npm:commander@^15.1.0";
import type { AuditEntry } from "../../lib/audit/mod.ts";
import type { Column } from "../../lib/output/listing.ts";
import { addListingOptions, type ListingFlags, printListing } from "../_listing.ts";
import { auditSettings, openAuditReader } from "../_audit.ts";
import type { Io } from "../_program.ts";

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

/** Columns of `foundry history`; `-o wide` adds the entry's id and end time. */
export const HISTORY_COLUMNS: Column<AuditEntry>[] = [
  { header: "STARTED (UTC)", value: (e) => utc(e.startedAt) },
  { header: "OPERATION", value: (e) => e.operation },
  { header: "TYPE", value: (e) => e.resourceType ?? "-" },
  { header: "NAME", value: (e) => e.resourceName ?? "-" },
  { header: "STATUS", value: (e) => e.finished ? e.status : "unfinished" },
  {
    header: "DURATION",
    value: (e) => e.durationMs === null ? "-" : `${(e.durationMs / 1000).toFixed(1)}s`,
  },
  { header: "URI", value: (e) => e.target ?? "-" },
  { header: "ERROR", value: (e) => cell(e.errorSummary) },
  { header: "ID", value: (e) => e.runId, wide: true },
  { header: "FINISHED (UTC)", value: (e) => e.finishedAt ? utc(e.finishedAt) : "-", wide: true },
];

function utc(iso: string): string {
  return iso.replace("T", " ").replace(/\.\d+Z$/, "");
}

/** The `history` command. */
export function historyCommand(io: Io): Command {
  const cmd = new Command("history")
    .description(
      "Show what foundry did (create, destroy, start, stop, images, pools), newest first",
    )
    .argument("[name]", "only operations on this VM, image or pool")
    .option("-t, --type <type>", "only this resource type: vm, image or pool")
    .option("--limit <n>", "at most this many entries, 0 for all", limitArg, 50);
  return addListingOptions(cmd)
    .addHelpText(
      "after",
      "\n-o wide adds each entry's ID and end time; -o name prints operation/ID lines." +
        "\n\nExamples:\n  foundry history\n  foundry history web-01 -o json\n",
    )
    .action(async (name: string | undefined, _o: unknown, cmd: Command) => {
      const o = cmd.opts() as ListingFlags & { type?: string; limit: number };
      const { path } = auditSettings(cmd, "foundry");
      const db = await openAuditReader(path);
      let entries: AuditEntry[] = [];
      try {
        if (db) {
          const { listEntries } = await import("../../lib/audit/mod.ts");
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
      printListing(io, o, entries, {
        columns: HISTORY_COLUMNS,
        kind: "operation",
        name: (e) => e.runId,
        empty: "No operations recorded",
      });
    });
}
