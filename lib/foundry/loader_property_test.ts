/**
 * Property-based tests of the VirtualMachine loader: damaged valid files, random YAML values and
 * random text are accepted or refused with a ValidationError that names the file and a line and
 * column inside it; nothing else escapes.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.11.0";
import { stringify } from "npm:yaml@^2.9.1";
import { parseVirtualMachines } from "./loader.ts";
import { ValidationError } from "./errors.ts";
import { fakeSshKey, sampleVm } from "./_testdata.ts";
import { propertyTests } from "../../tests/_property.ts";

const FILE = "hostile.yaml";

const examples = [
  "simple-vm.yaml",
  "multi-disk-vm.yaml",
  "custom-pool-vm.yaml",
  "demo-vm.yaml",
  "cpu-numa-vm.yaml",
  "install-from-iso.yaml",
  "template.yaml",
]
  .map((name) => Deno.readTextFileSync(new URL(`../../examples/${name}`, import.meta.url)));

/** Valid documents to start from: the examples and the test fixture. */
const valid = [...examples, stringify(sampleVm()), stringify(sampleVm()) + "---\n" + examples[0]];

/** Parses `text`; returns the VMs or the ValidationError, checking its problems point into the text. */
function parse(text: string): unknown {
  try {
    return parseVirtualMachines(text, FILE);
  } catch (err) {
    assert.ok(err instanceof ValidationError, `the loader threw ${err}`);
    const lines = text.split("\n").length + 1;
    for (const p of err.problems) {
      assert.equal(p.file, FILE);
      assert.ok(p.line >= 1 && p.line <= lines, `line ${p.line} is in the file (${lines} lines)`);
      assert.ok(p.column >= 1, `column ${p.column}`);
    }
    return err;
  }
}

/** YAML and JSON fragments that tend to break parsers and validators. */
const snippet = fc.oneof(
  fc.constantFrom(
    "&a",
    "*a",
    "<<: *a",
    "!!binary",
    "!!str",
    "!tag",
    "? ",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    "|",
    ">-",
    "'",
    '"',
    "#",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "\t",
    "\r",
    "\u0085",
    "\ufeff",
    "\0",
    "1e308",
    "-1",
    ".nan",
    "0x7fffffff",
    "9007199254740993",
    "~",
    "null",
    "yes",
    "__proto__",
    "constructor",
    "../../etc/passwd",
    "$(reboot)",
    "<domain/>",
    "\u202e",
  ),
  fc.string({ maxLength: 12 }),
);

type Edit =
  | { k: "insert"; at: number; text: string }
  | { k: "delete"; at: number; n: number }
  | { k: "swapLines"; a: number; b: number }
  | { k: "duplicateLine"; at: number }
  | { k: "truncate"; at: number };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ k: fc.constant("insert" as const), at: fc.nat(), text: snippet }),
  fc.record({
    k: fc.constant("delete" as const),
    at: fc.nat(),
    n: fc.integer({ min: 1, max: 20 }),
  }),
  fc.record({ k: fc.constant("swapLines" as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ k: fc.constant("duplicateLine" as const), at: fc.nat() }),
  fc.record({ k: fc.constant("truncate" as const), at: fc.nat() }),
);

function applyEdit(text: string, e: Edit): string {
  const at = (n: number) => n % (text.length + 1);
  const lines = text.split("\n");
  switch (e.k) {
    case "insert":
      return text.slice(0, at(e.at)) + e.text + text.slice(at(e.at));
    case "delete":
      return text.slice(0, at(e.at)) + text.slice(at(e.at) + e.n);
    case "swapLines": {
      const a = e.a % lines.length;
      const b = e.b % lines.length;
      [lines[a], lines[b]] = [lines[b]!, lines[a]!];
      return lines.join("\n");
    }
    case "duplicateLine": {
      const i = e.at % lines.length;
      lines.splice(i, 0, lines[i]!);
      return lines.join("\n");
    }
    case "truncate":
      return text.slice(0, at(e.at));
  }
}

/** Paths of the sample VM's fields, to set to random values. */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== "object") return [prefix];
  const out: (string | number)[][] = prefix.length > 0 ? [prefix] : [];
  for (const [k, v] of Object.entries(value)) {
    out.push(...paths(v, [...prefix, Array.isArray(value) ? Number(k) : k]));
  }
  return out;
}

const SAMPLE_PATHS = paths(sampleVm());

function setPath(root: unknown, path: readonly (string | number)[], v: unknown): void {
  let o = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  o[path[path.length - 1]!] = v;
}

