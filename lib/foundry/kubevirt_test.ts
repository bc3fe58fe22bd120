import assert from "node:assert/strict";
import {
  formatProblems,
  KUBEVIRT_SCHEMA_PATH,
  OpenApiValidator,
} from "../../tests/virtwork/openapi_validator.ts";
import type { ApiObject } from "../kubevirt/client.ts";
import { decodeBase64, type KubeObject } from "../kubevirt/manifests.ts";
import { noCloudFilesFromVm } from "./cloudinit.ts";
import { KubeApiError } from "../kubevirt/errors.ts";
import {
  createOnCluster,
  entryOf,
  type KubevirtCluster,
  type KubevirtManifests,
  kubevirtManifests,
  KubevirtMappingError,
  type KubevirtResource,
  MANAGED_LABEL,
  managedSelector,
  networkAttachmentDefinition,
  parseImageSource,
  phaseOf,
  redactedObjects,
  SPEC_ANNOTATION,
  storedVmOf,
} from "./kubevirt.ts";
import { loadVirtualMachines } from "./loader.ts";
import { macOf } from "./naming.ts";
import { FAKE_PASSWORD_HASH, sampleVm, workloadVm } from "./_testdata.ts";
import {
  INSTALL_MEDIA_URL,
  KUBEVIRT_LOSSY_EXAMPLES,
  vmExamples,
} from "../../tests/foundry/_kubevirt_examples.ts";
import type { VirtualMachine } from "./types.ts";

const validator = await OpenApiValidator.fromFile(KUBEVIRT_SCHEMA_PATH);
const IMAGE = "https://images.example.org/debian-12.qcow2";
const NS = "h5-lab";

// deno-lint-ignore no-explicit-any
type Any = any;

/** `m`'s VirtualMachine validated strictly; NADs and Secret checked against their API's shape. */
function assertValid(m: KubevirtManifests): void {
  const problems = validator.validate("v1.VirtualMachine", m.vm);
  assert.deepEqual(problems, [], formatProblems(problems));
  const spec = m.vm.spec as Any;
  for (const dv of spec.dataVolumeTemplates) {
    assert.deepEqual(validator.validate("v1.DataVolumeTemplateSpec", dv), []);
    assert.deepEqual(validator.validate("v1beta1.DataVolumeSpec", dv.spec), []);
  }
  for (const n of spec.template.spec.networks) {
    assert.deepEqual(validator.validate("v1.MultusNetwork", n.multus), []);
  }
  for (const nad of m.networks) {
    // No NAD in KubeVirt's schema: its CRD has spec.config, a JSON string, and nothing else.
    assert.deepEqual(Object.keys(nad).sort(), ["apiVersion", "kind", "metadata", "spec"]);
    assert.deepEqual(Object.keys(nad.spec as object), ["config"]);
    const config = JSON.parse((nad.spec as Any).config);
    assert.equal(config.type, "bridge");
    assert.equal(config.bridge, nad.metadata.name);
    assert.equal(config.ipam, undefined);
  }
  if (m.secret) {
    assert.deepEqual(Object.keys(m.secret).sort(), [
      "apiVersion",
      "data",
      "kind",
      "metadata",
      "type",
    ]);
  }
}

const manifests = (vm: VirtualMachine, o: Partial<Parameters<typeof kubevirtManifests>[1]> = {}) =>
  kubevirtManifests(vm, { namespace: NS, imageUrl: IMAGE, ...o });

const vmSpec = (m: KubevirtManifests): Any => (m.vm.spec as Any).template.spec;

