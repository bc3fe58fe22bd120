#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write --allow-net --allow-env --allow-sys=hostname
/**
 * virtwork: synthetic workload VMs on KubeVirt / OpenShift Virtualization or a libvirt host.
 *
 * The entry imports nothing but the front door: `--version` is answered here, and a command loads
 * only its own module (`_virtwork_program.ts`), so `audit list` never loads the Kubernetes client.
 *
 * @example
 * ```ts
 * import { main } from "./virtwork.ts";
 * const code = await main(["--version"]);
 * ```
 * @module
 */
import denoConfig from "../deno.json" with { type: "json" };
import { readLaunch, writeStdout } from "./_launch.ts";
import type { Io } from "./_program.ts";
import type { VirtworkDeps } from "./virtwork/_shared.ts";

export type { VirtworkDeps } from "./virtwork/_shared.ts";
export type { Io } from "./_program.ts";
export type { Auditor } from "../lib/audit/types.ts";
export type { ClientOptions } from "../lib/kubevirt/client.ts";

/**
 * virtwork's root options that take a value, and those that do not, for the front door
 * (`readLaunch`); a test holds this list to the commander tree.
 */
export const VIRTWORK_ROOT_OPTIONS = {
  withValue: ["--audit-db", "-n", "--namespace", "--kubeconfig", "--config"],
  flags: ["-v", "--verbose", "--audit", "--no-audit"],
} as const;

/**
 * Runs virtwork with `args` (without the program name) and returns the exit code; `io` defaults
 * to the process's stdout and stderr.
 */
export async function main(args: string[], io?: Io, deps: VirtworkDeps = {}): Promise<number> {
  const launch = readLaunch(args, VIRTWORK_ROOT_OPTIONS);
  if (launch.kind === "version") {
    (io?.out ?? writeStdout)(`${denoConfig.version}\n`);
    return 0;
  }
  const { runVirtwork } = await import("./_virtwork_program.ts");
  return runVirtwork(args, io, deps, launch.word);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
