/**
 * The fleet side of foundry's commands (`--host`, `--host-selector`, `--parallel`): `list` and
 * `get` across hosts with a HOST column, and the hosts a lifecycle command (`destroy`, `start`,
 * `stop`, `restart`) acts on. Loaded only when `--host` or `--host-selector` is given, so the
 * single-host commands load nothing of it. The work is lib/foundry/fleet.ts's; this module turns
 * outcomes into lines and exit codes: each failed host on its own line, and exit code 7
 * (`EXIT_PARTIAL`) when some hosts failed and others did not.
 * @module
 */
import type { Command } from "npm:commander@^15.1.0";
import {
  fanOut,
  HostPool,
  type HostSelection,
  HostSelectionError,
  MAX_PARALLEL,
  outcomeSummary,
  parseParallel,
  selectHosts,
  wantsFleet,
} from "../../lib/foundry/fleet.ts";
import { EXIT_PARTIAL, type HostEntry, type HostOutcome } from "../../lib/foundry/fleet_types.ts";
import { IMAGE_ELSEWHERE } from "../../lib/foundry/placement.ts";
import type { FoundryConfig } from "../../lib/foundry/config.ts";
import type { VmListEntry } from "../../lib/foundry/inventory.ts";
import type { LabelSelector } from "../../lib/config/selector.ts";
import type { Libvirt } from "../../lib/libvirt/mod.ts";
import { sanitizeText } from "../../lib/output/sanitize.ts";
import { errorText, ExitCode, exitCodeFor, type Io, setExitCode } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { envOf, globals, processEnv, withLibvirt } from "./_context.ts";
import type { ListFlags, OutputFlags } from "./_inventory.ts";
import { resolveTargets, type TargetOptions, targetsOrNote, vmExists } from "./_targets.ts";

/** The fleet's root options, as commander (or the front door) gives them. */
export interface FleetGlobals {
  host?: string;
  hostSelector?: string;
  parallel?: string;
  /**
   * Seconds a host may take to connect: FOUNDRY_HOST_TIMEOUT of the program's environment (an env
   * record given to `main`, else the process's), undefined when unset. Options built without it
   * (no key at all) read the process's environment.
   */
  hostTimeout?: string | undefined;
}

/** The fleet options of `cmd`'s program, with FOUNDRY_HOST_TIMEOUT from its environment. */
export function fleetGlobals(cmd: Command): FleetGlobals {
  return withHostTimeout(globals(cmd) as FleetGlobals, envOf(cmd));
}

/** `g` with FOUNDRY_HOST_TIMEOUT of the environment lookup `env`. */
export function withHostTimeout(
  g: FleetGlobals,
  env: (name: string) => string | undefined,
): FleetGlobals {
  return { ...g, hostTimeout: env("FOUNDRY_HOST_TIMEOUT") };
}

/** Whether the options ask for a fleet. */
export function isFleet(g: FleetGlobals | undefined): g is FleetGlobals {
  return g !== undefined && wantsFleet(g);
}

function usage(message: string): Error {
  return Object.assign(new Error(message), { exitCode: ExitCode.VALIDATION });
}

/** An open fleet: the chosen hosts, their connection pool and how many at a time. */
export interface Fleet {
  hosts: HostEntry[];
  pool: HostPool;
  parallel: number;
}

/** How long a host may take to connect, from `text` in seconds (FOUNDRY_HOST_TIMEOUT; default 10). */
function hostTimeoutMs(text: string | undefined): number | undefined {
  if (text === undefined || text === "") return undefined;
  const s = Number(text);
  if (!Number.isFinite(s) || s <= 0 || s > 3600) {
    throw usage(`Invalid host connect timeout '${text.slice(0, 20)}': expected seconds above 0`);
  }
  return s * 1000;
}

/** A host selection's error as the user gave the selection: with its flags. */
function selectionText(e: HostSelectionError): string {
  switch (e.problem) {
    case "noHostsList":
      return "--host and --host-selector need a hosts: list in the configuration file (see 'Fleets of hosts' in the README)";
    case "noNames":
      return "--host needs NAME[,NAME...] or all";
    case "noMatch":
      return `No configured host matches --host-selector ${e.hostSelector}`;
    default:
      return e.message;
  }
}

/** Chooses the hosts (a bad `--host`/`--host-selector`/`--parallel` is a usage error, exit 2). */
export function openFleet(config: FoundryConfig, g: FleetGlobals): Fleet {
  let hosts: HostEntry[];
  let parallel: number;
  try {
    const sel: HostSelection = {};
    if (g.host !== undefined) sel.host = g.host;
    if (g.hostSelector !== undefined) sel.hostSelector = g.hostSelector;
    hosts = selectHosts(config.hosts, sel);
  } catch (e) {
    if (e instanceof HostSelectionError) throw usage(selectionText(e));
    throw e;
  }
  try {
    parallel = parseParallel(g.parallel);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw usage(
      `Invalid --parallel '${
        g.parallel?.slice(0, 20)
      }': expected a whole number from 1 to ${MAX_PARALLEL}`,
    );
  }
  const signal = interruptSignal();
  const timeout = hostTimeoutMs(
    "hostTimeout" in g ? g.hostTimeout : processEnv("FOUNDRY_HOST_TIMEOUT"),
  );
  const pool = new HostPool({
    ...(signal ? { signal } : {}),
    ...(timeout === undefined ? {} : { connectTimeoutMs: timeout }),
  });
  return { hosts, pool, parallel };
}

