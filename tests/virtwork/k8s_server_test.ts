/**
 * The Kubernetes API test server, driven through the real @kubernetes/client-node: virtwork's
 * KubeClient where it suffices, client-node's CoreV1Api, CustomObjectsApi and Watch for what
 * virtwork does not call (PUT, PATCH, pagination, field selectors, watch). No wall-clock windows:
 * tests wait for watch events or conditions with generous deadlines.
 */
import assert from "node:assert/strict";
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  Watch,
} from "npm:@kubernetes/client-node@^2.0.1";
import { RateLimiter } from "../../lib/kubevirt/rate_limit.ts";
import { KubeApiError } from "../../lib/kubevirt/errors.ts";
import {
  buildNamespace,
  buildUserDataSecret,
  type KubeObject,
} from "../../lib/kubevirt/manifests.ts";
import { buildRunPlan } from "../../lib/kubevirt/plan.ts";
import { defaultRegistry } from "../../lib/workloads/mod.ts";
import { type K8sTestServerOptions, type Obj, parseSelector } from "./k8s_server.ts";
import { startCluster } from "./_helpers.ts";

const cfg = { enabled: true, vmCount: 1, cpuCores: 1, memory: "1Gi" };
const KV = { group: "kubevirt.io", version: "v1" };

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

/** The Status body of a client-node ApiException. */
async function statusOf(p: Promise<unknown>, code: number): Promise<Obj> {
  let caught: unknown;
  await p.catch((e) => (caught = e));
  assert.ok(caught instanceof ApiException, `expected ApiException, got ${caught}`);
  assert.equal(caught.code, code, String(caught.body));
  const body = typeof caught.body === "string" ? JSON.parse(caught.body) : caught.body;
  assert.equal(body.kind, "Status");
  assert.equal(body.code, code);
  return body;
}

/** A server plus client-node's generated APIs for it. */
async function cluster(opts: K8sTestServerOptions = {}) {
  const c = await startCluster(opts);
  const kc = new KubeConfig();
  kc.loadFromString(c.server.kubeconfig());
  return {
    ...c,
    kc,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
  };
}

interface Received {
  type: string;
  object: Obj;
}

/**
 * A watch through client-node's Watch; `next(pred)` waits (up to a generous deadline) for the
 * first event after the ones already taken that satisfies `pred`.
 */
async function watch(kc: KubeConfig, path: string, query: Record<string, string | boolean> = {}) {
  const events: Received[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const ctl = await new Watch(kc).watch(path, query, (type, object) => {
    events.push({ type, object });
    wake?.();
  }, () => {
    ended = true;
    wake?.();
  });
  let taken = 0;
  return {
    events,
    get ended() {
      return ended;
    },
    async next(pred: (e: Received) => boolean = () => true, what = "event"): Promise<Received> {
      const deadline = Date.now() + 30_000;
      for (;;) {
        while (taken < events.length) {
          const e = events[taken++]!;
          if (pred(e)) return e;
        }
        if (ended) throw new Error(`watch ended before ${what}`);
        if (Date.now() > deadline) throw new Error(`no ${what} within 30 s`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 1000);
        });
      }
    },
    async ended_(): Promise<void> {
      const deadline = Date.now() + 30_000;
      while (!ended) {
        if (Date.now() > deadline) throw new Error("watch did not end within 30 s");
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 1000);
        });
      }
    },
    stop: () => ctl.abort(),
  };
}

