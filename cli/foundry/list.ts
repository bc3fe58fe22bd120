import { Command } from "npm:commander@^15.1.0";
import { listVms, parseLabelSelector } from "../../lib/foundry/inventory.ts";
import { formatJson, formatTable, formatYamlDocuments, paint } from "../../lib/output/mod.ts";
import type { Io } from "../_program.ts";
import { checkChoice, colorFor, configFor, withLibvirt } from "./_context.ts";

const collect = (v: string, prev: string[]) => [...prev, v];

/** `foundry list`: NAME STATE VCPUS MEMORY IP of foundry's VMs (`--all`: every domain). */
export function listCommand(io: Io): Command {
  return new Command("list")
    .description("List VMs with state, vCPUs, memory and address")
    .option("-a, --all", "include domains foundry did not create")
    .option("-l, --selector <key=value>", "only VMs with this label (repeatable)", collect, [])
    .option("-o, --output <format>", "table, json or yaml", "table")
    .addHelpText("after", "\nExamples:\n  foundry list\n  foundry list -l role=web -o json\n")
    .action(async (opts: { all?: boolean; selector: string[]; output: string }, cmd) => {
      checkChoice(opts.output, ["table", "json", "yaml"], "output format");
      const selector = opts.selector.length ? parseLabelSelector(opts.selector) : undefined;
      const config = await configFor(cmd);
      const { vms } = await withLibvirt(
        config,
        (lv) => listVms(lv, { all: opts.all === true, ...(selector ? { selector } : {}) }),
      );
      if (opts.output === "json") return io.out(formatJson(vms));
      if (opts.output === "yaml") return io.out(vms.length ? formatYamlDocuments([vms]) : "[]\n");
      const color = colorFor(io);
      io.out(formatTable(
        ["NAME", "STATE", "VCPUS", "MEMORY", "IP ADDRESS"],
        vms.map((v) => [
          v.managed ? v.name : `${v.name} (not foundry)`,
          paint(v.state, v.state === "running" ? "green" : "dim", color),
          String(v.vcpus),
          v.memoryMiB % 1024 === 0 ? `${v.memoryMiB / 1024} GiB` : `${v.memoryMiB} MiB`,
          v.ip || (v.addresses[0] ? `${v.addresses[0].ip} (spec)` : "-"),
        ]),
      ));
    });
}
