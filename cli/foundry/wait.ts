import { Command } from "npm:commander@^15.1.0";
import { InterruptedError, type Libvirt } from "../../lib/libvirt/mod.ts";
import {
  VmNotRunningError,
  WAIT_STAGES,
  waitForVm,
  type WaitResult,
  type WaitStage,
} from "../../lib/foundry/wait.ts";
import { VmOperationError } from "../../lib/foundry/vm_errors.ts";
import { formatJson, sanitizeText } from "../../lib/output/mod.ts";
import { type Io, isTerminalIo } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { openStatusLine, stageLine } from "../_status.ts";
import { checkChoice, configFor, envOf, withLibvirt } from "./_context.ts";

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

function processEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * Waits with progress and Ctrl-C support; shared by `wait` and `create --wait`. One line per stage
 * reached; on a terminal also a live line (the stage awaited, elapsed, timeout), cleared at the
 * end. What the guest reports is printed without control sequences. A VM that is shut off fails
 * at once, saying how to start it.
 */
export async function waitWithProgress(
  lv: Libvirt,
  io: Io,
  name: string,
  until: Exclude<WaitStage, "running">,
  ms: number,
  quiet: boolean,
  env: (name: string) => string | undefined = processEnv,
): Promise<WaitResult> {
  const tty = { isTerminal: !quiet && isTerminalIo(io), env };
  const status = quiet ? undefined : openStatusLine({
    ...tty,
    write: io.out,
    timeoutSeconds: ms / 1000,
  });
  const next = (after: WaitStage | undefined) => {
    const i = after === undefined ? 0 : WAIT_STAGES.indexOf(after) + 1;
    const stage = WAIT_STAGES[i];
    if (stage && i <= WAIT_STAGES.indexOf(until)) {
      status?.status(`VM '${name}': waiting for ${stage}`);
    }
  };
  const signal = interruptSignal();
  try {
    if (!quiet) io.out(`Waiting for VM '${name}' (until ${until}, at most ${ms / 1000} s)...\n`);
    next(undefined);
    return await waitForVm(lv, name, {
      until,
      timeoutMs: ms,
      ...(signal ? { signal } : {}),
      onStage: (stage, t, detail) => {
        status?.line(
          stageLine(
            tty,
            `${stage} after ${(t / 1000).toFixed(1)} s: ${
              sanitizeText(detail, { singleLine: true })
            }`,
          ),
        );
        next(stage);
      },
    });
  } catch (e) {
    if (e instanceof VmNotRunningError) {
      throw new VmOperationError(`${e.message}; start it with: foundry start ${name}`, {
        cause: e,
      });
    }
    if (!signal?.aborted) throw e;
    const by = signal.reason instanceof InterruptedError ? signal.reason.message : "Interrupted";
    throw new InterruptedError(`${by}; stopped waiting for VM ${name}, which keeps running`, {
      cause: e,
    });
  } finally {
    status?.done();
  }
}

/** `foundry wait NAME`: until the agent answers, addresses appear or cloud-init has finished. */
export function waitCommand(io: Io): Command {
  return new Command("wait")
    .description("Wait for a VM's guest agent, addresses or the end of cloud-init")
    .argument("<name>", "VM name")
    .option("--for <stage>", `agent, ip or cloud-init`, "cloud-init")
    .option("--timeout <seconds>", "give up after this long", "600")
    .addHelpText(
      "after",
      "\nA VM that is shut off fails at once with exit code 4 (start it with foundry start NAME).\n",
    )
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
          envOf(cmd),
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
