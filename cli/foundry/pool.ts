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
} from "../../lib/foundry/pools.ts";
import { formatBytes } from "../../lib/output/progress.ts";
import type { Io } from "../_program.ts";
import { outputOption, printOutput, withStorage } from "./_storage.ts";
import { configFor } from "./_context.ts";
import { withFoundryAudit } from "../_audit.ts";
import { signalOption } from "../_signals.ts";
import { sanitizeText } from "../../lib/output/sanitize.ts";

const POOL_HEADERS = [
  "NAME",
  "TYPE",
  "STATE",
  "AUTOSTART",
  "CAPACITY",
  "ALLOCATION",
  "AVAILABLE",
  "VOLUMES",
];

function poolRow(p: PoolSummary): string[] {
  return [
    p.name,
    p.type,
    p.state,
    p.autostart ? "yes" : "no",
    formatBytes(p.capacity),
    formatBytes(p.allocation),
    formatBytes(p.available),
    p.volumes === null ? "-" : String(p.volumes),
  ];
}

function printDetails(io: Io, format: string, p: PoolDetails): void {
  if (format !== "table") {
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
    printOutput(
      io,
      "table",
      p,
      ["VOLUME", "FORMAT", "CAPACITY", "ALLOCATION", "BACKING"],
      p.volumeList.map((v) => [
        v.name,
        v.format ?? "-",
        formatBytes(v.capacity),
        formatBytes(v.allocation),
        v.backingPath ?? "-",
      ]),
    );
  }
}

/** `foundry pool`: list, show, add, delete and refresh libvirt storage pools. */
export function poolCommand(io: Io): Command {
  const pool = new Command("pool").description("Manage libvirt storage pools");

  pool.command("list")
    .description("List pools with type, state, autostart, sizes and volume count")
    .addOption(outputOption())
    .action(async (opts: { output: string }, cmd: Command) => {
      const pools = await withStorage(cmd, (lv) => listPools(lv));
      printOutput(io, opts.output, pools, POOL_HEADERS, pools.map(poolRow));
    });

  pool.command("info")
    .description("Show a pool's details and its volumes")
    .argument("<name>", "pool name")
    .addOption(outputOption())
    .action(async (name: string, opts: { output: string }, cmd: Command) => {
      const p = await withStorage(cmd, (lv) => poolInfo(lv, name));
      printDetails(io, opts.output, p);
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
      else printOutput(io, opts.output, p, [], []);
    });

  pool.command("delete")
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
