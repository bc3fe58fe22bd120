/**
 * `foundry create FILE` on a fleet (issue 16): with a `hosts:` list in the configuration (and no
 * `--connect`), or with `--host`/`--host-selector`, every VM is placed (lib/foundry/placement.ts)
 * after the fleet-wide address book found no conflict (lib/foundry/address_book.ts), a missing
 * boot image is copied with `--copy-image`, and then each host's VMs are created there by create's
 * own per-host run. Nothing is created anywhere until every VM has a host.
 * @module
 */
import type { Command } from "npm:commander@^15.1.0";
import type { FoundryConfig } from "../../lib/foundry/config.ts";
import type { CreateSummary } from "../../lib/foundry/create_many.ts";
import type { VirtualMachine } from "../../lib/foundry/types.ts";
import type { Libvirt } from "../../lib/libvirt/mod.ts";
import { ExitCode, type Io, processIo } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { globals } from "./_context.ts";
import {
  type FleetGlobals,
  fleetGlobals,
  isFleet,
  openFleet,
  withCopyImageFlag,
} from "./_fleet.ts";

/** Options of create that the fleet run reads. */
export interface FleetCreateFlags {
  copyImage?: boolean;
  ignoreUnreachable?: boolean;
  pool?: string;
  output: string;
}

/** Whether `create` places its VMs on a fleet rather than using the one connection. */
export function wantsPlacement(cmd: Command, config: FoundryConfig): boolean {
  if (isFleet(fleetGlobals(cmd))) return true;
  return (config.hosts?.length ?? 0) > 0 && globals(cmd).connect === undefined;
}

function usage(e: Error, code: number = ExitCode.VALIDATION): Error {
  return Object.assign(e, { exitCode: code });
}

/**
 * Places `vms` on the fleet and creates each host's share with `createOn` (create's single-host
 * run), host after host in the configuration's order, stopping at the first host whose create
 * failed. A boot image copied for this run to a host where no VM that uses it was then created is
 * removed.
 * Returns one summary of the whole file.
 */
export async function createPlaced(
  io: Io,
  cmd: Command,
  config: FoundryConfig,
  file: string,
  vms: readonly VirtualMachine[],
  flags: FleetCreateFlags,
  createOn: (lv: Libvirt, vms: readonly VirtualMachine[]) => Promise<CreateSummary | undefined>,
): Promise<CreateSummary> {
  const sel: FleetGlobals = { ...fleetGlobals(cmd) };
  if (sel.host === undefined && sel.hostSelector === undefined) sel.host = "all";
  const fleet = openFleet(config, sel);
  const { planFleetCreate } = await import("../../lib/foundry/fleet_create.ts");
  const say = (s: string) => {
    if (flags.output !== "json") io.out(s);
  };
  try {
    let plan;
    try {
      plan = await planFleetCreate(fleet.pool, fleet.hosts, config.hosts ?? [], vms, config, {
        copyImage: flags.copyImage === true,
        ignoreUnreachable: flags.ignoreUnreachable === true,
        parallel: fleet.parallel,
        ...(flags.pool !== undefined ? { pool: flags.pool } : {}),
      });
    } catch (e) {
      throw await placementRefusal(() => file, e, { copyImage: true, ignoreUnreachable: true });
    }
    for (const u of plan.unreachable) {
      io.err(
        `Warning: host ${u.host} did not answer; its VMs were not checked for conflicts (--ignore-unreachable)\n`,
      );
    }
    for (const p of plan.placed) say(`${p.vm.metadata.name} -> ${p.host}\n`);
    const byHost = new Map<string, VirtualMachine[]>();
    for (const p of plan.placed) byHost.set(p.host, [...(byHost.get(p.host) ?? []), p.vm]);
    const entry = (name: string) => fleet.hosts.find((h) => h.name === name)!;
    const total: CreateSummary = {
      created: [],
      unchanged: [],
      notAttempted: [],
      total: vms.length,
    };
    const order = fleet.hosts.filter((h) => byHost.has(h.name));
    for (const [i, h] of order.entries()) {
      const lv = await fleet.pool.get(h);
      const wanted = plan.placed.flatMap((p) =>
        p.host === h.name && p.copyImage ? [{ vm: p.vm.metadata.name, image: p.copyImage }] : []
      );
      const summary = await withImageCopies(
        io,
        flags.output !== "json",
        (from) => fleet.pool.get(entry(from)),
        lv,
        h.name,
        wanted,
        () => createOn(lv, byHost.get(h.name)!),
      );
      if (summary === undefined) continue;
      total.created.push(...summary.created);
      total.unchanged.push(...summary.unchanged);
      if (summary.failed) {
        total.failed = summary.failed;
        total.notAttempted = [
          ...summary.notAttempted,
          ...order.slice(i + 1).flatMap((o) => byHost.get(o.name)!),
        ];
        break;
      }
    }
    return total;
  } finally {
    await fleet.pool.closeAll();
  }
}

/**
 * The error the user reads for a refusal of the fleet create path (placement, address book):
 * conflicts and placement refusals located in the VM's file (`fileOf`), an incomplete address
 * book as exit 3; with the flags the command has that would help. Anything else is `e`.
 */
