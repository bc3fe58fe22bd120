#!/usr/bin/env -S deno run --allow-read --allow-write --allow-env --allow-run=deno
/**
 * `deno task install`: puts `foundry` and `virtwork` on PATH. Builds the bundles afresh
 * (`tasks/bundle.ts`, so what is installed is never older than the sources) and installs each with
 * `deno install -g` and exactly the permissions of its compile target (`tasks/compile.ts`), plus
 * `--no-prompt`: a permission the code lacks is an error, never a question on the terminal.
 * `DENO_INSTALL_ROOT` (default `~/.deno`) chooses where, as for any `deno install`.
 * @module
 */
import { join } from "node:path";
import { BUNDLE_DIR, bundleAll, ROOT } from "./bundle.ts";
import { TARGETS } from "./compile.ts";

/** Result of installing one executable. */
export interface InstallOutcome {
  name: string;
  ok: boolean;
  message: string;
}

/** Builds the bundles and installs both executables; one outcome per executable. */
export async function installAll(): Promise<InstallOutcome[]> {
  const built = await bundleAll(join(ROOT, BUNDLE_DIR));
  if (!built.ok) return [{ name: "bundle", ok: false, message: built.message }];
  const results: InstallOutcome[] = [];
  for (const t of TARGETS) {
    const out = await new Deno.Command("deno", {
      args: [
        "install",
        "--global",
        "--force",
        "--name",
        t.name,
        "--no-prompt",
        ...t.permissions,
        join(built.outDir, `${t.name}.js`),
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(out.stderr).trim();
    results.push({ name: t.name, ok: out.success, message: text.split("\n").slice(-2).join(" ") });
  }
  return results;
}

if (import.meta.main) {
  const results = await installAll();
  const root = Deno.env.get("DENO_INSTALL_ROOT") || join(Deno.env.get("HOME") ?? "~", ".deno");
  for (const r of results) {
    console.log(
      r.ok ? `installed ${join(root, "bin", r.name)}` : `could not install ${r.name}: ${r.message}`,
    );
  }
  if (results.every((r) => r.ok)) {
    const path = (Deno.env.get("PATH") ?? "").split(":");
    if (!path.includes(join(root, "bin"))) console.log(`add ${join(root, "bin")} to PATH`);
  }
  Deno.exit(results.every((r) => r.ok) ? 0 : 1);
}
