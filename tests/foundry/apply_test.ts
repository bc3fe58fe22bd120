/**
 * `foundry apply` and `diff` against the daemon with the fixture's OS-less TCG VMs (1 vCPU,
 * 256 MiB of a 512 MiB maximum, data disks vdb and vdc, two NICs): a second apply of the same spec
 * plans unchanged and calls only reading procedures; memory within the maximum is applied live, a
 * vCPU increase on TCG goes to the definition (resize's rule), a new data disk and NIC are attached
 * live; a changed boot image is refused without --recreate and done with it; --prune -l removes only
 * labelled foundry VMs that are not in the files; diff's exit codes; a half-way failure.
 */
import assert from "node:assert/strict";
import { stringify } from "npm:yaml@^2.9.1";
import { DomainState, DomainXmlFlags, Procedure, Program } from "../../lib/libvirt/mod.ts";
import { ApplyIncompleteError, applyVm, planVm, readCurrentVm } from "../../lib/foundry/apply.ts";
import { parseStoredDomainMetadata } from "../../lib/foundry/metadata.ts";
import { domainSizes } from "../../lib/foundry/resize.ts";
import { domainSetVcpusFlags, VcpuFlags } from "../../lib/libvirt/resize.ts";
import { createVm } from "../../lib/foundry/vm.ts";
import type { VirtualMachine } from "../../lib/foundry/types.ts";
import { main } from "../../cli/foundry.ts";
import { libvirtTest, tinyDomainXml, uniqueName } from "../libvirt/_env.ts";
import {
  type FoundryFixture,
  foundryFixture,
  nextHostNumber,
  testVm,
  writeConfigFile,
} from "./_fixture.ts";

/**
 * The procedures that only read, of those apply can call (REMOTE program). Any other one seen
 * during an unchanged apply is a write.
 */
const READ_PROCEDURES = new Set<number>([
  Procedure.DOMAIN_LOOKUP_BY_NAME,
  Procedure.DOMAIN_GET_XML_DESC,
  Procedure.DOMAIN_GET_STATE,
  Procedure.DOMAIN_GET_AUTOSTART,
  Procedure.DOMAIN_GET_METADATA,
  Procedure.CONNECT_LIST_ALL_DOMAINS,
]);

const h3Name = () => uniqueName("ftvm-h3");

/** Runs `fn`, returning the REMOTE procedures it called on `fx.lv`. */
async function procedures(fx: FoundryFixture, fn: () => Promise<unknown>): Promise<number[]> {
  const seen: number[] = [];
  fx.lv.rpc.onCall = (prog, proc) => {
    if (prog === Program.REMOTE) seen.push(proc);
  };
  try {
    await fn();
  } finally {
    fx.lv.rpc.onCall = undefined;
  }
  return seen;
}

/** Plans and applies `vm` on the fixture's connection, as `foundry apply` does. */
async function apply(fx: FoundryFixture, vm: VirtualMachine, recreate = false) {
  const current = await readCurrentVm(fx.lv, vm.metadata.name);
  const plan = planVm(vm, current, { recreate });
  const result = await applyVm(fx.lv, vm, plan, current, { config: fx.config, guestWaitMs: 1000 });
  return { plan, result };
}

function writeSpec(path: string, vms: VirtualMachine[]): Promise<void> {
  return Deno.writeTextFile(
    path,
    vms.map((vm) =>
      stringify({ apiVersion: vm.apiVersion, kind: vm.kind, metadata: vm.metadata, spec: vm.spec })
    ).join("---\n"),
  );
}

async function cli(fx: FoundryFixture, ...args: string[]) {
  const cfg = await writeConfigFile(fx);
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    ["--config", cfg, "--audit-db", `${fx.dir}/audit.db`, ...args],
    { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) },
  );
  return { code, out: out.join(""), err: err.join("") };
}

