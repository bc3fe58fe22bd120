import assert from "node:assert/strict";
import { buildDomainXml } from "./domain_xml.ts";
import {
  driftChanges,
  driftReport,
  driftSummary,
  formatDrift,
  isActiveDomainXml,
} from "./drift.ts";
import { parseStoredDomainMetadata, parseStoredMetadataXml } from "./stored_metadata.ts";
import { buildMetadataXml } from "./metadata.ts";
import { sampleVm } from "./_testdata.ts";
import type { VirtualMachine } from "./types.ts";

function vmWithResources(): VirtualMachine {
  const vm = sampleVm();
  vm.spec.resources = { maxVcpus: 4, maxMemoryGiB: 8 };
  vm.spec.autostart = false;
  return vm;
}

/** The domain XML create would define, and what foundry reads back from it. */
function defined(vm = vmWithResources()) {
  const xml = buildDomainXml(vm, {
    domainType: "qemu",
    uuid: "7708e80c-4ca8-4695-b2d5-87af1d9f26c8",
  });
  return { xml, stored: parseStoredDomainMetadata(xml)! };
}

/** `xml` as libvirt shows it running: with an id. */
const running = (xml: string) => xml.replace('<domain type="qemu">', '<domain type="qemu" id="5">');

Deno.test("driftChanges() finds nothing in the domain create defined", () => {
  const { xml, stored } = defined();
  assert.deepEqual(driftChanges(stored, { current: xml, autostart: false }), []);
  assert.deepEqual(
    driftChanges(stored, { current: running(xml), inactive: xml, autostart: false }),
    [],
  );
});

Deno.test("driftChanges() without resources accepts any headroom up to the default", () => {
  const vm = sampleVm();
  const xml = buildDomainXml(vm, { domainType: "qemu", host: { cpus: 2 } });
  const stored = parseStoredDomainMetadata(xml)!;
  assert.deepEqual(driftChanges(stored, { current: xml }), []);
  const bigger = xml.replace(
    /<memory unit="MiB">\d+<\/memory>/,
    '<memory unit="MiB">65536</memory>',
  );
  assert.deepEqual(driftChanges(stored, { current: bigger }).map((c) => c.path), [
    "spec.resources.maxMemoryGiB",
  ]);
});

Deno.test("driftChanges() tells a live change from a definition change", () => {
  const { xml, stored } = defined();
  // virsh setvcpus --live 3 and a moved balloon: live only.
  const live = running(xml)
    .replace(
      /<vcpu placement="static" current="2">4<\/vcpu>/,
      '<vcpu placement="static" current="3">4</vcpu>',
    )
    .replace(
      /<currentMemory unit="MiB">4096<\/currentMemory>/,
      '<currentMemory unit="MiB">3072</currentMemory>',
    );
  assert.notEqual(live, running(xml));
  assert.deepEqual(driftChanges(stored, { current: live, inactive: xml }), [
    { path: "spec.vcpus", stored: 2, actual: 3, where: "live" },
    { path: "spec.memoryGiB", stored: 4, actual: 3, where: "live" },
  ]);
  // virsh setmaxmem --config and an edited bridge: the definition only.
  const edited = xml.replace(
    /<memory unit="MiB">8192<\/memory>/,
    '<memory unit="MiB">10240</memory>',
  )
    .replace('<source bridge="br1"/>', '<source bridge="br9"/>');
  const changes = driftChanges(stored, { current: running(xml), inactive: edited });
  assert.deepEqual(changes.map((c) => [c.path, c.stored, c.actual, c.where]), [
    ["spec.resources.maxMemoryGiB", 8, 10, "config"],
    [changes[1]!.path, "br1", "br9", "config"],
  ]);
  assert.match(changes[1]!.path, /^spec\.networkInterfaces\[[0-9a-f:]+\]\.bridge$/);
});

Deno.test("driftChanges() ignores an untouched balloon and a live value waiting for the next boot", () => {
  const { xml, stored } = defined();
  // A guest without a balloon driver: the live size is the whole maximum.
  const undriven = running(xml).replace(
    /<currentMemory unit="MiB">4096<\/currentMemory>/,
    '<currentMemory unit="MiB">8192</currentMemory>',
  );
  assert.deepEqual(driftChanges(stored, { current: undriven, inactive: xml }), []);
  // resize to 6 vCPUs beyond a live maximum of 4: the definition has it, the running domain not yet.
  stored.vm.spec.vcpus = 6;
  stored.vm.spec.resources = { maxVcpus: 6, maxMemoryGiB: 8 };
  const config = xml.replace(
    /<vcpu placement="static" current="2">4<\/vcpu>/,
    '<vcpu placement="static">6</vcpu>',
  );
  assert.deepEqual(driftChanges(stored, { current: running(xml), inactive: config }), []);
});

