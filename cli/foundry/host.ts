/**
 * `foundry host list|info|check`: the configured hosts (`hosts:`) with what each offers, and the
 * runtime checks that say what to fix on each (lib/foundry/host_check.ts does the work). Without a
 * `hosts:` list, the single connection (`--connect`) is the one host, named `default`.
 * @module
 */
import { Command, Option } from "npm:commander@^15.1.0";
import type { FoundryConfig } from "../../lib/foundry/config.ts";
import type { HostEntry, HostOutcome } from "../../lib/foundry/fleet_types.ts";
import type { HostCheck, HostSurvey } from "../../lib/foundry/host_check.ts";
import { formatJson, paint } from "../../lib/output/format.ts";
import { sanitizeText } from "../../lib/output/sanitize.ts";
import { addListingOptions, type ListingFlags, printListing } from "../_listing.ts";
import { ExitCode, type Io, setExitCode } from "../_program.ts";
import { colorFor, configFor } from "./_context.ts";
import { finishOutcomes, type Fleet, fleetGlobals, onHosts, openFleet } from "./_fleet.ts";

/** A host with its survey, or why it could not be read. */
interface HostRow {
  name: string;
  uri: string;
  labels: Record<string, string>;
  reachable: boolean;
  error?: string;
  survey?: HostSurvey;
}

/** The hosts named by operands, `--host` or `--host-selector` (every configured host by default). */
function fleetFor(cmd: Command, config: FoundryConfig, names: readonly string[]): Fleet {
  const g = { ...fleetGlobals(cmd) };
  if (names.length > 0) g.host = names.join(",");
  if (!config.hosts?.length && g.host === undefined && g.hostSelector === undefined) {
    const single: FoundryConfig = { ...config, hosts: [{ name: "default", uri: config.uri }] };
    return openFleet(single, { ...g, host: "all" });
  }
  if (g.host === undefined && g.hostSelector === undefined) g.host = "all";
  return openFleet(config, g);
}

async function survey(
  cmd: Command,
  names: readonly string[],
): Promise<{ rows: HostRow[]; outcomes: HostOutcome<HostSurvey>[]; config: FoundryConfig }> {
  const config = await configFor(cmd);
  const fleet = fleetFor(cmd, config, names);
  const { surveyHost } = await import("../../lib/foundry/host_check.ts");
  const outcomes = await onHosts(fleet, (_h, lv) => surveyHost(lv));
  const rows = fleet.hosts.map((h: HostEntry, i): HostRow => {
    const o = outcomes[i]!;
    const base = { name: h.name, uri: h.uri, labels: h.labels ?? {} };
    return o.ok
      ? { ...base, reachable: true, survey: o.value }
      : { ...base, reachable: false, error: o.error.message };
  });
  return { rows, outcomes, config };
}

const gib = (b: number | null | undefined) =>
  b === null || b === undefined ? "-" : `${(b / 2 ** 30).toFixed(1)} GiB`;

const labelsText = (l: Record<string, string>) =>
  Object.entries(l).sort(([a], [b]) => a < b ? -1 : 1).map(([k, v]) => `${k}=${v}`).join(",") ||
  "<none>";

const poolsText = (s: HostSurvey) =>
  s.pools.map((p) => `${p.name}:${p.state === "active" ? gib(p.availableBytes) : p.state}`)
    .join(",") || "-";

/** `foundry host list`. */
function listCommand(io: Io): Command {
  return addListingOptions(
    new Command("list").alias("ls").description(
      "List the configured hosts: reachability, versions, CPUs, free memory, foundry VMs",
    ).argument("[names...]", "host names (default: every configured host)"),
  ).action(async (names: string[], flags: ListingFlags, cmd: Command) => {
    const { rows, outcomes } = await survey(cmd, names);
    const color = colorFor(io);
    printListing(io, flags, rows, {
      kind: "host",
      name: (r) => r.name,
      columns: [
        { header: "NAME", value: (r) => r.name },
        {
          header: "STATE",
          value: (r) =>
            paint(r.reachable ? "ready" : "unreachable", r.reachable ? "green" : "red", color),
        },
        { header: "LIBVIRT", value: (r) => r.survey?.libvirtVersion ?? "-" },
        { header: "QEMU", value: (r) => r.survey?.hypervisorVersion ?? "-" },
        { header: "CPUS", value: (r) => String(r.survey?.cpus ?? "-") },
        { header: "FREE MEMORY", value: (r) => gib(r.survey?.freeMemoryBytes) },
        { header: "VMS", value: (r) => r.survey ? String(r.survey.foundryVms.length) : "-" },
        {
          header: "KVM",
          value: (r) => r.survey ? (r.survey.kvm ? "yes" : "no (TCG)") : "-",
          wide: true,
        },
        { header: "POOLS", value: (r) => r.survey ? poolsText(r.survey) : "-", wide: true },
        { header: "BRIDGES", value: (r) => r.survey?.bridges.join(",") || "-", wide: true },
        { header: "LABELS", value: (r) => labelsText(r.labels), wide: true },
        { header: "URI", value: (r) => r.uri, wide: true },
      ],
      data: rows,
    });
    finishOutcomes(io, outcomes);
  });
}

