/**
 * `foundry describe NAME...`: VMs in kubectl-describe style (spec, live state, addresses by
 * source, disks, conditions with their times, recent operations from the audit trail). With
 * `--host`/`--host-selector` each name is looked for on every chosen host (the fleet code is
 * loaded only then).
 * @module
 */
import { Command } from "npm:commander@^15.1.0";
import {
  type DescribedOperation,
  describeVm,
  type VmDescription,
} from "../../lib/foundry/describe.ts";
import type { HostVmDescription } from "../../lib/foundry/fleet_describe.ts";
import { VmNotFoundError } from "../../lib/foundry/vm_errors.ts";
import { formatJson, formatTable, sanitizeText } from "../../lib/output/mod.ts";
import { formatBytes } from "../../lib/output/progress.ts";
import { auditSettings, durationLabel, oneLine, openAuditReader, timeLabel } from "../_audit.ts";
import { ExitCode, type Io, setExitCode } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { checkChoice, configFor, globals, withLibvirt } from "./_context.ts";
import type { FleetGlobals } from "./_fleet.ts";

const FORMATS = ["text", "json", "yaml"] as const;
/** Operations of the audit trail shown. */
const RECENT_OPERATIONS = 10;
/** Entries read to find a host's recent operations among those of same-named VMs elsewhere. */
const RECENT_SCAN = 200;

const clean = (s: string) => sanitizeText(s, { singleLine: true });

/** A value of the spec as one line (objects as `k=v` pairs, lists joined). */
function scalar(v: unknown): string {
  if (v === null || v === undefined) return "-";
  if (typeof v !== "object") return clean(String(v));
  return clean(JSON.stringify(v));
}

/** The spec (any shape) as indented `Key: value` lines, lists item by item. */
function specLines(value: unknown, indent: string): string[] {
  const out: string[] = [];
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      if (item !== null && typeof item === "object") {
        out.push(`${indent}[${i}]:`, ...specLines(item, `${indent}  `));
      } else out.push(`${indent}- ${scalar(item)}`);
    });
    return out;
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v !== null && typeof v === "object" && Object.keys(v).length) {
      out.push(`${indent}${clean(k)}:`, ...specLines(v, `${indent}  `));
    } else out.push(`${indent}${clean(k)}: ${scalar(v)}`);
  }
  return out;
}

const indent = (text: string, by = "  ") =>
  text.trimEnd().split("\n").map((l) => by + l).join("\n") + "\n";

const pairs = (m: Record<string, string>) => {
  const e = Object.entries(m).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
  return e.length ? e.map(([k, v]) => clean(`${k}=${v}`)).join(", ") : "<none>";
};

/** `d` as kubectl describe prints an object; with `host`, a `Host:` line after its name. */
export function formatDescription(d: VmDescription, host?: string): string {
  const field = (k: string, v: string) => `${`${k}:`.padEnd(14)}${v}\n`;
  let s = "";
  s += field("Name", clean(d.name));
  if (host !== undefined) s += field("Host", clean(host));
  s += field("UUID", d.uuid);
  s += field("Managed", d.managed ? "yes (foundry)" : "no (not created by foundry)");
  s += field("Labels", pairs(d.labels));
  s += field("Annotations", pairs(d.annotations));
  if (d.generation !== null) s += field("Generation", String(d.generation));
  s += "Spec:\n";
  s += d.spec ? specLines(d.spec, "  ").join("\n") + "\n" : "  <none>\n";
  s += "Live:\n";
  s += indent(
    field("State", `${d.live.state} (${d.live.phase})`) +
      field("vCPUs", String(d.live.vcpus)) +
      field("Memory", `${d.live.memoryMiB} MiB (max ${d.live.maxMemoryMiB} MiB)`) +
      field("CPU time", `${d.live.cpuTimeSeconds.toFixed(1)} s`) +
      field("Autostart", d.live.autostart ? "yes" : "no"),
  );
  s += "Addresses:\n";
  s += d.addresses.length
    ? indent(formatTable(
      ["SOURCE", "ADDRESS", "INTERFACE", "MAC"],
      d.addresses.map((a) => [
        a.source,
        a.prefix === null ? a.ip : `${a.ip}/${a.prefix}`,
        a.interface ?? "-",
        a.mac ?? "-",
      ]),
    ))
    : "  <none>\n";
  s += "Disks:\n";
  s += d.disks.length
    ? indent(formatTable(
      ["TARGET", "DEVICE", "SOURCE", "CAPACITY", "ALLOCATION"],
      d.disks.map((x) => [
        x.target || "-",
        x.device,
        x.source,
        x.capacity === null ? "-" : formatBytes(x.capacity),
        x.allocation === null ? `- (${x.error ?? "unknown"})` : formatBytes(x.allocation),
      ]),
    ))
    : "  <none>\n";
  s += "Conditions:\n";
  s += indent(formatTable(
    ["TYPE", "STATUS", "LAST TRANSITION (UTC)", "REASON", "MESSAGE"],
    d.conditions.map((c) => [
      c.type,
      c.status,
      timeLabel(c.lastTransitionTime),
      c.reason,
      c.message,
    ]),
  ));
  s += "Events:\n";
  s += d.events.length
    ? indent(formatTable(
      ["STARTED (UTC)", "OPERATION", "STATUS", "DURATION", "ERROR"],
      d.events.map((e) => [
        timeLabel(e.startedAt),
        e.operation,
        e.status,
        durationLabel(e.durationMs),
        oneLine(e.error),
      ]),
    ))
    : "  <none>\n";
  return s;
}

