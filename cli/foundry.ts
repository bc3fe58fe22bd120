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
import { type FastCommandSpec, readFastCommand, readLaunch, writeStdout } from "./_launch.ts";
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
    "--host", // issue 16: fleets
    "--host-selector",
    "--parallel",
  ],
  flags: ["-v", "--verbose", "--audit", "--no-audit"],
} as const;

/** The long spelling of each short root option, for the front door's commands. */
const FOUNDRY_ROOT_LONG = { "-c": "--connect", "-v": "--verbose" } as const;

const OUTPUT = { names: ["-o", "--output"], key: "output", kind: "value" } as const;
const NO_HEADERS = { names: ["--no-headers"], key: "headers", kind: "flag" } as const;
/** Issue 16: `--target kubevirt` and its cluster options (that target goes through commander). */
const TARGET = [
  { names: ["--target"], key: "target", kind: "value", choices: ["libvirt", "kubevirt"] },
  { names: ["--kubeconfig"], key: "kubeconfig", kind: "value" },
  { names: ["--context"], key: "context", kind: "value" },
  { names: ["-n", "--namespace"], key: "namespace", kind: "value" },
] as const;

/**
 * The commands the front door runs without loading commander (`list`, `get`: the ones run most,
 * whose start-up the issue measures against virsh), with their options as the commander tree
 * declares them; a test holds the two to each other. Help, errors and anything unusual still go
 * through commander.
 */
export const FOUNDRY_FAST_COMMANDS: readonly FastCommandSpec[] = [
  {
    words: ["list", "ls"],
    name: "list",
    operands: 0,
    options: [
      { names: ["-a", "--all"], key: "all", kind: "flag" },
      { names: ["-l", "--selector"], key: "selector", kind: "list" },
      { names: ["-w", "--watch"], key: "watch", kind: "flag" }, // issue 14: list -w
      ...TARGET,
      { ...OUTPUT, choices: ["table", "wide", "name", "json", "yaml"] },
      NO_HEADERS,
    ],
    defaults: { selector: [], output: "table", headers: true },
  },
  {
    words: ["get"],
    name: "get",
    operands: 1,
    options: [
      ...TARGET,
      { ...OUTPUT, choices: ["yaml", "json", "name", "table", "wide"] },
      NO_HEADERS,
    ],
    defaults: { output: "yaml", headers: true },
  },
];

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
  const read = readFastCommand(
    args,
    FOUNDRY_ROOT_OPTIONS,
    FOUNDRY_ROOT_LONG,
    FOUNDRY_FAST_COMMANDS,
  );
  const fast = read?.options.target === "kubevirt" ? undefined : read;
  if (fast && !deps.env) {
    // list and get go straight to their module: the command tree is not loaded at all.
    return (await import("./_foundry_fast.ts")).runFast(fast, args, io);
  }
  const { runFoundry } = await import("./_foundry_program.ts");
  return runFoundry(args, io, deps, launch.word, fast);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
