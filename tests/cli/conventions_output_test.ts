/**
 * The conventions a daily user reaches for (issue 11, item 5), through the commands themselves:
 * `-o wide|name|json|yaml` and `--no-headers` on every listing, `-l` with Kubernetes' selector
 * grammar, a note instead of an empty table, aliases, a one-line "did you mean", live addresses
 * apart from the spec's, checksum sidecars never shown as volumes or images, and completion scripts
 * run in the real bash, zsh and fish.
 */
import assert from "node:assert/strict";
import { main as foundry } from "../../cli/foundry.ts";
import { main as virtwork } from "../../cli/virtwork.ts";
import { createVm } from "../../lib/foundry/vm.ts";
import { requireTool, testNeeding } from "../_require.ts";
import { runTool } from "../_tools.ts";
import { foundryFixture, testVm } from "../foundry/_fixture.ts";
import { libvirtTest, uniqueName } from "../libvirt/_env.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) },
    out: () => out.join(""),
    err: () => err.join(""),
  };
}

async function run(
  tool: typeof foundry,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const c = capture();
  const code = await tool(args, c.io);
  return { code, out: c.out(), err: c.err() };
}

/** A socket no daemon listens on: a command that gets this far exits 3. */
const NO_DAEMON = ["--connect", "qemu:///system?socket=/nonexistent/conventions.sock"];

Deno.test("a mistyped command or option is one line with a correction, exit 2", async () => {
  const cases: [typeof foundry, string[], string][] = [
    [foundry, ["lsit"], "Error: unknown command 'lsit'. Did you mean 'list'?\n"],
    [
      foundry,
      ["list", "--outptu", "json"],
      "Error: unknown option '--outptu'. Did you mean '--output'?\n",
    ],
    [foundry, ["image", "lst"], "Error: unknown command 'lst'. Did you mean 'list'?\n"],
    [virtwork, ["rnu"], "Error: unknown command 'rnu'. Did you mean 'run'?\n"],
    [
      virtwork,
      ["run", "--dry-rnu"],
      "Error: unknown option '--dry-rnu'. Did you mean '--dry-run'?\n",
    ],
  ];
  for (const [tool, args, want] of cases) {
    const r = await run(tool, args);
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.err, want, args.join(" "));
    assert.equal(r.out, "", "no help text");
  }
  const far = await run(foundry, ["frobnicate"]);
  assert.equal(far.code, 2);
  assert.equal(far.err, "Error: unknown command 'frobnicate'. See 'foundry --help'.\n");
});

Deno.test("aliases: ls is list, rm and delete are destroy, for VMs, pools and images", async () => {
  for (
    const [args, word] of [
      [["ls", "--help"], "Usage: foundry list|ls"],
      [["rm", "--help"], "Usage: foundry destroy|rm"],
      [["delete", "--help"], "Usage: foundry destroy|rm"],
      [["pool", "ls", "--help"], "Usage: foundry pool list|ls"],
      [["image", "rm", "--help"], "Usage: foundry image delete|rm"],
    ] as const
  ) {
    const r = await run(foundry, [...args]);
    assert.equal(r.code, 0, args.join(" "));
    assert.ok(r.out.startsWith(word), `${args.join(" ")}: ${r.out.split("\n")[0]}`);
  }
});

Deno.test("-l: a malformed selector is one line, exit 2, before any connection", async () => {
  for (
    const [sel, why] of [
      ["role in web", /expected '\(' after 'in'/],
      ["role=", null],
      ["-x=y", /key '-x'/],
      ["a=b,", /cannot end with ','/],
    ] as const
  ) {
    const r = await run(foundry, [...NO_DAEMON, "list", "-l", sel]);
    if (why === null) {
      assert.equal(r.code, 3, `${sel} is valid: the command goes on to connect`);
      continue;
    }
    assert.equal(r.code, 2, sel);
    assert.match(r.err, /^Error: Invalid label selector '.*': .+\n$/, sel);
    assert.match(r.err, why, sel);
  }
});

