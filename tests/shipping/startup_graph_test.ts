/**
 * What start-up loads, read from Deno's module graph (`deno info --json`): the entries import
 * nothing that needs npm or Node compatibility (`--version` answers from the entry alone), and the
 * command tree commander builds loads no command's lib code until that command is chosen.
 */
import assert from "node:assert/strict";
import { FOUNDRY_ROOT_OPTIONS } from "../../cli/foundry.ts";
import { VIRTWORK_ROOT_OPTIONS } from "../../cli/virtwork.ts";
import { foundryProgram } from "../../cli/_foundry_program.ts";
import { virtworkProgram } from "../../cli/_virtwork_program.ts";
import { readLaunch } from "../../cli/_launch.ts";

const root = new URL("../../", import.meta.url);

interface Dep {
  specifier: string;
  code?: { specifier: string };
  isDynamic?: boolean;
}
interface Graph {
  modules: { specifier: string; dependencies?: Dep[] }[];
}

async function graph(entry: string): Promise<Graph> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** Every module `entry` loads before its code runs: static code imports, followed transitively. */
function staticClosure(entry: string): Promise<Set<string>> {
  return closure(entry, () => true);
}

/**
 * Every module `entry` may load: static imports, and dynamic ones except those `skip` names
 * (`from` and `to` relative to the repository), followed transitively.
 */
async function closure(
  entry: string,
  skip: (from: string, to: string) => boolean,
): Promise<Set<string>> {
  const g = await graph(entry);
  const bySpec = new Map(g.modules.map((m) => [m.specifier, m]));
  const start = new URL(entry, root).href;
  const seen = new Set<string>([start]);
  const todo = [start];
  const rel = (s: string) => s.slice(root.href.length);
  while (todo.length) {
    const from = todo.pop()!;
    const m = bySpec.get(from);
    for (const d of m?.dependencies ?? []) {
      if (!d.code || (d.isDynamic && skip(rel(from), rel(d.code.specifier)))) continue;
      const s = d.code.specifier;
      if (!seen.has(s)) {
        seen.add(s);
        todo.push(s);
      }
    }
  }
  return seen;
}

const foreign = (s: string) => s.startsWith("npm:") || s.startsWith("node:");

for (const entry of ["cli/foundry.ts", "cli/virtwork.ts"]) {
  Deno.test(`${entry} loads no npm package and no node: module at start-up`, async () => {
    const mods = [...await staticClosure(entry)];
    assert.deepEqual(mods.filter(foreign), []);
    assert.deepEqual(mods.filter((s) => s.includes("/lib/")), [], "no lib/ module either");
  });
}

/** lib/ modules the command trees may load before a command is chosen (error text, signals). */
const TREE_LIB = new Set([
  "lib/output/sanitize.ts",
  "lib/libvirt/errors.ts",
  "lib/libvirt/constants.ts",
]);

for (const program of ["cli/_foundry_program.ts", "cli/_virtwork_program.ts"]) {
  Deno.test(`${program}: the tree itself loads commander and no command's code`, async () => {
    const mods = [...await staticClosure(program)];
    // foundry's tree loads commander when it builds the tree: list and get run without it.
    assert.deepEqual(
      mods.filter(foreign).filter((s) =>
        program === "cli/_foundry_program.ts" || !s.startsWith("npm:commander@")
      ),
      [],
    );
    const lib = mods.map((s) => s.slice(root.href.length)).filter((s) => s.startsWith("lib/"));
    assert.deepEqual(lib.filter((s) => !TREE_LIB.has(s)), []);
    assert.deepEqual(
      mods.filter((s) => /\/cli\/(foundry|virtwork)\/[a-z]/.test(s)),
      [],
      "no command module (cli/*/NAME.ts)",
    );
  });
}

