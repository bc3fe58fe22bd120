import assert from "node:assert/strict";
import {
  compareRuns,
  evaluateThresholds,
  formatMs,
  mulberry32,
  parseThreshold,
  ThresholdError,
} from "./compare.ts";

function samples(n: number, seed: number, base: number, spread: number): number[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => Math.round(base + r() * spread));
}

Deno.test("mulberry32 is deterministic per seed and uniform enough", () => {
  const a = mulberry32(1);
  const b = mulberry32(1);
  const xs = Array.from({ length: 10_000 }, () => a());
  assert.deepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => b()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`);
  assert.notEqual(mulberry32(2)(), mulberry32(1)());
});

Deno.test("compareRuns: the same run gives zero deltas with intervals around 0", () => {
  const a = { VMReady: samples(50, 3, 2000, 3000) };
  const c = compareRuns(a, a);
  assert.equal(c.resamples, 2000);
  assert.equal(c.deltas.length, 4);
  for (const d of c.deltas) {
    assert.equal(d.delta, 0);
    assert.ok(d.ci95[0] <= 0 && d.ci95[1] >= 0, `${d.stat} ${d.ci95}`);
  }
});

Deno.test("compareRuns: a clearly slower run B has intervals above 0 containing the shift", () => {
  const a = { VMReady: samples(60, 4, 2000, 1000), VMIRunning: samples(60, 5, 500, 200) };
  const b = { VMReady: a.VMReady.map((x) => x + 5000), VMIRunning: samples(60, 6, 500, 200) };
  const c = compareRuns(a, b);
  const ready = c.deltas.filter((d) => d.phase === "VMReady");
  assert.deepEqual(ready.map((d) => d.stat), ["p50", "p95", "p99", "avg"]);
  for (const d of ready) {
    assert.equal(d.delta, 5000);
    assert.ok(d.ci95[0] > 0, `${d.stat} ${d.ci95}`);
    assert.ok(d.ci95[0] <= 5000 && d.ci95[1] >= 5000, `${d.stat} ${d.ci95}`);
  }
  const median = c.deltas.find((d) => d.phase === "VMIRunning" && d.stat === "p50")!;
  assert.ok(median.ci95[0] < 0 && median.ci95[1] > 0, `same distribution: ${median.ci95}`);
});

Deno.test("compareRuns is reproducible and its seed matters", () => {
  const a = { VMReady: samples(30, 7, 1000, 9000) };
  const b = { VMReady: samples(30, 8, 1000, 9000) };
  assert.deepEqual(compareRuns(a, b), compareRuns(a, b));
  const other = compareRuns(a, b, { seed: 99 });
  assert.notDeepEqual(other.deltas.map((d) => d.ci95), compareRuns(a, b).deltas.map((d) => d.ci95));
  assert.equal(other.seed, 99);
});

Deno.test("compareRuns lists phases one run lacks and refuses absurd resample counts", () => {
  const c = compareRuns({ VMReady: [1], AgentConnected: [] }, { VMReady: [2], FirstResult: [3] });
  assert.deepEqual(c.unpaired, [
    { phase: "AgentConnected", countA: 0, countB: 0 },
    { phase: "FirstResult", countA: 0, countB: 1 },
  ]);
  assert.deepEqual(c.deltas.find((d) => d.stat === "p50"), {
    phase: "VMReady",
    stat: "p50",
    a: 1,
    b: 2,
    delta: 1,
    relative: 1,
    ci95: [1, 1],
  });
  assert.throws(() => compareRuns({}, {}, { resamples: 10 }), RangeError);
});

Deno.test("parseThreshold reads phase, statistic, value and unit", () => {
  assert.deepEqual(parseThreshold("VMReady.p99=60s"), {
    phase: "VMReady",
    stat: "p99",
    maxMs: 60_000,
    text: "VMReady.p99=60s",
  });
  assert.equal(parseThreshold("AgentConnected.max=2m").maxMs, 120_000);
  assert.equal(parseThreshold("VMIRunning.avg=1500ms").maxMs, 1500);
  assert.equal(parseThreshold("VMReady.p50=1.5s").maxMs, 1500);
  assert.equal(parseThreshold("VMReady.count=10").maxMs, 10);
});

Deno.test("parseThreshold says in one line, naming the flag, what is wrong", () => {
  const cases: [string, RegExp][] = [
    ["VMReady", /expected PHASE\.STAT=VALUE/],
    ["VMReady.p98=1s", /statistic must be one of count, min, avg, p50, p95, p99, max, got p98/],
    ["VMReady.p99=60", /needs a unit/],
    ["VMReady.p99=60h", /unit ms, s or m, got "60h"/],
    ["VMReady.p99=-1s", /non-negative number/],
    ["VMReady.count=3s", /count takes a number of VMs/],
    ["x".repeat(300), /longer than 200 characters/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseThreshold(text), (e: unknown) => {
      assert.ok(e instanceof ThresholdError);
      assert.match(e.message, /^threshold "/);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"));
      assert.equal(e.name, "ValidationError");
      return true;
    });
  }
});

Deno.test("evaluateThresholds: holds at the bound, fails over it, and VMs that never got there count as late", () => {
  const s = { VMReady: [1000, 2000, 3000, 4000] };
  const [atBound, over] = evaluateThresholds(
    [parseThreshold("VMReady.max=4s"), parseThreshold("VMReady.p50=2s")],
    s,
    4,
  );
  assert.equal(atBound!.ok, true);
  assert.equal(atBound!.actual, 4000);
  assert.equal(over!.ok, false);
  assert.equal(over!.actual, 2500);
  assert.equal(over!.reason, "VMReady.p50 is 2.50s, over 2.00s");

  // Two of five VMs never became ready: max and avg are never, p50 is the 3rd of five, 3000.
  const [max, p50, avg, min] = evaluateThresholds(
    [
      parseThreshold("VMReady.max=1m"),
      parseThreshold("VMReady.p50=1m"),
      parseThreshold("VMReady.avg=1m"),
      parseThreshold("VMReady.min=1s"),
    ],
    { VMReady: [1000, 2000, 3000] },
    5,
  );
  assert.equal(max!.ok, false);
  assert.equal(max!.actual, Infinity);
  assert.match(max!.reason!, /never, over 60\.0s \(2 of 5 VMs never reached VMReady\)/);
  assert.equal(p50!.ok, true);
  assert.equal(p50!.actual, 3000);
  assert.equal(avg!.ok, false);
  assert.equal(min!.ok, true);

  const [none] = evaluateThresholds([parseThreshold("AgentConnected.p99=1s")], s, 4);
  assert.deepEqual([none!.ok, none!.reason], [false, "no VM reached AgentConnected"]);
});

Deno.test("formatMs", () => {
  assert.equal(formatMs(850), "850ms");
  assert.equal(formatMs(2000), "2.00s");
  assert.equal(formatMs(2975), "2.98s");
  assert.equal(formatMs(0.25), "0.3ms");
  assert.equal(formatMs(12_345), "12.3s");
  assert.equal(formatMs(125_000), "2m05s");
  assert.equal(formatMs(Infinity), "never");
});
