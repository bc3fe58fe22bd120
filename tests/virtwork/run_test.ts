/** Run orchestration against the test server, through the real client. */
import assert from "node:assert/strict";
import { LABELS } from "../../lib/kubevirt/constants.ts";
import { type Auditor, noopAuditor } from "../../lib/audit/types.ts";
import { buildRunPlan, type RunPlan } from "../../lib/kubevirt/plan.ts";
import { executeRun, RunFailedError, vmiReady } from "../../lib/kubevirt/run.ts";
import { auditSubscriber } from "../../lib/virtwork/audit_subscriber.ts";
import { KubeApiError } from "../../lib/kubevirt/errors.ts";
import { defaultRegistry, withNamespace, withSshCredentials } from "../../lib/workloads/mod.ts";
import { KubeConfig } from "npm:@kubernetes/client-node@^2.0.1";
import { KubeClient } from "../../lib/kubevirt/client.ts";
import { startCluster, startDroppingProxy } from "./_helpers.ts";

const cfg = { enabled: true, vmCount: 1, cpuCores: 2, memory: "2Gi" };

function plan(
  names: string[],
  opts: { ns?: string; vmCount?: number; ssh?: boolean } = {},
): RunPlan {
  const r = defaultRegistry();
  const ns = opts.ns ?? "virtwork";
  const ssh = opts.ssh ? { user: "virtwork", password: "pw-secret" } : {};
  return buildRunPlan(
    names.map((n) =>
      r.get(n, { ...cfg, vmCount: opts.vmCount ?? 1 }, withNamespace(ns), withSshCredentials(ssh))
    ),
    { namespace: ns, runId: "run-42", containerDiskImage: "quay.io/containerdisks/fedora:41" },
  );
}

/** `p`, or a rejection with `what` when it has not settled after `ms` (a generous deadline). */
async function withinDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

function recordingAuditor(): Auditor & { events: string[] } {
  const events: string[] = [];
  return {
    ...noopAuditor,
    events,
    runStarted: (r) => void events.push(`start ${r.runId}`),
    objectCreated: (r) => void events.push(`${r.outcome} ${r.kind} ${r.name}`),
    vmFinished: (r) => void events.push(`vm ${r.name} ${r.ready}`),
    runFinished: (r) => void events.push(`end ${r.ok}`),
    event: (r) => void events.push(`event ${r.reason} ${r.object ?? "-"}`),
    cleanupFinished: () => void events.push("cleanup"),
  };
}

Deno.test("vmiReady(): Ready condition wins, phase Running is the fallback", () => {
  assert.equal(vmiReady(undefined), false);
  const vmi = (status: unknown) => ({ metadata: { name: "a" }, status });
  assert.equal(
    vmiReady(vmi({ phase: "Running", conditions: [{ type: "Ready", status: "False" }] })),
    false,
  );
  assert.equal(
    vmiReady(vmi({ phase: "Scheduled", conditions: [{ type: "Ready", status: "True" }] })),
    true,
  );
  assert.equal(vmiReady(vmi({ phase: "Running" })), true);
  assert.equal(vmiReady(vmi({ phase: "Scheduling" })), false);
});

Deno.test("default run: namespace, network Service before any VM, 6 VMs, all Ready", async () => {
  const { server, client, close } = await startCluster({ readyAfterMs: () => 50 });
  try {
    const auditor = recordingAuditor();
    const result = await executeRun(
      client,
      plan(["cpu", "memory", "disk", "database", "network"]),
      { timeoutSeconds: 10, pollIntervalSeconds: 0.05, record: auditSubscriber(auditor) },
    );
    assert.equal(result.vms.length, 6);
    assert.ok(result.vms.every((v) => v.outcome === "created" && v.ready && v.phase === "Running"));
    // Measured for each VM (a lower bound from readyAfterMs would race the client's clock).
    assert.ok(result.vms.every((v) => (v.secondsToReady ?? -1) > 0));
    assert.equal(server.objects("virtualmachines", "virtwork").length, 6);
    assert.equal(server.objects("services", "virtwork").length, 1);
    const svcPost = server.requests.findIndex((r) =>
      r.method === "POST" && r.path.endsWith("/services")
    );
    const firstVmPost = server.requests.findIndex((r) =>
      r.method === "POST" && r.path.endsWith("/virtualmachines")
    );
    assert.ok(svcPost >= 0 && svcPost < firstVmPost, "Service is created before the first VM");
    assert.ok(auditor.events.includes("created Service virtwork-iperf3-server"));
    assert.equal(
      auditor.events.filter((e) => e.startsWith("vm ") && e.endsWith(" true")).length,
      6,
    );
    const counts = Object.groupBy(result.vms, (v) => v.workload);
    assert.deepEqual(
      Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v!.length])),
      { cpu: 1, memory: 1, disk: 1, database: 1, network: 2 },
    );
  } finally {
    await close();
  }
});

