import assert from "node:assert/strict";
import type { ApiObject } from "../kubevirt/client.ts";
import { KubeApiError } from "../kubevirt/errors.ts";
import {
  type ClusterObject,
  type KubevirtManifests,
  kubevirtManifests,
  type KubevirtResource,
  SPEC_ANNOTATION,
} from "./kubevirt.ts";
import {
  applyOnCluster,
  type KubevirtApplyCluster,
  kubevirtRefusedChanges,
  planKubevirtVm,
  sourcesOf,
  updatedVmObject,
} from "./kubevirt_apply.ts";
import { macOf } from "./naming.ts";
import { FAKE_PASSWORD_HASH, sampleVm } from "./_testdata.ts";
import type { VirtualMachine } from "./types.ts";

const NS = "s6h3-lab";
const IMAGE = "https://images.example.org/debian-12.qcow2";
// deno-lint-ignore no-explicit-any
type Any = any;

const manifests = (vm: VirtualMachine) => kubevirtManifests(vm, { namespace: NS, imageUrl: IMAGE });

/** `m`'s VirtualMachine as the cluster returns it. */
const onCluster = (m: KubevirtManifests, extra: Record<string, unknown> = {}): ApiObject =>
  ({
    ...structuredClone(m.vm),
    metadata: { ...structuredClone(m.vm.metadata), uid: "u1", resourceVersion: "7" },
    status: { printableStatus: "Running" },
    ...extra,
  }) as unknown as ApiObject;

function planOf(edit: (vm: VirtualMachine) => void, o: { recreate?: boolean } = {}) {
  const before = sampleVm();
  const after = sampleVm();
  edit(after);
  return planKubevirtVm(after, manifests(after), onCluster(manifests(before)), o);
}

const classes = (p: ReturnType<typeof planOf>) =>
  Object.fromEntries(p.changes.map((c) => [c.path, c.class]));

Deno.test("planKubevirtVm(): create when missing, unchanged when the stored spec is the file's", () => {
  const vm = sampleVm();
  assert.equal(planKubevirtVm(vm, manifests(vm), undefined).action, "create");
  const same = planKubevirtVm(vm, manifests(vm), onCluster(manifests(vm)));
  assert.deepEqual(same, { name: "web-01", action: "unchanged", changes: [] });
});

Deno.test("planKubevirtVm() classifies each difference as KubeVirt carries it out", () => {
  const p = planOf((vm) => {
    vm.metadata.labels = { environment: "prod", role: "web" };
    vm.spec.vcpus = 4;
    vm.spec.memoryGiB = 8;
    vm.spec.dataDisks!.push({ device: "vdd", sizeGB: 3 });
    vm.spec.networkInterfaces[1]!.bridge = "br2";
    vm.spec.domainType = "qemu";
    vm.spec.graphics = { type: "vnc" };
  });
  assert.equal(p.action, "update");
  assert.deepEqual(classes(p), {
    "metadata.labels.environment": "live",
    "spec.vcpus": "reboot",
    "spec.memoryGiB": "reboot",
    "spec.dataDisks[vdd]": "reboot",
    [`spec.networkInterfaces[${macOf(sampleVm().spec.networkInterfaces[1]!)}].bridge`]: "reboot",
    "spec.domainType": "live",
    "spec.graphics": "reboot",
  });
  assert.deepEqual(kubevirtRefusedChanges(p), []);
  for (const c of p.changes.filter((c) => c.class === "reboot")) {
    assert.match(c.reason!, /next restart/);
  }
});

