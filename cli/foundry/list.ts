import { Command, Option } from "npm:commander@^15.1.0";
import { addListingOptions } from "../_listing.ts";
import type { Io } from "../_program.ts";
import { configFor, globals } from "./_context.ts";
import type { FleetGlobals } from "./_fleet.ts";
import { type ListFlags, runList } from "./_inventory.ts";

export { ipCell, vmColumns } from "./_inventory.ts";

const collect = (v: string, prev: string[]) => [...prev, v];
const TARGETS = ["libvirt", "kubevirt"];

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
    )
    .option("-w, --watch", "after the listing, print each VM whose row changes, until Ctrl-C")
    .addOption(new Option("--target <target>", "libvirt (default) or kubevirt").choices(TARGETS))
    .option("--kubeconfig <path>", "kubevirt: kubeconfig file (default: in-cluster, KUBECONFIG)")
    .option("--context <name>", "kubevirt: kubeconfig context")
    .option("-n, --namespace <name>", "kubevirt: namespace (default: default)");
  return addListingOptions(cmd)
    .addHelpText(
      "after",
      "\nThe IP column shows the guest agent's address, else the DHCP lease's; a VM that reports" +
        "\nnone shows its spec's address marked (spec). -o name prints vm/NAME lines." +
        "\n\nExamples:\n  foundry list\n  foundry list -l 'role in (web,db),env!=prod' -o wide\n" +
        "  foundry ls -o name | xargs -n1 foundry get\n  foundry list -w\n" +
        "\n-w prints the table, then a row (without header) for each VM that changed as the daemon" +
        "\nreports events (state, agent, reboot, ...): -o json prints one JSON object a line; a VM" +
        "\nthat went away shows state 'deleted'. Ctrl-C ends it (exit 130).\n",
    )
    .action(async (opts: ListFlags & { target?: string }, cmd: Command) =>
      opts.target === "kubevirt" // issue 16: the KubeVirt target, loaded only when asked for
        ? (await import("./_kubevirt_target.ts")).kubevirtList(io, opts, cmd)
        : runList(io, opts, () => configFor(cmd), globals(cmd) as FleetGlobals)
    );
}
