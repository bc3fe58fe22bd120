/**
 * Hostile input through the real CLI: every file under `fixtures/` (traversal, injection into XML,
 * YAML, ISO names and shell, control characters, aliases, huge and negative numbers, binary, empty,
 * duplicates, homoglyphs, sizes) and a few made at run time (a sparse 8 GiB file, a FIFO, a
 * directory) is given to `foundry --connect qemu:///system create FILE` as a subprocess. Each must
 * end with exit code 2 within a generous deadline (else it is killed and fails), print one
 * `Error: FILE:LINE:COLUMN FIELD: ...` line first and no stack trace, and create nothing on the real
 * libvirtd.
 *
 * A fixture's first line says what it expects: `# expect: line=N field=PATH`; files that cannot
 * carry a comment (binary, empty) are described in {@linkcode UNCOMMENTED}.
 */
import assert from "node:assert/strict";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { libvirtTest } from "../libvirt/_env.ts";

const path = (rel: string) => decodeURIComponent(new URL(rel, import.meta.url).pathname);
const FIXTURES = path("fixtures");
const ROOT = path("../..");
const CLI = path("../../cli/foundry.ts");
/** Per file: far above the ~1 s a run takes, low enough that a hang fails the test. */
const DEADLINE_MS = 60_000;

interface Expectation {
  line: number;
  field: string;
  message?: RegExp;
}

const UNCOMMENTED: Record<string, Expectation> = {
  "binary-empty.yaml": { line: 1, field: "", message: /no VirtualMachine document found/ },
  "binary-comments-only.yaml": { line: 1, field: "", message: /no VirtualMachine document/ },
  "binary-png.yaml": { line: 1, field: "", message: /not UTF-8/ },
  "binary-nul-bytes.yaml": { line: 1, field: "" },
  "binary-utf16.yaml": { line: 1, field: "", message: /not UTF-8/ },
  "binary-invalid-utf8-line3.yaml": { line: 3, field: "", message: /not UTF-8/ },
};

function expectationOf(name: string, bytes: Uint8Array): Expectation {
  const known = UNCOMMENTED[name];
  if (known) return known;
  const first = new TextDecoder().decode(bytes.subarray(0, 200)).split("\n")[0] ?? "";
  const m = /^# expect: line=(\d+) field=(.*)$/.exec(first);
  assert.ok(m, `${name} has no "# expect:" line and is not in UNCOMMENTED`);
  return { line: Number(m[1]), field: m[2] ?? "" };
}

/** Names of every domain and volume, to find anything a run created. */
async function inventory(lv: Libvirt): Promise<Set<string>> {
  const out = new Set<string>();
  for (const d of await lv.listAllDomains()) out.add(`domain ${d.name}`);
  for (const p of await lv.listAllStoragePools()) {
    try {
      for (const v of await lv.storagePoolListAllVolumes(p)) out.add(`volume ${p.name}/${v.name}`);
    } catch { /* an inactive pool lists no volumes */ }
  }
  return out;
}

/**
 * What a fixture could have created: domains and volumes named after the VMs of the fixtures. Other
 * test files may create and remove their own objects on the same daemon meanwhile, so only these
 * names count.
 */
const OURS = /(^|[ /])(hostile-\d+|vm-\d+|web|w\u0435b|ssh|user-data|\$|\.\.)/;

/** Wall time of each run, printed as a figure at the end (never asserted: the machine may be loaded). */
const seconds: [string, number][] = [];

async function run(file: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "--allow-env",
      "--allow-run=ssh",
      CLI,
      "--connect",
      "qemu:///system",
      "--no-audit",
      "create",
      file,
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const killed = new Promise<"killed">((resolve) => {
    timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      resolve("killed");
    }, DEADLINE_MS);
  });
  const result = await Promise.race([child.output(), killed]);
  clearTimeout(timer);
  seconds.push([file.slice(file.lastIndexOf("/") + 1), (performance.now() - t0) / 1000]);
  if (result === "killed") {
    await child.output().catch(() => {});
    assert.fail(`${file}: still running after ${DEADLINE_MS / 1000} s, killed`);
  }
  const dec = new TextDecoder();
  return {
    code: result.code,
    stdout: dec.decode(result.stdout),
    stderr: dec.decode(result.stderr),
  };
}

