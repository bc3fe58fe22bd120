import assert from "node:assert/strict";
import {
  formatSelector,
  LabelSelectorError,
  matchesSelector,
  parseLabelSelector,
  selectorFromLabels,
} from "./selector.ts";

const web = { role: "web", env: "prod", tier: "3" };
const db = { role: "db", env: "dev" };
const bare = {};

function which(text: string | string[]): string[] {
  const sel = parseLabelSelector(text);
  return Object.entries({ web, db, bare }).filter(([, l]) => matchesSelector(sel, l)).map(([n]) =>
    n
  );
}

Deno.test("parseLabelSelector(): every operator of the Kubernetes grammar matches as kubectl's", () => {
  assert.deepEqual(which("role=web"), ["web"]);
  assert.deepEqual(which("role==web"), ["web"]);
  assert.deepEqual(which("role!=web"), ["db", "bare"], "!= also matches objects without the key");
  assert.deepEqual(which("role in (web,db)"), ["web", "db"]);
  assert.deepEqual(which("role notin (web)"), ["db", "bare"]);
  assert.deepEqual(which("role"), ["web", "db"]);
  assert.deepEqual(which("!role"), ["bare"]);
  assert.deepEqual(which("tier>2"), ["web"]);
  assert.deepEqual(which("tier<2"), []);
  assert.deepEqual(which("role,env=dev"), ["db"], "a comma is AND");
  assert.deepEqual(which(["role", "env=prod"]), ["web"], "repeated -l flags are AND too");
  assert.deepEqual(which(""), ["web", "db", "bare"], "an empty selector selects everything");
  assert.deepEqual(which("  role  in ( web , db ) , env != dev "), ["web"]);
  assert.deepEqual(which("example.com/team=x"), []);
});

Deno.test("parseLabelSelector(): empty values, as Kubernetes allows them", () => {
  const sel = parseLabelSelector("a=,b in (x,)");
  assert.deepEqual(sel.requirements, [
    { key: "a", operator: "=", values: [""] },
    { key: "b", operator: "in", values: ["x", ""] },
  ]);
  assert.equal(matchesSelector(sel, { a: "", b: "" }), true);
  assert.equal(matchesSelector(sel, { b: "x" }), false);
});

Deno.test("parseLabelSelector(): malformed selectors are one-line errors naming what is wrong", () => {
  const cases: [string, RegExp][] = [
    ["role=web,", /cannot end with ','/],
    [",role", /expected a label key, found ',' at position 1/],
    ["role in web", /expected '\(' after 'in', found 'web'/],
    ["role in ()", /'in' needs at least one value/],
    ["role in (a b)", /expected ',' or '\)' in the values of 'in', found 'b'/],
    ["role in (a", /found the end/],
    ["role=we b", /expected ',' found 'b'/],
    ["-bad=x", /key '-bad': the name must be at most 63/],
    [`${"k".repeat(64)}=x`, /the name must be at most 63/],
    ["Example.com/x=y", /the prefix must be a DNS subdomain/],
    ["/x=y", /the prefix must be a DNS subdomain/],
    ["role=-web", /value '-web': must be empty or at most 63/],
    [`role=${"v".repeat(64)}`, /value 'v{64}'/],
    ["tier>two", /'>' needs an integer value/],
    ["role ~ web", /expected one of '=', '==', '!=', 'in', 'notin'/],
    ["role=a\nb", /control character/],
    ["!", /expected a label key, found the end/],
    ["a=b=c", /expected ',' found '='/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseLabelSelector(text), (e: unknown) => {
      assert.ok(e instanceof LabelSelectorError, text);
      assert.equal(e.name, "LabelSelectorError");
      assert.match(e.message, /^Invalid label selector '/, text);
      assert.match(e.message, re, text);
      assert.equal(e.message.includes("\n"), false, `one line: ${JSON.stringify(text)}`);
      return true;
    });
  }
});

Deno.test("parseLabelSelector(): very long input is refused before it is parsed", () => {
  assert.throws(() => parseLabelSelector("a=b,".repeat(2000) + "a"), /longer than 4096/);
});

Deno.test("formatSelector() prints what parseLabelSelector() reads back the same", () => {
  for (const text of ["a=b,c!=d", "e in (x,y),f notin (z)", "g,!h", "i>1,j<-2", ""]) {
    const sel = parseLabelSelector(text);
    assert.deepEqual(parseLabelSelector(formatSelector(sel)), sel, text);
  }
  assert.equal(formatSelector(selectorFromLabels({ a: "1", b: "2" })), "a=1,b=2");
});
