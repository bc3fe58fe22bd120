#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env --allow-run=virsh,sh,deno,foundry
/**
 * `deno task bench:cli`: whole-process times of `foundry` against virsh doing the same job, on the
 * local daemon, interleaved round by round (the side that goes first alternates), for:
 *
 * | figure             | foundry                         | virsh                                     |
 * | ------------------ | ------------------------------- | ----------------------------------------- |
 * | `--version`        | `foundry --version`             | `virsh --version`                         |
 * | `create --no-start`| `foundry create --no-start F`   | a shell script: `virsh vol-create` of the |
 * |                    |                                 | overlay and data disk, `cloud-localds`,   |
 * |                    |                                 | `vol-create-as` + `vol-upload` of the ISO,|
 * |                    |                                 | `define`, `autostart`                     |
 * | `list`             | `foundry list` (few VMs)        | `virsh list`                              |
 * | `get`              | `foundry get NAME`              | `virsh dominfo NAME`                      |
 * | `destroy`          | `foundry destroy NAME`          | `virsh undefine --nvram --remove-all-storage NAME` |
 * | `list --all`       | `foundry list --all`            | `virsh list --all`, with 300 and 1000 domains |
 * | `deno floor`       | `deno run` of an empty script   | `virsh --version`                         |
 *
 * `deno floor` is the Deno runtime's own start on this machine, with the installed command's
 * flags: no foundry code runs, so no foundry figure can go below it. It is measured in the same
 * run so that targets in milliseconds can be read against it.
 *
 * Prints one JSON line per figure: the medians of both sides' times, and the median of the
 * per-round ratios foundry/virsh. The virsh script defines the same domain XML and volumes foundry
 * makes (with the same names, in the same pool), from cloud-init files foundry would write.
 *
 * Everything it makes carries one run's prefix (`bcli-XXXXXX-`): its pools in a temporary
 * directory, a base image, a virtual network that is never started (its bridge name is what the
 * VMs name), the VMs, and the inactive domains (minimal XML, type qemu, no disks) that fill the
 * daemon up to each `--sizes` count. All of it is removed at the end, and on Ctrl-C.
 *
 * The foundry side runs, in this order: `FOUNDRY_BENCH_CMD` (a command line, split at spaces), the
 * `foundry` installed on PATH, else `deno run` of cli/foundry.ts with deno.json's task permissions.
 *
 * Flags: `--rounds N` (default 9), `--sizes 300,1000`, `--uri URI` (default qemu:///system).
 * Needs cloud-localds (Debian: cloud-image-utils).
 *
 * @module
 */
import denoConfig from "../deno.json" with { type: "json" };
import { Libvirt, UndefineFlags } from "../lib/libvirt/mod.ts";
import { ensureDirPool } from "../lib/foundry/pools.ts";
import { DEFAULT_CONFIG, type FoundryConfig } from "../lib/foundry/config.ts";
import { parseVirtualMachine } from "../lib/foundry/loader.ts";
import { cidataIsoFromVm, noCloudFilesFromVm } from "../lib/foundry/cloudinit.ts";
import { buildDomainXml } from "../lib/foundry/domain_xml.ts";
import { buildVolumeXml, volumePlan } from "../lib/foundry/storage_xml.ts";
import type { CreatedVolume } from "../lib/foundry/metadata.ts";
import type { VirtualMachine } from "../lib/foundry/types.ts";

/** Options of one bench run. */
export interface BenchOptions {
  /** Rounds per figure (each round times both sides once). */
  rounds: number;
  /** Domain counts for the `list --all` figures. */
  sizes: number[];
  /** libvirt URI of both sides. */
  uri: string;
  /** The foundry command line (program and leading arguments). */
  foundry: string[];
  /** Progress lines (stderr by default). */
  log: (line: string) => void;
  /** Each figure, as it is measured (stdout as a JSON line by default). */
  emit: (figure: Figure) => void;
  /** Aborts the run (Ctrl-C); what was made is removed. */
  signal?: AbortSignal;
}

/** One measured figure. */
export interface Figure {
  /** What was measured: `list`, `list --all`, `get`, `create --no-start`, `destroy`, `--version`. */
  figure: string;
  /** Domains on the daemon while measuring. */
  domains: number;
  /** Rounds measured. */
  rounds: number;
  /** Median whole-process time of foundry, ms. */
  foundry_ms: number;
  /** Median whole-process time of virsh (or the virsh script), ms. */
  virsh_ms: number;
  /** Median of the rounds' ratios foundry/virsh. */
  ratio: number;
  /** The acceptance target, for the reader. */
  target: string;
}