const hostileValue = fc.oneof(
  fc.anything({ maxDepth: 2, maxKeys: 4, withBigInt: false, withMap: false, withSet: false }),
  fc.constantFrom(
    1e30,
    -1,
    0,
    9007199254740991,
    Number.MAX_VALUE,
    "",
    "a\nb",
    "\u001b[31mred",
    "x".repeat(5000),
    fakeSshKey() + "\n" + fakeSshKey("ssh-rsa", 2),
  ),
  snippet,
);

/** Whether `line` holds a control character (tab aside) that must never reach a terminal. */
function hasControl(line: string): boolean {
  return [...line].some((c) => {
    const n = c.charCodeAt(0);
    return (n < 0x20 && n !== 0x09) || (n >= 0x7f && n <= 0x9f);
  });
}

const STRING_PATHS = SAMPLE_PATHS.filter((p) =>
  typeof p.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], sampleVm()) ===
    "string"
);

propertyTests(import.meta.url, {
  "loader: damaged valid files are accepted or refused with a ValidationError": () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...valid),
        fc.array(edit, { minLength: 1, maxLength: 5 }),
        (text, edits) => {
          parse(edits.reduce(applyEdit, text));
        },
      ),
      { seed: 0x10ad, numRuns: 500 },
    );
  },

  "loader: any field set to any value is accepted or refused with a ValidationError": () => {
    fc.assert(
      fc.property(fc.constantFrom(...SAMPLE_PATHS), hostileValue, (path, value) => {
        const vm = sampleVm();
        setPath(vm, path, value);
        let text: string;
        try {
          text = stringify(vm);
        } catch {
          fc.pre(false); // not representable in YAML (e.g. a symbol)
          return;
        }
        parse(text);
      }),
      { seed: 0xf1e1d, numRuns: 500 },
    );
  },

  "loader: a control character put into any string is refused, and not echoed raw": () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...STRING_PATHS),
        fc.constantFrom("\n", "\r", "\u001b[2J", "\u0007", "\u0000", "\u009b", "\u007f"),
        fc.nat(),
        (path, bad, at) => {
          const vm = sampleVm();
          const old = String(path.reduce<unknown>(
            (o, k) => (o as Record<string | number, unknown>)[k],
            vm,
          ));
          const i = at % (old.length + 1);
          setPath(vm, path, old.slice(0, i) + bad + old.slice(i));
          const r = parse(stringify(vm));
          assert.ok(
            r instanceof ValidationError,
            `accepted ${JSON.stringify(bad)} in ${path.join(".")}`,
          );
          for (const line of r.message.split("\n")) {
            assert.ok(!hasControl(line), `the message shows a raw control character: ${line}`);
          }
        },
      ),
      { seed: 0xc0c0, numRuns: 300 },
    );
  },

  "loader: any part of a spec moved into a template loads to the same VM": () => {
    const vm = sampleVm();
    const keys = Object.keys(vm.spec) as (keyof typeof vm.spec)[];
    fc.assert(
      fc.property(
        fc.subarray(keys),
        fc.subarray(Object.keys(vm.metadata.labels ?? {})),
        (moved, movedLabels) => {
          const own: Record<string, unknown> = { ...vm.spec, templateRef: { name: "t" } };
          const given: Record<string, unknown> = {};
          for (const k of moved) {
            given[k] = vm.spec[k];
            delete own[k];
          }
          const labels = { ...vm.metadata.labels };
          const tplLabels: Record<string, string> = {};
          for (const k of movedLabels) {
            tplLabels[k] = labels[k]!;
            delete labels[k];
          }
          const template = stringify({
            apiVersion: "foundry.cofront.xyz/v1alpha1",
            kind: "VirtualMachineTemplate",
            metadata: { name: "t" },
            spec: { template: { metadata: { labels: tplLabels }, spec: given } },
          });
          const user = stringify({ ...vm, metadata: { ...vm.metadata, labels }, spec: own });
          const r = parse(`${template}---\n${user}`);
          assert.ok(Array.isArray(r), `refused: ${(r as Error).message}`);
          assert.deepEqual(r[0], { ...vm, spec: { ...vm.spec, templateRef: { name: "t" } } });
        },
      ),
      { seed: 0x7e3b, numRuns: 200 },
    );
  },

  "loader: random text and random YAML values are refused with a ValidationError": () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: "binary", maxLength: 200 }),
          fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
          fc.array(snippet, { maxLength: 30 }).map((s) => s.join("")),
        ),
        (text) => {
          const r = parse(text);
          assert.ok(r instanceof ValidationError, "random text is not a VirtualMachine");
        },
      ),
      { seed: 0x7a4d, numRuns: 500 },
    );
  },
});