/**
 * The VM's recent operations from foundry's audit database; none when there is none. With
 * `target` (a fleet host's URI), only the operations on that host.
 */
async function recentOperations(
  cmd: Command,
  name: string,
  target?: string,
): Promise<DescribedOperation[]> {
  const { path, enabled } = auditSettings(cmd, "foundry");
  if (!enabled) return [];
  const db = await openAuditReader(path);
  if (!db) return [];
  try {
    const { listEntries } = await import("../../lib/audit/mod.ts");
    return listEntries(db, {
      tool: "foundry",
      resourceType: "vm",
      resourceName: name,
      limit: target === undefined ? RECENT_OPERATIONS : RECENT_SCAN,
    }).filter((e) => target === undefined || e.target === target).slice(0, RECENT_OPERATIONS).map((
      e,
    ) => ({
      startedAt: e.startedAt,
      operation: e.operation,
      status: e.finished ? e.status : "unfinished",
      durationMs: e.durationMs,
      error: e.errorSummary,
    }));
  } finally {
    db.close();
  }
}

/** Adds the recent operations to `d`; an unreadable audit database only loses that section. */
async function withOperations(
  cmd: Command,
  io: Io,
  d: VmDescription,
  target?: string,
): Promise<void> {
  try {
    d.events = await recentOperations(cmd, d.name, target);
  } catch (e) {
    io.err(`Warning: recent operations not read: ${clean((e as Error).message)}\n`);
  }
}

/** Prints descriptions: text blocks (a blank line apart), or JSON/YAML (a list when `asList`). */
async function printDescriptions(
  io: Io,
  output: string,
  items: { host?: string; d: VmDescription }[],
  asList: boolean,
): Promise<void> {
  const docs = items.map((x) => x.host === undefined ? x.d : { host: x.host, ...x.d });
  if (output === "json") return io.out(formatJson(asList ? docs : docs[0]));
  if (output === "yaml") {
    const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
    return io.out(formatYamlDocuments(asList ? [docs] : docs));
  }
  io.out(items.map((x) => formatDescription(x.d, x.host)).join("\n"));
}

/**
 * `describe NAME... --host ...`: each name on every chosen host; a name on no host is an error
 * line (exit 4), one on several hosts is shown for each, and a failed host is reported on its own
 * line (exit 7 when something else answered).
 */
