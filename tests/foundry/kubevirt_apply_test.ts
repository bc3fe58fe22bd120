/**
 * `foundry apply -f FILE --target kubevirt` and `foundry diff -f FILE --target kubevirt` through
 * main(), against the Kubernetes API test server (real HTTP, the real `@kubernetes/client-node`,
 * VirtualMachines validated against KubeVirt's schema on create and update).
 */
import assert from "node:assert/strict";
import { main } from "../../cli/foundry.ts";
import { FAKE_PASSWORD_HASH, fakeSshKey } from "../../lib/foundry/_testdata.ts";
import { K8sTestServer, type RequestInfo } from "../virtwork/k8s_server.ts";
import { kubevirtValidator } from "../virtwork/_helpers.ts";

const NS = "s6h3-ns";
const IMAGE = "https://images.example.org/debian-12.qcow2";
// deno-lint-ignore no-explicit-any
type Any = any;

/** Everything any run printed, to check no secret was among it. */
const printed: string[] = [];

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, {
    out: (s: string) => void out.push(s),
    err: (s: string) => void err.push(s),
  }, { env: { HOME: "/nonexistent-s6h3" } });
  printed.push(out.join(""), err.join(""));
  return { code, out: out.join(""), err: err.join("") };
}

interface Spec {
  vcpus?: number;
  memoryGiB?: number;
  labels?: string;
  bridges?: string[];
  disks?: string[];
  image?: string;
  extra?: string;
}

function vmYaml(name: string, o: Spec = {}): string {
  const nics = (o.bridges ?? ["br0"]).map((b, i) =>
    `    - ip: 192.0.2.${30 + i}/24\n      gateway: 192.0.2.1\n      bridge: ${b}\n` +
    (i > 0 ? "      defaultRoute: false\n" : "")
  ).join("");
  const disks = (o.disks ?? ["vdb"]).map((d) => `    - device: ${d}\n      sizeGB: 2\n`).join("");
  return `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
  labels:
${o.labels ?? "    role: web\n"}spec:
  vcpus: ${o.vcpus ?? 2}
  memoryGiB: ${o.memoryGiB ?? 1}
  bootDisk:
    sizeGB: 10
    image: ${o.image ?? "debian-12.qcow2"}
  dataDisks:
${disks}  networkInterfaces:
${nics}  cloudInit:
    sshAuthorizedKeys:
      - ${fakeSshKey()}
    passwordHash: "${FAKE_PASSWORD_HASH}"
${o.extra ?? ""}`;
}

interface Env {
  server: K8sTestServer;
  file: (name: string, text: string) => Promise<string>;
  apply: (file: string, ...more: string[]) => ReturnType<typeof run>;
  diff: (file: string, ...more: string[]) => ReturnType<typeof run>;
  cluster: string[];
  close: () => Promise<void>;
}

