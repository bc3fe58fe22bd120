#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env --allow-run=ssh --allow-sys=hostname
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
import { addAuditOptions } from "./_audit.ts";
import { type Io, processIo, runProgram } from "./_program.ts";
import { useEnv } from "./foundry/_context.ts";
import { createCommand } from "./foundry/create.ts";
import { destroyCommand } from "./foundry/destroy.ts";
import { getCommand, vmCommand } from "./foundry/get.ts";
import { historyCommand } from "./foundry/history.ts";
import { imageCommand } from "./foundry/image.ts";
import { listCommand } from "./foundry/list.ts";
import { poolCommand } from "./foundry/pool.ts";
import { restartCommand, startCommand, stopCommand } from "./foundry/power.ts";
import { storageCommand } from "./foundry/storage.ts";
import { versionCommand } from "./foundry/version.ts";
import { waitCommand } from "./foundry/wait.ts";

/** What foundry reads from outside besides its arguments; tests and scripts may pass their own. */
export interface FoundryDeps {
  /** Environment variables (default: the process's), e.g. `FOUNDRY_URI`, `LIBVIRT_DEFAULT_URI`. */
  env?: Record<string, string | undefined>;
}

/** Builds foundry's command tree; `io` receives everything the commands print. */
export function foundryProgram(io: Io = processIo, deps: FoundryDeps = {}): Command {
  const program = new Command("foundry")
    .description("Manage libvirt virtual machines from foundry.cofront.xyz/v1alpha1 YAML")
    .version(denoConfig.version, "-V, --version")
    .option(
      "-c, --connect <uri>",
      "libvirt URI (env FOUNDRY_URI, LIBVIRT_DEFAULT_URI; default qemu:///system)",
    )
    .option(
      "--config <file>",
      "configuration file (env FOUNDRY_CONFIG; default ~/.config/foundry/config.yaml, /etc/foundry/config.yaml)",
    )
    .option("--domain-type <type>", "kvm, qemu or auto (env FOUNDRY_DOMAIN_TYPE; default auto)")
    .option(
      "--destroy-timeout <seconds>",
      "graceful shutdown wait of destroy/stop (env FOUNDRY_DESTROY_TIMEOUT; default 5)",
    )
    .option("--storage-path <dir>", "base directory of foundry's pools (env FOUNDRY_STORAGE_PATH)")
    .option(
      "--image-pool <name>",
      "pool of base images (env FOUNDRY_IMAGE_POOL; default foundry-images)",
    )
    .option(
      "--vm-pool <name>",
      "default pool of VM disks (env FOUNDRY_VM_POOL; default foundry-vms)",
    )
    .option("-v, --verbose", "show stack traces and debug output")
    .showHelpAfterError();
  addAuditOptions(program, "foundry");
  for (
    const make of [
      createCommand,
      destroyCommand,
      listCommand,
      getCommand,
      vmCommand,
      startCommand,
      stopCommand,
      restartCommand,
      waitCommand,
      versionCommand,
      poolCommand,
      imageCommand,
      storageCommand,
      historyCommand,
    ]
  ) program.addCommand(make(io));
  if (deps.env) useEnv(program, deps.env);
  return program;
}

/** Runs foundry with `args` (without the program name) and returns the exit code. */
export function main(
  args: string[],
  io: Io = processIo,
  deps: FoundryDeps = {},
): Promise<number> {
  return runProgram(foundryProgram(io, deps), args, io);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
