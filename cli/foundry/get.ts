import { Command, Option } from "npm:commander@^15.1.0";
import type { ListFormat } from "../../lib/output/listing.ts";
import { addListingOptions } from "../_listing.ts";
import type { Io } from "../_program.ts";
import { configFor, globals } from "./_context.ts";
import type { FleetGlobals } from "./_fleet.ts";
import { type OutputFlags, runGet } from "./_inventory.ts";

const GET_FORMATS: readonly ListFormat[] = ["yaml", "json", "name", "table", "wide"];
const TARGETS = ["libvirt", "kubevirt"];

/** The action of `foundry get NAME` and `foundry vm info NAME`: stored spec plus live status. */
function getAction(io: Io) {
  return async (name: string, opts: OutputFlags & { target?: string }, cmd: Command) =>
    opts.target === "kubevirt" // issue 16: the KubeVirt target, loaded only when asked for
      ? (await import("./_kubevirt_target.ts")).kubevirtGet(io, name, opts, cmd)
      : runGet(io, name, opts, await configFor(cmd), globals(cmd) as FleetGlobals);
}

const OUTPUT_HELP =
  "\n-o yaml (default) and json print the stored spec with its live status; table and" +
  "\nwide print the VM's row as foundry list does; name prints vm/NAME.";

/** `foundry get NAME`. */
export function getCommand(io: Io): Command {
  return addListingOptions(
    new Command("get")
      .description("Show a VM's stored spec with its live status (phase, conditions)")
      .argument("<name>", "VM name")
      .addOption(new Option("--target <target>", "libvirt (default) or kubevirt").choices(TARGETS))
      .option("--kubeconfig <path>", "kubevirt: kubeconfig file (default: in-cluster, KUBECONFIG)")
      .option("--context <name>", "kubevirt: kubeconfig context")
      .option("-n, --namespace <name>", "kubevirt: namespace (default: default)"),
    "yaml",
    GET_FORMATS,
  )
    .addHelpText(
      "after",
      `${OUTPUT_HELP}\n\nExamples:\n  foundry get web-01\n  foundry get web-01 -o json\n` +
        "  foundry get web-01 -o wide\n",
    )
    .action(getAction(io));
}

/** `foundry vm info NAME` (same as get). */
export function vmCommand(io: Io): Command {
  const vm = new Command("vm").description("VM commands (info)");
  vm.addCommand(
    addListingOptions(
      new Command("info")
        .description("Show a VM's stored spec with its live status (same as foundry get)")
        .argument("<name>", "VM name"),
      "yaml",
      GET_FORMATS,
    ).addHelpText("after", OUTPUT_HELP).action(getAction(io)),
  );
  return vm;
}
