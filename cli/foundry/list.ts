import { Command } from "npm:commander@^15.1.0";
import { listVms, parseLabelSelector, type VmListEntry } from "../../lib/foundry/inventory.ts";
import { paint } from "../../lib/output/format.ts";
import type { Column } from "../../lib/output/listing.ts";
import { addListingOptions, type ListingFlags, printListing } from "../_listing.ts";
import type { Io } from "../_program.ts";
import { colorFor, configFor, withLibvirt } from "./_context.ts";

const collect = (v: string, prev: string[]) => [...prev, v];

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

/** `foundry list` (alias `ls`): NAME STATE VCPUS MEMORY IP of foundry's VMs (`--all`: every domain). */
export function listCommand(io: Io): Command {
  const cmd = new Command("list")
    .alias("ls")
    .description("List VMs with state, vCPUs, memory and address")
    .option("-a, --all", "include domains foundry did not create")
    .option(
      "-l, --selector <selector>",
      "Kubernetes label selector: k=v, k==v, k!=v, 'k in (a,b)', 'k notin (a)', k, !k; " +
        "commas and repeated -l are AND",
      collect,
      [],
    );
  return addListingOptions(cmd)
    .addHelpText(
      "after",
      "\nThe IP column shows the guest agent's address, else the DHCP lease's; a VM that reports" +
        "\nnone shows its spec's address marked (spec). -o name prints vm/NAME lines." +
        "\n\nExamples:\n  foundry list\n  foundry list -l 'role in (web,db),env!=prod' -o wide\n" +
        "  foundry ls -o name | xargs -n1 foundry get\n",
    )
    .action(async (opts: ListingFlags & { all?: boolean; selector: string[] }, cmd) => {
      // A bad selector fails before any connection.
      const selector = opts.selector.length ? parseLabelSelector(opts.selector) : undefined;
      const config = await configFor(cmd);
      const { vms } = await withLibvirt(config, (lv) =>
        listVms(lv, {
          all: opts.all === true,
          autostart: opts.output === "wide",
          ...(selector ? { selector } : {}),
        }));
      printListing(io, opts, vms, {
        columns: vmColumns(colorFor(io)),
        kind: "vm",
        name: (v) => v.name,
        empty: "No VMs found",
      });
    });
}
