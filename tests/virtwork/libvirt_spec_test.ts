/**
 * The libvirt backend's pure parts: subnets and address allocation, the OS guess, and a planned
 * VM as a foundry spec (checked by foundry's loader, rendered to domain XML that libvirt's schema
 * accepts, its user data accepted by cloud-init's schema).
 */
import assert from "node:assert/strict";
import { parse } from "npm:yaml@^2.9.1";
import {
  allocateAddresses,
  checkedSpecs,
  cloudInitOf,
  foundryVmOf,
  guestOsOfImage,
  MANAGED_BY_LABEL,
  parseSubnet,
  RUN_ID_LABEL,
} from "../../lib/virtwork/libvirt/mod.ts";
import type { NeutralVm } from "../../lib/virtwork/backend.ts";
import { buildDomainXml } from "../../lib/foundry/domain_xml.ts";
import { noCloudFilesFromVm } from "../../lib/foundry/cloudinit.ts";
import { ValidationError } from "../../lib/foundry/errors.ts";
import { requireTool, testNeeding } from "../_require.ts";
import { runTool } from "../_tools.ts";

/** A planned VM as the core would hand it over. */
function neutral(over: Partial<NeutralVm> = {}): NeutralVm {
  return {
    workload: "disk",
    role: "worker",
    index: 1,
    name: "virtwork-disk-1",
    labels: { "app.kubernetes.io/component": "disk", "virtwork/role": "worker" },
    cpuCores: 1,
    memoryBytes: 1024 ** 3,
    dataDisks: [{
      name: "data",
      serial: "virtwork-disk",
      sizeBytes: 1.5 * 1024 ** 3,
      mountPath: "/mnt/data",
    }],
    userData: {
      packages: ["fio"],
      writeFiles: [{
        path: "/usr/local/bin/loop",
        content: "#!/bin/sh\nexit 0\n",
        permissions: "0755",
      }],
      runcmd: [["systemctl", "daemon-reload"], "echo started > /run/x"],
      extra: { bootcmd: [["mkdir", "-p", "/var/lib/virtwork"]] },
    },
    carriesCredentials: false,
    ...over,
  };
}

const ctx = () => ({
  runId: "run-1",
  image: "debian-12.qcow2",
  imagePool: "foundry-images",
  bridge: "br-work",
  subnet: parseSubnet("10.77.0.0/24"),
  domainType: "qemu" as const,
});

Deno.test("parseSubnet() takes a network address, prefix 8 to 30, gateway its first host", () => {
  const s = parseSubnet("10.77.0.0/24");
  assert.equal(s.text, "10.77.0.0/24");
  assert.equal(s.gateway, (10 << 24 >>> 0) + (77 << 16) + 1);
  assert.equal(parseSubnet("10.77.0.0/24", "10.77.0.254").gateway & 255, 254);
  assert.throws(() => parseSubnet("10.77.0.5/24"), /did you mean 10\.77\.0\.0\/24/);
  assert.throws(() => parseSubnet("10.77.0.0/31"), /prefix length must be from 8 to 30/);
  assert.throws(() => parseSubnet("10.0.0.0/7"), /prefix length/);
  assert.throws(() => parseSubnet("10.77.0.0"), /must be an IPv4 network/);
  assert.throws(() => parseSubnet("10.077.0.0/24"), /must be an IPv4 network/);
  assert.throws(() => parseSubnet("10.77.0.0/24", "10.77.1.1"), /not a host address/);
  assert.throws(() => parseSubnet("10.77.0.0/24", "10.77.0.255"), /not a host address/);
  assert.throws(() => parseSubnet("a\u001b[2J/24"), (e: Error) => !e.message.includes("\u001b"));
});

Deno.test("allocateAddresses() skips the gateway and taken addresses, and says when full", () => {
  const s = parseSubnet("192.0.2.0/29"); // hosts .1 to .6, gateway .1
  assert.deepEqual(allocateAddresses(s, 3, new Set(["192.0.2.3"])), [
    "192.0.2.2",
    "192.0.2.4",
    "192.0.2.5",
  ]);
  assert.equal(allocateAddresses(s, 5, new Set()).at(-1), "192.0.2.6");
  assert.throws(() => allocateAddresses(s, 6, new Set()), /has 5 free addresses, the run needs 6/);
  const g = parseSubnet("192.0.2.0/29", "192.0.2.6");
  assert.deepEqual(allocateAddresses(g, 1, new Set()), ["192.0.2.1"]);
});

Deno.test("guestOsOfImage() reads the distribution from the image name, else debian", () => {
  assert.equal(guestOsOfImage("Fedora-Cloud-41.qcow2"), "fedora");
  assert.equal(guestOsOfImage("CentOS-Stream-GenericCloud-9.qcow2"), "centos");
  assert.equal(guestOsOfImage("images:noble-ubuntu.img"), "ubuntu");
  assert.equal(guestOsOfImage("debian-12-generic.qcow2"), "debian");
  assert.equal(guestOsOfImage("base.qcow2"), "debian");
});

