import { KubeConfig } from "npm:@kubernetes/client-node@^2.0.1";
import { type ClientOptions, KubeClient } from "../../lib/kubevirt/client.ts";
import { K8sTestServer, type K8sTestServerOptions } from "./k8s_server.ts";
import { KUBEVIRT_SCHEMA_PATH, OpenApiValidator } from "./openapi_validator.ts";

let validator: OpenApiValidator | undefined;

/** The KubeVirt schema validator, loaded once. */
export async function kubevirtValidator(): Promise<OpenApiValidator> {
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
