/**
 * clone on the real libvirtd with a foundry VM whose guest needs no OS: the new VM has its own
 * addresses, MACs and full disk copies holding the source's data; a refused clone leaves nothing;
 * the source is never changed.
 */
import assert from "node:assert/strict";
import { DomainXmlFlags, type Libvirt } from "../../lib/libvirt/mod.ts";
import { cloneSpec, cloneVm, SourceRunningError } from "../../lib/foundry/clone.ts";
import { createVm, destroyVm, startVm, stopVm } from "../../lib/foundry/vm.ts";
import { macFromIp } from "../../lib/foundry/naming.ts";
import { libvirtTest, uniqueName } from "../libvirt/_env.ts";
import { foundryFixture, nextHostNumber, testVm } from "./_fixture.ts";

async function volumes(lv: Libvirt, pool: string): Promise<string[]> {
  const p = await lv.storagePoolLookupByName(pool);
  await lv.storagePoolRefresh(p);
  return (await lv.storagePoolListAllVolumes(p)).map((v) => v.name).sort();
}

async function qemuIo(file: string, cmd: string): Promise<string> {
  const o = await new Deno.Command("qemu-io", {
    args: ["-f", "qcow2", "-c", cmd, file],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const out = dec.decode(o.stdout) + dec.decode(o.stderr);
  if (!o.success || /Pattern verification failed/.test(out)) throw new Error(out);
  return out;
}

libvirtTest(
  "clone copies a stopped VM's disks under a new identity; the source stays",
  async () => {
    const fx = await foundryFixture();
    try {
      const src = testVm(fx);
      const s = src.metadata.name;
      await createVm(fx.lv, src, { config: fx.config, noStart: true });
      await qemuIo(`${fx.config.vmsPath}/${s}_data-vdb`, "write -P 0x5a 0 64k");
      const srcVols = await volumes(fx.lv, fx.config.vmsPool);

      // A running source is refused, with nothing made.
      await startVm(fx.lv, s);
      const n = uniqueName("ftvm");
      const ips = src.spec.networkInterfaces.map(() => `192.0.2.${nextHostNumber()}/24`);
      await assert.rejects(cloneVm(fx.lv, s, n, { config: fx.config, ips }), SourceRunningError);
      await stopVm(fx.lv, s, { timeoutSeconds: 0, force: true });
      // A wrong number of addresses, too.
      await assert.rejects(
        cloneVm(fx.lv, s, n, { config: fx.config, ips: ips.slice(1) }),
        /needs as many addresses, got 1/,
      );
      assert.deepEqual(await volumes(fx.lv, fx.config.vmsPool), srcVols);
      const srcXml = await fx.lv.domainGetXmlDesc(await fx.lv.domainLookupByName(s));

      const r = await cloneVm(fx.lv, s, n, { config: fx.config, ips, start: false });
      assert.deepEqual(r.copied.map((v) => v.split("/")[1]).sort(), [
        `${n}_boot`,
        `${n}_data-vdb`,
        `${n}_data-vdc`,
      ]);
      const xml = await fx.lv.domainGetXmlDesc(
        await fx.lv.domainLookupByName(n),
        DomainXmlFlags.INACTIVE,
      );
      for (const ip of ips) assert.ok(xml.includes(macFromIp(ip.split("/")[0]!)), "new MAC");
      // The copy holds the source's data and stands alone (no backing file).
      const copy = `${fx.config.vmsPath}/${n}_data-vdb`;
      await qemuIo(copy, "read -P 0x5a 0 64k");
      const vol = await fx.lv.storageVolLookupByPath(`${fx.config.vmsPath}/${n}_boot`);
      assert.doesNotMatch(await fx.lv.storageVolGetXmlDesc(vol), /<backingStore>/);

      await destroyVm(fx.lv, n, { timeoutSeconds: 1 });
      assert.deepEqual(await volumes(fx.lv, fx.config.vmsPool), srcVols, "only the clone went");
      assert.equal(
        await fx.lv.domainGetXmlDesc(await fx.lv.domainLookupByName(s)),
        srcXml,
        "the source is unchanged",
      );
    } finally {
      await fx.cleanup();
    }
  },
);

Deno.test("cloneSpec: new name, addresses and fqdn; one address per interface", () => {
  const src = {
    apiVersion: "foundry.cofront.xyz/v1alpha1",
    kind: "VirtualMachine",
    metadata: { name: "web-01", generation: 3 },
    spec: {
      vcpus: 1,
      memoryGiB: 1,
      bootDisk: { sizeGB: 4, image: "debian.qcow2" },
      networkInterfaces: [{ ip: "192.0.2.10/24", gateway: "192.0.2.1", bridge: "br0" }],
      cloudInit: { fqdn: "web-01.example.org" },
    },
  } as const;
  // deno-lint-ignore no-explicit-any
  const vm = cloneSpec(src as any, "web-02", ["192.0.2.11/24"]);
  assert.equal(vm.metadata.name, "web-02");
  assert.equal(vm.metadata.generation, 1);
  assert.equal(vm.spec.networkInterfaces[0]!.ip, "192.0.2.11/24");
  assert.equal(vm.spec.cloudInit?.fqdn, "web-02.example.org");
  assert.equal(src.spec.networkInterfaces[0].ip, "192.0.2.10/24", "source untouched");
  // deno-lint-ignore no-explicit-any
  assert.throws(() => cloneSpec(src as any, "web-02", []), RangeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => cloneSpec(src as any, "web-02", ["300.0.0.1/24"]));
});
