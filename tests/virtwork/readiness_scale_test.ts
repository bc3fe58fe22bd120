/**
 * Watch-based readiness at scale: 1000 VMs on the API test server become ready over 5 s; the
 * wait follows them with one list and one watch per kind, ends right after the last Ready, and
 * keeps memory bounded (the figures are printed for the record).
 */
import assert from "node:assert/strict";
import { watchReadiness } from "../../lib/kubevirt/readiness.ts";
import { HttpWatchApi } from "../../lib/kubevirt/watch.ts";
import { LatencyRecorder, summarize } from "../../lib/virtwork/latency.ts";
import { K8sTestServer } from "./k8s_server.ts";
import { freshStats, kubeConfigOf, vmManifest } from "./_watch_fixture.ts";

const NS = "vw-scale";
const N = 1000;

Deno.test("1000 VMs: one list and one watch per kind, every VM measured, memory bounded", async () => {
  // Known ready times spread over 0.5-5.5 s, in a fixed pseudo-random order.
  const truth = new Map<string, number>();
  for (let i = 0; i < N; i++) truth.set(`vw-${i}`, 500 + ((i * 7919) % N) * 5);
  const server = K8sTestServer.start({ readyAfterMs: (n) => truth.get(n) });
  try {
    server.seed("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
    const kc = kubeConfigOf(server);
    const rec = new LatencyRecorder("kubevirt");
    const before = Deno.memoryUsage();
    for (const [name] of truth) {
      const at = performance.now();
      const s = server.seed("virtualmachines", vmManifest(name, NS, "scale"));
      rec.created(name, at, s.metadata.creationTimestamp);
    }
    const stats = { vmis: freshStats(), vms: freshStats() };
    let lastReady = 0;
    let peakHeap = before.heapUsed;
    const pending = await watchReadiness(
      new HttpWatchApi(kc),
      NS,
      "virtwork/run-id=scale",
      [...truth.keys()],
      120_000,
      {
        stats,
        onEvent: (e) => {
          rec.record(e);
          if (e.type === "ready") {
            lastReady = e.at;
            peakHeap = Math.max(peakHeap, Deno.memoryUsage().heapUsed);
          }
        },
      },
    );
    const ended = performance.now();
    assert.deepEqual(pending, []);
    const vms = rec.vms();
    let late = 0;
    for (const v of vms) {
      const want = truth.get(v.name)!;
      assert.ok(v.phases.VMReady! >= want, `${v.name} early: ${v.phases.VMReady} < ${want}`);
      if (v.phases.VMReady! - want >= 1000) late++;
    }
    const s = summarize(vms, ["VMReady"]).VMReady!;
    const growthMiB = (peakHeap - before.heapUsed) / 2 ** 20;
    console.log(
      `1000 VMs: VMReady p50 ${s.p50} ms p99 ${s.p99} ms max ${s.max} ms; ` +
        `${late} over 1 s late; ended ${(ended - lastReady).toFixed(0)} ms after the last Ready; ` +
        `heap growth ${growthMiB.toFixed(1)} MiB, rss ${
          (Deno.memoryUsage().rss / 2 ** 20).toFixed(0)
        } MiB; ` +
        `VMI ${JSON.stringify(stats.vmis)} VM ${JSON.stringify(stats.vms)}`,
    );
    assert.equal(s.count, N);
    assert.deepEqual(stats.vmis, { lists: 1, watches: 1, resumes: 0, relists: 0 });
    assert.deepEqual(stats.vms, { lists: 1, watches: 1, resumes: 0, relists: 0 });
    assert.ok(growthMiB < 256, `heap grew ${growthMiB} MiB`);
  } finally {
    await server.close();
  }
});
