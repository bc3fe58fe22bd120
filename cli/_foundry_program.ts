/**
 * foundry's command tree on commander. The entry (`foundry.ts`) loads this module only when a
 * command runs, and this module loads only the chosen command's module (see `_launch.ts`).
 * @module
 */
// Loaded when the tree is built: list and get run without it (see _launch.ts).
import type { Command } from "npm:commander@^15.1.0";
import denoConfig from "../deno.json" with { type: "json" };
import { addAuditOptions } from "./_audit_flags.ts";
import { FOUNDRY_SETTING_FLAGS as F } from "./foundry/_config_flags.ts";
import { commandsFor, type FastLaunch, type LazyCommands } from "./_launch.ts";
import { type Io, processIo, runProgram } from "./_program.ts";

/** What foundry reads from outside besides its arguments; tests and scripts may pass their own. */
export interface FoundryDeps {
  /** Environment variables (default: the process's), e.g. `FOUNDRY_URI`, `LIBVIRT_DEFAULT_URI`. */
  env?: Record<string, string | undefined>;
}

type Factory = (io: Io) => Command;

/** foundry's commands, one entry per module, in the order of the help. */
export const FOUNDRY_COMMANDS: readonly LazyCommands<Factory>[] = [
  { words: ["create"], load: async () => [(await import("./foundry/create.ts")).createCommand] },
  {
    words: ["destroy", "rm", "delete"],
    load: async () => [(await import("./foundry/destroy.ts")).destroyCommand],
  },
  { words: ["list", "ls"], load: async () => [(await import("./foundry/list.ts")).listCommand] },
  {
    words: ["get", "vm"],
    load: async () => {
      const m = await import("./foundry/get.ts");
      return [m.getCommand, m.vmCommand];
    },
  },
  {
    words: ["start", "stop", "restart"],
    load: async () => {
      const m = await import("./foundry/power.ts");
      return [m.startCommand, m.stopCommand, m.restartCommand];
    },
  },
  { words: ["wait"], load: async () => [(await import("./foundry/wait.ts")).waitCommand] },
  {
    words: ["version"],
    load: async () => [(await import("./foundry/version.ts")).versionCommand],
  },
  { words: ["pool"], load: async () => [(await import("./foundry/pool.ts")).poolCommand] },
  { words: ["image"], load: async () => [(await import("./foundry/image.ts")).imageCommand] },
  {
    words: ["storage"],
    load: async () => [(await import("./foundry/storage.ts")).storageCommand],
  },
  {
    words: ["history"],
    load: async () => [(await import("./foundry/history.ts")).historyCommand],
  },
  // Day-2 operations (issue 14).
  {
    words: ["console"],
    load: async () => [(await import("./foundry/console.ts")).consoleCommand],
  },
  { words: ["exec"], load: async () => [(await import("./foundry/exec.ts")).execCommand] },
  { words: ["cp"], load: async () => [(await import("./foundry/cp.ts")).cpCommand] },
  { words: ["logs"], load: async () => [(await import("./foundry/logs.ts")).logsCommand] },
  { words: ["ssh"], load: async () => [(await import("./foundry/ssh.ts")).sshCommand] },
  {
    words: ["describe"],
    load: async () => [(await import("./foundry/describe.ts")).describeCommand],
  },
  { words: ["events"], load: async () => [(await import("./foundry/events.ts")).eventsCommand] },
  {
    words: ["snapshot"],
    load: async () => [(await import("./foundry/snapshot.ts")).snapshotCommand],
  },
  { words: ["clone"], load: async () => [(await import("./foundry/clone.ts")).cloneCommand] },
  { words: ["resize"], load: async () => [(await import("./foundry/resize.ts")).resizeCommand] },
  // Declarative foundry (issue 15).
  {
    words: ["apply", "diff"],
    load: async () => {
      const m = await import("./foundry/apply.ts");
      return [m.applyCommand, m.diffCommand];
    },
  },
  { words: ["adopt"], load: async () => [(await import("./foundry/adopt.ts")).adoptCommand] },
  // Fleets of hosts (issue 16).
  { words: ["host"], load: async () => [(await import("./foundry/host.ts")).hostCommand] },
  { words: ["move"], load: async () => [(await import("./foundry/move.ts")).moveCommand] },
  {
    words: ["completion"],
    load: async () => [(await import("./foundry/completion.ts")).completionCommand],
  },
];

/**
 * Builds foundry's command tree with the commands `word` needs (every command when `word` is
 * undefined); `io` receives everything the commands print.
 */
export async function foundryProgram(
  io: Io = processIo,
  deps: FoundryDeps = {},
  word?: string,
): Promise<Command> {
  const { Command } = await import("npm:commander@^15.1.0");
  const program = new Command("foundry")
    .description("Manage libvirt virtual machines from foundry.cofront.xyz/v1alpha1 YAML")
    .version(denoConfig.version, "-V, --version")
    .option(
      `-c, ${F.uri} <uri>`,
      "libvirt URI (env FOUNDRY_URI, LIBVIRT_DEFAULT_URI; default qemu:///system)",
    )
    .option(
      "--host <names>",
      "work on configured hosts: NAME[,NAME...] or all (hosts: in --config)",
    )
    .option("--host-selector <labels>", "work on the configured hosts whose labels match")
    .option("--parallel <n>", "hosts worked on at once with --host (default 4)")
    .option(
      `${F.config} <file>`,
      "configuration file (env FOUNDRY_CONFIG; default ~/.config/foundry/config.yaml, /etc/foundry/config.yaml)",
    )
    .option(`${F.domainType} <type>`, "kvm, qemu or auto (env FOUNDRY_DOMAIN_TYPE; default auto)")
    .option(
      `${F.destroyTimeoutSeconds} <seconds>`,
      "graceful shutdown wait of destroy/stop (env FOUNDRY_DESTROY_TIMEOUT; default 5)",
    )
    .option(
      `${F.storagePath} <dir>`,
      "base directory of foundry's pools (env FOUNDRY_STORAGE_PATH)",
    )
    .option(
      `${F.imagesPool} <name>`,
      "pool of base images (env FOUNDRY_IMAGE_POOL; default foundry-images)",
    )
    .option(
      `${F.vmsPool} <name>`,
      "default pool of VM disks (env FOUNDRY_VM_POOL; default foundry-vms)",
    )
    .option("-v, --verbose", "show stack traces and debug output")
    .showHelpAfterError();
  addAuditOptions(program, "foundry");
  for (const make of await commandsFor(FOUNDRY_COMMANDS, word)) program.addCommand(make(io));
  if (deps.env) (await import("./foundry/_context.ts")).useEnv(program, deps.env);
  return program;
}

/**
 * Runs foundry's command tree with `args` (the front door has read `word` from them), or, when the
 * front door read a whole `list` or `get` command (`fast`), that command without commander; `io`
 * defaults to the process's stdout and stderr.
 */
export async function runFoundry(
  args: string[],
  io: Io = processIo,
  deps: FoundryDeps,
  word: string | undefined,
  fast?: FastLaunch,
): Promise<number> {
  if (fast) return (await import("./foundry/_inventory.ts")).runFast(fast, args, io, deps.env);
  return runProgram(await foundryProgram(io, deps, word), args, io);
}