Deno.test("run: VMs are created concurrently", async () => {
  const { server, client, close } = await startCluster({ latencyMs: 30 });
  try {
    await executeRun(client, plan(["cpu"], { vmCount: 12 }), {
      wait: false,
      timeoutSeconds: 1,
      pollIntervalSeconds: 1,
      concurrency: 6,
    });
    assert.equal(server.objects("virtualmachines").length, 12);
    assert.ok(server.maxInFlight >= 4, `max in flight ${server.maxInFlight}`);
    assert.ok(server.maxInFlight <= 6, `max in flight ${server.maxInFlight}`);
  } finally {
    await close();
  }
});

Deno.test("run: credentials travel in Secrets; no VM on the server contains them", async () => {
  const { server, client, close } = await startCluster();
  try {
    const result = await executeRun(client, plan(["cpu", "network"], { ssh: true }), {
      wait: false,
      timeoutSeconds: 1,
      pollIntervalSeconds: 1,
    });
    assert.equal(result.secrets.length, 3);
    assert.ok(result.secrets.every((s) => s.outcome === "created"));
    assert.equal(server.objects("secrets", "virtwork").length, 3);
    assert.equal(server.objects("virtualmachines").length, 3);
    for (const vm of server.objects("virtualmachines")) {
      assert.equal(JSON.stringify(vm).includes("pw-secret"), false);
    }
  } finally {
    await close();
  }
});

Deno.test("run: existing objects are skipped as AlreadyExists, not failed", async () => {
  const { client, close } = await startCluster();
  try {
    const p = plan(["cpu"]);
    const opts = { wait: false, timeoutSeconds: 1, pollIntervalSeconds: 1 };
    await executeRun(client, p, opts);
    const again = await executeRun(client, p, opts);
    assert.equal(again.namespaceOutcome, "exists");
    assert.deepEqual(again.vms.map((v) => v.outcome), ["exists"]);
  } finally {
    await close();
  }
});

Deno.test("run: transient 429/500 on VM creates are retried and the run succeeds", async () => {
  let n = 0;
  const { client, close } = await startCluster({
    inject: (r) => {
      if (r.method !== "POST" || r.resource !== "virtualmachines") return undefined;
      n++;
      return n % 3 === 1 ? { status: n % 2 ? 500 : 429, retryAfterSeconds: 0 } : undefined;
    },
  });
  try {
    const result = await executeRun(client, plan(["cpu"], { vmCount: 5 }), {
      wait: false,
      timeoutSeconds: 1,
      pollIntervalSeconds: 1,
    });
    assert.deepEqual(result.vms.map((v) => v.outcome), Array(5).fill("created"));
    assert.ok(n > 5, "some creates were retried");
  } finally {
    await close();
  }
});

Deno.test("run: a 422 fails fast, stops further creates and reports what exists", async () => {
  let posts = 0;
  const { server, client, close } = await startCluster({
    inject: (r) =>
      r.method === "POST" && r.resource === "virtualmachines" && ++posts === 3
        ? { status: 422, message: "VirtualMachine is invalid: spec.template: forbidden" }
        : undefined,
  });
  try {
    const err = await executeRun(client, plan(["cpu"], { vmCount: 30 }), {
      timeoutSeconds: 1,
      pollIntervalSeconds: 1,
      concurrency: 1,
    }).catch((e) => e);
    assert.ok(err instanceof RunFailedError);
    assert.ok(err.cause instanceof KubeApiError && err.cause.status === 422);
    assert.match(err.message, /create VirtualMachine virtwork\/virtwork-cpu-3: 422/);
    assert.equal(err.result.vms.filter((v) => v.outcome === "created").length, 2);
    assert.equal(err.result.vms.filter((v) => v.outcome === "skipped").length, 27);
    assert.equal(server.objects("virtualmachines").length, 2);
  } finally {
    await close();
  }
});