// Every VirtualMachine example converts and validates (examples/config.yaml, the configuration
// file, is left out by vmExamples()); the fields KubeVirt carries over only in part are named in
// `lossy`, and only those.
for (const { name, path } of await vmExamples()) {
  const lossy = KUBEVIRT_LOSSY_EXAMPLES[name] ?? [];
  Deno.test(
    `examples/${name}: create --target kubevirt objects validate strictly against the KubeVirt schema${
      lossy.length ? `, ${lossy.join(", ")} named as lossy` : ""
    }`,
    async () => {
      const vms = await loadVirtualMachines(path);
      assert.ok(vms.length >= 1);
      for (const vm of vms) {
        const m = manifests(vm, { installMediaUrl: INSTALL_MEDIA_URL });
        assertValid(m);
        assert.deepEqual(m.lossy.map((l) => l.path), lossy);
      }
    },
  );
}

Deno.test("kubevirtManifests() maps vCPUs, memory, labels and the stored spec", () => {
  const vm = sampleVm();
  const m = manifests(vm);
  assertValid(m);
  assert.equal(m.vm.apiVersion, "kubevirt.io/v1");
  assert.equal(m.vm.metadata.name, "web-01");
  assert.equal(m.vm.metadata.namespace, NS);
  assert.deepEqual(m.vm.metadata.labels, {
    environment: "test",
    role: "web",
    [MANAGED_LABEL]: "true",
  });
  const t = vmSpec(m);
  assert.deepEqual(t.domain.cpu, { cores: 2, model: "host-model" });
  assert.equal(t.domain.memory.guest, "4Gi");
  assert.equal(t.domain.resources.requests.memory, "4Gi");
  assert.equal(t.hostname, "web-01");
  assert.equal((m.vm.spec as Any).runStrategy, "Always");
  assert.equal((m.vm.spec as Any).template.metadata.labels["foundry.cofront.xyz/vm"], "web-01");
  const annotations = (m.vm.metadata as Any).annotations;
  assert.equal(annotations.description, "A web server");
  const stored = JSON.parse(annotations[SPEC_ANNOTATION]);
  assert.equal(stored.spec.cloudInit.passwordHash, undefined);
  assert.equal(stored.spec.vcpus, 2);
  assert.equal(stored.status, undefined);
  vm.spec.memoryGiB = 1.5;
  assert.equal(vmSpec(manifests(vm)).domain.memory.guest, "1536Mi");
});

Deno.test("kubevirtManifests() makes the boot disk a DataVolume from a URL or a PVC, sized in GiB", () => {
  const vm = sampleVm();
  let dv = (manifests(vm).vm.spec as Any).dataVolumeTemplates[0];
  assert.equal(dv.metadata.name, "web-01-boot");
  assert.deepEqual(dv.spec.source, { http: { url: IMAGE } });
  assert.deepEqual(dv.spec.storage, { resources: { requests: { storage: "20Gi" } } });
  const pvc = manifests(vm, { imageUrl: "pvc:golden/debian-12", storageClass: "fast" });
  assertValid(pvc);
  dv = (pvc.vm.spec as Any).dataVolumeTemplates[0];
  assert.deepEqual(dv.spec.source, { pvc: { namespace: "golden", name: "debian-12" } });
  assert.equal(dv.spec.storage.storageClassName, "fast");
  assert.deepEqual(vmSpec(pvc).volumes[0], { name: "boot", dataVolume: { name: "web-01-boot" } });
  assert.equal(vmSpec(pvc).domain.devices.disks[0].bootOrder, 1);
  vm.spec.bootDisk = { sizeGB: 8, empty: true };
  dv = (manifests(vm, { imageUrl: undefined as unknown as string }).vm.spec as Any)
    .dataVolumeTemplates[0];
  assert.deepEqual(dv.spec.source, { blank: {} });
});

Deno.test("kubevirtManifests() finds the image in --image by the spec's image or its volume name", () => {
  const vm = sampleVm();
  vm.spec.bootDisk.image = "golden:debian-12.qcow2";
  const src = (images: Record<string, string>) =>
    (kubevirtManifests(vm, { namespace: NS, images }).vm.spec as Any).dataVolumeTemplates[0].spec
      .source;
  assert.deepEqual(src({ "golden:debian-12.qcow2": IMAGE }), { http: { url: IMAGE } });
  assert.deepEqual(src({ "debian-12.qcow2": "pvc:a/b" }), { pvc: { namespace: "a", name: "b" } });
  assert.throws(
    () => src({ "other.qcow2": IMAGE }),
    (e: unknown) =>
      e instanceof KubevirtMappingError && e.path === "spec.bootDisk.image" &&
      e.unsourcedImage === "golden:debian-12.qcow2" && /no KubeVirt source/.test(e.message),
  );
  assert.throws(() => src({ "debian-12.qcow2": "ftp://x/y" }), /http\(s\) URL/);
});

