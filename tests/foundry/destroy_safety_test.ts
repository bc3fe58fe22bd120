/**
 * `destroy` deletes only what foundry created for the VM, whatever else is attached to it; and the
 * lifecycle commands read a stored spec that today's rules would reject. Real libvirtd, domain type
 * qemu; only the last test starts a guest (no OS needs to boot).
 */
import assert from "node:assert/strict";
import { main } from "../../cli/foundry.ts";
import {
  DomainState,
  DomainXmlFlags,
  type Libvirt,
  MetadataType,
  ModificationImpact,
  type StorageVolRef,
} from "../../lib/libvirt/mod.ts";
import { getVm, listVms } from "../../lib/foundry/inventory.ts";
import { METADATA_NAMESPACE } from "../../lib/foundry/metadata.ts";
import { ensureDirPool } from "../../lib/foundry/pools.ts";
import { createVm, destroyVm, startVm, stopVm } from "../../lib/foundry/vm.ts";
import { waitForVm, WaitTimeoutError } from "../../lib/foundry/wait.ts";
import { libvirtTest, uniqueName } from "../libvirt/_env.ts";
import {
  type FoundryFixture,
  foundryFixture,
  leftovers,
  testVm,
  writeConfigFile,
} from "./_fixture.ts";

/** Adds disks to a domain's persistent definition, as `virsh attach-device --config` does. */
async function attachDisks(lv: Libvirt, name: string, disks: string[]): Promise<void> {
  const d = await lv.domainLookupByName(name);
  const xml = await lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE);
  await lv.domainDefineXml(xml.replace("</devices>", `${disks.join("")}</devices>`));
}

const volumeDisk = (pool: string, volume: string, dev: string) =>
  `<disk type='volume' device='disk'><driver name='qemu' type='raw'/>` +
  `<source pool='${pool}' volume='${volume}'/><target dev='${dev}' bus='virtio'/></disk>`;
const fileDisk = (path: string, dev: string) =>
  `<disk type='file' device='disk'><driver name='qemu' type='raw'/>` +
  `<source file='${path}'/><target dev='${dev}' bus='virtio'/></disk>`;

/** A second directory pool, as another tool or an administrator would keep shared disks in. */
async function sharedPool(fx: FoundryFixture) {
  const name = uniqueName("ft-shared");
  const pool = await ensureDirPool(fx.lv, name, `${fx.dir}/${name}`);
  const make = (vol: string): Promise<StorageVolRef> =>
    fx.lv.storageVolCreateXml(
      pool,
      `<volume><name>${vol}</name><capacity unit='bytes'>1048576</capacity>` +
        `<target><format type='raw'/></target></volume>`,
    );
  return {
    name,
    make,
    async remove() {
      for (const v of await fx.lv.storagePoolListAllVolumes(pool).catch(() => [])) {
        await fx.lv.storageVolDelete(v).catch(() => {});
      }
      await fx.lv.storagePoolDestroy(pool).catch(() => {});
      await fx.lv.storagePoolUndefine(pool).catch(() => {});
    },
  };
}

async function volumeNames(fx: FoundryFixture, pool: string): Promise<string[]> {
  const p = await fx.lv.storagePoolLookupByName(pool);
  await fx.lv.storagePoolRefresh(p);
  return (await fx.lv.storagePoolListAllVolumes(p)).map((v) => v.name).sort();
}

