/**
 * Set-up shared by the watch and readiness tests: a VirtualMachine manifest of one run, the API
 * test server with the test's Namespace and a {@linkcode HttpWatchApi} on it, and fresh counters.
 * @module
 */
import { KubeConfig } from "npm:@kubernetes/client-node@^2.0.1";
import { type FollowStats, HttpWatchApi } from "../../lib/kubevirt/watch.ts";
import { K8sTestServer, type K8sTestServerOptions } from "./k8s_server.ts";

/** A VirtualMachine of run `runId` in `namespace` that runs always (the server starts its VMI). */
export function vmManifest(
  name: string,
  namespace: string,
  runId: string,
): Record<string, unknown> {
  const labels = { "app.kubernetes.io/managed-by": "virtwork", "virtwork/run-id": runId };
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name, namespace, labels },
    spec: { runStrategy: "Always", template: { metadata: { labels }, spec: {} } },
  };
}

/** A client configuration for `server`. */
export function kubeConfigOf(server: K8sTestServer): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(server.kubeconfig());
  return kc;
}

/**
 * Runs `fn` with a test server holding Namespace `namespace` and a watch API on it; the server is
 * closed afterwards, even on failure.
 */
export async function withWatchServer(
  namespace: string,
  opts: K8sTestServerOptions,
  fn: (s: K8sTestServer, api: HttpWatchApi) => Promise<void>,
): Promise<void> {
  const server = K8sTestServer.start(opts);
  try {
    server.seed("namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: namespace },
    });
    await fn(server, new HttpWatchApi(kubeConfigOf(server)));
  } finally {
    await server.close();
  }
}

/** Counters of a follow that has done nothing yet. */
export function freshStats(): FollowStats {
  return { lists: 0, watches: 0, resumes: 0, relists: 0 };
}
