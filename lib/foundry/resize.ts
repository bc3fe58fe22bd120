/**
 * `foundry resize`: a VM's vCPUs, memory and disks changed in place, live where the domain allows it
 * and otherwise in its persistent definition (applied at the next boot), with the stored spec
 * following every change.
 *
 * - vCPUs: hot-plugged up to the domain's maximum (`<vcpu current="N">MAX</vcpu>`, reserved at
 *   create from `spec.resources.maxVcpus`), then onlined in the guest through the agent
 *   (`guest-set-vcpus`) when the guest left them offline. More than the maximum: the maximum and
 *   the count are raised in the definition only, for the next boot.
 * - Memory: the balloon, between 0 and `<memory>` (reserved from `spec.resources.maxMemoryGiB`).
 *   More than that: the definition's maximum and size are raised, for the next boot.
 * - Disks: a running domain's disk grows with virDomainBlockResize (which changes the volume's
 *   capacity), then the guest's partition (growpart, when the guest has it) and filesystem
 *   (resize2fs, xfs_growfs, btrfs) through the agent; a stopped domain's volume with
 *   virStorageVolResize. Shrinking a disk is refused.
 *
 * @example
 * ```ts
 * import { Libvirt } from "../libvirt/mod.ts";
 * import { resizeVm } from "./resize.ts";
 * const lv = await Libvirt.connect();
 * const r = await resizeVm(lv, "web-01", { vcpus: 2, memoryGiB: 1.5, disks: [{ device: "vdb", sizeGB: 2 }] });
 * for (const c of r.changes) console.log(c.what, c.from, "->", c.to, c.applied);
 * await lv.close();
 * ```
 *
 * @module
 */
import type { DomainRef, Libvirt } from "../libvirt/mod.ts";
import { DomainState } from "../libvirt/constants.ts";
import {
  domainBlockResize,
  domainSetMemoryFlags,
  domainSetVcpusFlags,
  MemoryFlags,
  VcpuFlags,
} from "../libvirt/resize.ts";
import { writeDomainRecord } from "./domain_records.ts";
import { agentCall, guestExec } from "./agent.ts";
import { lookupVm } from "./lookup.ts";
import { storedMetadataXml } from "./metadata.ts";
import { LIMITS, type VirtualMachine } from "./types.ts";
import { VmOperationError } from "./vm_errors.ts";
import { childElements, ownText, readXml, type XmlElement } from "./xml_reader.ts";

const GIB = 1024 ** 3;

/** What to change; absent fields stay as they are. */
export interface ResizeRequest {
  /** New vCPU count. */
  vcpus?: number;
  /** New memory in GiB (a whole number of MiB). */
  memoryGiB?: number;
  /** New disk sizes in GB (read as GiB, like `sizeGB` in a spec), by guest device (`vda`, `vdb`). */
  disks?: { device: string; sizeGB: number }[];
}

/** When a change takes effect. */
export type Applied = "live" | "nextBoot" | "unchanged";

/** A filesystem grown (or not) in the guest after its disk grew. */
export interface FilesystemGrowth {
  /** Guest block device of the filesystem, `/dev/vdb` or `/dev/vda1`. */
  device: string;
  /** Filesystem type, `ext4`. */
  type: string;
  /** Where it is mounted in the guest. */
  mountpoint: string;
  /** Whether the partition (when on one) and the filesystem now fill the disk. */
  grown: boolean;
  /** Why not, or what else was done. */
  note?: string;
}

/** One change `resize` made (or found already made). */
export interface ResizeChange {
  /** `vcpus`, `memory` or `disk`. */
  what: "vcpus" | "memory" | "disk";
  /** The disk's guest device, for `disk`. */
  device?: string;
  /** Before and after: vCPUs, MiB of memory, or bytes of disk. */
  from: number;
  /** After. */
  to: number;
  /** Whether it is in effect now, at the next boot, or was already so. */
  applied: Applied;
  /** A sentence for the user when the change is not (fully) live. */
  message?: string;
  /** For a disk grown live: the guest filesystems on it. */
  filesystems?: FilesystemGrowth[];
}

