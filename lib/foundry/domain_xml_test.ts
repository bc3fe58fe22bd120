import assert from "node:assert/strict";
import { requireTool, testNeeding } from "../../tests/_require.ts";
import { XMLParser } from "npm:fast-xml-parser@^5.12.1";
import { buildDomainXml, chooseDomainType, GUEST_AGENT_CHANNEL, kvmOffered } from "./domain_xml.ts";
import {
  METADATA_NAMESPACE,
  parseDomainMetadata,
  parseMetadataXml,
  withoutPasswordHash,
} from "./metadata.ts";
import { interfaceNameFromIp, macFromIp } from "./naming.ts";
import { sampleVm, workloadVm } from "./_testdata.ts";
import type { VirtualMachine } from "./types.ts";

// deno-lint-ignore no-explicit-any
type Loose = any;

const parser = new XMLParser({
  ignoreAttributes: false,
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name) => ["disk", "interface", "feature"].includes(name),
});

function parsed(vm: VirtualMachine, domainType: "kvm" | "qemu" = "qemu"): Loose {
  return parser.parse(buildDomainXml(vm, { domainType })).domain;
}

const VIRSH = requireTool("virsh");
// virt-xml-validate needs xmllint (Debian libxml2-utils) besides libvirt-clients.
const VALIDATOR = requireTool("virt-xml-validate", "xmllint");

async function validate(xml: string): Promise<{ ok: boolean; out: string }> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/domain.xml`, xml);
    const r = await new Deno.Command("virt-xml-validate", {
      args: [`${dir}/domain.xml`, "domain"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { ok: r.success, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** VMs that cover the variations of the XML. */
function variants(): [string, VirtualMachine, "kvm" | "qemu"][] {
  const minimal = sampleVm();
  delete minimal.spec.dataDisks;
  delete minimal.spec.cloudInit;
  delete minimal.spec.cpuMode;
  minimal.spec.networkInterfaces = minimal.spec.networkInterfaces.slice(0, 1);
  const passthrough = sampleVm();
  passthrough.spec.cpuMode = "host-passthrough";
  const odd = sampleVm();
  odd.metadata.annotations = { note: `quotes " ' and <tags> & ]]> end` };
  odd.spec.memoryGiB = 0.5;
  const fixed = sampleVm();
  fixed.spec.resources = { maxVcpus: 2, maxMemoryGiB: 4 };
  return [
    ["full on qemu", sampleVm(), "qemu"],
    ["full on kvm", sampleVm(), "kvm"],
    ["minimal on kvm", minimal, "kvm"],
    ["host-passthrough on kvm", passthrough, "kvm"],
    ["markup in annotations", odd, "qemu"],
    ["data disk serials and user-data extras", workloadVm(), "qemu"],
    ["no resize headroom", fixed, "qemu"],
  ];
}

Deno.test("buildDomainXml() describes a q35 UEFI machine with secure boot off", () => {
  const d = parsed(sampleVm());
  assert.equal(d["@_type"], "qemu");
  assert.equal(d.name, "web-01");
  // The spec's 2 vCPUs and 4 GiB are in use, with the default headroom of twice that.
  assert.deepEqual(d.currentMemory, { "@_unit": "MiB", "#text": "4096" });
  assert.deepEqual(d.memory, { "@_unit": "MiB", "#text": "8192" });
  assert.deepEqual(d.vcpu, { "@_placement": "static", "@_current": "2", "#text": "4" });
  assert.equal(d.os["@_firmware"], "efi");
  assert.deepEqual(d.os.type, { "@_arch": "x86_64", "@_machine": "q35", "#text": "hvm" });
  assert.deepEqual(
    d.os.firmware.feature.map((f: Loose) => [f["@_name"], f["@_enabled"]]).sort(),
    [["enrolled-keys", "no"], ["secure-boot", "no"]],
  );
  assert.equal(d.os.loader, undefined);
});