Deno.test("run: a VM that never becomes ready times out with its phase", async () => {
  const { client, close } = await startCluster({
    // The first VM is ready from the start, so the first poll sees it however late it comes.
    readyAfterMs: (name) => (name.endsWith("-2") ? undefined : 0),
  });
  try {
    const result = await executeRun(client, plan(["cpu"], { vmCount: 2 }), {
      timeoutSeconds: 0.3,
      pollIntervalSeconds: 0.05,
    });
    assert.equal(result.timedOut, true);
    const [one, two] = result.vms;
    assert.equal(one!.ready, true);
    assert.equal(two!.ready, false);
    assert.equal(two!.phase, "Scheduling");
    assert.match(two!.error!, /not ready after 0.3s \(phase Scheduling\)/);
  } finally {
    await close();
  }
});

Deno.test("run: aborting while waiting stops at once and reports what exists", async () => {
  const { client, close } = await startCluster({ readyAfterMs: () => undefined });
  try {
    // Ctrl-C once the run says it is waiting; the poll interval and the timeout are an hour, so
    // a run that did not stop at once would miss the generous deadline below.
    const ctl = new AbortController();
    const run = executeRun(client, plan(["cpu", "memory"]), {
      timeoutSeconds: 3600,
      pollIntervalSeconds: 3600,
      signal: ctl.signal,
      onProgress: (m) => {
        if (m.startsWith("waiting for")) ctl.abort(new Error("SIGINT"));
      },
    });
    const result = await withinDeadline(run, 60_000, "the aborted run did not stop");
    assert.equal(ctl.signal.aborted, true, "the run reached its waiting stage");
    assert.equal(result.interrupted, true);
    assert.deepEqual(result.vms.map((v) => v.outcome), ["created", "created"]);
    assert.ok(result.vms.every((v) => !v.ready));
  } finally {
    await close();
  }
});

Deno.test("run: --no-wait does not poll VMIs", async () => {
  const { server, client, close } = await startCluster();
  try {
    const result = await executeRun(client, plan(["cpu"]), {
      wait: false,
      timeoutSeconds: 1,
      pollIntervalSeconds: 1,
    });
    assert.equal(result.waited, false);
    assert.equal(server.requestsMatching("GET", /virtualmachineinstances/).length, 0);
    assert.equal(result.vms[0]!.phase, "-");
  } finally {
    await close();
  }
});

Deno.test("run: every created object carries managed-by and the run id", async () => {
  const { server, client, close } = await startCluster();
  try {
    await executeRun(client, plan(["network"], { ssh: true }), {
      wait: false,
      timeoutSeconds: 1,
      pollIntervalSeconds: 1,
    });
    for (const [r, n] of [["secrets", 2], ["services", 1], ["virtualmachines", 2]] as const) {
      assert.equal(server.objects(r).length, n, r);
      for (const o of server.objects(r)) {
        assert.equal(o.metadata.labels[LABELS.MANAGED_BY], "virtwork", `${r} ${o.metadata.name}`);
        assert.equal(o.metadata.labels[LABELS.RUN_ID], "run-42");
      }
    }
  } finally {
    await close();
  }
});

Deno.test("run: connections dropped before the response are retried; a landed create counts as existing", async () => {
  const { server, close } = await startCluster();
  const proxy = startDroppingProxy(Number(new URL(server.url).port), 2);
  try {
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig().replace(server.url, `http://127.0.0.1:${proxy.port}`));
    const client = new KubeClient(kc, { baseBackoffMs: 5, maxBackoffMs: 20 });
    const result = await executeRun(client, plan(["cpu"]), {
      wait: false,
      timeoutSeconds: 1,
      pollIntervalSeconds: 1,
    });
    assert.equal(proxy.dropped(), 2);
    // The Namespace POST reached the server twice (both answers dropped), then a third time.
    assert.equal(server.requestsMatching("POST", /^\/api\/v1\/namespaces$/).length, 3);
    assert.equal(result.namespaceOutcome, "exists");
    assert.deepEqual(result.vms.map((v) => v.outcome), ["created"]);
    assert.equal(server.objects("virtualmachines").length, 1);
  } finally {
    proxy.close();
    await close();
  }
});