Deno.test("kubevirtManifests() makes data disks blank DataVolumes with their serials", () => {
  const m = manifests(workloadVm());
  assertValid(m);
  const dvs = (m.vm.spec as Any).dataVolumeTemplates;
  const data = dvs.slice(1);
  assert.ok(data.length >= 1);
  for (const dv of data) {
    assert.match(dv.metadata.name, /^web-01-data-vd[b-z]$/);
    assert.deepEqual(dv.spec.source, { blank: {} });
  }
  const disks = vmSpec(m).domain.devices.disks;
  const vm = workloadVm();
  for (const d of vm.spec.dataDisks ?? []) {
    const disk = disks.find((x: Any) => x.name === `data-${d.device}`);
    assert.ok(disk, d.device);
    assert.equal(disk.serial, d.serial);
    assert.equal(
      dvs.find((x: Any) => x.metadata.name === `web-01-data-${d.device}`).spec.storage.resources
        .requests.storage,
      `${d.sizeGB}Gi`,
    );
  }
});

Deno.test("kubevirtManifests() puts each NIC on a Multus bridge network with the spec's MAC", () => {
  const vm = sampleVm();
  vm.spec.networkInterfaces.push({ ip: "192.0.2.11/24", bridge: "br0" });
  vm.spec.networkInterfaces.push({ mac: "52:54:00:AA:BB:CC", bridge: "br2" });
  const m = manifests(vm);
  assertValid(m);
  assert.deepEqual(m.networks.map((n) => n.metadata.name), ["br0", "br1", "br2"]);
  assert.deepEqual(m.networks[0], networkAttachmentDefinition("br0", NS));
  const t = vmSpec(m);
  assert.deepEqual(
    t.domain.devices.interfaces,
    vm.spec.networkInterfaces.map((n, i) => ({
      name: `nic${i}`,
      bridge: {},
      macAddress: macOf(n),
      model: "virtio",
    })),
  );
  assert.equal(t.domain.devices.interfaces[3].macAddress, "52:54:00:aa:bb:cc");
  assert.deepEqual(t.networks.map((n: Any) => n.multus.networkName), ["br0", "br1", "br0", "br2"]);
});

Deno.test("kubevirtManifests() gives cloud-init the libvirt seed's user-data and network-config", () => {
  const vm = sampleVm();
  delete vm.spec.cloudInit!.passwordHash;
  const m = manifests(vm);
  assert.equal(m.secret, undefined);
  const files = noCloudFilesFromVm(vm);
  const ci = vmSpec(m).volumes.find((v: Any) => v.name === "cloudinit").cloudInitNoCloud;
  assert.equal(ci.userData, files["user-data"]);
  assert.equal(ci.networkData, files["network-config"]);
  assert.match(ci.networkData, /192\.0\.2\.10\/24/);
  assert.match(ci.userData, /ssh_authorized_keys|ssh-ed25519/);
  assert.match(ci.userData, /web-01\.example\.org/);
});

