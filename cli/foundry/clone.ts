import { Command } from "npm:commander@^15.1.0";
import type { Io } from "../_program.ts";
import { configFor, withLibvirt } from "./_context.ts";

/** `foundry clone SRC NEW --ip CIDR [--ip ...]`. */
export function cloneCommand(io: Io): Command {
  return new Command("clone")
    .description("Make a new VM from a stopped one: copied disks, new addresses, MACs and identity")
    .argument("<src>", "the VM to copy (must be shut off)")
    .argument("<new>", "the new VM's name")
    .requiredOption(
      "--ip <cidr>",
      "the new VM's address with prefix, one per network interface, in order",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option("--no-start", "leave the new VM stopped")
    .addHelpText(
      "after",
      "\nThe disks are full copies (the source's snapshots and base image flattened in), so the" +
        "\nclone shares no file with its source and either can be destroyed alone. The MACs and" +
        "\ntap names follow the new addresses; cloud-init gets a new instance ID, the hostname" +
        "\nNEW (fqdn NEW.<the source's domain>) and the new network. The root password and" +
        "\nanything else on the disks is copied as it is.\n" +
        "\nExamples:\n  foundry stop web-01 && foundry clone web-01 web-02 --ip 10.0.0.12/24\n" +
        "  foundry clone db-01 db-02 --ip 10.0.0.22/24 --ip 10.1.0.22/24 --no-start\n" +
        "\nExit codes: 0 done, 1 configuration, 2 bad arguments (addresses, name taken)," +
        "\n3 cannot connect, 4 the source is running or not foundry's, or the clone failed (what" +
        "\nit made is removed), 5 storage (a disk could not be copied), 130 interrupted.\n",
    )
    .action(async (
      src: string,
      name: string,
      opts: { ip: string[]; start: boolean },
      cmd: Command,
    ) => {
      const config = await configFor(cmd);
      const { cloneVm, SourceRunningError } = await import("../../lib/foundry/clone.ts");
      await withLibvirt(config, async (lv) => {
        try {
          await cloneVm(lv, src, name, {
            config,
            ips: opts.ip,
            start: opts.start,
            onStep: (_s, detail) => io.out(`${detail}\n`),
          });
        } catch (e) {
          if (e instanceof SourceRunningError) e.message += ` (stop it first: foundry stop ${src})`;
          if (e instanceof RangeError) {
            throw Object.assign(new Error(e.message), { exitCode: 2 });
          }
          throw e;
        }
        io.out(`VM '${name}' cloned from '${src}'${opts.start ? " and started" : ""}\n`);
      });
    });
}