Deno.test("run: the namespace is created with the managed-by labels", async () => {
  const { server, client, close } = await startCluster();
  try {
    await executeRun(client, plan(["cpu"]), {
      wait: false,
      timeoutSeconds: 1,
      pollIntervalSeconds: 1,
    });
    const [ns] = server.objects("namespaces");
    assert.equal(ns!.metadata.name, "virtwork");
    assert.equal(ns!.metadata.labels[LABELS.MANAGED_BY], "virtwork");
    assert.equal(ns!.metadata.labels[LABELS.APP_NAME], "virtwork");
  } finally {
    await close();
  }
});

Deno.test("run: Ctrl-C during creation stops creating; the server holds exactly what the result says", async () => {
  const ctl = new AbortController();
  const { server, client, close } = await startCluster({ latencyMs: 60 }, {
    qps: 10,
    burst: 1,
    signal: ctl.signal,
  });
  try {
    // Ctrl-C as soon as the first VM is created, whenever that is.
    const auditor = recordingAuditor();
    const result = await executeRun(client, plan(["cpu"], { vmCount: 20 }), {
      timeoutSeconds: 5,
      pollIntervalSeconds: 0.05,
      concurrency: 4,
      signal: ctl.signal,
      record: auditSubscriber(auditor),
      onProgress: (m) => {
        if (/^VirtualMachine \S+: created$/.test(m)) ctl.abort(new Error("SIGINT"));
      },
    });
    assert.equal(ctl.signal.aborted, true, "a VM was created");
    assert.equal(result.interrupted, true);
    assert.equal(result.waited, false);
    const created = result.vms.filter((v) => v.outcome === "created").map((v) => v.name);
    assert.ok(created.length >= 1 && created.length < 20, `created ${created.length}`);
    assert.ok(result.vms.every((v) => v.outcome !== "failed" && v.outcome !== "unknown"));
    // A create in flight at Ctrl-C that landed anyway was rolled back: the server holds exactly
    // the VMs the result calls created, and the audit trail records the same.
    const onServer = server.objects("virtualmachines").map((o) => o.metadata.name).sort();
    assert.deepEqual(onServer, [...created].sort());
    const audited = auditor.events.filter((e) => /^created VirtualMachine /.test(e))
      .map((e) => e.split(" ")[2]).sort();
    assert.deepEqual(audited, [...created].sort());
    assert.ok(
      server.requestsMatching("POST", /\/virtualmachines$/).length < 20,
      "stopped creating",
    );
  } finally {
    await close();
  }
});

Deno.test("run: a VM create in flight at Ctrl-C that lands is rolled back with its Secret, and audited", async () => {
  const ctl = new AbortController();
  // Ctrl-C arrives while the second VM's POST is at the server: the client gives up on it, the
  // server creates the VM anyway (as a real API server does with a request it already read).
  const { server, client, close } = await startCluster({
    inject: (r) => {
      if (r.method === "POST" && r.resource === "virtualmachines" && !ctl.signal.aborted) {
        if (server.objects("virtualmachines").length === 1) ctl.abort(new Error("SIGINT"));
      }
      return undefined;
    },
  }, { signal: ctl.signal });
  try {
    const auditor = recordingAuditor();
    const result = await withinDeadline(
      executeRun(client, plan(["cpu"], { vmCount: 3, ssh: true }), {
        timeoutSeconds: 5,
        pollIntervalSeconds: 0.05,
        concurrency: 1,
        signal: ctl.signal,
        record: auditSubscriber(auditor),
      }),
      60_000,
      "the interrupted run did not end",
    );
    assert.equal(ctl.signal.aborted, true, "the second VM's create reached the server");
    assert.equal(result.interrupted, true);
    assert.deepEqual(result.vms.map((v) => v.outcome), ["created", "rolled back", "skipped"]);
    assert.match(result.vms[1]!.error!, /in flight at the interrupt.*deleted/);
    assert.deepEqual(result.secrets.map((s) => s.outcome), ["created", "rolled back", "skipped"]);
    // Exactly what the result calls created is on the server.
    assert.deepEqual(server.objects("virtualmachines").map((o) => o.metadata.name), [
      "virtwork-cpu-1",
    ]);
    assert.deepEqual(server.objects("secrets").map((o) => o.metadata.name), [
      "virtwork-cpu-1-userdata",
    ]);
    assert.equal(server.requestsMatching("DELETE", /virtwork-cpu-2$/).length, 1);
    assert.ok(auditor.events.includes("event RolledBack VirtualMachine/virtwork-cpu-2"));
    assert.ok(auditor.events.includes("event RolledBack Secret/virtwork-cpu-2-userdata"));
    assert.ok(!auditor.events.some((e) => e.startsWith("created VirtualMachine virtwork-cpu-2")));
  } finally {
    await close();
  }
});

