#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env --allow-sys
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
import { type Io, processIo, runProgram } from "./_program.ts";

/** Builds virtwork's command tree; `io` receives everything the commands print. */
export function virtworkProgram(_io: Io = processIo): Command {
  const program = new Command("virtwork")
    .description("Deploy synthetic workload VMs onto KubeVirt / OpenShift Virtualization")
    .version(denoConfig.version, "-V, --version")
    .option("-v, --verbose", "show stack traces and debug output")
    .showHelpAfterError();
  return program;
}

/** Runs virtwork with `args` (without the program name) and returns the exit code. */
export function main(args: string[], io: Io = processIo): Promise<number> {
  return runProgram(virtworkProgram(io), args, io);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