Deno.test("buildDomainXml() uses the spec's CPU mode on KVM and maximum on TCG", () => {
  assert.equal(parsed(sampleVm(), "kvm").cpu["@_mode"], "host-model");
  const vm = sampleVm();
  vm.spec.cpuMode = "host-passthrough";
  assert.equal(parsed(vm, "kvm").cpu["@_mode"], "host-passthrough");
  delete vm.spec.cpuMode;
  assert.equal(parsed(vm, "kvm").cpu["@_mode"], "host-model");
  vm.spec.cpuMode = "host-passthrough";
  assert.equal(parsed(vm, "qemu").cpu["@_mode"], "maximum");
});

Deno.test("buildDomainXml() attaches boot and data volumes on virtio and the seed on virtio-scsi", () => {
  const d = parsed(sampleVm());
  const disks = d.devices.disk.map((x: Loose) => ({
    device: x["@_device"],
    pool: x.source["@_pool"],
    volume: x.source["@_volume"],
    dev: x.target["@_dev"],
    bus: x.target["@_bus"],
    format: x.driver["@_type"],
  }));
  assert.deepEqual(disks, [
    {
      device: "disk",
      pool: "foundry-vms",
      volume: "web-01_boot",
      dev: "vda",
      bus: "virtio",
      format: "qcow2",
    },
    {
      device: "disk",
      pool: "foundry-vms",
      volume: "web-01_data-vdb",
      dev: "vdb",
      bus: "virtio",
      format: "qcow2",
    },
    {
      device: "disk",
      pool: "foundry-vms",
      volume: "web-01_data-vdc",
      dev: "vdc",
      bus: "virtio",
      format: "qcow2",
    },
    {
      device: "cdrom",
      pool: "foundry-vms",
      volume: "web-01_cloudinit",
      dev: "sda",
      bus: "scsi",
      format: "raw",
    },
  ]);
  assert.ok("readonly" in d.devices.disk[3]);
  const controllers: Loose[] = d.devices.controller;
  assert.deepEqual(
    controllers.filter((c) => c["@_type"] === "scsi").map((c) => c["@_model"]),
    ["virtio-scsi"],
  );
  assert.ok(!JSON.stringify(d.devices).includes("sata"));
  // A root port per PCIe device (3 disks, 2 NICs, 5 controllers and devices) and 4 spare.
  assert.equal(controllers.filter((c) => c["@_model"] === "pcie-root-port").length, 3 + 2 + 5 + 4);
});

Deno.test("buildDomainXml() takes the pool from options, else the spec, else foundry-vms", () => {
  const vm = sampleVm();
  vm.spec.storagePool = "fast";
  const pools = (x: string) =>
    new Set(parser.parse(x).domain.devices.disk.map((d: Loose) => d.source["@_pool"]));
  assert.deepEqual(pools(buildDomainXml(vm, { domainType: "kvm" })), new Set(["fast"]));
  assert.deepEqual(
    pools(buildDomainXml(vm, { domainType: "kvm", pool: "flag" })),
    new Set(["flag"]),
  );
  delete vm.spec.storagePool;
  assert.deepEqual(pools(buildDomainXml(vm, { domainType: "kvm" })), new Set(["foundry-vms"]));
});

Deno.test("buildDomainXml() bridges every interface with the derived MAC and tap name", () => {
  const d = parsed(sampleVm());
  assert.deepEqual(
    d.devices.interface.map((i: Loose) => ({
      type: i["@_type"],
      mac: i.mac["@_address"],
      bridge: i.source["@_bridge"],
      tap: i.target["@_dev"],
      model: i.model["@_type"],
    })),
    [
      {
        type: "bridge",
        mac: "be:ef:c0:00:02:0a",
        bridge: "br0",
        tap: "vmc000020a",
        model: "virtio",
      },
      {
        type: "bridge",
        mac: "be:ef:c6:33:64:0a",
        bridge: "br1",
        tap: "vmc633640a",
        model: "virtio",
      },
    ],
  );
});

