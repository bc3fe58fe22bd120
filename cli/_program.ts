// Types only: the front door runs list and get without loading commander (see _launch.ts).
import type { Command } from "npm:commander@^15.1.0";
import { sanitizeText } from "../lib/output/sanitize.ts";
import { EXIT_INTERRUPTED, openInterruptScope } from "./_signals.ts";
import { writeAllSync } from "./_write.ts";

/** Exit codes shared by both executables (foundry design, "Exit Codes"). */
export const ExitCode = {
  OK: 0,
  CONFIG: 1,
  VALIDATION: 2,
  CONNECTION: 3,
  VM_OPERATION: 4,
  STORAGE: 5,
  /** virtwork: a `--threshold` gate failed (the run itself succeeded). */
  THRESHOLD: 6,
  /** Ended by an interrupt (SIGINT, SIGTERM, SIGHUP). */
  INTERRUPTED: EXIT_INTERRUPTED,
} as const;

/** An error that knows the exit code the CLI should end with. */
export interface HasExitCode {
  exitCode: number;
}

/**
 * The exit code of each error class of lib/, by its `name` (lib's errors carry data, never exit
 * codes; matching names keeps this module from loading lib/). A subclass is listed by its own
 * name, as it sets it.
 */
const codeByErrorName = new Map<string, number>([
  ["ValidationError", ExitCode.VALIDATION],
  ["LabelSelectorError", ExitCode.VALIDATION],
  ["CreateCheckError", ExitCode.VALIDATION],
  ["RuntimeCheckError", ExitCode.VALIDATION],
  ["ImageRequestError", ExitCode.VALIDATION],
  ["AmbiguousRunIdError", ExitCode.VALIDATION],
  ["ConfigError", ExitCode.CONFIG],
  ["ConnectionError", ExitCode.CONNECTION],
  ["KubeApiError", ExitCode.VM_OPERATION],
  ["LibvirtError", ExitCode.VM_OPERATION],
  ["VmOperationError", ExitCode.VM_OPERATION],
  ["VmNotFoundError", ExitCode.VM_OPERATION],
  ["VmNotManagedError", ExitCode.VM_OPERATION],
  ["VmNotRunningError", ExitCode.VM_OPERATION],
  ["WaitTimeoutError", ExitCode.VM_OPERATION],
  ["GuestAgentError", ExitCode.VM_OPERATION],
  ["GuestFileTooLargeError", ExitCode.VM_OPERATION],
  ["StorageError", ExitCode.STORAGE],
  ["PullLimitError", ExitCode.STORAGE],
  ["InterruptedError", ExitCode.INTERRUPTED],
]);

/**
 * Maps an error thrown by lib/ to the exit code of the design; an error the table does not know
 * ends with `otherwise` (1; virtwork, whose every other failure is a cluster operation's, passes 4).
 */
export function exitCodeFor(err: unknown, otherwise: number = ExitCode.CONFIG): number {
  if (err && typeof err === "object") {
    const c = (err as Partial<HasExitCode>).exitCode;
    if (typeof c === "number") return c;
    const name = (err as { name?: unknown }).name;
    // A flag's bad value (`--domain-type xen`) is a usage error, as commander's own are; lib
    // gives its source as "flag" (FLAG_SOURCE of lib/config/layered.ts).
    const source = (err as { source?: unknown }).source;
    if (name === "ConfigError" && source === "flag") {
      return ExitCode.VALIDATION;
    }
    // destroy stopped part-way: a VM operation while the domain is still defined, else storage.
    if (name === "DestroyIncompleteError") {
      return (err as { domainUndefined?: unknown }).domainUndefined === true
        ? ExitCode.STORAGE
        : ExitCode.VM_OPERATION;
    }
    if (typeof name === "string") return codeByErrorName.get(name) ?? otherwise;
  }
  return otherwise;
}

/** The flag of each option lib/ errors name as a way past them (`hint`, lib/foundry/option_hint.ts). */
const FLAG_OF_OPTION: Record<string, string> = { force: "--force", name: "--name" };

/**
 * An error's text as the user reads it: its message, and when lib/ says which option of the call
 * would get past it, the flag that sets that option (`...; use --force to delete it anyway`).
 */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const hint = (err as { hint?: { option?: unknown; effect?: unknown } }).hint;
  const flag = typeof hint?.option === "string" ? FLAG_OF_OPTION[hint.option] : undefined;
  if (!flag) return err.message;
  return typeof hint?.effect === "string"
    ? `${err.message}; use ${flag} to ${hint.effect}`
    : `${err.message}; pass ${flag}`;
}

/** Output streams of a command run, so tests can capture what a command printed. */
export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  /**
   * Whether the output is a terminal (live status lines redrawn in place, colour). Unset: the
   * process's stdout for {@linkcode processIo}, otherwise false. Tests set it to see what a
   * terminal sees.
   */
  isTerminal?: boolean;
}

/** Writes to the process's stdout and stderr (whole; a reader that went away is no error). */
export const processIo: Io = {
  out: (s) => writeAllSync(Deno.stdout, s),
  err: (s) => writeAllSync(Deno.stderr, s),
};

