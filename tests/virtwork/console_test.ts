/**
 * The VMI console subresource through the real @kubernetes/client-node websocket path, against the
 * Kubernetes API test server: result lines arrive and parse, refusals are clear errors, and the
 * reader stays within its duration and byte bounds.
 */
import assert from "node:assert/strict";
import { KubeConfig } from "npm:@kubernetes/client-node@^2.0.1";
import {
  CONSOLE_SUBPROTOCOL,
  openVmiConsole,
  readConsoleResults,
} from "../../lib/kubevirt/console.ts";
import { KubeClient } from "../../lib/kubevirt/client.ts";
import { ConnectionError, KubeApiError } from "../../lib/kubevirt/errors.ts";
import { collectConsoleResults } from "../../lib/virtwork/console_results.ts";
import { RESULT_MARKER } from "../../lib/virtwork/results.ts";
import { K8sTestServer, type K8sTestServerOptions } from "./k8s_server.ts";
import { selfSignedCert } from "./_helpers.ts";

const NS = "vw-console";

function result(workload: string, metrics: Record<string, number>, t = 1764669600): string {
  return `${RESULT_MARKER}${JSON.stringify({ v: 1, workload, t, metrics })}`;
}

function start(opts: K8sTestServerOptions = {}): { server: K8sTestServer; kc: KubeConfig } {
  const server = K8sTestServer.start(opts);
  const kc = new KubeConfig();
  kc.loadFromString(server.kubeconfig());
  return { server, kc };
}

function runningVmi(server: K8sTestServer, name: string, phase = "Running"): void {
  server.seed("virtualmachineinstances", {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name, namespace: NS },
    spec: {},
    status: { phase },
  });
}