Deno.test("buildDomainXml() has a serial console and the guest agent channel", () => {
  const d = parsed(sampleVm());
  assert.equal(d.devices.serial["@_type"], "pty");
  assert.equal(d.devices.console.target["@_type"], "serial");
  assert.equal(d.devices.channel["@_type"], "unix");
  assert.deepEqual(d.devices.channel.target, { "@_type": "virtio", "@_name": GUEST_AGENT_CHANNEL });
  assert.equal(GUEST_AGENT_CHANNEL, "org.qemu.guest_agent.0");
});

Deno.test("buildDomainXml() escapes user strings and stores the spec in metadata", () => {
  const [, odd] = variants()[4]!;
  const xml = buildDomainXml(odd, { domainType: "qemu" });
  assert.ok(!xml.includes("<tags>"));
  assert.deepEqual(parseDomainMetadata(xml), withoutPasswordHash(odd));
  assert.equal(parsed(odd).currentMemory["#text"], "512");
});

Deno.test("buildDomainXml() reserves resize headroom: the spec's resources, else 2x capped by the host", () => {
  const vm = sampleVm(); // 2 vCPUs, 4 GiB
  const headroom = (v: VirtualMachine, host?: { cpus?: number; memoryMiB?: number }) => {
    const d = parser.parse(buildDomainXml(v, { domainType: "qemu", ...(host ? { host } : {}) }))
      .domain;
    return [d.vcpu["@_current"], d.vcpu["#text"], d.currentMemory["#text"], d.memory["#text"]];
  };
  assert.deepEqual(headroom(vm), ["2", "4", "4096", "8192"]);
  // A small host caps the defaults, never below what the spec uses.
  assert.deepEqual(headroom(vm, { cpus: 3, memoryMiB: 6144 }), ["2", "3", "4096", "6144"]);
  assert.deepEqual(headroom(vm, { cpus: 1, memoryMiB: 1024 }), [undefined, "2", "4096", "4096"]);
  // Explicit resources win, even beyond the host; equal to the spec means no headroom.
  vm.spec.resources = { maxVcpus: 16, maxMemoryGiB: 5.5 };
  assert.deepEqual(headroom(vm, { cpus: 2 }), ["2", "16", "4096", "5632"]);
  vm.spec.resources = { maxVcpus: 2, maxMemoryGiB: 4 };
  assert.deepEqual(headroom(vm), [undefined, "2", "4096", "4096"]);
  const d = parser.parse(buildDomainXml(vm, { domainType: "qemu" })).domain;
  assert.deepEqual(d.devices.memballoon, { "@_model": "virtio" });
  // The default stays within what QEMU 7.2 starts for q35 (288), never below what is in use.
  const big = sampleVm();
  big.spec.vcpus = 200;
  assert.deepEqual(headroom(big).slice(0, 2), ["200", "288"]);
  big.spec.vcpus = 300;
  assert.deepEqual(headroom(big).slice(0, 2), [undefined, "300"]);
});

Deno.test("buildDomainXml() sets a UUID only when given", () => {
  const uuid = "4a0e8f4c-6d7a-4b7e-9a51-0c2e2a3b5d6f";
  assert.equal(
    parser.parse(buildDomainXml(sampleVm(), { domainType: "kvm", uuid })).domain.uuid,
    uuid,
  );
  assert.equal(parsed(sampleVm()).uuid, undefined);
});

Deno.test("chooseDomainType(): spec, then configuration, then the host's capabilities", () => {
  const vm = sampleVm();
  assert.equal(chooseDomainType(vm, "auto", true), "kvm");
  assert.equal(chooseDomainType(vm, "auto", false), "qemu");
  assert.equal(chooseDomainType(vm, "qemu", true), "qemu");
  vm.spec.domainType = "kvm";
  assert.equal(chooseDomainType(vm, "qemu", false), "kvm");
});

testNeeding(VALIDATOR, {
  name: "every generated domain XML passes virt-xml-validate",
  fn: async () => {
    for (const [label, vm, type] of variants()) {
      const r = await validate(buildDomainXml(vm, { domainType: type }));
      assert.ok(r.ok, `${label}: ${r.out}`);
    }
    // The check can fail: a domain without its required <name> is refused.
    const broken = buildDomainXml(sampleVm(), { domainType: "qemu" }).replace(
      /<name>.*<\/name>/,
      "",
    );
    assert.equal((await validate(broken)).ok, false);
  },
});

