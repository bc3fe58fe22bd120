/**
 * virtwork's command tree on commander. The entry (`virtwork.ts`) loads this module only when a
 * command runs, and this module loads only the chosen command's module (see `_launch.ts`): `audit
 * list` never loads the Kubernetes client.
 * @module
 */
import { Command } from "npm:commander@^15.1.0";
import denoConfig from "../deno.json" with { type: "json" };
import { addAuditOptions } from "./_audit_flags.ts";
import { commandsFor, type LazyCommands } from "./_launch.ts";
import { type Io, processIo, runProgram } from "./_program.ts";
import type { VirtworkDeps } from "./virtwork/_shared.ts";
import { addRootClusterOptions } from "./virtwork/_root.ts";

type Factory = (io: Io, deps: VirtworkDeps) => Command;

/** virtwork's commands, one entry per module, in the order of the help. */
export const VIRTWORK_COMMANDS: readonly LazyCommands<Factory>[] = [
  { words: ["run"], load: async () => [(await import("./virtwork/run.ts")).runCommand] },
  {
    words: ["cleanup"],
    load: async () => [(await import("./virtwork/cleanup.ts")).cleanupCommand],
  },
  { words: ["audit"], load: async () => [(await import("./virtwork/audit.ts")).auditCommand] },
  { words: ["report"], load: async () => [(await import("./virtwork/report.ts")).reportCommand] },
  {
    words: ["compare"],
    load: async () => [(await import("./virtwork/compare.ts")).compareCommand],
  },
  {
    words: ["completion"],
    load: async () => [(await import("./virtwork/completion.ts")).completionCommand],
  },
];

/**
 * Builds virtwork's command tree with the commands `word` needs (every command when `word` is
 * undefined); `io` receives everything the commands print and `deps` replaces the environment,
 * Ctrl-C handling, audit sink and client settings (for tests).
 */
export async function virtworkProgram(
  io: Io = processIo,
  deps: VirtworkDeps = {},
  word?: string,
): Promise<Command> {
  const program = new Command("virtwork")
    .description(
      "Deploy synthetic workload VMs onto KubeVirt / OpenShift Virtualization (--target kubevirt) " +
        "or a libvirt host (--target libvirt)",
    )
    .version(denoConfig.version, "-V, --version")
    .option("-v, --verbose", "show stack traces and debug output")
    .showHelpAfterError();
  addAuditOptions(program, "virtwork");
  addRootClusterOptions(program);
  for (const make of await commandsFor(VIRTWORK_COMMANDS, word)) {
    program.addCommand(make(io, deps));
  }
  return program;
}

/** Runs virtwork's command tree with `args` (the front door has read `word` from them);
 * `io` defaults to the process's stdout and stderr. */
export async function runVirtwork(
  args: string[],
  io: Io = processIo,
  deps: VirtworkDeps,
  word: string | undefined,
): Promise<number> {
  return runProgram(await virtworkProgram(io, deps, word), args, io);
}
