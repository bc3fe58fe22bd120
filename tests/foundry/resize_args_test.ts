import assert from "node:assert/strict";
import { memoryArg, vcpusArg } from "../../cli/foundry/resize.ts";

Deno.test("resize CLI arguments: --vcpus and --memory (GiB, or MiB with M)", () => {
  assert.equal(vcpusArg("4"), 4);
  for (const bad of ["0", "-1", "1.5", "x", ""]) {
    assert.throws(() => vcpusArg(bad), (e: Error & { exitCode?: number }) => e.exitCode === 2);
  }
  assert.equal(memoryArg("1.5"), 1.5);
  assert.equal(memoryArg("2G"), 2);
  assert.equal(memoryArg("1536M"), 1.5);
  assert.equal(memoryArg("512MiB"), 0.5);
  for (const bad of ["0", "-1", "1.00001", "2T", "x"]) {
    assert.throws(() => memoryArg(bad), (e: Error & { exitCode?: number }) => e.exitCode === 2);
  }
});
