/**
 * `foundry adopt` on the real libvirtd, on OS-less TCG domains made the way virt-install makes
 * them (`virt-install --print-xml --import`, then `virsh define`): the spec loads, `--apply`
 * stores it, `get` shows it undrifted, its disks and MACs are unchanged, a second adopt is
 * refused, a NIC on a libvirt network is refused naming it, `apply --dry-run` of adopt's own
 * output plans no change, and destroy deletes the adopted pool volumes.
 */
import assert from "node:assert/strict";
import { DomainXmlFlags } from "../../lib/libvirt/mod.ts";
import { ADOPTED_ANNOTATION } from "../../lib/foundry/adopt.ts";
import { listVms } from "../../lib/foundry/inventory.ts";
import { observedSpec } from "../../lib/foundry/live_spec.ts";
import { parseVirtualMachine } from "../../lib/foundry/loader.ts";
import { ensureDirPool } from "../../lib/foundry/pools.ts";
import { parseStoredDomainMetadata } from "../../lib/foundry/stored_metadata.ts";
import { main } from "../../cli/foundry.ts";
import { requireTool, testNeeding } from "../_require.ts";
import { libvirtSkipReason, uniqueName } from "../libvirt/_env.ts";
import { type FoundryFixture, foundryFixture, writeConfigFile } from "./_fixture.ts";

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Pools over the fixture's directory other than its own: virt-install may make one for a disk's directory. */
async function strayPools(fx: FoundryFixture): Promise<string[]> {
  const stray: string[] = [];
  for (const p of await fx.lv.listAllStoragePools()) {
    if (p.name === fx.config.vmsPool || p.name === fx.config.imagesPool) continue;
    const xml = await fx.lv.storagePoolGetXmlDesc(p).catch(() => "");
    if (xml.includes(`<path>${fx.dir}`)) stray.push(p.name);
  }
  return stray;
}

/**
 * A virt-install-style domain `name`: a 1 GiB boot and a 1 GiB data volume (qcow2) in the
 * fixture's VM pool, one bridge NIC with a fixed MAC, `extra` virt-install arguments; defined,
 * not started.
 */
async function virtInstallDomain(
  fx: FoundryFixture,
  name: string,
  mac: string,
  extra: string[] = [],
): Promise<{ root: string; data: string }> {
  const root = `${name}-root.qcow2`;
  const data = `${name}-data.qcow2`;
  await ensureDirPool(fx.lv, fx.config.vmsPool, fx.config.vmsPath);
  for (const f of [root, data]) {
    await run("qemu-img", ["create", "-q", "-f", "qcow2", `${fx.config.vmsPath}/${f}`, "1G"]);
  }
  await fx.lv.storagePoolRefresh(await fx.lv.storagePoolLookupByName(fx.config.vmsPool));
  const xml = await run("virt-install", [
    "--connect",
    "qemu:///system",
    "--print-xml",
    "--import",
    "--name",
    name,
    "--memory",
    "256,maxmemory=512",
    "--vcpus",
    "1,maxvcpus=2",
    "--disk",
    `path=${fx.config.vmsPath}/${root},bus=virtio,format=qcow2`,
    "--disk",
    `path=${fx.config.vmsPath}/${data},bus=virtio,format=qcow2`,
    "--network",
    `bridge=${fx.bridges[0]},mac=${mac}`,
    "--virt-type",
    "qemu",
    "--osinfo",
    "detect=on,require=off",
    "--graphics",
    "vnc,listen=127.0.0.1",
    "--noautoconsole",
    ...extra,
  ]);
  const file = `${fx.dir}/${name}.xml`;
  await Deno.writeTextFile(file, xml);
  await run("virsh", ["-c", "qemu:///system", "define", file]);
  return { root, data };
}

async function removeDomain(fx: FoundryFixture, name: string): Promise<void> {
  const d = await fx.lv.domainLookupByName(name).catch(() => undefined);
  if (d === undefined) return;
  await fx.lv.domainDestroy(d).catch(() => {});
  await fx.lv.domainUndefine(d, 4 | 2).catch(() => {});
}

function cliIn(fx: FoundryFixture, cfg: string) {
  return async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      ["--config", cfg, "--audit-db", `${fx.dir}/audit.db`, ...args],
      { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) },
    );
    return { code, out: out.join(""), err: err.join("") };
  };
}

