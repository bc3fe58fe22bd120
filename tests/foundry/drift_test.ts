/**
 * Drift on the real libvirtd: a VM foundry created is as foundry left it (`Drifted` False); then
 * changes made behind its back with virsh (running state, persistent definition, a redefined XML,
 * the stored spec itself) are reported with where they are, by `driftOf` and by `foundry get`.
 * OS-less TCG domains: no guest, so no balloon driver (a `virsh setmem --live` alone cannot be
 * seen; see lib/foundry/drift.ts), but vCPU hot-plug works.
 */
import assert from "node:assert/strict";
import { MetadataType, ModificationImpact } from "../../lib/libvirt/mod.ts";
import { driftOf, formatDrift } from "../../lib/foundry/drift.ts";
import { getVm } from "../../lib/foundry/inventory.ts";
import { METADATA_NAMESPACE, METADATA_PREFIX } from "../../lib/foundry/stored_metadata.ts";
import { createVm } from "../../lib/foundry/vm.ts";
import { main } from "../../cli/foundry.ts";
import { requireTool, testNeeding } from "../_require.ts";
import { libvirtSkipReason, uniqueName } from "../libvirt/_env.ts";
import { type FoundryFixture, foundryFixture, testVm, writeConfigFile } from "./_fixture.ts";

