/**
 * Snapshots on the real libvirtd (libvirt 9.0 here), on a foundry VM whose guest needs no OS:
 * create takes overlays named after the VM's volumes, revert (foundry's own, libvirt 9.0 refuses
 * external snapshots) gives back the disk as it was, delete merges and leaves no overlay, destroy
 * removes snapshots with the VM. Data is written into a disk with qemu-io while the VM is stopped.
 */
import assert from "node:assert/strict";
import { DomainState } from "../../lib/libvirt/mod.ts";
import {
  buildSnapshotXml,
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  parseSnapshotXml,
  revertSnapshot,
  SnapshotError,
} from "../../lib/foundry/snapshot.ts";
import { createVm, destroyVm } from "../../lib/foundry/vm.ts";
import { libvirtTest } from "../libvirt/_env.ts";
import { foundryFixture, testVm } from "./_fixture.ts";

async function qemuIo(file: string, cmd: string): Promise<{ ok: boolean; out: string }> {
  const o = await new Deno.Command("qemu-io", {
    args: ["-f", "qcow2", "-c", cmd, file],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { ok: o.success, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

async function volumes(lv: import("../../lib/libvirt/mod.ts").Libvirt, pool: string) {
  const p = await lv.storagePoolLookupByName(pool);
  await lv.storagePoolRefresh(p);
  return (await lv.storagePoolListAllVolumes(p)).map((v) => v.name).sort();
}

Deno.test("buildSnapshotXml: an overlay per guest disk beside it, CD-ROMs left out", () => {
  const xml = buildSnapshotXml("web-01", "s1", [
    { target: "vda", device: "disk", path: "/p/web-01_boot" },
    { target: "vdb", device: "disk", path: "/p/web-01_data-vdb.s0" },
    { target: "sda", device: "cdrom", path: "/p/web-01_cloudinit" },
  ], { memory: true, description: "a <b>" });
  const info = parseSnapshotXml(xml);
  assert.deepEqual(info.disks, [
    { target: "vda", overlay: "/p/web-01_boot.s1" },
    { target: "vdb", overlay: "/p/web-01_data-vdb.s1" },
  ]);
  assert.equal(info.memoryFile, "/p/web-01.s1.mem");
  assert.equal(info.description, "a <b>");
  assert.match(xml, /<disk name='sda' snapshot='no'\/>/);
});

libvirtTest("snapshot create, revert, delete and destroy leave no overlay behind", async () => {
  const fx = await foundryFixture();
  try {
    const vm = testVm(fx);
    const name = vm.metadata.name;
    await createVm(fx.lv, vm, { config: fx.config, noStart: true });
    const before = await volumes(fx.lv, fx.config.vmsPool);

    await assert.rejects(createSnapshot(fx.lv, name, "bad.name"), SnapshotError);
    const { snapshot, quiesced } = await createSnapshot(fx.lv, name, "s1");
    assert.equal(quiesced, false, "a stopped VM is not quiesced");
    assert.deepEqual(snapshot.disks.map((d) => d.target), ["vda", "vdb", "vdc"]);
    const withSnap = await volumes(fx.lv, fx.config.vmsPool);
    for (const d of ["boot", "data-vdb", "data-vdc"]) {
      assert.ok(withSnap.includes(`${name}_${d}.s1`), `overlay of ${d} in ${withSnap}`);
    }
    await assert.rejects(createSnapshot(fx.lv, name, "s1"), /already has a snapshot s1/);
    const listed = await listSnapshots(fx.lv, name);
    assert.deepEqual(listed.map((s) => [s.name, s.current]), [["s1", true]]);

    // Changes after the snapshot go to the overlay; revert throws them away.
    const vdb = snapshot.disks.find((d) => d.target === "vdb")!.overlay;
    assert.ok((await qemuIo(vdb, "write -P 0xab 0 64k")).ok);
    assert.ok((await qemuIo(vdb, "read -P 0xab 0 64k")).ok);
    const r = await revertSnapshot(fx.lv, name, "s1");
    assert.equal(r.restarted, false);
    const back = await qemuIo(vdb, "read -P 0 0 64k");
    assert.ok(back.ok && !/Pattern verification failed/.test(back.out), back.out);
    assert.deepEqual(await volumes(fx.lv, fx.config.vmsPool), withSnap, "revert made no orphan");

    // Write again, take s2 on top; s1 cannot be reverted to while s2 sits on it.
    assert.ok((await qemuIo(vdb, "write -P 0xcd 0 64k")).ok);
    await createSnapshot(fx.lv, name, "s2");
    await assert.rejects(revertSnapshot(fx.lv, name, "s1"), /newer snapshots on top of it \(s2\)/);
    // Deleting s1 (under s2, VM stopped) merges it: the VM stays stopped, s2 stays.
    await deleteSnapshot(fx.lv, name, "s1");
    const dom = await fx.lv.domainLookupByName(name);
    assert.equal((await fx.lv.domainGetState(dom)).state, DomainState.SHUTOFF);
    const afterDel = await volumes(fx.lv, fx.config.vmsPool);
    assert.ok(!afterDel.some((v) => v.endsWith(".s1")), `no s1 overlay in ${afterDel}`);
    assert.deepEqual((await listSnapshots(fx.lv, name)).map((s) => s.name), ["s2"]);
    await deleteSnapshot(fx.lv, name, "s2");
    // The merges kept what was written after s1 (0xcd), in the VM's own data volume now.
    const own = `${fx.config.vmsPath}/${name}_data-vdb`;
    const merged = await qemuIo(own, "read -P 0xcd 0 64k");
    assert.ok(merged.ok && !/Pattern verification failed/.test(merged.out), merged.out);
    assert.deepEqual(await volumes(fx.lv, fx.config.vmsPool), before, "back to the VM's volumes");
    await assert.rejects(deleteSnapshot(fx.lv, name, "s2"), /has no snapshot s2/);

    // destroy takes snapshots with it.
    await createSnapshot(fx.lv, name, "s3");
    await createSnapshot(fx.lv, name, "s4");
    const res = await destroyVm(fx.lv, name, { timeoutSeconds: 1 });
    assert.equal(res.disksKept.length, 0, JSON.stringify(res.disksKept));
    assert.deepEqual(await volumes(fx.lv, fx.config.vmsPool), [], "nothing left of the VM");
  } finally {
    await fx.cleanup();
  }
});

libvirtTest(
  "a running VM: no agent means no quiesce; live snapshot, revert and delete",
  async () => {
    const fx = await foundryFixture();
    try {
      const vm = testVm(fx);
      const name = vm.metadata.name;
      const { domain } = await createVm(fx.lv, vm, { config: fx.config });
      const before = await volumes(fx.lv, fx.config.vmsPool);
      const e = await createSnapshot(fx.lv, name, "q").catch((e) => e);
      assert.ok(e instanceof SnapshotError && e.reason === "quiesce", String(e));
      assert.deepEqual(
        await volumes(fx.lv, fx.config.vmsPool),
        before,
        "a refused snapshot left nothing",
      );
      const { quiesced } = await createSnapshot(fx.lv, name, "live", { quiesce: false });
      assert.equal(quiesced, false);
      const r = await revertSnapshot(fx.lv, name, "live");
      assert.equal(r.restarted, true);
      const dom = await fx.lv.domainLookupByName(name);
      assert.equal((await fx.lv.domainGetState(dom)).state, DomainState.RUNNING);
      await deleteSnapshot(fx.lv, name, "live");
      assert.deepEqual(await volumes(fx.lv, fx.config.vmsPool), before);
      assert.ok(domain);
      await destroyVm(fx.lv, name, { timeoutSeconds: 1 });
      assert.deepEqual(await volumes(fx.lv, fx.config.vmsPool), []);
    } finally {
      await fx.cleanup();
    }
  },
);
