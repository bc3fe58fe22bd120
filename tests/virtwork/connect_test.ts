/** Finding the cluster: in-cluster, --kubeconfig, KUBECONFIG, ~/.kube/config, --context. */
import assert from "node:assert/strict";
import { KubeConfig } from "npm:@kubernetes/client-node@^2.0.1";
import { KubeClient, loadKubeConfig, SERVICE_ACCOUNT_ROOT } from "../../lib/kubevirt/client.ts";
import { ConnectionError } from "../../lib/kubevirt/errors.ts";
import { K8sTestServer } from "./k8s_server.ts";
import { selfSignedCert } from "./_helpers.ts";
import { requireTool, testNeeding } from "../_require.ts";

function kubeconfig(server: string, contexts = ["main"]): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server, "insecure-skip-tls-verify": true } }],
    users: [{ name: "u", user: { token: "t" } }],
    contexts: contexts.map((name) => ({ name, context: { cluster: "c", user: "u" } })),
    "current-context": contexts[0],
  });
}

async function tempTree(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "virtwork-connect-" });
}

Deno.test("loadKubeConfig(): nothing found names everything tried", async () => {
  const dir = await tempTree();
  try {
    assert.throws(
      () =>
        loadKubeConfig({
          env: { HOME: dir, KUBECONFIG: `${dir}/a:${dir}/b` },
          serviceAccountPrefix: dir,
        }),
      (e: unknown) => {
        assert.ok(e instanceof ConnectionError);
        assert.match(e.message, /no cluster configuration found/);
        assert.deepEqual(e.tried, [
          "in-cluster service account",
          `KUBECONFIG ${dir}/a`,
          `KUBECONFIG ${dir}/b`,
          `default ${dir}/.kube/config`,
        ]);
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadKubeConfig(): in-cluster service account comes first", async () => {
  const dir = await tempTree();
  try {
    await Deno.mkdir(`${dir}${SERVICE_ACCOUNT_ROOT}`, { recursive: true });
    await Deno.writeTextFile(`${dir}${SERVICE_ACCOUNT_ROOT}/token`, "sa-token");
    await Deno.mkdir(`${dir}/.kube`);
    await Deno.writeTextFile(`${dir}/.kube/config`, kubeconfig("http://127.0.0.1:1"));
    const { kubeConfig, source } = loadKubeConfig({
      env: { HOME: dir, KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443" },
      serviceAccountPrefix: dir,
    });
    assert.equal(source, "in-cluster service account");
    assert.equal(kubeConfig.getCurrentCluster()?.server, "https://10.0.0.1:443");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadKubeConfig(): KUBECONFIG before ~/.kube/config; first existing entry wins", async () => {
  const dir = await tempTree();
  try {
    await Deno.writeTextFile(`${dir}/kc`, kubeconfig("http://127.0.0.1:2"));
    await Deno.mkdir(`${dir}/.kube`);
    await Deno.writeTextFile(`${dir}/.kube/config`, kubeconfig("http://127.0.0.1:3"));
    const env = { HOME: dir, KUBECONFIG: `${dir}/missing:${dir}/kc` };
    const a = loadKubeConfig({ env, serviceAccountPrefix: dir });
    assert.equal(a.source, `KUBECONFIG ${dir}/kc`);
    assert.equal(a.kubeConfig.getCurrentCluster()?.server, "http://127.0.0.1:2");
    const b = loadKubeConfig({ env: { HOME: dir }, serviceAccountPrefix: dir });
    assert.equal(b.source, `default ${dir}/.kube/config`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadKubeConfig(): --kubeconfig is used alone; --context selects a context", async () => {
  const dir = await tempTree();
  try {
    await Deno.writeTextFile(`${dir}/kc`, kubeconfig("http://127.0.0.1:4", ["one", "two"]));
    const { kubeConfig } = loadKubeConfig({ kubeconfig: `${dir}/kc`, context: "two", env: {} });
    assert.equal(kubeConfig.getCurrentContext(), "two");
    assert.throws(
      () => loadKubeConfig({ kubeconfig: `${dir}/kc`, context: "three", env: {} }),
      /context "three" not found .* \(contexts: one, two\)/,
    );
    assert.throws(
      () => loadKubeConfig({ kubeconfig: `${dir}/nope`, env: { KUBECONFIG: `${dir}/kc` } }),
      (e: unknown) => e instanceof ConnectionError && e.tried.length === 1,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("KubeClient: an unreachable server is a ConnectionError after retries", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close(); // nothing listens on this port now
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig(`http://127.0.0.1:${port}`));
  const retries: number[] = [];
  const client = new KubeClient(kc, {
    maxAttempts: 3,
    baseBackoffMs: 1,
    onRetry: (_op, attempt) => retries.push(attempt),
  });
  const err = await client.list("secrets", "x").catch((e) => e);
  assert.ok(err instanceof ConnectionError, String(err));
  assert.match(err.message, new RegExp(`cannot reach http://127.0.0.1:${port}`));
  assert.deepEqual(retries, [1, 2]);
});

const cert = await selfSignedCert();
const noCert = requireTool("openssl") ??
  (cert ? null : "openssl could not make a self-signed certificate");

testNeeding(noCert, {
  name: "KubeClient over HTTPS: trusts the kubeconfig's CA and rejects a server it cannot verify",
  async fn() {
    const other = await selfSignedCert();
    const server = K8sTestServer.start({ tls: { ...cert!, ca: cert!.cert } });
    try {
      const kc = new KubeConfig();
      kc.loadFromString(server.kubeconfig());
      assert.match(server.url, /^https:/);
      const client = new KubeClient(kc, { maxAttempts: 1 });
      assert.deepEqual(await client.list("secrets", "x"), []);
      const wrong = new KubeConfig();
      wrong.loadFromString(server.kubeconfig().replace(btoa(cert!.cert), btoa(other!.cert)));
      const err = await new KubeClient(wrong, { maxAttempts: 1 }).list("secrets", "x").catch((e) =>
        e
      );
      assert.ok(err instanceof ConnectionError, String(err));
      assert.equal(server.requests.length, 1, "the unverified connection sent no request");
    } finally {
      await server.close();
    }
  },
});

/** A TCP pass-through in front of `port` that counts the connections made through it. */
function countingProxy(port: number): { port: number; count: () => number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let count = 0;
  (async () => {
    for await (const client of listener) {
      count++;
      conns.add(client);
      (async () => {
        const target = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.add(target);
        await Promise.all([
          client.readable.pipeTo(target.writable).catch(() => {}),
          target.readable.pipeTo(client.writable).catch(() => {}),
        ]);
      })().catch(() => {});
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    count: () => count,
    close: () => {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
    },
  };
}

testNeeding(noCert, {
  name: "KubeClient over HTTPS reuses its connections: 40 requests, 4 at a time, not 40 handshakes",
  async fn() {
    const server = K8sTestServer.start({ tls: { ...cert!, ca: cert!.cert } });
    server.seed("namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "x" } });
    const proxy = countingProxy(Number(new URL(server.url).port));
    try {
      const kc = new KubeConfig();
      kc.loadFromString(server.kubeconfig().replace(server.url, `https://127.0.0.1:${proxy.port}`));
      const client = new KubeClient(kc, { maxAttempts: 1, qps: 1000, burst: 1000 });
      let next = 0;
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (next < 40) {
          const i = next++;
          await client.create("secrets", "x", {
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name: `s-${i}` },
          });
        }
      }));
      assert.equal(server.objects("secrets").length, 40);
      // One connection per request in flight at once (a few more if one was closed meanwhile).
      assert.ok(proxy.count() <= 8, `${proxy.count()} connections for 40 requests`);
    } finally {
      proxy.close();
      await server.close();
    }
  },
});
