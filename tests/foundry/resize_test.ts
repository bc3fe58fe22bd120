/**
 * `resizeVm` against the daemon with the fixture's VMs (1 vCPU, 256 MiB, data disks vdb 1 GB and
 * vdc 2 GB; no guest OS, so no agent): what lands in the definition, the live domain, the volumes
 * and the stored spec, what is refused. Growing a filesystem in a guest is the day-2 end-to-end
 * test's (tests/e2e/day2/resize_steps.ts).
 */
import assert from "node:assert/strict";
import { DomainState, DomainXmlFlags } from "../../lib/libvirt/mod.ts";
import { parseStoredDomainMetadata } from "../../lib/foundry/metadata.ts";
import { domainSizes, resizeVm } from "../../lib/foundry/resize.ts";
import { createVm } from "../../lib/foundry/vm.ts";
import { VmOperationError } from "../../lib/foundry/vm_errors.ts";
import { exitCodeFor } from "../../cli/_program.ts";
import { main } from "../../cli/foundry.ts";
import { libvirtTest } from "../libvirt/_env.ts";
import { foundryFixture, testVm, writeConfigFile } from "./_fixture.ts";

const GIB = 1024 ** 3;

libvirtTest(
  "resize of a stopped VM: definition, volume and stored spec; shrink refused",
  async () => {
    const fx = await foundryFixture();
    try {
      const vm = testVm(fx);
      const name = vm.metadata.name;
      await createVm(fx.lv, vm, { config: fx.config, noStart: true });
      const d = await fx.lv.domainLookupByName(name);
      const before = domainSizes(await fx.lv.domainGetXmlDesc(d));
      // The default headroom: twice the spec's 1 vCPU and 256 MiB.
      assert.deepEqual(
        [before.vcpus, before.maxVcpus, before.memoryMiB, before.maxMemoryMiB],
        [1, 2, 256, 512],
      );
      const fingerprint = parseStoredDomainMetadata(await fx.lv.domainGetXmlDesc(d))!
        .passwordHashSha256;
      assert.ok(fingerprint);

      const refused = async (req: Parameters<typeof resizeVm>[2], fragment: RegExp) => {
        const err = await resizeVm(fx.lv, name, req).then(() => undefined, (e) => e);
        assert.ok(err instanceof VmOperationError, String(err));
        assert.match(err.message, fragment);
        assert.equal(exitCodeFor(err), 4);
      };
      await refused({ vcpus: 2, disks: [{ device: "vdb", sizeGB: 0.5 }] }, /whole number of GB/);
      await refused({ disks: [{ device: "vdz", sizeGB: 3 }] }, /has no disk vdz/);
      await refused(
        { vcpus: 2, disks: [{ device: "vdc", sizeGB: 1 }] },
        /shrinking a disk is refused/,
      );
      assert.equal(domainSizes(await fx.lv.domainGetXmlDesc(d)).vcpus, 1, "nothing changed");

      const r = await resizeVm(fx.lv, name, {
        vcpus: 3,
        memoryGiB: 0.375,
        disks: [{ device: "vdb", sizeGB: 3 }, { device: "vdc", sizeGB: 2 }],
      });
      assert.equal(r.running, false);
      assert.deepEqual(
        r.changes.map((c) => [c.what, c.from, c.to, c.applied]),
        [
          ["vcpus", 1, 3, "nextBoot"],
          ["memory", 256, 384, "nextBoot"],
          ["disk", GIB, 3 * GIB, "nextBoot"],
          ["disk", 2 * GIB, 2 * GIB, "unchanged"],
        ],
      );
      const after = domainSizes(await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE));
      // 3 vCPUs is past the maximum of 2: the maximum was raised with it. 384 MiB fits in 512.
      assert.deepEqual(
        [after.vcpus, after.maxVcpus, after.memoryMiB, after.maxMemoryMiB],
        [3, 3, 384, 512],
      );
      const pool = await fx.lv.storagePoolLookupByName(fx.config.vmsPool);
      const vol = await fx.lv.storageVolLookupByName(pool, `${name}_data-vdb`);
      assert.equal((await fx.lv.storageVolGetInfo(vol)).capacity, 3 * GIB);

      const stored = parseStoredDomainMetadata(await fx.lv.domainGetXmlDesc(d))!;
      assert.equal(stored.vm.spec.vcpus, 3);
      assert.equal(stored.vm.spec.memoryGiB, 0.375);
      assert.deepEqual(stored.vm.spec.resources, { maxVcpus: 3 });
      assert.deepEqual(
        stored.vm.spec.dataDisks?.map((x) => [x.device, x.sizeGB]),
        [["vdb", 3], ["vdc", 2]],
      );
      assert.equal(stored.passwordHashSha256, fingerprint, "the password fingerprint is kept");
      assert.deepEqual(r.spec.dataDisks, [{ device: "vdb", sizeGB: 3 }, {
        device: "vdc",
        sizeGB: 2,
      }]);

      // The CLI: one line per change saying when it applies; a refusal is exit 4 with the reason.
      const cfg = await writeConfigFile(fx);
      const cli = async (...args: string[]) => {
        const out: string[] = [];
        const err: string[] = [];
        const code = await main(
          ["--config", cfg, "--audit-db", `${fx.dir}/audit.db`, "resize", name, ...args],
          { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) },
        );
        return { code, out: out.join(""), err: err.join("") };
      };
      const text = await cli("--memory", "512M", "--disk", "vdb=3");
      assert.equal(text.code, 0, text.err);
      assert.match(text.out, /VM '.*': memory 0\.375 -> 0\.5 GiB: at the next boot\n/);
      assert.match(text.out, /not running, in effect when it starts/);
      assert.match(text.out, /disk vdb 3 -> 3 GB: unchanged\n/);
      const shrink = await cli("--disk", "vdb=2");
      assert.equal(shrink.code, 4);
      assert.match(shrink.err, /shrinking a disk is refused/);
      assert.equal((await cli()).code, 2, "nothing to resize is a usage error");
      assert.equal((await cli("--vcpus", "0")).code, 2);
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "resize of a running VM: vCPUs and memory live within the headroom, beyond it at the next boot",
  async () => {
    const fx = await foundryFixture();
    try {
      const vm = testVm(fx);
      const name = vm.metadata.name;
      await createVm(fx.lv, vm, { config: fx.config });
      const d = await fx.lv.domainLookupByName(name);
      assert.equal((await fx.lv.domainGetState(d)).state, DomainState.RUNNING);

      // A TCG domain gets no live vCPU hot-plug by default (QEMU 7.2 can abort): next boot.
      const deferred = await resizeVm(fx.lv, name, { vcpus: 2 });
      assert.deepEqual(deferred.changes.map((c) => [c.what, c.to, c.applied]), [
        ["vcpus", 2, "nextBoot"],
      ]);
      assert.match(deferred.changes[0]!.message ?? "", /TCG/);
      assert.equal(domainSizes(await fx.lv.domainGetXmlDesc(d)).vcpus, 1, "live unchanged");
      // No guest code here to lose, so the live path is forced. No guest OS, so no agent: the
      // changes are made, the guest side is reported as not done.
      const r = await resizeVm(fx.lv, name, {
        vcpus: 2,
        memoryGiB: 0.5,
        disks: [{ device: "vdc", sizeGB: 3 }],
      }, { guestWaitMs: 2000, hotplugOnTcg: true });
      assert.equal(r.running, true);
      assert.deepEqual(
        r.changes.map((c) => [c.what, c.to, c.applied]),
        [["vcpus", 2, "live"], ["memory", 512, "live"], ["disk", 3 * GIB, "live"]],
      );
      assert.match(r.changes[0]!.message ?? "", /not onlined in the guest/);
      assert.match(r.changes[2]!.message ?? "", /agent did not answer/);
      const live = domainSizes(await fx.lv.domainGetXmlDesc(d));
      assert.equal(live.vcpus, 2, "vCPU hot-plugged");
      const config = domainSizes(await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE));
      assert.deepEqual([config.vcpus, config.memoryMiB], [2, 512], "and kept for the next boot");
      const pool = await fx.lv.storagePoolLookupByName(fx.config.vmsPool);
      await fx.lv.storagePoolRefresh(pool);
      const vol = await fx.lv.storageVolLookupByName(pool, `${name}_data-vdc`);
      assert.equal((await fx.lv.storageVolGetInfo(vol)).capacity, 3 * GIB);

      // Past the running maximum (2 vCPUs, 512 MiB): written for the next boot, said so.
      const next = await resizeVm(fx.lv, name, { vcpus: 4, memoryGiB: 1 });
      assert.deepEqual(next.changes.map((c) => c.applied), ["nextBoot", "nextBoot"]);
      assert.match(next.changes[0]!.message!, /more than the running VM's maximum \(2\)/);
      assert.equal(domainSizes(await fx.lv.domainGetXmlDesc(d)).vcpus, 2, "live unchanged");
      const c2 = domainSizes(await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE));
      assert.deepEqual([c2.vcpus, c2.maxVcpus, c2.memoryMiB, c2.maxMemoryMiB], [4, 4, 1024, 1024]);
      // Both the live and the persistent stored spec follow.
      for (const flags of [0, DomainXmlFlags.INACTIVE]) {
        const s = parseStoredDomainMetadata(await fx.lv.domainGetXmlDesc(d, flags))!.vm.spec;
        assert.deepEqual([s.vcpus, s.memoryGiB, s.resources], [4, 1, {
          maxVcpus: 4,
          maxMemoryGiB: 1,
        }]);
      }
      // Back to what runs: the definition is aligned, nothing live to do.
      const back = await resizeVm(fx.lv, name, { vcpus: 2 });
      assert.equal(back.changes[0]!.applied, "live");
      assert.equal(
        domainSizes(await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE)).vcpus,
        2,
      );
    } finally {
      await fx.cleanup();
    }
  },
);