async function env(): Promise<Env> {
  const server = K8sTestServer.start({
    validator: await kubevirtValidator(),
    readyAfterMs: () => 0,
  });
  server.seed("namespaces", { metadata: { name: NS } });
  const kubeconfig = await server.writeKubeconfig();
  const dir = await Deno.makeTempDir({ prefix: "s6h3-kubevirt-apply-" });
  const cluster = ["--target", "kubevirt", "--kubeconfig", kubeconfig, "-n", NS];
  const common = [...cluster, "--image-url", IMAGE, "--audit-db", `${dir}/audit.db`];
  return {
    server,
    file: async (name, text) => {
      const p = `${dir}/${name}`;
      await Deno.writeTextFile(p, text);
      return p;
    },
    apply: (file, ...more) => run(["apply", "-f", file, ...common, ...more]),
    diff: (file, ...more) => run(["diff", "-f", file, ...common, ...more]),
    cluster,
    close: async () => {
      await server.close();
      await Deno.remove(kubeconfig).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

const writes = (server: K8sTestServer) =>
  server.requests.filter((r) => r.method !== "GET").map((r) => `${r.method} ${r.path}`);

const theVm = (server: K8sTestServer, name: string): Any =>
  server.objects("virtualmachines", NS).find((o: Any) => o.metadata.name === name);

const storedSpec = (vm: Any) => JSON.parse(vm.metadata.annotations["foundry.cofront.xyz/spec"]);

Deno.test("apply --target kubevirt creates a missing VM, then changes nothing when run again", async () => {
  const e = await env();
  try {
    const file = await e.file("s6h3-a.yaml", vmYaml("s6h3-a"));
    const first = await e.apply(file, "--create-networks");
    assert.equal(first.code, 0, first.err);
    assert.match(first.out, /^\+ create s6h3-a \(.*s6h3-a\.yaml:1\)$/m);
    assert.match(first.out, /1 create/);
    const vm = theVm(e.server, "s6h3-a");
    assert.ok(vm);
    assert.equal(e.server.objects("secrets", NS).length, 1);
    const before = writes(e.server).length;
    const again = await e.apply(file);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /^= unchanged s6h3-a/m);
    assert.equal(writes(e.server).length, before, "a second apply writes nothing");
    const d = await e.diff(file);
    assert.equal(d.code, 0, d.err);
    assert.equal(theVm(e.server, "s6h3-a").metadata.resourceVersion, vm.metadata.resourceVersion);
  } finally {
    await e.close();
  }
});

Deno.test("diff and apply --target kubevirt update vCPUs, memory, labels, a NIC and a new data disk in one update", async () => {
  const e = await env();
  try {
    const file = await e.file("s6h3-b.yaml", vmYaml("s6h3-b"));
    assert.equal((await e.apply(file, "--create-networks")).code, 0);
    const old = theVm(e.server, "s6h3-b");
    await e.file(
      "s6h3-b.yaml",
      vmYaml("s6h3-b", {
        vcpus: 4,
        memoryGiB: 2,
        labels: "    role: db\n    tier: back\n",
        bridges: ["br0", "br1"],
        disks: ["vdb", "vdc"],
      }),
    );
    const writesBefore = writes(e.server).length;
    const d = await e.diff(file);
    assert.equal(d.code, 1, d.err);
    assert.match(d.out, /^~ update s6h3-b/m);
    for (
      const line of [
        /spec\.vcpus: 2 -> 4 \(reboot: .*next restart\)/,
        /spec\.memoryGiB: 1 -> 2 \(reboot/,
        /metadata\.labels\.role: web -> db \(live\)/,
        /metadata\.labels\.tier: \+ back \(live\)/,
        /spec\.dataDisks\[vdc\]: \+ .* \(reboot: a new blank DataVolume/,
        /spec\.networkInterfaces\[[0-9a-f:]+\]: \+ .* \(reboot/,
      ]
    ) assert.match(d.out, line);
    const dry = await e.apply(file, "--dry-run", "--create-networks");
    assert.equal(dry.code, 1, dry.err);
    assert.equal(writes(e.server).length, writesBefore, "diff and --dry-run write nothing");

    // br1 has no NetworkAttachmentDefinition: refused before anything is written.
    const noNet = await e.apply(file);
    assert.equal(noNet.code, 2, noNet.err);
    assert.match(noNet.err, /s6h3-ns\/br1 not found.*--create-networks/);
    assert.equal(writes(e.server).length, writesBefore);

    const r = await e.apply(file, "--create-networks");
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /updated VirtualMachine s6h3-ns\/s6h3-b/);
    assert.match(r.out, /takes effect at the next restart \(virtctl restart s6h3-b\)/);
    const vm = theVm(e.server, "s6h3-b");
    assert.equal(vm.metadata.uid, old.metadata.uid, "updated in place, not recreated");
    const t = vm.spec.template.spec;
    assert.equal(t.domain.cpu.cores, 4);
    assert.equal(t.domain.memory.guest, "2Gi");
    assert.equal(vm.metadata.labels.role, "db");
    assert.equal(vm.metadata.labels.tier, "back");
    assert.equal(vm.spec.template.metadata.labels.tier, "back");
    assert.deepEqual(t.networks.map((n: Any) => n.multus.networkName), ["br0", "br1"]);
    assert.deepEqual(
      vm.spec.dataVolumeTemplates.map((d: Any) => [d.metadata.name, d.spec.source]),
      [["s6h3-b-boot", { http: { url: IMAGE } }], ["s6h3-b-data-vdb", { blank: {} }], [
        "s6h3-b-data-vdc",
        { blank: {} },
      ]],
    );
    assert.equal(storedSpec(vm).spec.vcpus, 4);
    assert.ok(
      e.server.objects("network-attachment-definitions", NS).some((n: Any) =>
        n.metadata.name === "br1"
      ),
    );
    const after = await e.diff(file);
    assert.equal(after.code, 0, after.out);
    // apply neither starts nor stops a VM.
    assert.equal(vm.spec.runStrategy, old.spec.runStrategy);
  } finally {
    await e.close();
  }
});

Deno.test("apply --target kubevirt without --image-url keeps the sources and storage class the VM was made from", async () => {
  const e = await env();
  try {
    const file = await e.file("s6h3-g.yaml", vmYaml("s6h3-g"));
    const made = await e.apply(file, "--create-networks", "--storage-class", "s6h3-fast");
    assert.equal(made.code, 0, made.err);
    const old = theVm(e.server, "s6h3-g");
    await e.file("s6h3-g.yaml", vmYaml("s6h3-g", { vcpus: 4 }));
    const bare = (...more: string[]) =>
      run(["apply", "-f", file, ...e.cluster, "--audit-db", `${file}.audit.db`, ...more]);
    const r = await bare();
    assert.equal(r.code, 0, r.err);
    const vm = theVm(e.server, "s6h3-g");
    assert.equal(vm.spec.template.spec.domain.cpu.cores, 4);
    assert.deepEqual(vm.spec.dataVolumeTemplates, old.spec.dataVolumeTemplates);
    assert.equal(vm.spec.dataVolumeTemplates[0].spec.storage.storageClassName, "s6h3-fast");
    // Another image needs its own source: the cluster's is the old image's.
    await e.file("s6h3-g.yaml", vmYaml("s6h3-g", { vcpus: 4, image: "debian-13.qcow2" }));
    const other = await bare("--recreate");
    assert.equal(other.code, 2, other.err);
    assert.match(other.err, /spec\.bootDisk\.image: no KubeVirt source .*--image-url/);
    assert.equal(theVm(e.server, "s6h3-g").metadata.uid, old.metadata.uid);
  } finally {
    await e.close();
  }
});

Deno.test("apply --target kubevirt refuses a boot image change without --recreate, and recreates with it", async () => {
  const e = await env();
  try {
    const file = await e.file("s6h3-c.yaml", vmYaml("s6h3-c"));
    assert.equal((await e.apply(file, "--create-networks")).code, 0);
    const old = theVm(e.server, "s6h3-c");
    await e.file("s6h3-c.yaml", vmYaml("s6h3-c", { image: "debian-13.qcow2" }));
    const writesBefore = writes(e.server).length;
    const r = await e.apply(file);
    assert.equal(r.code, 4, r.err);
    assert.match(
      r.err,
      /^Error: VM s6h3-c: spec\.bootDisk\.image is a recreate change \(pass --recreate\): .*nothing was changed$/m,
    );
    assert.equal(writes(e.server).length, writesBefore);
    const d = await e.diff(file);
    assert.equal(d.code, 1);
    assert.match(d.out, /spec\.bootDisk\.image: debian-12\.qcow2 -> debian-13\.qcow2 \(recreate/);
    // A recreate that the create would refuse (a network missing) is refused before the delete.
    await e.file(
      "s6h3-c.yaml",
      vmYaml("s6h3-c", { image: "debian-13.qcow2", bridges: ["br0", "br8"] }),
    );
    const noNet = await e.apply(file, "--recreate");
    assert.equal(noNet.code, 2, noNet.err);
    assert.match(noNet.err, /s6h3-ns\/br8 not found/);
    assert.equal(writes(e.server).length, writesBefore);
    await e.file("s6h3-c.yaml", vmYaml("s6h3-c", { image: "debian-13.qcow2" }));
    const again = await e.apply(file, "--recreate");
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /^-\/\+ recreate s6h3-c/m);
    const vm = theVm(e.server, "s6h3-c");
    assert.notEqual(vm.metadata.uid, old.metadata.uid);
    assert.equal(storedSpec(vm).spec.bootDisk.image, "debian-13.qcow2");
    assert.equal(e.server.objects("secrets", NS).length, 1);
    assert.equal((await e.diff(file)).code, 0);
  } finally {
    await e.close();
  }
});

Deno.test("an apply --target kubevirt that fails half-way leaves the cluster as it was", async () => {
  const e = await env();
  try {
    const file = await e.file("s6h3-d.yaml", vmYaml("s6h3-d"));
    assert.equal((await e.apply(file, "--create-networks")).code, 0);
    const old = theVm(e.server, "s6h3-d");
    const nads = e.server.objects("network-attachment-definitions", NS).map((n: Any) =>
      n.metadata.name
    );
    await e.file("s6h3-d.yaml", vmYaml("s6h3-d", { vcpus: 4, bridges: ["br0", "br7"] }));
    e.server.options.inject = (r: RequestInfo) =>
      r.method === "PUT" && r.resource === "virtualmachines"
        ? { status: 422, message: "s6h3 injected refusal" }
        : undefined;
    const r = await e.apply(file, "--create-networks");
    assert.notEqual(r.code, 0);
    assert.match(r.err, /s6h3 injected refusal/);
    assert.match(r.err, /Applied: none; failed: s6h3-d; not attempted: none/);
    delete e.server.options.inject;
    // The NetworkAttachmentDefinition this run made is gone again; the VM is untouched.
    assert.deepEqual(
      e.server.objects("network-attachment-definitions", NS).map((n: Any) => n.metadata.name),
      nads,
    );
    const vm = theVm(e.server, "s6h3-d");
    assert.equal(vm.metadata.resourceVersion, old.metadata.resourceVersion);
    assert.equal(storedSpec(vm).spec.vcpus, 2);
  } finally {
    await e.close();
  }
});

Deno.test("apply --target kubevirt: a VM foundry did not make is left alone; bad flags are exit 2", async () => {
  const e = await env();
  try {
    e.server.seed("virtualmachines", {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachine",
      metadata: { name: "s6h3-e", namespace: NS },
      spec: { runStrategy: "Halted", template: { spec: { domain: { devices: {} } } } },
    });
    const file = await e.file("s6h3-e.yaml", vmYaml("s6h3-e"));
    const r = await e.apply(file, "--create-networks");
    assert.equal(r.code, 4, r.err);
    assert.match(r.err, /was not created by foundry/);
    assert.deepEqual(writes(e.server), []);
    const drift = await run(["diff", "s6h3-e", ...e.cluster]);
    assert.equal(drift.code, 2);
    assert.match(drift.err, /diff NAME \(drift\) is not available with --target kubevirt/);
    const prune = await e.apply(file, "--prune", "-l", "role=web");
    assert.equal(prune.code, 2);
    const lonely = await run(["apply", "-f", file, "--kubeconfig", "/nonexistent"]);
    assert.equal(lonely.code, 2);
    assert.match(lonely.err, /need --target kubevirt/);
  } finally {
    await e.close();
  }
});

Deno.test("apply --target kubevirt of a lossy spec needs --allow-lossy; diff only warns", async () => {
  const e = await env();
  try {
    const file = await e.file(
      "s6h3-f.yaml",
      vmYaml("s6h3-f", { extra: "  graphics:\n    type: spice\n" }),
    );
    const d = await e.diff(file);
    assert.equal(d.code, 1, d.err);
    assert.match(d.err, /^warning: VM s6h3-f: spec\.graphics\.type: spice becomes VNC/m);
    const refused = await e.apply(file, "--create-networks");
    assert.equal(refused.code, 2, refused.err);
    assert.match(refused.err, /s6h3-f\.yaml:\d+:\d+ spec\.graphics\.type: .*--allow-lossy/);
    assert.deepEqual(writes(e.server), []);
    const ok = await e.apply(file, "--create-networks", "--allow-lossy");
    assert.equal(ok.code, 0, ok.err);
    assert.equal(
      theVm(e.server, "s6h3-f").spec.template.spec.domain.devices.autoattachGraphicsDevice,
      true,
    );
  } finally {
    await e.close();
  }
});

Deno.test("no password hash in any output of these tests", () => {
  const all = printed.join("\n");
  assert.ok(all.length > 0);
  assert.ok(!all.includes(FAKE_PASSWORD_HASH));
});
