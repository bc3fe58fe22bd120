import assert from "node:assert/strict";
import { requireTool, testNeeding } from "../../tests/_require.ts";
import { XMLParser } from "npm:fast-xml-parser@^5.12.1";
import {
  buildDirPoolXml,
  buildVolumeXml,
  BYTES_PER_GB,
  volumePlan,
  type VolumeSpec,
} from "./storage_xml.ts";
import { sampleVm } from "./_testdata.ts";

const parser = new XMLParser({ ignoreAttributes: false, parseTagValue: false });

const VIRSH = requireTool("virsh");
const VALIDATOR = requireTool("virt-xml-validate", "xmllint");

async function validate(xml: string, schema: string): Promise<{ ok: boolean; out: string }> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/x.xml`, xml);
    const r = await new Deno.Command("virt-xml-validate", {
      args: [`${dir}/x.xml`, schema],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { ok: r.success, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("volumePlan() lists boot overlay, data disks and the ISO in creation order", () => {
  const plan = volumePlan(sampleVm(), "foundry-vms", 53248);
  assert.deepEqual(plan, [
    {
      role: "boot",
      name: "web-01_boot",
      pool: "foundry-vms",
      capacityBytes: 20 * BYTES_PER_GB,
      format: "qcow2",
      device: "vda",
      overlay: true,
    },
    {
      role: "data",
      name: "web-01_data-vdb",
      pool: "foundry-vms",
      capacityBytes: 10 * BYTES_PER_GB,
      format: "qcow2",
      device: "vdb",
    },
    {
      role: "data",
      name: "web-01_data-vdc",
      pool: "foundry-vms",
      capacityBytes: 5 * BYTES_PER_GB,
      format: "qcow2",
      device: "vdc",
    },
    {
      role: "cloudinit",
      name: "web-01_cloudinit",
      pool: "foundry-vms",
      capacityBytes: 53248,
      format: "raw",
      device: "sda",
    },
  ]);
  assert.equal(BYTES_PER_GB, 1073741824);
});

Deno.test("volumePlan() makes an empty boot disk when the spec says empty: true", () => {
  const vm = sampleVm();
  delete vm.spec.bootDisk.image;
  vm.spec.bootDisk.empty = true;
  delete vm.spec.dataDisks;
  const plan = volumePlan(vm, "p", 2048);
  assert.deepEqual(plan.map((v) => v.role), ["boot", "cloudinit"]);
  assert.equal(plan[0]?.overlay, undefined);
});

Deno.test("buildVolumeXml() writes capacity, format and the backing store of overlays", () => {
  const plan = volumePlan(sampleVm(), "foundry-vms", 4096);
  const byRole = (role: VolumeSpec["role"]) => plan.find((v) => v.role === role)!;
  const [boot, data, iso] = [byRole("boot"), byRole("data"), byRole("cloudinit")];
  const b = parser.parse(
    buildVolumeXml(boot, { path: "/var/lib/foundry/images/debian-12.qcow2", format: "qcow2" }),
  ).volume;
  assert.equal(b.name, "web-01_boot");
  assert.deepEqual(b.capacity, { "@_unit": "bytes", "#text": String(20 * BYTES_PER_GB) });
  assert.equal(b.target.format["@_type"], "qcow2");
  assert.equal(b.backingStore.path, "/var/lib/foundry/images/debian-12.qcow2");
  assert.equal(b.backingStore.format["@_type"], "qcow2");
  const d = parser.parse(buildVolumeXml(data)).volume;
  assert.equal(d.backingStore, undefined);
  const i = parser.parse(buildVolumeXml(iso)).volume;
  assert.equal(i.target.format["@_type"], "raw");
  assert.equal(i.capacity["#text"], "4096");
  assert.throws(() => buildVolumeXml(boot), TypeError);
  assert.throws(() => buildVolumeXml(data, { path: "/x", format: "raw" }), TypeError);
});

Deno.test("buildDirPoolXml() describes a directory pool", () => {
  const p =
    parser.parse(buildDirPoolXml("foundry-vms", "/var/lib/libvirt/images/foundry/vms")).pool;
  assert.equal(p["@_type"], "dir");
  assert.equal(p.name, "foundry-vms");
  assert.equal(p.target.path, "/var/lib/libvirt/images/foundry/vms");
  assert.throws(() => buildDirPoolXml("p", "relative/dir"), TypeError);
});

testNeeding(VALIDATOR, {
  name: "every generated volume and pool XML passes virt-xml-validate",
  fn: async () => {
    const [boot, ...rest] = volumePlan(sampleVm(), "foundry-vms", 4096);
    const vols = [
      buildVolumeXml(boot!, { path: "/images/base.qcow2", format: "qcow2" }),
      ...rest.map((v) => buildVolumeXml(v)),
    ];
    for (const xml of vols) {
      const r = await validate(xml, "storagevol");
      assert.ok(r.ok, r.out);
    }
    const pool = await validate(buildDirPoolXml("foundry-images", "/srv/images"), "storagepool");
    assert.ok(pool.ok, pool.out);
    const broken = await validate(vols[1]!.replace(/<name>.*<\/name>/, ""), "storagevol");
    assert.equal(broken.ok, false);
  },
});

testNeeding(VIRSH, {
  name: "libvirt's test driver creates the planned volumes in a pool defined from our XML",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const plan = volumePlan(sampleVm(), "foundry-vms", 4096);
      await Deno.writeTextFile(`${dir}/pool.xml`, buildDirPoolXml("foundry-vms", `${dir}/pool`));
      const parts = [`pool-define ${dir}/pool.xml;`, "pool-start foundry-vms;"];
      for (const [i, v] of plan.entries()) {
        const backing = v.overlay
          ? { path: "/images/base.qcow2", format: "qcow2" as const }
          : undefined;
        await Deno.writeTextFile(`${dir}/vol${i}.xml`, buildVolumeXml(v, backing));
        parts.push(`vol-create foundry-vms ${dir}/vol${i}.xml;`);
      }
      parts.push(
        "echo @@@; vol-list foundry-vms; echo @@@; vol-dumpxml --pool foundry-vms web-01_boot",
      );
      // The test driver lives inside this virsh process: nothing touches a daemon or the disk.
      const r = await new Deno.Command("virsh", {
        args: ["-q", "-c", "test:///default", parts.join(" ")],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(r.success, new TextDecoder().decode(r.stderr));
      const [, list, bootXml] = new TextDecoder().decode(r.stdout).split(/@@@\n?/);
      const names = (list ?? "").trim().split("\n").map((l) => l.trim().split(/\s+/)[0]).sort();
      assert.deepEqual(names, plan.map((v) => v.name).sort());
      const boot = parser.parse(bootXml ?? "").volume;
      assert.equal(boot.capacity["#text"], String(20 * BYTES_PER_GB));
      assert.equal(boot.backingStore.path, "/images/base.qcow2");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
