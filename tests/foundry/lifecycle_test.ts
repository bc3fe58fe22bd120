/**
 * foundry's VM lifecycle on the real libvirtd (domain type qemu; no OS needs to boot): create
 * with two NICs and two data disks, inspect the daemon's own view, destroy without leftovers,
 * rollback at every step, concurrent same-name creates.
 */
import assert from "node:assert/strict";
import { DomainState, MetadataType } from "../../lib/libvirt/mod.ts";
import { parseDomainMetadata, withoutPasswordHash } from "../../lib/foundry/metadata.ts";
import { interfaceNameFromIp, macFromIp } from "../../lib/foundry/naming.ts";
import {
  CREATE_STEPS,
  createVm,
  destroyVm,
  restartVm,
  RuntimeCheckError,
  startVm,
  stopVm,
} from "../../lib/foundry/vm.ts";
import { getVm, listVms } from "../../lib/foundry/inventory.ts";
import { buildDirPoolXml } from "../../lib/foundry/storage_xml.ts";
import { exitCodeFor } from "../../cli/_program.ts";
import { libvirtTest } from "../libvirt/_env.ts";
import { foundryFixture, leftovers, testVm } from "./_fixture.ts";

libvirtTest("create makes the VM libvirt describes; destroy leaves nothing", async () => {
  const fx = await foundryFixture();
  try {
    const vm = testVm(fx);
    const name = vm.metadata.name;
    const steps: string[] = [];
    const r = await createVm(fx.lv, vm, { config: fx.config, onStep: (s) => steps.push(s) });
    assert.deepEqual(steps, [...CREATE_STEPS]);
    assert.equal(r.domainType, "qemu");

    const d = await fx.lv.domainLookupByName(name);
    assert.equal((await fx.lv.domainGetState(d)).state, DomainState.RUNNING);
    assert.equal(await fx.lv.domainGetAutostart(d), true);
    const live = await fx.lv.domainGetXmlDesc(d);
    assert.match(live, /<domain type='qemu'/);
    assert.match(live, /machine='pc-q35/);
    assert.match(live, /<loader[^>]*type='pflash'/, "UEFI firmware selected");
    // Each NIC: the MAC from its address, the tap named after it, on its bridge.
    for (const [i, nic] of vm.spec.networkInterfaces.entries()) {
      const mac = macFromIp(nic.ip!);
      const tap = interfaceNameFromIp(nic.ip!);
      const block = new RegExp(
        `<interface type='bridge'>\\s*<mac address='${mac}'/>\\s*<source bridge='${
          fx.bridges[i]
        }'/>\\s*<target dev='${tap}'/>`,
      );
      assert.match(live, block, `NIC ${i} as expected`);
      // The tap exists on the host and is enslaved to the bridge.
      const link = await new Deno.Command("ip", { args: ["-o", "link", "show", tap] }).output();
      assert.match(new TextDecoder().decode(link.stdout), new RegExp(`master ${fx.bridges[i]}`));
    }
    // Disks: boot overlay of the base image, two data disks, the cidata ISO on virtio-scsi.
    for (const dev of ["vda", "vdb", "vdc"]) {
      assert.match(live, new RegExp(`<target dev='${dev}' bus='virtio'/>`));
    }
    assert.match(live, /<target dev='sda' bus='scsi'\/>/);
    assert.match(live, /<controller type='scsi' index='0' model='virtio-scsi'/);
    const pool = await fx.lv.storagePoolLookupByName(fx.config.vmsPool);
    const vols = (await fx.lv.storagePoolListAllVolumes(pool)).map((v) => v.name)
      .filter((n) => n.startsWith(name)).sort();
    assert.deepEqual(vols, [
      `${name}_boot`,
      `${name}_cloudinit`,
      `${name}_data-vdb`,
      `${name}_data-vdc`,
    ]);
    const bootXml = await fx.lv.storageVolGetXmlDesc(
      await fx.lv.storageVolLookupByName(pool, `${name}_boot`),
    );
    assert.match(
      bootXml,
      new RegExp(`<backingStore>\\s*<path>${fx.config.imagesPath}/${fx.image}</path>`),
    );
    assert.match(bootXml, /<capacity unit='bytes'>1073741824<\/capacity>/);
    const vdc = await fx.lv.storageVolGetInfo(
      await fx.lv.storageVolLookupByName(pool, `${name}_data-vdc`),
    );
    assert.equal(vdc.capacity, 2 * 2 ** 30);
    // The cidata ISO in the pool is the one we built, readable by isoinfo as volume "cidata".
    const isoPath = `${fx.config.vmsPath}/${name}_cloudinit`;
    const info = await new Deno.Command("isoinfo", { args: ["-d", "-i", isoPath] }).output();
    assert.match(new TextDecoder().decode(info.stdout), /Volume id: cidata/);
    // Metadata: foundry recognises its VM from the daemon's XML alone.
    const stored = parseDomainMetadata(live);
    assert.ok(stored, "no foundry metadata");
    assert.deepEqual(stored.spec.networkInterfaces, vm.spec.networkInterfaces);
    assert.deepEqual(stored.metadata.labels, vm.metadata.labels);
    assert.equal(stored.spec.dataDisks?.length, 2);
    assert.match(
      await fx.lv.domainGetMetadata(
        d,
        MetadataType.ELEMENT,
        "https://foundry.cofront.xyz/v1alpha1/status",
      ),
      /"phase":"Running"/,
    );

    const nvram = /<nvram[^>]*>([^<]+)<\/nvram>/.exec(live)?.[1];
    assert.ok(nvram, "the domain has an NVRAM file");
    await Deno.stat(nvram); // exists while the VM does

    const gone = await destroyVm(fx.lv, name, { timeoutSeconds: 1 });
    await assert.rejects(Deno.stat(nvram), Deno.errors.NotFound);
    assert.equal(gone.volumesDeleted.length, 4);
    assert.deepEqual(await leftovers(fx, name), []);
  } finally {
    await fx.cleanup();
  }
});

libvirtTest("a failure at each step of create leaves nothing behind", async () => {
  const fx = await foundryFixture();
  try {
    for (const failAt of CREATE_STEPS) {
      const vm = testVm(fx);
      await assert.rejects(
        createVm(fx.lv, vm, {
          config: fx.config,
          beforeStep: (s) => {
            if (s === failAt) throw new Error(`injected failure before ${s}`);
          },
        }),
        new RegExp(`injected failure before ${failAt}`),
      );
      assert.deepEqual(await leftovers(fx, vm.metadata.name), [], `after failing at ${failAt}`);
    }
    // An abort (Ctrl-C) half-way is a failure too.
    const ac = new AbortController();
    const vm = testVm(fx);
    await assert.rejects(
      createVm(fx.lv, vm, {
        config: fx.config,
        signal: ac.signal,
        onStep: (s) => {
          if (s === "cloudinit") ac.abort(new Error("interrupted"));
        },
      }),
      /interrupted/,
    );
    assert.deepEqual(await leftovers(fx, vm.metadata.name), []);
  } finally {
    await fx.cleanup();
  }
});

libvirtTest(
  "runtime checks refuse a taken name, a missing bridge and a missing image",
  async () => {
    const fx = await foundryFixture();
    try {
      const vm = testVm(fx);
      await createVm(fx.lv, vm, { config: fx.config, noStart: true });
      await assert.rejects(createVm(fx.lv, vm, { config: fx.config }), (e: unknown) => {
        assert.ok(e instanceof RuntimeCheckError);
        assert.equal(exitCodeFor(e), 2);
        assert.match(e.message, /metadata\.name/);
        return true;
      });
      const other = testVm(fx);
      other.spec.networkInterfaces[0]!.bridge = `${fx.bridges[0]}x`;
      other.spec.bootDisk.image = "nope.qcow2";
      await assert.rejects(createVm(fx.lv, other, { config: fx.config }), (e: unknown) => {
        assert.ok(e instanceof RuntimeCheckError);
        assert.match(e.message, new RegExp(`bridge[\\s\\S]*${fx.bridges[0]}`));
        assert.match(e.message, /bootDisk\.image/);
        return true;
      });
      assert.deepEqual(await leftovers(fx, other.metadata.name), []);
      await destroyVm(fx.lv, vm.metadata.name, { timeoutSeconds: 1 });
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "two concurrent creates of one name: one wins, the loser removes nothing of it",
  async () => {
    const fx = await foundryFixture();
    const { Libvirt } = await import("../../lib/libvirt/mod.ts");
    const second = await Libvirt.connect();
    try {
      const vm = testVm(fx);
      const results = await Promise.allSettled([
        createVm(fx.lv, vm, { config: fx.config }),
        createVm(second, structuredClone(vm), { config: fx.config }),
      ]);
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
      assert.equal(won.length, 1, `expected one winner: ${results.map((r) => r.status)}`);
      assert.equal(lost.length, 1);
      // Refused up front (the winner's domain is there) or at the name's claim (its cidata volume).
      const why = (lost[0]!.reason as Error).message;
      assert.match(why, /already exists/);
      assert.ok(why.includes(vm.metadata.name), why);
      // The winner's VM is whole: running, four volumes, readable metadata.
      const d = await fx.lv.domainLookupByName(vm.metadata.name);
      assert.equal((await fx.lv.domainGetState(d)).state, DomainState.RUNNING);
      const names = (await leftovers(fx, vm.metadata.name)).filter((x) => x.startsWith("volume"));
      assert.equal(names.length, 4, `winner's volumes: ${names}`);
      await destroyVm(fx.lv, vm.metadata.name, { timeoutSeconds: 1 });
      assert.deepEqual(await leftovers(fx, vm.metadata.name), []);
    } finally {
      await second.close();
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "create into a VM pool another create has defined and not started yet: the pool is no problem",
  async () => {
    // The loser of a race used to read such a pool's 0-byte capacity and refuse the VM with
    // "more than pool ... can ever hold".
    const fx = await foundryFixture();
    try {
      await Deno.mkdir(fx.config.vmsPath, { recursive: true });
      await fx.lv.storagePoolDefineXml(buildDirPoolXml(fx.config.vmsPool, fx.config.vmsPath));
      const vm = testVm(fx);
      await createVm(fx.lv, vm, { config: fx.config, noStart: true });
      const names = (await leftovers(fx, vm.metadata.name)).filter((x) => x.startsWith("volume"));
      assert.equal(names.length, 4, `volumes: ${names}`);
      await destroyVm(fx.lv, vm.metadata.name, { timeoutSeconds: 0 });
      assert.deepEqual(await leftovers(fx, vm.metadata.name), []);
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest("list, get, stop, start and restart read and change the daemon's state", async () => {
  const fx = await foundryFixture();
  try {
    const a = testVm(fx, { labels: { role: "web" } });
    const b = testVm(fx, { labels: { role: "db" } });
    await createVm(fx.lv, a, { config: fx.config });
    await createVm(fx.lv, b, { config: fx.config, noStart: true });

    const { vms, roundTrips } = await listVms(fx.lv);
    assert.ok(roundTrips <= 2, `list took ${roundTrips} round trips`);
    const rowA = vms.find((v) => v.name === a.metadata.name);
    const rowB = vms.find((v) => v.name === b.metadata.name);
    assert.ok(rowA && rowB);
    assert.deepEqual([rowA.state, rowA.vcpus, rowA.memoryMiB], ["running", 1, 256]);
    // No agent and no lease on an isolated bridge: no live address, the spec's shown as such.
    assert.equal(rowA.ip, "");
    assert.equal(rowA.ipSource, "");
    assert.deepEqual(rowA.addresses, [
      { ip: a.spec.networkInterfaces[0]!.ip!.split("/")[0], source: "spec" },
      { ip: a.spec.networkInterfaces[1]!.ip!.split("/")[0], source: "spec" },
    ]);
    assert.equal(rowB.state, "shut off");
    // Spread over extra connections (as a list of hundreds of domains is), the rows are the same
    // and the caller's connection made fewer of the calls.
    const before = fx.lv.rpc.callsSent;
    const spread = await listVms(fx.lv, { domainsPerHelper: 1 });
    const ours = (rows: typeof vms) =>
      rows.filter((v) => v.name === a.metadata.name || v.name === b.metadata.name);
    assert.deepEqual(ours(spread.vms), ours(vms));
    assert.ok(fx.lv.rpc.callsSent - before < spread.rpcCalls, "some calls went elsewhere");
    const web = await listVms(fx.lv, { labels: { role: "web" } });
    assert.ok(web.vms.some((v) => v.name === a.metadata.name));
    assert.ok(!web.vms.some((v) => v.name === b.metadata.name));

    const got = await getVm(fx.lv, a.metadata.name);
    assert.equal(got.vm.status?.phase, "Running");
    const ready = got.vm.status?.conditions?.find((c) => c.type === "Ready");
    assert.equal(ready?.status, "True");
    assert.match(ready?.lastTransitionTime ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // The stored spec is the file's, less the root password hash, which never leaves the host file.
    assert.deepEqual(got.vm.spec, withoutPasswordHash(a).spec);
    const { createHash } = await import("node:crypto");
    assert.equal(
      got.vm.metadata.annotations?.["foundry.cofront.xyz/root-password-hash-sha256"],
      `sha256:${createHash("sha256").update(a.spec.cloudInit!.passwordHash!).digest("hex")}`,
    );
    assert.ok(!JSON.stringify(got).includes(a.spec.cloudInit!.passwordHash!));
    assert.ok(
      !(await fx.lv.domainGetXmlDesc(got.domain)).includes(a.spec.cloudInit!.passwordHash!),
    );
    assert.equal(got.autostart, true);

    const stopped = await stopVm(fx.lv, a.metadata.name, { timeoutSeconds: 1 });
    assert.equal(stopped.graceful, false, "no OS answers ACPI, so the stop is forced after 1 s");
    const afterStop = await getVm(fx.lv, a.metadata.name);
    assert.equal(afterStop.vm.status?.phase, "Stopped");
    await startVm(fx.lv, a.metadata.name);
    assert.equal((await getVm(fx.lv, a.metadata.name)).vm.status?.phase, "Running");
    await restartVm(fx.lv, a.metadata.name, { timeoutSeconds: 1, force: true });
    assert.equal((await getVm(fx.lv, a.metadata.name)).vm.status?.phase, "Running");

    for (const vm of [a, b]) {
      await destroyVm(fx.lv, vm.metadata.name, { timeoutSeconds: 1 });
      assert.deepEqual(await leftovers(fx, vm.metadata.name), []);
    }
    await assert.rejects(
      destroyVm(fx.lv, a.metadata.name, { timeoutSeconds: 1 }),
      /does not exist/,
    );
  } finally {
    await fx.cleanup();
  }
});

libvirtTest(
  "wait reports the running stage and times out on an agent that never comes",
  async () => {
    const { waitForVm, WaitTimeoutError } = await import("../../lib/foundry/wait.ts");
    const fx = await foundryFixture();
    try {
      const vm = testVm(fx);
      await createVm(fx.lv, vm, { config: fx.config, noStart: true });
      // A shut-off VM fails a wait at once (nothing would start it), so the domain is started
      // paused: the wait then sits in the running stage until the resume's lifecycle event wakes
      // it (its timer is the overall deadline, far off), and it stops right after.
      const dom = await fx.lv.domainLookupByName(vm.metadata.name);
      await fx.lv.domainCreate(dom, 1 /* VIR_DOMAIN_START_PAUSED */);
      const reached = new AbortController();
      const stages: string[] = [];
      let resumed = false;
      const waiting = waitForVm(fx.lv, vm.metadata.name, {
        until: "agent",
        timeoutMs: 120_000,
        signal: reached.signal,
        onStage: (s) => {
          stages.push(s);
          if (s === "running") reached.abort(new Error(`running reached, resumed: ${resumed}`));
        },
      });
      const resume = async () => {
        resumed = true;
        const r = await new Deno.Command("virsh", {
          args: ["-c", "qemu:///system", "resume", vm.metadata.name],
          stdout: "null",
          stderr: "piped",
        }).output();
        assert.ok(r.success, new TextDecoder().decode(r.stderr));
      };
      await Promise.all([assert.rejects(waiting, /running reached, resumed: true/), resume()]);
      assert.deepEqual(stages, ["running"], "the domain event woke the wait for the running stage");

      // The domain runs but has no OS, so its agent never comes, however long the wait is.
      await assert.rejects(
        waitForVm(fx.lv, vm.metadata.name, { until: "agent", timeoutMs: 1_000 }),
        (e: unknown) => {
          assert.ok(e instanceof WaitTimeoutError, String(e));
          assert.equal(e.stage, "agent");
          assert.equal(exitCodeFor(e), 4);
          return true;
        },
      );
      await destroyVm(fx.lv, vm.metadata.name, { timeoutSeconds: 0 });
    } finally {
      await fx.cleanup();
    }
  },
);
