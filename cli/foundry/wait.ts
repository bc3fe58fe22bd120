import { Command } from "npm:commander@^15.1.0";
import { InterruptedError, type Libvirt } from "../../lib/libvirt/mod.ts";
import { WAIT_STAGES, waitForVm, type WaitResult, type WaitStage } from "../../lib/foundry/wait.ts";
import { formatJson, sanitizeText } from "../../lib/output/mod.ts";
import type { Io } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { checkChoice, configFor, progress, withLibvirt } from "./_context.ts";

const UNTIL = WAIT_STAGES.filter((s) => s !== "running");

/** Parses `--timeout` as seconds (usage error, exit 2, when invalid). */
export function timeoutMs(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    throw Object.assign(new Error(`Invalid --timeout '${text}': expected seconds > 0`), {
      exitCode: 2,
    });
  }
  return n * 1000;
}

/**
 * Waits with progress lines and Ctrl-C support; shared by `wait` and `create --wait`. What the
 * guest reports is printed without control sequences.
 */
export async function waitWithProgress(
  lv: Libvirt,
  io: Io,
  name: string,
  until: Exclude<WaitStage, "running">,
  ms: number,
  quiet: boolean,
): Promise<WaitResult> {
  const say = quiet ? () => {} : progress(io);
  const signal = interruptSignal();
  try {
    if (!quiet) io.out(`Waiting for VM '${name}' (until ${until}, at most ${ms / 1000} s)...\n`);
    return await waitForVm(lv, name, {
      until,
      timeoutMs: ms,
      ...(signal ? { signal } : {}),
      onStage: (stage, t, detail) =>
        say(
          `${stage} after ${(t / 1000).toFixed(1)} s: ${
            sanitizeText(detail, { singleLine: true })
          }`,
        ),
    });
  } catch (e) {
    if (!signal?.aborted) throw e;
    const by = signal.reason instanceof InterruptedError ? signal.reason.message : "Interrupted";
    throw new InterruptedError(`${by}; stopped waiting for VM ${name}, which keeps running`, {
      cause: e,
    });
  }
}

/** `foundry wait NAME`: until the agent answers, addresses appear or cloud-init has finished. */
export function waitCommand(io: Io): Command {
  return new Command("wait")
    .description("Wait for a VM's guest agent, addresses or the end of cloud-init")
    .argument("<name>", "VM name")
    .option("--for <stage>", `agent, ip or cloud-init`, "cloud-init")
    .option("--timeout <seconds>", "give up after this long", "600")
    .option("-o, --output <format>", "progress (default) or json", "progress")
    .addHelpText(
      "after",
      "\nExamples:\n  foundry wait web-01\n  foundry wait web-01 --for agent --timeout 120\n",
    )
    .action(async (name: string, opts: { for: string; timeout: string; output: string }, cmd) => {
      checkChoice(opts.for, UNTIL, "--for stage");
      checkChoice(opts.output, ["progress", "json"], "output format");
      const ms = timeoutMs(opts.timeout);
      const config = await configFor(cmd);
      const r = await withLibvirt(config, (lv) =>
        waitWithProgress(
          lv,
          io,
          name.toLowerCase(),
          opts.for as Exclude<WaitStage, "running">,
          ms,
          opts.output === "json",
        ));
      if (opts.output === "json") io.out(formatJson(r));
      if (r.cloudInitErrors.length) {
        throw Object.assign(
          new Error(`cloud-init finished with errors: ${r.cloudInitErrors.join("; ")}`),
          { exitCode: 4 },
        );
      }
    });
}
