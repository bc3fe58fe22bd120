import { Command } from "npm:commander@^15.1.0";
import {
  FULL_WARNING_PERCENT,
  type PoolStatus,
  storageStatus,
} from "../../lib/foundry/storage_status.ts";
import { paint } from "../../lib/output/mod.ts";
import { formatBytes } from "../../lib/output/progress.ts";
import type { Io } from "../_program.ts";
import { colorFor } from "./_context.ts";
import { withStorage } from "./_storage.ts";
import type { Column } from "../../lib/output/listing.ts";
import { addListingOptions, type ListingFlags, printListing } from "../_listing.ts";

function columns(color: boolean): Column<PoolStatus>[] {
  return [
    { header: "POOL", value: (p) => p.name },
    { header: "STATE", value: (p) => p.state },
    { header: "CAPACITY", value: (p) => formatBytes(p.capacity) },
    { header: "ALLOCATION", value: (p) => formatBytes(p.allocation) },
    { header: "AVAILABLE", value: (p) => formatBytes(p.available) },
    {
      header: "USED",
      value: (p) => {
        const used = p.usedPercent === null ? "-" : `${p.usedPercent.toFixed(1)}%`;
        return p.warning ? paint(used, "red", color) : used;
      },
    },
    { header: "VOLUMES", value: (p) => p.volumes === null ? "-" : String(p.volumes) },
    { header: "TYPE", value: (p) => p.type, wide: true },
    { header: "PATH", value: (p) => p.path ?? "-", wide: true },
  ];
}

/** `foundry storage status`: capacity and use of every pool, with a warning for nearly full ones. */
export function storageCommand(io: Io): Command {
  const storage = new Command("storage").description("Storage overview across all pools");
  const status = storage.command("status");
  addListingOptions(status);
  status
    .description(
      `Show every pool's capacity, allocation, available space and volumes; warn above ` +
        `${FULL_WARNING_PERCENT}% full`,
    )
    .addHelpText("after", "\n-o wide adds TYPE and PATH; -o name prints pool/NAME.\n")
    .action(async (opts: ListingFlags, cmd: Command) => {
      const pools = await withStorage(cmd, (lv) => storageStatus(lv));
      printListing(io, opts, pools, {
        columns: columns(colorFor(io)),
        kind: "pool",
        name: (p) => p.name,
        empty: "No pools found",
      });
      for (const p of pools.filter((p) => p.warning)) {
        io.err(
          `Warning: pool ${p.name} is ${p.usedPercent}% full (${formatBytes(p.available)} ` +
            `available)\n`,
        );
      }
    });
  return storage;
}
