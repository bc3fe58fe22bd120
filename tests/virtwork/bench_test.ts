import assert from "node:assert/strict";
import { benchVirtwork } from "../../tasks/bench_virtwork.ts";

Deno.test("bench: 200 VMs with 20 ms latency complete within the 20/20 rate limit", async () => {
  const r = await benchVirtwork({ vms: 200, latencyMs: 20, readyMs: 300, qps: 20, burst: 20 });
  console.log(`200 VMs: wall time ${r.wallSeconds.toFixed(2)} s, ${r.requests} requests`);
  assert.equal(r.vmsCreated, 200);
  assert.equal(r.vmsReady, 200);
  // 201 creates at 20/s after a burst of 20 cannot finish in less than ~9 s: the limit held.
  assert.ok(r.wallSeconds >= 8.5, `took ${r.wallSeconds} s`);
  assert.ok(r.maxInFlight <= 20, `max in flight ${r.maxInFlight}`);
});
