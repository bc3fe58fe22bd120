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
 * The run and the cleanup go through the CLI (`virtwork run --target libvirt ... --results-after
 * --report`, `virtwork cleanup --target libvirt --run-id`), with foundry's configuration (TCG, the
 * test's own pools) in a file named by FOUNDRY_CONFIG. The figures are the report's; the guest
 * agent then reads each results file too, so both channels (console during the run, agent
 * here) are exercised.
 */
import assert from "node:assert/strict";
import { buildTestImage } from "../../tasks/build_test_image.ts";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { DEFAULT_CONFIG, type FoundryConfig } from "../../lib/foundry/config.ts";
import { ensureDirPool } from "../../lib/foundry/pools.ts";
import { deleteImage, importImage } from "../../lib/foundry/images.ts";
import { guestExec } from "../../lib/foundry/agent.ts";
import { readAgentSample } from "../../lib/virtwork/libvirt/results.ts";
import { DISK_MOUNT, DISK_SERIAL } from "../../lib/workloads/disk.ts";
import { libvirtSkipReason, uniqueName } from "../libvirt/_env.ts";
import { firstMissing, requireRoot, STRICT, testNeeding } from "../_require.ts";
import { nvramLeft, sweepDomains, volumesIn } from "../virtwork/libvirt_fixture.ts";
import { withGuestSlot } from "./_guest_slot.ts";

const missing = firstMissing(libvirtSkipReason, requireRoot("building the image and a bridge"));

/** The command under test. */
const CLI = new URL("../../cli/virtwork.ts", import.meta.url).pathname;
/** The run's subnet, on a bridge of the test's own with no host address. */
const SUBNET = "198.19.0.0/24";
/** Data disks of the workloads that have one, as the guest checks look for them. */
const DATA_DISKS: Record<string, { serial: string; mountPath: string }[]> = {
  disk: [{ serial: DISK_SERIAL, mountPath: DISK_MOUNT }],
};
const ALL_WORKLOADS = ["cpu", "memory", "disk", "database", "network"] as const;
/**
 * The workloads of the run: all five. Locally, `VIRTWORK_E2E_WORKLOADS=database,network` narrows
 * them (to follow one through on a busy machine); in CI the variable is ignored.
 */
const WORKLOADS: readonly string[] = STRICT ? ALL_WORKLOADS : (() => {
  const only = Deno.env.get("VIRTWORK_E2E_WORKLOADS")?.split(",").filter((w) => w !== "");
  return only?.length ? ALL_WORKLOADS.filter((w) => only.includes(w)) : ALL_WORKLOADS;
})();
/**
 * Longest the guests may take to boot and run cloud-init, all six at once on two cores: measured
 * at 460 to 600 s (TCG, UEFI) on an earlier machine; in CI on 2026-12-02 (a slower machine, the
 * other test worker busy with CPU-bound tests) four were ready at 773 to 878 s and two not within
 * 900 s, their agents up at 663 and 741 s. Six TCG boots are about 1200 CPU-seconds on 2 cores.
 */
const READY_TIMEOUT_S = 1500;
/**
 * `--results-after`: the window starts when the last guest is ready, so every workload but the
 * database (its cluster and pgbench tables come first) has been writing a sample every 10 s by
 * then; 45 s holds several. A workload without a figure in the report is then waited for through
 * the agent (LATE_WAIT_S), so a short window asks nothing less of any workload.
 */
const RESULTS_AFTER_S = 45;
/** How much longer a workload without a figure in the report may take to write its first. */
const LATE_WAIT_S = 300;

