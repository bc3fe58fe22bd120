import { Command } from "npm:commander@^15.1.0";
import { type Io, isTerminalIo } from "../_program.ts";
import { openStatusLine, stageLine, type StatusLine } from "../_status.ts";
import { withFoundryAudit } from "../_audit.ts";
import { signalOption } from "../_signals.ts";
import { configFor, envOf } from "./_context.ts";
import { withTargets } from "./_fleet.ts";
import { positiveSeconds } from "./destroy.ts";
import { checkTargets, forEachTarget, targetOptions } from "./_targets.ts";
import type { TargetOptions } from "./_targets.ts";

/** `foundry start NAME...`. */
export function startCommand(io: Io): Command {
  return targetOptions(
    new Command("start")
      .description("Start stopped VMs (one already running is left alone)"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  foundry start web-01\n  foundry start web-01 web-02\n  foundry start -l role=web\n",
    )
    .action(async (names: string[], opts: TargetOptions, cmd: Command) => {
      checkTargets(names, opts);
      const config = await configFor(cmd);
      const { startVm } = await import("../../lib/foundry/vm.ts");
      await withTargets(cmd, io, config, names, opts, async (lv, io, targets) => {
        await forEachTarget(cmd, io, lv, targets, opts, async (n) => {
          const r = await withFoundryAudit(
            cmd,
            { resourceType: "vm", name: n, uri: lv.uri.display, operation: "start" },
            () => startVm(lv, n),
            signalOption(),
          );
          io.out(r.alreadyRunning ? `VM '${n}' is already running\n` : `VM '${n}' started\n`);
        });
      });
    });
}

function stopLike(io: Io, verb: "stop" | "restart"): Command {
  return targetOptions(
    new Command(verb)
      .description(
        verb === "stop"
          ? "Shut VMs down (forced off after the timeout; one already shut off is left alone)"
          : "Restart VMs (shut down, forced off after the timeout, start)",
      ),
  )
    .option("--timeout <seconds>", "wait this long for a graceful shutdown")
    .option("--force", "power off at once, without asking the guest")
    .addHelpText(
      "after",
      `\nExamples:\n  foundry ${verb} web-01 --timeout 30\n  foundry ${verb} -l role=web\n`,
    )
    .action(
      async (
        names: string[],
        opts: TargetOptions & { timeout?: string; force?: boolean },
        cmd: Command,
      ) => {
        checkTargets(names, opts);
        const timeoutSeconds = opts.timeout === undefined
          ? undefined
          : positiveSeconds(opts.timeout);
        const config = await configFor(cmd);
        const { restartVm, stopVm } = await import("../../lib/foundry/vm.ts");
        const seconds = timeoutSeconds ?? config.destroyTimeoutSeconds;
        const tty = { isTerminal: isTerminalIo(io), env: envOf(cmd) };
        await withTargets(cmd, io, config, names, opts, async (lv, io, targets) => {
          await forEachTarget(cmd, io, lv, targets, opts, async (n) => {
            // The grace period: one line when piped, a live line on a terminal.
            let status: StatusLine | undefined;
            const r = await withFoundryAudit(cmd, {
              resourceType: "vm",
              name: n,
              uri: lv.uri.display,
              operation: verb,
              details: { timeoutSeconds: seconds, force: opts.force === true },
            }, () =>
              (verb === "stop" ? stopVm : restartVm)(lv, n, {
                timeoutSeconds: seconds,
                force: opts.force === true,
                onShutdown: (detail) => {
                  io.out(`${stageLine(tty, detail)}\n`);
                  status = openStatusLine({ ...tty, write: io.out, timeoutSeconds: seconds });
                  status.status(`VM '${n}': graceful shutdown, then forced off`);
                },
              }), signalOption()).finally(() => status?.done());
            const how = r.graceful ? "shut down" : "forced off";
            if (verb === "stop") {
              io.out(r.alreadyStopped ? `VM '${n}' is already shut off\n` : `VM '${n}' ${how}\n`);
            } else {
              io.out(
                r.alreadyStopped
                  ? `VM '${n}' was shut off; started\n`
                  : `VM '${n}' ${how} and started again\n`,
              );
            }
          });
        });
      },
    );
}

/** `foundry stop NAME...`. */
export const stopCommand = (io: Io): Command => stopLike(io, "stop");
/** `foundry restart NAME...`. */
export const restartCommand = (io: Io): Command => stopLike(io, "restart");