Deno.test("kubevirtManifests() keeps a password hash out of the VirtualMachine: user data in a Secret", () => {
  const vm = sampleVm();
  const m = manifests(vm);
  assertValid(m);
  assert.ok(m.secret);
  assert.equal(m.secret.metadata.name, "web-01-userdata");
  assert.equal(m.secret.metadata.labels?.["foundry.cofront.xyz/vm"], "web-01");
  const ci = vmSpec(m).volumes.find((v: Any) => v.name === "cloudinit").cloudInitNoCloud;
  assert.deepEqual(ci.secretRef, { name: "web-01-userdata" });
  assert.equal(ci.userData, undefined);
  assert.equal(
    decodeBase64((m.secret.data as Any).userdata),
    noCloudFilesFromVm(vm)["user-data"],
  );
  assert.ok(!JSON.stringify(m.vm).includes(FAKE_PASSWORD_HASH));
  const printed = JSON.stringify(redactedObjects(m, true));
  assert.ok(!printed.includes(FAKE_PASSWORD_HASH));
  assert.ok(!printed.includes((m.secret.data as Any).userdata));
  assert.match(printed, /redacted, \d+ bytes/);
});

Deno.test("kubevirtManifests() moves user data over 2048 bytes into the Secret", () => {
  const vm = workloadVm();
  delete vm.spec.cloudInit!.passwordHash;
  vm.spec.cloudInit!.userData = {
    writeFiles: [{ path: "/etc/motd", content: "x".repeat(3000) }],
  };
  const m = manifests(vm);
  assert.ok(m.secret);
  assertValid(m);
});

Deno.test("kubevirtManifests() notes the fields KubeVirt has no use for", () => {
  const vm = sampleVm();
  vm.spec.domainType = "qemu";
  const m = manifests(vm);
  const notes = m.notes.join("\n");
  for (const f of ["spec.domainType", "spec.storagePool", "spec.autostart"]) {
    assert.match(notes, new RegExp(f.replace(".", "\\.")));
  }
  assert.ok(!JSON.stringify(m.vm.spec).includes("foundry-vms"));
});

Deno.test("kubevirtManifests() maps a CPU topology to sockets, with headroom as maxSockets", () => {
  const vm = sampleVm();
  vm.spec.vcpus = 4;
  vm.spec.cpu = { sockets: 4, cores: 2, threads: 1, mode: "host-passthrough" };
  const m = manifests(vm);
  assertValid(m);
  assert.deepEqual(vmSpec(m).domain.cpu, {
    sockets: 2,
    cores: 2,
    threads: 1,
    maxSockets: 4,
    model: "host-passthrough",
  });
  vm.spec.vcpus = 3;
  assert.throws(() => manifests(vm), /spec\.cpu: .*whole sockets/);
});

Deno.test("kubevirtManifests() refuses what KubeVirt cannot honour, naming the field", () => {
  const cases: [(vm: VirtualMachine) => void, string][] = [
    [(vm) => vm.metadata.name = "web_01", "metadata.name"],
    [(vm) => vm.spec.networkInterfaces[1]!.bridge = "Br_1", "spec.networkInterfaces[1].bridge"],
    [(vm) => vm.spec.installMedia = { image: "d.iso" }, "spec.installMedia.image"],
    [(vm) => vm.spec.bootDisk = { sizeGB: 5, volume: "p:v" }, "spec.bootDisk.volume"],
    [(vm) => vm.spec.dataDisks![1]!.volume = "/x.img", "spec.dataDisks[1].volume"],
    [(vm) => vm.metadata.annotations = { "a b": "x" }, "metadata.annotations"],
    [(vm) => vm.metadata.annotations = { [SPEC_ANNOTATION]: "{}" }, "metadata.annotations"],
  ];
  for (const [edit, path] of cases) {
    const vm = sampleVm();
    edit(vm);
    assert.throws(
      () => manifests(vm),
      (e: unknown) => e instanceof KubevirtMappingError && e.path === path && e.vmName !== "",
      path,
    );
  }
  const vm = sampleVm();
  vm.spec.graphics = { type: "vnc", listen: "0.0.0.0" };
  assert.match(manifests(vm).notes.join("\n"), /spec\.graphics\.listen/);
  assert.equal((manifests(vm, { noStart: true }).vm.spec as Any).runStrategy, "Halted");
});