Deno.test("-o offers table, wide, name, json and yaml; anything else is a usage error", async () => {
  const r = await run(foundry, ["list", "-o", "xml"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /Allowed choices are table, wide, name, json, yaml/);
  assert.equal(r.err.trim().split("\n").length, 1);
  for (const args of [["pool", "list"], ["image", "list"], ["storage", "status"], ["history"]]) {
    const help = await run(foundry, [...args, "--help"]);
    assert.match(help.out, /-o, --output <format>.*table, wide, name, json, yaml/, args.join(" "));
    assert.match(help.out, /--no-headers/, args.join(" "));
  }
  const get = await run(foundry, ["get", "--help"]);
  assert.match(get.out, /"yaml", "json", "name", "table", "wide"|yaml, json, name, table, wide/);
});

Deno.test("history: an empty history says so on stderr; -o name, wide, yaml", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conventions-history-" });
  try {
    const db = ["--audit-db", `${dir}/audit.db`];
    const empty = await run(foundry, [...db, "history"]);
    assert.deepEqual(empty, { code: 0, out: "", err: "No operations recorded\n" });
    // One recorded operation: a pool add against no daemon.
    assert.equal(
      (await run(foundry, [...db, ...NO_DAEMON, "pool", "add", "ghost", "dir", "/nonexistent"]))
        .code,
      3,
    );
    const names = await run(foundry, [...db, "history", "-o", "name"]);
    assert.match(names.out, /^operation\/[0-9a-f-]{36}\n$/);
    const wide = await run(foundry, [...db, "history", "-o", "wide"]);
    assert.match(wide.out, /^STARTED \(UTC\)\s+OPERATION.*ERROR\s+ID\s+FINISHED \(UTC\)\n/);
    const bare = await run(foundry, [...db, "history", "--no-headers"]);
    assert.match(bare.out, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+add\s+pool\s+ghost\s+failed/);
    const yaml = await run(foundry, [...db, "history", "-o", "yaml"]);
    assert.match(yaml.out, /^- runId: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

libvirtTest(
  "list and get: -l grammar, -o wide|name, --no-headers, live vs spec addresses, no empty table",
  async () => {
    const fx = await foundryFixture();
    try {
      const suite = uniqueName("conv");
      const web = testVm(fx, { labels: { suite, role: "web", env: "prod" } });
      const db = testVm(fx, { labels: { suite, role: "db" } });
      // Not started: no agent, no lease; only the spec knows an address.
      await createVm(fx.lv, web, { config: fx.config, noStart: true });
      await createVm(fx.lv, db, { config: fx.config, noStart: true });
      const w = web.metadata.name;
      const d = db.metadata.name;
      const names = async (sel: string) => {
        const r = await run(foundry, ["list", "-l", `suite=${suite},${sel}`, "-o", "name"]);
        assert.equal(r.code, 0, r.err);
        return r.out;
      };
      assert.equal(await names("role in (web,db)"), [w, d].sort().map((n) => `vm/${n}\n`).join(""));
      assert.equal(await names("role notin (web)"), `vm/${d}\n`);
      assert.equal(await names("env!=prod"), `vm/${d}\n`, "!= matches VMs without the label");
      assert.equal(await names("env"), `vm/${w}\n`);
      assert.equal(await names("!env"), `vm/${d}\n`);
      assert.equal(await names("role==web"), `vm/${w}\n`);
      const sep = await run(foundry, [
        "list",
        "-l",
        `suite=${suite}`,
        "-l",
        "role=db",
        "-o",
        "name",
      ]);
      assert.equal(sep.out, `vm/${d}\n`, "repeated -l are AND");

      const none = await run(foundry, ["list", "-l", `suite=${suite},role=cache`]);
      assert.deepEqual(none, { code: 0, out: "", err: "No VMs found\n" });
      const noneJson = await run(foundry, [
        "list",
        "-l",
        `suite=${suite},role=cache`,
        "-o",
        "json",
      ]);
      assert.deepEqual(noneJson, { code: 0, out: "[]\n", err: "" });

      const specIp = web.spec.networkInterfaces[0]!.ip!.split("/")[0]!;
      const table = await run(foundry, ["list", "-l", `suite=${suite},role=web`]);
      assert.match(table.out, /^NAME\s+STATE\s+VCPUS\s+MEMORY\s+IP ADDRESS\n/);
      assert.match(
        table.out,
        new RegExp(
          `\\n${w}\\s+shut off\\s+1\\s+256 MiB\\s+${specIp.replaceAll(".", "\\.")} \\(spec\\)\\n$`,
        ),
        "the spec's address is marked as such",
      );
      const bare = await run(foundry, ["list", "-l", `suite=${suite},role=web`, "--no-headers"]);
      assert.ok(bare.out.startsWith(`${w} `), bare.out);
      assert.equal(bare.out.split("\n").length, 2);

      const wide = await run(foundry, ["list", "-l", `suite=${suite},role=web`, "-o", "wide"]);
      assert.match(
        wide.out,
        /^NAME\s+STATE\s+VCPUS\s+MEMORY\s+IP ADDRESS\s+UUID\s+AUTOSTART\s+LABELS\s+ADDRESS SOURCE\n/,
      );
      const uuid = (await fx.lv.domainLookupByName(w)).uuid;
      const uuidText = [...uuid].map((b) => b.toString(16).padStart(2, "0")).join("")
        .replace(/^(.{8})(.{4})(.{4})(.{4})/, "$1-$2-$3-$4-");
      assert.ok(wide.out.includes(uuidText), "the UUID column");
      assert.match(
        wide.out,
        new RegExp(`\\s(yes|no)\\s+env=prod,role=web,suite=${suite}\\s+spec\\n$`),
      );

      const json = JSON.parse(
        (await run(foundry, ["list", "-l", `suite=${suite},role=web`, "-o", "json"])).out,
      );
      assert.equal(json[0].ip, "", "no live address: ip stays empty");
      assert.equal(json[0].ipSource, "");
      assert.deepEqual(json[0].addresses, [
        { ip: specIp, source: "spec" },
        { ip: web.spec.networkInterfaces[1]!.ip!.split("/")[0], source: "spec" },
      ]);

      const getName = await run(foundry, ["get", w, "-o", "name"]);
      assert.deepEqual(getName, { code: 0, out: `vm/${w}\n`, err: "" });
      const getWide = await run(foundry, ["get", w, "-o", "wide", "--no-headers"]);
      assert.match(
        getWide.out,
        new RegExp(`^${w}\\s+shut off\\s+1\\s+256 MiB\\s+\\S+ \\(spec\\)\\s+`),
      );
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "pool, image and storage listings: -o wide|name, --no-headers; a .sha256 sidecar never shows",
  async () => {
    const fx = await foundryFixture();
    try {
      const pool = fx.config.imagesPool;
      const p = await fx.lv.storagePoolLookupByName(pool);
      // The checksum foundry keeps next to an image it imported (images.ts CHECKSUM_SUFFIX).
      await fx.lv.storageVolCreateXml(
        p,
        `<volume><name>${fx.image}.sha256</name><capacity>80</capacity>` +
          `<target><format type='raw'/></target></volume>`,
      );
      const flags = ["--image-pool", pool];
      const info = await run(foundry, [...flags, "pool", "info", pool]);
      assert.equal(info.code, 0, info.err);
      assert.doesNotMatch(info.out, /\.sha256/);
      assert.match(info.out, /Volumes:\s+1\n/);
      assert.match(info.out, new RegExp(`\\n${fx.image.replace(".", "\\.")}\\s+qcow2`));
      for (const format of ["json", "yaml"]) {
        const r = await run(foundry, [...flags, "pool", "info", pool, "-o", format]);
        assert.doesNotMatch(r.out, /\.sha256/, format);
      }
      const wideInfo = await run(foundry, [...flags, "pool", "info", pool, "-o", "wide"]);
      assert.match(wideInfo.out, /VOLUME\s+FORMAT\s+CAPACITY\s+ALLOCATION\s+BACKING\s+PATH\n/);
      assert.deepEqual(
        await run(foundry, [...flags, "pool", "info", pool, "-o", "name"]),
        { code: 0, out: `pool/${pool}\n`, err: "" },
      );

      const pools = JSON.parse((await run(foundry, ["pool", "list", "-o", "json"])).out);
      assert.equal(pools.find((x: { name: string }) => x.name === pool)?.volumes, 1);
      const status = JSON.parse((await run(foundry, ["storage", "status", "-o", "json"])).out);
      assert.equal(status.find((x: { name: string }) => x.name === pool)?.volumes, 1);
      const poolNames = await run(foundry, ["pool", "list", "-o", "name"]);
      assert.ok(poolNames.out.split("\n").includes(`pool/${pool}`));
      const poolWide = await run(foundry, ["pool", "ls", "-o", "wide"]);
      assert.match(poolWide.out, /^NAME\s+TYPE\s+STATE\s+AUTOSTART.*VOLUMES\s+PATH\n/);
      assert.ok(poolWide.out.includes(`${fx.config.imagesPath}\n`));
      const statusWide = await run(foundry, ["storage", "status", "-o", "wide", "--no-headers"]);
      assert.doesNotMatch(statusWide.out, /^POOL/);
      assert.match(
        statusWide.out,
        new RegExp(`(^|\\n)${pool}\\s+running.*\\sdir\\s+${fx.config.imagesPath}\\n`),
      );

      assert.deepEqual(
        await run(foundry, [...flags, "image", "list", "-o", "name"]),
        { code: 0, out: `image/${fx.image}\n`, err: "" },
      );
      const images = await run(foundry, [...flags, "image", "ls", "-o", "wide", "--no-headers"]);
      assert.match(
        images.out,
        new RegExp(
          `^${
            fx.image.replace(".", "\\.")
          }\\s+qcow2\\s.*\\s${fx.config.imagesPath}/${fx.image}\\n$`,
        ),
      );
      assert.deepEqual(
        await run(foundry, [...flags, "image", "info", fx.image, "-o", "name"]),
        { code: 0, out: `image/${fx.image}\n`, err: "" },
      );

      // Commands that make one thing print its name with -o name too.
      const extra = uniqueName("conv-pool");
      const added = await run(foundry, [
        "--no-audit",
        "pool",
        "add",
        extra,
        "dir",
        `${fx.dir}/${extra}`,
        "-o",
        "name",
      ]);
      assert.deepEqual(added, { code: 0, out: `pool/${extra}\n`, err: "" });
      assert.equal((await run(foundry, ["--no-audit", "pool", "delete", extra])).code, 0);
      const version = await run(foundry, ["version", "-o", "yaml"]);
      assert.equal(version.code, 0, version.err);
      assert.match(version.out, /^foundry: \S+\nuri: /);

      // A pool with no images yet: a note, not a bare header.
      await fx.lv.storageVolDelete(await fx.lv.storageVolLookupByName(p, fx.image));
      await fx.lv.storageVolDelete(await fx.lv.storageVolLookupByName(p, `${fx.image}.sha256`));
      assert.deepEqual(
        await run(foundry, [...flags, "image", "list"]),
        { code: 0, out: "", err: "No images found\n" },
      );
    } finally {
      await fx.cleanup();
    }
  },
);

/** The completion script of `tool` for `shell`, written to a temporary file. */
async function scriptFile(tool: typeof foundry, name: string, shell: string): Promise<string> {
  const r = await run(tool, ["completion", shell]);
  assert.equal(r.code, 0, r.err);
  const path = await Deno.makeTempFile({ prefix: `${name}-completion-`, suffix: `.${shell}` });
  await Deno.writeTextFile(path, r.out);
  return path;
}

/** What bash's completion function offers for `words` (the last one is being typed). */
async function bashComplete(script: string, words: string[], path = ""): Promise<string[]> {
  const w = words.map((x) => `'${x.replaceAll("'", `'\\''`)}'`).join(" ");
  const fn = `_${words[0]}_complete`;
  const r = await runTool("bash", [
    "-c",
    `${path ? `PATH=${path}:$PATH; ` : ""}source ${script}; COMP_WORDS=(${w}); ` +
    `COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); ${fn}; printf '%s\\n' "\${COMPREPLY[@]}"`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split("\n").filter((x) => x !== "");
}

Deno.test("completion: an unknown shell is a usage error", async () => {
  const r = await run(foundry, ["completion", "tcsh"]);
  assert.equal(r.code, 2);
  assert.equal(r.err, "Error: Unknown shell 'tcsh': expected one of bash, zsh, fish\n");
});

testNeeding(requireTool("bash"), {
  name: "completion bash: registered with complete, and compgen offers the command tree",
  fn: async () => {
    const f = await scriptFile(foundry, "foundry", "bash");
    const v = await scriptFile(virtwork, "virtwork", "bash");
    try {
      const reg = await runTool("bash", [
        "-c",
        `source ${f}; source ${v}; complete -p foundry virtwork`,
      ]);
      assert.equal(
        reg.stdout,
        "complete -F _foundry_complete foundry\ncomplete -F _virtwork_complete virtwork\n",
      );
      assert.deepEqual(await bashComplete(f, ["foundry", "li"]), ["list"]);
      assert.deepEqual(await bashComplete(f, ["foundry", "image", "l"]), ["list", "ls"]);
      assert.deepEqual(await bashComplete(f, ["foundry", "list", "-o", ""]), [
        "table",
        "wide",
        "name",
        "json",
        "yaml",
      ]);
      // Root options (with their values) may come first; the command path is still found.
      assert.deepEqual(
        await bashComplete(f, ["foundry", "--connect", "qemu:///system", "ls", "--no"]),
        ["--no-headers"],
      );
      assert.deepEqual(await bashComplete(f, ["foundry", "completion", ""]), []);
      assert.ok((await bashComplete(f, ["foundry", "create", "/et"])).includes("/etc"));
      assert.deepEqual(await bashComplete(v, ["virtwork", "run", "--dry"]), ["--dry-run"]);
      assert.deepEqual(await bashComplete(v, ["virtwork", "a"]), ["audit"]);
    } finally {
      await Deno.remove(f);
      await Deno.remove(v);
    }
  },
});

testNeeding(requireTool("zsh"), {
  name: "completion zsh: compdef registers it after compinit; it offers the command tree",
  fn: async () => {
    const f = await scriptFile(foundry, "foundry", "zsh");
    try {
      const r = await runTool("zsh", [
        "-c",
        `autoload -U compinit; compinit -u -D; source ${f}; print -r -- "comps=$_comps[foundry]"; ` +
        // Outside a completion widget compadd cannot run: print what it is given instead.
        `compadd() { [[ $1 == -- ]] && shift; print -r -- "$*"; }; _files() { print -r -- FILES; }; ` +
        `t() { words=("$@"); CURRENT=$#; _foundry_complete; }; ` +
        `t foundry ''; t foundry image ''; t foundry ls -o ''; t foundry -c x ls --no; t foundry create ''`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.split("\n");
      assert.equal(lines[0], "comps=_foundry_complete");
      assert.match(lines[1]!, /^create destroy rm delete list ls get .* completion$/);
      assert.equal(lines[2], "import pull list ls info delete rm");
      assert.equal(lines[3], "table wide name json yaml");
      assert.match(lines[4]!, /--no-headers/);
      assert.equal(lines[5], "FILES");
    } finally {
      await Deno.remove(f);
    }
  },
});

testNeeding(requireTool("fish"), {
  name: "completion fish: complete -C offers the command tree",
  fn: async () => {
    const f = await scriptFile(foundry, "foundry", "fish");
    try {
      const c = async (line: string) => {
        const r = await runTool("fish", ["-c", `source ${f}; complete -C '${line}'`]);
        assert.equal(r.code, 0, r.stderr);
        return r.stdout.split("\n").filter((x) => x !== "").sort();
      };
      assert.deepEqual(await c("foundry li"), ["list"]);
      assert.deepEqual(await c("foundry image l"), ["list", "ls"]);
      assert.deepEqual(await c("foundry list -o "), ["json", "name", "table", "wide", "yaml"]);
      assert.deepEqual(await c("foundry --connect x ls --no"), ["--no-headers"]);
      assert.deepEqual(await c("foundry storage "), ["status"]);
    } finally {
      await Deno.remove(f);
    }
  },
});

libvirtTest("completion bash: VM names come from foundry list -o name", async () => {
  const fx = await foundryFixture();
  const bin = await Deno.makeTempDir({ prefix: "conventions-bin-" });
  const f = await scriptFile(foundry, "foundry", "bash");
  try {
    const vm = testVm(fx, { labels: { suite: uniqueName("conv") } });
    await createVm(fx.lv, vm, { config: fx.config, noStart: true });
    // `foundry` on PATH as an installed command would be.
    const entry = new URL("../../cli/foundry.ts", import.meta.url).pathname;
    await Deno.writeTextFile(
      `${bin}/foundry`,
      `#!/bin/sh\nexec deno run --allow-read --allow-write --allow-net --allow-env ` +
        `--allow-run=ssh --allow-sys=hostname ${entry} "$@"\n`,
    );
    await Deno.chmod(`${bin}/foundry`, 0o755);
    const prefix = vm.metadata.name.slice(0, -3);
    assert.ok(
      (await bashComplete(f, ["foundry", "get", prefix], bin)).includes(vm.metadata.name),
    );
    assert.ok(
      (await bashComplete(f, ["foundry", "pool", "info", fx.config.imagesPool.slice(0, -2)], bin))
        .includes(fx.config.imagesPool),
    );
  } finally {
    await Deno.remove(f);
    await Deno.remove(bin, { recursive: true });
    await fx.cleanup();
  }
});
