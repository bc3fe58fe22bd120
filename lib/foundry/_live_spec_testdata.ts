/** Domain XML fixtures of the live_spec, drift and adopt tests; not part of the public API. */

/** What `virt-install --print-xml --import` (4.1) writes, as defined; the VNC password included. */
export const VIRT_INSTALL_XML = `<domain type="qemu">
  <name>h4-fixture</name>
  <uuid>7708e80c-4ca8-4695-b2d5-87af1d9f26c8</uuid>
  <memory>1048576</memory>
  <currentMemory>524288</currentMemory>
  <vcpu current="1">2</vcpu>
  <os>
    <type arch="x86_64" machine="pc-i440fx-7.2">hvm</type>
    <boot dev="hd"/>
  </os>
  <cpu>
    <topology sockets="1" dies="1" cores="2" threads="1"/>
  </cpu>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2"/>
      <source file="/var/lib/libvirt/images/h4.qcow2"/>
      <target dev="vda" bus="virtio"/>
    </disk>
    <disk type="file" device="cdrom">
      <target dev="sda" bus="sata"/>
      <readonly/>
    </disk>
    <interface type="bridge">
      <source bridge="h4br0"/>
      <mac address="52:54:00:AA:bb:01"/>
      <model type="e1000"/>
    </interface>
    <interface type="network">
      <source network="default"/>
      <mac address="52:54:00:aa:bb:02"/>
    </interface>
    <graphics type="vnc" port="-1" listen="127.0.0.1" passwd="secret"/>
  </devices>
</domain>`;