async function withCluster(
  opts: K8sTestServerOptions,
  fn: (c: Awaited<ReturnType<typeof cluster>>) => Promise<void>,
): Promise<void> {
  const c = await cluster(opts);
  try {
    await fn(c);
  } finally {
    await c.close();
  }
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
    const vm404 = await rejects(client.get("virtualmachines", "a", "x"), 404, "NotFound");
    assert.match(vm404.message, /virtualmachines\.kubevirt\.io "x" not found/);
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

Deno.test("server: names are checked on every kind, with the API server's 422 Invalid body", async () => {
  await withCluster({}, async ({ core, custom }) => {
    const bad = await statusOf(
      core.createNamespace({ body: { metadata: { name: "Bad_NS" } } }),
      422,
    );
    assert.equal(bad.reason, "Invalid");
    assert.equal(bad.details.kind, "Namespace");
    assert.equal(bad.details.name, "Bad_NS");
    assert.deepEqual(bad.details.causes.map((c: Obj) => [c.reason, c.field]), [
      ["FieldValueInvalid", "metadata.name"],
    ]);
    assert.match(
      bad.message,
      /^Namespace "Bad_NS" is invalid: metadata\.name: Invalid value: "Bad_NS": a lowercase RFC 1123 label must consist of/,
    );
    const long = await statusOf(
      core.createNamespace({ body: { metadata: { name: "a".repeat(64) } } }),
      422,
    );
    assert.match(long.message, /must be no more than 63 characters/);
    await core.createNamespace({ body: { metadata: { name: "a".repeat(63) } } });
    await core.createNamespace({ body: { metadata: { name: "ok" } } });

    const svc = await statusOf(
      core.createNamespacedService({
        namespace: "ok",
        body: { metadata: { name: "1svc" }, spec: { ports: [{ port: 80 }] } },
      }),
      422,
    );
    assert.match(svc.message, /a DNS-1035 label must consist of/);
    const both = await statusOf(
      core.createNamespacedSecret({
        namespace: "ok",
        body: { metadata: { name: `A${"b".repeat(253)}` } },
      }),
      422,
    );
    assert.equal(both.details.causes.length, 2, "pattern and length are two causes");
    assert.match(
      both.message,
      /is invalid: \[metadata\.name: .*RFC 1123 subdomain.*, metadata\.name: .*no more than 253/,
    );
    await core.createNamespacedSecret({ namespace: "ok", body: { metadata: { name: "a.b-c" } } });

    const vm = cpuVm("ok") as Obj;
    vm.metadata.name = "v".repeat(64);
    const vmErr = await statusOf(
      custom.createNamespacedCustomObject({
        ...KV,
        namespace: "ok",
        plural: "virtualmachines",
        body: vm,
      }),
      422,
    );
    assert.equal(vmErr.details.group, "kubevirt.io");
    assert.match(
      vmErr.message,
      /^VirtualMachine "v{64}" is invalid: metadata\.name: .*no more than 63/,
    );
  });
});

Deno.test("server: unknown fields are dropped with a Warning header by default, silently with Ignore, 400 with Strict", async () => {
  await withCluster({}, async ({ server, core, custom }) => {
    await core.createNamespace({ body: { metadata: { name: "v" } } });
    const vm = structuredClone(cpuVm("v")) as Obj;
    vm.spec.runstrategy = "Always";
    const strict = await statusOf(
      custom.createNamespacedCustomObject({
        ...KV,
        namespace: "v",
        plural: "virtualmachines",
        body: vm,
        fieldValidation: "Strict",
      }),
      400,
    );
    assert.equal(strict.reason, "BadRequest");
    assert.match(strict.message, /strict decoding error: unknown field "spec\.runstrategy"/);

    const warned = await custom.createNamespacedCustomObjectWithHttpInfo({
      ...KV,
      namespace: "v",
      plural: "virtualmachines",
      body: vm,
    });
    assert.equal(warned.httpStatusCode, 201);
    assert.equal(warned.headers["warning"], '299 - "unknown field \\"spec.runstrategy\\""');
    assert.equal(warned.data.spec.runstrategy, undefined, "dropped from the stored object");
    assert.equal(warned.data.spec.runStrategy, "Always");
    assert.deepEqual(server.warnings, ['unknown field "spec.runstrategy"']);

    const quiet = await core.createNamespacedSecretWithHttpInfo({
      namespace: "v",
      fieldValidation: "Ignore",
      body: { metadata: { name: "s", labels: { a: "b" } }, data: {}, bogus: 1 } as Obj,
    });
    assert.equal(quiet.headers["warning"], undefined);
    assert.equal((quiet.data as Obj).bogus, undefined);
    assert.equal(server.warnings.length, 1);
  });
});

Deno.test("server: a VirtualMachine of the wrong shape is 422 with field causes", async () => {
  const { client, close } = await startCluster();
  try {
    await client.create("namespaces", "", buildNamespace("v"));
    const vm = structuredClone(cpuVm("v")) as Obj;
    vm.spec.runStrategy = 5;
    const err = await rejects(
      client.create("virtualmachines", "v", vm as KubeObject),
      422,
      "Invalid",
    );
    assert.match(err.message, /spec\.runStrategy: must be a string, got number/);
    await client.create("virtualmachines", "v", cpuVm("v"));
  } finally {
    await close();
  }
});

Deno.test("server: a VM gets a VMI that turns Ready after the configured time; each status change bumps the resourceVersion", async () => {
  await withCluster({ readyAfterMs: () => 50 }, async ({ client, kc }) => {
    await client.create("namespaces", "", buildNamespace("r"));
    const w = await watch(kc, "/apis/kubevirt.io/v1/namespaces/r/virtualmachineinstances");
    try {
      await client.create("virtualmachines", "r", cpuVm("r"));
      const added = await w.next((e) => e.type === "ADDED", "ADDED");
      assert.equal(added.object.status.phase, "Scheduling");
      assert.equal(added.object.metadata.labels?.["virtwork/run-id"], "r1", "template labels");
      const running = await w.next((e) => e.type === "MODIFIED", "MODIFIED");
      assert.equal(running.object.status.phase, "Running");
      assert.deepEqual(
        running.object.status.conditions.map((c: Obj) => [c.type, c.status]),
        [["Ready", "True"]],
      );
      assert.ok(
        Number(running.object.metadata.resourceVersion) >
          Number(added.object.metadata.resourceVersion),
      );
      const got = await client.get("virtualmachineinstances", "r", "virtwork-cpu-1");
      assert.equal(got.metadata.resourceVersion, running.object.metadata.resourceVersion);
    } finally {
      w.stop();
    }
  });
});

Deno.test("server: failVmi drives a VMI to Failed; restartVmi replaces it with a new one that gets Ready", async () => {
  await withCluster({ readyAfterMs: () => 0 }, async ({ server, client, kc }) => {
    await client.create("namespaces", "", buildNamespace("f"));
    await client.create("virtualmachines", "f", cpuVm("f"));
    const first: Obj = await client.get("virtualmachineinstances", "f", "virtwork-cpu-1");
    assert.equal(first.status.phase, "Running");
    const w = await watch(kc, "/apis/kubevirt.io/v1/namespaces/f/virtualmachineinstances", {
      resourceVersion: first.metadata.resourceVersion!,
    });
    try {
      server.failVmi("f", "virtwork-cpu-1", "PodTerminated");
      const failed = await w.next((e) => e.type === "MODIFIED", "MODIFIED to Failed");
      assert.equal(failed.object.status.phase, "Failed");
      assert.equal(failed.object.status.conditions[0].status, "False");
      server.restartVmi("f", "virtwork-cpu-1");
      const gone = await w.next((e) => e.type !== "MODIFIED", "DELETED");
      assert.equal(gone.type, "DELETED");
      assert.equal(gone.object.metadata.uid, first.metadata.uid);
      const again = await w.next((e) => e.type === "ADDED", "ADDED");
      assert.notEqual(again.object.metadata.uid, first.metadata.uid, "a new VMI");
      const ready = await w.next((e) => e.object.status?.phase === "Running", "Running");
      assert.equal(ready.object.metadata.uid, again.object.metadata.uid);
    } finally {
      w.stop();
    }
  });
});

Deno.test("server: deletion goes through terminating to gone; a namespace takes its objects and refuses a second delete", async () => {
  // The second namespace delete must land while the first is still terminating: a delay long
  // enough that a loaded machine (tests in parallel) does not finish the deletion first.
  await withCluster({ deletionDelayMs: 500 }, async ({ server, client, kc }) => {
    await client.create("namespaces", "", buildNamespace("d"));
    await client.create("virtualmachines", "d", cpuVm("d"));
    const vms = await watch(kc, "/apis/kubevirt.io/v1/namespaces/d/virtualmachines", {
      resourceVersion: String(server.resourceVersion),
    });
    try {
      await client.delete("virtualmachines", "d", "virtwork-cpu-1");
      const terminating = await client.get("virtualmachines", "d", "virtwork-cpu-1");
      assert.ok(
        terminating.metadata.deletionTimestamp,
        "terminating object has a deletionTimestamp",
      );
      const marked = await vms.next(() => true, "MODIFIED");
      assert.equal(marked.type, "MODIFIED");
      assert.ok(marked.object.metadata.deletionTimestamp);
      assert.equal((await vms.next(() => true, "DELETED")).type, "DELETED");
      await rejects(client.get("virtualmachines", "d", "virtwork-cpu-1"), 404, "NotFound");
      assert.equal(server.objects("virtualmachines", "d").length, 0);
      assert.equal(
        server.objects("virtualmachineinstances", "d").length,
        0,
        "VMI went with the VM",
      );
    } finally {
      vms.stop();
    }
    await client.create("secrets", "d", buildUserDataSecret("s", "d", "x", {}));
    const nss = await watch(kc, "/api/v1/namespaces", { fieldSelector: "metadata.name=d" });
    try {
      await nss.next((e) => e.type === "ADDED", "ADDED");
      await client.delete("namespaces", "", "d");
      await rejects(
        client.create("secrets", "d", buildUserDataSecret("t", "d", "x", {})),
        403,
        "Forbidden",
      );
      const again = await rejects(client.delete("namespaces", "", "d"), 409, "Conflict");
      assert.match(
        again.message,
        /The system is ensuring all content is removed from this namespace/,
      );
      await nss.next((e) => e.type === "DELETED", "namespace DELETED");
      assert.equal(server.objects("secrets").length, 0);
      await rejects(client.get("namespaces", "", "d"), 404, "NotFound");
    } finally {
      nss.stop();
    }
  });
});

Deno.test("server: PUT replaces with the resourceVersion as precondition; a no-op keeps it", async () => {
  await withCluster({}, async ({ core, custom }) => {
    await core.createNamespace({ body: { metadata: { name: "p" } } });
    const s = await core.createNamespacedSecret({
      namespace: "p",
      body: { metadata: { name: "s" }, data: { a: btoa("1") } },
    });
    const rv0 = s.metadata!.resourceVersion!;
    const same = await core.replaceNamespacedSecret({ namespace: "p", name: "s", body: s });
    assert.equal(same.metadata!.resourceVersion, rv0, "nothing changed, no new resourceVersion");
    const changed = await core.replaceNamespacedSecret({
      namespace: "p",
      name: "s",
      body: { ...s, data: { a: btoa("2") } },
    });
    assert.ok(Number(changed.metadata!.resourceVersion) > Number(rv0));
    const stale = await statusOf(
      core.replaceNamespacedSecret({ namespace: "p", name: "s", body: { ...s, data: {} } }),
      409,
    );
    assert.equal(stale.reason, "Conflict");
    assert.match(
      stale.message,
      /^Operation cannot be fulfilled on secrets "s": the object has been modified/,
    );
    await statusOf(
      core.replaceNamespacedSecret({
        namespace: "p",
        name: "nope",
        body: { metadata: { name: "nope" } },
      }),
      404,
    );

    const vm = await custom.createNamespacedCustomObject({
      ...KV,
      namespace: "p",
      plural: "virtualmachines",
      body: cpuVm("p"),
    });
    const { resourceVersion: _rv, ...noRv } = vm.metadata;
    const missing = await statusOf(
      custom.replaceNamespacedCustomObject({
        ...KV,
        namespace: "p",
        plural: "virtualmachines",
        name: vm.metadata.name,
        body: { ...vm, metadata: noRv },
      }),
      422,
    );
    assert.match(
      missing.message,
      /metadata\.resourceVersion: Invalid value: 0x0: must be specified for an update/,
    );
    const halted = structuredClone(vm);
    halted.spec.runStrategy = "Halted";
    halted.status = { printableStatus: "set by a client" };
    const put = await custom.replaceNamespacedCustomObject({
      ...KV,
      namespace: "p",
      plural: "virtualmachines",
      name: vm.metadata.name,
      body: halted,
    });
    assert.equal(put.spec.runStrategy, "Halted");
    assert.equal(put.metadata.generation, 2, "a spec change bumps the generation");
    assert.equal(put.status, undefined, "status changes only through the status subresource");
    assert.equal(put.metadata.uid, vm.metadata.uid);
  });
});

Deno.test("server: PATCH as merge, JSON and strategic merge patch; resourceVersion in a patch is a precondition", async () => {
  await withCluster({}, async ({ core, custom }) => {
    await core.createNamespace({ body: { metadata: { name: "p" } } });
    const svc = await core.createNamespacedService({
      namespace: "p",
      body: {
        metadata: { name: "svc", labels: { a: "1", b: "2" } },
        spec: {
          selector: { app: "x" },
          ports: [{ name: "one", port: 1 }, { name: "two", port: 2 }],
        },
      },
    });
    const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
    const merged = await core.patchNamespacedService(
      { namespace: "p", name: "svc", body: { metadata: { labels: { a: null, c: "3" } } } },
      merge,
    );
    assert.deepEqual(merged.metadata!.labels, { b: "2", c: "3" });
    assert.ok(Number(merged.metadata!.resourceVersion) > Number(svc.metadata!.resourceVersion));

    const strategic = await core.patchNamespacedService(
      {
        namespace: "p",
        name: "svc",
        body: { spec: { ports: [{ name: "two", port: 2, targetPort: 22 }, { port: 3 }] } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    assert.deepEqual(
      strategic.spec!.ports!.map((p) => [p.port, p.targetPort]),
      [[1, undefined], [2, 22], [3, undefined]],
      "ports merge by port, not replaced",
    );

    const json = await core.patchNamespacedService({
      namespace: "p",
      name: "svc",
      body: [
        { op: "test", path: "/metadata/labels/b", value: "2" },
        { op: "replace", path: "/spec/selector/app", value: "y" },
        { op: "remove", path: "/spec/ports/0" },
      ],
    });
    assert.equal(json.spec!.selector!.app, "y");
    assert.equal(json.spec!.ports!.length, 2);
    const failedTest = await statusOf(
      core.patchNamespacedService({
        namespace: "p",
        name: "svc",
        body: [{ op: "test", path: "/metadata/labels/b", value: "nope" }],
      }),
      422,
    );
    assert.match(failedTest.message, /testing value \/metadata\/labels\/b failed/);

    const stale = await statusOf(
      core.patchNamespacedService(
        {
          namespace: "p",
          name: "svc",
          body: {
            metadata: { resourceVersion: svc.metadata!.resourceVersion, labels: { d: "4" } },
          },
        },
        merge,
      ),
      409,
    );
    assert.equal(stale.reason, "Conflict");

    await custom.createNamespacedCustomObject({
      ...KV,
      namespace: "p",
      plural: "virtualmachines",
      body: cpuVm("p"),
    });
    const unsupported = await statusOf(
      custom.patchNamespacedCustomObject(
        {
          ...KV,
          namespace: "p",
          plural: "virtualmachines",
          name: "virtwork-cpu-1",
          body: { spec: {} },
        },
        setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
      ),
      415,
    );
    assert.equal(unsupported.reason, "UnsupportedMediaType");
    const vm = await custom.patchNamespacedCustomObject(
      {
        ...KV,
        namespace: "p",
        plural: "virtualmachines",
        name: "virtwork-cpu-1",
        body: { spec: { runStrategy: "Halted" } },
      },
      merge,
    );
    assert.equal(vm.spec.runStrategy, "Halted");
  });
});

Deno.test("server: limit and continue page through one snapshot; a continue token older than the history is 410 Expired", async () => {
  await withCluster({ historySize: 8 }, async ({ core }) => {
    await core.createNamespace({ body: { metadata: { name: "l" } } });
    for (const n of ["a", "b", "c", "d", "e"]) {
      await core.createNamespacedSecret({ namespace: "l", body: { metadata: { name: n } } });
    }
    const first = await core.listNamespacedSecret({ namespace: "l", limit: 2 });
    assert.deepEqual(first.items.map((s) => s.metadata!.name), ["a", "b"]);
    assert.equal(first.metadata!.remainingItemCount, 3);
    assert.ok(first.metadata!._continue);
    // Changes after the first page do not show in later pages: they come from the snapshot.
    await core.createNamespacedSecret({ namespace: "l", body: { metadata: { name: "bb" } } });
    await core.deleteNamespacedSecret({ namespace: "l", name: "d" });
    const second = await core.listNamespacedSecret({
      namespace: "l",
      limit: 2,
      _continue: first.metadata!._continue!,
    });
    assert.deepEqual(second.items.map((s) => s.metadata!.name), ["c", "d"]);
    assert.equal(second.metadata!.resourceVersion, first.metadata!.resourceVersion);
    const third = await core.listNamespacedSecret({
      namespace: "l",
      limit: 2,
      _continue: second.metadata!._continue!,
    });
    assert.deepEqual(third.items.map((s) => s.metadata!.name), ["e"]);
    assert.equal(third.metadata!._continue, undefined);

    for (let i = 0; i < 10; i++) {
      await core.createNamespacedSecret({ namespace: "l", body: { metadata: { name: `x${i}` } } });
    }
    const expired = await statusOf(
      core.listNamespacedSecret({
        namespace: "l",
        limit: 2,
        _continue: first.metadata!._continue!,
      }),
      410,
    );
    assert.equal(expired.reason, "Expired");
  });
});

Deno.test("server: fieldSelector on metadata.name and metadata.namespace, across namespaces; other fields are 400", async () => {
  await withCluster({}, async ({ core }) => {
    for (const ns of ["a", "b"]) {
      await core.createNamespace({ body: { metadata: { name: ns } } });
      for (const n of ["x", "y"]) {
        await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: n } } });
      }
    }
    const names = (l: { items: { metadata?: { namespace?: string; name?: string } }[] }) =>
      l.items.map((s) => `${s.metadata!.namespace}/${s.metadata!.name}`);
    assert.deepEqual(
      names(await core.listNamespacedSecret({ namespace: "a", fieldSelector: "metadata.name=y" })),
      ["a/y"],
    );
    assert.deepEqual(
      names(await core.listSecretForAllNamespaces({ fieldSelector: "metadata.namespace=b" })),
      ["b/x", "b/y"],
    );
    assert.deepEqual(
      names(
        await core.listSecretForAllNamespaces({
          fieldSelector: "metadata.name!=x,metadata.namespace==a",
        }),
      ),
      ["a/y"],
    );
    const bad = await statusOf(
      core.listSecretForAllNamespaces({ fieldSelector: "spec.foo=1" }),
      400,
    );
    assert.match(bad.message, /field label not supported: spec\.foo/);
  });
});

Deno.test("server: watch resumes from a resourceVersion, says 410 Expired for one too old, sends BOOKMARKs, and ends at timeoutSeconds", async () => {
  await withCluster({ historySize: 5, bookmarkIntervalMs: 20 }, async ({ server, core, kc }) => {
    await core.createNamespace({ body: { metadata: { name: "w" } } });
    const a = await core.createNamespacedSecret({
      namespace: "w",
      body: { metadata: { name: "a", labels: { k: "1" } } },
    });
    await core.createNamespacedSecret({ namespace: "w", body: { metadata: { name: "b" } } });
    const path = "/api/v1/namespaces/w/secrets";

    const fresh = await watch(kc, path);
    assert.deepEqual(
      [(await fresh.next()).object.metadata.name, (await fresh.next()).object.metadata.name],
      ["a", "b"],
      "without a resourceVersion the current objects come first, as ADDED",
    );
    fresh.stop();

    const resumed = await watch(kc, path, { resourceVersion: a.metadata!.resourceVersion! });
    const e = await resumed.next();
    assert.deepEqual([e.type, e.object.metadata.name], ["ADDED", "b"], "only changes after it");
    resumed.stop();

    // A selector watch sees an object leave the selector as DELETED.
    const selected = await watch(kc, path, {
      labelSelector: "k=1",
      resourceVersion: String(server.resourceVersion),
    });
    await core.patchNamespacedSecret(
      { namespace: "w", name: "a", body: { metadata: { labels: { k: "2" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const left = await selected.next();
    assert.deepEqual([left.type, left.object.metadata.name], ["DELETED", "a"]);
    selected.stop();

    for (let i = 0; i < 6; i++) {
      await core.createNamespacedSecret({ namespace: "w", body: { metadata: { name: `n${i}` } } });
    }
    const old = await watch(kc, path, { resourceVersion: a.metadata!.resourceVersion! });
    const gone = await old.next();
    assert.equal(gone.type, "ERROR");
    assert.equal(gone.object.code, 410);
    assert.equal(gone.object.reason, "Expired");
    assert.match(gone.object.message, /too old resource version/);
    await old.ended_();

    const bm = await watch(kc, path, {
      allowWatchBookmarks: true,
      resourceVersion: String(server.resourceVersion),
    });
    const bookmark = await bm.next((ev) => ev.type === "BOOKMARK", "BOOKMARK");
    assert.equal(bookmark.object.kind, "Secret");
    assert.equal(bookmark.object.metadata.resourceVersion, String(server.resourceVersion));
    bm.stop();

    const timed = await watch(kc, path, {
      timeoutSeconds: "1",
      resourceVersion: String(server.resourceVersion),
    });
    await timed.ended_();
    assert.equal(timed.events.length, 0);
  });
});

Deno.test("server: injected 500 and 429 are retried by the client; Retry-After is honoured", async () => {
  let failures = 0;
  const retries: { attempt: number; delayMs: number; reason: string }[] = [];
  const { server, client, close } = await startCluster({
    inject: (r) => {
      if (r.resource !== "namespaces" || r.method !== "POST") return undefined;
      failures++;
      if (failures === 1) return { status: 500 };
      if (failures === 2) return { status: 429, retryAfterSeconds: 1 };
      return undefined;
    },
  }, {
    // Backoff alone would wait at most 50 ms: only the Retry-After header makes it 1000.
    baseBackoffMs: 5,
    maxBackoffMs: 50,
    onRetry: (_op, attempt, delayMs, reason) => void retries.push({ attempt, delayMs, reason }),
  });
  try {
    await client.create("namespaces", "", buildNamespace("retry"));
    assert.equal(server.requestsMatching("POST", /^\/api\/v1\/namespaces$/).length, 3);
    assert.equal(server.objects("namespaces").length, 1);
    assert.deepEqual(retries.map((r) => r.attempt), [1, 2]);
    assert.match(retries[0]!.reason, /500/);
    assert.ok(retries[0]!.delayMs <= 50, `backoff after the 500: ${retries[0]!.delayMs} ms`);
    assert.match(retries[1]!.reason, /429/);
    assert.ok(retries[1]!.delayMs >= 1000, `delay after Retry-After: 1: ${retries[1]!.delayMs}`);
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

Deno.test("client: every request waits for the rate limiter; after the burst they queue at qps", async () => {
  // The limiter's clock stands still, so its accounting does not depend on the machine's speed.
  const waits: number[] = [];
  class Recording extends RateLimiter {
    override reserve(): number {
      const w = super.reserve();
      waits.push(w);
      return w;
    }
  }
  const rateLimiter = new Recording(20, 5, () => 0);
  const { server, client, close } = await startCluster({}, { rateLimiter });
  try {
    await Promise.all(Array.from({ length: 15 }, () => client.list("secrets", "x")));
    // 5 at once, then the other 10 one token (50 ms at 20/s) after another.
    assert.deepEqual(waits, [0, 0, 0, 0, 0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500]);
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
