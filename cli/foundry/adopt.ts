import { Command } from "npm:commander@^15.1.0";
import { formatJson, sanitizeText } from "../../lib/output/mod.ts";
import type { Io } from "../_program.ts";
import { withFoundryAudit } from "../_audit.ts";
import { checkChoice, configFor, withLibvirt } from "./_context.ts";

function usage(message: string): Error {
  return Object.assign(new Error(message), { exitCode: 2 });
}

/** Parses repeated `--label k=v` (usage error, exit 2, for a bad key or value). */
export async function labelsArg(items: readonly string[]): Promise<Record<string, string>> {
  const { labelKeyProblem, labelValueProblem } = await import("../../lib/config/selector.ts");
  const labels: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq < 0) throw usage(`Invalid --label '${item}': expected key=value`);
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    const problem = labelKeyProblem(key) ?? labelValueProblem(value);
    if (problem !== undefined) throw usage(`Invalid --label '${item}': ${problem}`);
    labels[key] = value;
  }
  return labels;
}

/** `foundry adopt NAME [-o yaml|json] [--apply] [--label k=v]... [--skip-unsupported]`. */
export function adoptCommand(io: Io): Command {
  return new Command("adopt")
    .description(
      "Write a foundry spec for an existing domain foundry did not create (virt-install, " +
        "Ansible) and, with --apply, store it so foundry manages the VM from then on",
    )
    .argument("<name>", "domain name")
    .option("-o, --output <format>", "yaml or json", "yaml")
    .option("--apply", "store the spec in the domain: foundry manages the VM from then on")
    .option(
      "--label <key=value>",
      "label of the spec; repeat for more",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      "--skip-unsupported",
      "leave out of the spec what it cannot say (a NIC on a libvirt network, a non-virtio data " +
        "disk) instead of refusing; the domain keeps it",
    )
    .addHelpText(
      "after",
      `
The spec says what the domain's persistent definition has: its disks as they are (bootDisk and
dataDisks with volume: pool:volume for a volume of a libvirt pool, else the absolute path), its
bridge interfaces with their MACs and no address (the guest keeps configuring itself), vCPUs and
memory, the maxima as resources, CPU topology, graphics (never a password), the domain type and
autostart, with the annotation foundry.cofront.xyz/adopted: "true". It is printed to stdout and is
valid input for foundry apply -f (create refuses it only because the VM exists). What the spec
leaves out or cannot say is noted on stderr.

--apply stores the spec in the domain, with foundry's record of the VM's volumes: the pool
volumes of its disks. foundry destroy then deletes those as it deletes the volumes of the VMs it
created (unless another domain uses them); a disk that is a file in no pool is never deleted.
Nothing else in the domain changes: same disks, MACs and devices.

Exit codes: 0 done, 2 refused (the domain is foundry's already; it has what a spec cannot say,
named, see --skip-unsupported; its name or sizes make no valid spec), 3 connection, 4 no such
domain or a libvirt step failed.

Examples:
  foundry adopt legacy-01 > legacy-01.yaml
  foundry adopt legacy-01 --label team=ops --apply
  foundry adopt legacy-01 --skip-unsupported -o json
`,
    )
    .action(
      async (
        name: string,
        opts: { output: string; apply?: boolean; label?: string[]; skipUnsupported?: boolean },
        cmd: Command,
      ) => {
        checkChoice(opts.output, ["yaml", "json"], "output format");
        const labels = await labelsArg(opts.label ?? []);
        const { AdoptError, adoptVm } = await import("../../lib/foundry/adopt.ts");
        const config = await configFor(cmd);
        const adoptOpts = {
          labels,
          skipUnsupported: opts.skipUnsupported === true,
          dryRun: opts.apply !== true,
        };
        let r;
        try {
          r = await withLibvirt(config, (lv) =>
            opts.apply === true
              ? withFoundryAudit(
                cmd,
                { resourceType: "vm", name, uri: lv.uri.display, operation: "adopt" },
                () => adoptVm(lv, name, adoptOpts),
              )
              : adoptVm(lv, name, adoptOpts));
        } catch (e) {
          if (!(e instanceof AdoptError)) throw e;
          // lib lists what a spec cannot say; the flag that leaves it out is the CLI's.
          throw usage(
            e.reason === "unsupported"
              ? `${e.message} (--skip-unsupported leaves ${
                e.items.length === 1 ? "it" : "them"
              } out of the spec)`
              : e.message,
          );
        }
        for (const note of r.notes) {
          io.err(`note: ${sanitizeText(note, { singleLine: true })}\n`);
        }
        if (opts.output === "json") io.out(formatJson(r.vm));
        else {
          const { formatYamlDocuments } = await import("../../lib/output/yaml.ts");
          io.out(formatYamlDocuments([r.vm]));
        }
        if (r.stored) {
          const volumes = r.volumes.map((v) => `${v.pool}/${v.name}`).join(", ") || "none";
          io.err(
            `VM ${sanitizeText(name, { singleLine: true })} adopted: foundry manages it now; ` +
              `destroy deletes its pool volumes (${sanitizeText(volumes, { singleLine: true })})\n`,
          );
        }
      },
    );
}