async function virsh(...args: string[]): Promise<string> {
  const out = await new Deno.Command("virsh", {
    args: ["-c", "qemu:///system", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`virsh ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return text;
}

/** Removes domain `name` (ours: an `h4` name) and leaves its volumes to the fixture's pool cleanup. */
async function removeDomain(fx: FoundryFixture, name: string): Promise<void> {
  const d = await fx.lv.domainLookupByName(name).catch(() => undefined);
  if (d === undefined) return;
  await fx.lv.domainDestroy(d).catch(() => {});
  await fx.lv.domainUndefine(d, 4 | 2).catch(() => {});
}

async function getJson(fx: FoundryFixture, cfg: string, name: string) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    ["--config", cfg, "--audit-db", `${fx.dir}/audit.db`, "get", name, "-o", "json"],
    { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) },
  );
  assert.equal(code, 0, err.join(""));
  return JSON.parse(out.join("")) as {
    status: { conditions: { type: string; status: string; message: string }[] };
  };
}

const drifted = (doc: Awaited<ReturnType<typeof getJson>>) =>
  doc.status.conditions.find((c) => c.type === "Drifted");

testNeeding([libvirtSkipReason, requireTool("virsh")], {
  name: "drift of a running VM: live and definition changes, and a hand-edited stored spec",
  async fn() {
    const fx = await foundryFixture();
    const name = uniqueName("h4vm");
    try {
      const cfg = await writeConfigFile(fx);
      await createVm(fx.lv, testVm(fx, { name }), { config: fx.config });
      const fresh = await driftOf(fx.lv, name);
      assert.deepEqual(fresh, { name, changes: [], specHashMatches: true });
      assert.equal(formatDrift(fresh), `${name}: no drift`);
      assert.equal(drifted(await getJson(fx, cfg, name))?.status, "False");

      // Behind foundry's back: a vCPU hot-plugged, memory and its maximum in the definition, a
      // NIC attached to the definition only.
      await virsh("setvcpus", name, "2", "--live");
      await virsh("setmem", name, "200M", "--config");
      await virsh("setmaxmem", name, "1G", "--config");
      await virsh(
        "attach-interface",
        name,
        "bridge",
        fx.bridges[1],
        "--mac",
        "52:54:00:4a:00:01",
        "--config",
      );
      const report = await driftOf(fx.lv, name);
      assert.equal(report.specHashMatches, true);
      assert.deepEqual(
        report.changes.map((c) => [c.path, c.stored, c.actual, c.where]),
        [
          ["spec.memoryGiB", 0.25, 200 / 1024, "config"],
          ["spec.resources.maxMemoryGiB", "0.25-0.5", 1, "config"],
          ["spec.networkInterfaces[52:54:00:4a:00:01]", undefined, {
            bridge: fx.bridges[1],
            mac: "52:54:00:4a:00:01",
          }, "config"],
          ["spec.vcpus", 1, 2, "live"],
        ],
      );
      assert.match(formatDrift(report), /^spec\.vcpus: 1 -> 2 \(live\)$/m);
      const condition = drifted(await getJson(fx, cfg, name));
      assert.equal(condition?.status, "True");
      assert.match(condition!.message, /spec\.vcpus \(live\)/);
      assert.match(condition!.message, /spec\.resources\.maxMemoryGiB \(config\)/);

      // The stored spec edited by hand (a label), its recorded hash left as it was.
      const d = await fx.lv.domainLookupByName(name);
      const element = await fx.lv.domainGetMetadata(d, MetadataType.ELEMENT, METADATA_NAMESPACE);
      assert.match(element, /specSha256="[0-9a-f]{64}"/);
      const edited = element.replace('"suite":"foundry"', '"suite":"edited"');
      assert.notEqual(edited, element);
      await fx.lv.domainSetMetadata(
        d,
        MetadataType.ELEMENT,
        edited,
        METADATA_PREFIX,
        METADATA_NAMESPACE,
        ModificationImpact.LIVE | ModificationImpact.CONFIG,
      );
      const meta = await driftOf(fx.lv, name);
      assert.equal(meta.specHashMatches, false);
      assert.deepEqual(meta.changes[0]?.path, "specSha256");
      assert.equal(meta.changes[0]?.where, "metadata");
      // The running domain's view (getVm) reports it too.
      const got = await getVm(fx.lv, name);
      assert.equal(got.drift.specHashMatches, false);
    } finally {
      await removeDomain(fx, name);
      await fx.cleanup();
    }
  },
});

testNeeding([libvirtSkipReason, requireTool("virsh")], {
  name: "drift of a stopped VM redefined from an edited XML (virsh define) is in its definition",
  async fn() {
    const fx = await foundryFixture();
    const name = uniqueName("h4vm");
    try {
      const cfg = await writeConfigFile(fx);
      await createVm(fx.lv, testVm(fx, { name }), { config: fx.config, noStart: true });
      assert.equal(drifted(await getJson(fx, cfg, name))?.status, "False");
      const xml = await virsh("dumpxml", "--inactive", name);
      // As `virsh edit` would: the second NIC on the other bridge, data disk vdc gone.
      const edited = xml
        .replace(`<source bridge='${fx.bridges[1]}'/>`, `<source bridge='${fx.bridges[0]}'/>`)
        .replace(
          /<disk type='volume' device='disk'>(?:(?!<\/disk>)[\s\S])*_data-vdc'[\s\S]*?<\/disk>/,
          "",
        );
      assert.notEqual(edited, xml);
      const file = `${fx.dir}/h4-edited.xml`;
      await Deno.writeTextFile(file, edited);
      await virsh("define", file);
      const report = await driftOf(fx.lv, name);
      assert.deepEqual(
        report.changes.map((c) => [c.path.replace(/\[[0-9a-f:]{17}\]/, "[MAC]"), c.where]),
        [
          ["spec.dataDisks[vdc]", "config"],
          ["spec.networkInterfaces[MAC].bridge", "config"],
        ],
      );
      assert.equal(report.changes[1]?.stored, fx.bridges[1]);
      assert.equal(report.changes[1]?.actual, fx.bridges[0]);
      assert.equal(drifted(await getJson(fx, cfg, name))?.status, "True");
    } finally {
      await removeDomain(fx, name);
      await fx.cleanup();
    }
  },
});

testNeeding([libvirtSkipReason, requireTool("virsh")], {
  name: "a VM created with CPU topology, NUMA and graphics is not drifted until virsh edits them",
  async fn() {
    const fx = await foundryFixture();
    const name = uniqueName("h4vm");
    try {
      const vm = testVm(fx, { name });
      vm.spec.resources = { maxVcpus: 2, maxMemoryGiB: 0.5 };
      vm.spec.cpu = { sockets: 1, cores: 2, threads: 1 };
      vm.spec.numa = [{ cpus: "0-1", memoryGiB: 0.25 }];
      vm.spec.graphics = { type: "vnc" };
      await createVm(fx.lv, vm, { config: fx.config, noStart: true });
      assert.deepEqual((await driftOf(fx.lv, name)).changes, []);
      const xml = await virsh("dumpxml", "--inactive", name);
      const edited = xml.replace(
        /<topology sockets='1'([^>]*) cores='2'/,
        "<topology sockets='2'$1 cores='1'",
      )
        .replace(
          /<graphics type='vnc'[^>]*>/,
          (g) => g.replace(/listen='[^']*'/, "listen='0.0.0.0'"),
        )
        .replace(
          /<listen type='address' address='[^']*'/,
          "<listen type='address' address='0.0.0.0'",
        );
      assert.notEqual(edited, xml);
      const file = `${fx.dir}/h4-topology.xml`;
      await Deno.writeTextFile(file, edited);
      await virsh("define", file);
      const report = await driftOf(fx.lv, name);
      assert.deepEqual(report.changes.map((c) => [c.path, c.stored, c.actual, c.where]), [
        ["spec.cpu.sockets", 1, 2, "config"],
        ["spec.cpu.cores", 2, 1, "config"],
        ["spec.graphics.listen", "127.0.0.1", "0.0.0.0", "config"],
      ]);
    } finally {
      await removeDomain(fx, name);
      await fx.cleanup();
    }
  },
});
