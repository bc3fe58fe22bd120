import assert from "node:assert/strict";
import { defaultRegistry } from "../workloads/registry.ts";
import type {
  Backend,
  BackendCallOptions,
  BackendCleanup,
  CreatedObject,
  NeutralPlan,
} from "./backend.ts";
import type { VirtworkEvent } from "./events.ts";
import { buildNeutralPlan, completePlan, LABELS, planSkeleton } from "./plan.ts";
import { cleanupRun, PlanRunError, runPlan } from "./run.ts";
import type { ResultSample } from "./results.ts";

const cfg = { enabled: true, vmCount: 1, cpuCores: 1, memory: "1Gi" };

function workloads(names: string[], vmCount = 1) {
  const r = defaultRegistry();
  return names.map((n) => r.get(n, { ...cfg, vmCount }));
}

/**
 * A backend in memory: what a test scripts happens. Pure logic under test is the core's
 * orchestration; a real backend's behaviour is tested against libvirtd and the API test server.
 */
class ScriptedBackend implements Backend {
  readonly target = "libvirt" as const;
  readonly location = "test:///scripted";
  calls: string[] = [];
  /** VMs that never become ready. */
  stuck = new Set<string>();
  /** VMs that fail. */
  failing = new Set<string>();
  /** Throws from create after this many VMs. */
  createFailsAfter: number | undefined;
  /** Aborts this controller during create after this many VMs. */
  abortAfter: { n: number; ac: AbortController } | undefined;
  samples = new Map<string, ResultSample[]>();

