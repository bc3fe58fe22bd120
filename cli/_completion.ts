/**
 * Shell completion scripts for bash, zsh and fish, generated from a commander command tree, so a
 * command, alias or option added to the tree completes without touching this file. Both
 * executables register `completion SHELL` with {@linkcode completionCommand}.
 *
 * Every script does the same: it walks the words typed so far to find the command path (skipping
 * options and the values of options that take one), then offers that command's subcommands, its
 * options (when the word starts with `-`), an option's choices (`-o <TAB>`), file names for file
 * arguments and option values, and for arguments that name a resource the names the tool itself
 * lists (`foundry get <TAB>` runs `foundry list --all -o name`).
 * @module
 */
import { type Argument, Command, type Option } from "npm:commander@^15.1.0";
import type { Io } from "./_program.ts";

/** The shells {@linkcode completionScript} writes for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;
/** One of {@linkcode SHELLS}. */
export type Shell = typeof SHELLS[number];

/** What a positional argument completes to. */
export type ArgCompletion =
  | { kind: "none" }
  | { kind: "file" }
  /** The words `TOOL ...args` prints, one per line, each without its `kind/` prefix. */
  | { kind: "dynamic"; args: readonly string[] };

/** One command of the tree as the scripts need it. */
interface Node {
  /** Subcommand words from the root, by their primary names (`image list`), "" for the root. */
  path: string;
  subs: { name: string; aliases: string[] }[];
  options: string[];
  valueOptions: string[];
  choices: Map<string, readonly string[]>;
  arg: ArgCompletion;
}

/** Decides what the first positional argument of the command at `path` completes to. */
export type ArgResolver = (path: readonly string[], arg: Argument) => ArgCompletion;

/** Default resolver: arguments named like a file or path complete file names, others nothing. */
export function fileArgs(_path: readonly string[], arg: Argument): ArgCompletion {
  return /file|path|dir/i.test(arg.name()) ? { kind: "file" } : { kind: "none" };
}

function flagsOf(o: Option): string[] {
  return [o.short, o.long].filter((f): f is string => typeof f === "string");
}

function collect(cmd: Command, path: string[], resolve: ArgResolver, out: Node[]): void {
  const options = [...cmd.options];
  const flags = [...options.flatMap(flagsOf), "-h", "--help"];
  if (path.length === 0) flags.push("-V", "--version");
  const takesValue = options.filter((o) => o.required || o.optional);
  const choices = new Map<string, readonly string[]>();
  for (const o of takesValue) {
    if (o.argChoices) { for (const f of flagsOf(o)) choices.set(f, o.argChoices); }
  }
  const first = cmd.registeredArguments[0];
  out.push({
    path: path.join(" "),
    subs: cmd.commands.map((c) => ({ name: c.name(), aliases: c.aliases() })),
    options: [...new Set(flags)],
    valueOptions: takesValue.flatMap(flagsOf),
    choices,
    arg: first ? resolve(path, first) : { kind: "none" },
  });
  for (const sub of cmd.commands) collect(sub, [...path, sub.name()], resolve, out);
}

/** The tree's nodes, root first. */
function nodesOf(program: Command, resolve: ArgResolver): Node[] {
  const out: Node[] = [];
  collect(program, [], resolve, out);
  return out;
}

