import { Command } from "npm:commander@^15.1.0";
import type { Io } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { byteSink, withVmDomain } from "./exec.ts";

/** cloud-init's log of what its modules printed, in the guest. */
export const CLOUD_INIT_OUTPUT_LOG = "/var/log/cloud-init-output.log";

/** Parses `--tail N` (a whole number of lines, 0 or more; usage error, exit 2). */
export function tailLines(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) {
    throw Object.assign(new Error(`Invalid --tail '${text}': expected a number of lines`), {
      exitCode: 2,
    });
  }
  return n;
}

/** The guest command that prints (and with `follow` keeps printing) the log asked for. */
export function logsArgv(opts: { cloudInit: boolean; follow: boolean; tail?: number }): string[] {
  if (opts.cloudInit) {
    // tail from the start (+1) when no --tail is given: the whole log.
    const n = opts.tail === undefined ? "+1" : String(opts.tail);
    return ["tail", "-n", n, ...(opts.follow ? ["-F"] : []), CLOUD_INIT_OUTPUT_LOG];
  }
  return [
    "journalctl",
    "--no-pager",
    "-b",
    ...(opts.tail !== undefined ? ["-n", String(opts.tail)] : []),
    ...(opts.follow ? ["-f"] : []),
  ];
}

/** `foundry logs NAME`. */
export function logsCommand(io: Io): Command {
  return new Command("logs")
    .description("Show a VM's journal (this boot) or cloud-init output through the guest agent")
    .argument("<name>", "VM name")
    .option("--cloud-init", `show ${CLOUD_INIT_OUTPUT_LOG} instead of the journal`)
    .option("-f, --follow", "keep printing new lines until Ctrl-C")
    .option("--tail <lines>", "only the last N lines (default: all)")
    .addHelpText(
      "after",
      `
The log is read in the guest (journalctl -b, or tail of ${CLOUD_INIT_OUTPUT_LOG}) through the
guest agent, no network needed, and streamed as it comes; -f runs until Ctrl-C, which ends the
reader in the guest too.

Exit codes: 0 shown (or followed until Ctrl-C: 130), 2 usage, 3 connection, 4 the VM is missing,
not running or its agent does not answer; any other code is the reader's in the guest (1 from
journalctl or tail: no such log).

Examples:
  foundry logs web-01 --tail 50
  foundry logs web-01 --cloud-init
  foundry logs web-01 -f
`,
    )
    .action(
      async (
        name: string,
        opts: { cloudInit?: boolean; follow?: boolean; tail?: string },
        cmd: Command,
      ) => {
        const tail = opts.tail === undefined ? undefined : tailLines(opts.tail);
        const argv = logsArgv({
          cloudInit: opts.cloudInit === true,
          follow: opts.follow === true,
          ...(tail !== undefined ? { tail } : {}),
        });
        const { guestExecStream } = await import("../../lib/foundry/guest_exec.ts");
        const signal = interruptSignal();
        const r = await withVmDomain(
          cmd,
          name.toLowerCase(),
          (lv, domain) =>
            guestExecStream(lv, domain, argv, {
              ...(signal ? { signal } : {}),
              onStdout: byteSink(io, "out"),
              onStderr: byteSink(io, "err"),
            }),
        );
        if (r.exitCode !== 0) {
          throw Object.assign(
            new Error(`${argv[0]} ended with exit code ${r.exitCode} in the guest`),
            { exitCode: r.exitCode > 0 && r.exitCode < 256 ? r.exitCode : 4 },
          );
        }
      },
    );
}