const TARGETS: Record<string, string> = {
  "list": "ratio <= 2.0",
  "list --all": "ratio <= 0.7 (300 domains), <= 0.5 (1000)",
  "get": "",
  "create --no-start": "ratio <= 1.0",
  "destroy": "",
  "--version": "foundry_ms <= 50",
  "deno floor": "",
};

/**
 * The foundry command line: `FOUNDRY_BENCH_CMD` when set, else the `foundry` found on `path`, else
 * `deno run` of cli/foundry.ts with the permissions of deno.json's `foundry` task.
 */
export function foundryCommandLine(
  env: { FOUNDRY_BENCH_CMD?: string | undefined; PATH?: string | undefined },
  isExecutable: (file: string) => boolean = executable,
): string[] {
  const given = env.FOUNDRY_BENCH_CMD?.trim();
  if (given) return given.split(/\s+/);
  for (const dir of (env.PATH ?? "").split(":")) {
    if (dir && isExecutable(`${dir}/foundry`)) return [`${dir}/foundry`];
  }
  return ["deno", "run", ...taskFlags(denoConfig.tasks.foundry), cliEntry];
}

const cliEntry = new URL("../cli/foundry.ts", import.meta.url).pathname;

/** The `--flag`s of the `deno run` in a deno.json task (its permissions). */
export function taskFlags(task: string): string[] {
  const words = task.split(/\s+/);
  const run = words.findIndex((w, i) => w === "deno" && words[i + 1] === "run");
  const flags: string[] = [];
  for (const w of words.slice(run + 2)) {
    if (!w.startsWith("--")) break;
    flags.push(w);
  }
  return flags;
}

