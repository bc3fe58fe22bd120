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
import { outputOption, printOutput, withStorage } from "./_storage.ts";

const HEADERS = ["POOL", "STATE", "CAPACITY", "ALLOCATION", "AVAILABLE", "USED", "VOLUMES"];

function row(p: PoolStatus, color: boolean): string[] {
  const used = p.usedPercent === null ? "-" : `${p.usedPercent.toFixed(1)}%`;
  return [
    p.name,
    p.state,
    formatBytes(p.capacity),
    formatBytes(p.allocation),
    formatBytes(p.available),
    p.warning ? paint(used, "red", color) : used,
    p.volumes === null ? "-" : String(p.volumes),
  ];
}

/** `foundry storage status`: capacity and use of every pool, with a warning for nearly full ones. */
export function storageCommand(io: Io): Command {
  const storage = new Command("storage").description("Storage overview across all pools");
  storage.command("status")
    .description(
      `Show every pool's capacity, allocation, available space and volumes; warn above ` +
        `${FULL_WARNING_PERCENT}% full`,
    )
    .addOption(outputOption())
    .action(async (opts: { output: string }, cmd: Command) => {
      const pools = await withStorage(cmd, (lv) => storageStatus(lv));
      const color = colorFor(io);
      printOutput(io, opts.output, pools, HEADERS, pools.map((p) => row(p, color)));
      for (const p of pools.filter((p) => p.warning)) {
        io.err(
          `Warning: pool ${p.name} is ${p.usedPercent}% full (${formatBytes(p.available)} ` +
            `available)\n`,
        );
      }
    });
  return storage;
}
