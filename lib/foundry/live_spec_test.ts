import assert from "node:assert/strict";
import { buildDomainXml } from "./domain_xml.ts";
import { observedSpec } from "./live_spec.ts";
import { sampleVm } from "./_testdata.ts";
import { VIRT_INSTALL_XML } from "./_live_spec_testdata.ts";

Deno.test("observedSpec() reads a virt-install domain: sizes, disks, NICs, topology, graphics", () => {
  const o = observedSpec(VIRT_INSTALL_XML);
  assert.equal(o.name, "h4-fixture");
  assert.equal(o.domainType, "qemu");
  assert.equal(o.active, false);
  assert.deepEqual([o.vcpus, o.maxVcpus, o.memoryMiB, o.maxMemoryMiB], [1, 2, 512, 1024]);
  assert.deepEqual(o.disks, [
    {
      device: "vda",
      kind: "disk",
      type: "file",
      bus: "virtio",
      file: "/var/lib/libvirt/images/h4.qcow2",
      format: "qcow2",
      readonly: false,
    },
    { device: "sda", kind: "cdrom", type: "file", bus: "sata", readonly: true },
  ]);
  assert.deepEqual(o.nics, [
    { type: "bridge", bridge: "h4br0", mac: "52:54:00:aa:bb:01", model: "e1000" },
    { type: "network", network: "default", mac: "52:54:00:aa:bb:02" },
  ]);
  assert.deepEqual(o.cpu, { sockets: 1, cores: 2, threads: 1 });
  assert.equal(o.numa, undefined);
  // Never the password.
  assert.deepEqual(o.graphics, [{ type: "vnc", listen: "127.0.0.1" }]);
  assert.ok(!JSON.stringify(o).includes("secret"));
  assert.deepEqual(o.boot, ["hd"]);
});

Deno.test("observedSpec() reads foundry's own domain XML as its spec says", () => {
  const vm = sampleVm();
  const o = observedSpec(buildDomainXml(vm, { domainType: "qemu" }));
  assert.equal(o.vcpus, 2);
  assert.equal(o.memoryMiB, 4096);
  assert.deepEqual(o.disks.map((d) => [d.device, d.kind, d.pool, d.volume]), [
    ["vda", "disk", "foundry-vms", "web-01_boot"],
    ["vdb", "disk", "foundry-vms", "web-01_data-vdb"],
    ["vdc", "disk", "foundry-vms", "web-01_data-vdc"],
    ["sda", "cdrom", "foundry-vms", "web-01_cloudinit"],
  ]);
  assert.deepEqual(o.nics.map((n) => [n.type, n.bridge, n.model]), [
    ["bridge", "br0", "virtio"],
    ["bridge", "br1", "virtio"],
  ]);
  assert.equal(o.cpu?.mode, "maximum");
});

Deno.test("observedSpec() reads a running domain's id, NUMA cells in any unit and listen elements", () => {
  const o = observedSpec(`<domain type='kvm' id='7'><name>n</name>
    <memory unit='GiB'>2</memory><vcpu>4</vcpu>
    <cpu mode='host-model'><topology sockets='2' cores='2' threads='1'/>
      <numa><cell id='0' cpus='0-1' memory='1048576' unit='KiB'/><cell id='1' cpus='2-3' memory='1' unit='GiB'/></numa>
    </cpu>
    <devices><graphics type='spice' autoport='yes'><listen type='address' address='0.0.0.0'/></graphics>
      <interface type='direct'><source dev='eth0' mode='bridge'/><boot order='2'/></interface>
      <disk type='block' device='disk'><source dev='/dev/sdb'/><target dev='vdb'/><serial>S1</serial><boot order='1'/></disk>
    </devices></domain>`);
  assert.equal(o.active, true);
  assert.deepEqual([o.vcpus, o.maxVcpus, o.memoryMiB, o.maxMemoryMiB], [4, 4, 2048, 2048]);
  assert.deepEqual(o.cpu, { mode: "host-model", sockets: 2, cores: 2, threads: 1 });
  assert.deepEqual(o.numa, [{ id: 0, cpus: "0-1", memoryMiB: 1024 }, {
    id: 1,
    cpus: "2-3",
    memoryMiB: 1024,
  }]);
  assert.deepEqual(o.graphics, [{ type: "spice", listen: "0.0.0.0" }]);
  assert.deepEqual(o.nics, [{ type: "direct", sourceDev: "eth0", bootOrder: 2 }]);
  assert.equal(o.disks[0]?.dev, "/dev/sdb");
  assert.equal(o.disks[0]?.serial, "S1");
  assert.equal(o.disks[0]?.bootOrder, 1);
});

Deno.test("observedSpec() refuses a domain without sizes", () => {
  assert.throws(() => observedSpec("<domain><name>x</name></domain>"), /no readable <vcpu>/);
});
