import assert from "node:assert/strict";
import { RateLimiter, sleep } from "./rate_limit.ts";

Deno.test("RateLimiter: a full bucket lets burst callers through at once", () => {
  const now = 0;
  const l = new RateLimiter(10, 3, () => now);
  assert.deepEqual([l.reserve(), l.reserve(), l.reserve()], [0, 0, 0]);
  assert.equal(l.reserve(), 100, "the fourth waits one token at 10/s");
  assert.equal(l.reserve(), 200, "reservations queue in order");
});

Deno.test("RateLimiter: tokens refill at qps up to burst", () => {
  let now = 0;
  const l = new RateLimiter(20, 2, () => now);
  l.reserve();
  l.reserve();
  now = 50; // one token back
  assert.equal(l.reserve(), 0);
  assert.equal(l.reserve(), 50);
  now = 10_000; // long idle: capped at burst
  assert.deepEqual([l.reserve(), l.reserve(), l.reserve() > 0], [0, 0, true]);
});

Deno.test("RateLimiter rejects bad settings; acquire() and sleep() honour an abort", async () => {
  assert.throws(() => new RateLimiter(0, 1), RangeError);
  assert.throws(() => new RateLimiter(1, 0), RangeError);
  const l = new RateLimiter(1, 1);
  await l.acquire();
  // The next token is a second away; an acquire that ignored the abort would resolve then.
  const ctl = new AbortController();
  const waiting = l.acquire(ctl.signal);
  ctl.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
  await assert.rejects(() => sleep(10, AbortSignal.abort(new Error("x"))), /x/);
});
