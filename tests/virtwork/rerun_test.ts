/**
 * Running virtwork again in the same namespace, and cleaning up twice, end to end through the CLI
 * (`main()` in-process) against the Kubernetes API test server.
 */
import assert from "node:assert/strict";
import { main, type VirtworkDeps } from "../../cli/virtwork.ts";
import { noopAuditor } from "../../lib/audit/mod.ts";
import { LABELS } from "../../lib/kubevirt/constants.ts";
import type { K8sTestServerOptions, Obj } from "./k8s_server.ts";
import { startCluster } from "./_helpers.ts";

async function virtwork(args: string[], deps: VirtworkDeps) {
  let out = "";
  let err = "";
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s) }, {
    client: { baseBackoffMs: 2, maxBackoffMs: 20 },
    auditor: noopAuditor,
    ...deps,
  });
  return { code, out, err };
}

async function withCluster(
  opts: K8sTestServerOptions,
  fn: (c: Awaited<ReturnType<typeof startCluster>> & { env: Record<string, string> }) => Promise<
    void
  >,
): Promise<void> {
  const c = await startCluster(opts);
  const kubeconfig = await c.server.writeKubeconfig();
  try {
    await fn({ ...c, env: { KUBECONFIG: kubeconfig, HOME: "/nonexistent" } });
  } finally {
    await c.close();
    await Deno.remove(kubeconfig);
  }
}

const runIds = (objs: Obj[]) =>
  [...new Set(objs.map((o) => o.metadata?.labels?.[LABELS.RUN_ID]))].sort();

Deno.test("re-run in the same namespace: a clear error naming the object and its run; nothing created; cleanup of either run is exact", async () => {
  await withCluster({}, async ({ server, env }) => {
    const args = ["run", "--workloads", "cpu,network", "--no-wait", "-o", "json"];
    const first = await virtwork([...args, "--ssh-password", "pw"], { env });
    assert.equal(first.code, 0, first.err);
    const a = JSON.parse(first.out).runId as string;
    const before = {
      vms: server.objects("virtualmachines").length,
      secrets: server.objects("secrets").length,
      services: server.objects("services").length,
    };
    assert.deepEqual(before, { vms: 3, secrets: 3, services: 1 });

    const second = await virtwork([...args, "--ssh-password", "pw"], { env });
    assert.equal(second.code, 4, second.err);
    assert.match(second.err, new RegExp(`already exists and belongs to virtwork run ${a}`));
    assert.match(
      second.err,
      /(Service virtwork\/virtwork-iperf3-server|VirtualMachine virtwork\/virtwork-cpu-1|Secret virtwork\/virtwork-cpu-1-userdata)/,
    );
    assert.match(second.err, new RegExp(`virtwork cleanup --namespace virtwork --run-id ${a}`));
    assert.match(second.err, /[Nn]othing of run [0-9a-f-]{36} was created/);
    assert.doesNotMatch(second.err, /pw/);
    assert.equal(server.objects("virtualmachines").length, before.vms, "no VM created");
    assert.equal(server.objects("secrets").length, before.secrets, "no Secret created");
    assert.deepEqual(runIds(server.objects("virtualmachines")), [a]);
    assert.deepEqual(runIds(server.objects("secrets")), [a]);
    assert.equal(server.requestsMatching("POST", /virtualmachines$/).length, 3, "no VM POSTed");

    // A cleanup of some other run id deletes nothing and says so; the first run's id deletes it all.
    const other = await virtwork(
      ["cleanup", "--run-id", "00000000-0000-0000-0000-000000000000"],
      { env },
    );
    assert.equal(other.code, 0, other.err);
    assert.match(other.out, /no objects of run 00000000-0000-0000-0000-000000000000/);
    assert.equal(server.objects("virtualmachines").length, 3);
    const clean = await virtwork(["cleanup", "--run-id", a], { env });
    assert.equal(clean.code, 0, clean.err);
    assert.match(clean.out, /deleted 3 VirtualMachines/);
    assert.equal(server.objects("virtualmachines").length, 0);
    assert.equal(server.objects("secrets").length, 0);

    // With the first run gone, the same command succeeds.
    const third = await virtwork(args, { env });
    assert.equal(third.code, 0, third.err);
    assert.deepEqual(runIds(server.objects("virtualmachines")), [JSON.parse(third.out).runId]);
  });
});

