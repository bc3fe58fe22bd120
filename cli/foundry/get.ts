import { Command } from "npm:commander@^15.1.0";
import { getVm, type VmListEntry } from "../../lib/foundry/inventory.ts";
import { uuidToString } from "../../lib/libvirt/mod.ts";
import { formatJson } from "../../lib/output/format.ts";
import type { ListFormat } from "../../lib/output/listing.ts";
import { addListingOptions, type ListingFlags, printListing } from "../_listing.ts";
import type { Io } from "../_program.ts";
import { colorFor, configFor, withLibvirt } from "./_context.ts";
import { vmColumns } from "./list.ts";

const GET_FORMATS: readonly ListFormat[] = ["yaml", "json", "name", "table", "wide"];

/** The action of `foundry get NAME` and `foundry vm info NAME`: stored spec plus live status. */
function getAction(io: Io) {
  return async (name: string, opts: ListingFlags, cmd: Command) => {
    const config = await configFor(cmd);
    const got = await withLibvirt(config, (lv) => getVm(lv, name.toLowerCase()));
    const { vm } = got;
    if (opts.output === "json") return io.out(formatJson(vm));
    if (opts.output === "yaml") {
      const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
      return io.out(formatYamlDocuments([vm]));
    }
    const live = got.ips.find((a) => a.source !== "spec");
    // The spec's sizes: what the VM was defined with (list shows the daemon's live figures).
    const row: VmListEntry = {
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
    printListing(io, opts, [row], {
      columns: vmColumns(colorFor(io)),
      kind: "vm",
      name: (v) => v.name,
    });
  };
}

const OUTPUT_HELP =
  "\n-o yaml (default) and json print the stored spec with its live status; table and" +
  "\nwide print the VM's row as foundry list does; name prints vm/NAME.";

/** `foundry get NAME`. */
export function getCommand(io: Io): Command {
  return addListingOptions(
    new Command("get")
      .description("Show a VM's stored spec with its live status (phase, conditions)")
      .argument("<name>", "VM name"),
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