/** Fails when `p` has not settled after `ms`: a guard against a hang, never a measure of speed. */
function hangGuard<T>(p: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

/** Waits until the server has no console open (its close handler runs after ours resolves). */
async function noConsoleLeft(server: K8sTestServer): Promise<void> {
  await hangGuard(
    (async () => {
      while (server.openConsoles > 0) await new Promise((r) => setTimeout(r, 10));
    })(),
    "console sockets still open",
  );
}

Deno.test("console: result lines from the VMI's console arrive and parse, noise is skipped", async () => {
  const { server, kc } = start();
  try {
    runningVmi(server, "vm-a");
    server.setConsole(
      NS,
      "vm-a",
      [
        "[    0.000000] Linux version 6.1.0",
        result("cpu", { bogo_ops_per_s: 1234.5 }),
        `[   12.5] kernel noise ${result("disk", { write_iops: 850, read_p99_ms: 4.1 })}`,
        `${RESULT_MARKER}{not json`,
        "login: ",
      ],
      0,
      { end: true },
    );
    const seen: string[] = [];
    const samples = await hangGuard(
      readConsoleResults(kc, NS, "vm-a", 60_000, { onSample: (s) => seen.push(s.workload) }),
      "readConsoleResults",
    );
    assert.deepEqual(samples, [
      { workload: "cpu", t: 1764669600, metrics: { bogo_ops_per_s: 1234.5 } },
      { workload: "disk", t: 1764669600, metrics: { write_iops: 850, read_p99_ms: 4.1 } },
    ]);
    assert.deepEqual(seen, ["cpu", "disk"]);
    // The kubeconfig's bearer token went with the upgrade, on the subresource's path.
    const reqs = server.requestsMatching(
      "GET",
      /^\/apis\/subresources\.kubevirt\.io\/v1\/namespaces\/vw-console\/virtualmachineinstances\/vm-a\/console$/,
    );
    assert.equal(reqs.length, 1);
    await noConsoleLeft(server);
  } finally {
    await server.close();
  }
});

Deno.test("console: the duration bounds a console that never ends, and it is closed after", async () => {
  const { server, kc } = start();
  try {
    runningVmi(server, "vm-b");
    server.setConsole(NS, "vm-b", [result("memory", { bogo_ops_per_s: 7 })]);
    const con = await openVmiConsole(kc, NS, "vm-b");
    const out = await hangGuard(collectConsoleResults(con, 300), "collect");
    assert.equal(out.end, "duration");
    assert.deepEqual(out.samples.map((s) => s.metrics), [{ bogo_ops_per_s: 7 }]);
    await noConsoleLeft(server);
  } finally {
    await server.close();
  }
});

Deno.test("console: reading stops at maxBytes", async () => {
  const { server, kc } = start();
  try {
    runningVmi(server, "vm-c");
    const filler = "x".repeat(1000);
    server.setConsole(NS, "vm-c", Array.from({ length: 50 }, () => filler));
    const con = await openVmiConsole(kc, NS, "vm-c");
    const out = await hangGuard(collectConsoleResults(con, 60_000, { maxBytes: 5000 }), "collect");
    assert.equal(out.end, "maxBytes");
    assert.ok(out.bytes >= 5000 && out.bytes < 5000 + 1001 * 2, `read ${out.bytes} bytes`);
    await noConsoleLeft(server);
  } finally {
    await server.close();
  }
});

Deno.test("console: an unknown VMI is a 404 and a stopped one a 400, named in the error", async () => {
  const { server, kc } = start();
  try {
    const missing = await readConsoleResults(kc, NS, "nope", 1000).then(
      () => assert.fail("read the console of a VMI that does not exist"),
      (e) => e,
    );
    assert.ok(missing instanceof KubeApiError, String(missing));
    assert.equal(missing.status, 404);
    assert.equal(missing.reason, "NotFound");
    assert.match(missing.message, /console of VirtualMachineInstance vw-console\/nope: 404/);
    assert.match(missing.message, /"nope" not found/);

    runningVmi(server, "vm-sched", "Scheduling");
    const stopped = await readConsoleResults(kc, NS, "vm-sched", 1000).then(
      () => assert.fail("read the console of a VMI that is not running"),
      (e) => e,
    );
    assert.ok(stopped instanceof KubeApiError, String(stopped));
    assert.equal(stopped.status, 400);
    assert.match(stopped.message, /VMI is not running/);
    assert.equal(server.openConsoles, 0);
  } finally {
    await server.close();
  }
});

Deno.test("console: a server that answers no subprotocol is refused clearly", async () => {
  const { server, kc } = start();
  try {
    runningVmi(server, "vm-d");
    server.setConsole(NS, "vm-d", [result("cpu", { bogo_ops_per_s: 1 })]);
    server.consoleSubprotocol = null;
    const err = await readConsoleResults(kc, NS, "vm-d", 1000).then(
      () => assert.fail("accepted a console without plain.kubevirt.io"),
      (e) => e,
    );
    assert.ok(err instanceof ConnectionError, String(err));
    assert.ok(err.message.includes(CONSOLE_SUBPROTOCOL), err.message);
    assert.match(err.message, /vw-console\/vm-d/);
    await noConsoleLeft(server);
  } finally {
    await server.close();
  }
});

Deno.test("console: a wrong token is a 401; input written reaches the guest", async () => {
  const { server, kc } = start({ token: "s3cret" });
  try {
    runningVmi(server, "vm-e");
    const con = await openVmiConsole(kc, NS, "vm-e");
    await con.write(new TextEncoder().encode("root\r"));
    await con.close();
    await noConsoleLeft(server);
    const got = server.consoleInput.get(`${NS}/vm-e`) ?? [];
    assert.equal(new TextDecoder().decode(got[0]), "root\r");

    const bad = new KubeConfig();
    bad.loadFromString(server.kubeconfig().replace("s3cret", "wrong"));
    const err = await readConsoleResults(bad, NS, "vm-e", 1000).then(
      () => assert.fail("a wrong token was accepted"),
      (e) => e,
    );
    assert.ok(err instanceof KubeApiError, String(err));
    assert.equal(err.status, 401);
    assert.ok(!err.message.includes("wrong"), "the token leaked into the error");
  } finally {
    await server.close();
  }
});

Deno.test("console: the signal stops a read and rejects with its reason", async () => {
  const { server, kc } = start();
  try {
    runningVmi(server, "vm-f");
    server.setConsole(NS, "vm-f", [result("cpu", { bogo_ops_per_s: 3 })]);
    const ac = new AbortController();
    const reading = readConsoleResults(kc, NS, "vm-f", 600_000, {
      signal: ac.signal,
      onSample: () => ac.abort(new Error("stop now")),
    });
    await assert.rejects(hangGuard(reading, "aborted read"), /stop now/);
    await noConsoleLeft(server);
    // An already aborted signal connects nothing.
    const before = server.requests.length;
    await assert.rejects(
      readConsoleResults(kc, NS, "vm-f", 1000, { signal: ac.signal }),
      /stop now/,
    );
    assert.equal(server.requests.length, before);
  } finally {
    await server.close();
  }
});

Deno.test("console: over HTTPS the kubeconfig's CA verifies the server", async (t) => {
  const tls = await selfSignedCert();
  if (!tls) {
    t.step({ name: "openssl missing: skipped", ignore: true, fn: () => {} });
    return;
  }
  const { server, kc } = start({ tls: { ...tls, ca: tls.cert } });
  try {
    runningVmi(server, "vm-g");
    server.setConsole(NS, "vm-g", [result("network", { sent_mbit_per_s: 940 })], 0, { end: true });
    const samples = await hangGuard(readConsoleResults(kc, NS, "vm-g", 60_000), "https read");
    assert.deepEqual(samples.map((s) => s.metrics), [{ sent_mbit_per_s: 940 }]);
  } finally {
    await server.close();
  }
});

Deno.test("console: a KubeClient works as the configuration source", async () => {
  const { server, kc } = start();
  try {
    runningVmi(server, "vm-h");
    server.setConsole(NS, "vm-h", [result("database", { tps: 420 })], 0, { end: true });
    const client = new KubeClient(kc);
    const samples = await hangGuard(readConsoleResults(client, NS, "vm-h", 60_000), "read");
    assert.deepEqual(samples.map((s) => s.metrics), [{ tps: 420 }]);
  } finally {
    await server.close();
  }
});