Deno.test("re-run while the first run's objects are still being deleted: the error says to wait", async () => {
  await withCluster({ deletionDelayMs: 60_000 }, async ({ server, env }) => {
    const first = await virtwork(["run", "--workloads", "cpu", "--no-wait", "-o", "json"], { env });
    assert.equal(first.code, 0, first.err);
    const a = JSON.parse(first.out).runId as string;
    assert.equal((await virtwork(["cleanup", "--run-id", a], { env })).code, 0);
    assert.ok(server.objects("virtualmachines")[0]!.metadata.deletionTimestamp);
    const second = await virtwork(["run", "--workloads", "cpu", "--no-wait"], { env });
    assert.equal(second.code, 4, second.err);
    assert.match(
      second.err,
      new RegExp(
        `(VirtualMachine virtwork/virtwork-cpu-1|Secret virtwork/virtwork-cpu-1-userdata) already exists and belongs to virtwork run ${a} and is being deleted; wait until it is gone`,
      ),
    );
    assert.equal(server.requestsMatching("POST", /virtualmachines$/).length, 1);
  });
});

Deno.test("re-run: an object of the same name that virtwork did not create is an error, never adopted", async () => {
  await withCluster({}, async ({ server, client, env }) => {
    await client.create("namespaces", "", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: "virtwork" },
    });
    server.seed("services", {
      metadata: { name: "virtwork-iperf3-server", namespace: "virtwork", labels: { app: "mine" } },
      spec: { ports: [{ port: 5201 }] },
    });
    const r = await virtwork(["run", "--workloads", "network", "--no-wait"], { env });
    assert.equal(r.code, 4, r.err);
    assert.match(
      r.err,
      /Service virtwork\/virtwork-iperf3-server already exists and was not created by virtwork/,
    );
    assert.equal(server.objects("virtualmachines").length, 0);
    assert.equal(server.objects("services")[0]!.metadata.labels.app, "mine", "left alone");
  });
});

Deno.test("re-run: a 409 that is not AlreadyExists (Conflict) fails the run; it is not 'exists'", async () => {
  await withCluster({}, async ({ server, env }) => {
    server.options.inject = (q) =>
      q.method === "POST" && q.resource === "virtualmachines"
        ? { status: 409, reason: "Conflict", message: "Operation cannot be fulfilled" }
        : undefined;
    const r = await virtwork(["run", "--workloads", "cpu", "--no-wait", "-o", "json"], { env });
    assert.equal(r.code, 4, r.err);
    assert.match(r.err, /409 Conflict: Operation cannot be fulfilled/);
    assert.equal(r.out, "", "no summary claims the VM exists");
  });
});

Deno.test("cleanup --delete-namespace twice: the second sees the namespace terminating, exits 0; a third finds nothing", async () => {
  await withCluster({ deletionDelayMs: 60_000 }, async ({ server, env }) => {
    assert.equal((await virtwork(["run", "--workloads", "cpu", "--no-wait"], { env })).code, 0);
    const once = await virtwork(["cleanup", "--delete-namespace", "-o", "json"], { env });
    assert.equal(once.code, 0, once.err);
    const r1 = JSON.parse(once.out);
    assert.equal(r1.namespaceDeleted, true);
    assert.equal(r1.namespaceState, "deleted");
    assert.equal(server.objects("namespaces")[0]!.status.phase, "Terminating");

    const deletesBefore = server.requestsMatching("DELETE", /./).length;
    const twice = await virtwork(["cleanup", "--delete-namespace"], { env });
    assert.equal(twice.code, 0, `${twice.out}${twice.err}`);
    assert.equal(twice.err, "");
    assert.match(twice.out, /namespace already being deleted/);
    assert.match(twice.out, /deleted 0 VirtualMachines/);
    // The VM and its user-data Secret (the cpu workload's user data is too large to go inline).
    assert.match(twice.out, /2 objects already being deleted/);
    assert.equal(
      server.requestsMatching("DELETE", /./).length,
      deletesBefore,
      "nothing deleted twice",
    );
  });
  await withCluster({ deletionDelayMs: 30 }, async ({ server, env }) => {
    assert.equal((await virtwork(["run", "--workloads", "cpu", "--no-wait"], { env })).code, 0);
    assert.equal((await virtwork(["cleanup", "--delete-namespace"], { env })).code, 0);
    const waited = await virtwork(
      ["cleanup", "--delete-namespace", "--wait", "--poll-interval", "0.02", "-o", "json"],
      { env },
    );
    assert.equal(waited.code, 0, waited.err);
    const r = JSON.parse(waited.out);
    assert.equal(r.gone, true, "--wait on a terminating namespace waits until it is gone");
    assert.equal(server.objects("namespaces").length, 0);
    const third = await virtwork(["cleanup", "--delete-namespace"], { env });
    assert.equal(third.code, 0, third.err);
    assert.match(third.out, /namespace not found/);
  });
});
