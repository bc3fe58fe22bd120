import { Command } from "npm:commander@^15.1.0";
import {
  addPool,
  deletePool,
  listPools,
  POOL_TYPES,
  type PoolDetails,
  poolInfo,
  type PoolSpec,
  type PoolSummary,
  refreshPool,
  type VolumeSummary,
} from "../../lib/foundry/pools.ts";
import { type Column, formatNames } from "../../lib/output/listing.ts";
import { addListingOptions, type ListingFlags, printListing } from "../_listing.ts";
import { formatBytes } from "../../lib/output/progress.ts";
import type { Io } from "../_program.ts";
import { outputOption, printOutput, withStorage } from "./_storage.ts";
import { configFor } from "./_context.ts";
import { withFoundryAudit } from "../_audit.ts";
import { signalOption } from "../_signals.ts";
import { sanitizeText } from "../../lib/output/sanitize.ts";

const POOL_COLUMNS: Column<PoolSummary>[] = [
  { header: "NAME", value: (p) => p.name },
  { header: "TYPE", value: (p) => p.type },
  { header: "STATE", value: (p) => p.state },
  { header: "AUTOSTART", value: (p) => p.autostart ? "yes" : "no" },
  { header: "CAPACITY", value: (p) => formatBytes(p.capacity) },
  { header: "ALLOCATION", value: (p) => formatBytes(p.allocation) },
  { header: "AVAILABLE", value: (p) => formatBytes(p.available) },
  { header: "VOLUMES", value: (p) => p.volumes === null ? "-" : String(p.volumes) },
  { header: "PATH", value: (p) => p.path ?? "-", wide: true },
];

const VOLUME_COLUMNS: Column<VolumeSummary>[] = [
  { header: "VOLUME", value: (v) => v.name },
  { header: "FORMAT", value: (v) => v.format ?? "-" },
  { header: "CAPACITY", value: (v) => formatBytes(v.capacity) },
  { header: "ALLOCATION", value: (v) => formatBytes(v.allocation) },
  { header: "BACKING", value: (v) => v.backingPath ?? "-" },
  { header: "PATH", value: (v) => v.path, wide: true },
];

function printDetails(io: Io, flags: ListingFlags, p: PoolDetails): void {
  const format = flags.output;
  if (format === "name") return io.out(formatNames("pool", [p.name]));
  if (format === "json" || format === "yaml") {
    printOutput(io, format, p, [], []);
    return;
  }
  io.out(sanitizeText(
    [
      `Name:        ${p.name}`,
      `UUID:        ${p.uuid}`,
      `Type:        ${p.type}`,
      `State:       ${p.state}`,
      `Autostart:   ${p.autostart ? "yes" : "no"}`,
      `Path:        ${p.path ?? "-"}`,
      `Capacity:    ${formatBytes(p.capacity)}`,
      `Allocation:  ${formatBytes(p.allocation)}`,
      `Available:   ${formatBytes(p.available)}`,
      `Volumes:     ${p.volumes ?? "-"}`,
    ].join("\n") + "\n",
  ));
  if (p.volumeList.length > 0) {
    io.out("\n");
    printListing(io, flags, p.volumeList, {
      columns: VOLUME_COLUMNS,
      kind: "volume",
      name: (v) => v.name,
    });
  }
}

