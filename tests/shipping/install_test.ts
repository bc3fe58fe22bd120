/**
 * `deno task install` as a user runs it: into a temporary `DENO_INSTALL_ROOT`, then every installed
 * command run from another directory under a pseudo-terminal (`script` from util-linux), where a
 * permission prompt would show and wait. None may appear, relative file arguments resolve against
 * the caller's directory, and the installed bundles print what the sources print.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import denoConfig from "../../deno.json" with { type: "json" };
import { TARGETS } from "../../tasks/compile.ts";
import { LIBVIRT_SOCKET, requireLibvirt, requireTool, testNeeding } from "../_require.ts";
import { installInto } from "./_install.ts";

const root = new URL("../../", import.meta.url).pathname;
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** What Deno prints when it asks for or refuses a permission. */
const PROMPT_OR_REFUSAL =
  /Deno requests|Allow\?|\[y\/n|NotCapable|Requires \w+ access|run again with the --allow/i;

/** A file `create` rejects at validation: exit 2, one line per field, nothing created. */
const BAD_VM = "apiVersion: foundry.cofront.xyz/v1alpha1\nkind: VirtualMachine\n" +
  "metadata:\n  name: install-test\nspec:\n  vcpus: 0\n";

interface Installed {
  bin: string;
  cwd: string;
  env: Record<string, string>;
  cleanup: () => Promise<void>;
}

/** Runs the install task's exact command line into a fresh DENO_INSTALL_ROOT. */
async function install(): Promise<Installed> {
  const dir = await Deno.makeTempDir({ prefix: "foundry-install-" });
  const installRoot = join(dir, "root");
  const cwd = join(dir, "elsewhere");
  await Deno.mkdir(cwd);
  const bin = await installInto(installRoot);
  return {
    bin,
    cwd,
    env: {
      NO_COLOR: "1",
      FOUNDRY_URI: `qemu:///system?socket=${LIBVIRT_SOCKET}`,
      FOUNDRY_AUDIT_DB: join(dir, "foundry.db"),
      HOME: dir,
    },
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

/**
 * Runs `words` (an installed command first) in `cwd` under a pseudo-terminal: `script -qec` gives
 * it a terminal for stdin, stdout and stderr, as an interactive shell would. stdin is closed at
 * once, so a prompt would get no answer and be seen in the output.
 */
async function onTerminal(i: Installed, words: string[]) {
  // The command is found on PATH, as after `export PATH="$DENO_INSTALL_ROOT/bin:$PATH"`.
  const line = words.map((w) => `'${w.replaceAll("'", `'\\''`)}'`).join(" ");
  const child = new Deno.Command("script", {
    args: ["-qec", line, "/dev/null"],
    cwd: i.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { ...i.env, PATH: `${i.bin}:${Deno.env.get("PATH") ?? ""}`, TERM: "xterm" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  try {
    const out = await child.output();
    return {
      code: out.code,
      out: text(out.stdout).replaceAll("\r\n", "\n"),
      err: text(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

const libvirt = await requireLibvirt();
const pty = requireTool("script");

testNeeding([pty], {
  name: "install: shims run the bundles with --no-prompt and exactly the targets' permissions",
  fn: async () => {
    const i = await install();
    try {
      for (const t of TARGETS) {
        const shim = await Deno.readTextFile(join(i.bin, t.name));
        const line = shim.split("\n").find((l) => l.startsWith("exec deno run "));
        assert.ok(line, shim);
        const flags = line.split(/\s+/).filter((w) => w.startsWith("--allow") || w === "-A");
        assert.deepEqual(flags.sort(), [...t.permissions].sort(), t.name);
        assert.ok(line.split(/\s+/).includes("--no-prompt"), line);
        assert.match(line, new RegExp(`dist/bundle/${t.name}\\.js'`), line);
      }
    } finally {
      await i.cleanup();
    }
  },
});

testNeeding([pty, libvirt], {
  name: "install: every installed command runs on a terminal from another directory, no prompt",
  fn: async () => {
    const i = await install();
    try {
      const runs: [string[], number, RegExp][] = [
        [
          ["foundry", "--version"],
          0,
          new RegExp(`^${denoConfig.version.replaceAll(".", "\\.")}\n`),
        ],
        [["foundry", "--help"], 0, /Usage: foundry/],
        [["foundry", "list"], 0, /NAME|No VMs/],
        [["foundry", "get", "no-such-vm-install-test"], 4, /no-such-vm-install-test/],
        [["foundry", "create", "--help"], 0, /Usage: foundry create/],
        [["foundry", "image", "list"], 0, /NAME|No images|^$/m],
        [["foundry", "pool", "list"], 0, /NAME/],
        [["foundry", "history"], 0, /STARTED|^$/m],
        [["virtwork", "run", "--dry-run"], 0, /kind: VirtualMachine/],
        [["virtwork", "audit", "list"], 0, /RUN|dry|^$/m],
      ];
      for (const [words, code, out] of runs) {
        const r = await onTerminal(i, words);
        const all = r.out + r.err;
        assert.doesNotMatch(all, PROMPT_OR_REFUSAL, words.join(" "));
        assert.equal(r.code, code, `${words.join(" ")}: ${all}`);
        assert.match(r.out, out, words.join(" "));
      }
      // virtwork's audit database defaults to the working directory: the caller's, not the repo's.
      await Deno.stat(join(i.cwd, "virtwork.db"));
    } finally {
      await i.cleanup();
    }
  },
});

