/**
 * `foundry describe NAME`: one VM in kubectl-describe style (spec, live state, addresses by source,
 * disks, conditions with their times, recent operations from the audit trail).
 * @module
 */
import { Command } from "npm:commander@^15.1.0";
import {
  type DescribedOperation,
  describeVm,
  type VmDescription,
} from "../../lib/foundry/describe.ts";
import { formatJson, formatTable, sanitizeText } from "../../lib/output/mod.ts";
import { formatBytes } from "../../lib/output/progress.ts";
import { auditSettings, durationLabel, oneLine, openAuditReader, timeLabel } from "../_audit.ts";
import type { Io } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { checkChoice, configFor, withLibvirt } from "./_context.ts";

const FORMATS = ["text", "json", "yaml"] as const;
/** Operations of the audit trail shown. */
const RECENT_OPERATIONS = 10;

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

/** `d` as kubectl describe prints an object. */
export function formatDescription(d: VmDescription): string {
  const field = (k: string, v: string) => `${`${k}:`.padEnd(14)}${v}\n`;
  let s = "";
  s += field("Name", clean(d.name));
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

/** The VM's recent operations from foundry's audit database; none when there is none. */
async function recentOperations(cmd: Command, name: string): Promise<DescribedOperation[]> {
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
      limit: RECENT_OPERATIONS,
    }).map((e) => ({
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

/** `foundry describe NAME`. */
export function describeCommand(io: Io): Command {
  return new Command("describe")
    .description(
      "Show everything about a VM: spec, live state, addresses, disks, conditions, recent operations",
    )
    .argument("<name>", "VM name")
    .option("-o, --output <format>", `output format: ${FORMATS.join(", ")}`, "text")
    .addHelpText(
      "after",
      "\nAddresses are labelled by source: agent (the guest agent: what the guest has), lease (the" +
        "\nDHCP server) and spec (what the VM was given). Conditions: Ready (the domain runs)," +
        "\nAgentConnected (the guest agent answers; time: when the agent started in the guest) and" +
        "\nCloudInitDone (/run/cloud-init/result.json exists; time: when cloud-init finished)." +
        "\nEvents are foundry's own operations on the VM from the audit trail (foundry history NAME);" +
        "\nfor the daemon's live events use foundry events NAME." +
        "\n\nExit codes: 0 ok, 3 no connection, 4 no such VM." +
        "\n\nExamples:\n  foundry describe web-01\n  foundry describe web-01 -o json\n",
    )
    .action(async (name: string, opts: { output: string }, cmd: Command) => {
      checkChoice(opts.output, FORMATS, "output format");
      const config = await configFor(cmd);
      const signal = interruptSignal();
      const d = await withLibvirt(
        config,
        (lv) => describeVm(lv, name.toLowerCase(), signal ? { signal } : {}),
      );
      try {
        d.events = await recentOperations(cmd, d.name);
      } catch (e) {
        // The VM was described; an unreadable audit database only loses the events section.
        io.err(`Warning: recent operations not read: ${clean((e as Error).message)}\n`);
      }
      if (opts.output === "json") return io.out(formatJson(d));
      if (opts.output === "yaml") {
        const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
        return io.out(formatYamlDocuments([d]));
      }
      io.out(formatDescription(d));
    });
}