/** What {@linkcode resizeVm} did. */
export interface ResizeResult {
  /** VM name. */
  name: string;
  /** Whether the domain was running (live changes possible). */
  running: boolean;
  /** The changes, in the order vcpus, memory, disks. */
  changes: ResizeChange[];
  /** The stored spec's sizes afterwards. */
  spec: {
    vcpus: number;
    memoryGiB: number;
    bootDiskSizeGB: number | undefined;
    dataDisks: { device: string; sizeGB: number }[];
  };
}

/** Options of {@linkcode resizeVm}. */
export interface ResizeOptions {
  /** Progress lines ("vCPUs 1 -> 2 live", "growing the filesystem on /dev/vdb"). */
  onStep?: (line: string) => void;
  /** How long to wait for the guest to see a hot-plugged vCPU or a grown disk (default 30 s). */
  guestWaitMs?: number;
  /**
   * Hot-plug vCPUs into a TCG domain anyway (default false: {@linkcode tcgHotplugDeferred}); for
   * domains that run no guest code worth losing, such as tests on hosts without KVM.
   */
  hotplugOnTcg?: boolean;
}

/** The sizes a domain has, from its XML. */
export interface DomainSizes {
  /** The domain type (`kvm`, `qemu` for TCG), "" when absent. */
  type: string;
  /** `<vcpu current>` (or the maximum when there is no `current`). */
  vcpus: number;
  /** `<vcpu>`: the most vCPUs without a restart. */
  maxVcpus: number;
  /** `<currentMemory>` in MiB (rounded down). */
  memoryMiB: number;
  /** `<memory>` in MiB (rounded down): the balloon's ceiling. */
  maxMemoryMiB: number;
  /** Disks by target device: their storage volume when they are `type="volume"`. */
  disks: Map<string, { pool?: string; volume?: string; file?: string }>;
}

function child(el: XmlElement | undefined, name: string): XmlElement | undefined {
  return el === undefined ? undefined : childElements(el).find((c) => c.name === name);
}

const KIB_PER: Record<string, number> = {
  b: 1 / 1024,
  bytes: 1 / 1024,
  k: 1,
  kib: 1,
  kb: 1000 / 1024,
  m: 1024,
  mib: 1024,
  mb: 1e6 / 1024,
  g: 1024 ** 2,
  gib: 1024 ** 2,
  gb: 1e9 / 1024,
};

function miB(el: XmlElement | undefined): number | undefined {
  if (el === undefined) return undefined;
  const value = Number(ownText(el).trim());
  const per = KIB_PER[(el.attributes.unit ?? "KiB").toLowerCase()];
  if (!Number.isFinite(value) || per === undefined) return undefined;
  return Math.floor((value * per) / 1024);
}

/** Reads vCPUs, memory and disks from a domain XML (`virDomainGetXMLDesc`). */
export function domainSizes(xml: string): DomainSizes {
  const domain = readXml(xml);
  const vcpu = child(domain, "vcpu");
  const maxVcpus = Number(vcpu === undefined ? NaN : ownText(vcpu).trim());
  const current = vcpu?.attributes.current === undefined
    ? maxVcpus
    : Number(vcpu.attributes.current);
  const maxMemoryMiB = miB(child(domain, "memory"));
  const memoryMiB = miB(child(domain, "currentMemory")) ?? maxMemoryMiB;
  if (
    !Number.isSafeInteger(maxVcpus) || !Number.isSafeInteger(current) ||
    maxMemoryMiB === undefined || memoryMiB === undefined
  ) {
    throw new VmOperationError("the domain XML has no readable <vcpu> or <memory>");
  }
  const disks = new Map<string, { pool?: string; volume?: string; file?: string }>();
  for (
    const d of childElements(child(domain, "devices") ?? { name: "", attributes: {}, children: [] })
  ) {
    if (d.name !== "disk" || d.attributes.device !== "disk") continue;
    const dev = child(d, "target")?.attributes.dev;
    if (dev === undefined) continue;
    const src = child(d, "source")?.attributes ?? {};
    const entry: { pool?: string; volume?: string; file?: string } = {};
    if (src.pool !== undefined) entry.pool = src.pool;
    if (src.volume !== undefined) entry.volume = src.volume;
    if (src.file !== undefined) entry.file = src.file;
    disks.set(dev, entry);
  }
  return {
    type: domain.attributes.type ?? "",
    vcpus: current,
    maxVcpus,
    memoryMiB,
    maxMemoryMiB,
    disks,
  };
}

