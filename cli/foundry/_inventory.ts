/**
 * What `foundry list` and `foundry get` do once their arguments are read, apart from their
 * commander definitions (list.ts, get.ts): the front door (`_launch.ts`) runs these without
 * loading commander, which with Deno's Node compatibility layer it starts was most of list's
 * start-up. This module loads no npm package.
 * @module
 */
import {
  getVm,
  listVms,
  parseLabelSelector,
  type VmListEntry,
} from "../../lib/foundry/inventory.ts";
import type { FoundryConfig } from "../../lib/foundry/config.ts";
import { uuidToString } from "../../lib/libvirt/mod.ts";
import { formatJson, paint } from "../../lib/output/format.ts";
import {
  type Column,
  type ListFormat,
  loadYamlWriter,
  renderListing,
} from "../../lib/output/listing.ts";
import type { FastLaunch } from "../_launch.ts";
import type { FleetGlobals } from "./_fleet.ts";
import { type Io, processIo, runAction } from "../_program.ts";
import { colorFor, configFrom, type GlobalOptions, processEnv, withLibvirt } from "./_context.ts";

/** `-o` and `--no-headers`, as list and get receive them. */
export interface OutputFlags {
  output: ListFormat;
  /** False with `--no-headers`. */
  headers: boolean;
}

/** The options of `foundry list`. */
export interface ListFlags extends OutputFlags {
  all?: boolean;
  selector: string[];
  /** `-w`: keep printing changed rows as events arrive (see `_watch.ts`). */
  watch?: boolean;
}

/**
 * The IP cell: the live address (agent, then lease), or the spec's marked `(spec)` when the VM
 * reports none, so a configured address is never shown as if the guest had it.
 */
export function ipCell(v: Pick<VmListEntry, "ip" | "addresses">): string {
  if (v.ip) return v.ip;
  const spec = v.addresses.find((a) => a.source === "spec");
  return spec ? `${spec.ip} (spec)` : "-";
}

/** The columns of `foundry list` (and `get -o table|wide`); `color` paints the state. */
export function vmColumns(color: boolean): Column<VmListEntry>[] {
  return [
    { header: "NAME", value: (v) => v.managed ? v.name : `${v.name} (not foundry)` },
    {
      header: "STATE",
      value: (v) => paint(v.state, v.state === "running" ? "green" : "dim", color),
    },
    { header: "VCPUS", value: (v) => String(v.vcpus) },
    {
      header: "MEMORY",
      value: (v) => v.memoryMiB % 1024 === 0 ? `${v.memoryMiB / 1024} GiB` : `${v.memoryMiB} MiB`,
    },
    { header: "IP ADDRESS", value: ipCell },
    { header: "UUID", value: (v) => v.uuid, wide: true },
    {
      header: "AUTOSTART",
      value: (v) => v.autostart === null ? "-" : v.autostart ? "yes" : "no",
      wide: true,
    },
    {
      header: "LABELS",
      value: (v) => {
        const l = Object.entries(v.labels).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
          .map(([k, x]) => `${k}=${x}`).join(",");
        return l || "<none>";
      },
      wide: true,
    },
    {
      header: "ADDRESS SOURCE",
      value: (v) => v.ipSource || (v.addresses.length ? "spec" : "-"),
      wide: true,
    },
  ];
}

/**
 * Prints VM rows as `flags` ask (as cli/_listing.ts's printListing); rows of several hosts (see
 * `_fleet.ts`) carry `host`, shown in a first HOST column.
 */
export async function printVms(
  io: Io,
  flags: OutputFlags,
  vms: readonly (VmListEntry & { host?: string })[],
  empty?: string,
): Promise<void> {
  if (flags.output === "yaml") await loadYamlWriter();
  const columns: Column<VmListEntry & { host?: string }>[] = vmColumns(colorFor(io));
  if (vms.some((v) => v.host !== undefined)) {
    columns.unshift({ header: "HOST", value: (v) => v.host ?? "-" });
  }
  const { out, err } = renderListing(vms, {
    columns,
    kind: "vm",
    name: (v) => v.name,
    format: flags.output,
    noHeaders: flags.headers === false,
    ...(empty === undefined ? {} : { empty }),
  });
  if (out) io.out(out);
  if (err) io.err(err);
}

