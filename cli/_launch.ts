/**
 * The front door of both executables, loaded before anything else and importing nothing: it reads
 * the command word from the arguments, so the entry loads only that command's module, and answers
 * `--version` without loading the argument parser at all (measured: commander, like anything that
 * imports a `node:` module, costs ~40 ms of Deno's Node compatibility set-up).
 * @module
 */

/** A module of commands of an executable's tree, loaded only when one of them is asked for. */
export interface LazyCommands<F> {
  /**
   * The words that select the module: its commands' names and aliases, e.g. `list`, `ls`. A word
   * missing here still works (every module is loaded then), only more slowly.
   */
  words: readonly string[];
  /** Loads the module and returns the factories of its command(s), in the order of the help. */
  load: () => Promise<readonly F[]>;
}

/** The root options of an executable, as the front door needs to know them. */
export interface RootOptions {
  /** Options that take a value (`--connect URI`, `-c URI`); `--opt=value` is understood too. */
  withValue: readonly string[];
  /** Options without a value (`--verbose`, `--no-audit`). */
  flags: readonly string[];
}

/** What the front door made of the arguments. */
export type Launch =
  /** `--version` or `-V` before any command: print the version, nothing else to load. */
  | { kind: "version" }
  /** A command word (or none): load its module, or every module when `word` is undefined. */
  | { kind: "command"; word: string | undefined };

/**
 * Reads `args` up to the command word. An option it does not know stops the scan and every
 * command module is loaded, so the argument parser sees the same tree as without the front door
 * (and reports the unknown option itself).
 */
export function readLaunch(args: readonly string[], root: RootOptions): Launch {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") return { kind: "command", word: undefined };
    if (!a.startsWith("-") || a === "-") return { kind: "command", word: a };
    if (a === "--version" || a === "-V") return { kind: "version" };
    const name = a.startsWith("--") ? a.split("=", 1)[0]! : a;
    if (root.flags.includes(a)) continue;
    if (root.withValue.includes(name)) {
      if (name === a) i++;
      continue;
    }
    return { kind: "command", word: undefined };
  }
  return { kind: "command", word: undefined };
}

/**
 * The commands to register for `word`: only the module that defines it, or all of them (help, a
 * typo to suggest a correction for, a word this table does not know).
 */
export async function commandsFor<F>(
  table: readonly LazyCommands<F>[],
  word: string | undefined,
): Promise<F[]> {
  const hit = word === undefined ? undefined : table.find((m) => m.words.includes(word));
  const loaded = await Promise.all((hit ? [hit] : table).map((m) => m.load()));
  return loaded.flat();
}

/** Writes `text` to stdout whole; a reader that went away is not an error. */
export function writeStdout(text: string): void {
  const bytes = new TextEncoder().encode(text);
  try {
    let off = 0;
    while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
  } catch (e) {
    if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
  }
}
