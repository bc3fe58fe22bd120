#!/usr/bin/env -S deno run --allow-read --allow-write --allow-env --allow-run=deno
/**
 * `deno task bundle`: builds `dist/bundle/foundry.js` and `dist/bundle/virtwork.js`, the artifacts
 * `deno task install` installs. Two `deno bundle` runs:
 *
 * - each entry alone, holding only the front door (`cli/_launch.ts`) and loading its command tree
 *   (`_foundry_program.js`, `_virtwork_program.js`) when a command runs. A code-split entry would
 *   import esbuild's shared helper chunk, whose `node:module` import starts Deno's Node
 *   compatibility layer (~20 ms measured) before `--version` could answer;
 * - both command trees together with `--code-splitting`: every command's code (commander, lib/, the
 *   npm packages it uses) sits in chunks loaded when that command runs, and no npm resolution
 *   happens at start-up.
 *
 * `dist/` is not committed: a bundle is always built from the sources it ships (the install task
 * builds it afresh; tests/shipping/install_test.ts compares its output with the sources').
 * @module
 */
import { join } from "node:path";

/** The repository root. */
export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Where the bundles go, relative to the repository root. */
export const BUNDLE_DIR = "dist/bundle";

/**
 * The entries bundled (`dist/bundle/NAME.js`), the command tree each loads, and modules the entry
 * loads without the tree (`foundry list` and `get` go straight to `_foundry_fast.ts`).
 */
export const BUNDLE_ENTRIES = [
  {
    name: "foundry",
    entry: "cli/foundry.ts",
    program: "_foundry_program",
    direct: ["_foundry_fast"],
  },
  { name: "virtwork", entry: "cli/virtwork.ts", program: "_virtwork_program", direct: [] },
] as const;

/**
 * Files loaded by URL relative to the module that uses them (`new Worker(new URL(...))`), which
 * `deno bundle` does not follow: copied next to the chunks, where those URLs point.
 */
const BESIDE_CHUNKS = ["lib/foundry/_hash_worker.ts"];

/** Result of {@linkcode bundleAll}. */
export interface BundleOutcome {
  ok: boolean;
  /** Absolute directory of the bundles. */
  outDir: string;
  /** deno bundle's complaint, when it failed. */
  message: string;
}

/** Folders and files whose contents the bundles are built from. */
const SOURCES = ["cli", "lib", "deno.json", "deno.lock", "tasks/bundle.ts"];

