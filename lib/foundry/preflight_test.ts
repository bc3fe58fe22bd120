import assert from "node:assert/strict";
import { type HostFacts, preflightProblems } from "./preflight.ts";
import { sampleVm } from "./_testdata.ts";

function facts(over: Partial<HostFacts> = {}): HostFacts {
  return {
    domains: ["other"],
    bridges: ["br0", "br1", "virbr0"],
    foundryVms: [],
    imageVolumes: ["debian-12.qcow2", "fedora-43.qcow2"],
    ...over,
  };
}

Deno.test("preflightProblems() is empty when the host has all the VM needs", () => {
  assert.deepEqual(preflightProblems(sampleVm(), facts()), []);
});

Deno.test("a taken name is a problem", () => {
  assert.deepEqual(preflightProblems(sampleVm(), facts({ domains: ["web-01"] })), [
    { path: "metadata.name", message: 'a domain named "web-01" already exists' },
  ]);
});

Deno.test("missing bridges are problems with the closest name suggested", () => {
  const vm = sampleVm();
  vm.spec.networkInterfaces[1]!.bridge = "br2";
  assert.deepEqual(preflightProblems(vm, facts({ bridges: ["br0", "br1"] })), [
    {
      path: "spec.networkInterfaces[1].bridge",
      message: 'bridge "br2" does not exist on the host; did you mean "br0"?',
    },
  ]);
  const none = preflightProblems(sampleVm(), facts({ bridges: [] }));
  assert.equal(none.length, 2);
  assert.match(none[0]?.message ?? "", /the host has none$/);
  const far = preflightProblems(sampleVm(), facts({ bridges: ["enp1s0-uplink-bond"] }));
  assert.match(far[0]?.message ?? "", /available: enp1s0-uplink-bond$/);
});

Deno.test("an address used by another foundry VM is a problem; the VM itself does not count", () => {
  const other = sampleVm();
  other.metadata.name = "web-02";
  other.spec.networkInterfaces = [{ ip: "192.0.2.10/25", gateway: "192.0.2.1", bridge: "br0" }];
  assert.deepEqual(preflightProblems(sampleVm(), facts({ foundryVms: [other] })), [
    {
      path: "spec.networkInterfaces[0].ip",
      message: 'address 192.0.2.10 is already used by VM "web-02"',
    },
  ]);
  assert.deepEqual(preflightProblems(sampleVm(), facts({ foundryVms: [sampleVm()] })), []);
});

Deno.test("the boot image must exist in its pool, or as a file", () => {
  const vm = sampleVm();
  vm.spec.bootDisk.image = "debian-13.qcow2";
  assert.deepEqual(preflightProblems(vm, facts()), [
    {
      path: "spec.bootDisk.image",
      message:
        'image "debian-13.qcow2" is not in pool "foundry-images"; did you mean "debian-12.qcow2"?',
    },
  ]);
  vm.spec.bootDisk.image = "golden:debian-12.qcow2";
  assert.match(
    preflightProblems(vm, facts({ imageVolumes: undefined }))[0]?.message ?? "",
    /image pool "golden" does not exist/,
  );
  vm.spec.bootDisk.image = "debian-12.qcow2";
  assert.match(
    preflightProblems(vm, facts({ imageVolumes: [], imagesPool: "configured" }))[0]?.message ?? "",
    /not in pool "configured"; the host has none/,
  );
  vm.spec.bootDisk.image = "/srv/base.qcow2";
  assert.match(
    preflightProblems(vm, facts())[0]?.message ?? "",
    /image file \/srv\/base\.qcow2 does not exist/,
  );
  assert.deepEqual(preflightProblems(vm, facts({ imageFileExists: true })), []);
  delete vm.spec.bootDisk.image;
  vm.spec.bootDisk.empty = true;
  assert.deepEqual(preflightProblems(vm, facts({ imageVolumes: undefined })), []);
});

const GiB = 2 ** 30;

