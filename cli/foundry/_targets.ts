/**
 * The VMs a lifecycle command (`destroy`, `start`, `stop`, `restart`) acts on, as kubectl takes
 * them: several names or `-l SELECTOR`, and `--ignore-not-found`. Each VM is processed in turn;
 * one that fails does not stop the others, and the run ends with the worst exit code.
 * @module
 */
import type { Command } from "npm:commander@^15.1.0";
import { type LabelSelector, parseLabelSelector } from "../../lib/config/selector.ts";
import { VmNotFoundError } from "../../lib/foundry/vm_errors.ts";
import { LibvirtError } from "../../lib/libvirt/errors.ts";
import type { Libvirt } from "../../lib/libvirt/mod.ts";
import { sanitizeText } from "../../lib/output/sanitize.ts";
import { errorText, ExitCode, exitCodeFor, type Io, setExitCode } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";

/** The options {@linkcode targetOptions} adds. */
export interface TargetOptions {
  /** `-l` values; absent when none was given. */
  selector?: string[];
  ignoreNotFound?: boolean;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

/** Adds `[names...]`, `-l, --selector` and `--ignore-not-found` to a lifecycle command. */
export function targetOptions(cmd: Command): Command {
  return cmd
    .argument("[names...]", "VM names")
    .option(
      "-l, --selector <selector>",
      "every foundry VM whose labels match (Kubernetes selector: =, !=, in, notin, key, !key)",
      collect,
    )
    .option("--ignore-not-found", "a VM that does not exist is not an error");
}

/** A usage error (exit 2). */
function usage(message: string): Error {
  return Object.assign(new Error(message), { exitCode: ExitCode.VALIDATION });
}

/** Checks names and selector before connecting: one of them, not both (kubectl's rule). */
export function checkTargets(names: readonly string[], opts: TargetOptions): void {
  const selector = opts.selector ?? [];
  if (names.length > 0 && selector.length > 0) {
    throw usage("Give VM names or -l SELECTOR, not both");
  }
  if (names.length === 0 && selector.length === 0) {
    throw usage("Give at least one VM name, or -l SELECTOR");
  }
  if (selector.length > 0) parseSelector(selector);
}

/** Parses `-l`; a bad selector is a usage error (exit 2). */
function parseSelector(selector: readonly string[]): LabelSelector {
  try {
    return parseLabelSelector(selector);
  } catch (e) {
    throw usage((e as Error).message);
  }
}

/** The names to act on: the given ones (lower-cased, each once), or the VMs the selector matches. */
export async function resolveTargets(
  lv: Libvirt,
  names: readonly string[],
  opts: TargetOptions,
): Promise<string[]> {
  if (!opts.selector?.length) return [...new Set(names.map((n) => n.toLowerCase()))];
  const { listVms } = await import("../../lib/foundry/inventory.ts");
  const { vms } = await listVms(lv, { selector: parseSelector(opts.selector) });
  return vms.map((v) => v.name);
}

/** Resolves the targets and says so when a selector matches no VM (kubectl: exit 0). */
export async function targetsOrNote(
  io: Io,
  lv: Libvirt,
  names: readonly string[],
  opts: TargetOptions,
): Promise<string[]> {
  const targets = await resolveTargets(lv, names, opts);
  if (targets.length === 0) {
    io.err(
      `No VMs match -l ${sanitizeText((opts.selector ?? []).join(","), { singleLine: true })}\n`,
    );
  }
  return targets;
}

/** Whether a domain of that name exists. */
export async function vmExists(lv: Libvirt, name: string): Promise<boolean> {
  try {
    await lv.domainLookupByName(name);
    return true;
  } catch (e) {
    if (e instanceof LibvirtError && e.isNoDomain()) return false;
    throw e;
  }
}

/**
 * Runs `fn` for each VM in turn. A failure is printed for that VM (`Error: ...`, a stack trace
 * with `--verbose`) and the next one goes on; a VM that does not exist is only noted with
 * `--ignore-not-found`. After an interrupt no further VM is started. Sets the command's exit code
 * to the worst one seen (an interrupt's 130 above all, else the highest).
 */
export async function forEachTarget(
  cmd: Command,
  io: Io,
  lv: Libvirt,
  targets: readonly string[],
  opts: TargetOptions,
  fn: (name: string) => Promise<void>,
): Promise<void> {
  let worst = ExitCode.OK as number;
  const verbose = Boolean(cmd.optsWithGlobals().verbose);
  for (const name of targets) {
    if (interruptSignal()?.aborted) break;
    try {
      if (opts.ignoreNotFound && !(await vmExists(lv, name))) {
        io.out(`VM '${name}' does not exist; nothing to do\n`);
        continue;
      }
      await fn(name);
    } catch (e) {
      if (opts.ignoreNotFound && e instanceof VmNotFoundError) {
        io.out(`VM '${name}' does not exist; nothing to do\n`);
        continue;
      }
      if (targets.length === 1) throw e;
      io.err(`Error: ${sanitizeText(errorText(e))}\n`);
      if (verbose && e instanceof Error && e.stack) io.err(`${sanitizeText(e.stack)}\n`);
      const code = exitCodeFor(e);
      if (code === ExitCode.INTERRUPTED || worst === ExitCode.INTERRUPTED) {
        worst = ExitCode.INTERRUPTED;
      } else worst = Math.max(worst, code);
    }
  }
  if (worst !== ExitCode.OK) setExitCode(cmd, worst);
}
