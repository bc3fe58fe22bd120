/**
 * virtwork run's latencies end to end against the API test server with known per-VM ready times:
 * `--report` holds every VM's VMReady within 1 s of the truth and quantiles matching a reference
 * computation, the run prints its latency table, readiness came from watches (a handful of
 * lists), the audit database keeps the samples so `virtwork report` renders the same figures,
 * and `--threshold` gates exit 6 (a bad gate exits 2 before anything is created).
 */
import assert from "node:assert/strict";
import { main } from "../../cli/virtwork.ts";
import type { VirtworkDeps } from "../../cli/virtwork/_shared.ts";
import { startCluster } from "./_helpers.ts";
import type { K8sTestServerOptions } from "./k8s_server.ts";

async function virtwork(args: string[], deps: VirtworkDeps) {
  let out = "";
  let err = "";
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s) }, {
    client: { baseBackoffMs: 2, maxBackoffMs: 20 },
    ...deps,
  });
  return { code, out, err };
}

async function withCluster(
  opts: K8sTestServerOptions,
  fn: (
    c: Awaited<ReturnType<typeof startCluster>>,
    env: Record<string, string>,
    dir: string,
  ) => Promise<void>,
) {
  const c = await startCluster(opts);
  const dir = await Deno.makeTempDir({ prefix: "virtwork_latency_cli_" });
  const kubeconfig = `${dir}/kubeconfig`;
  await Deno.writeTextFile(kubeconfig, c.server.kubeconfig());
  try {
    await fn(c, {
      KUBECONFIG: kubeconfig,
      HOME: "/nonexistent",
      VIRTWORK_AUDIT_DB: `${dir}/audit.db`,
    }, dir);
  } finally {
    await c.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** numpy's default percentile, written apart from lib's: R type 7 on 1-based ranks. */
function reference(xs: number[], p: number): number {
  const x = [...xs].sort((a, b) => a - b);
  const h = (x.length - 1) * p + 1;
  const lo = Math.floor(h);
  return x[lo - 1]! + (h - lo) * ((x[Math.min(lo, x.length - 1)] ?? x[lo - 1]!) - x[lo - 1]!);
}

Deno.test("run --report: VMReady within 1 s of each VM's ready time, from watches; report renders it again", async () => {
  const truth: Record<string, number> = {
    "virtwork-cpu-1": 400,
    "virtwork-cpu-2": 1300,
    "virtwork-cpu-3": 2200,
    "virtwork-memory-1": 900,
    "virtwork-memory-2": 3100,
    "virtwork-memory-3": 1800,
  };
  await withCluster({ readyAfterMs: (n) => truth[n] }, async ({ server }, env, dir) => {
    const file = `${dir}/report.json`;
    const r = await virtwork(
      [
        "run",
        "--workloads",
        "cpu,memory",
        "--vm-count",
        "3",
        "--report",
        file,
        "--threshold",
        "VMReady.p99=60s",
        "--threshold",
        "VMReady.count=100",
      ],
      { env },
    );
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(await Deno.readTextFile(file));
    assert.equal(doc.target, "kubevirt");
    assert.match(doc.quantileMethod, /numpy 'linear'/);
    const ready = doc.vms.filter((v: { ready: boolean }) => v.ready);
    const samples: number[] = [];
    // The truth is when the server made each VM and turned its VMI Ready (both in ms): on a
    // loaded machine the server's own timers fire late, which is not ours to measure.
    const made = new Map(
      server.objects("virtualmachines").map((o) => [
        o.metadata.name as string,
        Date.parse(o.metadata.creationTimestamp as string),
      ]),
    );
    const readyAt = new Map(
      server.objects("virtualmachineinstances").map((o) => {
        const c = (o.status?.conditions ?? []) as { type: string; lastTransitionTime?: string }[];
        const r = c.find((x) => x.type === "Ready");
        return [o.metadata.name as string, Date.parse(r?.lastTransitionTime ?? "")];
      }),
    );
    for (const v of doc.vms) {
      const want = readyAt.get(v.name)! - made.get(v.name)!;
      assert.ok(want >= truth[v.name]!, `${v.name}: the server was ready at ${want} ms`);
      const got = v.phases.VMReady;
      // Measured from when the create request left: the server made the VM (and started its
      // clock) after that, so a figure is never short of the truth (Date.now() and
      // performance.now() may disagree by a millisecond).
      assert.ok(got >= want - 2, `${v.name}: VMReady ${got} ms, before the truth ${want} ms`);
      assert.ok(got - want < 1000, `${v.name}: VMReady ${got} ms, truth ${want} ms`);
      assert.equal(v.sources.VMReady, "client");
      assert.equal(v.workload, v.name.split("-")[1]);
      samples.push(got);
    }
    assert.equal(ready.length, Object.keys(truth).length);
    const s = doc.latency.VMReady;
    assert.equal(s.count, samples.length);
    for (const [k, p] of [["p50", 0.5], ["p95", 0.95], ["p99", 0.99]] as const) {
      assert.ok(Math.abs(s[k] - reference(samples, p)) < 0.002, `${k} ${s[k]}`);
    }
    assert.equal(s.min, Math.min(...samples));
    assert.equal(s.max, Math.max(...samples));
    // Readiness from watches: one list and one watch of each kind, no polling.
    const vmiGets = server.requestsMatching("GET", /virtualmachineinstances$/);
    assert.equal(vmiGets.filter((q) => !q.query.includes("watch=1")).length, 1);
    assert.equal(vmiGets.filter((q) => q.query.includes("watch=1")).length, 1);
    // The table at the end, and the gates.
    assert.match(r.out, /^PHASE\s+VMS\s+NEVER\s+MIN\s+AVG\s+P50\s+P95\s+P99\s+MAX$/m);
    assert.match(r.out, new RegExp(`^VMReady\\s+6\\s+0\\s`, "m"));
    assert.match(r.out, /ok\s+threshold VMReady.p99=60s/);

    // The audit database renders the same figures again.
    const again = await virtwork(["report", doc.runId, "-o", "json"], { env });
    assert.equal(again.code, 0, again.err);
    assert.deepEqual(JSON.parse(again.out).latency, doc.latency);
  });
});

Deno.test("run --threshold: a gate that fails exits 6 and says why; a bad gate exits 2 before creating anything", async () => {
  await withCluster({ readyAfterMs: () => 300 }, async ({ server }, env) => {
    const bad = await virtwork(["run", "--workloads", "cpu", "--threshold", "VMReady.p99=60x"], {
      env,
    });
    assert.equal(bad.code, 2);
    assert.match(
      bad.err,
      /--threshold "VMReady.p99=60x": value must be a non-negative number with a unit/,
    );
    assert.equal(server.objects("virtualmachines").length, 0);

    const r = await virtwork(["run", "--workloads", "cpu", "--threshold", "VMReady.max=1ms"], {
      env,
    });
    assert.equal(r.code, 6, r.err);
    assert.match(r.out, /FAILED threshold VMReady.max=1ms: VMReady.max is [\d.]+m?s, over 1ms/);
  });
});

Deno.test("run: under a slow rate limit every VM is followed from its create, so VMReady stays within 1 s of the truth", async () => {
  // 6 VMs with their Secrets at 4 requests a second take ~3 s to create; the first VMs are ready
  // long before the last is made. A wait that began watching after the creates would see them
  // ready seconds late.
  const truth = (n: string) => 200 + 100 * Number(n.split("-").at(-1));
  await withCluster({ readyAfterMs: truth }, async ({ server }, env) => {
    const r = await virtwork(
      [
        "run",
        "--workloads",
        "cpu,memory",
        "--vm-count",
        "3",
        "--qps",
        "4",
        "--burst",
        "1",
        "-o",
        "json",
      ],
      { env },
    );
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out) as {
      elapsedSeconds: number;
      latency: { name: string; phases: Record<string, number> }[];
    };
    assert.ok(doc.elapsedSeconds > 2, `the rate limit held: ${doc.elapsedSeconds} s`);
    const made = new Map(
      server.objects("virtualmachines").map((o) => [
        o.metadata.name as string,
        Date.parse(o.metadata.creationTimestamp as string),
      ]),
    );
    for (const o of server.objects("virtualmachineinstances")) {
      const c = (o.status?.conditions ?? []) as { type: string; lastTransitionTime?: string }[];
      const want = Date.parse(c.find((x) => x.type === "Ready")!.lastTransitionTime!) -
        made.get(o.metadata.name)!;
      const got = doc.latency.find((l) => l.name === o.metadata.name)!.phases.VMReady!;
      assert.ok(
        got >= want - 2 && got - want < 1000,
        `${o.metadata.name}: ${got} ms, truth ${want}`,
      );
    }
    // One list and one watch of each kind, opened before the first VM was made.
    const firstVm = server.requests.findIndex((q) =>
      q.method === "POST" && q.path.endsWith("/virtualmachines")
    );
    const watches = server.requests.flatMap((q, i) => q.query.includes("watch=1") ? [i] : []);
    assert.equal(watches.length, 2);
    assert.ok(watches.every((i) => i < firstVm), `watches at ${watches}, first VM at ${firstVm}`);
  });
});
