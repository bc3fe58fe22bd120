/** Cleanup against the test server, through the real client. */
import assert from "node:assert/strict";
import { cleanup } from "../../lib/kubevirt/cleanup.ts";
import { buildNamespace, buildUserDataSecret } from "../../lib/kubevirt/manifests.ts";
import { buildRunPlan } from "../../lib/kubevirt/plan.ts";
import { executeRun } from "../../lib/kubevirt/run.ts";
import { defaultRegistry, withNamespace, withSshCredentials } from "../../lib/workloads/mod.ts";
import type { KubeClient } from "../../lib/kubevirt/client.ts";
import { startCluster } from "./_helpers.ts";

const cfg = { enabled: true, vmCount: 1, cpuCores: 1, memory: "1Gi" };

/** Resolves once `cond()` holds, checking every 10 ms; rejects after a generous minute. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function deploy(
  client: KubeClient,
  runId: string,
  names = ["cpu", "network"],
  ns = "virtwork",
) {
  const r = defaultRegistry();
  const plan = buildRunPlan(
    names.map((n) =>
      r.get(n, cfg, withNamespace(ns), withSshCredentials({ user: "u", password: "p" }))
    ),
    { namespace: ns, runId, containerDiskImage: "img" },
  );
  await executeRun(client, plan, { wait: false, timeoutSeconds: 1, pollIntervalSeconds: 1 });
}

Deno.test("cleanup: deletes managed VMs, Services and Secrets, and nothing else", async () => {
  const { server, client, close } = await startCluster();
  try {
    await deploy(client, "a");
    server.seed("secrets", buildUserDataSecret("keep-me", "virtwork", "x", { app: "other" }));
    server.seed("virtualmachines", {
      ...buildRunPlan([defaultRegistry().get("cpu", cfg)], {
        namespace: "virtwork",
        runId: "z",
        containerDiskImage: "i",
      }).vms[0]!.vm,
      metadata: {
        name: "foreign-vm",
        namespace: "virtwork",
        labels: { "app.kubernetes.io/managed-by": "someone-else" },
      },
    });
    const r = await cleanup(client, { namespace: "virtwork" });
    assert.deepEqual(r.deleted, { virtualmachines: 3, services: 1, secrets: 3 });
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.runIds, ["a"]);
    assert.equal(r.namespaceDeleted, false);
    assert.deepEqual(server.objects("secrets").map((o) => o.metadata.name), ["keep-me"]);
    assert.deepEqual(server.objects("virtualmachines").map((o) => o.metadata.name), ["foreign-vm"]);
    assert.equal(server.objects("namespaces").length, 1, "namespace is kept by default");
    const lists = server.requestsMatching("GET", /\/(virtualmachines|services|secrets)$/);
    assert.ok(
      lists.every((l) =>
        decodeURIComponent(l.query).includes("app.kubernetes.io/managed-by=virtwork")
      ),
    );
  } finally {
    await close();
  }
});

Deno.test("cleanup: --run-id deletes only that run's objects", async () => {
  const { server, client, close } = await startCluster();
  try {
    await deploy(client, "one", ["cpu"]);
    server.seed("virtualmachines", {
      ...(server.objects("virtualmachines")[0]!),
      metadata: {
        name: "virtwork-cpu-other",
        namespace: "virtwork",
        labels: { "app.kubernetes.io/managed-by": "virtwork", "virtwork/run-id": "two" },
      },
    });
    const r = await cleanup(client, { namespace: "virtwork", runId: "one" });
    assert.equal(r.deleted.virtualmachines, 1);
    assert.deepEqual(r.runIds, ["one"]);
    assert.deepEqual(server.objects("virtualmachines").map((o) => o.metadata.name), [
      "virtwork-cpu-other",
    ]);
  } finally {
    await close();
  }
});

Deno.test("cleanup: continues past individual failures and reports them with counts", async () => {
  const { client, close, server } = await startCluster();
  try {
    await deploy(client, "a", ["cpu", "memory", "disk"]);
    server.options.inject = (r) =>
      r.method === "DELETE" && r.name === "virtwork-memory-1"
        ? { status: 403, message: "denied" }
        : undefined;
    const r = await cleanup(client, { namespace: "virtwork" });
    assert.equal(r.deleted.virtualmachines, 2);
    assert.equal(r.deleted.secrets, 3);
    assert.equal(r.errors.length, 1);
    assert.equal(r.errors[0]!.name, "virtwork-memory-1");
    assert.match(r.errors[0]!.message, /403/);
  } finally {
    await close();
  }
});

Deno.test("cleanup: --delete-namespace deletes a managed namespace last and --wait sees it gone", async () => {
  const { server, client, close } = await startCluster({ deletionDelayMs: 100 });
  try {
    await deploy(client, "a", ["cpu"]);
    const r = await cleanup(client, {
      namespace: "virtwork",
      deleteNamespace: true,
      wait: true,
      pollIntervalSeconds: 0.03,
      timeoutSeconds: 5,
    });
    assert.equal(r.namespaceDeleted, true);
    assert.equal(r.gone, true);
    assert.equal(server.objects("namespaces").length, 0);
    const deletes = server.requests.filter((q) => q.method === "DELETE").map((q) => q.path);
    assert.match(deletes.at(-1)!, /^\/api\/v1\/namespaces\/virtwork$/, "namespace deleted last");
  } finally {
    await close();
  }
});

Deno.test("cleanup: refuses to delete a namespace virtwork did not create", async () => {
  const { server, client, close } = await startCluster();
  try {
    await client.create("namespaces", "", buildNamespace("team", { owner: "team" }));
    const r = await cleanup(client, { namespace: "team", deleteNamespace: true });
    assert.equal(r.namespaceDeleted, false);
    assert.match(r.errors[0]!.message, /not labelled app.kubernetes.io\/managed-by=virtwork/);
    assert.equal(server.objects("namespaces").length, 1);
  } finally {
    await close();
  }
});

Deno.test("cleanup: --wait waits until the deleted VMs are gone", async () => {
  // Deleted objects stay terminating for an hour unless the test ends their deletion.
  const { server, client, close } = await startCluster({ deletionDelayMs: 3_600_000 });
  try {
    await deploy(client, "a", ["cpu"]);
    let settled = false;
    const running = cleanup(client, {
      namespace: "virtwork",
      wait: true,
      timeoutSeconds: 3600,
      pollIntervalSeconds: 0.03,
    }).finally(() => settled = true);
    // Cleanup is waiting once it lists the VMs again after deleting them.
    const listedAfterDelete = () => {
      const del = server.requests.findIndex((r) =>
        r.method === "DELETE" && /\/virtualmachines\//.test(r.path)
      );
      return del >= 0 &&
        server.requests.slice(del).some((r) =>
          r.method === "GET" && /\/virtualmachines$/.test(r.path)
        );
    };
    await until(() => settled || listedAfterDelete(), "cleanup to poll the deleted VMs");
    assert.equal(settled, false, "cleanup returned while the VM was still terminating");
    // The VM and its user-data Secret are deleted and still terminating.
    const terminating = ["virtualmachines", "services", "secrets"].flatMap((r) =>
      server.objects(r)
    );
    assert.deepEqual(terminating.map((o) => o.kind).sort(), ["Secret", "VirtualMachine"]);
    assert.ok(terminating.every((o) => o.metadata.deletionTimestamp), "both are terminating");
    assert.equal(server.finishDeletions(), 2);
    const r = await running;
    assert.equal(r.gone, true);
    assert.deepEqual(r.errors, []);
    assert.equal(server.objects("virtualmachines").length, 0);
    assert.equal(server.objects("virtualmachineinstances").length, 0);
  } finally {
    await close();
  }
});

Deno.test("cleanup: an empty or missing namespace is not an error", async () => {
  const { client, close } = await startCluster();
  try {
    const r = await cleanup(client, { namespace: "nothing-here" });
    assert.deepEqual(r.deleted, { virtualmachines: 0, services: 0, secrets: 0 });
    assert.deepEqual(r.errors, []);
  } finally {
    await close();
  }
});
