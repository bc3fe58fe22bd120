#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env --allow-sys=hostname
/**
 * virtwork: synthetic workload VMs on KubeVirt / OpenShift Virtualization.
 *
 * @example
 * ```ts
 * import { main } from "./virtwork.ts";
 * const code = await main(["--version"]);
 * ```
 * @module
 */
import { Command } from "npm:commander@^15.1.0";
import denoConfig from "../deno.json" with { type: "json" };
import { addAuditOptions } from "./_audit.ts";
import { type Io, processIo, runProgram } from "./_program.ts";
import type { VirtworkDeps } from "./virtwork/_shared.ts";
import { auditCommand } from "./virtwork/audit.ts";
import { cleanupCommand } from "./virtwork/cleanup.ts";
import { runCommand } from "./virtwork/run.ts";

export type { VirtworkDeps } from "./virtwork/_shared.ts";
export type { Io } from "./_program.ts";
export type { Auditor } from "../lib/audit/types.ts";
export type { ClientOptions } from "../lib/kubevirt/client.ts";

/**
 * Builds virtwork's command tree; `io` receives everything the commands print and `deps` replaces
 * the environment, Ctrl-C handling, audit sink and client settings (for tests).
 */
export function virtworkProgram(io: Io = processIo, deps: VirtworkDeps = {}): Command {
  const program = new Command("virtwork")
    .description("Deploy synthetic workload VMs onto KubeVirt / OpenShift Virtualization")
    .version(denoConfig.version, "-V, --version")
    .option("-v, --verbose", "show stack traces and debug output")
    .showHelpAfterError();
  addAuditOptions(program, "virtwork");
  program.addCommand(runCommand(io, deps));
  program.addCommand(cleanupCommand(io, deps));
  program.addCommand(auditCommand(io, deps));
  return program;
}

/** Runs virtwork with `args` (without the program name) and returns the exit code. */
export function main(args: string[], io: Io = processIo, deps: VirtworkDeps = {}): Promise<number> {
  return runProgram(virtworkProgram(io, deps), args, io);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