testNeeding([libvirtSkipReason, requireTool("virt-install"), requireTool("virsh")], {
  name: "adopt of a virt-install domain: spec, --apply, get, unchanged devices, refusals, destroy",
  async fn() {
    const fx = await foundryFixture();
    const name = uniqueName("h4ad");
    const other = uniqueName("h4ad");
    const mac = "52:54:00:4a:10:01";
    try {
      const cfg = await writeConfigFile(fx);
      const cli = cliIn(fx, cfg);
      const { root, data } = await virtInstallDomain(fx, name, mac);
      assert.deepEqual(await strayPools(fx), [], "virt-install made no pool");
      const d = await fx.lv.domainLookupByName(name);
      const before = observedSpec(await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE));

      // The spec: printed, loadable, the domain's own disks and MAC.
      const printed = await cli("adopt", name);
      assert.equal(printed.code, 0, printed.err);
      assert.match(printed.err, /note: graphics vnc: a console password/);
      const file = `${fx.dir}/${name}.yaml`;
      await Deno.writeTextFile(file, printed.out);
      const vm = parseVirtualMachine(printed.out, file);
      assert.equal(vm.metadata.annotations?.[ADOPTED_ANNOTATION], "true");
      assert.deepEqual(vm.spec.bootDisk, { volume: `${fx.config.vmsPool}:${root}`, sizeGB: 1 });
      assert.deepEqual(vm.spec.dataDisks, [
        { device: "vdb", volume: `${fx.config.vmsPool}:${data}`, sizeGB: 1 },
      ]);
      assert.deepEqual(
        vm.spec.networkInterfaces.map((n) => [n.bridge, n.mac, n.ip]),
        [[fx.bridges[0], mac, undefined]],
      );
      assert.deepEqual([vm.spec.vcpus, vm.spec.memoryGiB], [1, 0.25]);
      assert.deepEqual(vm.spec.resources, { maxVcpus: 2, maxMemoryGiB: 0.5 });
      assert.equal(vm.spec.domainType, "qemu");
      assert.equal(vm.spec.autostart, false);
      assert.deepEqual(vm.spec.graphics, { type: "vnc", listen: "127.0.0.1" });
      assert.equal(
        parseStoredDomainMetadata(await fx.lv.domainGetXmlDesc(d)),
        undefined,
        "printing stores nothing",
      );

      // --apply: stored, with the record of its pool volumes; get shows it, not drifted.
      const applied = await cli("adopt", name, "--apply", "--label", "team=ops", "-o", "json");
      assert.equal(applied.code, 0, applied.err);
      assert.match(applied.err, new RegExp(`VM ${name} adopted: .*${root}.*${data}`));
      assert.equal(JSON.parse(applied.out).metadata.labels.team, "ops");
      const stored = parseStoredDomainMetadata(
        await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE),
      )!;
      assert.equal(stored.vm.metadata.labels?.team, "ops");
      assert.deepEqual(stored.volumes?.map((v) => [v.role, v.pool, v.name]), [
        ["boot", fx.config.vmsPool, root],
        ["data", fx.config.vmsPool, data],
      ]);
      assert.match(stored.specSha256 ?? "", /^[0-9a-f]{64}$/);
      const got = await cli("get", name, "-o", "json");
      assert.equal(got.code, 0, got.err);
      const doc = JSON.parse(got.out);
      assert.equal(doc.metadata.annotations[ADOPTED_ANNOTATION], "true");
      assert.deepEqual(
        doc.status.conditions.find((c: { type: string }) => c.type === "Drifted")?.status,
        "False",
      );
      // Its disks and MAC as they were.
      const after = observedSpec(await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE));
      assert.deepEqual(after.disks, before.disks);
      assert.deepEqual(after.nics, before.nics);

      // Adopted is foundry's: a second adopt is refused.
      const again = await cli("adopt", name);
      assert.equal(again.code, 2);
      assert.match(again.err, /already managed by foundry/);

      // Running, it lists as foundry's.
      await fx.lv.domainCreate(d);
      const listed = (await listVms(fx.lv)).vms.find((v) => v.name === name);
      assert.equal(listed?.managed, true);
      assert.deepEqual(listed?.labels, { team: "ops" });

      // A NIC on a libvirt network cannot be said: refused, named, nothing stored.
      await virtInstallDomain(fx, other, "52:54:00:4a:10:02", ["--network", "network=default"]);
      const refused = await cli("adopt", other, "--apply");
      assert.equal(refused.code, 2);
      assert.match(refused.err, /interface 52:54:00:[0-9a-f:]+ on libvirt network "default"/);
      assert.match(refused.err, / \(--skip-unsupported leaves it out of the spec\)\n$/);
      const od = await fx.lv.domainLookupByName(other);
      assert.equal(parseStoredDomainMetadata(await fx.lv.domainGetXmlDesc(od)), undefined);
      const skipped = await cli("adopt", other, "--skip-unsupported");
      assert.equal(skipped.code, 0, skipped.err);
      assert.match(skipped.err, /note: left out: interface .* on libvirt network "default"/);
      assert.equal(parseVirtualMachine(skipped.out, "o.yaml").spec.networkInterfaces.length, 1);

      // destroy deletes the adopted pool volumes, as for foundry's own VMs.
      const destroyed = await cli("destroy", name);
      assert.equal(destroyed.code, 0, destroyed.err);
      const pool = await fx.lv.storagePoolLookupByName(fx.config.vmsPool);
      await fx.lv.storagePoolRefresh(pool);
      const left = (await fx.lv.storagePoolListAllVolumes(pool)).map((v) => v.name);
      assert.ok(!left.includes(root) && !left.includes(data), left.join(", "));
      assert.ok(left.includes(`${other}-root.qcow2`), "the other domain's volumes are kept");
    } finally {
      await removeDomain(fx, name);
      await removeDomain(fx, other);
      await fx.cleanup();
    }
  },
});

testNeeding([libvirtSkipReason, requireTool("virt-install"), requireTool("virsh")], {
  name: "apply of adopt's own output plans no change (diff exit 0), before and after --apply",
  async fn() {
    const fx = await foundryFixture();
    const name = uniqueName("h4ad");
    try {
      const cfg = await writeConfigFile(fx);
      const cli = cliIn(fx, cfg);
      await virtInstallDomain(fx, name, "52:54:00:4a:10:03");
      const adopted = await cli("adopt", name, "--apply");
      assert.equal(adopted.code, 0, adopted.err);
      const file = `${fx.dir}/${name}.yaml`;
      await Deno.writeTextFile(file, adopted.out);
      const dry = await cli("apply", "-f", file, "--dry-run");
      assert.equal(dry.code, 0, dry.out + dry.err);
      assert.match(dry.out, new RegExp(`= unchanged ${name}`));
      const diff = await cli("diff", name);
      assert.equal(diff.code, 0, diff.out + diff.err);
      // A real apply of it changes nothing either.
      const real = await cli("apply", "-f", file);
      assert.equal(real.code, 0, real.out + real.err);
      assert.match(real.out, new RegExp(`= unchanged ${name}`));
    } finally {
      await removeDomain(fx, name);
      await fx.cleanup();
    }
  },
});
