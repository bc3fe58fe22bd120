import type { Command } from "npm:commander@^15.1.0";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { type ConfigFlags, type FoundryConfig, loadConfig } from "../../lib/foundry/config.ts";
import { paint, useColor } from "../../lib/output/format.ts";
import { type Io, processIo } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { FOUNDRY_SETTING_FLAGS, withFoundryFlag } from "./_config_flags.ts";

/** A variable of the process's environment (undefined when empty or without env permission). */
export function processEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** Environment variables given to a program instead of the process's (tests, embedding scripts). */
const programEnv = new WeakMap<Command, Record<string, string | undefined>>();

/** Makes `program` and its subcommands read `env` instead of the process environment. */
export function useEnv(program: Command, env: Record<string, string | undefined>): void {
  programEnv.set(program, env);
}

/** The environment lookup of `cmd`'s program: the one given with {@linkcode useEnv}, else the process's. */
export function envOf(cmd: Command): (name: string) => string | undefined {
  let root: Command = cmd;
  while (root.parent) root = root.parent;
  const env = programEnv.get(root);
  return env ? (name) => env[name] || undefined : processEnv;
}

/** foundry's global options, as commander parses them. */
export interface GlobalOptions {
  connect?: string;
  config?: string;
  domainType?: string;
  destroyTimeout?: string;
  storagePath?: string;
  imagePool?: string;
  vmPool?: string;
  verbose?: boolean;
}

/** The root command's options, seen from any subcommand. */
export function globals(cmd: Command): GlobalOptions {
  let root: Command = cmd;
  while (root.parent) root = root.parent;
  return root.opts<GlobalOptions>();
}

/** The effective configuration: flags > FOUNDRY_* environment > config file > defaults. */
export function configFor(cmd: Command): Promise<FoundryConfig> {
  return configFrom(globals(cmd), envOf(cmd));
}

/**
 * The effective configuration from the root options `g` and the environment lookup `env` (see
 * {@linkcode configFor}; the front door's commands have no commander tree to ask).
 */
export function configFrom(
  g: GlobalOptions,
  env: (name: string) => string | undefined = processEnv,
): Promise<FoundryConfig> {
  const flags: ConfigFlags = {};
  if (g.config !== undefined) flags.config = g.config;
  if (g.connect !== undefined) flags.uri = g.connect;
  else if (!env("FOUNDRY_URI") && env("LIBVIRT_DEFAULT_URI")) {
    // virsh's variable ranks below FOUNDRY_URI and above the configuration file.
    flags.uri = env("LIBVIRT_DEFAULT_URI")!;
  }
  if (g.domainType !== undefined) flags.domainType = g.domainType;
  if (g.destroyTimeout !== undefined) {
    const seconds = g.destroyTimeout.trim() === "" ? NaN : Number(g.destroyTimeout);
    if (!Number.isFinite(seconds) || seconds < 0) {
      throw Object.assign(
        new Error(
          `Invalid ${FOUNDRY_SETTING_FLAGS.destroyTimeoutSeconds} ${
            JSON.stringify(g.destroyTimeout.slice(0, 100))
          }: expected a number of seconds of 0 or more`,
        ),
        { exitCode: 2 },
      );
    }
    flags.destroyTimeoutSeconds = seconds;
  }
  if (g.storagePath !== undefined) flags.storagePath = g.storagePath;
  if (g.imagePool !== undefined) flags.imagesPool = g.imagePool;
  if (g.vmPool !== undefined) flags.vmsPool = g.vmPool;
  // lib names a bad flag value by its setting's key; the user reads the flag.
  return loadConfig({ flags, env }).catch((e) => {
    throw withFoundryFlag(e);
  });
}

/**
 * Connects with the configured URI, runs `fn`, and always closes the connection. An interrupt
 * (Ctrl-C) rejects the connect and every read-only call in flight at once; a call that changes
 * the daemon's state is given up to 10 s to answer, so the rollback knows what it made. Calls made
 * after it (a rollback) still go out.
 */
export async function withLibvirt<T>(
  config: FoundryConfig,
  fn: (lv: Libvirt) => Promise<T>,
): Promise<T> {
  const signal = interruptSignal();
  const lv = await Libvirt.connect(config.uri, signal ? { signal } : {});
  try {
    return await fn(lv);
  } finally {
    // The command is done with the daemon: no CONNECT_CLOSE round trip before its output.
    await lv.close({ wait: false });
  }
}

/** Whether `io` is the process's own terminal with colour allowed. */
export function colorFor(io: Io): boolean {
  let env: Record<string, string | undefined> = {};
  try {
    env = { NO_COLOR: Deno.env.get("NO_COLOR"), TERM: Deno.env.get("TERM") };
  } catch { /* no env permission: no colour */ }
  return useColor({ isTerminal: io === processIo && Deno.stdout.isTerminal(), env });
}

/** Progress line writer: `✓ text` on a terminal (green tick with colour), `ok text` otherwise. */
export function progress(io: Io): (text: string) => void {
  const tty = io === processIo && Deno.stdout.isTerminal();
  const color = colorFor(io);
  return (text) => io.out(tty ? `${paint("✓", "green", color)} ${text}\n` : `ok ${text}\n`);
}

/** Adds `-o, --output` with the given formats. */
export function outputOption(cmd: Command, formats: string[], def: string): Command {
  return cmd.option(`-o, --output <format>`, `output format: ${formats.join(", ")}`, def);
}

/** Throws a usage error (exit 2) unless `value` is one of `allowed`. */
export function checkChoice(value: string, allowed: readonly string[], what: string): void {
  if (!allowed.includes(value)) {
    throw Object.assign(
      new Error(`Invalid ${what} '${value}': expected one of ${allowed.join(", ")}`),
      { exitCode: 2 },
    );
  }
}