testNeeding([pty], {
  name: "install: a relative file argument is read from the caller's directory",
  fn: async () => {
    const i = await install();
    try {
      await Deno.writeTextFile(join(i.cwd, "vm.yaml"), BAD_VM);
      const r = await onTerminal(i, ["foundry", "create", "./vm.yaml"]);
      assert.doesNotMatch(r.out + r.err, PROMPT_OR_REFUSAL);
      assert.equal(r.code, 2, r.out + r.err);
      assert.match(r.out + r.err, /\.\/vm\.yaml:6:10 spec\.vcpus: must be a positive integer/);
    } finally {
      await i.cleanup();
    }
  },
});

testNeeding([pty, libvirt], {
  name: "deno task: the executables' tasks ask nothing on a terminal either",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "foundry-task-pty-" });
    const t: Installed = {
      bin: dir,
      cwd: dir,
      env: {
        NO_COLOR: "1",
        FOUNDRY_URI: `qemu:///system?socket=${LIBVIRT_SOCKET}`,
        FOUNDRY_AUDIT_DB: join(dir, "foundry.db"),
        // HOME stays the user's: Deno's cache (npm packages of the sources) lives there.
        HOME: Deno.env.get("HOME") ?? dir,
      },
      cleanup: () => Deno.remove(dir, { recursive: true }),
    };
    try {
      const task = ["deno", "task", "--quiet", "--config", join(root, "deno.json")];
      for (
        const [args, out] of [
          [["foundry", "--version"], /^\d+\.\d+\.\d+/],
          [["list", "-o", "json"], /^\[/],
          [["foundry", "history"], /STARTED|^$/m],
          [["virtwork", "audit", "list"], /RUN|^$/m],
        ] as const
      ) {
        const r = await onTerminal(t, [...task, ...args]);
        assert.doesNotMatch(r.out + r.err, PROMPT_OR_REFUSAL, args.join(" "));
        assert.equal(r.code, 0, `${args.join(" ")}: ${r.out}${r.err}`);
        assert.match(r.out, out, `${args.join(" ")}: ${JSON.stringify(r.out)}`);
      }
    } finally {
      await t.cleanup();
    }
  },
});

Deno.test("deno task create ./vm.yaml reads the file where the user stands", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "foundry-task-cwd-" });
  try {
    await Deno.writeTextFile(join(cwd, "vm.yaml"), BAD_VM);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "--config", join(root, "deno.json"), "create", "./vm.yaml"],
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // deno task keeps an INIT_CWD it inherits (as npm does): under `deno task test` that is the
      // repository, so the test starts the task as a user's shell would, without one.
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: Deno.env.get("HOME") ?? "/root",
        NO_COLOR: "1",
        FOUNDRY_AUDIT: "0",
      },
    }).output();
    const all = text(out.stdout) + text(out.stderr);
    assert.equal(out.code, 2, all);
    assert.match(all, /\.\/vm\.yaml:6:10 spec\.vcpus: must be a positive integer/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("the installed bundles print what the sources print (--version, --help)", async () => {
  // The install task builds dist/bundle afresh; a stale bundle would differ from the sources here.
  const i = await install();
  try {
    for (const t of TARGETS) {
      for (
        const args of [["--version"], ["--help"], ["help", t.name === "foundry" ? "create" : "run"]]
      ) {
        const run = async (script: string) => {
          const out = await new Deno.Command(Deno.execPath(), {
            args: ["run", "--no-prompt", ...t.permissions, script, ...args],
            cwd: i.cwd,
            stdin: "null",
            stdout: "piped",
            stderr: "piped",
            env: { NO_COLOR: "1" },
          }).output();
          return { code: out.code, out: text(out.stdout), err: text(out.stderr) };
        };
        const src = await run(join(root, t.entry));
        const bundled = await run(join(root, "dist", "bundle", `${t.name}.js`));
        assert.equal(src.code, 0, src.err);
        assert.deepEqual(bundled, src, `${t.name} ${args.join(" ")}`);
      }
    }
  } finally {
    await i.cleanup();
  }
});