Deno.test("planKubevirtVm(): boot image, cloud-init, a NIC's address, a removed or grown disk need --recreate; shrinking is forbidden", () => {
  const cases: [(vm: VirtualMachine) => void, string, "recreate" | "forbidden"][] = [
    [(vm) => vm.spec.bootDisk.image = "debian-13.qcow2", "spec.bootDisk.image", "recreate"],
    [(vm) => vm.spec.bootDisk.sizeGB = 30, "spec.bootDisk.sizeGB", "recreate"],
    [(vm) => vm.spec.bootDisk.sizeGB = 10, "spec.bootDisk.sizeGB", "forbidden"],
    [(vm) => vm.spec.cloudInit!.fqdn = "x.example.org", "spec.cloudInit", "recreate"],
    [(vm) => vm.spec.dataDisks!.pop(), "spec.dataDisks[vdc]", "recreate"],
    [(vm) => vm.spec.dataDisks![0]!.sizeGB = 20, "spec.dataDisks[vdb].sizeGB", "recreate"],
    [(vm) => vm.spec.dataDisks![0]!.sizeGB = 1, "spec.dataDisks[vdb].sizeGB", "forbidden"],
  ];
  for (const [edit, path, cls] of cases) {
    const p = planOf(edit);
    assert.equal(classes(p)[path], cls, path);
    assert.equal(p.action, "update", path);
    assert.deepEqual(kubevirtRefusedChanges(p).map((c) => c.path), [path]);
    const withRecreate = planOf(edit, { recreate: true });
    assert.equal(withRecreate.action, cls === "recreate" ? "recreate" : "update", path);
    assert.equal(kubevirtRefusedChanges(withRecreate).length, cls === "recreate" ? 0 : 1, path);
  }
  // A NIC whose address changes is another NIC (its MAC comes from the address): recreate.
  const nic = planOf((vm) => vm.spec.networkInterfaces[0]!.ip = "192.0.2.99/24");
  assert.ok(
    nic.changes.some((c) => c.path.startsWith("spec.networkInterfaces[") && c.class === "recreate"),
  );
});

Deno.test("planKubevirtVm() sees a new password hash through the Secret and never shows it", () => {
  const before = sampleVm();
  const after = sampleVm();
  after.spec.cloudInit!.passwordHash = FAKE_PASSWORD_HASH.replace(/.$/, "x");
  const m = manifests(after);
  const p = planKubevirtVm(after, m, onCluster(manifests(before)), {
    currentSecret: manifests(before).secret as unknown as ApiObject,
  });
  assert.deepEqual(p.changes.map((c) => [c.path, c.class]), [
    ["spec.cloudInit.passwordHash", "recreate"],
  ]);
  assert.ok(!JSON.stringify(p).includes("$6$"));
});

Deno.test("planKubevirtVm() leaves a VirtualMachine foundry did not make, or one being deleted, alone", () => {
  const vm = sampleVm();
  const foreign = onCluster(manifests(vm));
  foreign.metadata.labels = {};
  assert.throws(() => planKubevirtVm(vm, manifests(vm), foreign), /was not created by foundry/);
  const going = onCluster(manifests(vm));
  (going.metadata as Any).deletionTimestamp = "2026-01-01T00:00:00Z";
  assert.throws(() => planKubevirtVm(vm, manifests(vm), going), /is being deleted/);
});

Deno.test("updatedVmObject() keeps the cluster's run strategy, metadata and others' labels", () => {
  const before = sampleVm();
  const after = sampleVm();
  after.metadata.labels = { role: "db" };
  const current = onCluster(manifests(before), {});
  (current.spec as Any).runStrategy = "Halted";
  current.metadata.labels = { ...current.metadata.labels, "team.example.org/owner": "ops" };
  const next = updatedVmObject(current, manifests(after));
  assert.equal((next.spec as Any).runStrategy, "Halted");
  assert.equal((next.metadata as Any).resourceVersion, "7");
  assert.equal((next.metadata as Any).uid, "u1");
  assert.equal(next.metadata.labels!.role, "db");
  assert.equal(next.metadata.labels!.environment, undefined, "the old spec's label goes");
  assert.equal(next.metadata.labels!["team.example.org/owner"], "ops", "another's label stays");
  assert.equal(
    next.metadata.annotations![SPEC_ANNOTATION],
    manifests(after).vm.metadata.annotations![SPEC_ANNOTATION],
  );
});

