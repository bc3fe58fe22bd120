/**
 * Watch-based readiness (lib/kubevirt/readiness.ts) against the API test server with known per-VM
 * ready times: every VM's VMReady is never earlier than the truth and within 1 s of it, the wait
 * ends right after the last Ready, one list and one watch per kind; a Failed VMI fails its VM at
 * once; the timeout returns what is pending.
 */
import assert from "node:assert/strict";
import { watchReadiness } from "../../lib/kubevirt/readiness.ts";
import type { HttpWatchApi } from "../../lib/kubevirt/watch.ts";
import type { BackendEvent } from "../../lib/virtwork/backend.ts";
import { LatencyRecorder, summarize } from "../../lib/virtwork/latency.ts";
import type { K8sTestServer, K8sTestServerOptions } from "./k8s_server.ts";
import { freshStats, vmManifest, withWatchServer } from "./_watch_fixture.ts";

const NS = "vw-ready";
const SELECTOR = "virtwork/run-id=r1";

const vm = (name: string) => vmManifest(name, NS, "r1");
const withServer = (
  opts: K8sTestServerOptions,
  fn: (s: K8sTestServer, api: HttpWatchApi) => Promise<void>,
) => withWatchServer(NS, opts, fn);
const fresh = freshStats;

Deno.test("VMReady from watches: within 1 s of each VM's known ready time, the wait ends at the last", async () => {
  const names = Array.from({ length: 8 }, (_, i) => `vw-cpu-${i}`);
  const truth = new Map(names.map((n, i) => [n, 300 + 250 * i]));
  await withServer({ readyAfterMs: (n) => truth.get(n) }, async (server, api) => {
    const rec = new LatencyRecorder("kubevirt");
    const events: BackendEvent[] = [];
    for (const n of names) {
      const at = performance.now();
      const stored = server.seed("virtualmachines", vm(n));
      rec.created(n, at, stored.metadata.creationTimestamp);
    }
    const stats = { vmis: fresh(), vms: fresh() };
    const pending = await watchReadiness(api, NS, SELECTOR, names, 60_000, {
      stats,
      onEvent: (e) => {
        events.push(e);
        rec.record(e);
      },
    });
    const ended = performance.now();
    assert.deepEqual(pending, []);
    const ready = events.filter((e) => e.type === "ready");
    assert.deepEqual(ready.map((e) => "vm" in e && e.vm).sort(), [...names].sort());
    const lastReady = Math.max(...ready.map((e) => e.at));
    assert.ok(ended - lastReady < 2000, `ended ${ended - lastReady} ms after the last Ready`);

    const vms = rec.vms();
    for (const v of vms) {
      const want = truth.get(v.name)!;
      const got = v.phases.VMReady!;
      assert.ok(got >= want, `${v.name}: ${got} ms before its ready time ${want} ms`);
      assert.ok(got - want < 1000, `${v.name}: ${got} ms, truth ${want} ms`);
      assert.equal(v.sources.VMReady, "client");
      // The server's own figure (its clock, ms precision on the test server) agrees too.
      assert.ok(Math.abs(v.observed.VMReady!.serverMs! - want) < 1000, JSON.stringify(v.observed));
      assert.deepEqual(Object.keys(v.phases), [
        "VMICreated",
        "VMIScheduling",
        "VMIRunning",
        "VMReady",
      ]);
    }
    assert.equal(summarize(vms, ["VMReady"]).VMReady!.count, names.length);
    // One list and one watch per kind: no polling.
    assert.deepEqual(stats.vmis, { lists: 1, watches: 1, resumes: 0, relists: 0 });
    assert.deepEqual(stats.vms, { lists: 1, watches: 1, resumes: 0, relists: 0 });
    const gets = server.requestsMatching("GET", /\/virtualmachine(instance)?s$/);
    assert.equal(gets.filter((r) => !r.query.includes("watch=1")).length, 2);
    assert.equal(gets.filter((r) => r.query.includes("watch=1")).length, 2);
  });
});

Deno.test("a Failed VMI fails its VM at once; the others still become ready", async () => {
  await withServer(
    { readyAfterMs: (n) => (n === "bad" ? undefined : 100) },
    async (server, api) => {
      for (const n of ["good", "bad"]) server.seed("virtualmachines", vm(n));
      const events: BackendEvent[] = [];
      const waiting = watchReadiness(api, NS, SELECTOR, ["good", "bad"], 60_000, {
        onEvent: (e) => events.push(e),
      });
      await new Promise((r) => setTimeout(r, 50));
      server.failVmi(NS, "bad", "Unschedulable");
      assert.deepEqual(await waiting, []);
      const failed = events.find((e) => e.type === "failed");
      assert.ok(failed && failed.type === "failed" && failed.vm === "bad", JSON.stringify(events));
      assert.match(failed.message, /VMI phase Failed/);
      assert.ok(events.some((e) => e.type === "ready" && e.vm === "good"));
    },
  );
});

Deno.test("the timeout and an abort return the VMs still pending, and end the watches", async () => {
  await withServer({ readyAfterMs: () => undefined }, async (server, api) => {
    server.seed("virtualmachines", vm("slow"));
    assert.deepEqual(
      await watchReadiness(api, NS, SELECTOR, ["slow"], 200, { onEvent: () => {} }),
      ["slow"],
    );
    const ac = new AbortController();
    const waiting = watchReadiness(api, NS, SELECTOR, ["slow"], 60_000, {
      onEvent: () => {},
      signal: ac.signal,
    });
    setTimeout(() => ac.abort(), 50);
    assert.deepEqual(await waiting, ["slow"]);
    // Give the server a moment to see the closed streams.
    for (let i = 0; i < 50 && server.openWatches > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(server.openWatches, 0);
  });
});
