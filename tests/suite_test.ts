/**
 * Rules the test suite itself keeps, checked over every test source so a new file cannot break
 * them unnoticed.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** Every TypeScript file under lib/ and tests/ (test files and their helpers). */
function testSources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(`${ROOT}${dir}`)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) walk(path);
      else if (e.name.endsWith(".ts") && (dir.startsWith("tests") || e.name.endsWith("_test.ts"))) {
        out.push(path);
      }
    }
  };
  walk("lib");
  walk("tests");
  return out.sort();
}

Deno.test("no test changes the process environment (test files share one process under --parallel)", () => {
  const sources = testSources();
  assert.ok(sources.length > 40, `found only ${sources.length} test sources`);
  const offenders: string[] = [];
  const pattern = /Deno\.env\.(set|delete)\s*\(/;
  for (const path of sources) {
    if (path === "tests/suite_test.ts") continue;
    const lines = Deno.readTextFileSync(`${ROOT}${path}`).split("\n");
    lines.forEach((line, i) => {
      if (pattern.test(line)) offenders.push(`${path}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(offenders, [], "pass an env record to the code under test instead");
});
