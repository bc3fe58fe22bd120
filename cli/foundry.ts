#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write --allow-net --allow-env --allow-run=ssh --allow-sys=hostname
/**
 * foundry: libvirt/KVM virtual machines from Kubernetes-style YAML.
 *
 * The entry imports nothing but the front door: `--version` is answered here, and a command loads
 * only its own module (`_foundry_program.ts`), so `list` never pays for `create`'s YAML and
 * cloud-init code.
 *
 * @example
 * ```ts
 * import { main } from "./foundry.ts";
 * const code = await main(["--version"]);
 * ```
 * @module
 */
import denoConfig from "../deno.json" with { type: "json" };
import { readLaunch, writeStdout } from "./_launch.ts";
import type { FoundryDeps } from "./_foundry_program.ts";
import type { Io } from "./_program.ts";

export type { FoundryDeps } from "./_foundry_program.ts";
export type { Io } from "./_program.ts";

/**
 * foundry's root options that take a value, and those that do not, for the front door
 * (`readLaunch`); a test holds this list to the commander tree.
 */
export const FOUNDRY_ROOT_OPTIONS = {
  withValue: [
    "-c",
    "--connect",
    "--config",
    "--domain-type",
    "--destroy-timeout",
    "--storage-path",
    "--image-pool",
    "--vm-pool",
    "--audit-db",
  ],
  flags: ["-v", "--verbose", "--audit", "--no-audit"],
} as const;

/**
 * Runs foundry with `args` (without the program name) and returns the exit code; `io` defaults to
 * the process's stdout and stderr.
 */
export async function main(args: string[], io?: Io, deps: FoundryDeps = {}): Promise<number> {
  const launch = readLaunch(args, FOUNDRY_ROOT_OPTIONS);
  if (launch.kind === "version") {
    (io?.out ?? writeStdout)(`${denoConfig.version}\n`);
    return 0;
  }
  const { runFoundry } = await import("./_foundry_program.ts");
  return runFoundry(args, io, deps, launch.word);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
