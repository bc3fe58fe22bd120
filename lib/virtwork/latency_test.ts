import assert from "node:assert/strict";
import {
  choose,
  LatencyRecorder,
  parseServerTime,
  phaseName,
  quantile,
  stats,
  summarize,
} from "./latency.ts";

// Figures numpy 2.4 gives for np.percentile(a, q) (default method "linear") and np.mean(a).
const NUMPY_CASES: { samples: number[]; p50: number; p95: number; p99: number; avg: number }[] = [
  {
    samples: [3200, 1500, 9000, 2750.5, 4100, 4100, 12000, 800, 6600, 5000, 7300],
    p50: 4100,
    p95: 10500,
    p99: 11700,
    avg: 5122.772727272727,
  },
  {
    samples: Array.from({ length: 100 }, (_, i) => i + 1),
    p50: 50.5,
    p95: 95.05,
    p99: 99.01,
    avg: 50.5,
  },
  { samples: [42], p50: 42, p95: 42, p99: 42, avg: 42 },
  { samples: [2000, 1000], p50: 1500, p95: 1950, p99: 1990, avg: 1500 },
];

/** A reference written apart from quantile(): R's type 7 on 1-based ranks. */
function referenceType7(samples: number[], p: number): number {
  const x = [...samples].sort((a, b) => a - b);
  const n = x.length;
  const m = 1 - p;
  const j = Math.floor(n * p + m); // 1-based rank below
  const g = n * p + m - j;
  const xj = x[j - 1]!;
  const xj1 = x[Math.min(j, n - 1)]!;
  return (1 - g) * xj + g * xj1;
}

Deno.test("quantiles match numpy's default method on known samples", () => {
  for (const c of NUMPY_CASES) {
    const s = stats(c.samples);
    assert.equal(s.count, c.samples.length);
    assert.equal(s.min, Math.min(...c.samples));
    assert.equal(s.max, Math.max(...c.samples));
    for (const k of ["p50", "p95", "p99", "avg"] as const) {
      assert.ok(Math.abs(s[k]! - c[k]) < 1e-3, `${k} of ${c.samples.length}: ${s[k]} vs ${c[k]}`);
    }
  }
});

Deno.test("quantile agrees with an independent type-7 reference on pseudo-random samples", () => {
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let n = 1; n <= 60; n++) {
    const samples = Array.from({ length: n }, () => Math.round(next() * 100_000) / 10);
    const sorted = [...samples].sort((a, b) => a - b);
    for (const p of [0, 0.01, 0.5, 0.9, 0.95, 0.99, 1]) {
      const got = quantile(sorted, p);
      const want = referenceType7(samples, p);
      assert.ok(Math.abs(got - want) < 1e-9, `n=${n} p=${p}: ${got} vs ${want}`);
    }
  }
});

Deno.test("quantile rejects no samples and a probability outside [0, 1]", () => {
  assert.throws(() => quantile([], 0.5), RangeError);
  assert.throws(() => quantile([1], 1.5), RangeError);
  assert.throws(() => quantile([1], NaN), RangeError);
});

Deno.test("summarize counts VMs that never reached a phase apart, and keeps unknown phases", () => {
  const s = summarize([
    { phases: { VMReady: 1000, Weird: 5 } },
    { phases: { VMReady: 3000 } },
    { phases: {} },
  ], ["VMReady", "AgentConnected"]);
  assert.deepEqual(Object.keys(s), ["VMReady", "AgentConnected", "Weird"]);
  assert.equal(s.VMReady!.count, 2);
  assert.equal(s.VMReady!.missing, 1);
  assert.equal(s.VMReady!.p50, 2000);
  assert.deepEqual(s.AgentConnected, {
    count: 0,
    min: null,
    avg: null,
    p50: null,
    p95: null,
    p99: null,
    max: null,
    missing: 3,
  });
  assert.equal(s.Weird!.missing, 2);
});

Deno.test("parseServerTime reads RFC 3339 with its precision and rejects the rest", () => {
  assert.deepEqual(parseServerTime("2026-12-02T10:00:03Z"), {
    ms: Date.UTC(2026, 11, 2, 10, 0, 3),
    precisionMs: 1000,
  });
  assert.deepEqual(parseServerTime("2026-12-02T10:00:03.25+01:00"), {
    ms: Date.UTC(2026, 11, 2, 9, 0, 3, 250),
    precisionMs: 10,
  });
  assert.equal(
    parseServerTime("2026-12-02T10:00:03.123456789Z")?.ms,
    Date.UTC(2026, 11, 2, 10, 0, 3, 123),
  );
  assert.equal(parseServerTime("2026-12-02T10:00:03.123456789Z")?.precisionMs, 1);
  for (
    const bad of ["", "yesterday", "2026-12-02 10:00", "2026-13-02T10:00:00Z", "x".repeat(100)]
  ) {
    assert.equal(parseServerTime(bad), undefined, bad);
  }
});

Deno.test("phaseName maps KubeVirt's bare VMI phases and keeps the rest", () => {
  assert.equal(phaseName("kubevirt", "Running"), "VMIRunning");
  assert.equal(phaseName("kubevirt", "Scheduling"), "VMIScheduling");
  assert.equal(phaseName("kubevirt", "VMReady"), "VMReady");
  assert.equal(phaseName("libvirt", "Running"), "Running");
});

