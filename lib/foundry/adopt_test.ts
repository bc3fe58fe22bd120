import assert from "node:assert/strict";
import { ADOPTED_ANNOTATION, adoptedDocument, type DiskFacts } from "./adopt.ts";
import { observedSpec } from "./live_spec.ts";
import { parseVirtualMachine } from "./loader.ts";
import { VIRT_INSTALL_XML } from "./_live_spec_testdata.ts";

const GIB = 1024 ** 3;

const bootFacts = new Map<string, DiskFacts>([
  ["vda", {
    source: "images:h4.qcow2",
    capacity: 10 * GIB,
    volume: { pool: "images", name: "h4.qcow2", key: "/var/lib/libvirt/images/h4.qcow2" },
  }],
]);

Deno.test("adoptedDocument() names what a spec cannot say, and leaves it out on request", () => {
  const o = observedSpec(VIRT_INSTALL_XML);
  const made = adoptedDocument(o, bootFacts, false);
  assert.deepEqual(made.unsupported, [
    'interface 52:54:00:aa:bb:02 on libvirt network "default": a spec attaches NICs to host bridges',
  ]);
  assert.ok(made.notes.some((n) => /^cdrom sda: not in the spec/.test(n)));
  assert.ok(made.notes.some((n) => /console password/.test(n)));
});

Deno.test("adoptedDocument() writes a spec the loader accepts: disks as volumes, NICs by MAC, maxima", () => {
  const o = observedSpec(VIRT_INSTALL_XML);
  o.nics = o.nics.filter((n) => n.type === "bridge");
  const made = adoptedDocument(o, bootFacts, false, { labels: { team: "ops" } });
  assert.deepEqual(made.unsupported, []);
  assert.deepEqual(made.volumes, [
    { role: "boot", pool: "images", name: "h4.qcow2", key: "/var/lib/libvirt/images/h4.qcow2" },
  ]);
  assert.deepEqual(made.doc.metadata, {
    name: "h4-fixture",
    labels: { team: "ops" },
    annotations: { [ADOPTED_ANNOTATION]: "true" },
  });
  assert.deepEqual(made.doc.spec, {
    vcpus: 1,
    memoryGiB: 0.5,
    bootDisk: { volume: "images:h4.qcow2", sizeGB: 10 },
    storagePool: "images",
    networkInterfaces: [{ bridge: "h4br0", mac: "52:54:00:aa:bb:01" }],
    cpu: { sockets: 1, cores: 2, threads: 1 },
    graphics: { type: "vnc", listen: "127.0.0.1" },
    autostart: false,
    domainType: "qemu",
    resources: { maxVcpus: 2, maxMemoryGiB: 1 },
  });
  const vm = parseVirtualMachine(JSON.stringify(made.doc), "adopt.json");
  assert.equal(vm.spec.bootDisk.volume, "images:h4.qcow2");
  assert.equal(vm.spec.networkInterfaces[0]?.mac, "52:54:00:aa:bb:01");
  assert.equal(vm.spec.networkInterfaces[0]?.ip, undefined);
});

Deno.test("adoptedDocument() keeps data disks that are virtio vdb-vdz, and paths of files in no pool", () => {
  const o = observedSpec(VIRT_INSTALL_XML.replace(
    "</devices>",
    `<disk type="file" device="disk"><source file="/srv/data.img"/><target dev="vdb" bus="virtio"/><serial>D1</serial></disk>
     <disk type="file" device="disk"><source file="/srv/sata.img"/><target dev="sdb" bus="sata"/></disk>
     </devices>`,
  ));
  const facts = new Map(bootFacts);
  facts.set("vdb", { source: "/srv/data.img", capacity: 1.5 * GIB });
  facts.set("sdb", { source: "/srv/sata.img", capacity: GIB });
  const made = adoptedDocument(o, facts, true, { skipUnsupported: true });
  assert.deepEqual(made.doc.spec && (made.doc.spec as Record<string, unknown>).dataDisks, [
    { device: "vdb", volume: "/srv/data.img", sizeGB: 2, serial: "D1" },
  ]);
  assert.ok(made.unsupported.some((u) => u.startsWith("disk sdb (sata bus)")));
  assert.ok(
    made.notes.some((n) => /disk vdb: 1610612736 bytes is not a whole GB, written as 2 GB/.test(n)),
  );
  // Only pool volumes go into the volume record.
  assert.deepEqual(made.volumes.map((v) => v.role), ["boot"]);
});