/** What {@linkcode planResize} decides for vCPUs or memory. */
export interface ScalarPlan {
  from: number;
  to: number;
  applied: Applied;
  /** Raise the maximum in the definition to `to` first. */
  raiseMaximum: boolean;
  message?: string;
}

/**
 * Decides how a vCPU or memory change is applied: live (and in the definition) within the running
 * domain's maximum; otherwise in the definition only, raising its maximum, for the next boot.
 * Pure, for tests.
 *
 * @param current the running (or, stopped, defined) value; @param max its maximum
 * @param configMax the definition's maximum (the same as `max` for a stopped domain)
 */
export function planScalar(
  what: "vCPUs" | "memory",
  running: boolean,
  current: number,
  max: number,
  configMax: number,
  to: number,
  unit = "",
): ScalarPlan {
  const show = (n: number) => `${n}${unit}`;
  if (to === current) return { from: current, to, applied: "unchanged", raiseMaximum: false };
  if (!running) {
    return {
      from: current,
      to,
      applied: "nextBoot",
      raiseMaximum: to > configMax,
      message: `${what} ${show(current)} -> ${
        show(to)
      }: the VM is not running, in effect when it starts`,
    };
  }
  if (to <= max) return { from: current, to, applied: "live", raiseMaximum: false };
  return {
    from: current,
    to,
    applied: "nextBoot",
    raiseMaximum: to > configMax,
    message: `${what} ${show(current)} -> ${show(to)} is more than the running VM's maximum ` +
      `(${show(max)}): applied at the next boot (foundry restart); it keeps ${
        show(current)
      } until then`,
  };
}

/**
 * A vCPU hot-plug on a TCG domain (type `qemu`) goes to the next boot instead: QEMU 7.2's TCG can
 * abort the whole VM when a vCPU thread is added (`tcg_region_initial_alloc__locked: assertion
 * failed`, seen here when the running vCPU's translation regions were all in use), and losing the
 * VM is worse than waiting for a restart. KVM domains hot-plug live. Pure, for tests.
 */
export function tcgHotplugDeferred(p: ScalarPlan): ScalarPlan {
  return {
    ...p,
    applied: "nextBoot",
    message: `vCPUs ${p.from} -> ${p.to}: not hot-plugged into a TCG (domain type qemu) VM, ` +
      `whose QEMU 7.2 can abort when a vCPU is added; applied at the next boot (foundry restart)`,
  };
}

/** Checks a request's values before anything is changed. */
export function checkResizeRequest(req: ResizeRequest): void {
  if (req.vcpus !== undefined && !(Number.isSafeInteger(req.vcpus) && req.vcpus > 0)) {
    throw new VmOperationError(`vCPUs must be a positive integer, got ${req.vcpus}`);
  }
  if (req.vcpus !== undefined && req.vcpus > LIMITS.vcpus) {
    throw new VmOperationError(`vCPUs must be at most ${LIMITS.vcpus}, got ${req.vcpus}`);
  }
  if (req.memoryGiB !== undefined) {
    const m = req.memoryGiB;
    if (!(Number.isFinite(m) && m > 0 && m <= LIMITS.memoryGiB)) {
      throw new VmOperationError(
        `memory must be more than 0 and at most ${LIMITS.memoryGiB} GiB, got ${m}`,
      );
    }
    if (!Number.isInteger(m * 1024)) {
      throw new VmOperationError(`memory must be a whole number of MiB (GiB/1024), got ${m}`);
    }
  }
  const seen = new Set<string>();
  for (const d of req.disks ?? []) {
    if (!(Number.isSafeInteger(d.sizeGB) && d.sizeGB > 0 && d.sizeGB <= LIMITS.diskSizeGB)) {
      throw new VmOperationError(
        `disk ${d.device}: size must be a whole number of GB from 1 to ${LIMITS.diskSizeGB}, got ${d.sizeGB}`,
      );
    }
    if (seen.has(d.device)) throw new VmOperationError(`disk ${d.device} is named twice`);
    seen.add(d.device);
  }
}