libvirtTest("destroy deletes only the volumes foundry created for that VM", async () => {
  const fx = await foundryFixture();
  const shared = await sharedPool(fx);
  try {
    const a = testVm(fx);
    const b = testVm(fx);
    const an = a.metadata.name;
    const bn = b.metadata.name;
    await createVm(fx.lv, a, { config: fx.config, noStart: true });
    await createVm(fx.lv, b, { config: fx.config, noStart: true });
    const vmsPool = await fx.lv.storagePoolLookupByName(fx.config.vmsPool);
    const raw = (vol: string) =>
      fx.lv.storageVolCreateXml(
        vmsPool,
        `<volume><name>${vol}</name><capacity unit='bytes'>1048576</capacity>` +
          `<target><format type='raw'/></target></volume>`,
      );
    await shared.make("shared.img");
    // Named as foundry names A's data disks, but in another pool.
    await shared.make(`${an}_data-vdd`);
    // In foundry's own pool, named as foundry would name a data disk of A, but made by hand.
    await raw(`${an}_data-vdi`);
    const manual = await raw("manual.img");
    await attachDisks(fx.lv, an, [
      volumeDisk(shared.name, "shared.img", "vde"),
      volumeDisk(shared.name, `${an}_data-vdd`, "vdd"),
      fileDisk(`${fx.config.vmsPath}/${bn}_data-vdb`, "vdf"), // B's volume, by path
      volumeDisk(fx.config.vmsPool, `${bn}_cloudinit`, "vdg"), // B's volume, by pool and name
      fileDisk(await fx.lv.storageVolGetPath(manual), "vdh"), // a pool path as a file disk
      volumeDisk(fx.config.vmsPool, `${an}_data-vdi`, "vdi"),
    ]);

    const r = await destroyVm(fx.lv, an, { timeoutSeconds: 1 });
    const p = fx.config.vmsPool;
    assert.deepEqual(
      [...r.volumesDeleted].sort(),
      [`${p}/${an}_boot`, `${p}/${an}_cloudinit`, `${p}/${an}_data-vdb`, `${p}/${an}_data-vdc`],
    );
    // Every other disk is named as left alone.
    const kept = r.disksKept.map((k) => k.disk).sort();
    assert.deepEqual(
      kept,
      [
        `${fx.config.vmsPath}/${bn}_data-vdb`,
        `${fx.config.vmsPath}/manual.img`,
        `${p}/${an}_data-vdi`,
        `${p}/${bn}_cloudinit`,
        `${shared.name}/${an}_data-vdd`,
        `${shared.name}/shared.img`,
      ].sort(),
    );
    assert.equal(r.disksKept.length, 6);
    assert.ok(r.disksKept.every((k) => k.reason.length > 0));
    assert.deepEqual(
      await volumeNames(fx, shared.name),
      [`${an}_data-vdd`, "shared.img"].sort(),
    );
    assert.deepEqual(
      await volumeNames(fx, p),
      [
        `${an}_data-vdi`,
        `${bn}_boot`,
        `${bn}_cloudinit`,
        `${bn}_data-vdb`,
        `${bn}_data-vdc`,
        "manual.img",
      ].sort(),
    );
    assert.deepEqual(await leftovers(fx, an), [`volume ${an}_data-vdi`, `file ${an}_data-vdi`]);
  } finally {
    await shared.remove(); // before the fixture closes the connection
    await fx.cleanup();
  }
});

libvirtTest("destroy keeps a volume of its VM that anything else uses", async () => {
  const fx = await foundryFixture();
  try {
    const a = testVm(fx);
    const b = testVm(fx);
    const bn = b.metadata.name;
    await createVm(fx.lv, a, { config: fx.config, noStart: true });
    await createVm(fx.lv, b, { config: fx.config, noStart: true });
    const p = fx.config.vmsPool;
    const dir = fx.config.vmsPath;
    await attachDisks(fx.lv, a.metadata.name, [
      fileDisk(`${dir}/${bn}_data-vdb`, "vdf"),
      // The same file under another spelling of its path.
      fileDisk(`${dir}//./nowhere/../${bn}_data-vdc`, "vdg"),
    ]);
    // A linked clone of B's boot disk, for a VM that is not defined yet: seen only in the pool.
    const pool = await fx.lv.storagePoolLookupByName(p);
    await fx.lv.storageVolCreateXml(
      pool,
      `<volume><name>clone.qcow2</name><capacity unit='bytes'>1073741824</capacity>` +
        `<target><format type='qcow2'/></target><backingStore><path>${dir}/${bn}_boot</path>` +
        `<format type='qcow2'/></backingStore></volume>`,
    );
    const r = await destroyVm(fx.lv, bn, { timeoutSeconds: 1 });
    assert.deepEqual(r.volumesDeleted, [`${p}/${bn}_cloudinit`]);
    assert.deepEqual(
      r.disksKept.map((k) => `${k.disk}: ${k.reason}`).sort(),
      [
        `${p}/${bn}_boot: also used by volume ${p}/clone.qcow2 (its backing file)`,
        `${p}/${bn}_data-vdb: also used by domain ${a.metadata.name}`,
        `${p}/${bn}_data-vdc: also used by domain ${a.metadata.name}`,
      ],
    );
    assert.deepEqual((await leftovers(fx, bn)).sort(), [
      `file ${bn}_boot`,
      `file ${bn}_data-vdb`,
      `file ${bn}_data-vdc`,
      `volume ${bn}_boot`,
      `volume ${bn}_data-vdb`,
      `volume ${bn}_data-vdc`,
    ]);
  } finally {
    await fx.cleanup();
  }
});