/** A word safe inside single quotes in every shell we write for. */
function q(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The tables every script looks words up in, from the tree: a name, what it holds, and its rows
 * (key, value); `words` when the value is a list of words. Rows with an empty value are left out.
 */
function lookupTables(
  nodes: Node[],
): { name: string; doc: string; rows: [string, string][]; words: boolean }[] {
  return [
    {
      name: "subs",
      doc: "subcommand words (names and aliases) of a command path",
      rows: nodes.map((n) => [n.path, n.subs.flatMap((s) => [s.name, ...s.aliases]).join(" ")]),
      words: true,
    },
    {
      name: "canon",
      doc: "'PATH WORD' -> the subcommand's name, when WORD is a subcommand of PATH",
      rows: nodes.flatMap((n) =>
        n.subs.flatMap((s) =>
          [s.name, ...s.aliases].map((w): [string, string] => [`${n.path}|${w}`, s.name])
        )
      ),
      words: true,
    },
    {
      name: "opts",
      doc: "options of a command path",
      rows: nodes.map((n) => [n.path, n.options.join(" ")]),
      words: true,
    },
    {
      name: "valopts",
      doc: "options of a command path that take a value",
      rows: nodes.map((n) => [n.path, n.valueOptions.join(" ")]),
      words: true,
    },
    {
      name: "choices",
      doc: "'PATH|OPTION' -> the values the option accepts",
      rows: nodes.flatMap((n) =>
        [...n.choices].map(([f, c]): [string, string] => [`${n.path}|${f}`, c.join(" ")])
      ),
      words: true,
    },
    {
      name: "arg",
      doc: "what the arguments of a command path complete to: file, or the words of a listing",
      rows: nodes.map((n) => [
        n.path,
        n.arg.kind === "file"
          ? "file"
          : n.arg.kind === "dynamic"
          ? `run ${n.arg.args.join(" ")}`
          : "",
      ]),
      words: false,
    },
  ];
}

/** POSIX functions (bash and zsh run them alike): the tree as `case` tables. */
function posixData(fn: string, nodes: Node[]): string {
  const lines: string[] = [];
  for (const { name, doc, rows } of lookupTables(nodes)) {
    lines.push(`# ${doc}`, `${fn}_${name}() {`, '  case "$1" in');
    for (const [k, v] of rows) if (v !== "") lines.push(`    ${q(k)}) echo ${q(v)} ;;`);
    lines.push("  esac", "}");
  }
  return lines.join("\n");
}

/**
 * Shared by bash and zsh: sets `__path` (the command path) from the words before the current one,
 * given as arguments, and `__prev_opt` to an option that still waits for its value.
 */
function posixWalk(fn: string): string {
  return `# Sets ${fn}_path from the words typed before the current one.
${fn}_walk() {
  ${fn}_path=""
  ${fn}_pending=""
  local w c skip=0
  for w in "$@"; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case "$w" in
      --*=*) continue ;;
      -*)
        case " $(${fn}_valopts "$${fn}_path") $(${fn}_valopts "") " in
          *" $w "*) skip=1 ;;
        esac
        continue ;;
    esac
    c="$(${fn}_canon "$${fn}_path|$w")"
    if [ -n "$c" ]; then ${fn}_path="\${${fn}_path:+$${fn}_path }$c"; fi
  done
}

# Prints the candidates for the word being typed ($1) after the word before it ($2).
${fn}_candidates() {
  local cur="$1" prev="$2" p="$${fn}_path" ch a
  case " $(${fn}_valopts "$p") $(${fn}_valopts "") " in
    *" $prev "*)
      ch="$(${fn}_choices "$p|$prev")"
      [ -z "$ch" ] && ch="$(${fn}_choices "|$prev")"
      if [ -n "$ch" ]; then echo "$ch"; else echo "__FILES__"; fi
      return ;;
  esac
  case "$cur" in
    -*) echo "$(${fn}_opts "$p")"; return ;;
  esac
  if [ -n "$(${fn}_subs "$p")" ]; then echo "$(${fn}_subs "$p")"; return; fi
  a="$(${fn}_arg "$p")"
  case "$a" in
    file) echo "__FILES__" ;;
    "run "*) eval "${fn}_tool \${a#run }" 2>/dev/null | sed 's|^[^/]*/||' ;;
  esac
}`;
}

function bashScript(tool: string, fn: string, nodes: Node[]): string {
  return `# bash completion for ${tool}; generated by \`${tool} completion bash\`.
# Load it with: source <(${tool} completion bash)
${posixData(fn, nodes)}

${posixWalk(fn)}

${fn}_tool() { "\${${fn}_cmd:-${tool}}" "$@"; }

${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev=""
  [ "$COMP_CWORD" -gt 0 ] && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  ${fn}_cmd="\${COMP_WORDS[0]}"
  ${fn}_walk "\${COMP_WORDS[@]:1:COMP_CWORD-1}"
  local words
  words="$(${fn}_candidates "$cur" "$prev")"
  COMPREPLY=()
  if [ "$words" = "__FILES__" ]; then
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
    return
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F ${fn} ${tool}
`;
}

function zshScript(tool: string, fn: string, nodes: Node[]): string {
  return `#compdef ${tool}
# zsh completion for ${tool}; generated by \`${tool} completion zsh\`.
# Load it with: source <(${tool} completion zsh)  (after compinit), or save it as _${tool} in $fpath.
${posixData(fn, nodes)}

${posixWalk(fn)}

${fn}_tool() { "\${${fn}_cmd:-${tool}}" "$@"; }

${fn}() {
  local cur="\${words[CURRENT]}" prev="\${words[CURRENT-1]}"
  ${fn}_cmd="\${words[1]}"
  ${fn}_walk "\${(@)words[2,CURRENT-1]}"
  local out
  out="$(${fn}_candidates "$cur" "$prev")"
  if [ "$out" = "__FILES__" ]; then
    _files
    return
  fi
  local -a cands
  cands=(\${=out})
  compadd -- "\${cands[@]}"
}
if (( $+functions[compdef] )); then compdef ${fn} ${tool}; fi
`;
}

function fishData(fn: string, nodes: Node[]): string {
  const lines: string[] = [];
  for (const { name, rows, words } of lookupTables(nodes)) {
    lines.push(`function ${fn}_${name}`, "    switch $argv[1]");
    for (const [k, v] of rows) {
      if (v === "") continue;
      const out = words ? v.split(" ").map(q).join(" ") : q(v);
      lines.push(`        case ${q(k)}`, `            printf '%s\\n' ${out}`);
    }
    lines.push("    end", "end");
  }
  return lines.join("\n");
}

function fishScript(tool: string, fn: string, nodes: Node[]): string {
  return `# fish completion for ${tool}; generated by \`${tool} completion fish\`.
# Load it with: ${tool} completion fish | source  (or save it in ~/.config/fish/completions/${tool}.fish)
${fishData(fn, nodes)}

function ${fn}_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l rest $tokens
    set -e rest[1]
    set -l path ''
    set -l skip 0
    for w in $rest
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case '--*=*'
                continue
            case '-*'
                if contains -- $w (${fn}_valopts "$path") (${fn}_valopts '')
                    set skip 1
                end
                continue
        end
        set -l c (${fn}_canon "$path|$w")
        if test -n "$c"
            if test -n "$path"
                set path "$path $c"
            else
                set path $c
            end
        end
    end
    set -l prev ''
    if test (count $rest) -gt 0
        set prev $rest[-1]
    end
    if test -n "$prev"; and contains -- $prev (${fn}_valopts "$path") (${fn}_valopts '')
        set -l ch (${fn}_choices "$path|$prev")
        test (count $ch) -eq 0; and set ch (${fn}_choices "|$prev")
        if test (count $ch) -gt 0
            printf '%s\n' $ch
        else
            __fish_complete_path $cur
        end
        return
    end
    if string match -q -- '-*' $cur
        ${fn}_opts "$path"
        return
    end
    set -l subs (${fn}_subs "$path")
    if test (count $subs) -gt 0
        printf '%s\n' $subs
        return
    end
    set -l a (${fn}_arg "$path")
    switch "$a"
        case file
            __fish_complete_path $cur
        case 'run *'
            $tokens[1] (string split ' ' -- (string replace 'run ' '' -- $a)) 2>/dev/null | string replace -r '^[^/]*/' ''
    end
end

complete -c ${tool} -f -a '(${fn}_complete)'
`;
}

/** The completion script of `program` for `shell`. */
export function completionScript(
  program: Command,
  shell: Shell,
  resolve: ArgResolver = fileArgs,
): string {
  const tool = program.name();
  const fn = `_${tool.replace(/[^A-Za-z0-9_]/g, "_")}_complete`;
  const nodes = nodesOf(program, resolve);
  if (shell === "bash") return bashScript(tool, fn, nodes);
  if (shell === "zsh") return zshScript(tool, fn, nodes);
  return fishScript(tool, fn, nodes);
}

/**
 * `TOOL completion bash|zsh|fish`: prints the script. `fullTree` builds the whole command tree (the
 * program running it may hold only the commands one run needs).
 */
export function completionCommand(
  io: Io,
  tool: string,
  fullTree: () => Promise<Command> | Command,
  resolve: ArgResolver = fileArgs,
): Command {
  return new Command("completion")
    .description("Print a shell completion script: bash, zsh or fish")
    .argument("<shell>", "bash, zsh or fish")
    .addHelpText(
      "after",
      `\nExamples:\n  source <(${tool} completion bash)   # in ~/.bashrc\n` +
        `  source <(${tool} completion zsh)    # in ~/.zshrc, after compinit\n` +
        `  ${tool} completion fish | source    # in ~/.config/fish/config.fish\n`,
    )
    .action(async (shell: string) => {
      if (!(SHELLS as readonly string[]).includes(shell)) {
        throw Object.assign(
          new Error(`Unknown shell '${shell}': expected one of ${SHELLS.join(", ")}`),
          { exitCode: 2 },
        );
      }
      io.out(completionScript(await fullTree(), shell as Shell, resolve));
    });
}