  peerAddresses(plan: { peers: { to: string }[] }): Promise<Map<string, string>> {
    this.calls.push("peerAddresses");
    return Promise.resolve(new Map(plan.peers.map((p, i) => [p.to, `10.0.0.${i + 10}`])));
  }
  render(plan: NeutralPlan): unknown[] {
    return plan.vms.map((v) => ({ name: v.name }));
  }
  create(plan: NeutralPlan, o: BackendCallOptions = {}): Promise<CreatedObject[]> {
    this.calls.push("create");
    const out: CreatedObject[] = [];
    for (const [i, v] of plan.vms.entries()) {
      if (this.createFailsAfter === i) {
        o.onEvent?.({
          type: "object",
          kind: "domain",
          name: v.name,
          outcome: "failed",
          error: "no space",
          at: performance.now(),
        });
        return Promise.reject(new Error(`create ${v.name}: no space`));
      }
      if (this.abortAfter?.n === i) {
        this.abortAfter.ac.abort();
        o.onEvent?.({
          type: "note",
          level: "warning",
          reason: "RolledBack",
          message: "in flight; deleted",
          object: `domain/${v.name}`,
          at: performance.now(),
        });
        return Promise.reject(new Error("aborted"));
      }
      o.onEvent?.({ type: "created", vm: v.name, outcome: "created", at: performance.now() });
      out.push({ kind: "domain", name: v.name, outcome: "created" });
    }
    return Promise.resolve(out);
  }
  waitReady(vms: string[], _t: number, o: BackendCallOptions = {}): Promise<string[]> {
    this.calls.push(`waitReady ${vms.join(",")}`);
    for (const vm of vms) {
      if (this.stuck.has(vm)) continue;
      o.onEvent?.({ type: "phase", vm, phase: "DomainRunning", at: performance.now() });
      if (this.failing.has(vm)) {
        o.onEvent?.({ type: "failed", vm, message: "crashed", at: performance.now() });
      } else o.onEvent?.({ type: "ready", vm, at: performance.now() });
    }
    return Promise.resolve(vms.filter((v) => this.stuck.has(v)));
  }
  collectResults(
    vms: string[],
    durationMs: number,
    o: BackendCallOptions = {},
  ): Promise<Map<string, ResultSample>> {
    this.calls.push(`collectResults ${vms.join(",")} ${durationMs}`);
    const out = new Map<string, ResultSample>();
    for (const vm of vms) {
      for (const s of this.samples.get(vm) ?? []) {
        o.onEvent?.({ type: "result", vm, sample: s, at: performance.now() });
        out.set(vm, s);
      }
    }
    return Promise.resolve(out);
  }
  cleanup(runId: string | undefined): Promise<BackendCleanup> {
    this.calls.push(`cleanup ${runId}`);
    return Promise.resolve({
      deleted: { domain: 2, volume: 3 },
      runIds: ["r2", "r1"],
      errors: [{ kind: "volume", name: "v", message: "busy" }],
    });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function recorder() {
  const events: VirtworkEvent[] = [];
  return { events, onEvent: (e: VirtworkEvent) => void events.push(e) };
}

Deno.test("planSkeleton(): names, labels, sizes in bytes and peers by instance", () => {
  const s = planSkeleton(workloads(["cpu", "network", "disk"], 2), "run-1");
  assert.deepEqual(s.vms.map((v) => v.name), [
    "virtwork-cpu-1",
    "virtwork-cpu-2",
    "virtwork-network-server-1",
    "virtwork-network-client-1",
    "virtwork-network-server-2",
    "virtwork-network-client-2",
    "virtwork-disk-1",
    "virtwork-disk-2",
  ]);
  const client = s.vms.find((v) => v.name === "virtwork-network-client-2")!;
  assert.deepEqual(client.labels, {
    [LABELS.APP_NAME]: "virtwork",
    [LABELS.MANAGED_BY]: "virtwork",
    [LABELS.RUN_ID]: "run-1",
    [LABELS.COMPONENT]: "network",
    [LABELS.ROLE]: "client",
  });
  assert.equal(client.memoryBytes, 2 ** 30);
  assert.equal(client.index, 2);
  assert.deepEqual(s.peers, [
    { from: "virtwork-network-client-1", to: "virtwork-network-server-1", ports: [5201] },
    { from: "virtwork-network-client-2", to: "virtwork-network-server-2", ports: [5201] },
  ]);
  const disk = s.vms.find((v) => v.name === "virtwork-disk-1")!;
  assert.equal(disk.dataDisks.length, 1);
  assert.ok(disk.dataDisks[0]!.sizeBytes > 0);
  assert.deepEqual(s.services?.map((x) => x.workload), ["network"]);
});

Deno.test("buildNeutralPlan(): each client's user data names the address its backend gave", async () => {
  const b = new ScriptedBackend();
  const plan = await buildNeutralPlan(
    workloads(["network"], 2),
    { runId: "r", os: "debian" },
    (s) => b.peerAddresses(s),
  );
  const text = (n: string) => JSON.stringify(plan.vms.find((v) => v.name === n)!.userData);
  assert.match(text("virtwork-network-client-1"), /10\.0\.0\.10/);
  assert.match(text("virtwork-network-client-2"), /10\.0\.0\.11/);
  assert.doesNotMatch(text("virtwork-network-client-1"), /10\.0\.0\.11/);
  // Without peers the backend is not asked.
  const b2 = new ScriptedBackend();
  await buildNeutralPlan(workloads(["cpu"]), { runId: "r" }, (s) => b2.peerAddresses(s));
  assert.deepEqual(b2.calls, []);
});

Deno.test("completePlan(): a peer without an address is an error naming both VMs", () => {
  const w = workloads(["network"]);
  assert.throws(
    () => completePlan(planSkeleton(w, "r"), w, new Map()),
    /virtwork-network-client-1 connects to virtwork-network-server-1, but it has no address/,
  );
});

Deno.test("runPlan(): create, wait, results; events in order; latest sample per VM", async () => {
  const b = new ScriptedBackend();
  const plan = await buildNeutralPlan(
    workloads(["cpu", "disk"]),
    { runId: "run-ok" },
    (s) => b.peerAddresses(s),
  );
  const first = { workload: "cpu", t: 1, metrics: { bogo_ops_per_s: 10 } };
  const last = { workload: "cpu", t: 2, metrics: { bogo_ops_per_s: 12.5 } };
  b.samples.set("virtwork-cpu-1", [first, last]);
  const { events, onEvent } = recorder();
  const raw: string[] = [];
  const r = await runPlan(b, plan, {
    scope: "test:///scripted",
    timeoutSeconds: 5,
    resultsAfterMs: 1234,
    onEvent,
    onBackendEvent: (e) => void raw.push(`${e.type} ${"vm" in e ? e.vm : ""}`),
    context: { workloads: { cpu: { vmCount: 1 } } },
  });
  assert.deepEqual(b.calls, [
    "create",
    "waitReady virtwork-cpu-1,virtwork-disk-1",
    "collectResults virtwork-cpu-1,virtwork-disk-1 1234",
  ]);
  assert.equal(r.interrupted, false);
  assert.equal(r.resultsCollected, true);
  assert.deepEqual(raw.filter((x) => x.endsWith("virtwork-cpu-1")), [
    "created virtwork-cpu-1",
    "phase virtwork-cpu-1",
    "ready virtwork-cpu-1",
    "result virtwork-cpu-1",
    "result virtwork-cpu-1",
  ]);
  assert.ok(r.vms.every((v) => v.ready && v.outcome === "created" && v.phase === "DomainRunning"));
  assert.ok(r.vms.every((v) => v.secondsToReady !== undefined && v.secondsToReady >= 0));
  assert.ok("DomainRunning" in r.vms[0]!.phases);
  assert.deepEqual(r.vms[0]!.result, last);
  assert.equal(r.vms[1]!.result, undefined);
  const types = events.map((e) => e.type);
  assert.equal(types[0], "runStarted");
  assert.equal(types.at(-1), "runFinished");
  assert.equal(types.filter((t) => t === "result").length, 2);
  const start = events[0] as Extract<VirtworkEvent, { type: "runStarted" }>;
  assert.deepEqual(start.workloads, [
    { name: "cpu", vmCount: 1, config: { vmCount: 1 } },
    { name: "disk", vmCount: 1 },
  ]);
  assert.equal(start.target, "libvirt");
  const finished = events.filter((e) => e.type === "vmFinished");
  assert.deepEqual(finished.map((e) => e.results), [{ bogo_ops_per_s: 12.5 }, {}]);
  assert.deepEqual(events.at(-1), {
    type: "runFinished",
    runId: "run-ok",
    ok: true,
    interrupted: false,
    latency: {
      targetKind: "libvirt",
      phases: ["DomainDefined", "DomainRunning", "AgentConnected", "CloudInitDone", "FirstResult"],
      clientResolutionMs: 0,
    },
  });
  // A guest that says its workload cannot run makes the run not ok.
  const b2 = new ScriptedBackend();
  b2.samples.set("virtwork-disk-1", [{ workload: "disk", t: 3, metrics: {}, error: "no fio" }]);
  const rec2 = recorder();
  await runPlan(b2, plan, {
    scope: "s",
    timeoutSeconds: 5,
    resultsAfterMs: 1,
    onEvent: rec2.onEvent,
  });
  const end2 = rec2.events.at(-1) as Extract<VirtworkEvent, { type: "runFinished" }>;
  assert.equal(end2.ok, false);
  assert.equal(end2.error, "1 of 2 workloads cannot run: virtwork-disk-1 (no fio)");
  assert.ok(events.some((e) => e.type === "objectCreated" && e.kind === "domain"));
});

Deno.test("runPlan(): a VM not ready by the timeout and one that fails make the run not ok", async () => {
  const b = new ScriptedBackend();
  const plan = await buildNeutralPlan(
    workloads(["cpu"], 3),
    { runId: "run-t" },
    (s) => b.peerAddresses(s),
  );
  b.stuck.add("virtwork-cpu-2");
  b.failing.add("virtwork-cpu-3");
  const { events, onEvent } = recorder();
  const r = await runPlan(b, plan, { scope: "s", timeoutSeconds: 7, onEvent });
  assert.equal(r.timedOut, true);
  assert.equal(r.failedVms, 1);
  assert.equal(r.vms[1]!.error, "not ready after 7s (phase Pending)");
  assert.equal(r.vms[2]!.error, "failed: crashed");
  assert.ok(!b.calls.some((c) => c.startsWith("collectResults")), "no results asked for");
  assert.ok(
    events.some((e) =>
      e.type === "note" && e.reason === "Timeout" && e.object === "domain/virtwork-cpu-2"
    ),
  );
  const end = events.at(-1) as Extract<VirtworkEvent, { type: "runFinished" }>;
  assert.equal(end.ok, false);
  assert.match(end.error!, /1 of 3 VMs failed: virtwork-cpu-3/);
  assert.match(end.error!, /1 of 3 VMs not ready after 7s/);
});

Deno.test("runPlan(): a failing create throws PlanRunError after recording the run's end", async () => {
  const b = new ScriptedBackend();
  const plan = await buildNeutralPlan(
    workloads(["cpu"], 3),
    { runId: "run-f" },
    (s) => b.peerAddresses(s),
  );
  b.createFailsAfter = 1;
  const { events, onEvent } = recorder();
  const err = await runPlan(b, plan, { scope: "s", timeoutSeconds: 5, onEvent }).catch((e) => e);
  assert.ok(err instanceof PlanRunError);
  assert.match(err.message, /no space/);
  assert.equal(err.result.vms[0]!.outcome, "created");
  assert.equal(err.result.vms[1]!.outcome, "failed");
  assert.equal(err.result.vms[2]!.outcome, "skipped");
  assert.ok(!b.calls.some((c) => c.startsWith("waitReady")));
  assert.ok(events.some((e) => e.type === "note" && e.reason === "RunFailed"));
  assert.deepEqual(events.at(-1), {
    type: "runFinished",
    runId: "run-f",
    ok: false,
    interrupted: false,
    error: "create virtwork-cpu-2: no space",
  });
});

Deno.test("runPlan(): an interrupt during create ends the run interrupted, without waiting", async () => {
  const b = new ScriptedBackend();
  const plan = await buildNeutralPlan(
    workloads(["cpu"], 3),
    { runId: "run-i" },
    (s) => b.peerAddresses(s),
  );
  const ac = new AbortController();
  b.abortAfter = { n: 1, ac };
  const { events, onEvent } = recorder();
  const r = await runPlan(b, plan, {
    scope: "s",
    timeoutSeconds: 5,
    resultsAfterMs: 10,
    signal: ac.signal,
    onEvent,
  });
  assert.equal(r.interrupted, true);
  assert.equal(r.createError, "aborted");
  assert.equal(r.waited, false);
  assert.deepEqual(b.calls, ["create"]);
  assert.ok(events.some((e) => e.type === "note" && e.reason === "RolledBack"));
  assert.ok(events.some((e) => e.type === "note" && e.reason === "Interrupted"));
  assert.deepEqual(events.at(-1), {
    type: "runFinished",
    runId: "run-i",
    ok: false,
    interrupted: true,
    latency: {
      targetKind: "libvirt",
      phases: ["DomainDefined", "DomainRunning", "AgentConnected", "CloudInitDone"],
      clientResolutionMs: 0,
    },
  });
});

Deno.test("runPlan(): a subscriber that throws does not fail the run", async () => {
  const b = new ScriptedBackend();
  const plan = await buildNeutralPlan(
    workloads(["cpu"]),
    { runId: "run-s" },
    (s) => b.peerAddresses(s),
  );
  const seen: string[] = [];
  const r = await runPlan(b, plan, {
    scope: "s",
    timeoutSeconds: 5,
    onEvent: () => {
      throw new Error("disk full");
    },
    onProgress: (m) => seen.push(m),
  });
  assert.equal(r.vms[0]!.ready, true);
  assert.ok(seen.includes("audit: disk full"));
});

Deno.test("cleanupRun(): records start and end with counts, run ids and failures", async () => {
  const b = new ScriptedBackend();
  const { events, onEvent } = recorder();
  const r = await cleanupRun(b, { scope: "qemu:///system", runId: "r1", onEvent, cleanupId: "c1" });
  assert.deepEqual(b.calls, ["cleanup r1"]);
  assert.deepEqual(r.deleted, { domain: 2, volume: 3 });
  assert.deepEqual(r.runIds, ["r1", "r2"]);
  assert.deepEqual(events.map((e) => e.type), ["cleanupStarted", "cleaned"]);
  assert.deepEqual(events[1], {
    type: "cleaned",
    cleanupId: "c1",
    scope: "qemu:///system",
    runId: "r1",
    linkedRunIds: ["r1", "r2"],
    deleted: { domain: 2, volume: 3 },
    scopeDeleted: false,
    errors: ["volume v: busy"],
    interrupted: false,
  });
});