/** Prints how long the runs took: a figure for the "under 2 s each", never asserted. */
function printTimes(): void {
  const sorted = [...seconds].sort((a, b) => a[1] - b[1]);
  if (sorted.length === 0) return;
  const median = sorted[Math.floor(sorted.length / 2)]![1];
  const [slowName, slow] = sorted[sorted.length - 1]!;
  const over = sorted.filter((x) => x[1] >= 2).length;
  console.log(
    `hostile inputs: ${sorted.length} runs, median ${median.toFixed(2)} s, slowest ${
      slow.toFixed(2)
    } s (${slowName}), ${over} took 2 s or more`,
  );
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Checks one run's exit code and output against what the file expects. */
function check(
  file: string,
  expected: Expectation,
  r: { code: number; stdout: string; stderr: string },
) {
  const where = `${file}\n--- stderr ---\n${r.stderr}--- stdout ---\n${r.stdout}`;
  assert.equal(r.code, 2, where);
  assert.equal(r.stdout, "", where);
  const lines = r.stderr.trimEnd().split("\n");
  const head = `Error: ${escapeRe(file)}:${expected.line}:\\d+ `;
  const field = expected.field === "" ? "" : `${escapeRe(expected.field)}[^:]*: `;
  assert.match(lines[0] ?? "", new RegExp(`^${head}${field}\\S`), where);
  if (expected.message) assert.match(lines[0] ?? "", expected.message, where);
  // One line per problem, each naming the file: no stack trace, no multi-line messages.
  for (const l of lines.slice(1)) {
    assert.ok(l.startsWith(`${file}:`), `a line that is not a problem of ${where}`);
  }
  assert.doesNotMatch(r.stderr, /^\s+at /m, where);
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(r.stderr, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/, where);
}

libvirtTest(
  "every hostile fixture is refused with exit 2, its file, line and field, and creates nothing",
  async (t) => {
    const files = [...Deno.readDirSync(FIXTURES)].filter((e) => e.isFile).map((e) => e.name).sort();
    assert.ok(files.length >= 40, `only ${files.length} fixtures`);
    const lv = await Libvirt.connect("qemu:///system");
    try {
      const before = await inventory(lv);
      for (const name of files) {
        const file = `${FIXTURES}/${name}`;
        await t.step(name, async () => {
          const expected = expectationOf(name, await Deno.readFile(file));
          check(file, expected, await run(file));
          const created = [...await inventory(lv)].filter((x) => !before.has(x) && OURS.test(x));
          assert.deepEqual(created, [], `${name} created something`);
        });
      }
      printTimes();
    } finally {
      await lv.close();
    }
  },
);

libvirtTest(
  "a huge sparse file, a FIFO and a directory are refused without being read",
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "foundry-hostile-" });
    try {
      const sparse = `${dir}/sparse.yaml`;
      const f = await Deno.open(sparse, { create: true, write: true });
      await f.truncate(8 * 2 ** 30);
      f.close();
      const fifo = `${dir}/fifo.yaml`;
      const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
      assert.ok(mk.success, "mkfifo failed");
      const sub = `${dir}/directory.yaml`;
      await Deno.mkdir(sub);
      const cases: [string, RegExp][] = [
        [sparse, /8589934592 bytes, more than the limit of 1048576 bytes/],
        [fifo, /not a regular file/],
        [sub, /not a regular file/],
      ];
      for (const [file, message] of cases) {
        await t.step(file.slice(dir.length + 1), async () => {
          check(file, { line: 1, field: "", message }, await run(file));
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
