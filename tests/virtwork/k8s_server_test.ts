/** The test server, driven through the real @kubernetes/client-node (via KubeClient). */
import assert from "node:assert/strict";
import { KubeApiError } from "../../lib/kubevirt/errors.ts";
import {
  buildNamespace,
  buildUserDataSecret,
  type KubeObject,
} from "../../lib/kubevirt/manifests.ts";
import { buildRunPlan } from "../../lib/kubevirt/plan.ts";
import { defaultRegistry } from "../../lib/workloads/mod.ts";
import { parseSelector } from "./k8s_server.ts";
import { startCluster } from "./_helpers.ts";

const cfg = { enabled: true, vmCount: 1, cpuCores: 1, memory: "1Gi" };

function cpuVm(ns: string, runId = "r1"): KubeObject {
  return buildRunPlan([defaultRegistry().get("cpu", cfg)], {
    namespace: ns,
    runId,
    containerDiskImage: "img",
  }).vms[0]!.vm;
}

async function rejects(p: Promise<unknown>, status: number, reason: string): Promise<KubeApiError> {
  let caught: unknown;
  await p.catch((e) => (caught = e));
  assert.ok(caught instanceof KubeApiError, `expected KubeApiError, got ${caught}`);
  assert.equal(caught.status, status);
  assert.equal(caught.reason, reason);
  return caught;
}

Deno.test("server: create/get/list/delete with resourceVersion, 404 and 409 Status bodies", async () => {
  const { client, close } = await startCluster();
  try {
    const ns = await client.create("namespaces", "", buildNamespace("a"));
    assert.ok(Number(ns.metadata.resourceVersion) > 0);
    const s1 = await client.create("secrets", "a", buildUserDataSecret("s1", "a", "x", { k: "v" }));
    assert.ok(Number(s1.metadata.resourceVersion) > Number(ns.metadata.resourceVersion));
    assert.equal((await client.get("secrets", "a", "s1")).metadata.name, "s1");
    const e404 = await rejects(client.get("secrets", "a", "nope"), 404, "NotFound");
    assert.match(e404.message, /secrets "nope" not found/);
    await rejects(
      client.create("secrets", "a", buildUserDataSecret("s1", "a", "x", {})),
      409,
      "AlreadyExists",
    );
    await rejects(
      client.create("secrets", "missing", buildUserDataSecret("s2", "missing", "x", {})),
      404,
      "NotFound",
    );
    assert.equal((await client.list("secrets", "a")).length, 1);
    await client.delete("secrets", "a", "s1");
    assert.equal((await client.list("secrets", "a")).length, 0);
    await rejects(client.delete("secrets", "a", "s1"), 404, "NotFound");
  } finally {
    await close();
  }
});

Deno.test("server: label selectors on list", async () => {
  const { client, close } = await startCluster();
  try {
    await client.create("namespaces", "", buildNamespace("n"));
    for (
      const [name, labels] of [["a", { x: "1", y: "p" }], ["b", { x: "2" }], ["c", {}]] as const
    ) {
      await client.create("secrets", "n", buildUserDataSecret(name, "n", "d", { ...labels }));
    }
    const names = async (sel: string) =>
      (await client.list("secrets", "n", sel)).map((o) => o.metadata.name);
    assert.deepEqual(await names("x=1"), ["a"]);
    assert.deepEqual(await names("x!=1"), ["b", "c"]);
    assert.deepEqual(await names("x"), ["a", "b"]);
    assert.deepEqual(await names("!x"), ["c"]);
    assert.deepEqual(await names("x in (1,2),y=p"), ["a"]);
    assert.deepEqual(await names("x notin (1)"), ["b", "c"]);
    assert.throws(() => parseSelector("x=(1"), /unable to parse/);
  } finally {
    await close();
  }
});

Deno.test("server: an invalid VirtualMachine is rejected with 422 and field causes", async () => {
  const { client, close } = await startCluster();
  try {
    await client.create("namespaces", "", buildNamespace("v"));
    const vm = structuredClone(cpuVm("v")) as KubeObject & { spec: Record<string, unknown> };
    vm.spec.runstrategy = "Always";
    const err = await rejects(client.create("virtualmachines", "v", vm), 422, "Invalid");
    assert.match(err.message, /spec\.runstrategy: is not a known field/);
    await client.create("virtualmachines", "v", cpuVm("v"));
  } finally {
    await close();
  }
});

Deno.test("server: a VM gets a VMI that becomes Ready after the configured time", async () => {
  const { client, close } = await startCluster({ readyAfterMs: () => 150 });
  try {
    await client.create("namespaces", "", buildNamespace("r"));
    await client.create("virtualmachines", "r", cpuVm("r"));
    const before = await client.get("virtualmachineinstances", "r", "virtwork-cpu-1");
    assert.equal(before.status.phase, "Scheduling");
    await new Promise((r) => setTimeout(r, 200));
    const after = await client.get("virtualmachineinstances", "r", "virtwork-cpu-1");
    assert.equal(after.status.phase, "Running");
    assert.deepEqual(
      after.status.conditions.map((c: { type: string; status: string }) => [c.type, c.status]),
      [["Ready", "True"]],
    );
    assert.equal(
      after.metadata.labels?.["virtwork/run-id"],
      "r1",
      "VMI carries the template labels",
    );
  } finally {
    await close();
  }
});