libvirtTest(
  "apply on a running VM: live memory, disk and NIC, TCG vCPUs for the next boot, labels; the second apply writes nothing",
  async () => {
    const fx = await foundryFixture();
    try {
      const vm = testVm(fx, { name: h3Name(), labels: { tier: "web" } });
      const name = vm.metadata.name;
      const first = await apply(fx, vm);
      assert.equal(first.plan.action, "create");
      const d = await fx.lv.domainLookupByName(name);
      assert.equal((await fx.lv.domainGetState(d)).state, DomainState.RUNNING);

      // The same spec again: unchanged, and only reading procedures.
      const again = await procedures(fx, async () => {
        const r = await apply(fx, vm);
        assert.equal(r.plan.action, "unchanged");
        assert.deepEqual(r.plan.changes, []);
      });
      assert.ok(again.length > 0);
      assert.deepEqual(again.filter((p) => !READ_PROCEDURES.has(p)), [], "a writing RPC");

      const n = nextHostNumber();
      const desired: VirtualMachine = structuredClone(vm);
      desired.metadata.labels = { tier: "db", zone: "a" };
      desired.spec.memoryGiB = 0.375;
      desired.spec.vcpus = 2;
      desired.spec.dataDisks!.push({ device: "vdd", sizeGB: 1, serial: "h3-new" });
      desired.spec.networkInterfaces.push({
        ip: `192.0.2.${n}/24`,
        bridge: fx.bridges[0],
        defaultRoute: false,
      });
      desired.spec.autostart = false;
      const { plan, result } = await apply(fx, desired);
      assert.equal(plan.action, "update");
      const mac = `be:ef:c0:00:02:${n.toString(16).padStart(2, "0")}`;
      assert.deepEqual(
        Object.fromEntries(plan.changes.map((c) => [c.path, c.class])),
        {
          "metadata.labels.tier": "live",
          "metadata.labels.zone": "live",
          "spec.vcpus": "reboot",
          "spec.memoryGiB": "live",
          "spec.dataDisks[vdd]": "live",
          [`spec.networkInterfaces[${mac}]`]: "live",
          "spec.autostart": "live",
        },
      );
      assert.equal(result.done.length, plan.changes.length);

      const live = await fx.lv.domainGetXmlDesc(d);
      const config = await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE);
      // Memory went to the balloon (live) and the definition; with no guest OS there is no balloon
      // driver to give memory back, so the live size stays what QEMU reports (the day-2 e2e reads
      // it in a guest's /proc/meminfo).
      assert.equal(domainSizes(config).memoryMiB, 384);
      // TCG: the vCPU increase is in the definition, the running domain keeps 1 until it restarts.
      assert.equal(domainSizes(live).vcpus, 1);
      assert.equal(domainSizes(config).vcpus, 2);
      for (const xml of [live, config]) {
        assert.match(
          xml,
          /<target dev='vdd' bus='virtio'\/>/,
          "disk attached live and in the definition",
        );
        assert.match(xml, /<serial>h3-new<\/serial>/);
      }
      // The NIC: live when the running VM has a free PCIe root port, else in the definition with
      // a note (these q35 domains have one spare port, which the disk took).
      assert.match(config, new RegExp(`<mac address='${mac}'/>`), "NIC in the definition");
      if (!live.includes(mac)) {
        assert.ok(result.notes.some((n) => /no free PCIe slot/.test(n)), result.notes.join("; "));
      }
      assert.equal(await fx.lv.domainGetAutostart(d), false);
      const pool = await fx.lv.storagePoolLookupByName(fx.config.vmsPool);
      const vol = await fx.lv.storageVolLookupByName(pool, `${name}_data-vdd`);
      assert.equal((await fx.lv.storageVolGetInfo(vol)).capacity, 2 ** 30);
      const stored = parseStoredDomainMetadata(config)!;
      assert.deepEqual(stored.vm.metadata.labels, { tier: "db", zone: "a" });
      assert.deepEqual(stored.vm.spec.dataDisks?.map((x) => x.device), ["vdb", "vdc", "vdd"]);
      assert.ok(stored.volumes?.some((v) => v.name === `${name}_data-vdd`), "destroy deletes it");
      assert.ok(stored.specSha256 && stored.cloudInitSha256, "the hashes are refreshed");

      const third = await procedures(fx, async () => {
        const r = await apply(fx, desired);
        assert.equal(r.plan.action, "unchanged", JSON.stringify(r.plan.changes));
      });
      assert.deepEqual(third.filter((p) => !READ_PROCEDURES.has(p)), [], "a writing RPC");

      // The NIC removed again: detached from the definition (and asked of the running guest).
      const fewer = structuredClone(desired);
      fewer.spec.networkInterfaces.pop();
      const detach = await apply(fx, fewer);
      assert.deepEqual(detach.plan.changes.map((c) => [c.path, c.class]), [
        [`spec.networkInterfaces[${mac}]`, "live"],
      ]);
      assert.doesNotMatch(
        await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE),
        new RegExp(mac),
      );
      assert.equal((await apply(fx, fewer)).plan.action, "unchanged");
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest("apply stopped half-way: the stored spec records exactly what was made", async () => {
  const fx = await foundryFixture();
  try {
    const vm = testVm(fx, { name: h3Name() });
    const name = vm.metadata.name;
    await createVm(fx.lv, vm, { config: fx.config, noStart: true });
    const desired = structuredClone(vm);
    desired.metadata.labels = { suite: "other" };
    desired.spec.dataDisks!.push({ device: "vdd", sizeGB: 1 });
    desired.spec.memoryGiB = 0.375;
    desired.spec.autostart = false;
    const current = await readCurrentVm(fx.lv, name);
    const plan = planVm(desired, current);
    const err = await applyVm(fx.lv, desired, plan, current, {
      config: fx.config,
      beforeChange: (c) => {
        if (c.path === "spec.autostart") throw new Error("injected failure");
      },
    }).then(() => undefined, (e) => e);
    assert.ok(err instanceof ApplyIncompleteError, String(err));
    assert.deepEqual(err.done.map((c) => c.path), ["spec.dataDisks[vdd]", "spec.memoryGiB"]);
    assert.deepEqual(err.notDone.map((c) => c.path), ["metadata.labels.suite", "spec.autostart"]);
    assert.match(
      err.message,
      /injected failure; made: spec\.dataDisks\[vdd\], spec\.memoryGiB; not made: metadata\.labels\.suite, spec\.autostart/,
    );
    const d = await fx.lv.domainLookupByName(name);
    const stored = parseStoredDomainMetadata(await fx.lv.domainGetXmlDesc(d))!.vm;
    assert.deepEqual(stored.metadata.labels, { suite: "foundry" }, "label not made, not recorded");
    assert.deepEqual(stored.spec.dataDisks?.map((x) => x.device), ["vdb", "vdc", "vdd"]);
    assert.equal(stored.spec.memoryGiB, 0.375);
    assert.equal(await fx.lv.domainGetAutostart(d), true);
    // The rest is planned again, and nothing of what was made.
    const rest = planVm(desired, await readCurrentVm(fx.lv, name));
    assert.deepEqual(rest.changes.map((c) => c.path), ["metadata.labels.suite", "spec.autostart"]);
  } finally {
    await fx.cleanup();
  }
});

libvirtTest(
  "apply CLI: changed boot image refused without --recreate, done with it; diff exit codes; --prune -l",
  async () => {
    const fx = await foundryFixture();
    try {
      const app = `h3-${crypto.randomUUID().slice(0, 8)}`;
      const a = testVm(fx, { name: h3Name(), labels: { app } });
      const b = testVm(fx, { name: h3Name(), labels: { app } });
      const other = testVm(fx, { name: h3Name(), labels: { app: `${app}-x` } });
      const both = `${fx.dir}/both.yaml`;
      await writeSpec(both, [a, b]);
      await writeSpec(`${fx.dir}/other.yaml`, [other]);

      let r = await cli(fx, "diff", "-f", both);
      assert.equal(r.code, 1, r.err);
      assert.match(r.out, new RegExp(`^\\+ create ${a.metadata.name} \\(.*both\\.yaml:1`, "m"));
      r = await cli(fx, "apply", "-f", both, "--dry-run");
      assert.equal(r.code, 1, r.err);
      assert.equal(
        (await fx.lv.listAllDomains()).filter((d) => d.name === a.metadata.name).length,
        0,
      );
      r = await cli(fx, "apply", "-f", both, "-f", `${fx.dir}/other.yaml`);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /3 create/);
      r = await cli(fx, "diff", "-f", both);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, new RegExp(`^= unchanged ${b.metadata.name}`, "m"));
      r = await cli(fx, "diff", "-f", `${fx.dir}/missing.yaml`);
      assert.ok(r.code > 1, `an error is more than 1, got ${r.code}`);

      // A changed boot image: recreate-class; refused (exit 4, nothing changed) without --recreate.
      await new Deno.Command("qemu-img", {
        args: ["create", "-q", "-f", "qcow2", `${fx.config.imagesPath}/other.qcow2`, "64M"],
      }).output();
      await fx.lv.storagePoolRefresh(await fx.lv.storagePoolLookupByName(fx.config.imagesPool));
      const changed = structuredClone(a);
      changed.spec.bootDisk.image = "other.qcow2";
      const one = `${fx.dir}/a.yaml`;
      await writeSpec(one, [changed]);
      const before = await fx.lv.domainGetXmlDesc(await fx.lv.domainLookupByName(a.metadata.name));
      r = await cli(fx, "diff", "-f", one, "-o", "json");
      assert.equal(r.code, 1);
      assert.deepEqual(JSON.parse(r.out)[0].changes, [{
        path: "spec.bootDisk.image",
        from: fx.image,
        to: "other.qcow2",
        class: "recreate",
        reason: "the boot disk is made from its image when the VM is created",
      }]);
      r = await cli(fx, "apply", "-f", one);
      assert.equal(r.code, 4, r.err);
      assert.match(r.err, /spec\.bootDisk\.image is a recreate change \(pass --recreate\)/);
      const after = await fx.lv.domainGetXmlDesc(await fx.lv.domainLookupByName(a.metadata.name));
      assert.equal(after, before, "nothing changed");
      r = await cli(fx, "apply", "-f", one, "--recreate");
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /-\/\+ recreate/);
      const recreated = await fx.lv.domainGetXmlDesc(
        await fx.lv.domainLookupByName(a.metadata.name),
      );
      assert.notEqual(
        /<uuid>(.*)<\/uuid>/.exec(recreated)?.[1],
        /<uuid>(.*)<\/uuid>/.exec(before)?.[1],
      );
      assert.equal(parseStoredDomainMetadata(recreated)!.vm.spec.bootDisk.image, "other.qcow2");
      assert.equal((await cli(fx, "diff", "-f", one)).code, 0);
      // The audit trail has the apply with its plan, and no secret.
      const history = await cli(fx, "history", a.metadata.name, "-o", "json");
      assert.equal(history.code, 0, history.err);
      assert.match(history.out, /"apply"/);
      assert.match(history.out, /spec\.bootDisk\.image \(recreate\)/);
      assert.ok(!history.out.includes("$6$"), "no password hash in the audit trail");

      // --prune -l app=...: b goes (labelled, not in the file); other (another label value) stays.
      r = await cli(fx, "apply", "-f", one, "--prune", "-l", `app=${app}`);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, new RegExp(`^- prune ${b.metadata.name}`, "m"));
      const names = (await fx.lv.listAllDomains()).map((d) => d.name);
      assert.ok(!names.includes(b.metadata.name), "pruned");
      assert.ok(names.includes(a.metadata.name) && names.includes(other.metadata.name));
      r = await cli(fx, "apply", "-f", one, "--prune", "-l", `!app`);
      assert.equal(r.code, 2, "a selector that only excludes is refused");
      assert.match(r.err, /^Error: --prune needs a selector that requires a label/m);
      assert.equal((await cli(fx, "apply", "-f", one, "--prune")).code, 2);

      // A domain of the spec's name that foundry did not make: apply names the command that
      // adopts it (exit 4) and leaves it as it was.
      const stranger = testVm(fx, { name: uniqueName("ftvm-h8") });
      const sn = stranger.metadata.name;
      const sd = await fx.lv.domainDefineXml(tinyDomainXml(sn));
      try {
        const file = `${fx.dir}/stranger.yaml`;
        await writeSpec(file, [stranger]);
        const xml = await fx.lv.domainGetXmlDesc(sd);
        r = await cli(fx, "apply", "-f", file);
        assert.equal(r.code, 4, r.err);
        assert.equal(
          r.err,
          `Error: VM ${sn} exists and foundry did not create it (no foundry metadata): adopt it first (foundry adopt ${sn} --apply)\n`,
        );
        assert.equal(await fx.lv.domainGetXmlDesc(sd), xml, "left as it was");
      } finally {
        await fx.lv.domainUndefine(sd).catch(() => {});
      }

      // diff NAME: drift behind foundry's back (a vCPU count set in the definition, as virsh
      // setvcpus --config does): 0 before, 1 after.
      r = await cli(fx, "diff", other.metadata.name);
      assert.equal(r.code, 0, r.out + r.err);
      const od = await fx.lv.domainLookupByName(other.metadata.name);
      await domainSetVcpusFlags(fx.lv, od, 2, VcpuFlags.CONFIG);
      r = await cli(fx, "diff", other.metadata.name, "-o", "json");
      assert.equal(r.code, 1, r.out + r.err);
      assert.ok(JSON.parse(r.out).changes.length > 0);
      assert.equal((await cli(fx, "diff", other.metadata.name, "-f", one)).code, 2);
    } finally {
      await fx.cleanup();
    }
  },
);

