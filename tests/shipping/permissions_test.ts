/**
 * Least privilege: every deno.json task and every script's shebang names the permissions it needs,
 * scoped where the code allows it (`--allow-run` and `--allow-sys` always), and no `-A` outside the
 * demo and the test-image builder, which drive a dozen system tools as root. Then the scoped lists
 * are shown to be enough: the tasks' exact command lines run real commands with `--no-prompt` and
 * stdin closed, and no permission error comes out.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import denoConfig from "../../deno.json" with { type: "json" };
import { TARGETS } from "../../tasks/compile.ts";
import { LIBVIRT_SOCKET, requireLibvirt, testNeeding } from "../_require.ts";

const root = new URL("../../", import.meta.url).pathname;
const tasks: Record<string, string> = denoConfig.tasks;

/** Tasks and scripts allowed every permission (developer setup run as root, never shipped). */
const ALLOW_ALL_TASKS = new Set(["demo", "test-image"]);
const ALLOW_ALL_SCRIPTS = new Set(["tasks/demo.ts", "tasks/build_test_image.ts"]);

/** `deno run` flags of a command line, up to the script. */
function runFlags(words: readonly string[]): string[] {
  const at = words.indexOf("run");
  assert.ok(at >= 0, `expected 'deno run', got ${words.join(" ")}`);
  const flags: string[] = [];
  for (const w of words.slice(at + 1)) {
    if (!w.startsWith("-")) break;
    flags.push(w);
  }
  return flags;
}

/** What is wrong with a permission list, if anything. */
function problems(flags: readonly string[], allowAll: boolean): string[] {
  const out: string[] = [];
  for (const f of flags) {
    if (f === "-A" || f === "--allow-all") {
      if (!allowAll) out.push(`${f} grants everything`);
    } else if (f === "--allow-run" || f === "--allow-sys") {
      out.push(`${f} is not scoped (${f}=NAME,...)`);
    } else if (/^--allow-(run|sys)=$/.test(f)) {
      out.push(`${f} names nothing`);
    }
  }
  return out;
}

function shebangs(): { path: string; line: string }[] {
  const out: { path: string; line: string }[] = [];
  for (const dir of ["cli", "examples", "tasks"]) {
    for (const e of Deno.readDirSync(join(root, dir))) {
      if (!e.isFile || !e.name.endsWith(".ts")) continue;
      const path = `${dir}/${e.name}`;
      const line = Deno.readTextFileSync(join(root, path)).split("\n", 1)[0]!;
      if (line.startsWith("#!")) out.push({ path, line });
    }
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

const words = (s: string) => s.trim().split(/\s+/);

/** A `deno run` task, possibly after `R="$PWD" && cd "$INIT_CWD" &&` (tasks of the executables). */
const RUN_TASK = /^(R="\$PWD" && cd "\$INIT_CWD" && )?deno run /;

/**
 * The `deno run` command line of task `name` as argv after `deno`, with the repository root for
 * `$R` (the executables' tasks run in the caller's directory, see deno.json).
 */
function taskArgv(name: string): string[] {
  const cmd = tasks[name]!.replace(/^R="\$PWD" && cd "\$INIT_CWD" && /, "");
  return words(cmd.replaceAll('"$R/', `"${root}`)).map((w) => w.replace(/^"(.*)"$/, "$1")).slice(1);
}

Deno.test("no deno.json task runs with -A or an unscoped --allow-run/--allow-sys", () => {
  const runTasks = Object.entries(tasks).filter(([, cmd]) => RUN_TASK.test(cmd));
  assert.ok(runTasks.length >= 10, "the tasks were found");
  for (const [name, cmd] of runTasks) {
    assert.deepEqual(problems(runFlags(words(cmd)), ALLOW_ALL_TASKS.has(name)), [], `task ${name}`);
  }
  // Every other task is a test run, which takes its permissions from deno.json's "test" section.
  for (const [name, cmd] of Object.entries(tasks)) {
    if (!RUN_TASK.test(cmd)) assert.match(cmd, /deno test -P/, `task ${name}`);
  }
});

Deno.test("no shebang in cli/, examples/ or tasks/ runs with -A or an unscoped list", () => {
  const all = shebangs();
  for (const p of ["cli/foundry.ts", "cli/virtwork.ts", "examples/list_vms.ts"]) {
    assert.ok(all.some((s) => s.path === p), `${p} has a shebang`);
  }
  for (const { path, line } of all) {
    assert.match(line, /^#!\/usr\/bin\/env -S deno run /, path);
    assert.deepEqual(problems(runFlags(words(line)), ALLOW_ALL_SCRIPTS.has(path)), [], path);
  }
});

Deno.test("the executables' shebangs, tasks and compile targets grant the same permissions", () => {
  const sorted = (flags: readonly string[]) => [...flags].sort();
  const shebang = (path: string) =>
    sorted(runFlags(words(shebangs().find((s) => s.path === path)!.line)));
  const foundryTasks = Object.entries(tasks).filter(([, cmd]) => cmd.includes("/cli/foundry.ts"));
  assert.ok(foundryTasks.length >= 9);
  for (const [name, cmd] of foundryTasks) {
    assert.deepEqual(sorted(runFlags(words(cmd))), shebang("cli/foundry.ts"), `task ${name}`);
  }
  assert.deepEqual(sorted(runFlags(words(tasks.virtwork!))), shebang("cli/virtwork.ts"));
  for (const t of TARGETS) {
    // The install task adds --no-prompt to the targets' permissions; a compiled binary never asks.
    const granted = shebang(t.entry).filter((f) => f !== "--no-prompt");
    assert.deepEqual(sorted(t.permissions), granted, `compile target ${t.name}`);
  }
  // A missing permission is an error, never a question on the user's terminal.
  for (const [name, cmd] of [...foundryTasks, ["virtwork", tasks.virtwork!] as const]) {
    assert.ok(runFlags(words(cmd)).includes("--no-prompt"), `task ${name}`);
  }
  for (const entry of ["cli/foundry.ts", "cli/virtwork.ts"]) {
    assert.ok(shebang(entry).includes("--no-prompt"), entry);
  }
  for (
    const [name, script] of Object.entries({
      compile: "tasks/compile.ts",
      install: "tasks/install.ts",
      bundle: "tasks/bundle.ts",
      "bench:rpc": "tasks/bench_rpc.ts",
      "bench:storage": "tasks/bench_storage.ts",
      "bench:virtwork": "tasks/bench_virtwork.ts",
    })
  ) {
    assert.deepEqual(sorted(runFlags(words(tasks[name]!))), shebang(script), `task ${name}`);
  }
});

/** A permission error as Deno words it (NotCapable, "Requires ... access", "--allow-..."). */
const PERMISSION_ERROR = /NotCapable|Requires \w+ access|run again with the --allow/;

/**
 * Runs task `name`'s exact command line plus `args`, with `--no-prompt` (a missing permission is
 * an error, never a question) and stdin closed. Audit databases go to `dir`.
 */
async function runTask(name: string, args: string[], dir: string) {
  const [run, ...rest] = taskArgv(name);
  assert.equal(run, "run");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...rest, ...args],
    cwd: root,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: {
      NO_COLOR: "1",
      FOUNDRY_AUDIT_DB: join(dir, "foundry.db"),
      VIRTWORK_AUDIT_DB: join(dir, "virtwork.db"),
    },
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, out: text(out.stdout), err: text(out.stderr) };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "foundry-perms-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the foundry task's permissions are enough for --version", async () => {
  await withDir(async (dir) => {
    const r = await runTask("foundry", ["--version"], dir);
    assert.doesNotMatch(r.err, PERMISSION_ERROR);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.trim(), denoConfig.version);
  });
});