Deno.test("run: a Failed VMI or a VM in an error state ends its wait at once as failed", async () => {
  const { server, client, close } = await startCluster({
    readyAfterMs: (name) => (name.endsWith("-1") ? 0 : undefined),
  });
  try {
    // Once the run waits, -2's VMI fails and -3's VM cannot be scheduled. The timeout is an hour:
    // a run that waited for it would miss the generous deadline below.
    let broken = false;
    const auditor = recordingAuditor();
    const result = await withinDeadline(
      executeRun(client, plan(["cpu"], { vmCount: 3 }), {
        timeoutSeconds: 3600,
        pollIntervalSeconds: 0.05,
        record: auditSubscriber(auditor),
        onProgress: (m) => {
          if (!broken && m.startsWith("waiting for")) {
            broken = true;
            server.failVmi("virtwork", "virtwork-cpu-2", "CrashedForTest");
            server.setVmPrintableStatus("virtwork", "virtwork-cpu-3", "ErrorUnschedulable");
          }
        },
      }),
      60_000,
      "the run did not end once every VM was ready or failed",
    );
    assert.equal(broken, true, "the run waited");
    assert.equal(result.timedOut, false);
    assert.equal(result.interrupted, false);
    const [one, two, three] = result.vms;
    assert.equal(one!.ready, true);
    assert.deepEqual([two!.ready, two!.failed, two!.phase], [false, true, "Failed"]);
    assert.match(two!.error!, /failed: VMI phase Failed \(CrashedForTest\)/);
    assert.deepEqual([three!.ready, three!.failed, three!.phase], [
      false,
      true,
      "ErrorUnschedulable",
    ]);
    assert.match(three!.error!, /failed: VM status ErrorUnschedulable/);
    assert.ok(auditor.events.includes("event VmFailed VirtualMachine/virtwork-cpu-2"));
    assert.ok(auditor.events.includes("event VmFailed VirtualMachine/virtwork-cpu-3"));
    assert.ok(auditor.events.includes("end false"));
  } finally {
    await close();
  }
});

Deno.test("run: a Service create in flight at Ctrl-C is rolled back and no VM is created", async () => {
  const ctl = new AbortController();
  const { server, client, close } = await startCluster({
    inject: (r) => {
      if (r.method === "POST" && r.resource === "services") ctl.abort(new Error("SIGINT"));
      return undefined;
    },
  }, { signal: ctl.signal });
  try {
    const auditor = recordingAuditor();
    const result = await withinDeadline(
      executeRun(client, plan(["network"]), {
        timeoutSeconds: 5,
        pollIntervalSeconds: 0.05,
        signal: ctl.signal,
        record: auditSubscriber(auditor),
      }),
      60_000,
      "the interrupted run did not end",
    );
    assert.equal(result.interrupted, true);
    assert.equal(result.namespaceOutcome, "created");
    assert.deepEqual(result.services.map((s) => s.outcome), ["rolled back"]);
    assert.deepEqual(result.vms.map((v) => v.outcome), ["skipped", "skipped"]);
    assert.equal(server.objects("services").length, 0);
    assert.equal(server.objects("virtualmachines").length, 0);
    assert.ok(auditor.events.includes("event RolledBack Service/virtwork-iperf3-server"));
    assert.ok(auditor.events.includes("end false"));
  } finally {
    await close();
  }
});