libvirtTest(
  "apply reboot-class changes: foundry's VM redefined (same UUID, own metadata kept), an adopted VM's definition patched",
  async () => {
    const fx = await foundryFixture();
    try {
      const vm = testVm(fx, { name: h3Name() });
      const name = vm.metadata.name;
      await createVm(fx.lv, vm, { config: fx.config });
      const d = await fx.lv.domainLookupByName(name);
      const before = await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE);
      const desired = structuredClone(vm);
      desired.spec.networkInterfaces[0]!.bridge = fx.bridges[1];
      desired.spec.cpu = { sockets: 1, cores: 2, threads: 1 };
      const { plan, result } = await apply(fx, desired);
      assert.deepEqual(plan.changes.map((c) => c.class), ["reboot", "reboot"]);
      assert.match(result.notes.join("\n"), /in effect at the next boot/);
      const after = await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE);
      const uuid = (xml: string) => /<uuid>(.*)<\/uuid>/.exec(xml)?.[1];
      assert.equal(uuid(after), uuid(before));
      assert.match(after, /<topology sockets='1' dies='1' cores='2' threads='1'\/>/);
      const mac0 = /<mac address='([^']+)'/.exec(before)![1]!;
      assert.match(
        after,
        new RegExp(`<mac address='${mac0}'/>\\s*<source bridge='${fx.bridges[1]}'/>`),
      );
      assert.match(after, /foundrystatus/, "the status record is kept");
      const stored = parseStoredDomainMetadata(after)!;
      assert.ok(stored.volumes?.length, "the volume record is kept");
      assert.deepEqual(stored.vm.spec.cpu, desired.spec.cpu);
      // The running domain is as it was until it restarts.
      assert.match(
        await fx.lv.domainGetXmlDesc(d),
        new RegExp(`<mac address='${mac0}'/>\\s*<source bridge='${fx.bridges[0]}'/>`),
      );
      assert.equal((await apply(fx, desired)).plan.action, "unchanged");

      // Adopted: the bridge is patched into the domain's own definition; a recreate is forbidden.
      const adopted = structuredClone(desired);
      adopted.metadata.annotations = { "foundry.cofront.xyz/adopted": "true" };
      await apply(fx, adopted);
      const back = structuredClone(adopted);
      back.spec.networkInterfaces[0]!.bridge = fx.bridges[0];
      assert.equal((await apply(fx, back)).result.done.length, 1);
      assert.match(
        await fx.lv.domainGetXmlDesc(d, DomainXmlFlags.INACTIVE),
        new RegExp(`<mac address='${mac0}'/>\\s*<source bridge='${fx.bridges[0]}'/>`),
      );
      const image = structuredClone(back);
      image.spec.bootDisk.image = "other.qcow2";
      const refused = planVm(image, await readCurrentVm(fx.lv, name), { recreate: true });
      assert.equal(refused.changes[0]?.class, "forbidden");
      assert.match(refused.changes[0]!.reason!, /foundry did not create this VM's disks/);
    } finally {
      await fx.cleanup();
    }
  },
);