Deno.test("foundryVmOf() maps a planned VM onto a foundry spec", () => {
  const vm = foundryVmOf(neutral(), "10.77.0.2", ctx());
  assert.equal(vm.metadata.name, "virtwork-disk-1");
  assert.equal(vm.metadata.labels?.[MANAGED_BY_LABEL], "virtwork");
  assert.equal(vm.metadata.labels?.[RUN_ID_LABEL], "run-1");
  assert.equal(vm.metadata.labels?.["app.kubernetes.io/component"], "disk");
  assert.equal(vm.spec.vcpus, 1);
  assert.equal(vm.spec.memoryGiB, 1);
  assert.deepEqual(vm.spec.bootDisk, {
    sizeGB: 10,
    image: "debian-12.qcow2",
    imagePool: "foundry-images",
  });
  // 1.5 GiB rounds up to whole GiB; the serial is kept.
  assert.deepEqual(vm.spec.dataDisks, [{ device: "vdb", sizeGB: 2, serial: "virtwork-disk" }]);
  assert.deepEqual(vm.spec.networkInterfaces, [{
    ip: "10.77.0.2/24",
    gateway: "10.77.0.1",
    bridge: "br-work",
  }]);
  assert.equal(vm.spec.domainType, "qemu");
  assert.equal(vm.spec.autostart, false);
  assert.deepEqual(vm.spec.cloudInit?.userData, {
    packages: ["fio"],
    writeFiles: [{
      path: "/usr/local/bin/loop",
      content: "#!/bin/sh\nexit 0\n",
      permissions: "0755",
    }],
    runcmd: [["systemctl", "daemon-reload"], ["sh", "-c", "echo started > /run/x"]],
    bootcmd: [["mkdir", "-p", "/var/lib/virtwork"]],
  });
  // Memory that is not whole MiB rounds up to the next MiB.
  assert.equal(
    foundryVmOf(neutral({ memoryBytes: 2 ** 30 + 1 }), "10.77.0.2", ctx()).spec.memoryGiB,
    1025 / 1024,
  );
  // The checked spec is the same: foundry's loader accepts it as it is.
  assert.deepEqual(checkedSpecs([vm]), [vm]);
});

Deno.test("cloudInitOf() gives root the keys and refuses what a foundry VM cannot carry", () => {
  const key =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICoxOD9GTVRbYmlwd36FjJOaoaivtr3Ey9LZ4Ofu9fwD t@x";
  const ci = cloudInitOf(neutral({ userData: { sshUser: "virtwork", sshAuthorizedKeys: [key] } }));
  assert.deepEqual(ci, { sshAuthorizedKeys: [key] });
  assert.throws(
    () => cloudInitOf(neutral({ userData: { sshUser: "virtwork", sshPassword: "pw" } })),
    /cannot set a plain-text password/,
  );
  assert.throws(
    () =>
      cloudInitOf(neutral({
        userData: { writeFiles: [{ path: "/x", content: "", owner: "postgres:postgres" }] },
      })),
    /has owner postgres:postgres/,
  );
  assert.throws(
    () => cloudInitOf(neutral({ userData: { extra: { mounts: [["a", "b"]] } } })),
    /key "mounts" cannot be carried/,
  );
});

Deno.test("checkedSpecs() reports a spec foundry refuses, naming the field", () => {
  const bad = foundryVmOf(
    neutral({ userData: { writeFiles: [{ path: "/etc/hostname", content: "x" }] } }),
    "10.77.0.2",
    ctx(),
  );
  assert.throws(
    () => checkedSpecs([bad]),
    (e: unknown) =>
      e instanceof ValidationError &&
      /spec\.cloudInit\.userData\.writeFiles\[0\]\.path: .*foundry's own/.test(e.message),
  );
  const serial = foundryVmOf(
    neutral({
      dataDisks: [{ name: "d", serial: "x".repeat(21), sizeBytes: 2 ** 30, mountPath: "/m" }],
    }),
    "10.77.0.2",
    ctx(),
  );
  assert.throws(() => checkedSpecs([serial]), /spec\.dataDisks\[0\]\.serial/);
});

testNeeding(requireTool("virt-xml-validate", "xmllint", "cloud-init"), {
  name: "a planned VM's domain XML passes virt-xml-validate and its user data cloud-init schema",
  async fn() {
    const vm = foundryVmOf(neutral(), "10.77.0.2", ctx());
    const dir = await Deno.makeTempDir({ prefix: "vwlv-spec-" });
    try {
      await Deno.writeTextFile(`${dir}/d.xml`, buildDomainXml(vm, { domainType: "qemu" }));
      const x = await runTool("virt-xml-validate", [`${dir}/d.xml`, "domain"]);
      assert.equal(x.code, 0, x.stdout + x.stderr);
      const ud = noCloudFilesFromVm(vm)["user-data"];
      const doc = parse(ud);
      assert.deepEqual(doc.bootcmd, [["mkdir", "-p", "/var/lib/virtwork"]]);
      assert.equal(doc.users[0].name, "root");
      await Deno.writeTextFile(`${dir}/ud`, ud);
      const c = await runTool("cloud-init", ["schema", "--config-file", `${dir}/ud`]);
      assert.equal(c.code, 0, c.stdout + c.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
