import { KubeConfig } from "npm:@kubernetes/client-node@^2.0.1";
import { type ClientOptions, KubeClient } from "../../lib/kubevirt/client.ts";
import { K8sTestServer, type K8sTestServerOptions } from "./k8s_server.ts";
import { KUBEVIRT_SCHEMA_PATH, OpenApiValidator } from "./openapi_validator.ts";
import { requireSchemas } from "../_require.ts";

let validator: OpenApiValidator | undefined;

/**
 * The KubeVirt schema validator, loaded once. The schema is required in every mode: the Kubernetes
 * API test server validates every VM against it, and no test may pass without that check.
 */
export async function kubevirtValidator(): Promise<OpenApiValidator> {
  const missing = requireSchemas();
  if (missing) throw new Error(`required: ${missing}`);
  validator ??= await OpenApiValidator.fromFile(KUBEVIRT_SCHEMA_PATH);
  return validator;
}

/** Starts a test server that validates VMs, and a real client for it with fast retries. */
export async function startCluster(
  opts: K8sTestServerOptions = {},
  clientOpts: ClientOptions = {},
): Promise<{ server: K8sTestServer; client: KubeClient; close: () => Promise<void> }> {
  const server = K8sTestServer.start({ validator: await kubevirtValidator(), ...opts });
  const kc = new KubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc, {
    baseBackoffMs: 5,
    maxBackoffMs: 50,
    qps: 1000,
    burst: 1000,
    ...clientOpts,
  });
  return { server, client, close: () => server.close() };
}

/**
 * A TCP proxy in front of a test server that drops the first `drops` connections after forwarding
 * the request but before any response byte reaches the client: the server acted, the client saw
 * its connection closed (as after a reset).
 */
export function startDroppingProxy(
  targetPort: number,
  drops: number,
): { port: number; dropped: () => number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let dropped = 0;
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const client of listener) {
      conns.add(client);
      const drop = dropped < drops;
      if (drop) dropped++;
      (async () => {
        const target = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
        conns.add(target);
        const up = client.readable.pipeTo(target.writable).catch(() => {});
        if (drop) {
          const reader = target.readable.getReader();
          await reader.read().catch(() => {}); // the server answered; nobody will see it
          reader.releaseLock();
          try {
            client.close();
          } catch { /* already closed */ }
          try {
            target.close();
          } catch { /* already closed */ }
        } else {
          await target.readable.pipeTo(client.writable).catch(() => {});
        }
        await up;
        conns.delete(client);
        conns.delete(target);
      })().catch(() => {});
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    dropped: () => dropped,
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

/**
 * A self-signed certificate for 127.0.0.1 made with openssl, or `undefined` when openssl is
 * missing. The certificate is its own CA.
 */
export async function selfSignedCert(): Promise<{ cert: string; key: string } | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "virtwork-tls-" });
  try {
    const out = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output().catch(() => undefined);
    if (!out || out.code !== 0) return undefined;
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