/** `foundry list`: the VMs (every domain with `--all`) matching the selector. */
export async function runList(
  io: Io,
  flags: ListFlags,
  config: () => Promise<FoundryConfig>,
  fleet?: FleetGlobals,
): Promise<void> {
  // A bad selector fails before any connection.
  const selector = flags.selector.length ? parseLabelSelector(flags.selector) : undefined;
  if (fleet?.host !== undefined || fleet?.hostSelector !== undefined) {
    // Loaded only with --host/--host-selector: the single-host list loads nothing more.
    const { runFleetList } = await import("./_fleet.ts");
    return runFleetList(io, flags, await config(), fleet, selector);
  }
  if (flags.watch === true) {
    // Loaded only with -w: a plain list never loads the event code.
    const { watchList } = await import("./_watch.ts");
    return watchList(io, flags, await config(), selector);
  }
  const { vms } = await withLibvirt(await config(), (lv) =>
    listVms(lv, {
      all: flags.all === true,
      autostart: flags.output === "wide",
      ...(selector ? { selector } : {}),
    }));
  await printVms(io, flags, vms, "No VMs found");
}

/** `foundry get NAME` and `foundry vm info NAME`: the stored spec with its live status. */
export async function runGet(
  io: Io,
  name: string,
  flags: OutputFlags,
  config: FoundryConfig,
  fleet?: FleetGlobals,
): Promise<void> {
  if (fleet?.host !== undefined || fleet?.hostSelector !== undefined) {
    return (await import("./_fleet.ts")).runFleetGet(io, name, flags, config, fleet);
  }
  const got = await withLibvirt(config, (lv) => getVm(lv, name.toLowerCase()));
  const { vm } = got;
  if (flags.output === "json") return io.out(formatJson(vm));
  if (flags.output === "yaml") {
    const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
    return io.out(formatYamlDocuments([vm]));
  }
  await printVms(io, flags, [getRowOf(got)]);
}

/** The list row of what `getVm` read: the spec's sizes, what the VM was defined with. */
export function getRowOf(got: Awaited<ReturnType<typeof getVm>>): VmListEntry {
  const { vm } = got;
  const live = got.ips.find((a) => a.source !== "spec");
  // The spec's sizes: what the VM was defined with (list shows the daemon's live figures).
  return {
    name: vm.metadata.name,
    state: got.state,
    phase: vm.status?.phase ?? "",
    vcpus: vm.spec.vcpus,
    memoryMiB: Math.round(vm.spec.memoryGiB * 1024),
    ip: live?.ip ?? "",
    ipSource: live ? live.source as "agent" | "lease" : "",
    addresses: got.ips,
    uuid: uuidToString(got.domain.uuid),
    autostart: got.autostart,
    managed: true,
    labels: vm.metadata.labels ?? {},
  };
}

/** Root options as the front door read them (long spellings) → commander's keys. */
function globalsOf(root: FastLaunch["root"]): GlobalOptions {
  const g: Record<string, string | boolean> = {};
  for (const [k, v] of Object.entries(root)) {
    g[k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = v;
  }
  return g as GlobalOptions;
}

/**
 * Runs the `list` or `get` the front door read from `args`, as commander would run it (the same
 * configuration, output, error lines and exit codes); `env` replaces the process's environment.
 */
export function runFast(
  fast: FastLaunch,
  args: string[],
  io: Io = processIo,
  env?: Record<string, string | undefined>,
): Promise<number> {
  const lookup = env ? (name: string) => env[name] || undefined : undefined;
  const config = () => configFrom(globalsOf(fast.root), lookup);
  const o = fast.options as unknown as ListFlags;
  return runAction(args, io, async () => {
    // FOUNDRY_HOST_TIMEOUT as fleetGlobals() reads it (_fleet.ts loads only with --host).
    const fleet: FleetGlobals = {
      ...globalsOf(fast.root) as FleetGlobals,
      hostTimeout: (lookup ?? processEnv)("FOUNDRY_HOST_TIMEOUT"),
    };
    if (fast.command === "list") await runList(io, o, config, fleet);
    else await runGet(io, fast.operands[0]!, o, await config(), fleet);
  });
}