Deno.test("driftChanges(): a TCG domain's vCPU increase for the next boot is not drift; one fewer live on KVM is", () => {
  // resize 2 -> 3 vCPUs within the maximum of 4: on TCG foundry writes it for the next boot only.
  const { xml, stored } = defined();
  stored.vm.spec.vcpus = 3;
  const config = xml.replace(
    /<vcpu placement="static" current="2">4<\/vcpu>/,
    '<vcpu placement="static" current="3">4</vcpu>',
  );
  assert.deepEqual(driftChanges(stored, { current: running(xml), inactive: config }), []);
  // The same on a KVM domain, where foundry hot-plugs: the running domain has drifted.
  const kvm = (x: string) => x.replace('<domain type="qemu"', '<domain type="kvm"');
  assert.deepEqual(
    driftChanges(stored, { current: kvm(running(xml)), inactive: kvm(config) })
      .filter((c) => c.path === "spec.vcpus"),
    [{ path: "spec.vcpus", stored: 3, actual: 2, where: "live" }],
  );
});

Deno.test("driftChanges() sees disks and NICs attached and detached behind foundry's back", () => {
  const { xml, stored } = defined();
  const attached = xml.replace(
    "</devices>",
    `<disk type="file" device="disk"><source file="/srv/extra.img"/><target dev="vdd" bus="virtio"/></disk>
     <interface type="network"><mac address="52:54:00:00:00:09"/><source network="default"/></interface></devices>`,
  ).replace(
    /<disk type="volume" device="disk">\s*<driver[^>]*\/>\s*<source pool="foundry-vms" volume="web-01_data-vdc"\/>[\s\S]*?<\/disk>/,
    "",
  );
  const changes = driftChanges(stored, { current: attached, autostart: true });
  assert.deepEqual(changes.map((c) => [c.path, c.stored, c.actual]), [
    ["spec.dataDisks[vdc]", "web-01_data-vdc", undefined],
    ["spec.dataDisks[vdd]", undefined, "/srv/extra.img"],
    ["spec.networkInterfaces[52:54:00:00:00:09]", undefined, {
      type: "network",
      mac: "52:54:00:00:00:09",
    }],
    ["spec.autostart", false, true],
  ]);
  assert.ok(changes.every((c) => c.where === "config"));
});

Deno.test("driftReport() reports a stored spec edited by hand (where metadata), not an old one", async () => {
  const vm = vmWithResources();
  const { xml } = defined(vm);
  const stored = parseStoredMetadataXml(buildMetadataXml(vm))!;
  const clean = await driftReport("web-01", stored, { current: xml, autostart: false });
  assert.deepEqual(clean, { name: "web-01", changes: [], specHashMatches: true });
  stored.vm.metadata.labels = { role: "db" };
  const edited = await driftReport("web-01", stored, { current: xml, autostart: false });
  assert.equal(edited.specHashMatches, false);
  assert.deepEqual(edited.changes.map((c) => [c.path, c.where]), [["specSha256", "metadata"]]);
  const { specSha256: _h, ...old } = stored;
  assert.equal((await driftReport("web-01", old, { current: xml })).specHashMatches, undefined);
});

Deno.test("formatDrift() prints one line per change; driftSummary() lists the paths", () => {
  const report = {
    name: "web-01",
    specHashMatches: true,
    changes: [
      { path: "spec.vcpus", stored: 2, actual: 3, where: "live" as const },
      {
        path: "spec.dataDisks[vdd]",
        stored: undefined,
        actual: "/srv/x.img",
        where: "config" as const,
      },
    ],
  };
  assert.equal(
    formatDrift(report),
    "spec.vcpus: 2 -> 3 (live)\nspec.dataDisks[vdd]: (none) -> /srv/x.img (config)",
  );
  assert.equal(formatDrift({ ...report, changes: [] }), "web-01: no drift");
  assert.match(driftSummary(report), /spec\.vcpus \(live\), spec\.dataDisks\[vdd\] \(config\)$/);
});

Deno.test("isActiveDomainXml() reads the id libvirt gives a running domain", () => {
  assert.equal(isActiveDomainXml("<domain type='qemu' id='3'><name>x</name></domain>"), true);
  assert.equal(isActiveDomainXml("<domain type='qemu'><name>x</name></domain>"), false);
  assert.equal(isActiveDomainXml("<domain type='qemu' id='-1'></domain>"), false);
});
