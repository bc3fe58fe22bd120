/**
 * `foundry history [NAME]`: what foundry did, newest first, from the audit database.
 * @module
 */
import { Command } from "npm:commander@^15.1.0";
import { countArg } from "../_args.ts";
import type { AuditEntry } from "../../lib/audit/mod.ts";
import type { Column } from "../../lib/output/listing.ts";
import { addListingOptions, type ListingFlags, printListing } from "../_listing.ts";
import { auditSettings, durationLabel, oneLine, openAuditReader, timeLabel } from "../_audit.ts";
import type { Io } from "../_program.ts";

/** Columns of `foundry history`; `-o wide` adds the entry's id and end time. */
export const HISTORY_COLUMNS: Column<AuditEntry>[] = [
  { header: "STARTED (UTC)", value: (e) => timeLabel(e.startedAt) },
  { header: "OPERATION", value: (e) => e.operation },
  { header: "TYPE", value: (e) => e.resourceType ?? "-" },
  { header: "NAME", value: (e) => e.resourceName ?? "-" },
  { header: "STATUS", value: (e) => e.finished ? e.status : "unfinished" },
  { header: "DURATION", value: (e) => durationLabel(e.durationMs) },
  { header: "URI", value: (e) => e.target ?? "-" },
  { header: "ERROR", value: (e) => oneLine(e.errorSummary) },
  { header: "ID", value: (e) => e.runId, wide: true },
  { header: "FINISHED (UTC)", value: (e) => timeLabel(e.finishedAt), wide: true },
];

/** The `history` command. */
export function historyCommand(io: Io): Command {
  const cmd = new Command("history")
    .description(
      "Show what foundry did (create, destroy, start, stop, images, pools), newest first",
    )
    .argument("[name]", "only operations on this VM, image or pool")
    .option("-t, --type <type>", "only this resource type: vm, image or pool")
    .option("--limit <n>", "at most this many entries, 0 for all", countArg, 50);
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