const T0 = "2026-12-02T10:00:00Z";
const at = (s: number) => `2026-12-02T10:00:${String(s).padStart(2, "0")}Z`;

Deno.test("a watching client's receipt times win over whole-second server times", () => {
  const r = new LatencyRecorder("kubevirt");
  r.created("a", 10_000, T0);
  r.phase("a", "VMICreated", 10_120.5, at(0));
  r.phase("a", "Pending", 10_300, at(0));
  r.phase("a", "Running", 12_750, at(2));
  r.phase("a", "VMReady", 13_100, at(3));
  r.phase("a", "Running", 99_999); // a second sighting does not count
  const [a] = r.vms();
  assert.deepEqual(a!.phases, {
    VMICreated: 120.5,
    VMIPending: 300,
    VMIRunning: 2750,
    VMReady: 3100,
  });
  assert.deepEqual(a!.sources, {
    VMICreated: "client",
    VMIPending: "client",
    VMIRunning: "client",
    VMReady: "client",
  });
  assert.deepEqual(a!.observed.VMReady, {
    clientMs: 3100,
    serverTime: at(3),
    serverMs: 3000,
    serverPrecisionMs: 1000,
  });
  assert.equal(a!.createdServerTime, T0);
});

Deno.test("a polling client (coarser than a second) takes the server's figures", () => {
  const r = new LatencyRecorder("kubevirt", { clientResolutionMs: 15_000 });
  r.created("a", 0, T0);
  r.phase("a", "VMIRunning", 15_004, at(2));
  r.phase("a", "VMReady", 15_006, at(4));
  r.phase("a", "AgentConnected", 30_000); // no server time: the client's is all there is
  const [a] = r.vms();
  assert.deepEqual(a!.phases, { VMIRunning: 2000, VMReady: 4000, AgentConnected: 30_000 });
  assert.deepEqual(a!.sources, {
    VMIRunning: "server",
    VMReady: "server",
    AgentConnected: "client",
  });
});

Deno.test("an inconsistent figure falls back to the other source, or is clamped to its predecessor", () => {
  // VMReady's receipt came before VMIRunning's (two watches, delivered out of order): the
  // server's figure is consistent, so it is taken.
  const out = choose("kubevirt", {
    VMIRunning: { clientMs: 2500, serverMs: 2000, serverPrecisionMs: 1000 },
    VMReady: { clientMs: 2400, serverMs: 3000, serverPrecisionMs: 1000 },
    // Before its predecessor in both clocks: clamped to VMReady's predecessor, VMIRunning.
    AgentConnected: { clientMs: 1000, serverMs: 1000, serverPrecisionMs: 1000 },
  });
  assert.deepEqual(out.phases, { VMIRunning: 2500, VMReady: 3000, AgentConnected: 2500 });
  assert.deepEqual(out.sources, {
    VMIRunning: "client",
    VMReady: "server",
    AgentConnected: "clamped",
  });
  // Never negative: a phase received before the create returned is clamped to 0.
  const neg = choose("libvirt", { DomainDefined: { clientMs: -3 } });
  assert.deepEqual(neg, { phases: { DomainDefined: 0 }, sources: { DomainDefined: "clamped" } });
});

Deno.test("a predecessor that was never seen passes its own figure on", () => {
  const out = choose("kubevirt", {
    VMIPending: { clientMs: 500 },
    // VMIScheduling and VMIScheduled were missed by a poll; VMIRunning still follows VMIPending.
    VMIRunning: { clientMs: 400 },
  });
  assert.deepEqual(out.phases, { VMIPending: 500, VMIRunning: 500 });
  assert.equal(out.sources.VMIRunning, "clamped");
});

Deno.test("libvirt phases, results and events before created are measured from the creation", () => {
  const r = new LatencyRecorder("libvirt");
  r.record({ type: "phase", vm: "d", phase: "DomainDefined", at: 5 });
  r.record({ type: "created", vm: "d", at: 4 });
  r.record({ type: "phase", vm: "d", phase: "DomainRunning", at: 1004 });
  r.record({ type: "phase", vm: "d", phase: "AgentConnected", at: 60_004 });
  r.record({ type: "phase", vm: "d", phase: "CloudInitDone", at: 90_004 });
  r.record({ type: "result", vm: "d", at: 120_004 });
  r.record({ type: "result", vm: "d", at: 150_004 });
  r.record({ type: "ready", vm: "d", at: 90_005 });
  r.record({ type: "phase", vm: "never-created", phase: "DomainDefined", at: 1 });
  const vms = r.vms();
  assert.equal(vms.length, 1);
  assert.deepEqual(vms[0]!.phases, {
    DomainDefined: 1,
    DomainRunning: 1000,
    AgentConnected: 60_000,
    CloudInitDone: 90_000,
    FirstResult: 120_000,
  });
  assert.ok(Object.values(vms[0]!.sources).every((s) => s === "client"));
});

Deno.test("the recorder refuses a negative client resolution", () => {
  assert.throws(() => new LatencyRecorder("kubevirt", { clientResolutionMs: -1 }), RangeError);
});
