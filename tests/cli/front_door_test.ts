/**
 * The front door runs `list` and `get` without commander (cli/_launch.ts readFastCommand): it must
 * read every command line it accepts exactly as commander does, leave every other one to commander,
 * and print what commander's run prints.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.11.0";
import type { Command, Option } from "npm:commander@^15.1.0";
import { FOUNDRY_FAST_COMMANDS, FOUNDRY_ROOT_OPTIONS, main } from "../../cli/foundry.ts";
import { foundryProgram, runFoundry } from "../../cli/_foundry_program.ts";
import { readFastCommand, readLaunch } from "../../cli/_launch.ts";
import type { Io } from "../../cli/_program.ts";

const LONG = { "-c": "--connect", "-v": "--verbose" };
const read = (args: string[]) =>
  readFastCommand(args, FOUNDRY_ROOT_OPTIONS, LONG, FOUNDRY_FAST_COMMANDS);

interface Parsed {
  command: string;
  root: Record<string, unknown>;
  options: Record<string, unknown>;
  operands: string[];
}

/** What commander makes of `args`: the command run with its options, or undefined (usage error). */
async function commanderParse(args: string[]): Promise<Parsed | undefined> {
  const word = readLaunch(args, FOUNDRY_ROOT_OPTIONS);
  const silent: Io = { out: () => {}, err: () => {} };
  const program = await foundryProgram(silent, {}, word.kind === "command" ? word.word : undefined);
  let got: Parsed | undefined;
  const capture = (cmd: Command) => {
    cmd.exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
    cmd.action((...a: unknown[]) => {
      const self = a.at(-1) as Command;
      got = {
        command: self.name(),
        root: { ...program.opts() },
        options: { ...self.opts() },
        operands: [...self.args],
      };
    });
    for (const sub of cmd.commands) capture(sub);
  };
  program.exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
  for (const sub of program.commands) capture(sub);
  try {
    await program.parseAsync(args, { from: "user" });
  } catch {
    return undefined;
  }
  return got;
}

/** The front door's reading in commander's terms (root options by camelCase key). */
function asCommander(f: NonNullable<ReturnType<typeof read>>): Parsed {
  const root: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(f.root)) {
    root[k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = v;
  }
  return { command: f.command, root, options: f.options, operands: f.operands };
}

Deno.test("the front door's list and get take the options of commander's list and get", async () => {
  for (const spec of FOUNDRY_FAST_COMMANDS) {
    const program = await foundryProgram({ out: () => {}, err: () => {} }, {}, spec.words[0]);
    const cmd = program.commands.find((c) => c.name() === spec.name)!;
    assert.deepEqual([...spec.words].sort(), [cmd.name(), ...cmd.aliases()].sort());
    assert.equal(spec.operands, cmd.registeredArguments.length);
    const theirs = (cmd.options as Option[]).map((o) => ({
      names: [o.short, o.long].filter((n): n is string => !!n),
      key: o.attributeName(),
      kind: o.variadic || typeof o.defaultValue === "object"
        ? "list"
        : o.required
        ? "value"
        : "flag",
      choices: o.argChoices,
    }));
    const ours = spec.options.map((o) => ({ ...o, choices: o.choices as string[] | undefined }));
    assert.deepEqual(ours, theirs, spec.name);
    const defaults = Object.fromEntries(
      (cmd.options as Option[]).filter((o) => o.defaultValue !== undefined || o.negate).map((
        o,
      ) => [o.attributeName(), o.negate ? true : o.defaultValue]),
    );
    assert.deepEqual(spec.defaults, defaults, spec.name);
  }
});

const samples: string[][] = [
  ["list"],
  ["ls", "-a"],
  ["list", "--all", "-o", "wide", "--no-headers"],
  ["list", "-l", "a=b", "--selector", "c!=d", "--selector=e"],
  ["-c", "qemu:///session", "--no-audit", "list", "-v"],
  ["list", "--connect=test:///default", "--domain-type", "qemu"],
  ["get", "web-01"],
  ["get", "web-01", "-o", "json", "--config", "/nonexistent.yaml"],
  ["--destroy-timeout", "3", "get", "-o", "table", "x"],
  // Left to commander:
  ["list", "-o", "bogus"],
  ["list", "extra"],
  ["get"],
  ["get", "a", "b"],
  ["list", "-h"],
  ["list", "--help"],
  ["list", "-al", "x"],
  ["list", "-o"],
  ["list", "-l", "-v"],
  ["list", "--", "x"],
  ["list", "--version"],
  ["lsit"],
  ["vm", "info", "x"],
  ["list", "--all=yes"],
];

Deno.test("each command line the front door reads, commander reads the same way", async () => {
  let fast = 0;
  for (const args of samples) {
    const ours = read(args);
    if (ours === undefined) continue;
    fast++;
    assert.deepEqual(asCommander(ours), await commanderParse(args), args.join(" "));
  }
  assert.equal(fast, 9, "the first nine samples run without commander");
});

Deno.test("random command lines: the front door reads as commander does, or leaves them to it", async () => {
  const token = fc.constantFrom(
    "list",
    "ls",
    "get",
    "vm",
    "web-01",
    "-a",
    "--all",
    "-l",
    "--selector",
    "a=b",
    "-o",
    "--output",
    "json",
    "yaml",
    "wide",
    "bogus",
    "--no-headers",
    "-c",
    "--connect",
    "qemu:///system",
    "-v",
    "--verbose",
    "--no-audit",
    "--audit-db",
    "/tmp/a.db",
    "--config",
    "-h",
    "--",
    "--output=name",
    "--connect=x",
    "-",
    "--bogus",
    "-al",
  );
  await fc.assert(
    fc.asyncProperty(fc.array(token, { maxLength: 7 }), async (args) => {
      const ours = read(args);
      if (ours === undefined) return;
      assert.deepEqual(asCommander(ours), await commanderParse(args), args.join(" "));
    }),
    { seed: 0xd00e, numRuns: 300 },
  );
});

async function capture(run: (io: Io) => Promise<number>) {
  let out = "";
  let err = "";
  const code = await run({ out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

Deno.test("list and get print through the front door what they print through commander", async () => {
  for (
    const args of [
      ["-c", "test:///default", "list", "-a", "-o", "json"],
      ["list", "-a", "-o", "yaml", "--connect=test:///default"],
      ["list", "--no-headers", "-a", "-c", "test:///default", "-o", "wide"],
      ["list", "-l", "a in ("],
      ["get", "no-such-vm-front-door"],
      ["-c", "qemu+unix:///system?socket=/nonexistent/sock", "list"],
      ["list", "--config", "/nonexistent/foundry.yaml"],
    ]
  ) {
    assert.ok(read(args), `${args.join(" ")} runs without commander`);
    const viaDoor = await capture((io) => main(args, io));
    const word = readLaunch(args, FOUNDRY_ROOT_OPTIONS);
    const viaCommander = await capture((io) =>
      runFoundry(args, io, {}, word.kind === "command" ? word.word : undefined)
    );
    assert.deepEqual(viaDoor, viaCommander, args.join(" "));
  }
});