export async function placementRefusal(
  fileOf: (vm: string) => string,
  e: unknown,
  has: { copyImage: boolean; ignoreUnreachable: boolean },
): Promise<unknown> {
  const { AddressConflictError, AddressBookIncompleteError } = await import(
    "../../lib/foundry/address_book.ts"
  );
  const { PlacementError } = await import("../../lib/foundry/placement.ts");
  if (e instanceof AddressConflictError) return await located(fileOf, e.conflicts, e);
  if (e instanceof PlacementError) {
    const message = has.copyImage ? withCopyImageFlag(e.message) : e.message;
    return await located(fileOf, [{ vm: e.vmName, path: e.path, message }], e);
  }
  if (e instanceof AddressBookIncompleteError) {
    const hint = has.ignoreUnreachable ? " (--ignore-unreachable creates without those hosts)" : "";
    return usage(new Error(`${e.message}${hint}`, { cause: e }), ExitCode.CONNECTION);
  }
  return e;
}

/** A conflict or placement refusal as the loader reports bad input: file:line:column path. */
async function located(
  fileOf: (vm: string) => string,
  items: readonly { vm: string; path?: string; claim?: { path: string }; message: string }[],
  cause: Error,
): Promise<Error> {
  const { locateField } = await import("./_kubevirt_target.ts");
  const { ValidationError } = await import("../../lib/foundry/errors.ts");
  const texts = new Map<string, string>();
  for (const file of new Set(items.map((c) => fileOf(c.vm)))) {
    try {
      texts.set(file, await Deno.readTextFile(file));
    } catch { /* a directory: the VM's own line is not known */ }
  }
  return new ValidationError(
    items.map((c) => {
      const file = fileOf(c.vm);
      const path = c.claim?.path ?? c.path ?? "metadata.name";
      const { line, column } = locateField(texts.get(file) ?? "", c.vm, path);
      const message = c.message.startsWith(`${path}: `)
        ? c.message.slice(path.length + 2)
        : c.message.replace(new RegExp(`^VM \\S+ ${path.replace(/[.[\]]/g, "\\$&")}: `), "");
      return { file, line, column, path, message: `VM ${c.vm}: ${message}` };
    }).map((p, i, all) =>
      i === all.length - 1 ? { ...p, message: `${p.message}; nothing was created` } : p
    ),
    { cause },
  );
}

/** A boot image a VM placed on a host needs there first (`PlacedVm.copyImage`). */
export interface ImageCopy {
  /** The VM that uses it. */
  vm: string;
  /** Where the image is, and which it is. */
  image: { from: string; pool: string; volume: string };
}

/**
 * Copies each image of `wanted` (each once) to `host` (`dst`) from the host that has it
 * (`source`), then runs `fn`. Afterwards, also when a copy or `fn` failed, a copy stays only if a
 * VM that uses it exists on `dst`: the others are removed (fleet create and apply `--copy-image`).
 */
export async function withImageCopies<T>(
  io: Io,
  announce: boolean,
  source: (host: string) => Promise<Libvirt>,
  dst: Libvirt,
  host: string,
  wanted: readonly ImageCopy[],
  fn: () => Promise<T>,
): Promise<T> {
  const copies = new Map<string, { image: ImageCopy["image"]; vms: string[] }>();
  for (const w of wanted) {
    const key = `${w.image.pool}/${w.image.volume}`;
    const c = copies.get(key) ?? { image: w.image, vms: [] };
    c.vms.push(w.vm);
    copies.set(key, c);
  }
  const copied: { image: ImageCopy["image"]; vms: string[] }[] = [];
  try {
    for (const c of copies.values()) {
      await copyWithProgress(io, announce, await source(c.image.from), dst, c.image, host);
      copied.push(c);
    }
    return await fn();
  } finally {
    for (const c of copied) {
      const made = await Promise.all(
        c.vms.map((n) => dst.domainLookupByName(n).then(() => true, () => false)),
      );
      if (!made.includes(true)) await removeCopy(io, dst, c.image, host);
    }
  }
}

/**
 * Copies boot image `c` from host `c.from` (`src`) to `host` (`dst`) with a progress line; says
 * so on stdout when `announce` (text output).
 */
async function copyWithProgress(
  io: Io,
  announce: boolean,
  src: Libvirt,
  dst: Libvirt,
  c: { from: string; pool: string; volume: string },
  host: string,
): Promise<void> {
  const { copyImageTo } = await import("../../lib/foundry/fleet_create.ts");
  const { createProgress } = await import("../../lib/output/progress.ts");
  const progress = createProgress({
    label: `${c.volume} ${c.from} -> ${host}`,
    isTerminal: io === processIo && Deno.stderr.isTerminal(),
    write: io.err,
  });
  const signal = interruptSignal();
  try {
    const copied = await copyImageTo(src, dst, c.pool, c.volume, {
      onProgress: (n) => progress.update(n),
      ...(signal ? { signal } : {}),
    });
    progress.done();
    if (announce) {
      io.out(
        `Copied image ${c.pool}/${c.volume} from ${c.from} to ${host} (SHA-256 ${copied.sha256})\n`,
      );
    }
  } catch (e) {
    progress.fail();
    throw e;
  }
}

/** Removes the copy of boot image `c` made on `host`, warning (not failing) when it cannot. */
async function removeCopy(
  io: Io,
  lv: Libvirt,
  c: { pool: string; volume: string },
  host: string,
): Promise<void> {
  try {
    const pool = await lv.storagePoolLookupByName(c.pool);
    await lv.storageVolDelete(await lv.storageVolLookupByName(pool, c.volume));
    io.err(`Removed the copy of image ${c.pool}/${c.volume} from ${host}\n`);
  } catch (e) {
    io.err(
      `Warning: the copy of image ${c.pool}/${c.volume} on ${host} could not be removed: ${
        (e as Error).message
      }\n`,
    );
  }
}
