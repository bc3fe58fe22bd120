import { Command } from "npm:commander@^15.1.0";
import { getVm } from "../../lib/foundry/inventory.ts";
import { formatJson, formatYamlDocuments } from "../../lib/output/mod.ts";
import type { Io } from "../_program.ts";
import { checkChoice, configFor, withLibvirt } from "./_context.ts";

/** The action of `foundry get NAME` and `foundry vm info NAME`: stored spec plus live status. */
function getAction(io: Io) {
  return async (name: string, opts: { output: string }, cmd: Command) => {
    checkChoice(opts.output, ["yaml", "json"], "output format");
    const config = await configFor(cmd);
    const { vm } = await withLibvirt(config, (lv) => getVm(lv, name.toLowerCase()));
    io.out(opts.output === "json" ? formatJson(vm) : formatYamlDocuments([vm]));
  };
}

/** `foundry get NAME`. */
export function getCommand(io: Io): Command {
  return new Command("get")
    .description("Show a VM's stored spec with its live status (phase, conditions)")
    .argument("<name>", "VM name")
    .option("-o, --output <format>", "yaml or json", "yaml")
    .addHelpText("after", "\nExamples:\n  foundry get web-01\n  foundry get web-01 -o json\n")
    .action(getAction(io));
}

/** `foundry vm info NAME` (same as get). */
export function vmCommand(io: Io): Command {
  const vm = new Command("vm").description("VM commands (info)");
  vm.addCommand(
    new Command("info")
      .description("Show a VM's stored spec with its live status (same as foundry get)")
      .argument("<name>", "VM name")
      .option("-o, --output <format>", "yaml or json", "yaml")
      .action(getAction(io)),
  );
  return vm;
}