/** SHA-256 of every source file's path and bytes, in path order: the bundles' stamp. */
async function sourceHash(): Promise<string> {
  const files: string[] = [];
  const walk = async (rel: string) => {
    const st = await Deno.stat(join(ROOT, rel));
    if (st.isFile) return void files.push(rel);
    for await (const e of Deno.readDir(join(ROOT, rel))) await walk(`${rel}/${e.name}`);
  };
  for (const s of SOURCES) await walk(s);
  files.sort();
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const f of files) {
    parts.push(enc.encode(`${f}\0`), await Deno.readFile(join(ROOT, f)), enc.encode("\0"));
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Bundles both executables into `outDir` (default `dist/bundle` of the repository) unless it
 * already holds the bundles of exactly these sources (a stamp of their hash). Builds run one at a
 * time (a lock file beside `outDir`), into a fresh folder that then replaces `outDir`: an install
 * running at the same time, or a command of an earlier install, never sees a half-built folder.
 */
export async function bundleAll(dir = join(ROOT, BUNDLE_DIR)): Promise<BundleOutcome> {
  const outDir = dir.replace(/\/+$/, "");
  const parent = outDir.replace(/\/[^/]+$/, "") || "/";
  await Deno.mkdir(parent, { recursive: true });
  const lock = await Deno.open(`${outDir}.lock`, { read: true, write: true, create: true });
  try {
    await lock.lock(true);
    const stamp = await sourceHash();
    const stampFile = join(outDir, ".sources-sha256");
    if ((await Deno.readTextFile(stampFile).catch(() => "")).trim() === stamp) {
      return { ok: true, outDir, message: "" };
    }
    const fresh = `${outDir}.new-${crypto.randomUUID().slice(0, 8)}`;
    const built = await buildInto(fresh);
    if (!built.ok) {
      await Deno.remove(fresh, { recursive: true }).catch(() => {});
      return { ...built, outDir };
    }
    await Deno.writeTextFile(join(fresh, ".sources-sha256"), `${stamp}\n`);
    const old = `${outDir}.old-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.rename(outDir, old).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
    await Deno.rename(fresh, outDir);
    await Deno.remove(old, { recursive: true }).catch(() => {});
    return { ok: true, outDir, message: "" };
  } finally {
    lock.close();
  }
}

/** Builds the bundles into the empty folder `outDir`. */
async function buildInto(outDir: string): Promise<BundleOutcome> {
  await Deno.mkdir(outDir, { recursive: true });
  const direct: string[] = BUNDLE_ENTRIES.flatMap((e) => e.direct);
  const trees = await denoBundle([
    "--code-splitting",
    ...BUNDLE_ENTRIES.map((e) => `cli/${e.program}.ts`),
    ...direct.map((d) => `cli/${d}.ts`),
  ], outDir);
  if (!trees.ok) return trees;
  const doors = await denoBundle([
    ...BUNDLE_ENTRIES.map((e) => `--external=./${e.program}.ts`),
    ...direct.map((d) => `--external=./${d}.ts`),
    ...BUNDLE_ENTRIES.map((e) => e.entry),
  ], outDir);
  if (!doors.ok) return doors;
  for (const e of BUNDLE_ENTRIES) {
    const path = join(outDir, `${e.name}.js`);
    let code = await Deno.readTextFile(path);
    for (const m of [e.program, ...e.direct]) {
      const from = `import("./${m}.ts")`;
      if (!code.includes(from)) {
        return { ok: false, outDir, message: `${path} does not load ${m}.ts as expected` };
      }
      code = code.replaceAll(from, `import("./${m}.js")`);
    }
    await Deno.writeTextFile(path, code);
  }
  await requireFromAnyUrl(outDir);
  await dropHelperSideEffectImports(outDir);
  await loadChunksOnDemand(outDir);
  for (const f of BESIDE_CHUNKS) {
    await Deno.copyFile(join(ROOT, f), join(outDir, f.split("/").pop()!));
  }
  await linkEagerCopy(outDir);
  return { ok: true, outDir, message: "" };
}

/** Folder (inside the bundle folder) of the copy the installed `foundry list` and `get` run. */
export const EAGER_DIR = "eager";

/**
 * The whole bundle again under {@linkcode EAGER_DIR}, as hard links. The installed `foundry list`
 * and `get` run this copy with V8's `--no-lazy` (see tasks/install.ts): every function of a module is then
 * compiled when it loads and kept in Deno's code cache, where by default only top-level code is
 * cached and each function a run calls is compiled again in that run (about 5 ms of a `list` of
 * two dozen VMs, measured). Commands that load large npm packages (commander, yaml, the Kubernetes
 * client) are faster lazy, so they keep the lazy copy. Deno keys its cache by module URL and V8
 * rejects a cache made under other flags, so each mode needs files of its own or every switch
 * between them would throw the other's cache away.
 */
async function linkEagerCopy(outDir: string): Promise<void> {
  const eager = join(outDir, EAGER_DIR);
  await Deno.mkdir(eager);
  for await (const e of Deno.readDir(outDir)) {
    if (e.isFile) await Deno.link(join(outDir, e.name), join(eager, e.name));
  }
}

/**
 * Deno builds a program's module graph before running it and follows every dynamic `import("...")`
 * whose specifier is a string literal: each run opened, hashed and (on a cache miss) parsed all
 * ~70 chunks, 7 MB with the Kubernetes client, even for `--version`. Each chunk's dynamic imports
 * of sibling chunks become `import(import.meta.resolve("./x.js"))`, which the graph builder does
 * not follow, so a run reads only the chunks it evaluates. Loading them at run time needs the read
 * permission (file:) or `--allow-import` (https:), which every way of running already grants.
 */
export async function loadChunksOnDemand(outDir: string): Promise<number> {
  let rewritten = 0;
  for await (const e of Deno.readDir(outDir)) {
    if (!e.isFile || !e.name.endsWith(".js")) continue;
    const path = join(outDir, e.name);
    const code = await Deno.readTextFile(path);
    const lazy = code.replace(/\bimport\("(\.\/[A-Za-z0-9_.-]+\.js)"\)/g, (_m, spec: string) => {
      rewritten++;
      return `import(import.meta.resolve("${spec}"))`;
    });
    if (lazy !== code) await Deno.writeTextFile(path, lazy);
  }
  return rewritten;
}

/**
 * esbuild's helper for `require()` inside bundled CommonJS packages is
 * `createRequire(import.meta.url)`, which throws when the chunk was loaded over http(s) (`deno run
 * https://.../foundry.js`). The packages only require Node built-ins, which resolve the same from
 * any base, so a chunk loaded from elsewhere than a file gets a file URL as its base.
 */
async function requireFromAnyUrl(outDir: string): Promise<void> {
  const from = "__deno_internal_createRequire(import.meta.url)";
  const to = '__deno_internal_createRequire(import.meta.url.startsWith("file:") ? ' +
    'import.meta.url : "file:///")';
  for await (const e of Deno.readDir(outDir)) {
    if (!e.isFile || !e.name.endsWith(".js")) continue;
    const path = join(outDir, e.name);
    const code = await Deno.readTextFile(path);
    if (code.includes(from)) await Deno.writeTextFile(path, code.replaceAll(from, to));
  }
}

/**
 * esbuild's helpers for bundled CommonJS (`__toESM`, `__commonJS`, `__require`) sit in one chunk
 * whose `import ... from "node:module"` starts Deno's Node compatibility layer (~20 ms measured).
 * Every entry and lazily loaded command imports that chunk for its side effects, though only the
 * chunks of CommonJS packages use its helpers (and import them by name): those bare imports are
 * dropped, so `foundry list` and `get`, which load no npm package, never start the Node layer.
 */
async function dropHelperSideEffectImports(outDir: string): Promise<void> {
  const helpers: string[] = [];
  const files: string[] = [];
  for await (const e of Deno.readDir(outDir)) {
    if (!e.isFile || !e.name.endsWith(".js")) continue;
    files.push(e.name);
    const code = await Deno.readTextFile(join(outDir, e.name));
    if (code.includes("__deno_internal_createRequire") && /\bexport \{[^}]*__toESM/.test(code)) {
      helpers.push(e.name);
    }
  }
  for (const f of files) {
    const path = join(outDir, f);
    const code = await Deno.readTextFile(path);
    let out = code;
    for (const h of helpers) out = out.replaceAll(`import "./${h}";\n`, "");
    if (out !== code) await Deno.writeTextFile(path, out);
  }
}

async function denoBundle(args: string[], outDir: string): Promise<BundleOutcome> {
  // By name, so that --allow-run=deno covers it (see tasks/compile.ts).
  const out = await new Deno.Command("deno", {
    args: ["bundle", "--quiet", "--platform", "deno", "--outdir", outDir, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stderr).trim();
  return { ok: out.success, outDir, message: text.split("\n").slice(-3).join(" ") };
}

if (import.meta.main) {
  const r = await bundleAll(Deno.args[0]);
  console.log(r.ok ? `built ${r.outDir}` : `could not bundle: ${r.message}`);
  Deno.exit(r.ok ? 0 : 1);
}
