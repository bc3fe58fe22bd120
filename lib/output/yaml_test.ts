import assert from "node:assert/strict";
import { parse, parseAllDocuments } from "npm:yaml@^2.9.1";
import { formatYaml, formatYamlDocuments } from "./yaml.ts";

/** `v` read back by a YAML 1.2 reader and by a YAML 1.1 one (the yaml package in 1.1 mode). */
function readBack(text: string): [unknown, unknown] {
  return [parse(text), parse(text, { version: "1.1" })];
}

function assertRoundTrip(v: unknown, what = JSON.stringify(v)): void {
  const text = formatYaml(v);
  const expected = JSON.parse(JSON.stringify(v) ?? "null");
  const [v12, v11] = readBack(text);
  assert.deepEqual(v12, expected, `YAML 1.2 of ${what}:\n${text}`);
  assert.deepEqual(v11, expected, `YAML 1.1 of ${what}:\n${text}`);
}

/** Strings a careless YAML writer gets wrong. */
const TRICKY = [
  "",
  " ",
  "  lead",
  "trail ",
  "yes",
  "No",
  "ON",
  "off",
  "y",
  "n",
  "~",
  "null",
  "NULL",
  "true",
  "False",
  "<<",
  "=",
  "0",
  "-1",
  "+1",
  "1.5",
  ".5",
  "1e3",
  "1_000",
  "0x1F",
  "0o17",
  "017",
  "0b101",
  ".inf",
  "-.Inf",
  ".NaN",
  "1:20",
  "190:20:30",
  "2001-12-14",
  "2001-12-14t21:59:43.10-05:00",
  "198.18.7.1",
  "198.18.7.1/15",
  "::1",
  "fe80::1/64",
  "a: b",
  "a:b",
  "a #b",
  "a#b",
  "#x",
  "- x",
  "-x",
  "?x",
  ":x",
  "x:",
  "[x]",
  "{x}",
  "x,y",
  "&a",
  "*a",
  "!tag",
  "|x",
  ">x",
  "'q'",
  '"q"',
  "%x",
  "@x",
  "`x",
  "a\nb",
  "a\nb\n",
  "a\nb\n\n",
  "\nlead",
  " \nx",
  "a\r\nb",
  "tab\there",
  "\ttab",
  "esc\u001b[2Jx",
  "c1\u009bx",
  "bidi\u202eevil",
  "zw\u200bx",
  "bom\ufeffx",
  "nel\u0085x",
  "ls\u2028x",
  "é ü ß",
  "日本語",
  "emoji 😀",
  "lone \ud800 surrogate",
  "ssh-ed25519 AAAA key@host",
  "#cloud-config\nusers: []\n",
  "line1\n  indented\n\nlast",
  "x".repeat(300),
];

Deno.test("formatYaml(): every tricky string reads back the same in YAML 1.2 and 1.1", () => {
  for (const s of TRICKY) {
    assertRoundTrip(s);
    assertRoundTrip({ [s || "empty"]: s, k: [s, { s }] });
  }
});

Deno.test("formatYaml(): invisible and control characters are escaped, never printed", () => {
  for (
    const s of TRICKY.filter((t) =>
      // deno-lint-ignore no-control-regex -- the characters under test
      /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b\u202e\ufeff]/.test(t)
    )
  ) {
    const text = formatYaml({ s });
    // deno-lint-ignore no-control-regex -- the characters under test
    assert.doesNotMatch(text, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b\u202e\ufeff]/, text);
  }
  assert.equal(formatYaml("a\u001b[2Jb"), '"a\\u001b[2Jb"\n');
});

Deno.test("formatYaml(): block style as kubectl prints it", () => {
  const vm = {
    apiVersion: "foundry.cofront.xyz/v1alpha1",
    kind: "VirtualMachine",
    metadata: { name: "web-1", labels: { app: "web" }, annotations: {} },
    spec: {
      vcpus: 2,
      memoryGiB: 0.25,
      autostart: false,
      networkInterfaces: [{ ip: "192.0.2.20/24", dnsServers: ["192.0.2.53"] }],
      dataDisks: [],
      note: undefined,
      script: "#!/bin/sh\necho hi\n",
    },
    status: null,
  };
  assert.equal(
    formatYaml(vm),
    `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: web-1
  labels:
    app: web
  annotations: {}
spec:
  vcpus: 2
  memoryGiB: 0.25
  autostart: false
  networkInterfaces:
    - ip: 192.0.2.20/24
      dnsServers:
        - 192.0.2.53
  dataDisks: []
  script: |
    #!/bin/sh
    echo hi
status: null
`,
  );
  assertRoundTrip(vm);
});

Deno.test("formatYaml(): what JSON prints, JSON's way (toJSON, undefined, numbers)", () => {
  const when = new Date("2026-12-03T02:50:53.000Z");
  assertRoundTrip({ when, list: [undefined, 1, null], big: 1e21, neg: -0.5, deep: [[[]], [{}]] });
  assert.equal(formatYaml({ when }), 'when: "2026-12-03T02:50:53.000Z"\n');
  assert.equal(formatYaml([undefined]), "- null\n");
  assert.equal(formatYaml({ a: undefined }), "{}\n");
  assert.equal(formatYaml({ a: NaN, b: Infinity, c: -Infinity }), "a: .nan\nb: .inf\nc: -.inf\n");
  // `n` (no) and `y` (yes) are booleans to a YAML 1.1 reader: quoted, as keys too.
  assert.equal(formatYaml({ n: "y" }), '"n": "y"\n');
});

Deno.test("formatYaml(): random documents read back the same (property)", () => {
  let seed = 20261203;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const chars = [
    "a",
    "Z",
    "0",
    "9",
    " ",
    ":",
    "#",
    "-",
    "\n",
    "\t",
    "'",
    '"',
    "\\",
    "é",
    "😀",
    "\u001b",
    "{",
    "[",
    ",",
    "&",
    "*",
    "!",
    "|",
    ">",
    "%",
    "@",
    "`",
    "?",
    ".",
    "_",
    "/",
    "~",
  ];
  const str = () =>
    rand() < 0.3
      ? pick(TRICKY)
      : Array.from({ length: Math.floor(rand() * 8) }, () => pick(chars)).join("");
  const value = (depth: number): unknown => {
    const r = rand();
    if (depth > 3 || r < 0.4) {
      return pick([str(), str(), Math.floor(rand() * 1e6) - 5e5, rand() * 100, true, false, null]);
    }
    if (r < 0.7) return Array.from({ length: Math.floor(rand() * 4) }, () => value(depth + 1));
    return Object.fromEntries(
      Array.from({ length: Math.floor(rand() * 4) }, () => [str(), value(depth + 1)]),
    );
  };
  for (let i = 0; i < 2000; i++) assertRoundTrip(value(0), `document ${i}`);
});

Deno.test("formatYamlDocuments(): documents separated by ---", () => {
  const docs = [{ kind: "Namespace", metadata: { name: "a" } }, {
    kind: "Secret",
    data: { x: "z" },
  }];
  const text = formatYamlDocuments(docs);
  assert.equal(text, "kind: Namespace\nmetadata:\n  name: a\n---\nkind: Secret\ndata:\n  x: z\n");
  assert.deepEqual(parseAllDocuments(text).map((d) => d.toJS()), docs);
});