function executable(file: string): boolean {
  try {
    const st = Deno.statSync(file);
    return st.isFile && ((st.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/** A run's world: names, pools, environment of the child processes. */
interface World {
  prefix: string;
  dir: string;
  config: FoundryConfig;
  bridge: string;
  network: string;
  env: Record<string, string>;
  lv: Libvirt;
  /** Next address number (198.18.0.0/15, set aside for benchmarks by RFC 2544). */
  nextHost: number;
}

async function run(
  cmd: string[],
  w: World,
  signal: AbortSignal | undefined,
): Promise<number> {
  const [program, ...args] = cmd;
  const t0 = performance.now();
  const out = await new Deno.Command(program!, {
    args,
    env: w.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    ...(signal ? { signal } : {}),
  }).output();
  const ms = performance.now() - t0;
  signal?.throwIfAborted();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
    throw new Error(`${cmd.join(" ")} exited ${out.code}: ${err}`);
  }
  return ms;
}

function vmYaml(w: World, name: string): string {
  const n = w.nextHost++;
  const ip = `198.18.${(n >> 8) & 255}.${(n & 255) + 1}`;
  return `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
  labels:
    bench: cli
spec:
  vcpus: 1
  memoryGiB: 0.25
  bootDisk:
    sizeGB: 1
    image: base.qcow2
  dataDisks:
    - device: vdb
      sizeGB: 1
  networkInterfaces:
    - ip: ${ip}/15
      gateway: 198.18.0.1
      dnsServers: [198.18.0.53]
      bridge: ${w.bridge}
  cloudInit:
    fqdn: ${name}.example.org
    sshAuthorizedKeys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICoxOD9GTVRbYmlwd36FjJOaoaivtr3Ey9LZ4Ofu9fwD bench@example.org
`;
}

/**
 * The virsh side of create for `vm`: files prepared beforehand (cloud-init seed files, volume and
 * domain XML, as foundry would make them) and a shell script that runs the steps.
 */
async function virshCreateScript(w: World, vm: VirtualMachine, base: string): Promise<string> {
  const name = vm.metadata.name;
  const dir = `${w.dir}/${name}`;
  await Deno.mkdir(dir);
  const files = noCloudFilesFromVm(vm);
  for (const [f, text] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${f}`, text);
  const pool = w.config.vmsPool;
  // The ISO's size only matters for the plan's names here; the script sizes the volume itself.
  const plan = volumePlan(vm, pool, cidataIsoFromVm(vm).length);
  const lines = ["set -e"];
  const created: CreatedVolume[] = [];
  for (const spec of plan) {
    const key = `${w.config.vmsPath}/${spec.name}`;
    created.push({ role: spec.role, pool, name: spec.name, key });
    if (spec.role === "cloudinit") continue;
    const xml = buildVolumeXml(spec, spec.overlay ? { path: base, format: "qcow2" } : undefined);
    await Deno.writeTextFile(`${dir}/${spec.name}.xml`, xml);
    lines.push(`virsh -q vol-create ${pool} ${dir}/${spec.name}.xml`);
  }
  const iso = plan.find((v) => v.role === "cloudinit")!.name;
  lines.push(
    `cloud-localds -N ${dir}/network-config ${dir}/seed.iso ${dir}/user-data ${dir}/meta-data`,
    `virsh -q vol-create-as ${pool} ${iso} "$(stat -c %s ${dir}/seed.iso)" --format raw`,
    `virsh -q vol-upload --pool ${pool} ${iso} ${dir}/seed.iso`,
  );
  const xml = buildDomainXml(vm, {
    domainType: "qemu",
    pool,
    uuid: crypto.randomUUID(),
    volumes: created,
  });
  await Deno.writeTextFile(`${dir}/domain.xml`, xml);
  lines.push(`virsh -q define ${dir}/domain.xml`, `virsh -q autostart ${name}`);
  await Deno.writeTextFile(`${dir}/create.sh`, lines.join("\n") + "\n");
  return `${dir}/create.sh`;
}

/** Minimal inactive domain: type qemu, no disks; defining a thousand takes a moment. */
const fillerXml = (name: string) =>
  `<domain type='qemu'><name>${name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>` +
  `<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>`;

async function setUp(opts: BenchOptions): Promise<World> {
  const prefix = `bcli-${crypto.randomUUID().slice(0, 6)}-`;
  const dir = await Deno.makeTempDir({ prefix });
  // QEMU (libvirt-qemu) must traverse to the pool directories.
  await Deno.chmod(dir, 0o755);
  const config: FoundryConfig = {
    ...DEFAULT_CONFIG,
    uri: opts.uri,
    domainType: "qemu",
    storagePath: dir,
    imagesPool: `${prefix}img`,
    imagesPath: `${dir}/images`,
    vmsPool: `${prefix}vms`,
    vmsPath: `${dir}/vms`,
  };
  const lv = await Libvirt.connect(opts.uri);
  const bridge = `bcli${prefix.slice(5, 11)}`;
  const w: World = {
    prefix,
    dir,
    config,
    bridge,
    network: `${prefix}net`,
    lv,
    nextHost: 1,
    env: {
      FOUNDRY_URI: opts.uri,
      LIBVIRT_DEFAULT_URI: opts.uri,
      FOUNDRY_DOMAIN_TYPE: "qemu",
      FOUNDRY_STORAGE_PATH: dir,
      FOUNDRY_IMAGE_POOL: config.imagesPool,
      FOUNDRY_IMAGES_PATH: config.imagesPath,
      FOUNDRY_VM_POOL: config.vmsPool,
      FOUNDRY_VMS_PATH: config.vmsPath,
      FOUNDRY_AUDIT_DB: `${dir}/audit.db`,
      NO_COLOR: "1",
    },
  };
  return w;
}

async function prepare(w: World): Promise<string> {
  const { lv, config } = w;
  const images = await ensureDirPool(lv, config.imagesPool, config.imagesPath);
  await ensureDirPool(lv, config.vmsPool, config.vmsPath);
  const base = await lv.storageVolCreateXml(
    images,
    "<volume><name>base.qcow2</name><capacity unit='MiB'>64</capacity>" +
      "<target><format type='qcow2'/></target></volume>",
  );
  // A network that is never started: the bridge name foundry's checks look for, nothing on the host.
  await Deno.writeTextFile(
    `${w.dir}/net.xml`,
    `<network><name>${w.network}</name><bridge name='${w.bridge}'/></network>`,
  );
  await run(["virsh", "-q", "net-define", `${w.dir}/net.xml`], w, undefined);
  return await lv.storageVolGetPath(base);
}

/** Removes everything with the run's prefix: domains, volumes, pools, network, files. */
async function tearDown(w: World, log: (l: string) => void): Promise<void> {
  const { lv } = w;
  const mine = (await lv.listAllDomains()).filter((d) => d.name.startsWith(w.prefix));
  for (let k = 0; k < mine.length; k += 64) {
    await Promise.all(
      mine.slice(k, k + 64).map(async (d) => {
        await lv.domainDestroy(d).catch(() => {});
        await lv.domainUndefine(
          d,
          UndefineFlags.NVRAM | UndefineFlags.MANAGED_SAVE | UndefineFlags.SNAPSHOTS_METADATA,
        ).catch((e) => log(`# cannot undefine ${d.name}: ${(e as Error).message}`));
      }),
    );
  }
  for (const name of [w.config.vmsPool, w.config.imagesPool]) {
    try {
      const p = await lv.storagePoolLookupByName(name);
      for (const v of await lv.storagePoolListAllVolumes(p)) await lv.storageVolDelete(v);
      await lv.storagePoolDestroy(p).catch(() => {});
      await lv.storagePoolDelete(p).catch(() => {});
      await lv.storagePoolUndefine(p);
    } catch { /* not made, or gone */ }
  }
  await run(["virsh", "-q", "net-undefine", w.network], w, undefined).catch(() => {});
  await Deno.remove(w.dir, { recursive: true }).catch(() => {});
  log(`# removed ${mine.length} domains and the pools of ${w.prefix}`);
}

/** Tops the daemon up to `total` domains with inactive filler domains of the run's prefix. */
async function fillTo(w: World, total: number, counter: { n: number }): Promise<number> {
  const have = (await w.lv.listAllDomains()).length;
  const todo = Array.from(
    { length: Math.max(0, total - have) },
    () => `${w.prefix}fill-${String(counter.n++).padStart(4, "0")}`,
  );
  for (let k = 0; k < todo.length; k += 64) {
    await Promise.all(todo.slice(k, k + 64).map((n) => w.lv.domainDefineXml(fillerXml(n))));
  }
  return (await w.lv.listAllDomains()).length;
}

/** The two command lines of one round. */
type Sides = { foundry: string[]; virsh: string[] };

/**
 * Times `rounds` rounds of both sides, the first side alternating; `prepare(i)` (untimed) gives
 * round `i`'s two command lines. One untimed warm-up round comes first unless `warmUp` is false.
 */
async function measure(
  w: World,
  opts: BenchOptions,
  figure: string,
  sides: (i: number) => Sides | Promise<Sides>,
  warmUp = true,
): Promise<void> {
  const signal = opts.signal;
  if (warmUp) {
    const c = await sides(-1);
    await run(c.foundry, w, signal);
    await run(c.virsh, w, signal);
  }
  const f: number[] = [];
  const v: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < opts.rounds; i++) {
    const c = await sides(i);
    let fm: number, vm: number;
    if (i % 2 === 0) {
      fm = await run(c.foundry, w, signal);
      vm = await run(c.virsh, w, signal);
    } else {
      vm = await run(c.virsh, w, signal);
      fm = await run(c.foundry, w, signal);
    }
    f.push(fm);
    v.push(vm);
    ratios.push(fm / vm);
  }
  opts.emit({
    figure,
    domains: (await w.lv.listAllDomains()).length,
    rounds: opts.rounds,
    foundry_ms: round(median(f)),
    virsh_ms: round(median(v)),
    ratio: round(median(ratios), 2),
    target: TARGETS[figure] ?? "",
  });
}

