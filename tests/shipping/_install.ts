/** Installing the executables as a user does, shared by the install tests. */
import assert from "node:assert/strict";
import { join } from "node:path";
import denoConfig from "../../deno.json" with { type: "json" };

const root = new URL("../../", import.meta.url).pathname;
const tasks: Record<string, string> = denoConfig.tasks;
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/**
 * Runs the install task's exact command line with `DENO_INSTALL_ROOT` set to `installRoot`;
 * returns the folder holding the installed `foundry` and `virtwork`.
 */
export async function installInto(installRoot: string): Promise<string> {
  const [, run, ...rest] = tasks.install!.split(/\s+/);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [run!, ...rest],
    cwd: root,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { DENO_INSTALL_ROOT: installRoot, NO_COLOR: "1" },
  }).output();
  assert.equal(out.code, 0, text(out.stdout) + text(out.stderr));
  return join(installRoot, "bin");
}
