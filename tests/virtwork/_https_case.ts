/**
 * The HTTPS case of connect_test.ts, run there in a child process; not found by `deno test`'s
 * default pattern on its own.
 */
import assert from "node:assert/strict";
import { KubeConfig } from "npm:@kubernetes/client-node@^2.0.1";
import { KubeClient } from "../../lib/kubevirt/client.ts";
import { ConnectionError } from "../../lib/kubevirt/errors.ts";
import { K8sTestServer } from "./k8s_server.ts";
import { selfSignedCert } from "./_helpers.ts";

const cert = await selfSignedCert();
if (!cert) console.warn("skipped: TLS tests need openssl (Debian package openssl)");

Deno.test({
  name: "KubeClient over HTTPS: trusts the kubeconfig's CA and rejects a server it cannot verify",
  ignore: !cert,
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