/** Parses `DEV=SIZE` (`vdb=20`, `vdb=20G`, `vdb=20GB`, `vdb=20GiB`): the size is in GB (GiB). */
export function parseDiskArg(arg: string): { device: string; sizeGB: number } {
  const m = /^([a-z][a-z0-9]{0,15})=([0-9]{1,9})\s*(?:G|GB|GiB)?$/i.exec(arg.trim());
  if (!m) {
    throw new VmOperationError(
      `disk size must be DEV=SIZE with SIZE in whole GB (vdb=20), got ${JSON.stringify(arg)}`,
    );
  }
  return { device: m[1]!.toLowerCase(), sizeGB: Number(m[2]) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a shell script in the guest (`$1`... from `args`); throws with its stderr on failure. */
async function guestSh(
  lv: Libvirt,
  domain: DomainRef,
  script: string,
  args: string[] = [],
  timeoutMs = 60_000,
): Promise<string> {
  const r = await guestExec(lv, domain, "/bin/sh", ["-c", script, "sh", ...args], timeoutMs);
  if (r.exitCode !== 0) {
    throw new VmOperationError(
      `in the guest: ${(r.stderr || r.stdout).trim().slice(0, 500) || `exit ${r.exitCode}`}`,
    );
  }
  return r.stdout;
}

/** Every block device in the guest with its size in 512-byte sectors. */
async function guestBlockSizes(lv: Libvirt, domain: DomainRef): Promise<Map<string, number>> {
  const out = await guestSh(
    lv,
    domain,
    'for d in /sys/block/*; do printf "%s %s\\n" "${d##*/}" "$(cat "$d/size")"; done',
  );
  const sizes = new Map<string, number>();
  for (const line of out.split("\n").slice(0, 1000)) {
    const [name, size] = line.trim().split(" ");
    if (name && size && /^[0-9]+$/.test(size)) sizes.set(name, Number(size));
  }
  return sizes;
}

/** Brings hot-plugged vCPUs online in the guest once it sees them (guest-get/set-vcpus). */
async function onlineGuestVcpus(
  lv: Libvirt,
  domain: DomainRef,
  want: number,
  waitMs: number,
): Promise<string | undefined> {
  type Vcpu = { "logical-id": number; online: boolean; "can-offline"?: boolean };
  const deadline = performance.now() + waitMs;
  while (true) {
    const cpus = await agentCall<Vcpu[]>(lv, domain, "guest-get-vcpus");
    const offline = cpus.filter((c) => !c.online);
    if (cpus.length >= want && offline.length === 0) return undefined;
    if (cpus.length >= want) {
      await agentCall(lv, domain, "guest-set-vcpus", {
        vcpus: offline.map((c) => ({ "logical-id": c["logical-id"], online: true })),
      });
    } else if (performance.now() > deadline) {
      return `the guest sees ${cpus.length} of ${want} vCPUs after ${waitMs / 1000} s`;
    }
    if (performance.now() > deadline) {
      return `${offline.length} vCPU(s) still offline in the guest after ${waitMs / 1000} s`;
    }
    await sleep(500);
  }
}

/**
 * The lines of `lsblk -P`: NAME="vdb" TYPE="disk" ... as records. Values are lsblk's escaped
 * text (`\x20` for a space), left as they are except for the quotes.
 */
export function parseLsblkPairs(text: string): Record<string, string>[] {
  return text.split("\n").filter((l) => l.trim() !== "").slice(0, 256).map((line) => {
    const rec: Record<string, string> = {};
    for (const m of line.matchAll(/([A-Z:-]+)="((?:[^"\\]|\\.)*)"/g)) rec[m[1]!] = m[2]!;
    return rec;
  });
}

/** Grows the partitions and filesystems mounted from guest disk `dev` (`vdb`) to fill it. */
async function growGuestFilesystems(
  lv: Libvirt,
  domain: DomainRef,
  dev: string,
  onStep: (line: string) => void,
): Promise<FilesystemGrowth[]> {
  const list = parseLsblkPairs(
    await guestSh(lv, domain, 'exec lsblk -P -o NAME,TYPE,FSTYPE,MOUNTPOINT "/dev/$1"', [dev]),
  );
  const hasGrowpart =
    (await guestExec(lv, domain, "/bin/sh", ["-c", "command -v growpart"])).exitCode === 0;
  const out: FilesystemGrowth[] = [];
  for (const fs of list) {
    const name = fs.NAME ?? "";
    const type = fs.FSTYPE ?? "";
    const mountpoint = (fs.MOUNTPOINT ?? "").replaceAll("\\x20", " ");
    if (type === "" || !/^[a-z0-9]+$/.test(name)) continue;
    const g: FilesystemGrowth = { device: `/dev/${name}`, type, mountpoint, grown: false };
    out.push(g);
    if (mountpoint === "" || type === "swap") {
      g.note = "not mounted: left as it is";
      continue;
    }
    if (fs.TYPE === "part") {
      if (!hasGrowpart) {
        g.note =
          "on a partition and the guest has no growpart (cloud-guest-utils): partition not grown";
        continue;
      }
      onStep(`growing partition ${g.device}`);
      const r = await guestExec(lv, domain, "/bin/sh", [
        "-c",
        'exec growpart "/dev/$1" "$(cat "/sys/class/block/$2/partition")"',
        "sh",
        dev,
        name,
      ], 60_000);
      // growpart: 0 grown, 1 nothing to do (NOCHANGE), 2 failed.
      if (r.exitCode !== 0 && !r.stdout.includes("NOCHANGE")) {
        g.note = `growpart failed: ${(r.stderr || r.stdout).trim().slice(0, 300)}`;
        continue;
      }
    }
    const grow = /^ext[234]$/.test(type)
      ? 'exec resize2fs "$1"'
      : type === "xfs"
      ? 'exec xfs_growfs "$2"'
      : type === "btrfs"
      ? 'exec btrfs filesystem resize max "$2"'
      : undefined;
    if (grow === undefined) {
      g.note = `foundry does not grow ${type} filesystems`;
      continue;
    }
    onStep(`growing the ${type} filesystem on ${g.device} (${mountpoint})`);
    const r = await guestExec(lv, domain, "/bin/sh", [
      "-c",
      grow,
      "sh",
      g.device,
      mountpoint,
    ], 300_000);
    if (r.exitCode === 0) g.grown = true;
    else g.note = `${type} grow failed: ${(r.stderr || r.stdout).trim().slice(0, 300)}`;
  }
  return out;
}

/** Grows a running VM's disk and then, through the agent, what is on it. */
async function growLiveDisk(
  lv: Libvirt,
  domain: DomainRef,
  device: string,
  fromBytes: number,
  toBytes: number,
  waitMs: number,
  onStep: (line: string) => void,
): Promise<{ filesystems: FilesystemGrowth[]; message?: string }> {
  let before: Map<string, number> | undefined;
  let agentProblem: string | undefined;
  try {
    before = await guestBlockSizes(lv, domain);
  } catch (e) {
    agentProblem = (e as Error).message;
  }
  await domainBlockResize(lv, domain, device, toBytes);
  if (before === undefined) {
    return {
      filesystems: [],
      message:
        `disk grown; its filesystems were not, the guest agent did not answer (${agentProblem})`,
    };
  }
  // The guest's name for the disk: the one whose size went from the old to the new capacity.
  const deadline = performance.now() + waitMs;
  while (true) {
    const after = await guestBlockSizes(lv, domain);
    const changed = [...after].filter(([name, sectors]) =>
      sectors * 512 === toBytes && before.get(name) === fromBytes / 512
    ).map(([name]) => name);
    if (changed.length === 1) {
      return { filesystems: await growGuestFilesystems(lv, domain, changed[0]!, onStep) };
    }
    if (changed.length > 1 || performance.now() > deadline) {
      return {
        filesystems: [],
        message: changed.length > 1
          ? `disk grown; its filesystems were not: ${changed.length} guest disks changed size`
          : `disk grown; its filesystems were not: the guest did not see the new size in ${
            waitMs / 1000
          } s`,
      };
    }
    await sleep(500);
  }
}

/**
 * Resizes VM `name`: vCPUs, memory and disks as `req` asks, live where the domain allows it and in
 * its definition otherwise (see the module's description), then writes the stored spec. A request
 * that cannot be done at all (a smaller disk, a disk the VM does not have) is refused before
 * anything changes.
 *
 * @throws {VmOperationError} refused, or a step failed (the steps before it stay done and are in
 *   the stored spec)
 */
export async function resizeVm(
  lv: Libvirt,
  name: string,
  req: ResizeRequest,
  opts: ResizeOptions = {},
): Promise<ResizeResult> {
  checkResizeRequest(req);
  const onStep = opts.onStep ?? (() => {});
  const waitMs = opts.guestWaitMs ?? 30_000;
  const { domain, xml, stored } = await lookupVm(lv, name);
  if (!stored) {
    throw new VmOperationError(`VM ${name} was not created by foundry (no foundry metadata)`);
  }
  const state = (await lv.domainGetState(domain)).state;
  const running = state === DomainState.RUNNING || state === DomainState.PAUSED;
  const live = domainSizes(xml);
  const config = running ? domainSizes(await lv.domainGetXmlDesc(domain, 2 /* INACTIVE */)) : live;
  const vm: VirtualMachine = structuredClone(stored.vm);

  // Refusals first: nothing is changed for a request that cannot be done.
  const disks: {
    device: string;
    from: number;
    to: number;
    vol: Awaited<ReturnType<Libvirt["storageVolLookupByName"]>>;
  }[] = [];
  for (const d of req.disks ?? []) {
    const disk = live.disks.get(d.device);
    if (disk === undefined) {
      throw new VmOperationError(
        `VM ${name} has no disk ${d.device} (it has ${
          [...live.disks.keys()].join(", ") || "none"
        })`,
      );
    }
    // A volume, or a file in a pool (the active overlay after an external snapshot).
    const vol = disk.pool !== undefined && disk.volume !== undefined
      ? await lv.storageVolLookupByName(await lv.storagePoolLookupByName(disk.pool), disk.volume)
      : disk.file !== undefined
      ? await lv.storageVolLookupByPath(disk.file).catch(() => undefined)
      : undefined;
    if (vol === undefined) {
      throw new VmOperationError(
        `disk ${d.device} of VM ${name} is not a volume of a storage pool: foundry does not resize it`,
      );
    }
    const from = (await lv.storageVolGetInfo(vol)).capacity;
    const to = d.sizeGB * GIB;
    if (to < from) {
      throw new VmOperationError(
        `disk ${d.device} of VM ${name} is ${
          from / GIB
        } GB; shrinking a disk is refused (asked ${d.sizeGB} GB)`,
      );
    }
    disks.push({ device: d.device, from, to, vol });
  }

  const changes: ResizeChange[] = [];
  const record = async () => {
    await writeDomainRecord(
      lv,
      domain,
      "spec",
      storedMetadataXml(vm, stored.passwordHashSha256),
      running,
    );
  };
  try {
    if (req.vcpus !== undefined) {
      let p = planScalar("vCPUs", running, live.vcpus, live.maxVcpus, config.maxVcpus, req.vcpus);
      if (p.applied === "live" && p.to > p.from && live.type === "qemu" && !opts.hotplugOnTcg) {
        p = tcgHotplugDeferred(p);
      }
      const change: ResizeChange = { what: "vcpus", from: p.from, to: p.to, applied: p.applied };
      if (p.message) change.message = p.message;
      if (p.applied === "unchanged" && running && config.vcpus !== p.to) {
        // Live already; the definition (an earlier next-boot resize) says otherwise: align it.
        await domainSetVcpusFlags(lv, domain, p.to, VcpuFlags.CONFIG);
        change.applied = "live";
      }
      if (p.applied === "live") {
        onStep(`vCPUs ${p.from} -> ${p.to} (live)`);
        await domainSetVcpusFlags(lv, domain, p.to, VcpuFlags.LIVE | VcpuFlags.CONFIG);
        if (p.to > p.from) {
          const note = await onlineGuestVcpus(lv, domain, p.to, waitMs).catch((e) =>
            `vCPUs not onlined in the guest: ${(e as Error).message}`
          );
          if (note) change.message = note;
        }
      } else if (p.applied === "nextBoot") {
        onStep(`vCPUs ${p.from} -> ${p.to} (next boot)`);
        if (p.raiseMaximum) {
          await domainSetVcpusFlags(lv, domain, p.to, VcpuFlags.CONFIG | VcpuFlags.MAXIMUM);
          vm.spec.resources = { ...vm.spec.resources, maxVcpus: p.to };
        }
        await domainSetVcpusFlags(lv, domain, p.to, VcpuFlags.CONFIG);
      }
      vm.spec.vcpus = p.to;
      changes.push(change);
    }
    if (req.memoryGiB !== undefined) {
      const toMiB = Math.round(req.memoryGiB * 1024);
      const p = planScalar(
        "memory",
        running,
        live.memoryMiB,
        live.maxMemoryMiB,
        config.maxMemoryMiB,
        toMiB,
        " MiB",
      );
      const change: ResizeChange = { what: "memory", from: p.from, to: p.to, applied: p.applied };
      if (p.message) change.message = p.message;
      if (p.applied === "unchanged" && running && config.memoryMiB !== p.to) {
        await domainSetMemoryFlags(lv, domain, p.to * 1024, MemoryFlags.CONFIG);
        change.applied = "live";
      }
      if (p.applied === "live") {
        onStep(`memory ${p.from} -> ${p.to} MiB (live, balloon)`);
        await domainSetMemoryFlags(lv, domain, p.to * 1024, MemoryFlags.LIVE | MemoryFlags.CONFIG);
      } else if (p.applied === "nextBoot") {
        onStep(`memory ${p.from} -> ${p.to} MiB (next boot)`);
        if (p.raiseMaximum) {
          await domainSetMemoryFlags(
            lv,
            domain,
            p.to * 1024,
            MemoryFlags.CONFIG | MemoryFlags.MAXIMUM,
          );
          vm.spec.resources = { ...vm.spec.resources, maxMemoryGiB: p.to / 1024 };
        }
        await domainSetMemoryFlags(lv, domain, p.to * 1024, MemoryFlags.CONFIG);
      }
      vm.spec.memoryGiB = p.to / 1024;
      changes.push(change);
    }
    for (const d of disks) {
      const change: ResizeChange = {
        what: "disk",
        device: d.device,
        from: d.from,
        to: d.to,
        applied: d.to === d.from ? "unchanged" : running ? "live" : "nextBoot",
      };
      if (d.to > d.from && running) {
        onStep(`disk ${d.device} ${d.from / GIB} -> ${d.to / GIB} GB (live)`);
        const g = await growLiveDisk(lv, domain, d.device, d.from, d.to, waitMs, onStep);
        change.filesystems = g.filesystems;
        if (g.message) change.message = g.message;
      } else if (d.to > d.from) {
        onStep(`disk ${d.device} ${d.from / GIB} -> ${d.to / GIB} GB (volume)`);
        await lv.storageVolResize(d.vol, d.to);
        change.message = `disk ${d.device} grown to ${d.to / GIB} GB; the VM is not running, ` +
          "its filesystems grow when the guest does it (or the next foundry resize while it runs)";
      }
      const sizeGB = d.to / GIB;
      if (d.device === "vda") vm.spec.bootDisk = { ...vm.spec.bootDisk, sizeGB };
      else {
        vm.spec.dataDisks = (vm.spec.dataDisks ?? []).map((x) =>
          x.device === d.device ? { ...x, sizeGB } : x
        );
      }
      changes.push(change);
    }
  } finally {
    // The stored spec follows what was done, also when a later step failed.
    if (changes.some((c) => c.applied !== "unchanged")) await record();
  }
  return {
    name,
    running,
    changes,
    spec: {
      vcpus: vm.spec.vcpus,
      memoryGiB: vm.spec.memoryGiB,
      bootDiskSizeGB: vm.spec.bootDisk?.sizeGB,
      dataDisks: (vm.spec.dataDisks ?? []).map(({ device, sizeGB }) => ({ device, sizeGB })),
    },
  };
}
