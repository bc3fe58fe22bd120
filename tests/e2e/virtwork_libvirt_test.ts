/**
 * Acceptance of issue 12: virtwork's five workloads run for real in TCG guests on the real
 * libvirtd through the libvirt backend, each reports a figure greater than zero, the guest agent
 * confirms the load (the process runs, fio's files are on the data disk, pgbench's tables exist),
 * and cleanup by run id leaves no domain, volume or NVRAM file.
 *
 * Six guests (cpu, memory, disk, database, network server and client), one vCPU and 1 GiB each,
 * from the offline test image (tasks/build_test_image.ts carries the workloads' packages), on an
 * isolated bridge with no host address: the iperf3 client reaches its server guest to guest only,
 * and the test looks into guests through the agent alone.
 *
 * The run goes through `virtwork run --target libvirt` when the CLI has that target, else through
 * the library (plan, backend) the CLI uses; the test prints which.
 */
import assert from "node:assert/strict";
import { buildTestImage } from "../../tasks/build_test_image.ts";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { DEFAULT_CONFIG, type FoundryConfig } from "../../lib/foundry/config.ts";
import { ensureDirPool } from "../../lib/foundry/pools.ts";
import { deleteImage, importImage } from "../../lib/foundry/images.ts";
import { guestExec } from "../../lib/foundry/agent.ts";
import { openLibvirtBackend } from "../../lib/virtwork/libvirt/mod.ts";
import { readAgentSample } from "../../lib/virtwork/libvirt/results.ts";
import type { BackendEvent } from "../../lib/virtwork/backend.ts";
import type { ResultSample } from "../../lib/virtwork/results.ts";
import { buildNeutralPlan } from "../../lib/virtwork/plan.ts";
import {
  defaultRegistry,
  withDataDiskSize,
  withResultInterval,
} from "../../lib/workloads/registry.ts";
import { libvirtSkipReason, uniqueName } from "../libvirt/_env.ts";
import { firstMissing, requireRoot, STRICT, testNeeding } from "../_require.ts";
import { nvramLeft, sweepDomains, volumesIn } from "../virtwork/libvirt_fixture.ts";

const missing = firstMissing(libvirtSkipReason, requireRoot("building the image and a bridge"));

/** Seconds between two samples in the guests. */
const INTERVAL = 15;
const ALL_WORKLOADS = ["cpu", "memory", "disk", "database", "network"] as const;
/**
 * The workloads of the run: all five. Locally, `VIRTWORK_E2E_WORKLOADS=database,network` narrows
 * them (to follow one through on a busy machine); in CI the variable is ignored.
 */
const WORKLOADS: readonly string[] = STRICT ? ALL_WORKLOADS : (() => {
  const only = Deno.env.get("VIRTWORK_E2E_WORKLOADS")?.split(",").filter((w) => w !== "");
  return only?.length ? ALL_WORKLOADS.filter((w) => only.includes(w)) : ALL_WORKLOADS;
})();
/** Longest the guests may take to boot and run cloud-init, all six at once on two cores. */
const READY_TIMEOUT_MS = 600_000;
/** Longest the test waits for every workload's first figure after the guests are ready. */
const RESULTS_TIMEOUT_MS = 300_000;

