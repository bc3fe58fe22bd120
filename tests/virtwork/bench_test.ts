/**
 * The scale path of `virtwork run` as the benchmark drives it (the CLI as its own process against
 * the API test server), at a size a test can afford: every VM ready and measured honestly, a
 * handful of lists, one watch per kind, the CLI's memory bounded, progress shown when piped; and
 * the client's rate limit holds. Not timed beyond the floor the rate limit sets.
 */
import assert from "node:assert/strict";
import {
  benchVirtwork,
  figureLines,
  readyTimeOf,
  workloadsOf,
} from "../../tasks/bench_virtwork.ts";

Deno.test("bench: 200 VMs at a high QPS: all ready and never early, 2 lists, one watch per kind, memory bounded, progress piped", async () => {
  const r = await benchVirtwork({
    vms: 200,
    latencyMs: 0,
    readyMs: 300,
    readySpreadMs: 1000,
    qps: 1000,
    burst: 100,
  });
  console.log(figureLines(r).join("\n"));
  assert.equal(r.exitCode, 0, r.stderrTail ?? "");
  assert.equal(r.vmsReady, 200);
  // Each VM's Secret and the VM itself, and the Namespace.
  assert.equal(r.requests.create, 401);
  assert.equal(r.requests.get, 0);
  assert.ok(r.requests.list <= 4, `${r.requests.list} lists`);
  // One per kind (VMIs and VMs): the test server does not drop watches.
  assert.equal(r.requests.watch, 2);
  // Never early is logic (the clock starts when the create leaves); how late depends on how busy
  // the machine is (a burst of 400 requests on a shared CPU), so it is printed, not asserted.
  assert.equal(r.readyEarly, 0, "never ready before the server made it so");
  // Generous: the process itself takes ~100 MiB; 1000 VMs took ~340 MiB here.
  assert.ok(r.memorySamples > 0, "memory was sampled");
  assert.ok(r.peakRssMiB > 20 && r.peakRssMiB < 1024, `peak RSS ${r.peakRssMiB} MiB`);
  // Piped stderr: one line per VM created and one per VM ready.
  assert.equal(r.progressLines, 400);
  assert.ok(r.lastReadyToEndSeconds >= 0);
});

Deno.test("bench: the client's rate limit holds (the wall time is never under the QPS floor)", async () => {
  const r = await benchVirtwork({
    vms: 40,
    latencyMs: 5,
    readyMs: 100,
    readySpreadMs: 100,
    qps: 20,
    burst: 5,
  });
  assert.equal(r.exitCode, 0, r.stderrTail ?? "");
  assert.equal(r.rateLimited, 81 + 4);
  assert.equal(r.floorSeconds, (85 - 5) / 20);
  // Allow the millisecond clocks' rounding.
  assert.ok(r.wallSeconds >= r.floorSeconds - 0.05, `${r.wallSeconds} s < ${r.floorSeconds} s`);
  // As many creates as the burst (virtwork's workers), and the readiness watch's two lists.
  assert.ok(r.maxInFlight <= 5 + 2, `max in flight ${r.maxInFlight}`);
});

Deno.test("bench helpers: ready times are fixed by name within their spread; VMs spread over workloads", () => {
  const t = readyTimeOf("virtwork-cpu-7", 500, 1000);
  assert.equal(readyTimeOf("virtwork-cpu-7", 500, 1000), t);
  assert.ok(t >= 500 && t <= 1500);
  assert.equal(readyTimeOf("x", 500, 0), 500);
  assert.deepEqual(workloadsOf(200), ["cpu"]);
  assert.deepEqual(workloadsOf(1000), ["cpu", "memory"]);
  assert.deepEqual(workloadsOf(1500), ["cpu", "memory", "disk"]);
  assert.throws(() => workloadsOf(1001), RangeError);
  assert.throws(() => workloadsOf(0), RangeError);
});
