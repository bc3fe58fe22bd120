/**
 * `virtwork run --target libvirt` and `cleanup --target libvirt` through the CLI against the real
 * libvirtd, without creating anything: the dry run asks the daemon which addresses are taken and
 * prints foundry specs (labelled with the run id, addresses from the subnet, the client given its
 * server's address); a cleanup of a run that has no VMs removes nothing and says so. The run that
 * boots guests is tests/e2e/virtwork_libvirt_test.ts.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "npm:yaml@^2.9.1";
import { main } from "../../cli/virtwork.ts";
import { noopAuditor } from "../../lib/audit/mod.ts";
import { libvirtSkipReason, uniqueName } from "../libvirt/_env.ts";
import { testNeeding } from "../_require.ts";

async function virtwork(args: string[]) {
  let out = "";
  let err = "";
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s) }, {
    env: { HOME: "/nonexistent" },
    auditor: noopAuditor,
  });
  return { code, out, err };
}

// deno-lint-ignore no-explicit-any
type Any = any;

testNeeding(libvirtSkipReason, {
  name: "run --dry-run --target libvirt prints foundry specs with addresses from the subnet",
  async fn() {
    // TEST-NET-2: no VM of this host has an address there.
    const r = await virtwork([
      "run",
      "--dry-run",
      "--target",
      "libvirt",
      "--image",
      "debian-12.qcow2",
      "--bridge",
      "br-vwcli",
      "--subnet",
      "198.51.100.0/24",
      "--workloads",
      "cpu,network",
      "--cpu-cores",
      "1",
      "--memory",
      "1Gi",
    ]);
    assert.equal(r.code, 0, r.err);
    const docs = parseAllDocuments(r.out).map((d) => d.toJS() as Any);
    assert.deepEqual(docs.map((d) => d.metadata.name), [
      "virtwork-cpu-1",
      "virtwork-network-server-1",
      "virtwork-network-client-1",
    ]);
    const runIds = new Set(docs.map((d) => d.metadata.labels["virtwork/run-id"]));
    assert.equal(runIds.size, 1);
    const ips = docs.map((d) => d.spec.networkInterfaces[0].ip as string);
    assert.equal(new Set(ips).size, 3, "every VM its own address");
    for (const d of docs) {
      assert.equal(d.kind, "VirtualMachine");
      assert.equal(d.spec.vcpus, 1);
      assert.equal(d.spec.networkInterfaces[0].bridge, "br-vwcli");
      assert.match(d.spec.networkInterfaces[0].ip, /^198\.51\.100\.\d+\/24$/);
    }
    const serverIp = ips[1]!.split("/")[0]!;
    assert.ok(
      JSON.stringify(docs[2].spec.cloudInit).includes(serverIp),
      "the client's user data names its server's address",
    );
    assert.ok(!JSON.stringify(docs[0].spec.cloudInit).includes(serverIp));
    // -o json: the same specs as one array.
    const json = await virtwork([
      "run",
      "--dry-run",
      "--target",
      "libvirt",
      "--image",
      "debian-12.qcow2",
      "--bridge",
      "br-vwcli",
      "--subnet",
      "198.51.100.0/24",
      "--workloads",
      "cpu",
      "-o",
      "json",
    ]);
    assert.equal(json.code, 0, json.err);
    const specs = JSON.parse(json.out);
    assert.ok(Array.isArray(specs));
    assert.deepEqual(specs.map((s: Any) => [s.kind, s.metadata.name]), [
      ["VirtualMachine", "virtwork-cpu-1"],
    ]);
  },
});

testNeeding(libvirtSkipReason, {
  name: "cleanup --target libvirt --run-id of a run without VMs removes nothing and says so",
  async fn() {
    const runId = uniqueName("vwcli");
    const r = await virtwork(["cleanup", "--target", "libvirt", "--run-id", runId]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Cleanup of qemu:\/\/\/system:$/m);
    assert.match(r.out, /deleted nothing/);
    assert.match(r.out, new RegExp(`no VMs of run ${runId} found`));
    assert.match(r.out, /0 errors/);
    const json = await virtwork([
      "cleanup",
      "--target",
      "libvirt",
      "--run-id",
      runId,
      "-o",
      "json",
    ]);
    assert.equal(json.code, 0, json.err);
    const doc = JSON.parse(json.out);
    assert.deepEqual([doc.runId, doc.deleted, doc.errors], [runId, {}, []]);
  },
});
