/**
 * `deno task compile`: when Deno's denort runtime can be had (download or DENORT_BIN) the built
 * executables run; when it cannot, the task says so plainly, exits non-zero, and the build test
 * reports itself skipped with that reason.
 */
import assert from "node:assert/strict";
import { allowedSkip } from "../_require.ts";

const root = new URL("../../", import.meta.url).pathname;
const outDir = await Deno.makeTempDir({ prefix: "foundry-compile-" });
const task = await new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-run",
    "tasks/compile.ts",
    outDir,
  ],
  cwd: root,
  stdout: "piped",
  stderr: "piped",
}).output();
const said = new TextDecoder().decode(task.stdout);
const built = task.success;
const reason = built ? null : said.trim().split("\n").at(-1) ?? "compile failed";
/** Why the failure-path tests do not apply: the build worked. */
const builtReason = built ? "the build succeeded, so there is no failure to report" : null;

allowedSkip(builtReason, {
  name: "deno task compile says plainly why it cannot build, and exits non-zero",
  fn: () => {
    assert.equal(task.code, 1);
    assert.match(
      said,
      /could not build foundry: deno compile needs Deno's denort runtime|DENORT_BIN/,
    );
  },
});

allowedSkip(reason, {
  name: "compiled foundry and virtwork run",
  async fn() {
    const run = async (bin: string, args: string[]) => {
      const o = await new Deno.Command(`${outDir}/${bin}`, { args, stdout: "piped" }).output();
      return { code: o.code, out: new TextDecoder().decode(o.stdout) };
    };
    const version = (await import("../../deno.json", { with: { type: "json" } })).default.version;
    assert.equal((await run("foundry", ["--version"])).out.trim(), version);
    const dry = await run("virtwork", ["run", "--dry-run"]);
    assert.equal(dry.code, 0);
    assert.match(dry.out, /kind: VirtualMachine/);
  },
});

allowedSkip(builtReason, {
  name: "compile leaves no partial executables behind when it fails",
  fn: async () => {
    const left = [...Deno.readDirSync(outDir)].map((e) => e.name);
    assert.deepEqual(left, []);
    await Deno.remove(outDir, { recursive: true });
  },
});
