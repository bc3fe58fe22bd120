import assert from "node:assert/strict";
import {
  interfaceNameFromIp,
  ipFromInterfaceName,
  macFromIp,
  resolveImage,
  volumeNameBoot,
  volumeNameCloudInit,
  volumeNameData,
} from "./naming.ts";

Deno.test("macFromIp() encodes the octets in hex after be:ef", () => {
  assert.equal(macFromIp("10.55.22.22"), "be:ef:0a:37:16:16");
  assert.equal(macFromIp("192.168.1.100/24"), "be:ef:c0:a8:01:64");
  assert.equal(macFromIp("0.0.0.0"), "be:ef:00:00:00:00");
  assert.equal(macFromIp("255.255.255.255/32"), "be:ef:ff:ff:ff:ff");
});

Deno.test("interfaceNameFromIp() matches the design's examples", () => {
  assert.equal(interfaceNameFromIp("10.55.22.22"), "vm0a371616");
  assert.equal(interfaceNameFromIp("10.250.250.10"), "vm0afafa0a");
  assert.equal(interfaceNameFromIp("192.168.1.100/24"), "vmc0a80164");
  assert.ok(interfaceNameFromIp("255.255.255.255").length <= 15);
});

Deno.test("ipFromInterfaceName() inverts interfaceNameFromIp()", () => {
  for (const ip of ["10.55.22.22", "192.0.2.1", "198.51.100.254", "0.0.0.0"]) {
    assert.equal(ipFromInterfaceName(interfaceNameFromIp(ip)), ip);
  }
  assert.equal(ipFromInterfaceName("vnet0"), undefined);
  assert.equal(ipFromInterfaceName("vm0A371616"), undefined);
});

Deno.test("MAC and tap names reject what is not an IPv4 address", () => {
  for (const bad of ["", "10.0.0", "10.0.0.256", "010.0.0.1", "::1", "a.b.c.d", "1.2.3.4.5"]) {
    assert.throws(() => macFromIp(bad), TypeError, bad);
    assert.throws(() => interfaceNameFromIp(bad), TypeError, bad);
  }
});

Deno.test("volume names follow {vm}_boot, {vm}_data-{device}, {vm}_cloudinit", () => {
  assert.equal(volumeNameBoot("web-server"), "web-server_boot");
  assert.equal(volumeNameData("web-server", "vdb"), "web-server_data-vdb");
  assert.equal(volumeNameCloudInit("web-server"), "web-server_cloudinit");
});

Deno.test("resolveImage() understands volume, pool:volume and /path", () => {
  assert.deepEqual(resolveImage("debian-12.qcow2"), {
    kind: "volume",
    pool: "foundry-images",
    volume: "debian-12.qcow2",
  });
  assert.deepEqual(resolveImage("debian-12.qcow2", "ssd"), {
    kind: "volume",
    pool: "ssd",
    volume: "debian-12.qcow2",
  });
  assert.deepEqual(resolveImage("bulk:debian-12.qcow2", "ssd"), {
    kind: "volume",
    pool: "bulk",
    volume: "debian-12.qcow2",
  });
  assert.deepEqual(resolveImage("/srv/img/d.qcow2"), { kind: "path", path: "/srv/img/d.qcow2" });
  assert.deepEqual(resolveImage("x.qcow2", undefined, "images2"), {
    kind: "volume",
    pool: "images2",
    volume: "x.qcow2",
  });
});
