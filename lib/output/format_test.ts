import assert from "node:assert/strict";
import { parseAllDocuments } from "npm:yaml@^2.9.1";
import {
  formatJson,
  formatTable,
  formatYamlDocuments,
  paint,
  useColor,
  visibleLength,
} from "./mod.ts";

Deno.test("useColor(): only on a terminal, never with NO_COLOR or TERM=dumb", () => {
  assert.equal(useColor({ isTerminal: true, env: {} }), true);
  assert.equal(useColor({ isTerminal: false, env: {} }), false);
  assert.equal(useColor({ isTerminal: true, env: { NO_COLOR: "1" } }), false);
  assert.equal(useColor({ isTerminal: true, env: { NO_COLOR: "" } }), true);
  assert.equal(useColor({ isTerminal: true, env: { TERM: "dumb" } }), false);
});

Deno.test("paint(): ANSI only when enabled", () => {
  assert.equal(paint("ok", "green", false), "ok");
  assert.equal(paint("ok", "green", true), "\x1b[32mok\x1b[0m");
  assert.equal(visibleLength(paint("ok", "green", true)), 2);
});

Deno.test("formatTable(): columns aligned to the widest cell, colours ignored for width", () => {
  const out = formatTable(["WORKLOAD", "VM", "PHASE"], [
    ["cpu", "virtwork-cpu-1", paint("Running", "green", true)],
    ["network", "virtwork-network-server-1", "Scheduling"],
  ]);
  const lines = out.trimEnd().split("\n");
  assert.equal(lines.length, 3);
  const col = (l: string) =>
    l.replaceAll("\x1b[32m", "").replaceAll("\x1b[0m", "").indexOf("virtwork-");
  assert.equal(lines[0]!.indexOf("VM"), col(lines[1]!));
  assert.equal(col(lines[1]!), col(lines[2]!));
  const phaseCol = lines[0]!.indexOf("PHASE");
  assert.equal(lines[2]!.indexOf("Scheduling"), phaseCol);
  assert.ok(out.endsWith("\n"));
});

Deno.test("visibleLength(): code points shown, not UTF-16 units or colour codes", () => {
  assert.equal(visibleLength("plain"), 5);
  assert.equal(visibleLength("naïve"), 5);
  assert.equal(visibleLength("vm-\u{1F600}-x"), 6);
  assert.equal(visibleLength(paint("\u{1F600}", "red", true) + "ab"), 3);
  const table = formatTable(["NAME", "X"], [["\u{1F600}", "1"], ["abc", "2"]]).split("\n");
  assert.equal(table[1], "\u{1F600}     1");
  assert.equal(table[2], "abc   2");
});

Deno.test("formatJson() and formatYamlDocuments() round-trip", () => {
  const docs = [{ kind: "Namespace", metadata: { name: "a" } }, {
    kind: "Secret",
    data: { x: "y".repeat(200) },
  }];
  assert.deepEqual(JSON.parse(formatJson(docs)), docs);
  const parsed = parseAllDocuments(formatYamlDocuments(docs)).map((d) => d.toJS());
  assert.deepEqual(parsed, docs);
});

Deno.test("formatTable(): names from outside cannot move the cursor, set the title or reorder text", () => {
  const hostile = "vm\x1b]0;owned\x07-1\x1b[2J\u009b31m\u202e\nnext";
  const out = formatTable(["NAME", "STATE"], [[hostile, paint("running", "green", true)]]);
  assert.equal(out, "NAME          STATE\nvm-131m next  \x1b[32mrunning\x1b[0m\n");
});