/** Runs every figure; see the module documentation. */
export async function benchCli(opts: BenchOptions): Promise<void> {
  const w = await setUp(opts);
  const fcmd = (...args: string[]) => [...opts.foundry, ...args];
  opts.log(`# foundry: ${opts.foundry.join(" ")}`);
  opts.log(`# prefix ${w.prefix}; ${opts.rounds} rounds per figure`);
  try {
    const base = await prepare(w);
    opts.signal?.throwIfAborted();

    await measure(w, opts, "--version", () => ({
      foundry: fcmd("--version"),
      virsh: ["virsh", "--version"],
    }));
    const empty = `${w.dir}/empty.js`;
    await Deno.writeTextFile(empty, "");
    await measure(w, opts, "deno floor", () => ({
      foundry: ["deno", "run", "--no-prompt", "--allow-read", "--allow-env", empty],
      virsh: ["virsh", "--version"],
    }));

    // create: round i makes {prefix}f{i} with foundry and {prefix}v{i} with the virsh script.
    const made: { f: string; v: string }[] = [];
    await measure(w, opts, "create --no-start", async (i) => {
      const tag = i < 0 ? "w" : String(i);
      const f = `${w.prefix}f${tag}`;
      const v = `${w.prefix}v${tag}`;
      const file = `${w.dir}/${f}.yaml`;
      await Deno.writeTextFile(file, vmYaml(w, f));
      const script = await virshCreateScript(
        w,
        parseVirtualMachine(vmYaml(w, v), `${v}.yaml`),
        base,
      );
      made.push({ f, v });
      return { foundry: fcmd("create", "--no-start", file), virsh: ["sh", script] };
    });

    await measure(w, opts, "list", () => ({
      foundry: fcmd("list"),
      virsh: ["virsh", "list"],
    }));

    await measure(w, opts, "get", () => ({
      foundry: fcmd("get", made[0]!.f),
      virsh: ["virsh", "dominfo", made[0]!.f],
    }));

    // The warm-up round destroys the warm-up create's VMs, round i those of create's round i.
    await measure(w, opts, "destroy", (i) => {
      const m = made[i + 1]!;
      return {
        foundry: fcmd("destroy", m.f),
        virsh: ["virsh", "-q", "undefine", "--nvram", "--remove-all-storage", m.v],
      };
    });

    const counter = { n: 0 };
    for (const size of opts.sizes) {
      const total = await fillTo(w, size, counter);
      opts.log(`# ${total} domains defined for list --all`);
      opts.signal?.throwIfAborted();
      await measure(w, opts, "list --all", () => ({
        foundry: fcmd("list", "--all"),
        virsh: ["virsh", "list", "--all"],
      }));
    }
  } finally {
    await tearDown(w, opts.log);
    await w.lv.close();
  }
}

