import { Command } from "npm:commander@^15.1.0";
import { restartVm, startVm, stopVm } from "../../lib/foundry/vm.ts";
import type { Io } from "../_program.ts";
import { withFoundryAudit } from "../_audit.ts";
import { signalOption } from "../_signals.ts";
import { configFor, withLibvirt } from "./_context.ts";
import { positiveSeconds } from "./destroy.ts";

/** `foundry start NAME`. */
export function startCommand(io: Io): Command {
  return new Command("start")
    .description("Start a stopped VM")
    .argument("<name>", "VM name")
    .addHelpText("after", "\nExample:\n  foundry start web-01\n")
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const config = await configFor(cmd);
      await withLibvirt(config, (lv) =>
        withFoundryAudit(
          cmd,
          { resourceType: "vm", name: name.toLowerCase(), uri: lv.uri.display, operation: "start" },
          () => startVm(lv, name.toLowerCase()),
          signalOption(),
        ));
      io.out(`VM '${name.toLowerCase()}' started\n`);
    });
}

function stopLike(io: Io, verb: "stop" | "restart"): Command {
  return new Command(verb)
    .description(
      verb === "stop"
        ? "Shut a VM down (forced off after the timeout)"
        : "Restart a VM (shut down, forced off after the timeout, start)",
    )
    .argument("<name>", "VM name")
    .option("--timeout <seconds>", "wait this long for a graceful shutdown")
    .option("--force", "power off at once, without asking the guest")
    .addHelpText("after", `\nExample:\n  foundry ${verb} web-01 --timeout 30\n`)
    .action(async (name: string, opts: { timeout?: string; force?: boolean }, cmd: Command) => {
      const config = await configFor(cmd);
      const timeoutSeconds = opts.timeout === undefined
        ? config.destroyTimeoutSeconds
        : positiveSeconds(opts.timeout);
      const n = name.toLowerCase();
      const r = await withLibvirt(config, (lv) =>
        withFoundryAudit(cmd, {
          resourceType: "vm",
          name: n,
          uri: lv.uri.display,
          operation: verb,
          details: { timeoutSeconds, force: opts.force === true },
        }, () =>
          (verb === "stop" ? stopVm : restartVm)(lv, n, {
            timeoutSeconds,
            force: opts.force === true,
          }), signalOption()));
      const how = r.graceful ? "shut down" : "forced off";
      io.out(verb === "stop" ? `VM '${n}' ${how}\n` : `VM '${n}' ${how} and started again\n`);
    });
}

/** `foundry stop NAME`. */
export const stopCommand = (io: Io): Command => stopLike(io, "stop");
/** `foundry restart NAME`. */
export const restartCommand = (io: Io): Command => stopLike(io, "restart");