Deno.test("server: deletion takes the configured delay; a namespace takes its objects along", async () => {
  const { server, client, close } = await startCluster({ deletionDelayMs: 120 });
  try {
    await client.create("namespaces", "", buildNamespace("d"));
    await client.create("virtualmachines", "d", cpuVm("d"));
    await client.delete("virtualmachines", "d", "virtwork-cpu-1");
    const terminating = await client.get("virtualmachines", "d", "virtwork-cpu-1");
    assert.ok(terminating.metadata.deletionTimestamp, "terminating object has a deletionTimestamp");
    await new Promise((r) => setTimeout(r, 180));
    await rejects(client.get("virtualmachines", "d", "virtwork-cpu-1"), 404, "NotFound");
    assert.equal(server.objects("virtualmachineinstances", "d").length, 0, "VMI went with the VM");
    await client.create("secrets", "d", buildUserDataSecret("s", "d", "x", {}));
    await client.delete("namespaces", "", "d");
    await rejects(
      client.create("secrets", "d", buildUserDataSecret("t", "d", "x", {})),
      403,
      "Forbidden",
    );
    await new Promise((r) => setTimeout(r, 180));
    assert.equal(server.objects("secrets").length, 0);
    await rejects(client.get("namespaces", "", "d"), 404, "NotFound");
  } finally {
    await close();
  }
});

Deno.test("server: injected 500 and 429 are retried by the client; Retry-After is honoured", async () => {
  let failures = 0;
  const { server, client, close } = await startCluster({
    inject: (r) => {
      if (r.resource !== "namespaces" || r.method !== "POST") return undefined;
      failures++;
      if (failures === 1) return { status: 500 };
      if (failures === 2) return { status: 429, retryAfterSeconds: 1 };
      return undefined;
    },
  });
  try {
    const t0 = performance.now();
    await client.create("namespaces", "", buildNamespace("retry"));
    const elapsed = performance.now() - t0;
    assert.equal(server.requestsMatching("POST", /^\/api\/v1\/namespaces$/).length, 3);
    assert.ok(elapsed >= 1000, `waited ${elapsed.toFixed(0)} ms, Retry-After asked for 1000`);
  } finally {
    await close();
  }
});

Deno.test("client: 401, 403, 404 and 422 fail fast without retries", async () => {
  const { server, client, close } = await startCluster({ token: "right" });
  try {
    server.options.token = "other";
    await rejects(client.list("secrets", "x"), 401, "Unauthorized");
    assert.equal(server.requests.length, 1, "no retry on 401");
    delete server.options.token;
    for (const status of [403, 404, 422]) {
      const before: number = server.requests.length;
      server.options.inject = () => ({ status });
      const err = await client.list("secrets", "x").catch((e) => e);
      assert.ok(err instanceof KubeApiError && err.status === status, String(err));
      assert.equal(server.requests.length, before + 1, `no retry on ${status}`);
    }
  } finally {
    await close();
  }
});

Deno.test("client: retries give up after maxAttempts on persistent 503", async () => {
  const { server, client, close } = await startCluster(
    { inject: () => ({ status: 503 }) },
    { maxAttempts: 3 },
  );
  try {
    const err = await rejects(client.list("secrets", "x"), 503, "ServiceUnavailable");
    assert.match(err.message, /^list Secret in x: 503/);
    assert.equal(server.requests.length, 3);
  } finally {
    await close();
  }
});

Deno.test("client: the rate limiter spaces requests at qps after the burst", async () => {
  const { server, client, close } = await startCluster({}, { qps: 20, burst: 5 });
  try {
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 15 }, () => client.list("secrets", "x").catch(() => {})),
    );
    const elapsed = performance.now() - t0;
    // 5 at once, then 10 more at 20/s: at least ~500 ms.
    assert.ok(elapsed >= 450, `15 requests took ${elapsed.toFixed(0)} ms`);
    assert.equal(server.requests.length, 15);
  } finally {
    await close();
  }
});

Deno.test("server: inline user data over 2048 bytes is rejected as KubeVirt's webhook does", async () => {
  const { client, close } = await startCluster();
  try {
    await client.create("namespaces", "", buildNamespace("big"));
    // deno-lint-ignore no-explicit-any
    const vm = structuredClone(cpuVm("big")) as any;
    vm.spec.template.spec.volumes[1].cloudInitNoCloud.userData = `#cloud-config\n#${
      "x".repeat(2100)
    }\n`;
    const err = await rejects(client.create("virtualmachines", "big", vm), 422, "Invalid");
    assert.match(err.message, /userdata exceeds 2048 byte limit/);
  } finally {
    await close();
  }
});