async function sh(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

testNeeding(missing, {
  name: "e2e: virtwork on libvirt runs all five workloads in guests and reports their figures",
  async fn() {
    const t0 = performance.now();
    const elapsed = () => `${Math.round((performance.now() - t0) / 1000)} s`;
    const image = await buildTestImage({ log: (l) => console.log(`  image: ${l}`) });
    console.log(
      `  image ${image.path} (${image.cached ? "cached" : `built in ${image.seconds} s`})`,
    );
    const lv = await Libvirt.connect();
    const tag = uniqueName("vwe2e").slice(6);
    const dir = await Deno.makeTempDir({ prefix: "virtwork-e2e-" });
    await Deno.chmod(dir, 0o755);
    const config: FoundryConfig = {
      ...DEFAULT_CONFIG,
      domainType: "qemu",
      destroyTimeoutSeconds: 1,
      imagesPool: `vwe2e-img-${tag}`,
      imagesPath: `${dir}/images`,
      vmsPool: `vwe2e-vms-${tag}`,
      vmsPath: `${dir}/vms`,
    };
    const bridge = `vwe2e${tag.slice(0, 6)}`;
    const imageName = "debian-12-virtwork.qcow2";
    const runId = `e2e-${tag}`;
    let vmNames: string[] = [];
    const backend = await openLibvirtBackend({
      uri: "qemu:///system",
      image: imageName,
      imagePool: config.imagesPool,
      bridge,
      subnet: "198.19.0.0/24",
      domainType: "qemu",
      config,
      bootDiskGB: 4,
    });
    try {
      await sh("ip", ["link", "add", bridge, "type", "bridge"]);
      await sh("ip", ["link", "set", bridge, "up"]); // no address, no uplink: guest to guest only
      await ensureDirPool(lv, config.imagesPool, config.imagesPath);
      await importImage(lv, config.imagesPool, image.path, imageName);

      // The run, as `virtwork run --target libvirt` does it: plan, peers, create, wait, results.
      console.log("  run: through the library (lib/virtwork/plan.ts + the libvirt backend)");
      const registry = defaultRegistry();
      const workloads = WORKLOADS.map((w) =>
        registry.get(
          w,
          { enabled: true, vmCount: 1, cpuCores: 1, memory: "1Gi" },
          withDataDiskSize("1Gi"),
          withResultInterval(INTERVAL),
        )
      );
      const plan = await buildNeutralPlan(
        workloads,
        { runId, os: backend.os },
        (skeleton) => backend.peerAddresses(skeleton),
      );
      vmNames = plan.vms.map((v) => v.name);
      assert.equal(vmNames.length, WORKLOADS.length + (WORKLOADS.includes("network") ? 1 : 0));
      const events: BackendEvent[] = [];
      const onEvent = (e: BackendEvent) => {
        events.push(e);
        if ("vm" in e && e.type !== "result") {
          console.log(`  ${elapsed()} ${e.type} ${e.vm} ${"phase" in e ? e.phase : ""}`);
        }
      };
      const made = await backend.create(plan, { onEvent });
      assert.deepEqual(made.map((o) => o.outcome), vmNames.map(() => "created"));
      const pending = await backend.waitReady(vmNames, READY_TIMEOUT_MS, { onEvent });
      assert.deepEqual(pending, [], `not ready in time: ${pending.join(", ")}`);
      const failed = events.filter((e) => e.type === "failed");
      assert.deepEqual(failed, []);
      for (const name of vmNames) {
        const phases = events.filter((e) => e.type === "phase" && e.vm === name)
          .map((e) => (e as { phase: string }).phase);
        assert.deepEqual(phases, [
          "DomainDefined",
          "DomainRunning",
          "AgentConnected",
          "CloudInitDone",
        ]);
      }

      // Figures: collected until every workload has one, within a bound.
      const latest = new Map<string, ResultSample>();
      const sources = new Map<string, string>();
      const workloadOf = new Map(plan.vms.map((v) => [v.name, v.workload]));
      const figureOf = (w: string) =>
        [...latest].filter(([vm]) => workloadOf.get(vm) === w).flatMap(([, s]) =>
          Object.values(s.metrics)
        ).some((v) => v > 0);
      const until = performance.now() + RESULTS_TIMEOUT_MS;
      while (!WORKLOADS.every(figureOf) && performance.now() < until) {
        const got = await backend.collectResults(vmNames, 2 * INTERVAL * 1000);
        for (const [vm, s] of got) {
          latest.set(vm, s);
          sources.set(vm, backend.resultSources.get(vm) ?? "?");
        }
        console.log(`  ${elapsed()} results: ${JSON.stringify(Object.fromEntries(latest))}`);
      }
      console.log(`  result sources: ${JSON.stringify(Object.fromEntries(sources))}`);
      for (const [vm, s] of latest) assert.equal(s.error, undefined, `${vm}: ${s.error}`);
      for (const w of WORKLOADS) assert.ok(figureOf(w), `workload ${w} reported no figure > 0`);

      // The load, seen through the guest agent.
      const domains = new Map<string, Awaited<ReturnType<typeof lv.domainLookupByName>>>();
      for (const n of vmNames) domains.set(n, await lv.domainLookupByName(n));
      const vmOf = (w: string, role = "worker") =>
        plan.vms.find((v) => v.workload === w && v.role === role)!.name;
      const run = async (vm: string, script: string) => {
        const r = await guestExec(lv, domains.get(vm)!, "/bin/sh", ["-c", script], 60_000);
        return { ...r, stdout: r.stdout.trim() };
      };
      const ok = async (vm: string, script: string) => {
        const r = await run(vm, script);
        assert.equal(r.exitCode, 0, `${vm}: ${script}: ${r.stdout} ${r.stderr}`);
        return r.stdout;
      };
      const has = (w: string) => WORKLOADS.includes(w);
      if (has("cpu")) await ok(vmOf("cpu"), "pgrep -x stress-ng");
      if (has("memory")) await ok(vmOf("memory"), "pgrep -x stress-ng");
      if (has("network")) await ok(vmOf("network", "server"), "pgrep -x iperf3");
      if (has("disk")) {
        await ok(vmOf("disk"), "systemctl is-active virtwork-disk.service");
        // fio's files are on the data disk, which is the disk with the workload's serial.
        const disk = vmOf("disk");
        const mount = plan.vms.find((v) => v.name === disk)!.dataDisks[0]!;
        const source = await ok(disk, `findmnt -n -o SOURCE ${mount.mountPath}`);
        const byId = await ok(disk, `readlink -f /dev/disk/by-id/virtio-${mount.serial}`);
        assert.equal(source, byId);
        const files = await ok(
          disk,
          `find ${mount.mountPath} -maxdepth 2 -type f -size +0 | head -n 5`,
        );
        assert.notEqual(files, "", "no fio file on the data disk");
      }
      if (has("database")) {
        await ok(vmOf("database"), "pgrep -x postgres");
        const accounts = await ok(
          vmOf("database"),
          `runuser -u postgres -- psql -Atqc "select count(*) from pgbench_accounts" pgbench`,
        );
        assert.ok(Number(accounts) > 0, `pgbench_accounts has ${accounts} rows`);
      }

      // The other channel too: the guest agent's read of the results file's tail gives the
      // same kind of figures, whichever channel the collection above used.
      for (const w of WORKLOADS) {
        const vm = w === "network" ? vmOf(w, "client") : vmOf(w);
        const s = await readAgentSample(lv, domains.get(vm)!);
        assert.ok(s, `${vm}: no result line in its results file`);
        assert.equal(s.workload, w);
        assert.ok(Object.values(s.metrics).some((v) => v > 0), `${vm}: ${JSON.stringify(s)}`);
      }

      // Cleanup by run id: nothing of the run is left.
      const cleaned = await backend.cleanup(runId);
      assert.deepEqual(cleaned.errors, []);
      assert.deepEqual(cleaned.runIds, [runId]);
      assert.equal(cleaned.deleted.domain, vmNames.length);
      const left = (await lv.listAllDomains()).map((d) => d.name).filter((n) =>
        vmNames.includes(n)
      );
      assert.deepEqual(left, []);
      assert.deepEqual(await volumesIn(lv, config.vmsPool), []);
      assert.deepEqual(await nvramLeft(vmNames), []);
      assert.deepEqual((await backend.cleanup(runId)).deleted, {});
      console.log(`  done in ${elapsed()}`);
    } finally {
      await backend.close().catch(() => {});
      await sweepDomains(lv, config.vmsPool);
      for (const n of vmNames) {
        await Deno.remove(`/var/lib/libvirt/qemu/nvram/${n}_VARS.fd`).catch(() => {});
      }
      await deleteImage(lv, config.imagesPool, imageName).catch(() => {});
      for (const p of [config.vmsPool, config.imagesPool]) {
        try {
          const pool = await lv.storagePoolLookupByName(p);
          for (const v of await lv.storagePoolListAllVolumes(pool)) await lv.storageVolDelete(v);
          await lv.storagePoolDestroy(pool).catch(() => {});
          await lv.storagePoolUndefine(pool);
        } catch { /* gone */ }
      }
      await sh("ip", ["link", "del", bridge]).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await lv.close();
    }
  },
});