Deno.test("sourcesOf() gives the VM's own image sources for the same images only, and its storage class", () => {
  const vm = sampleVm();
  vm.spec.installMedia = { image: "netinst.iso" };
  const m = kubevirtManifests(vm, {
    namespace: NS,
    images: { "debian-12.qcow2": "pvc:golden/debian-12", "netinst.iso": IMAGE },
    storageClass: "s6h3-fast",
  });
  const current = onCluster(m);
  assert.deepEqual(sourcesOf(current, vm), {
    imageUrl: "pvc:golden/debian-12",
    installMediaUrl: IMAGE,
    storageClass: "s6h3-fast",
  });
  const other = sampleVm();
  other.spec.bootDisk.image = "debian-13.qcow2";
  assert.deepEqual(sourcesOf(current, other), { storageClass: "s6h3-fast" });
});

/** A cluster in memory whose VirtualMachine update is stored and then not answered. */
function unansweredCluster(vm: ApiObject) {
  const store = new Map<string, ApiObject>([[`virtualmachines/${vm.metadata.name}`, vm]]);
  const log: string[] = [];
  const key = (r: string, n: string) => `${r}/${n}`;
  const notFound = () => new KubeApiError("get", 404, "NotFound", "not found");
  const api: KubevirtApplyCluster = {
    create(resource: KubevirtResource, _ns: string, obj: ClusterObject) {
      log.push(`create ${resource}/${obj.metadata.name}`);
      store.set(key(resource, obj.metadata.name), structuredClone(obj) as unknown as ApiObject);
      return Promise.resolve(obj as unknown as ApiObject);
    },
    get(resource: KubevirtResource, _ns: string, name: string) {
      const o = store.get(key(resource, name));
      return o ? Promise.resolve(structuredClone(o)) : Promise.reject(notFound());
    },
    list: () => Promise.resolve([]),
    delete(resource: KubevirtResource, _ns: string, name: string) {
      log.push(`delete ${resource}/${name}`);
      store.delete(key(resource, name));
      return Promise.resolve();
    },
    replace(resource, _ns, obj) {
      log.push(`replace ${resource}/${obj.metadata.name}`);
      const stored = {
        ...structuredClone(obj),
        metadata: { ...obj.metadata, resourceVersion: String(log.length + 10) },
      } as unknown as ApiObject;
      store.set(key(resource, obj.metadata.name), stored);
      // The first update of the VM is taken, and its answer lost.
      if (
        resource === "virtualmachines" && log.filter((l) => l.startsWith("replace v")).length === 1
      ) {
        return Promise.reject(new TypeError("connection reset"));
      }
      return Promise.resolve(stored);
    },
  };
  return { api, store, log };
}

Deno.test("applyOnCluster() puts the VM back when its update went unanswered, and removes what it made", async () => {
  const before = sampleVm();
  const after = sampleVm();
  after.spec.vcpus = 4;
  after.spec.networkInterfaces.push({ ip: "203.0.113.5/24", bridge: "br5", defaultRoute: false });
  const current = onCluster(manifests(before));
  const c = unansweredCluster(current);
  // The networks br0 and br1 exist; br5 and the user-data Secret are made by this apply.
  for (const b of ["br0", "br1"]) {
    c.store.set(`network-attachment-definitions/${b}`, { metadata: { name: b } } as ApiObject);
  }
  const m = manifests(after);
  const plan = planKubevirtVm(after, m, current);
  await assert.rejects(
    applyOnCluster(c.api, m, plan, current, { createNetworks: true }),
    TypeError,
  );
  const vm = c.store.get("virtualmachines/web-01")!;
  assert.equal(JSON.parse((vm.metadata as Any).annotations[SPEC_ANNOTATION]).spec.vcpus, 2);
  assert.equal(c.store.has("network-attachment-definitions/br5"), false);
  assert.equal(c.store.has("secrets/web-01-userdata"), false);
  assert.deepEqual(c.log, [
    "create network-attachment-definitions/br5",
    "create secrets/web-01-userdata",
    "replace virtualmachines/web-01",
    "replace virtualmachines/web-01",
    "delete secrets/web-01-userdata",
    "delete network-attachment-definitions/br5",
  ]);
});
