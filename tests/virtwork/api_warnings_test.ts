/**
 * The API server's warnings reach the user: a cluster whose KubeVirt does not know a field of
 * virtwork's manifests drops it (fieldValidation=Warn, the default) and says so in a `Warning`
 * header; `virtwork run` prints it, as kubectl does, instead of going on silently.
 */
import assert from "node:assert/strict";
import { main } from "../../cli/virtwork.ts";
import { noopAuditor } from "../../lib/audit/mod.ts";
import { parseWarnings } from "../../lib/kubevirt/client.ts";
import { K8sTestServer } from "./k8s_server.ts";
import { KUBEVIRT_SCHEMA_PATH, OpenApiValidator } from "./openapi_validator.ts";

Deno.test("parseWarnings(): one or several 299 warnings, quotes unescaped", () => {
  assert.deepEqual(parseWarnings(undefined), []);
  assert.deepEqual(parseWarnings('299 - "unknown field \\"spec.foo\\""'), [
    'unknown field "spec.foo"',
  ]);
  assert.deepEqual(
    parseWarnings('299 - "unknown field \\"a\\"", 299 - "unknown field \\"b\\""'),
    ['unknown field "a"', 'unknown field "b"'],
  );
});

Deno.test("run on a KubeVirt that does not know spec.runStrategy: the dropped field is reported", async () => {
  const schema = JSON.parse(await Deno.readTextFile(KUBEVIRT_SCHEMA_PATH));
  assert.ok(schema.definitions["v1.VirtualMachineSpec"].properties.runStrategy);
  delete schema.definitions["v1.VirtualMachineSpec"].properties.runStrategy;
  const server = K8sTestServer.start({ validator: new OpenApiValidator(schema) });
  const kubeconfig = await server.writeKubeconfig();
  try {
    let out = "";
    let err = "";
    const code = await main(
      ["run", "--workloads", "cpu", "--no-wait"],
      { out: (s) => (out += s), err: (s) => (err += s) },
      { env: { KUBECONFIG: kubeconfig, HOME: "/nonexistent" }, auditor: noopAuditor },
    );
    assert.equal(code, 0, err);
    assert.match(
      err,
      /^Warning: create VirtualMachine virtwork\/virtwork-cpu-1: unknown field "spec\.runStrategy"$/m,
    );
    assert.equal(server.objects("virtualmachines")[0]!.spec.runStrategy, undefined, "dropped");
    assert.match(out, /1 VMs created/);
  } finally {
    await server.close();
    await Deno.remove(kubeconfig);
  }
});