/** `foundry pool`: list, show, add, delete and refresh libvirt storage pools. */
export function poolCommand(io: Io): Command {
  const pool = new Command("pool").description("Manage libvirt storage pools");

  addListingOptions(
    pool.command("list").alias("ls")
      .description("List pools with type, state, autostart, sizes and volume count"),
  )
    .addHelpText("after", "\n-o wide adds PATH; -o name prints pool/NAME.\n")
    .action(async (opts: ListingFlags, cmd: Command) => {
      const pools = await withStorage(cmd, (lv) => listPools(lv));
      printListing(io, opts, pools, {
        columns: POOL_COLUMNS,
        kind: "pool",
        name: (p) => p.name,
        empty: "No pools found",
      });
    });

  addListingOptions(
    pool.command("info")
      .description("Show a pool's details and its volumes (images' checksum sidecars hidden)")
      .argument("<name>", "pool name"),
  )
    .addHelpText("after", "\n-o wide adds each volume's PATH; -o name prints pool/NAME.\n")
    .action(async (name: string, opts: ListingFlags, cmd: Command) => {
      const p = await withStorage(cmd, (lv) => poolInfo(lv, name));
      printDetails(io, opts, p);
    });

  pool.command("add")
    .description("Define, build, start and autostart a pool")
    .argument("<name>", "pool name")
    .argument("<type>", `pool type: ${POOL_TYPES.join(", ")}`)
    .argument("<target>", "target path (the directory of a dir pool)")
    .option("--source-dev <path>", "source device (fs, logical, disk)")
    .option("--source-host <host>", "source host (netfs, iscsi, rbd, gluster)")
    .option("--source-path <path>", "source directory (netfs, gluster)")
    .option("--source-name <name>", "source name (logical volume group, zfs pool, rbd pool)")
    .option("--source-format <format>", "source format (e.g. nfs, ext4)")
    .addOption(outputOption())
    .addHelpText("after", "\nExamples:\n  foundry pool add my-pool dir /mnt/ssd/foundry\n")
    .action(async (
      name: string,
      type: string,
      target: string,
      opts: {
        output: string;
        sourceDev?: string;
        sourceHost?: string;
        sourcePath?: string;
        sourceName?: string;
        sourceFormat?: string;
      },
      cmd: Command,
    ) => {
      const spec: PoolSpec = { name, type, target };
      if (opts.sourceDev !== undefined) spec.sourceDevice = opts.sourceDev;
      if (opts.sourceHost !== undefined) spec.sourceHost = opts.sourceHost;
      if (opts.sourcePath !== undefined) spec.sourcePath = opts.sourcePath;
      if (opts.sourceName !== undefined) spec.sourceName = opts.sourceName;
      if (opts.sourceFormat !== undefined) spec.sourceFormat = opts.sourceFormat;
      const { uri } = await configFor(cmd);
      const p = await withFoundryAudit(
        cmd,
        { resourceType: "pool", name, uri, operation: "add", details: { type, target } },
        () => withStorage(cmd, (lv) => addPool(lv, spec)),
        signalOption(),
      );
      if (opts.output === "table") io.out(`Pool ${p.name} (${p.type}) added at ${p.path}\n`);
      else if (opts.output === "name") io.out(formatNames("pool", [p.name]));
      else printOutput(io, opts.output, p, [], []);
    });

  pool.command("delete").alias("rm")
    .description("Stop and undefine a pool (never foundry-images or foundry-vms)")
    .argument("<name>", "pool name")
    .option("--force", "delete the pool's volumes too")
    .action(async (name: string, opts: { force?: boolean }, cmd: Command) => {
      const { uri } = await configFor(cmd);
      const deleted = await withFoundryAudit(cmd, {
        resourceType: "pool",
        name,
        uri,
        operation: "delete",
        details: { force: opts.force === true },
      }, () =>
        withStorage(cmd, (lv, config) =>
          deletePool(lv, name, {
            force: opts.force === true,
            protect: [config.imagesPool, config.vmsPool],
          })), signalOption());
      for (const v of deleted) io.out(`Deleted volume ${v}\n`);
      io.out(`Pool ${name} deleted\n`);
    });

  pool.command("refresh")
    .description("Rescan a pool's volumes")
    .argument("<name>", "pool name")
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const p = await withStorage(cmd, (lv) => refreshPool(lv, name));
      io.out(`Pool ${p.name} refreshed: ${p.volumes ?? 0} volume(s)\n`);
    });

  return pool;
}