/** Runs `fn` on every chosen host (see `fanOut`), then closes the pool. */
export async function onHosts<T>(
  fleet: Fleet,
  fn: (host: HostEntry, lv: Libvirt) => Promise<T>,
): Promise<HostOutcome<T>[]> {
  try {
    return await fanOut(fleet.hosts, fleet.parallel, fleet.pool, fn);
  } finally {
    await fleet.pool.closeAll();
  }
}

/** One line for a failed host. */
export function hostErrorLine(host: string, err: Error): string {
  return `Error: host ${host}: ${sanitizeText(errorText(err), { singleLine: true })}\n`;
}

/**
 * Prints each failed host on its own line (unless `printed`: the caller did as they failed), then,
 * when any failed, throws the summary: exit 7 when others succeeded, else the failures' own code.
 */
export function finishOutcomes(
  io: Io,
  outcomes: readonly HostOutcome<unknown>[],
  printed = false,
): void {
  if (!printed) { for (const o of outcomes) if (!o.ok) io.err(hostErrorLine(o.host, o.error)); }
  const { failed, partial } = outcomeSummary(outcomes);
  if (failed.length === 0) return;
  const errors = outcomes.flatMap((o) => o.ok ? [] : [o.error]);
  const code = partial ? EXIT_PARTIAL : Math.max(...errors.map((e) => exitCodeFor(e)));
  throw Object.assign(
    new Error(
      partial
        ? `${failed.length} of ${outcomes.length} hosts failed: ${failed.join(", ")}`
        : `every host failed: ${failed.join(", ")}`,
    ),
    { exitCode: code },
  );
}

/** A VM row with its host. */
export type HostVmRow = VmListEntry & { host: string };

/** `foundry list --host ...`: every chosen host's VMs, with a HOST column. */
export async function runFleetList(
  io: Io,
  flags: ListFlags,
  config: FoundryConfig,
  g: FleetGlobals,
  selector: LabelSelector | undefined,
): Promise<void> {
  if (flags.watch === true) throw usage("list -w works on one host: leave out --host");
  const fleet = openFleet(config, g);
  const { listVms } = await import("../../lib/foundry/inventory.ts");
  const outcomes = await onHosts(fleet, async (host, lv) =>
    (await listVms(lv, {
      all: flags.all === true,
      autostart: flags.output === "wide",
      ...(selector ? { selector } : {}),
    })).vms.map((v): HostVmRow => ({ host: host.name, ...v })));
  const rows = outcomes.flatMap((o) => o.ok ? o.value : []);
  const { printVms } = await import("./_inventory.ts");
  await printVms(io, flags, rows, "No VMs found");
  finishOutcomes(io, outcomes);
}

/** `foundry get NAME --host ...`: the VM on whichever chosen host has it. */
export async function runFleetGet(
  io: Io,
  name: string,
  flags: OutputFlags,
  config: FoundryConfig,
  g: FleetGlobals,
): Promise<void> {
  const fleet = openFleet(config, g);
  const { getVm } = await import("../../lib/foundry/inventory.ts");
  const { VmNotFoundError } = await import("../../lib/foundry/vm_errors.ts");
  const outcomes = await onHosts(fleet, async (_host, lv) => {
    try {
      return await getVm(lv, name.toLowerCase());
    } catch (e) {
      if (e instanceof VmNotFoundError) return undefined;
      throw e;
    }
  });
  const found = outcomes.flatMap((o) => o.ok && o.value ? [{ host: o.host, got: o.value }] : []);
  const failed = outcomes.some((o) => !o.ok);
  if (found.length === 0) {
    for (const o of outcomes) if (!o.ok) io.err(hostErrorLine(o.host, o.error));
    const searched = outcomes.filter((o) => o.ok).map((o) => o.host);
    throw Object.assign(
      new Error(
        `VM '${sanitizeText(name.slice(0, 100), { singleLine: true })}' not found on ${
          searched.length
            ? `host${searched.length > 1 ? "s" : ""} ${searched.join(", ")}`
            : "any host"
        }${failed ? " (some hosts did not answer)" : ""}`,
      ),
      {
        exitCode: failed
          ? (searched.length ? EXIT_PARTIAL : ExitCode.CONNECTION)
          : ExitCode.VM_OPERATION,
      },
    );
  }
  if (flags.output === "json") {
    const { formatJson } = await import("../../lib/output/format.ts");
    const docs = found.map((f) => ({ host: f.host, ...f.got.vm }));
    io.out(formatJson(docs.length === 1 ? docs[0] : docs));
  } else if (flags.output === "yaml") {
    const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
    io.out(formatYamlDocuments(found.map((f) => ({ host: f.host, ...f.got.vm }))));
  } else {
    const { getRowOf, printVms } = await import("./_inventory.ts");
    await printVms(io, flags, found.map((f) => ({ host: f.host, ...getRowOf(f.got) })));
  }
  finishOutcomes(io, outcomes);
}