async function describeOnFleet(
  cmd: Command,
  io: Io,
  names: readonly string[],
  output: string,
): Promise<void> {
  const { fleetGlobals, finishOutcomes, onHosts, openFleet } = await import("./_fleet.ts");
  const { describeHere, gatherDescriptions } = await import(
    "../../lib/foundry/fleet_describe.ts"
  );
  const fleet = openFleet(await configFor(cmd), fleetGlobals(cmd));
  const signal = interruptSignal();
  const wanted = [...new Set(names.map((n) => n.toLowerCase()))];
  const outcomes = await onHosts(
    fleet,
    (h, lv) => describeHere(lv, h.name, wanted, signal ? { signal } : {}),
  );
  const r = gatherDescriptions(wanted, outcomes);
  for (const f of r.found) await withOperations(cmd, io, f.description, f.uri);
  for (const { name, hosts } of r.onSeveralHosts) {
    io.err(`Warning: VM '${clean(name)}' exists on hosts ${hosts.join(", ")}: each is shown\n`);
  }
  if (r.found.length) {
    await printDescriptions(
      io,
      output,
      r.found.map((f: HostVmDescription) => ({ host: f.host, d: f.description })),
      true,
    );
  }
  const answered = outcomes.filter((o) => o.ok).map((o) => o.host);
  for (const name of r.missing) {
    io.err(
      `Error: VM '${clean(name.slice(0, 100))}' not found on ${
        answered.length
          ? `host${answered.length > 1 ? "s" : ""} ${answered.join(", ")}`
          : "any host"
      }${r.failed.length ? " (some hosts did not answer)" : ""}\n`,
    );
  }
  if (r.missing.length) setExitCode(cmd, ExitCode.VM_OPERATION);
  finishOutcomes(io, outcomes);
}

/** `foundry describe NAME...` on the one connection: a missing name of several is an error line. */
async function describeHereOnly(
  cmd: Command,
  io: Io,
  names: readonly string[],
  output: string,
): Promise<void> {
  const config = await configFor(cmd);
  const signal = interruptSignal();
  const found: { d: VmDescription }[] = [];
  await withLibvirt(config, async (lv) => {
    for (const name of names) {
      try {
        found.push({ d: await describeVm(lv, name.toLowerCase(), signal ? { signal } : {}) });
      } catch (e) {
        if (names.length === 1 || !(e instanceof VmNotFoundError)) throw e;
        io.err(`Error: ${clean(e.message)}\n`);
        setExitCode(cmd, ExitCode.VM_OPERATION);
      }
    }
  });
  for (const f of found) await withOperations(cmd, io, f.d);
  if (found.length) await printDescriptions(io, output, found, names.length > 1);
}

/** `foundry describe NAME...`. */
export function describeCommand(io: Io): Command {
  return new Command("describe")
    .description(
      "Show everything about VMs: spec, live state, addresses, disks, conditions, recent operations",
    )
    .argument("<name...>", "VM names")
    .option("-o, --output <format>", `output format: ${FORMATS.join(", ")}`, "text")
    .addHelpText(
      "after",
      "\nAddresses are labelled by source: agent (the guest agent: what the guest has), lease (the" +
        "\nDHCP server) and spec (what the VM was given). Conditions: Ready (the domain runs)," +
        "\nAgentConnected (the guest agent answers; time: when the agent started in the guest) and" +
        "\nCloudInitDone (/run/cloud-init/result.json exists; time: when cloud-init finished)." +
        "\nEvents are foundry's own operations on the VM from the audit trail (foundry history NAME);" +
        "\nfor the daemon's live events use foundry events NAME. Several names: one block each (with" +
        "\n-o json|yaml a list)." +
        "\n\nWith --host/--host-selector each name is looked for on every chosen host: each VM found" +
        "\nshows a Host: line (-o json|yaml: a list whose items carry host), a name on several hosts" +
        "\nis shown for each, and a host that fails gets its own error line while the others print." +
        "\n\nExit codes: 0 ok, 3 no connection, 4 no such VM, 7 some hosts failed and others answered." +
        "\n\nExamples:\n  foundry describe web-01\n  foundry describe web-01 -o json" +
        "\n  foundry describe web-01 db-01 --host all\n",
    )
    .action(async (names: string[], opts: { output: string }, cmd: Command) => {
      checkChoice(opts.output, FORMATS, "output format");
      const g = globals(cmd) as FleetGlobals;
      if (g.host !== undefined || g.hostSelector !== undefined) {
        return describeOnFleet(cmd, io, names, opts.output);
      }
      await describeHereOnly(cmd, io, names, opts.output);
    });
}