/** Whether `io` writes to a terminal (see {@linkcode Io.isTerminal}). */
export function isTerminalIo(io: Io): boolean {
  if (io.isTerminal !== undefined) return io.isTerminal;
  if (io !== processIo) return false;
  try {
    return Deno.stdout.isTerminal();
  } catch {
    return false;
  }
}

/**
 * Runs a commander program in-process: usage errors exit 2, lib errors exit with their mapped code,
 * and a stack trace is shown only with `--verbose`. SIGINT, SIGTERM and SIGHUP interrupt the
 * command (see `_signals.ts`) and the run then ends with 130. Error text is printed without
 * terminal control sequences: it may quote a guest or the daemon.
 */
export function runProgram(program: Command, args: string[], io: Io): Promise<number> {
  return runInterruptible(io, () => runParsed(program, args, io));
}

/**
 * Runs a command's action the way {@linkcode runProgram} runs a parsed program, for the front
 * door's commands run without commander: the same interrupt handling, error lines and exit codes.
 */
export function runAction(args: string[], io: Io, action: () => Promise<void>): Promise<number> {
  return runInterruptible(io, async () => {
    try {
      await action();
      return 0;
    } catch (err) {
      return reportFailure(err, args, io);
    }
  });
}

async function runInterruptible(io: Io, run: () => Promise<number>): Promise<number> {
  const interrupts = openInterruptScope({ err: io.err });
  try {
    const code = await run();
    return interrupts.received ? ExitCode.INTERRUPTED : code;
  } finally {
    interrupts.dispose();
  }
}

/** commander's own errors (usage, help, version) by their codes, without loading commander. */
function isCommanderError(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === "string" && code.startsWith("commander.");
}

/** Prints a command's failure (the stack too with `--verbose`) and returns its exit code. */
function reportFailure(err: unknown, args: readonly string[], io: Io): number {
  const verbose = args.includes("--verbose") || args.includes("-v");
  io.err(`Error: ${sanitizeText(errorText(err))}\n`);
  if (verbose && err instanceof Error && err.stack) io.err(`${sanitizeText(err.stack)}\n`);
  return exitCodeFor(err);
}

async function runParsed(program: Command, args: string[], io: Io): Promise<number> {
  let exit = 0;
  const setup = (cmd: Command) => {
    cmd.exitOverride();
    // A usage error is one line (with a correction when one is near), never the whole help.
    cmd.showHelpAfterError(false);
    cmd.configureOutput({
      writeOut: io.out,
      writeErr: io.err,
      outputError: (text) => io.err(usageErrorLine(text, commandPath(cmd), primaryNames(cmd))),
    });
    for (const sub of cmd.commands) setup(sub);
  };
  setup(program);
  try {
    await program.parseAsync(args, { from: "user" });
    const code = (program as Command & { _foundryExit?: number })._foundryExit;
    if (typeof code === "number") exit = code;
  } catch (err) {
    if (isCommanderError(err)) {
      // Help and version print and end with code 0; every other commander error is a usage error.
      if (
        err.code === "commander.helpDisplayed" || err.code === "commander.version" ||
        err.code === "commander.help"
      ) return 0;
      return 2;
    }
    exit = reportFailure(err, args, io);
  }
  return exit;
}

/** Each subcommand's aliases (and name) mapped to its name. */
function primaryNames(cmd: Command): Map<string, string> {
  const out = new Map<string, string>();
  for (const sub of cmd.commands) {
    for (const a of [sub.name(), ...sub.aliases()]) out.set(a, sub.name());
  }
  return out;
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/**
 * One line for a commander usage error, kubectl-like: `Error: unknown command 'lsit'. Did you mean
 * 'list'?`, or, without a near name, the message and where the help is.
 */
export function usageErrorLine(
  text: string,
  path: string,
  primary: ReadonlyMap<string, string> = new Map(),
): string {
  const [first = "", ...rest] = text.trim().split("\n");
  const message = first.replace(/^error: /, "").replace(/\.$/, "");
  const hint = /^\(Did you mean (one of )?(.+)\?\)$/.exec(rest.join(" ").trim());
  if (hint) {
    // An alias and its command are one suggestion: `ls` and `list` are the same command.
    const names = [...new Set(hint[2]!.split(", ").map((n) => primary.get(n) ?? n))];
    const shown = names.map((n) => `'${n}'`).join(", ");
    const oneOf = names.length > 1 ? "one of " : "";
    return `Error: ${sanitizeText(message)}. Did you mean ${oneOf}${shown}?\n`;
  }
  return `Error: ${sanitizeText(message)}. See '${path} --help'.\n`;
}

/** Sets the exit code a command wants when it returns normally (e.g. a check that found problems). */
export function setExitCode(cmd: Command, code: number): void {
  let root: Command = cmd;
  while (root.parent) root = root.parent;
  (root as Command & { _foundryExit?: number })._foundryExit = code;
}