function capabilities(domainTypes: Record<string, string[]>): string {
  const guests = Object.entries(domainTypes).map(([arch, types]) =>
    `<guest><os_type>hvm</os_type><arch name='${arch}'><wordsize>64</wordsize>` +
    `<machine maxCpus='288'>pc-q35-7.2</machine>` +
    types.map((t) => `<domain type='${t}'/>`).join("") +
    `</arch><features><acpi/></features></guest>`
  ).join("");
  return `<capabilities><host><cpu><arch>x86_64</arch></cpu></host>${guests}</capabilities>`;
}

Deno.test("kvmOffered() reads the host capabilities for the architecture", () => {
  assert.equal(kvmOffered(capabilities({ i686: ["qemu", "kvm"], x86_64: ["qemu", "kvm"] })), true);
  assert.equal(kvmOffered(capabilities({ x86_64: ["qemu"] })), false);
  assert.equal(kvmOffered(capabilities({ i686: ["qemu", "kvm"], x86_64: ["qemu"] })), false);
  assert.equal(kvmOffered(capabilities({ aarch64: ["kvm"] }), "aarch64"), true);
  assert.equal(kvmOffered("<capabilities><host/></capabilities>"), false);
});

testNeeding(VIRSH, {
  name:
    "libvirt's own parser (test:///default driver) accepts every domain and keeps foundry's record",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      for (const [label, vm, type] of variants()) {
        const file = `${dir}/domain.xml`;
        await Deno.writeTextFile(file, buildDomainXml(vm, { domainType: type }));
        // The test driver lives inside this one virsh process: no daemon is involved.
        const name = vm.metadata.name;
        const r = await new Deno.Command("virsh", {
          args: [
            "-q",
            "-c",
            "test:///default",
            `define ${file}; echo @@@; dumpxml ${name}; echo @@@; metadata ${name} --uri ${METADATA_NAMESPACE}`,
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const out = new TextDecoder().decode(r.stdout);
        assert.ok(r.success, `${label}: ${new TextDecoder().decode(r.stderr)}`);
        const [, dumped, element] = out.split(/@@@\n?/);
        assert.ok(dumped !== undefined && element !== undefined, out);
        assert.deepEqual(parseDomainMetadata(dumped), withoutPasswordHash(vm), label);
        assert.deepEqual(parseMetadataXml(element), withoutPasswordHash(vm), label);
        const d = parser.parse(dumped).domain;
        assert.equal(d["@_type"], type);
        assert.deepEqual(
          d.devices.interface.map((i: Loose) => [i.mac["@_address"], i.target["@_dev"]]),
          vm.spec.networkInterfaces.map((n) => [macFromIp(n.ip!), interfaceNameFromIp(n.ip!)]),
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("buildDomainXml() refuses control characters that slipped past the loader", () => {
  for (
    const mutate of [
      (v: VirtualMachine) => (v.metadata.annotations = { note: "a\u009b2Jb" }),
      (v: VirtualMachine) => (v.metadata.name = "web\u0001"),
      (v: VirtualMachine) => (v.spec.networkInterfaces[0]!.bridge = "br0\u202e"),
    ]
  ) {
    const vm = sampleVm();
    mutate(vm);
    assert.throws(() => buildDomainXml(vm, { domainType: "qemu" }), TypeError);
  }
  assert.doesNotThrow(() => buildDomainXml(sampleVm(), { domainType: "qemu" }));
});

Deno.test("buildDomainXml() gives a data disk its serial, and only the disks that have one", () => {
  const disks = parsed(workloadVm()).devices.disk;
  const vdb = disks.find((d: Loose) => d.target["@_dev"] === "vdb");
  const vdc = disks.find((d: Loose) => d.target["@_dev"] === "vdc");
  assert.equal(vdb.serial, "virtwork-disk");
  assert.equal(vdc.serial, undefined);
  // The results channel reads the serial console: it must be there with a workload too.
  const devices = parsed(workloadVm()).devices;
  assert.equal(devices.serial["@_type"], "pty");
  assert.equal(devices.console.target["@_type"], "serial");
});

/** sampleVm() with every field of issue 15's spec additions. */
function fullVm(): VirtualMachine {
  const vm = sampleVm();
  delete vm.spec.cpuMode;
  vm.spec.cpu = { sockets: 2, cores: 2, threads: 1, mode: "host-passthrough" };
  vm.spec.numa = [{ cpus: "0-1", memoryGiB: 4 }, { cpus: "2-3", memoryGiB: 4 }];
  vm.spec.graphics = { type: "vnc", listen: "0.0.0.0", passwordSecret: "/etc/foundry/vnc" };
  vm.spec.bootDisk = { sizeGB: 20, empty: true };
  vm.spec.installMedia = { image: "debian.iso" };
  vm.spec.dataDisks = [{ device: "vdb", sizeGB: 5, volume: "/srv/disks/data.raw" }];
  vm.spec.networkInterfaces[1] = { mac: "52:54:00:aa:bb:cc", bridge: "br1" };
  return vm;
}

Deno.test("buildDomainXml() writes the CPU topology and NUMA cells; the mode of cpu.mode on KVM", () => {
  const d = parsed(fullVm(), "kvm");
  assert.equal(d.cpu["@_mode"], "host-passthrough");
  assert.deepEqual(d.cpu.topology, {
    "@_sockets": "2",
    "@_dies": "1",
    "@_cores": "2",
    "@_threads": "1",
  });
  assert.deepEqual(d.cpu.numa.cell, [
    { "@_id": "0", "@_cpus": "0-1", "@_memory": "4096", "@_unit": "MiB" },
    { "@_id": "1", "@_cpus": "2-3", "@_memory": "4096", "@_unit": "MiB" },
  ]);
  // The cells' sum is <memory>; the maximum is the topology's product.
  assert.equal(d.memory["#text"], "8192");
  assert.equal(d.vcpu["#text"], "4");
  assert.equal(d.vcpu["@_current"], "2");
  const tcg = parsed(fullVm(), "qemu");
  assert.equal(tcg.cpu["@_mode"], "maximum");
  assert.equal(tcg.cpu.topology["@_cores"], "2");
  // Cores default to what makes the product the maximum.
  const vm = sampleVm();
  vm.spec.cpu = { sockets: 2 };
  vm.spec.resources = { maxVcpus: 8 };
  assert.equal(parsed(vm).cpu.topology["@_cores"], "4");
});

Deno.test("buildDomainXml() puts the graphics password in the domain only, never in the stored spec", () => {
  const secret = "s3cretpw";
  const xml = buildDomainXml(fullVm(), { domainType: "qemu", graphicsPassword: secret });
  const d = parser.parse(xml).domain;
  assert.equal(d.devices.graphics["@_type"], "vnc");
  assert.equal(d.devices.graphics["@_passwd"], secret);
  assert.equal(d.devices.graphics["@_autoport"], "yes");
  assert.deepEqual(d.devices.graphics.listen, { "@_type": "address", "@_address": "0.0.0.0" });
  assert.equal(xml.split(secret).length, 2, "the password appears once, in passwd");
  assert.equal(parseDomainMetadata(xml)?.spec.graphics?.passwordSecret, "/etc/foundry/vnc");
  const plainVm = fullVm();
  plainVm.spec.graphics = { type: "spice" };
  const spice = parsed(plainVm).devices.graphics;
  assert.equal(spice["@_listen"], "127.0.0.1");
  assert.equal(spice["@_passwd"], undefined);
  assert.throws(
    () => buildDomainXml(fullVm(), { domainType: "qemu", graphicsPassword: "zq\nxw" }),
    (e: Error) => e instanceof TypeError && !e.message.includes("zq") && !e.message.includes("xw"),
  );
  // libvirt refuses a VNC password of more than 8 characters; SPICE has no such limit.
  assert.throws(
    () => buildDomainXml(fullVm(), { domainType: "qemu", graphicsPassword: "123456789" }),
    (e: Error) => e instanceof RangeError && !e.message.includes("123456789"),
  );
  buildDomainXml(plainVm, { domainType: "qemu", graphicsPassword: "123456789" });
});

Deno.test("buildDomainXml() boots the install ISO first, then the disk, with no <os><boot>", () => {
  const d = parsed(fullVm());
  assert.equal(d.os.boot, undefined);
  const [vda] = d.devices.disk;
  assert.deepEqual(vda.boot, { "@_order": "2" });
  const iso = d.devices.disk.find((x: Loose) => x.target["@_dev"] === "sdb");
  assert.equal(iso["@_device"], "cdrom");
  assert.equal(iso.target["@_bus"], "scsi");
  assert.equal(iso.readonly, "");
  assert.deepEqual(iso.boot, { "@_order": "1" });
  // From the spec when the caller does not resolve it: the image pool.
  assert.deepEqual(iso.source, { "@_pool": "foundry-images", "@_volume": "debian.iso" });
  const resolved = parser.parse(
    buildDomainXml(fullVm(), { domainType: "qemu", installMedia: { file: "/srv/iso/d.iso" } }),
  ).domain.devices.disk.find((x: Loose) => x.target["@_dev"] === "sdb");
  assert.equal(resolved["@_type"], "file");
  assert.deepEqual(resolved.source, { "@_file": "/srv/iso/d.iso" });
  // Without install media the disks carry no boot order and <os><boot dev="hd"> stays.
  const plainVm = parsed(sampleVm());
  assert.equal(plainVm.devices.disk[0].boot, undefined);
  assert.deepEqual(plainVm.os.boot, { "@_dev": "hd" });
});

Deno.test("buildDomainXml() uses existing disks as they are: pool volumes or files", () => {
  const vm = fullVm();
  vm.spec.bootDisk = { sizeGB: 20, volume: "default:old.qcow2" };
  delete vm.spec.installMedia;
  const d = parser.parse(
    buildDomainXml(vm, { domainType: "qemu", existingDiskFormats: { vdb: "raw" } }),
  ).domain;
  const [vda, vdb] = d.devices.disk;
  assert.equal(vda["@_type"], "volume");
  assert.deepEqual(vda.source, { "@_pool": "default", "@_volume": "old.qcow2" });
  assert.equal(vda.driver["@_type"], "qcow2");
  assert.equal(vdb["@_type"], "file");
  assert.deepEqual(vdb.source, { "@_file": "/srv/disks/data.raw" });
  assert.equal(vdb.driver["@_type"], "raw");
  // An interface with a MAC and no address: that MAC, and libvirt names its tap.
  const nic = d.devices.interface[1];
  assert.deepEqual(nic.mac, { "@_address": "52:54:00:aa:bb:cc" });
  assert.equal(nic.target, undefined);
});

testNeeding(VALIDATOR, {
  name: "domain XML with every new spec field passes virt-xml-validate",
  fn: async () => {
    const existing = fullVm();
    existing.spec.bootDisk = { sizeGB: 20, volume: "default:old.qcow2" };
    delete existing.spec.installMedia;
    const cases: [string, string][] = [
      ["full kvm", buildDomainXml(fullVm(), { domainType: "kvm", graphicsPassword: "pw" })],
      ["full qemu", buildDomainXml(fullVm(), { domainType: "qemu" })],
      [
        "iso file",
        buildDomainXml(fullVm(), { domainType: "qemu", installMedia: { file: "/srv/d.iso" } }),
      ],
      ["existing disks", buildDomainXml(existing, { domainType: "qemu" })],
    ];
    for (const [label, xml] of cases) {
      const r = await validate(xml);
      assert.ok(r.ok, `${label}: ${r.out}`);
    }
    // Mixing <os><boot> with per-device boot order is what the schema allows but libvirt
    // refuses; the schema does catch a boot order that is not a number.
    const bad = buildDomainXml(fullVm(), { domainType: "qemu" }).replace(
      'order="1"',
      'order="first"',
    );
    assert.equal((await validate(bad)).ok, false);
  },
});
