import assert from "node:assert/strict";
import { backingPathOf, diskSources } from "./move.ts";

Deno.test("diskSources() reads pool volumes and files, skipping an empty CD-ROM", () => {
  const xml = `<domain><devices>
    <disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>
      <source pool='vms' volume='web_boot'/><target dev='vda' bus='virtio'/></disk>
    <disk type="file" device="disk"><source file="/srv/data.img"/><target dev="vdb"/></disk>
    <disk type='volume' device='cdrom'><source pool='vms' volume='web_cloudinit'/>
      <target dev='sda' bus='scsi'/><readonly/></disk>
    <disk type='file' device='cdrom'><target dev='sdb' bus='scsi'/></disk>
  </devices></domain>`;
  assert.deepEqual(diskSources(xml), [
    { device: "vda", pool: "vms", volume: "web_boot" },
    { device: "vdb", file: "/srv/data.img" },
    { device: "sda", pool: "vms", volume: "web_cloudinit" },
  ]);
  assert.deepEqual(diskSources("<domain/>"), []);
});

Deno.test("backingPathOf() reads the backing file of a volume's XML", () => {
  const overlay = `<volume type='file'><name>web_boot</name>
    <target><path>/var/lib/libvirt/vms/web_boot</path><format type='qcow2'/></target>
    <backingStore><path>/var/lib/libvirt/images/base.qcow2</path><format type='qcow2'/></backingStore>
  </volume>`;
  assert.equal(backingPathOf(overlay), "/var/lib/libvirt/images/base.qcow2");
  const iso = `<volume type='file'><name>web_cloudinit</name>
    <target><path>/var/lib/libvirt/vms/web_cloudinit</path><format type='iso'/></target></volume>`;
  assert.equal(backingPathOf(iso), undefined);
});
