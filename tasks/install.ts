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
import { BUNDLE_DIR, bundleAll, EAGER_DIR, ROOT } from "./bundle.ts";
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
    let ok = out.success;
    let message = text.split("\n").slice(-2).join(" ");
    if (ok && t.name === "foundry") {
      const script = join(installRoot(), "bin", t.name);
      const routed = routeToEagerCopy(await Deno.readTextFile(script));
      if (routed === undefined) {
        ok = false;
        message = `${script} does not look like a deno install script; list and get are not routed`;
      } else {
        await Deno.writeTextFile(script, routed);
      }
    }
    results.push({ name: t.name, ok, message });
  }
  return results;
}

/** Where `deno install -g` puts executables' folder `bin`: `DENO_INSTALL_ROOT`, else `~/.deno`. */
function installRoot(): string {
  return Deno.env.get("DENO_INSTALL_ROOT") || join(Deno.env.get("HOME") ?? "~", ".deno");
}

/**
 * V8 flags of the installed `foundry list` and `get`: compile every function when its module loads
 * (kept in the code cache, see tasks/bundle.ts), and a young generation large enough that they
 * never stop for a scavenge (one of about 1 ms in every run otherwise). Measured on 24 stopped VMs:
 * list 41.5 -> 36.4 ms for the first, 36.7 -> 34.6 ms for the second (medians of 61 and 81 runs);
 * get 42.8 -> 35.7 ms with both.
 */
export const EAGER_V8_FLAGS = "--no-lazy,--min-semi-space-size=16";

/** The first words the installed foundry runs from the eager copy. */
export const EAGER_COMMANDS = ["list", "ls", "get"] as const;

/**
 * The `deno install` shell script `script` with `foundry list`, `ls` and `get` (the first word)
 * sent to the bundle's eager copy under {@linkcode EAGER_V8_FLAGS} (see `EAGER_DIR` in
 * tasks/bundle.ts): these are what people run dozens of times a day, and eager compilation with
 * the code cache makes them 5-7 ms faster, while commands that load npm packages are faster as
 * they are (`--help` 139 -> 186 ms, `virtwork run --dry-run` 267 -> 302 ms under `--no-lazy`).
 * Undefined when the script is not the one-line `exec deno run ... 'file:///.../foundry.js' "$@"`
 * that deno install writes.
 */
export function routeToEagerCopy(script: string): string | undefined {
  const lines = script.split("\n");
  const at = lines.findIndex((l) =>
    /^exec .*\brun .*'file:\/\/\/[^']*\/foundry\.js' "\$@"$/.test(l)
  );
  if (at < 0) return undefined;
  const line = lines[at]!;
  const m = /^(exec .*?\brun )(.*)'(file:\/\/\/[^']*\/)(foundry\.js)' "\$@"$/.exec(line)!;
  const eager = `${m[1]}--v8-flags=${EAGER_V8_FLAGS} ${m[2]}'${m[3]}${EAGER_DIR}/${m[4]}' "$@"`;
  const route = [
    `# foundry ${EAGER_COMMANDS.join(", ")} run the bundle's eager copy: see tasks/install.ts`,
    'case "$1" in',
    `${EAGER_COMMANDS.join(" | ")}) ${eager} ;;`,
    "esac",
  ];
  return [...lines.slice(0, at), ...route, ...lines.slice(at)].join("\n");
}

if (import.meta.main) {
  const results = await installAll();
  const root = installRoot();
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
