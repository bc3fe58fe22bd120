#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env --allow-run=virsh,openssl,cat,pgrep --allow-sys=loadavg
/**
 * `deno task bench:storage`: throughput of `foundry image import` (importImage: format checks, the
 * upload stream, SHA-256 on the way, checksum sidecar, pool refresh) for a 1 GiB image, next to
 * `virsh vol-upload` of the same file measured in the same run, rounds interleaved so both see the
 * same machine load. Also prints our bare upload (no hashing) and `virsh vol-upload` with
 * `openssl dgst -sha256` run in parallel (the fastest way for virsh users to get the same integrity
 * record; coreutils' sha256sum is slower), so the cost of the checksum is visible.
 *
 * The image is 1 GiB of random data with an MBR boot signature (incompressible, like a real image's
 * used blocks), read from the page cache. Uses a throwaway dir pool under a temporary directory.
 *
 * Usage: deno task bench:storage [ROUNDS] [URI]
 * @module
 */
import { importImage } from "../lib/foundry/images.ts";
import { Libvirt } from "../lib/libvirt/mod.ts";

const SIZE = 2 ** 30;
const TARGET = 0.8;
const rounds = Number(Deno.args[0] ?? 3);
const uri = Deno.args[1] ?? "qemu:///system";

async function run(cmd: string, args: string[]): Promise<void> {
  const r = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(r.stderr)}`);
  }
}

async function makeImage(path: string): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  const chunk = new Uint8Array(4 * 2 ** 20);
  for (let off = 0; off < SIZE; off += chunk.length) {
    for (let i = 0; i < chunk.length; i += 65536) {
      crypto.getRandomValues(chunk.subarray(i, i + 65536));
    }
    if (off === 0) {
      chunk[510] = 0x55;
      chunk[511] = 0xaa;
    }
    await f.write(chunk);
  }
  f.close();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const mib = (secs: number) => SIZE / 2 ** 20 / secs;
const IMPORT = "foundry image import";
const VIRSH = "virsh vol-upload";
const VIRSH_SHA = "virsh vol-upload + openssl sha256";
const TICK = 100; // USER_HZ: /proc/*/stat counts CPU time in 1/100 s on Linux

/** CPU seconds (user + system) of a process from /proc, or NaN when unknown. */
async function processCpu(pid: number | undefined, children = false): Promise<number> {
  if (pid === undefined) return NaN;
  try {
    // Deno reads /proc/PID only with --allow-all; cat needs nothing more than --allow-run.
    const out = await new Deno.Command("cat", { args: [`/proc/${pid}/stat`], stdout: "piped" })
      .output();
    const stat = new TextDecoder().decode(out.stdout);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
    // Fields 14-17 of stat (utime, stime, cutime, cstime) are 11-14 after the name.
    return (f[11]! + f[12]! + (children ? f[13]! + f[14]! : 0)) / TICK;
  } catch {
    return NaN;
  }
}

/** This process and its waited-for children (virsh, openssl). */
const clientCpu = () => processCpu(Deno.pid, true);

async function findDaemon(): Promise<number | undefined> {
  for (const name of ["libvirtd", "virtstoraged"]) {
    const r = await new Deno.Command("pgrep", { args: ["-x", name], stdout: "piped" }).output();
    const pid = Number(new TextDecoder().decode(r.stdout).trim().split("\n")[0]);
    if (r.code === 0 && pid > 0) return pid;
  }
  return undefined;
}

const work = await Deno.makeTempDir({ prefix: "foundry-bench-storage-" });
const poolName = `bench-storage-${crypto.randomUUID().slice(0, 8)}`;
const lv = await Libvirt.connect(uri);
const pool = await lv.storagePoolDefineXml(
  `<pool type='dir'><name>${poolName}</name><target><path>${work}/pool</path></target></pool>`,
);
try {
  await lv.storagePoolBuild(pool);
  await lv.storagePoolCreate(pool);
  const src = `${work}/bench.raw`;
  await makeImage(src);
  await run("cat", [src]); // into the page cache, for every contender alike

  const times: Record<string, number[]> = {};
  const cpu: Record<string, { client: number[]; daemon: number[] }> = {};
  const daemonPid = await findDaemon();
  const measure = async (name: string, fn: () => Promise<unknown>) => {
    const [c0, d0] = [await clientCpu(), await processCpu(daemonPid)];
    const t = performance.now();
    await fn();
    const secs = (performance.now() - t) / 1000;
    const [c1, d1] = [await clientCpu(), await processCpu(daemonPid)];
    (times[name] ??= []).push(secs);
    const c = (cpu[name] ??= { client: [], daemon: [] });
    c.client.push(c1 - c0);
    c.daemon.push(d1 - d0);
    await dropAll();
  };
  const rawVolXml = (name: string) =>
    `<volume><name>${name}</name><capacity unit='bytes'>${SIZE}</capacity>` +
    `<allocation unit='bytes'>0</allocation><target><format type='raw'/></target></volume>`;
  const dropAll = async () => {
    for (const v of await lv.storagePoolListAllVolumes(pool)) await lv.storageVolDelete(v);
  };

  for (let r = 0; r < rounds; r++) {
    // foundry image import, end to end.
    await measure(IMPORT, () => importImage(lv, poolName, src, "bench.raw"));

    // virsh vol-upload into a volume made beforehand (creation not timed: it favours virsh).
    await lv.storageVolCreateXml(pool, rawVolXml("virsh.raw"));
    await measure(
      VIRSH,
      () => run("virsh", ["-q", "-c", uri, "vol-upload", "--pool", poolName, "virsh.raw", src]),
    );

    // Our client's bare upload stream, no checks and no hashing.
    const vol = await lv.storageVolCreateXml(pool, rawVolXml("bare.raw"));
    await measure("our upload, no hashing", async () => {
      const file = await Deno.open(src);
      await lv.storageVolUpload(
        vol,
        (async function* () {
          const buf = new Uint8Array(4 * 2 ** 20);
          while (true) {
            const n = await file.read(buf);
            if (n === null) return;
            yield buf.subarray(0, n);
          }
        })(),
      );
      file.close();
    });

    // virsh plus a checksum, the integrity record foundry keeps.
    await lv.storageVolCreateXml(pool, rawVolXml("virsh2.raw"));
    await measure(VIRSH_SHA, () =>
      Promise.all([
        run("virsh", ["-q", "-c", uri, "vol-upload", "--pool", poolName, "virsh2.raw", src]),
        run("openssl", ["dgst", "-sha256", src]),
      ]));
  }

  const result: Record<string, unknown> = {
    sizeBytes: SIZE,
    rounds,
    cpus: navigator.hardwareConcurrency,
    loadAverage: Deno.loadavg(),
  };
  console.log(
    `1 GiB, ${rounds} interleaved rounds, ${navigator.hardwareConcurrency} CPUs, load average ` +
      `${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
  );
  for (const [name, ts] of Object.entries(times)) {
    const m = median(ts);
    const c = cpu[name]!;
    result[name] = {
      medianSeconds: Number(m.toFixed(3)),
      MiBps: Math.round(mib(m)),
      runsMiBps: ts.map((s) => Math.round(mib(s))),
      clientCpuSeconds: Number(median(c.client).toFixed(2)),
      daemonCpuSeconds: Number(median(c.daemon).toFixed(2)),
    };
    console.log(
      `${name.padEnd(34)} ${Math.round(mib(m)).toString().padStart(5)} MiB/s  ` +
        `(runs: ${ts.map((s) => Math.round(mib(s))).join(", ")})  CPU s/GiB: client ` +
        `${median(c.client).toFixed(2)}, libvirtd ${median(c.daemon).toFixed(2)}`,
    );
  }
  const ratio = median(times[VIRSH]!) / median(times[IMPORT]!);
  const ratioSum = median(times[VIRSH_SHA]!) /
    median(times[IMPORT]!);
  console.log(
    `foundry image import / virsh vol-upload: ${(ratio * 100).toFixed(0)} % ` +
      `(target ${TARGET * 100} %: ${ratio >= TARGET ? "met" : "NOT met"}); ` +
      `vs virsh vol-upload with openssl dgst -sha256 in parallel: ${(ratioSum * 100).toFixed(0)} %`,
  );
  result.ratio = Number(ratio.toFixed(3));
  result.ratioWithSha256 = Number(ratioSum.toFixed(3));
  result.targetMet = ratio >= TARGET;
  console.log(JSON.stringify(result));
} finally {
  try {
    for (const v of await lv.storagePoolListAllVolumes(pool)) await lv.storageVolDelete(v);
    await lv.storagePoolDestroy(pool);
  } catch { /* not started */ }
  await lv.storagePoolUndefine(pool).catch(() => {});
  await lv.close();
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
