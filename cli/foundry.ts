#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env --allow-run --allow-sys
/**
 * foundry: libvirt/KVM virtual machines from Kubernetes-style YAML.
 *
 * @example
 * ```ts
 * import { main } from "./foundry.ts";
 * const code = await main(["--version"]);
 * ```
 * @module
 */
import { Command } from "npm:commander@^15.1.0";
import denoConfig from "../deno.json" with { type: "json" };
import { type Io, processIo, runProgram } from "./_program.ts";
import { versionCommand } from "./foundry/version.ts";

/** Builds foundry's command tree; `io` receives everything the commands print. */
export function foundryProgram(io: Io = processIo): Command {
  const program = new Command("foundry")
    .description("Manage libvirt virtual machines from foundry.cofront.xyz/v1alpha1 YAML")
    .version(denoConfig.version, "-V, --version")
    .option(
      "-c, --connect <uri>",
      "libvirt URI (env FOUNDRY_URI, LIBVIRT_DEFAULT_URI; default qemu:///system)",
    )
    .option("-v, --verbose", "show stack traces and debug output")
    .showHelpAfterError();
  program.addCommand(versionCommand(io));
  return program;
}

/** Runs foundry with `args` (without the program name) and returns the exit code. */
export function main(args: string[], io: Io = processIo): Promise<number> {
  return runProgram(foundryProgram(io), args, io);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
