import { Command, Option } from "npm:commander@^15.1.0";
import denoConfig from "../../deno.json" with { type: "json" };
import type { Io } from "../_program.ts";
import { configFor, withLibvirt } from "./_context.ts";

const fmt = (v: number) => `${Math.floor(v / 1e6)}.${Math.floor(v / 1e3) % 1000}.${v % 1000}`;

/** `foundry version`: client, libvirt and hypervisor versions, like `virsh version`. */
export function versionCommand(io: Io): Command {
  return new Command("version")
    .description(
      "Show foundry's version and the connected daemon's libvirt and hypervisor versions",
    )
    .addOption(
      new Option("-o, --output <format>", "output format").choices(["table", "json", "yaml"])
        .default(
          "table",
        ),
    )
    .addHelpText(
      "after",
      "\nExamples:\n  foundry version\n  foundry --connect qemu+ssh://root@host/system version -o json\n",
    )
    .action(async (opts: { output: string }, cmd: Command) => {
      const config = await configFor(cmd);
      await withLibvirt(config, async (lv) => {
        const [lib, hv, host] = await Promise.all([
          lv.getLibVersion(),
          lv.getVersion(),
          lv.getHostname(),
        ]);
        const info = {
          foundry: denoConfig.version,
          uri: lv.uri.display,
          host,
          libvirt: fmt(lib),
          hypervisor: fmt(hv),
        };
        if (opts.output === "json") io.out(JSON.stringify(info, null, 2) + "\n");
        else if (opts.output === "yaml") {
          // Loaded only when asked for: the YAML writer is not on version's usual path.
          const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
          io.out(formatYamlDocuments([info]));
        } else {
          io.out(
            `foundry:    ${info.foundry}\nconnection: ${info.uri} (${info.host})\n` +
              `libvirt:    ${info.libvirt}\nhypervisor: QEMU ${info.hypervisor}\n`,
          );
        }
      });
    });
}
