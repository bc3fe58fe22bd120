import { Command } from "npm:commander@^15.1.0";
import { destroyVm } from "../../lib/foundry/vm.ts";
import { sanitizeText } from "../../lib/output/sanitize.ts";
import type { Io } from "../_program.ts";
import { withFoundryAudit } from "../_audit.ts";
import { signalOption } from "../_signals.ts";
import { configFor, progress, withLibvirt } from "./_context.ts";

/** `foundry destroy NAME`: graceful shutdown, forced after the timeout, undefine, delete volumes. */
export function destroyCommand(io: Io): Command {
  return new Command("destroy").aliases(["rm", "delete"])
    .description("Stop a VM, remove its definition, NVRAM and volumes")
    .argument("<name>", "VM name")
    .option("--timeout <seconds>", "wait this long for a graceful shutdown before forcing off")
    .option("--force", "also remove a domain foundry did not create (its disks are kept)")
    .addHelpText(
      "after",
      "\nOnly the volumes foundry created for the VM are deleted (recorded at create time), and only\n" +
        "while no other domain uses them; every other disk is left alone and listed as kept.\n",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  foundry destroy web-01\n  foundry destroy web-01 --timeout 30\n",
    )
    .action(async (name: string, opts: { timeout?: string; force?: boolean }, cmd) => {
      const config = await configFor(cmd);
      const timeoutSeconds = opts.timeout === undefined
        ? config.destroyTimeoutSeconds
        : positiveSeconds(opts.timeout);
      const say = progress(io);
      io.out(`Destroying VM '${name.toLowerCase()}'...\n`);
      const { disksKept: kept } = await withLibvirt(config, (lv) =>
        withFoundryAudit(cmd, {
          resourceType: "vm",
          name: name.toLowerCase(),
          uri: lv.uri.display,
          operation: "destroy",
          details: { timeoutSeconds, force: opts.force === true },
        }, async (op) => {
          const r = await destroyVm(lv, name.toLowerCase(), {
            timeoutSeconds,
            force: opts.force === true,
            onStep: (_s, detail) => say(detail),
          });
          op.event({
            level: "info",
            reason: r.graceful ? "GracefulShutdown" : "ForcedOff",
            object: `VirtualMachine/${name.toLowerCase()}`,
            message: `${r.volumesDeleted.length} volumes deleted: ${r.volumesDeleted.join(", ")}` +
              r.disksKept.map((k) => `; kept ${k.disk} (${k.reason})`).join(""),
          });
          return r;
        }, signalOption()));
      for (const k of kept) io.out(`kept ${printable(k.disk)} (${printable(k.reason)})\n`);
      io.out(`Successfully destroyed VM '${name.toLowerCase()}'\n`);
    });
}

/** A disk path or reason (the domain's, not ours) on one line, without control characters. */
function printable(text: string): string {
  return sanitizeText(text, { singleLine: true });
}

/** Parses a timeout flag; a bad value is a usage error (exit 2). */
export function positiveSeconds(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) {
    throw Object.assign(new Error(`Invalid --timeout '${text}': expected seconds >= 0`), {
      exitCode: 2,
    });
  }
  return n;
}
