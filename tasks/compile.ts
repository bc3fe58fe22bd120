#!/usr/bin/env -S deno run --allow-read --allow-write --allow-env=DENORT_BIN --allow-run=deno
/**
 * `deno task compile`: builds the `foundry` and `virtwork` single executables into `dist/`, each
 * with only the permissions it needs. `deno compile` needs Deno's `denort` runtime, which it
 * downloads unless `DENORT_BIN` names a local copy; when neither works this task says so plainly
 * and exits non-zero (it never pretends to have built anything).
 * @module
 */

/** What each executable may do: foundry talks to libvirtd (unix socket, TCP, or ssh). */
export const TARGETS = [
  {
    name: "foundry",
    entry: "cli/foundry.ts",
    // Image imports hash in a worker module, which a compiled binary only has when included.
    include: ["lib/foundry/_hash_worker.ts"],
    permissions: [
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "--allow-env",
      "--allow-run=ssh",
      "--allow-sys=hostname",
    ],
  },
  {
    name: "virtwork",
    entry: "cli/virtwork.ts",
    include: [],
    permissions: [
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "--allow-env",
      "--allow-sys=hostname",
    ],
  },
] as const;

/** Result of one compile. */
export interface CompileOutcome {
  name: string;
  ok: boolean;
  output: string;
  message: string;
}

/** Compiles every target into `outDir`; returns one outcome per target. */
export async function compileAll(outDir = "dist"): Promise<CompileOutcome[]> {
  await Deno.mkdir(outDir, { recursive: true });
  const results: CompileOutcome[] = [];
  for (const t of TARGETS) {
    const output = `${outDir}/${t.name}`;
    // By name, so that --allow-run=deno covers it: Deno.execPath() is the resolved path (here
    // behind a /usr/bin symlink), which a scoped --allow-run=deno does not match.
    const out = await new Deno.Command("deno", {
      args: [
        "compile",
        "--quiet",
        ...t.permissions,
        ...t.include.flatMap((f) => ["--include", f]),
        "--output",
        output,
        t.entry,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(out.stderr);
    results.push({ name: t.name, ok: out.success, output, message: explain(text) });
    if (!out.success) break; // the same runtime is missing for the next one too
  }
  return results;
}

/** Turns deno compile's failure into one plain sentence. */
export function explain(stderr: string): string {
  if (/denort|dl\.deno\.land|Setting up base binary/.test(stderr)) {
    const where = Deno.env.get("DENORT_BIN");
    return where
      ? `deno compile could not use the denort runtime at DENORT_BIN=${where}: ${lastLine(stderr)}`
      : `deno compile needs Deno's denort runtime ${Deno.version.deno}, which it downloads from dl.deno.land, and that host cannot be reached here; set DENORT_BIN to a local denort binary of the same version to compile offline`;
  }
  return lastLine(stderr);
}

function lastLine(s: string): string {
  return s.trim().split("\n").map((l) => l.trim()).filter(Boolean).slice(-1)[0] ?? "";
}

if (import.meta.main) {
  const results = await compileAll(Deno.args[0] ?? "dist");
  for (const r of results) {
    console.log(r.ok ? `built ${r.output}` : `could not build ${r.name}: ${r.message}`);
  }
  Deno.exit(results.length === TARGETS.length && results.every((r) => r.ok) ? 0 : 1);
}
