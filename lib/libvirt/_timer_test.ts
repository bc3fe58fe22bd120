import assert from "node:assert/strict";
import { after, GRACE_MS } from "./_timer.ts";

Deno.test("after fires a short timer once, from the first stage", async () => {
  let fired = 0;
  await new Promise<void>((resolve) => after(5, () => (fired++, resolve())));
  assert.equal(fired, 1);
});

Deno.test("after fires a timer longer than the grace period, through setTimeout", async () => {
  const t0 = performance.now();
  await new Promise<void>((resolve) => after(GRACE_MS + 30, resolve));
  // It never fires early: the two stages add up to at least the time asked for.
  assert.ok(performance.now() - t0 >= GRACE_MS + 29);
});

Deno.test("a cancelled timer never fires, in either stage", async () => {
  let fired = 0;
  const early = after(10, () => fired++);
  early();
  const late = after(GRACE_MS + 10, () => fired++);
  await new Promise<void>((resolve) => after(GRACE_MS + 5, resolve));
  late(); // now in its setTimeout stage
  await new Promise<void>((resolve) => after(GRACE_MS + 40, resolve));
  assert.equal(fired, 0);
});