libvirtTest("a definition copied from a foundry VM deletes nothing of it", async () => {
  const fx = await foundryFixture();
  try {
    const a = testVm(fx);
    const an = a.metadata.name;
    await createVm(fx.lv, a, { config: fx.config, noStart: true });
    // virsh dumpxml A, new name, no UUID, define: the copy carries A's metadata and disks.
    const copy = uniqueName("ftvm");
    const xml = await fx.lv.domainGetXmlDesc(
      await fx.lv.domainLookupByName(an),
      DomainXmlFlags.INACTIVE,
    );
    await fx.lv.domainDefineXml(
      xml.replace(`<name>${an}</name>`, `<name>${copy}</name>`).replace(/<uuid>[^<]*<\/uuid>/, "")
        .replace(/<nvram[^>]*>[^<]*<\/nvram>/, ""),
    );
    // A goes first: C still uses its volumes, so they stay.
    const first = await destroyVm(fx.lv, an, { timeoutSeconds: 1 });
    assert.deepEqual(first.volumesDeleted, []);
    assert.equal(first.disksKept.length, 4);
    assert.ok(first.disksKept.every((k) => k.reason === `also used by domain ${copy}`));
    // Then the copy: A's record is in it, but it was written for A, not for the copy.
    const r = await destroyVm(fx.lv, copy, { timeoutSeconds: 1 });
    assert.deepEqual(r.volumesDeleted, []);
    assert.equal(r.disksKept.length, 4);
    assert.ok(r.disksKept.every((k) => /written for another domain/.test(k.reason)));
    assert.equal((await leftovers(fx, an)).filter((x) => x.startsWith("volume")).length, 4);
  } finally {
    await fx.cleanup();
  }
});

libvirtTest(
  "a VM without the volume record: only its conventional names in its boot disk's pool go",
  async () => {
    const fx = await foundryFixture();
    const shared = await sharedPool(fx);
    try {
      const a = testVm(fx);
      const an = a.metadata.name;
      await createVm(fx.lv, a, { config: fx.config, noStart: true });
      // What an older foundry left: the spec in the metadata, no record of the volumes it made.
      const d = await fx.lv.domainLookupByName(an);
      const xml = await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE);
      const old = xml.replace(/<[a-z]+:volumes [^>]*>[^<]*<\/[a-z]+:volumes>/, "");
      assert.notEqual(old, xml, "the record was found and removed");
      await fx.lv.domainDefineXml(old);
      await shared.make(`${an}_data-vdd`);
      await shared.make(`${an}_boot`);
      const vmsPool = await fx.lv.storagePoolLookupByName(fx.config.vmsPool);
      await fx.lv.storageVolCreateXml(
        vmsPool,
        `<volume><name>${an}_data-vde</name><capacity unit='bytes'>1048576</capacity>` +
          `<target><format type='raw'/></target></volume>`,
      );
      await attachDisks(fx.lv, an, [
        volumeDisk(shared.name, `${an}_data-vdd`, "vdd"),
        volumeDisk(shared.name, `${an}_boot`, "vdf"),
        // The convention's name in the boot disk's pool, but not a data disk of the stored spec.
        volumeDisk(fx.config.vmsPool, `${an}_data-vde`, "vde"),
      ]);
      const r = await destroyVm(fx.lv, an, { timeoutSeconds: 1 });
      const p = fx.config.vmsPool;
      assert.deepEqual(
        [...r.volumesDeleted].sort(),
        [`${p}/${an}_boot`, `${p}/${an}_cloudinit`, `${p}/${an}_data-vdb`, `${p}/${an}_data-vdc`],
      );
      assert.deepEqual(
        r.disksKept.map((k) => k.disk).sort(),
        [
          `${p}/${an}_data-vde`,
          `${shared.name}/${an}_boot`,
          `${shared.name}/${an}_data-vdd`,
        ].sort(),
      );
      assert.deepEqual(await volumeNames(fx, shared.name), [`${an}_boot`, `${an}_data-vdd`]);
      assert.deepEqual(await volumeNames(fx, p), [`${an}_data-vde`]);
    } finally {
      await shared.remove(); // before the fixture closes the connection
      await fx.cleanup();
    }
  },
);