function dataOption(cmd: Command): Command {
  return cmd.addOption(
    new Option("-o, --output <format>", "output format: text, json, yaml").choices([
      "text",
      "json",
      "yaml",
    ]).default("text"),
  );
}

async function printData(io: Io, output: string, data: unknown): Promise<boolean> {
  if (output === "json") io.out(formatJson(data));
  else if (output === "yaml") {
    const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
    io.out(formatYamlDocuments([data]));
  } else return false;
  return true;
}

/** `foundry host info [NAME...]`. */
function infoCommand(io: Io): Command {
  return dataOption(
    new Command("info").description(
      "Show each host's versions, CPUs, memory, pools, bridges and foundry VMs",
    ).argument("[names...]", "host names (default: every configured host)"),
  ).action(async (names: string[], opts: { output: string }, cmd: Command) => {
    const { rows, outcomes } = await survey(cmd, names);
    if (!(await printData(io, opts.output, rows))) {
      const clean = (s: string) => sanitizeText(s, { singleLine: true });
      for (const r of rows) {
        const lines = [`Host ${r.name} (${clean(r.uri)})`, `  Labels:     ${labelsText(r.labels)}`];
        const s = r.survey;
        if (!s) lines.push(`  Reachable:  no (${clean(r.error ?? "")})`);
        else {
          lines.push(
            "  Reachable:  yes",
            `  Hostname:   ${clean(s.hostname)}`,
            `  libvirt:    ${s.libvirtVersion}`,
            `  QEMU:       ${s.hypervisorVersion}`,
            `  CPUs:       ${s.cpus ?? "-"}`,
            `  Memory:     ${gib(s.freeMemoryBytes)} free of ${gib(s.memoryBytes)}`,
            `  KVM:        ${s.kvm ? "yes" : "no (TCG only)"}`,
            `  Security:   ${clean(s.securityModel)}`,
            `  Pools:      ${s.pools.length ? "" : "none"}`,
            ...s.pools.map((p) =>
              `    ${clean(p.name)}: ${p.state}, ${gib(p.availableBytes)} free of ${
                gib(p.capacityBytes)
              }${p.path ? ` (${clean(p.path)})` : ""}`
            ),
            `  Bridges:    ${s.bridges.map(clean).join(", ") || "none"}`,
            `  VMs:        ${s.foundryVms.length} foundry VMs (${s.domains} domains)`,
          );
        }
        io.out(`${lines.join("\n")}\n`);
      }
    }
    finishOutcomes(io, outcomes);
  });
}

/** `foundry host check [NAME...]`. */
function checkCommand(io: Io): Command {
  return dataOption(
    new Command("check").description(
      "Run the runtime checks on each host (bridges, pools, UEFI, KVM, labels) and say what to fix",
    ).argument("[names...]", "host names (default: every configured host)"),
  ).addHelpText(
    "after",
    "\nExit code 2 when a check fails on a reachable host, 7 when some hosts could not be reached.\n",
  ).action(async (names: string[], opts: { output: string }, cmd: Command) => {
    const { rows, outcomes, config } = await survey(cmd, names);
    const { checkHost } = await import("../../lib/foundry/host_check.ts");
    const results = rows.map((r) => ({
      host: r.name,
      reachable: r.reachable,
      ...(r.error === undefined ? {} : { error: r.error }),
      checks: r.survey ? checkHost(r.survey, config) : [] as HostCheck[],
    }));
    if (!(await printData(io, opts.output, results))) {
      const color = colorFor(io);
      const mark = {
        ok: paint("ok  ", "green", color),
        warn: paint("warn", "yellow", color),
        fail: paint("FAIL", "red", color),
      };
      for (const r of results) {
        io.out(`Host ${r.host}:\n`);
        if (!r.reachable) {
          io.out(
            `  ${mark.fail} reachable: ${sanitizeText(r.error ?? "", { singleLine: true })}\n`,
          );
        }
        for (const c of r.checks) {
          io.out(
            `  ${mark[c.status]} ${c.check}: ${sanitizeText(c.message, { singleLine: true })}\n`,
          );
          if (c.fix && c.status !== "ok") io.out(`       fix: ${c.fix}\n`);
        }
      }
    }
    if (results.some((r) => r.checks.some((c) => c.status === "fail"))) {
      setExitCode(cmd, ExitCode.VALIDATION);
    }
    finishOutcomes(io, outcomes);
  });
}

/** `foundry host`: list, info and check of the configured hosts. */
export function hostCommand(io: Io): Command {
  return new Command("host")
    .description("The configured hosts (hosts: in the config file): list, info, check")
    .addCommand(listCommand(io))
    .addCommand(infoCommand(io))
    .addCommand(checkCommand(io))
    .addHelpText(
      "after",
      "\nExamples:\n  foundry host list\n  foundry host list -o wide\n  foundry host info a b\n" +
        "  foundry --host-selector zone=x host check\n",
    );
}