function parseArgs(args: string[]): { rounds: number; sizes: number[]; uri: string } {
  const out = { rounds: 9, sizes: [300, 1000], uri: "qemu:///system" };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new TypeError(`${a} needs a value`);
      return v;
    };
    if (a === "--rounds") out.rounds = Number(value());
    else if (a === "--sizes") out.sizes = value().split(",").map(Number);
    else if (a === "--uri") out.uri = value();
    else throw new TypeError(`unknown argument ${a}; expected --rounds N, --sizes A,B, --uri URI`);
  }
  if (!Number.isSafeInteger(out.rounds) || out.rounds < 1) {
    throw new TypeError("--rounds must be a positive integer");
  }
  if (out.sizes.some((n) => !Number.isSafeInteger(n) || n < 0)) {
    throw new TypeError("--sizes must be non-negative integers, e.g. 300,1000");
  }
  return out;
}

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs(Deno.args);
  } catch (e) {
    console.error(`bench:cli: ${(e as Error).message}`);
    Deno.exit(2);
  }
  const foundry = foundryCommandLine({
    FOUNDRY_BENCH_CMD: Deno.env.get("FOUNDRY_BENCH_CMD"),
    PATH: Deno.env.get("PATH"),
  });
  const program = foundry[0]!;
  if ((await Deno.permissions.query({ name: "run", command: program })).state !== "granted") {
    console.error(
      `bench:cli: not allowed to run ${program}; run tasks/bench_cli.ts with --allow-run=${program},virsh,sh`,
    );
    Deno.exit(2);
  }
  const localds = await new Deno.Command("sh", {
    args: ["-c", "command -v cloud-localds"],
    stdout: "null",
  }).output();
  if (!localds.success) {
    console.error("bench:cli: cloud-localds is not installed (Debian package cloud-image-utils)");
    Deno.exit(2);
  }
  const ac = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    if (++interrupts > 1) Deno.exit(130);
    console.error("# interrupted: removing what this run made (Ctrl-C again to leave it)");
    ac.abort(new Error("interrupted"));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await benchCli({
      ...parsed,
      foundry,
      log: (l) => console.error(l),
      emit: (f) => console.log(JSON.stringify(f)),
      signal: ac.signal,
    });
  } catch (e) {
    if (ac.signal.aborted) Deno.exit(130);
    console.error(`bench:cli: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