Deno.test("kubevirtManifests() keeps the graphics device, names a VNC password and SPICE as lossy", () => {
  const vm = sampleVm();
  const devices = (m: KubevirtManifests) => vmSpec(m).domain.devices;
  assert.equal(devices(manifests(vm)).autoattachGraphicsDevice, false);
  assert.deepEqual(manifests(vm).lossy, []);
  vm.spec.graphics = { type: "vnc", passwordSecret: "secret-file-h3" };
  let m = manifests(vm);
  assertValid(m);
  assert.equal(devices(m).autoattachGraphicsDevice, true);
  assert.deepEqual(m.lossy.map((l) => l.path), ["spec.graphics.passwordSecret"]);
  assert.match(m.lossy[0]!.detail, /virtctl vnc/);
  // The path of the password's file is not said, and no object holds it but the stored spec.
  assert.ok(!m.lossy[0]!.detail.includes("secret-file-h3"));
  assert.ok(!JSON.stringify(vmSpec(m)).includes("secret-file-h3"));
  vm.spec.graphics = { type: "spice" };
  m = manifests(vm);
  assertValid(m);
  assert.equal(devices(m).autoattachGraphicsDevice, true);
  assert.deepEqual(m.lossy.map((l) => l.path), ["spec.graphics.type"]);
});

Deno.test("kubevirtManifests() keeps the CPU topology of a NUMA spec and names the cells as lossy", () => {
  const vm = sampleVm();
  vm.spec.vcpus = 2;
  vm.spec.cpu = { sockets: 2, cores: 2, threads: 1 };
  vm.spec.numa = [{ cpus: "0-1", memoryGiB: 2 }, { cpus: "2-3", memoryGiB: 2 }];
  const m = manifests(vm);
  assertValid(m);
  const { sockets, cores, threads, maxSockets } = vmSpec(m).domain.cpu;
  assert.deepEqual({ sockets, cores, threads, maxSockets }, {
    sockets: 1,
    cores: 2,
    threads: 1,
    maxSockets: 2,
  });
  assert.equal(vmSpec(m).domain.cpu.numa, undefined);
  assert.deepEqual(m.lossy.map((l) => l.path), ["spec.numa"]);
  assert.match(m.lossy[0]!.detail, /2 NUMA cells are not carried over/);
});

Deno.test("kubevirtManifests() attaches installation media as a SATA CD-ROM after the blank boot disk", () => {
  const vm = sampleVm();
  vm.spec.bootDisk = { sizeGB: 20, empty: true };
  vm.spec.installMedia = { image: "debian-12.7.0-amd64-netinst.iso" };
  const iso = "https://images.example.org/netinst.iso";
  for (
    const [o, source] of [
      [{ installMediaUrl: iso }, { http: { url: iso } }],
      [{ images: { "debian-12.7.0-amd64-netinst.iso": "pvc:isos/netinst" } }, {
        pvc: { namespace: "isos", name: "netinst" },
      }],
      [{ images: { "debian-12.7.0-amd64-netinst.iso": iso } }, { http: { url: iso } }],
    ] as const
  ) {
    const m = manifests(vm, o);
    assertValid(m);
    assert.deepEqual(m.lossy, []);
    const t = vmSpec(m);
    assert.deepEqual(t.domain.devices.disks.slice(0, 2), [
      { name: "boot", disk: { bus: "virtio" }, bootOrder: 1 },
      { name: "install", cdrom: { bus: "sata", readonly: true }, bootOrder: 2 },
    ]);
    assert.ok(
      t.volumes.some((v: Any) => v.name === "install" && v.dataVolume.name === "web-01-install"),
    );
    const dvs = (m.vm.spec as Any).dataVolumeTemplates;
    assert.deepEqual(dvs[0].spec.source, { blank: {} });
    const dv = dvs.find((d: Any) => d.metadata.name === "web-01-install");
    assert.deepEqual(dv.spec.source, source);
    // An import needs a size; a clone takes its source's.
    assert.equal(dv.spec.storage.resources?.requests.storage, "http" in source ? "8Gi" : undefined);
  }
  assert.throws(
    () => manifests(vm),
    (e: unknown) =>
      e instanceof KubevirtMappingError && e.path === "spec.installMedia.image" &&
      e.unsourcedImage === "debian-12.7.0-amd64-netinst.iso",
  );
});

