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

/** Writes `text` to stdout whole (see `_write.ts`, which prints for both executables). */
export { writeStdout } from "./_write.ts";

/** One option of a command the front door runs itself (see {@linkcode readFastCommand}). */
export interface FastOption {
  /** Its spellings: `-o`, `--output`. */
  names: readonly string[];
  /** The key it sets, as commander names it (`output`; `--no-headers` sets `headers` to false). */
  key: string;
  /** `flag` (true; false for a `--no-` option), `value` (the last one given) or `list` (each). */
  kind: "flag" | "value" | "list";
  /** The values a `value` option takes. */
  choices?: readonly string[];
}

/** A command the front door runs without the argument parser. */
export interface FastCommandSpec {
  /** Its name and aliases. */
  words: readonly string[];
  /** The command as the parser names it (`list` for `ls`). */
  name: string;
  options: readonly FastOption[];
  /** How many operands it takes (`get NAME`: 1). */
  operands: number;
  /** Option values before any is given (commander's defaults). */
  defaults: Readonly<Record<string, string | boolean | readonly string[]>>;
}

/** What {@linkcode readFastCommand} made of the arguments. */
export interface FastLaunch {
  /** The command's name (`list`). */
  command: string;
  /**
   * Root options by their long spelling without dashes (`connect`, `domain-type`, `verbose`; a
   * `--no-audit` flag is `audit: false`).
   */
  root: Record<string, string | boolean>;
  /** The command's options by key. */
  options: Record<string, string | boolean | string[]>;
  operands: string[];
}

/**
 * Reads `args` for one of `specs` when every argument is plainly one of its options, a root option
 * or an operand, so the front door can run it without loading the argument parser. Anything else
 * (help, `--`, an unknown or combined option, a missing or refused value, a value that starts with
 * `-`, the wrong number of operands) returns undefined: the parser then runs as always and prints
 * its own help and errors. Root options are read anywhere, as the parser reads them.
 * `longOf` names a root option's long spelling for its short one (`-c` → `--connect`).
 */
export function readFastCommand(
  args: readonly string[],
  root: RootOptions,
  longOf: Readonly<Record<string, string>>,
  specs: readonly FastCommandSpec[],
): FastLaunch | undefined {
  let spec: FastCommandSpec | undefined;
  const out: FastLaunch = { command: "", root: {}, options: {}, operands: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") return undefined;
    if (!a.startsWith("-") || a === "-") {
      if (spec === undefined) {
        spec = specs.find((s) => s.words.includes(a));
        if (spec === undefined) return undefined;
        out.command = spec.name;
        out.options = Object.fromEntries(
          Object.entries(spec.defaults).map(([k, v]) => [k, Array.isArray(v) ? [...v] : v]),
        ) as FastLaunch["options"];
      } else out.operands.push(a);
      continue;
    }
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const name = eq < 0 ? a : a.slice(0, eq);
    const inline = eq < 0 ? undefined : a.slice(eq + 1);
    const value = (): string | undefined => {
      if (inline !== undefined) return inline;
      const v = args[i + 1];
      if (v === undefined || v.startsWith("-")) return undefined;
      i++;
      return v;
    };
    const long = (longOf[name] ?? name).replace(/^--/, "");
    if (root.flags.includes(name)) {
      if (inline !== undefined) return undefined;
      if (long.startsWith("no-")) out.root[long.slice(3)] = false;
      else out.root[long] = true;
      continue;
    }
    if (root.withValue.includes(name)) {
      const v = value();
      if (v === undefined) return undefined;
      out.root[long] = v;
      continue;
    }
    const opt = spec?.options.find((o) => o.names.includes(name));
    if (opt === undefined) return undefined;
    if (opt.kind === "flag") {
      if (inline !== undefined) return undefined;
      out.options[opt.key] = !name.startsWith("--no-");
      continue;
    }
    const v = value();
    if (v === undefined || (opt.choices && !opt.choices.includes(v))) return undefined;
    if (opt.kind === "list") (out.options[opt.key] as string[]).push(v);
    else out.options[opt.key] = v;
  }
  if (spec === undefined || out.operands.length !== spec.operands) return undefined;
  return out;
}