libvirtTest("foundry destroy prints the disks it left alone", async () => {
  const fx = await foundryFixture();
  const shared = await sharedPool(fx);
  try {
    const cfg = await writeConfigFile(fx);
    const a = testVm(fx);
    await createVm(fx.lv, a, { config: fx.config, noStart: true });
    await shared.make("keep.img");
    await attachDisks(fx.lv, a.metadata.name, [volumeDisk(shared.name, "keep.img", "vde")]);
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      ["--config", cfg, "--audit-db", `${fx.dir}/audit.db`, "destroy", a.metadata.name],
      { out: (s) => void out.push(s), err: (s) => void err.push(s) },
    );
    assert.equal(code, 0, err.join(""));
    assert.match(out.join(""), /4 volumes deleted/);
    assert.match(
      out.join(""),
      new RegExp(`kept ${shared.name}/keep\\.img \\(not created by foundry for this VM\\)`),
    );
    assert.deepEqual(await volumeNames(fx, shared.name), ["keep.img"]);
    assert.deepEqual(await leftovers(fx, a.metadata.name), []);
  } finally {
    await shared.remove(); // before the fixture closes the connection
    await fx.cleanup();
  }
});

libvirtTest(
  "a stored spec this version would reject: get, list, start, wait, stop and destroy still work",
  async () => {
    const fx = await foundryFixture();
    try {
      const vm = testVm(fx, { labels: { tier: "future" } });
      const name = vm.metadata.name;
      await createVm(fx.lv, vm, { config: fx.config, noStart: true });
      // What a newer foundry might store: a field this version does not know, a value it refuses.
      const future = {
        apiVersion: vm.apiVersion,
        kind: vm.kind,
        metadata: { ...vm.metadata, uid: "b1946ac9" },
        spec: { ...vm.spec, vcpus: 0, gpu: { model: "virtio" } },
      };
      const text = JSON.stringify(future).replaceAll("&", "&amp;").replaceAll("<", "&lt;");
      await fx.lv.domainSetMetadata(
        await fx.lv.domainLookupByName(name),
        MetadataType.ELEMENT,
        `<vm>${text}</vm>`,
        "foundry",
        METADATA_NAMESPACE,
        ModificationImpact.CONFIG,
      );

      const got = await getVm(fx.lv, name);
      assert.equal(got.vm.metadata.name, name);
      assert.equal(got.vm.metadata.labels?.tier, "future");
      const listed = (await listVms(fx.lv, { labels: { tier: "future" } })).vms;
      assert.deepEqual(listed.map((v) => [v.name, v.managed]), [[name, true]]);

      await startVm(fx.lv, name);
      const d = await fx.lv.domainLookupByName(name);
      assert.equal((await fx.lv.domainGetState(d)).state, DomainState.RUNNING);
      await assert.rejects(
        waitForVm(fx.lv, name, { until: "agent", timeoutMs: 1_000 }),
        (e: unknown) => e instanceof WaitTimeoutError && e.stage === "agent",
      );
      await stopVm(fx.lv, name, { timeoutSeconds: 0, force: true });
      assert.equal((await fx.lv.domainGetState(d)).state, DomainState.SHUTOFF);
      const r = await destroyVm(fx.lv, name, { timeoutSeconds: 0 });
      assert.equal(r.volumesDeleted.length, 4);
      assert.deepEqual(await leftovers(fx, name), []);
    } finally {
      await fx.cleanup();
    }
  },
);