Deno.test("parseImageSource() takes http(s) URLs and pvc:NAMESPACE/NAME only", () => {
  assert.deepEqual(parseImageSource(IMAGE), { kind: "http", url: IMAGE });
  assert.deepEqual(parseImageSource("http://10.0.0.1:8080/i.img"), {
    kind: "http",
    url: "http://10.0.0.1:8080/i.img",
  });
  assert.deepEqual(parseImageSource("pvc:ns/img"), { kind: "pvc", namespace: "ns", name: "img" });
  for (const bad of ["pvc:ns", "pvc:Ns/x", "pvc:a/b/c", "/var/x.qcow2", "file:///x", "s3://b/k"]) {
    assert.throws(() => parseImageSource(bad), RangeError, bad);
  }
});

const apiVm = (m: KubevirtManifests, extra: Record<string, unknown> = {}): ApiObject =>
  ({
    ...structuredClone(m.vm),
    metadata: { ...structuredClone(m.vm.metadata), creationTimestamp: "2026-01-01T00:00:00Z" },
    ...extra,
  }) as unknown as ApiObject;
const vmi = (phase: string, status: Record<string, unknown> = {}): ApiObject =>
  ({ metadata: { name: "web-01" }, status: { phase, ...status } }) as unknown as ApiObject;

Deno.test("phaseOf() maps the VM and VMI to foundry's phases", () => {
  const m = manifests(sampleVm());
  const vm = apiVm(m);
  assert.equal(phaseOf(vm, undefined), "Pending");
  assert.equal(phaseOf(vm, vmi("Pending")), "Pending");
  assert.equal(phaseOf(vm, vmi("Scheduling")), "Creating");
  assert.equal(phaseOf(vm, vmi("Scheduled")), "Creating");
  assert.equal(phaseOf(vm, vmi("Running")), "Running");
  assert.equal(phaseOf(vm, vmi("Succeeded")), "Stopped");
  assert.equal(phaseOf(vm, vmi("Failed")), "Failed");
  assert.equal(
    phaseOf(apiVm(m, { status: { printableStatus: "ErrImagePull" } }), undefined),
    "Failed",
  );
  assert.equal(
    phaseOf(apiVm(m, { status: { printableStatus: "Provisioning" } }), undefined),
    "Creating",
  );
  const halted = apiVm(manifests(sampleVm(), { noStart: true }));
  assert.equal(phaseOf(halted, undefined), "Stopped");
  const going = apiVm(m);
  (going.metadata as Any).deletionTimestamp = "2026-01-01T00:00:01Z";
  assert.equal(phaseOf(going, vmi("Running")), "Destroying");
});

Deno.test("entryOf() reads the stored spec back with status, IP and sizes", () => {
  const vm = sampleVm();
  const m = manifests(vm);
  const running = vmi("Running", {
    conditions: [{ type: "Ready", status: "True", lastTransitionTime: "2026-01-01T00:01:00Z" }],
    interfaces: [{
      name: "nic0",
      mac: macOf(vm.spec.networkInterfaces[0]!),
      ipAddress: "192.0.2.10",
    }],
  });
  const e = entryOf(apiVm(m), running)!;
  assert.equal(e.phase, "Running");
  assert.equal(e.ip, "192.0.2.10");
  assert.equal(e.vcpus, 2);
  assert.equal(e.memoryMiB, 4096);
  assert.equal(e.vm.status?.phase, "Running");
  assert.equal(e.vm.status?.conditions?.[0]?.type, "Ready");
  assert.equal(e.vm.status?.conditions?.[0]?.status, "True");
  assert.equal(e.vm.spec.cloudInit?.passwordHash, undefined);
  assert.deepEqual(e.vm.spec.networkInterfaces, vm.spec.networkInterfaces);
  assert.equal(entryOf(apiVm(m), undefined)!.ip, "192.0.2.10 (spec)");
  const foreign = apiVm(m);
  foreign.metadata.labels = {};
  assert.equal(storedVmOf(foreign), undefined);
  assert.equal(entryOf(foreign, undefined), undefined);
});