testNeeding(await requireLibvirt(), {
  name: "the list task's permissions are enough to list VMs over the real libvirtd socket",
  fn: async () => {
    await withDir(async (dir) => {
      const uri = `qemu:///system?socket=${LIBVIRT_SOCKET}`;
      const r = await runTask("list", ["--connect", uri, "--all", "-o", "json"], dir);
      assert.doesNotMatch(r.err, PERMISSION_ERROR);
      assert.equal(r.code, 0, r.err);
      assert.ok(Array.isArray(JSON.parse(r.out)) || typeof JSON.parse(r.out) === "object");
    });
  },
});

Deno.test("the virtwork task's permissions are enough for run --dry-run and audit list", async () => {
  await withDir(async (dir) => {
    const dry = await runTask("virtwork", ["run", "--dry-run"], dir);
    assert.doesNotMatch(dry.err, PERMISSION_ERROR);
    assert.equal(dry.code, 0, dry.err);
    assert.match(dry.out, /kind: VirtualMachine/);
    // The dry run was audited, host name included: --allow-sys=hostname is what that needs.
    const list = await runTask("virtwork", ["audit", "list", "-o", "json"], dir);
    assert.doesNotMatch(list.err, PERMISSION_ERROR);
    assert.equal(list.code, 0, list.err);
    const [entry] = JSON.parse(list.out) as { dryRun: boolean; hostname: string | null }[];
    assert.equal(entry?.dryRun, true);
    assert.equal(entry?.hostname, Deno.hostname());
  });
});

Deno.test("the compile task's scoped permissions are enough to run deno compile", async () => {
  await withDir(async (dir) => {
    const r = await runTask("compile", [join(dir, "dist")], dir);
    assert.doesNotMatch(r.out + r.err, PERMISSION_ERROR);
    // Without Deno's denort runtime (downloaded, or DENORT_BIN) it cannot build, and says so.
    if (r.code !== 0) assert.match(r.out, /could not build foundry: .*denort|DENORT_BIN/);
  });
});

Deno.test("the executables run by their shebang from any directory", async () => {
  await withDir(async (dir) => {
    for (const path of ["cli/foundry.ts", "cli/virtwork.ts"]) {
      const mode = (await Deno.stat(join(root, path))).mode ?? 0;
      assert.ok(mode & 0o111, `${path} is executable`);
      const out = await new Deno.Command(join(root, path), {
        args: ["--version"],
        cwd: dir,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1", DENO_NO_PROMPT: "1", PATH: Deno.env.get("PATH") ?? "" },
      }).output();
      const text = (b: Uint8Array) => new TextDecoder().decode(b);
      assert.equal(out.code, 0, text(out.stderr));
      assert.equal(text(out.stdout).trim(), denoConfig.version);
    }
  });
});
