import assert from "node:assert/strict";
import { buildDomainXml } from "./domain_xml.ts";
import {
  checkResizeRequest,
  domainSizes,
  parseDiskArg,
  parseLsblkPairs,
  planScalar,
  tcgHotplugDeferred,
} from "./resize.ts";
import { VmOperationError } from "./vm_errors.ts";
import { sampleVm } from "./_testdata.ts";

Deno.test("domainSizes() reads foundry's own domain XML: in use and maximum", () => {
  const vm = sampleVm(); // 2 vCPUs, 4 GiB, data disks
  const s = domainSizes(buildDomainXml(vm, { domainType: "qemu" }));
  assert.equal(s.type, "qemu");
  assert.equal(s.vcpus, 2);
  assert.equal(s.maxVcpus, 4);
  assert.equal(s.memoryMiB, 4096);
  assert.equal(s.maxMemoryMiB, 8192);
  assert.deepEqual(s.disks.get("vda"), { pool: "foundry-vms", volume: "web-01_boot" });
  assert.ok(!s.disks.has("sda"), "the cidata CD-ROM is not a disk to resize");
  for (const d of vm.spec.dataDisks ?? []) assert.ok(s.disks.has(d.device), d.device);
});

Deno.test("domainSizes() reads libvirt's own units and a vcpu without current", () => {
  const s = domainSizes(
    `<domain type="qemu"><name>x</name><memory unit="KiB">2097152</memory>` +
      `<currentMemory unit="KiB">1048576</currentMemory><vcpu placement="static">3</vcpu>` +
      `<devices><disk type="file" device="disk"><source file="/x.qcow2"/><target dev="vdb"/></disk>` +
      `</devices></domain>`,
  );
  assert.deepEqual([s.vcpus, s.maxVcpus, s.memoryMiB, s.maxMemoryMiB], [3, 3, 1024, 2048]);
  assert.deepEqual(s.disks.get("vdb"), { file: "/x.qcow2" });
  assert.throws(() => domainSizes("<domain><name>x</name></domain>"), VmOperationError);
});

Deno.test("planScalar(): live within the running maximum, next boot beyond it or when stopped", () => {
  assert.deepEqual(planScalar("vCPUs", true, 1, 2, 2, 2), {
    from: 1,
    to: 2,
    applied: "live",
    raiseMaximum: false,
  });
  assert.equal(planScalar("vCPUs", true, 2, 2, 2, 1).applied, "live"); // shrink: unplug
  assert.equal(planScalar("vCPUs", true, 2, 2, 2, 2).applied, "unchanged");
  const beyond = planScalar("memory", true, 1024, 2048, 2048, 3072, " MiB");
  assert.equal(beyond.applied, "nextBoot");
  assert.equal(beyond.raiseMaximum, true);
  assert.match(beyond.message!, /more than the running VM's maximum \(2048 MiB\)/);
  assert.match(beyond.message!, /next boot/);
  // The definition's maximum was already raised by an earlier resize: no second raise.
  assert.equal(planScalar("vCPUs", true, 1, 2, 8, 4).raiseMaximum, false);
  const stopped = planScalar("vCPUs", false, 1, 2, 2, 2);
  assert.equal(stopped.applied, "nextBoot");
  assert.equal(stopped.raiseMaximum, false);
  assert.match(stopped.message!, /not running/);
  assert.equal(planScalar("vCPUs", false, 1, 2, 2, 5).raiseMaximum, true);
});

Deno.test("checkResizeRequest() refuses values no VM can have, before anything changes", () => {
  const refused = (req: Parameters<typeof checkResizeRequest>[0], fragment: RegExp) =>
    assert.throws(() => checkResizeRequest(req), (e: Error) => {
      assert.ok(e instanceof VmOperationError);
      assert.match(e.message, fragment);
      return true;
    });
  refused({ vcpus: 0 }, /positive integer/);
  refused({ vcpus: 1.5 }, /positive integer/);
  refused({ vcpus: 4097 }, /at most 4096/);
  refused({ memoryGiB: 0 }, /more than 0/);
  refused({ memoryGiB: 1.0001 }, /whole number of MiB/);
  refused({ disks: [{ device: "vdb", sizeGB: 0 }] }, /whole number of GB/);
  refused({ disks: [{ device: "vdb", sizeGB: 2 }, { device: "vdb", sizeGB: 3 }] }, /twice/);
  checkResizeRequest({ vcpus: 2, memoryGiB: 1.5, disks: [{ device: "vdb", sizeGB: 2 }] });
});

Deno.test("parseDiskArg() reads DEV=SIZE in GB", () => {
  assert.deepEqual(parseDiskArg("vdb=20"), { device: "vdb", sizeGB: 20 });
  assert.deepEqual(parseDiskArg("VDC=3GiB"), { device: "vdc", sizeGB: 3 });
  assert.deepEqual(parseDiskArg("vda=10G"), { device: "vda", sizeGB: 10 });
  for (const bad of ["vdb", "vdb=", "=2", "vdb=1.5", "vdb=-1", "vdb=2T", "../x=2"]) {
    assert.throws(() => parseDiskArg(bad), VmOperationError, bad);
  }
});

Deno.test("parseLsblkPairs() reads lsblk -P lines, escapes kept", () => {
  const recs = parseLsblkPairs(
    'NAME="vda" TYPE="disk" FSTYPE="" MOUNTPOINT=""\n' +
      'NAME="vda1" TYPE="part" FSTYPE="ext4" MOUNTPOINT="/"\n' +
      'NAME="vdb" TYPE="disk" FSTYPE="ext4" MOUNTPOINT="/mnt/my\\x20data"\n',
  );
  assert.equal(recs.length, 3);
  assert.deepEqual(recs[1], { NAME: "vda1", TYPE: "part", FSTYPE: "ext4", MOUNTPOINT: "/" });
  assert.equal(recs[2]!.MOUNTPOINT, "/mnt/my\\x20data");
  assert.equal(recs[0]!.FSTYPE, "");
});

Deno.test("a vCPU hot-plug into a TCG domain goes to the next boot, with the reason", () => {
  const live = planScalar("vCPUs", true, 1, 2, 2, 2);
  assert.equal(live.applied, "live");
  const p = tcgHotplugDeferred(live);
  assert.equal(p.applied, "nextBoot");
  assert.deepEqual([p.from, p.to, p.raiseMaximum], [1, 2, false]);
  assert.match(p.message ?? "", /TCG .* next boot/);
});