async function sh(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

testNeeding(missing, {
  name: "e2e: virtwork on libvirt runs all five workloads in guests and reports their figures",
  fn: () =>
    withGuestSlot("virtwork on libvirt", async () => {
      const t0 = performance.now();
      const elapsed = () => `${Math.round((performance.now() - t0) / 1000)} s`;
      // Wall time per stage, with the host's load, printed at the end (the host is shared).
      const stages: [string, number][] = [];
      let mark = t0;
      const stage = (what: string) => {
        const now = performance.now();
        stages.push([what, (now - mark) / 1000]);
        mark = now;
      };
      const load0 = Deno.loadavg();
      const image = await buildTestImage({ log: (l) => console.log(`  image: ${l}`) });
      console.log(
        `  image ${image.path} (${image.cached ? "cached" : `built in ${image.seconds} s`})`,
      );
      stage("image");
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
      let vmNames: string[] = [];
      let runId = "";
      try {
        await sh("ip", ["link", "add", bridge, "type", "bridge"]);
        await sh("ip", ["link", "set", bridge, "up"]); // no address, no uplink: guest to guest only
        await ensureDirPool(lv, config.imagesPool, config.imagesPath);
        await importImage(lv, config.imagesPool, image.path, imageName);
        stage("bridge, pools, image import");

        // The run, through the CLI: foundry's configuration (TCG, the test's pools) by file.
        const foundryConfig = `${dir}/foundry.yaml`;
        await Deno.writeTextFile(
          foundryConfig,
          JSON.stringify({
            domainType: "qemu",
            destroyTimeoutSeconds: 1,
            storage: {
              imagesPool: config.imagesPool,
              imagesPath: config.imagesPath,
              vmsPool: config.vmsPool,
              vmsPath: config.vmsPath,
            },
          }),
        );
        const virtwork = async (args: string[]) => {
          const out = await new Deno.Command(Deno.execPath(), {
            args: ["run", "-A", CLI, "--audit-db", `${dir}/audit.db`, ...args],
            env: { FOUNDRY_CONFIG: foundryConfig, NO_COLOR: "1" },
            stdout: "piped",
            stderr: "piped",
          }).output();
          const dec = new TextDecoder();
          const r = {
            code: out.code,
            stdout: dec.decode(out.stdout),
            stderr: dec.decode(out.stderr),
          };
          console.log(`  $ virtwork ${args.join(" ")}\n  exit ${r.code}`);
          console.log(indent(r.stderr.slice(-6000)));
          console.log(indent(r.stdout.slice(-6000)));
          return r;
        };
        const report = `${dir}/report.json`;
        const run = await virtwork([
          "run",
          "--target",
          "libvirt",
          "--connect",
          "qemu:///system",
          "--image",
          imageName,
          "--image-pool",
          config.imagesPool,
          "--bridge",
          bridge,
          "--subnet",
          SUBNET,
          "--os",
          "debian",
          "--workloads",
          WORKLOADS.join(","),
          "--vm-count",
          "1",
          "--cpu-cores",
          "1",
          "--memory",
          "1Gi",
          "--disk-size",
          "1Gi",
          "--timeout",
          String(READY_TIMEOUT_S),
          "--results-after",
          String(RESULTS_AFTER_S),
          "--report",
          report,
        ]);
        const doc = JSON.parse(await Deno.readTextFile(report)) as {
          runId: string;
          vms: {
            name: string;
            workload: string;
            role: string;
            ready: boolean;
            phases: Record<string, number>;
            results: Record<string, number>;
            resultError?: string;
          }[];
        };
        runId = doc.runId;
        vmNames = doc.vms.map((v) => v.name);
        console.log(`  run ${runId} took ${elapsed()}`);
        stage(`virtwork run (create, ready, ${RESULTS_AFTER_S} s of results)`);
        for (const v of doc.vms) {
          const p = v.phases;
          const s = (a: string, b: string) =>
            p[a] !== undefined && p[b] !== undefined ? ((p[b]! - p[a]!) / 1000).toFixed(0) : "?";
          console.log(
            `  ${v.name}: defined→running ${s("DomainDefined", "DomainRunning")} s, ` +
              `→agent ${s("DomainRunning", "AgentConnected")} s, ` +
              `→cloud-init done ${s("AgentConnected", "CloudInitDone")} s`,
          );
        }
        assert.equal(vmNames.length, WORKLOADS.length + (WORKLOADS.includes("network") ? 1 : 0));
        for (const v of doc.vms) {
          assert.ok(v.ready, `${v.name} not ready`);
          for (
            const phase of ["DomainDefined", "DomainRunning", "AgentConnected", "CloudInitDone"]
          ) {
            assert.ok(
              v.phases[phase] !== undefined,
              `${v.name}: no ${phase} in ${Object.keys(v.phases)}`,
            );
          }
          assert.equal(v.resultError, undefined, `${v.name}: ${v.resultError}`);
        }
        // A workload's first figure can come later than --results-after when CI loads the host
        // (PostgreSQL's cluster and pgbench tables are built first): such a workload is named here
        // and its figure must then appear in the guest's results file, read through the agent,
        // within LATE_WAIT_S. No workload may be without a figure > 0 at the end.
        const late = WORKLOADS.filter((w) =>
          !doc.vms.filter((v) => v.workload === w).flatMap((v) => Object.values(v.results))
            .some((x) => x > 0)
        );
        if (late.length) {
          console.log(`  no figure in the report within ${RESULTS_AFTER_S} s: ${late.join(", ")}`);
        }
        assert.ok(run.code === 0 || late.length > 0, "virtwork run failed");
        const plan = {
          vms: doc.vms.map((v) => ({ ...v, dataDisks: DATA_DISKS[v.workload] ?? [] })),
        };
        for (const w of late) {
          const vm = plan.vms.find((v) => v.workload === w && v.role !== "server")!.name;
          const d = await lv.domainLookupByName(vm);
          const until = performance.now() + LATE_WAIT_S * 1000;
          let figure = 0;
          while (performance.now() < until) {
            const s = await readAgentSample(lv, d).catch(() => undefined);
            figure = Math.max(0, ...Object.values(s?.metrics ?? {}));
            if (figure > 0) break;
            await new Promise((r) => setTimeout(r, 10_000));
          }
          assert.ok(
            figure > 0,
            `workload ${w} reported no figure > 0, ${LATE_WAIT_S} s after the run`,
          );
          console.log(`  ${w}: first figure ${figure} through the agent at ${elapsed()}`);
        }

        stage("late figures through the agent");
        // The load, seen through the guest agent.
        const domains = new Map<string, Awaited<ReturnType<typeof lv.domainLookupByName>>>();
        for (const n of vmNames) domains.set(n, await lv.domainLookupByName(n));
        const vmOf = (w: string, role = "worker") =>
          plan.vms.find((v) => v.workload === w && v.role === role)!.name;
        const exec = async (vm: string, script: string) => {
          const r = await guestExec(lv, domains.get(vm)!, "/bin/sh", ["-c", script], 60_000);
          return { ...r, stdout: r.stdout.trim() };
        };
        const ok = async (vm: string, script: string) => {
          const r = await exec(vm, script);
          assert.equal(r.exitCode, 0, `${vm}: ${script}: ${r.stdout} ${r.stderr}`);
          return r.stdout;
        };
        const has = (w: string) => WORKLOADS.includes(w);
        // stress-ng runs in time slices with a short gap between them (CI caught one): the load
        // runs when some look within 20 s finds it.
        const running = (p: string) =>
          `for i in $(seq 1 20); do pgrep -x ${p} >/dev/null && exit 0; sleep 1; done; exit 1`;
        if (has("cpu")) await ok(vmOf("cpu"), running("stress-ng"));
        if (has("memory")) await ok(vmOf("memory"), running("stress-ng"));
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
        // same kind of figures, whichever channel the collection above used. A figure > 0 per
        // workload is asserted above; this latest slice may be 0 (a memory slice in which a
        // starved TCG guest finished no stress-ng pass reported bogo_ops_per_s 0 in one CI run).
        for (const w of WORKLOADS) {
          const vm = w === "network" ? vmOf(w, "client") : vmOf(w);
          const s = await readAgentSample(lv, domains.get(vm)!);
          assert.ok(s, `${vm}: no result line in its results file`);
          assert.equal(s.workload, w);
          const figures = Object.values(s.metrics);
          assert.ok(figures.length > 0, `${vm}: no figures in ${JSON.stringify(s)}`);
          assert.ok(
            figures.every((v) => Number.isFinite(v) && v >= 0),
            `${vm}: ${JSON.stringify(s)}`,
          );
        }

        stage("checks through the agent");
        // Cleanup by run id, through the CLI: nothing of the run is left.
        const cleanup = await virtwork([
          "cleanup",
          "--target",
          "libvirt",
          "--connect",
          "qemu:///system",
          "--run-id",
          runId,
        ]);
        assert.equal(cleanup.code, 0, "virtwork cleanup failed");
        const left = (await lv.listAllDomains()).map((d) => d.name).filter((n) =>
          vmNames.includes(n)
        );
        assert.deepEqual(left, []);
        assert.deepEqual(await volumesIn(lv, config.vmsPool), []);
        assert.deepEqual(await nvramLeft(vmNames), []);
        stage("cleanup");
        console.log(`  done in ${elapsed()}`);
        for (const [what, sec] of stages) console.log(`  stage ${what}: ${sec.toFixed(0)} s`);
        const load1 = Deno.loadavg();
        console.log(
          `  host load average ${load0.map((x) => x.toFixed(1)).join(" ")} at the start, ` +
            `${load1.map((x) => x.toFixed(1)).join(" ")} at the end`,
        );
      } finally {
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
    }),
});

function indent(text: string): string {
  return text.trimEnd().split("\n").map((l) => `    ${l}`).join("\n");
}