Deno.test("managedSelector() narrows foundry's label by the user's selector", () => {
  assert.equal(managedSelector(), `${MANAGED_LABEL}=true`);
  assert.equal(
    managedSelector("role in (web),env!=prod"),
    `${MANAGED_LABEL}=true,role in (web),env!=prod`,
  );
});

Deno.test("every object kubevirtManifests() returns is namespaced and labelled as foundry's", () => {
  const m = manifests(sampleVm());
  const all: KubeObject[] = [...m.networks, m.secret!, m.vm];
  for (const o of all) {
    assert.equal(o.metadata.namespace, NS);
    assert.equal(o.metadata.labels?.[MANAGED_LABEL], "true");
  }
});

/** An in-memory cluster; `failCreate` decides per object how its create fails after (or before) storing it. */
function memoryCluster(
  failCreate: (resource: KubevirtResource, name: string) => "stored" | "refused" | undefined,
) {
  const store = new Map<string, Any>();
  const key = (r: string, n: string) => `${r}/${n}`;
  const notFound = (op: string) => new KubeApiError(op, 404, "NotFound", "not found");
  const api: KubevirtCluster = {
    create: (r, _ns, obj) => {
      const how = failCreate(r, obj.metadata.name);
      if (how === "refused") {
        return Promise.reject(new KubeApiError("create", 403, "Forbidden", "no"));
      }
      store.set(key(r, obj.metadata.name), structuredClone(obj));
      if (how === "stored") return Promise.reject(new TypeError("fetch failed: connection reset"));
      return Promise.resolve(obj as unknown as ApiObject);
    },
    get: (r, _ns, name) => {
      const o = store.get(key(r, name));
      return o ? Promise.resolve(o) : Promise.reject(notFound("get"));
    },
    list: () => Promise.resolve([]),
    delete: (r, _ns, name) =>
      store.delete(key(r, name)) ? Promise.resolve() : Promise.reject(notFound("delete")),
  };
  return { api, store };
}

Deno.test("createOnCluster() removes what it made when a step fails, an unanswered one included", async () => {
  for (const how of ["refused", "stored"] as const) {
    const { api, store } = memoryCluster((r) => r === "virtualmachines" ? how : undefined);
    store.set(`${"network-attachment-definitions"}/br0`, networkAttachmentDefinition("br0", NS));
    const m = manifests(sampleVm());
    await assert.rejects(
      createOnCluster(api, m, { createNetworks: true }),
      how === "refused" ? KubeApiError : TypeError,
    );
    // br1 and the Secret were made and removed; the VM too when the server kept it unanswered.
    assert.deepEqual([...store.keys()], ["network-attachment-definitions/br0"], how);
  }
});

Deno.test("createOnCluster() refuses missing networks before creating anything, and is idempotent", async () => {
  const { api, store } = memoryCluster(() => undefined);
  const m = manifests(sampleVm());
  await assert.rejects(createOnCluster(api, m), /br0, h5-lab\/br1 not found/);
  assert.equal(store.size, 0);
  const r = await createOnCluster(api, m, { createNetworks: true });
  assert.deepEqual(r, {
    outcome: "created",
    created: [
      "NetworkAttachmentDefinition/br0",
      "NetworkAttachmentDefinition/br1",
      "Secret/web-01-userdata",
      "VirtualMachine/web-01",
    ],
  });
  assert.deepEqual(await createOnCluster(api, m), { outcome: "unchanged", created: [] });
  const other = manifests({ ...sampleVm(), spec: { ...sampleVm().spec, vcpus: 3 } });
  await assert.rejects(createOnCluster(api, other), /already exists with another spec/);
});