/** An `Io` that starts every line with `host: ` (no live status lines: several hosts share it). */
export function hostIo(io: Io, host: string): Io {
  const prefix = (write: (s: string) => void) => {
    let atStart = true;
    return (s: string) => {
      if (s === "") return;
      const lines = s.split("\n");
      const text = lines.map((l, i) => {
        const start = i === 0 ? atStart : true;
        if (i === lines.length - 1 && l === "") return "";
        return start ? `${host}: ${l}` : l;
      }).join("\n");
      atStart = s.endsWith("\n");
      write(text);
    };
  };
  return { out: prefix(io.out), err: prefix(io.err), isTerminal: false };
}

/**
 * The single-host or fleet run of a lifecycle command. Without `--host`/`--host-selector`: one
 * connection and the targets exactly as before. With them: finds the targets on each chosen host
 * (`-l`: the matching VMs of every host; names: the host that has each, refusing a name that two
 * hosts have), then calls `fn` per host with its own targets and a host-prefixed output, at most
 * `--parallel` hosts at once; a failed host is reported on its own line.
 */
export async function withTargets(
  cmd: Command,
  io: Io,
  config: FoundryConfig,
  names: readonly string[],
  opts: TargetOptions,
  fn: (lv: Libvirt, io: Io, targets: string[]) => Promise<void>,
): Promise<void> {
  if (!isFleet(fleetGlobals(cmd))) {
    return withLibvirt(config, async (lv) => fn(lv, io, await targetsOrNote(io, lv, names, opts)));
  }
  const fleet = openFleet(config, fleetGlobals(cmd));
  const wanted = [...new Set(names.map((n) => n.toLowerCase()))];
  try {
    const found = await fanOut(fleet.hosts, fleet.parallel, fleet.pool, async (_h, lv) => {
      if (opts.selector?.length) return await resolveTargets(lv, names, opts);
      const here = await Promise.all(wanted.map((n) => vmExists(lv, n)));
      return wanted.filter((_, i) => here[i]);
    });
    let worst = ExitCode.OK as number;
    const perHost = new Map<string, string[]>();
    for (const o of found) if (o.ok) perHost.set(o.host, o.value);
    for (const n of wanted) {
      const on = [...perHost].filter(([, t]) => t.includes(n)).map(([h]) => h);
      if (on.length > 1) {
        io.err(
          `Error: VM '${n}' exists on hosts ${on.join(", ")}: choose one with --host\n`,
        );
        for (const h of on) perHost.set(h, perHost.get(h)!.filter((t) => t !== n));
        worst = Math.max(worst, ExitCode.VALIDATION);
      } else if (on.length === 0 && found.every((o) => o.ok)) {
        if (opts.ignoreNotFound) io.out(`VM '${n}' does not exist; nothing to do\n`);
        else {
          io.err(
            `Error: VM '${n}' not found on hosts ${fleet.hosts.map((h) => h.name).join(", ")}\n`,
          );
          worst = Math.max(worst, ExitCode.VM_OPERATION);
        }
      }
    }
    if (opts.selector?.length && [...perHost.values()].every((t) => t.length === 0)) {
      io.err(
        `No VMs match -l ${sanitizeText(opts.selector.join(","), { singleLine: true })}\n`,
      );
    }
    const busy = fleet.hosts.filter((h) => (perHost.get(h.name) ?? []).length > 0);
    const acted = await fanOut(
      busy,
      fleet.parallel,
      fleet.pool,
      (h, lv) => fn(lv, hostIo(io, h.name), perHost.get(h.name)!),
    );
    // A host that failed to list counts as failed with those that failed to act.
    const outcomes: HostOutcome<unknown>[] = [
      ...found.filter((o) => !o.ok),
      ...acted,
    ];
    const reported = outcomes.length > 0 && outcomes.some((o) => !o.ok);
    if (worst !== ExitCode.OK) setExitCode(cmd, worst);
    if (reported) {
      // Hosts with nothing to do succeeded too.
      const okHosts = fleet.hosts.filter((h) => !outcomes.some((o) => o.host === h.name))
        .map((h): HostOutcome<unknown> => ({ host: h.name, ok: true, value: undefined }));
      finishOutcomes(io, [...outcomes, ...okHosts]);
    }
  } finally {
    await fleet.pool.closeAll();
  }
}

/**
 * `message` with the flag that copies a boot image between hosts after lib's words saying another
 * host has it (placement's and move's refusals).
 */
export function withCopyImageFlag(message: string): string {
  return message.replaceAll(`(${IMAGE_ELSEWHERE})`, `(${IMAGE_ELSEWHERE}: --copy-image copies it)`);
}