Deno.test("vCPUs beyond the host's CPUs or its QEMU's q35 maximum are problems", () => {
  const vm = sampleVm();
  vm.spec.vcpus = 9;
  assert.deepEqual(preflightProblems(vm, facts({ host: { cpus: 8, maxVcpus: 288 } })), [
    { path: "spec.vcpus", message: "9 vCPUs are more than the host's 8 CPUs" },
  ]);
  vm.spec.vcpus = 300;
  const p = preflightProblems(vm, facts({ host: { cpus: 512, maxVcpus: 288 } }));
  assert.deepEqual(p, [{
    path: "spec.vcpus",
    message: "300 vCPUs are more than the 288 this host's QEMU allows for a q35 machine",
  }]);
  vm.spec.vcpus = 8;
  assert.deepEqual(preflightProblems(vm, facts({ host: { cpus: 8, maxVcpus: 288 } })), []);
});

Deno.test("memory beyond the host's is a problem", () => {
  const vm = sampleVm();
  vm.spec.memoryGiB = 64;
  assert.deepEqual(preflightProblems(vm, facts({ host: { memoryBytes: 16 * GiB } })), [
    { path: "spec.memoryGiB", message: "64 GiB is more than the host's 16 GiB of memory" },
  ]);
  vm.spec.memoryGiB = 16;
  assert.deepEqual(preflightProblems(vm, facts({ host: { memoryBytes: 16 * GiB } })), []);
});

Deno.test("disks that can never fit in the VM pool, or a pool without room to start, are problems", () => {
  const vm = sampleVm(); // 20 GB boot, 10 and 5 GB data
  const pool = (capacity: number, available: number) => ({
    host: { vmPool: { name: "foundry-vms", capacity, available } },
  });
  assert.deepEqual(preflightProblems(vm, facts(pool(100 * GiB, 50 * GiB))), []);
  vm.spec.dataDisks![0]!.sizeGB = 9 * 2 ** 20; // 9 PiB
  assert.deepEqual(preflightProblems(vm, facts(pool(100 * GiB, 50 * GiB))), [{
    path: "spec.dataDisks[0].sizeGB",
    message:
      'the disks total 9437209 GB, more than pool "foundry-vms" can ever hold (its capacity is 100 GB)',
  }]);
  vm.spec.dataDisks![0]!.sizeGB = 10;
  const full = preflightProblems(vm, facts(pool(100 * GiB, 1024)));
  assert.equal(full.length, 1);
  assert.equal(full[0]?.path, "spec.storagePool");
  assert.match(full[0]?.message ?? "", /pool "foundry-vms" has 1024 bytes free/);
});

Deno.test("a missing install ISO, existing disk or bad password file is a problem of its field", () => {
  const vm = sampleVm();
  vm.spec.bootDisk = { sizeGB: 10, empty: true };
  vm.spec.installMedia = { image: "debian-13-netinst.iso" };
  assert.deepEqual(
    preflightProblems(
      vm,
      facts({
        installMedia: { exists: false, poolVolumes: ["debian-13-netinst1.iso", "a.qcow2"] },
      }),
    ),
    [{
      path: "spec.installMedia.image",
      message:
        'ISO "debian-13-netinst.iso" is not in pool "foundry-images"; did you mean "debian-13-netinst1.iso"?',
    }],
  );
  assert.deepEqual(
    preflightProblems(vm, facts({ installMedia: { exists: true, poolVolumes: [] } })),
    [],
  );
  const noPool = preflightProblems(vm, facts({ installMedia: { exists: false } }));
  assert.match(noPool[0]?.message ?? "", /image pool "foundry-images" does not exist/);
  vm.spec.installMedia = { image: "/srv/iso/x.iso" };
  assert.deepEqual(preflightProblems(vm, facts({ installMedia: { exists: false } })), [
    { path: "spec.installMedia.image", message: "ISO file /srv/iso/x.iso does not exist" },
  ]);

  const adopted = sampleVm();
  adopted.spec.bootDisk = { sizeGB: 10, volume: "default:web.qcow2" };
  adopted.spec.dataDisks = [{ device: "vdb", sizeGB: 1, volume: "/srv/disks/web-data.qcow2" }];
  assert.deepEqual(
    preflightProblems(
      adopted,
      facts({
        existingDisks: { "default:web.qcow2": true, "/srv/disks/web-data.qcow2": false },
      }),
    ),
    [{
      path: "spec.dataDisks[0].volume",
      message: "existing disk /srv/disks/web-data.qcow2 does not exist",
    }],
  );
  assert.deepEqual(
    preflightProblems(sampleVm(), facts({ graphicsPasswordProblem: "password file /p is bad" })),
    [{ path: "spec.graphics.passwordSecret", message: "password file /p is bad" }],
  );
});