/** Every root option of a commander tree, as [flag spellings, takes a value]. */
function rootOptions(
  options: readonly { short?: string; long?: string; required: boolean; optional: boolean }[],
) {
  return options.map((o) => ({
    names: [o.short, o.long].filter((n): n is string => !!n),
    value: o.required || o.optional,
  }));
}

Deno.test("the front door knows every root option of both trees, and whether it takes a value", async () => {
  for (
    const [opts, program] of [
      [FOUNDRY_ROOT_OPTIONS, await foundryProgram()],
      [VIRTWORK_ROOT_OPTIONS, await virtworkProgram()],
    ] as const
  ) {
    for (const o of rootOptions(program.options)) {
      if (o.names.includes("--version")) continue;
      for (const n of o.names) {
        const list: readonly string[] = o.value ? opts.withValue : opts.flags;
        assert.ok(list.includes(n), `${program.name()} ${n}`);
      }
    }
  }
});

Deno.test("readLaunch(): the command word after root options, --version before any", () => {
  const o = FOUNDRY_ROOT_OPTIONS;
  assert.deepEqual(readLaunch(["--version"], o), { kind: "version" });
  assert.deepEqual(readLaunch(["-c", "qemu:///system", "-V"], o), { kind: "version" });
  assert.deepEqual(readLaunch(["-c", "list", "get", "x"], o), { kind: "command", word: "get" });
  assert.deepEqual(readLaunch(["--connect=list", "ls"], o), { kind: "command", word: "ls" });
  assert.deepEqual(readLaunch(["--no-audit", "-v", "list", "--version"], o), {
    kind: "command",
    word: "list",
  });
  // An option it does not know: every command is loaded and commander decides.
  assert.deepEqual(readLaunch(["--bogus", "list"], o), { kind: "command", word: undefined });
  assert.deepEqual(readLaunch([], o), { kind: "command", word: undefined });
});

/** Packages that load only when a command uses them, never when its module is loaded. */
const AT_USE = /^(npm:undici@|npm:@kubernetes\/client-node@|node:sqlite$)/;

Deno.test("no command module loads undici, the Kubernetes client or SQLite before it runs", async () => {
  const modules: string[] = [];
  for (const dir of ["cli/foundry", "cli/virtwork"]) {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      if (e.isFile && /^[a-z].*\.ts$/.test(e.name) && !e.name.endsWith("_test.ts")) {
        modules.push(`${dir}/${e.name}`);
      }
    }
  }
  assert.ok(modules.length >= 10, modules.join(" "));
  for (const m of modules.sort()) {
    assert.deepEqual([...await staticClosure(m)].filter((s) => AT_USE.test(s)), [], m);
  }
});

/**
 * The dynamic import of foundry list's and get's path that loads npm code, only when it is
 * needed: the configuration file's parser when a file exists. Their YAML output (`-o yaml`, get's
 * default) is foundry's own writer, in the closure below.
 */
const WHEN_NEEDED = new Set(["lib/foundry/config_file.ts"]);

Deno.test("foundry list and get load no npm package and no node: module without a config file", async () => {
  // What the front door loads for them: the entry and the commands' own module, not the program.
  const mods = new Set<string>();
  for (const m of ["cli/foundry.ts", "cli/_foundry_fast.ts"]) {
    const skip = (from: string, to: string) =>
      WHEN_NEEDED.has(to) || (from === "cli/foundry.ts" && to !== "cli/_foundry_fast.ts");
    for (const s of await closure(m, skip)) mods.add(s);
  }
  assert.ok(mods.has(new URL("lib/libvirt/client.ts", root).href), "the closure reaches lib/");
  assert.ok(mods.has(new URL("lib/output/yaml.ts", root).href), "the YAML writer is in it");
  assert.ok(!mods.has(new URL("cli/_foundry_program.ts", root).href), "the command tree is not");
  assert.deepEqual([...mods].filter(foreign), []);
  for (const m of ["yaml@", "fast-xml-parser", "commander"]) {
    assert.ok(![...mods].some((s) => s.includes(m)), m);
  }
});
