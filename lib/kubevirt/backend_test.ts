import assert from "node:assert/strict";
import type { BackendEvent } from "../virtwork/backend.ts";
import { buildNeutralPlan } from "../virtwork/plan.ts";
import { runPlan } from "../virtwork/run.ts";
import { defaultRegistry } from "../workloads/registry.ts";
import { openKubevirtBackend } from "./backend.ts";
import type { ApiObject, ClusterApi, Resource } from "./client.ts";
import type { KubeObject } from "./manifests.ts";
import type { VersionedList, WatchApi, WatchEvent } from "./watch.ts";

/** A watch API in memory: `push` sends an event to the open watch of a resource. */
class ScriptedWatch implements WatchApi {
  log: string[] = [];
  #queues = new Map<Resource, WatchEvent[]>();
  #wake = new Map<Resource, () => void>();
  open = 0;

  push(resource: Resource, e: WatchEvent): void {
    const q = this.#queues.get(resource) ?? [];
    q.push(e);
    this.#queues.set(resource, q);
    this.#wake.get(resource)?.();
  }

  listVersioned(resource: Resource): Promise<VersionedList> {
    this.log.push(`list ${resource}`);
    return Promise.resolve({ items: [], resourceVersion: "1" });
  }

  async *watch(
    resource: Resource,
    _ns: string,
    _sel: string | undefined,
    _rv: string,
    signal: AbortSignal,
  ): AsyncIterable<WatchEvent> {
    this.log.push(`watch ${resource}`);
    this.open++;
    try {
      while (!signal.aborted) {
        const q = this.#queues.get(resource) ?? [];
        const e = q.shift();
        if (e) {
          yield e;
          continue;
        }
        await new Promise<void>((res) => {
          this.#wake.set(resource, res);
          signal.addEventListener("abort", () => res(), { once: true });
        });
      }
    } finally {
      this.open--;
    }
  }
}

/**
 * A cluster whose VMIs are Ready the moment their VM is made, and whose create answers come
 * `answerMs` later: the watch tells of a VM before its create is answered.
 */
function slowAnswers(watch: ScriptedWatch, answerMs: number) {
  const sent = new Map<string, number>();
  const api: ClusterApi = {
    async create(
      resource: Resource,
      _ns: string,
      obj: KubeObject,
      o?: { onSend?: (at: number) => void },
    ): Promise<ApiObject> {
      const at = performance.now();
      o?.onSend?.(at);
      watch.log.push(`create ${resource}`);
      const made = {
        ...obj,
        metadata: { ...obj.metadata, creationTimestamp: new Date().toISOString() },
      } as ApiObject;
      if (resource === "virtualmachines") {
        sent.set(obj.metadata.name, at);
        const now = new Date().toISOString();
        const vmi = {
          metadata: { name: obj.metadata.name, creationTimestamp: now },
          status: {
            phase: "Running",
            conditions: [{ type: "Ready", status: "True", lastTransitionTime: now }],
          },
        };
        watch.push("virtualmachineinstances", { type: "ADDED", object: vmi as ApiObject });
      }
      await new Promise((r) => setTimeout(r, answerMs));
      return made;
    },
    get: () => Promise.reject(new Error("unused")),
    list: () => Promise.resolve([]),
    delete: () => Promise.resolve(),
  };
  return { api, sent };
}

async function plan(vms: number) {
  const w = defaultRegistry().get("cpu", {
    enabled: true,
    vmCount: vms,
    cpuCores: 1,
    memory: "1Gi",
  });
  return await buildNeutralPlan(
    [w],
    { runId: "r1", os: "fedora" },
    () => Promise.resolve(new Map()),
  );
}

Deno.test("kubevirt backend: the watch starts before the VMs are made; phases seen before a create's answer follow its created, timed from the request", async () => {
  const watch = new ScriptedWatch();
  const { api, sent } = slowAnswers(watch, 30);
  const backend = openKubevirtBackend(api, {
    namespace: "ns",
    containerDiskImage: "img",
    pollIntervalSeconds: 60,
    concurrency: 1,
    watch,
  });
  const events: BackendEvent[] = [];
  const p = await plan(3);
  const r = await runPlan(backend, p, {
    scope: "ns",
    timeoutSeconds: 10,
    onBackendEvent: (e) => events.push(e),
  });
  await backend.close();
  assert.equal(watch.open, 0, "the watches ended with the wait");
  // Both watches opened after the Namespace and before the first VM.
  const firstVm = watch.log.indexOf("create virtualmachines");
  assert.ok(watch.log.indexOf("create namespaces") < watch.log.indexOf("watch virtualmachines"));
  assert.ok(watch.log.indexOf("watch virtualmachineinstances") < firstVm, watch.log.join(", "));
  assert.ok(watch.log.indexOf("watch virtualmachines") < firstVm, watch.log.join(", "));
  for (const v of p.vms) {
    const mine = events.filter((e) => "vm" in e && e.vm === v.name);
    assert.deepEqual(
      mine.map((e) => e.type === "phase" ? e.phase : e.type),
      ["created", "VMICreated", "Running", "ready"],
      v.name,
    );
    // The clock starts when the request left, not when its answer came 30 ms later.
    assert.equal(mine[0]!.at, sent.get(v.name));
    const l = r.latency.find((x) => x.name === v.name)!;
    assert.equal(l.sources.VMReady, "client");
    assert.equal(l.sources.VMICreated, "client");
    assert.ok(l.phases.VMReady! >= 0 && l.phases.VMReady! < 30, JSON.stringify(l.phases));
    const out = r.vms.find((x) => x.name === v.name)!;
    assert.equal(out.ready, true);
    assert.equal(out.phase, "Running", "a phase reached during the create is kept");
  }
  const k = backend.runResult!;
  assert.ok(k.vms.every((v) => v.ready && v.phase === "Running"), JSON.stringify(k.vms));
});

Deno.test("kubevirt backend: a create that is not waited for ends its watch at close()", async () => {
  const watch = new ScriptedWatch();
  const { api } = slowAnswers(watch, 1);
  const backend = openKubevirtBackend(api, {
    namespace: "ns",
    containerDiskImage: "img",
    pollIntervalSeconds: 60,
    watch,
  });
  const r = await runPlan(backend, await plan(2), { scope: "ns", timeoutSeconds: 10, wait: false });
  assert.equal(r.waited, false);
  assert.equal(watch.open, 2, "following while a wait may come");
  await backend.close();
  assert.equal(watch.open, 0);
});
