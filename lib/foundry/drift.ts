/**
 * Drift: what changed behind foundry's back. The stored spec (what foundry applied) is compared
 * with the domain's running state (`virsh setvcpus --live`, `attach-device --live`), with its
 * persistent definition (`virsh edit`, `virsh setmaxmem --config`, attach and detach) and with the
 * hash recorded beside it (a stored spec edited by hand). Loads no npm package and no `node:`
 * module, so `foundry get` reports the `Drifted` condition from the XML it already reads.
 *
 * What is compared: vCPUs and memory (live only where foundry would have applied the stored value
 * live, i.e. within the running domain's maximum: a larger value waiting for the next boot is not
 * drift; and memory only where the balloon has moved: a guest without a balloon driver keeps the
 * whole maximum and ignores `virsh setmem`, which then cannot be seen), the reserved maxima (the
 * spec's `resources`, or without them anything between the size and the default headroom, which
 * create may have capped by the host; with NUMA cells, libvirt's memory maximum is their sum and
 * the cells are compared instead), disks by guest device (added, removed, another source;
 * CD-ROMs are not compared: foundry's seed is one and is not in the spec), NICs by MAC (added,
 * removed, another bridge), CPU topology and mode, NUMA cells and graphics where the spec sets them,
 * the domain type where the spec names it, and autostart. Disk sizes are not compared.
 *
 * @example
 * ```ts
 * import { Libvirt } from "../libvirt/mod.ts";
 * import { driftOf, formatDrift } from "./drift.ts";
 * const lv = await Libvirt.connect();
 * console.log(formatDrift(await driftOf(lv, "web-01")));
 * await lv.close();
 * ```
 *
 * @module
 */
import { DomainXmlFlags, type Libvirt } from "../libvirt/mod.ts";
import { lookupVm, VmOperationError } from "./lookup.ts";
import { type ObservedDisk, type ObservedSpec, observedSpec } from "./live_spec.ts";
import { macOf, volumeNameBoot, volumeNameData } from "./naming.ts";
import type { DriftChange, DriftReport } from "./plan_types.ts";
import { canonicalJson, specDocument, type StoredVm } from "./stored_metadata.ts";
import { resourceMaxima, type VirtualMachine } from "./types.ts";

/** The graphics listen address foundry uses when a spec gives none. */
const DEFAULT_GRAPHICS_LISTEN = "127.0.0.1";

/** The XMLs of a domain that drift is computed from. */
export interface DomainXmls {
  /** `virDomainGetXMLDesc` without flags: the running state, or the definition when stopped. */
  current: string;
  /**
   * The persistent definition (`DomainXmlFlags.INACTIVE`) of a running domain; not needed for a
   * stopped one (its current XML is its definition).
   */
  inactive?: string;
  /** Whether the domain starts with the host, when known. */
  autostart?: boolean;
}

/** SHA-256 (lowercase hex) of `text`, with WebCrypto (no `node:crypto`, see the module doc). */
async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Whether the stored document still has the hash recorded with it (`specSha256` of metadata.ts,
 * computed the same way); `undefined` when none was recorded (a VM stored before hashes were).
 */
export async function storedSpecHashMatches(stored: StoredVm): Promise<boolean | undefined> {
  if (stored.specSha256 === undefined) return undefined;
  return await storedSpecSha256(stored) === stored.specSha256;
}

/** The SHA-256 of the stored document as it reads now. */
function storedSpecSha256(stored: StoredVm): Promise<string> {
  return sha256Hex(canonicalJson(specDocument(stored.vm)));
}

/** True when the current XML is a running domain's (it carries a positive `id`). */
export function isActiveDomainXml(xml: string): boolean {
  const m = /^\s*(?:<\?[^>]*\?>\s*)?<domain\b[^>]*\sid=['"](\d+)['"]/.exec(xml);
  return m !== null && Number(m[1]) > 0;
}

/** How a spec names a disk's source, from what the domain has. */
function sourceOf(d: ObservedDisk): string | undefined {
  if (d.pool !== undefined && d.volume !== undefined) return `${d.pool}:${d.volume}`;
  return d.file ?? d.dev ?? d.volume;
}

/** Whether the disk `d` is what a spec's `volume` (`pool:volume` or a path) or volume name names. */
function sameSource(d: ObservedDisk, wanted: string): boolean {
  const have = sourceOf(d);
  if (have === wanted) return true;
  const colon = wanted.startsWith("/") ? -1 : wanted.indexOf(":");
  const name = colon < 0 ? wanted : wanted.slice(colon + 1);
  if (wanted.startsWith("/")) return d.file === wanted || d.dev === wanted;
  // A directory pool's volume is the file of that name; `pool:volume` matches the volume by name.
  if (d.volume !== undefined) {
    return d.volume === name && (colon < 0 || d.pool === wanted.slice(0, colon));
  }
  return d.file !== undefined && d.file.slice(d.file.lastIndexOf("/") + 1) === name;
}

/** The source a stored spec expects on each guest device; the boot disk's device is found. */
function expectedDisks(vm: VirtualMachine, disks: ObservedDisk[]): Map<string, string> {
  const name = vm.metadata.name;
  const out = new Map<string, string>();
  const boot: { volume?: string } = vm.spec.bootDisk ?? {};
  const bootSource = boot.volume ?? volumeNameBoot(name);
  // An adopted VM's boot disk is wherever its volume is; foundry's own is vda.
  const bootDevice = boot.volume === undefined
    ? "vda"
    : disks.find((d) => sameSource(d, bootSource))?.device ?? "vda";
  out.set(bootDevice, bootSource);
  for (const d of vm.spec.dataDisks ?? []) {
    out.set(d.device, d.volume ?? volumeNameData(name, d.device));
  }
  return out;
}

/** Field by field differences between a stored spec and what one XML of its domain has. */
function compare(
  vm: VirtualMachine,
  o: ObservedSpec,
  where: "live" | "config",
): DriftChange[] {
  const out: DriftChange[] = [];
  const add = (path: string, stored: unknown, actual: unknown) =>
    out.push({ path, stored, actual, where });
  const spec = vm.spec;
  const memoryMiB = Math.round(spec.memoryGiB * 1024);
  if (typeof spec.vcpus === "number" && spec.vcpus !== o.vcpus) {
    // Live, a value above the running maximum is a change waiting for the next boot.
    if (where === "config" || spec.vcpus <= o.maxVcpus) add("spec.vcpus", spec.vcpus, o.vcpus);
  }
  if (typeof spec.memoryGiB === "number" && memoryMiB !== o.memoryMiB) {
    // Live, an untouched balloon sits at the maximum (no driver in the guest yet): not drift.
    const balloonMoved = o.memoryMiB !== o.maxMemoryMiB;
    if (where === "config" || (memoryMiB <= o.maxMemoryMiB && balloonMoved)) {
      add("spec.memoryGiB", spec.memoryGiB, o.memoryMiB / 1024);
    }
  }
  // The maxima never change on a running domain: a difference there waits for the next boot.
  if (where === "config" && typeof spec.vcpus === "number" && typeof spec.memoryGiB === "number") {
    const defaults = resourceMaxima({ vcpus: spec.vcpus, memoryGiB: spec.memoryGiB });
    const maxVcpus = spec.resources?.maxVcpus;
    if (
      maxVcpus !== undefined
        ? o.maxVcpus !== maxVcpus
        : o.maxVcpus < spec.vcpus || o.maxVcpus > defaults.maxVcpus
    ) {
      add("spec.resources.maxVcpus", maxVcpus ?? `${spec.vcpus}-${defaults.maxVcpus}`, o.maxVcpus);
    }
    const maxMemoryGiB = spec.resources?.maxMemoryGiB;
    const maxMiB = maxMemoryGiB === undefined ? undefined : Math.round(maxMemoryGiB * 1024);
    // With NUMA cells libvirt makes `<memory>` their sum: the cells are compared instead.
    if (
      spec.numa === undefined &&
      (maxMiB !== undefined
        ? o.maxMemoryMiB !== maxMiB
        : o.maxMemoryMiB < memoryMiB || o.maxMemoryMiB > defaults.maxMemoryMiB)
    ) {
      add(
        "spec.resources.maxMemoryGiB",
        maxMemoryGiB ?? `${spec.memoryGiB}-${defaults.maxMemoryMiB / 1024}`,
        o.maxMemoryMiB / 1024,
      );
    }
  }
  const disks = o.disks.filter((d) => d.kind === "disk");
  const expected = expectedDisks(vm, disks);
  for (const [device, source] of expected) {
    const d = disks.find((x) => x.device === device);
    const path = device === [...expected.keys()][0] ? "spec.bootDisk" : `spec.dataDisks[${device}]`;
    if (d === undefined) add(path, source, undefined);
    else if (!sameSource(d, source)) add(`${path}.volume`, source, sourceOf(d));
  }
  for (const d of disks) {
    if (!expected.has(d.device)) add(`spec.dataDisks[${d.device}]`, undefined, sourceOf(d));
  }
  const nics = o.nics;
  const storedMacs = new Set<string>();
  for (const nic of spec.networkInterfaces ?? []) {
    if (nic.ip === undefined && nic.mac === undefined) continue;
    const mac = macOf(nic);
    storedMacs.add(mac);
    const have = nics.find((n) => n.mac === mac);
    const path = `spec.networkInterfaces[${mac}]`;
    if (have === undefined) add(path, { bridge: nic.bridge, mac }, undefined);
    else if (have.type !== "bridge") {
      add(
        `${path}.bridge`,
        nic.bridge,
        `${have.type} ${have.network ?? have.sourceDev ?? ""}`.trim(),
      );
    } else if (have.bridge !== nic.bridge) add(`${path}.bridge`, nic.bridge, have.bridge);
  }
  for (const n of nics) {
    if (n.mac !== undefined && storedMacs.has(n.mac)) continue;
    add(
      `spec.networkInterfaces[${n.mac ?? "?"}]`,
      undefined,
      n.bridge !== undefined ? { bridge: n.bridge, mac: n.mac } : { type: n.type, mac: n.mac },
    );
  }
  const cpu = spec.cpu;
  if (cpu !== undefined) {
    for (const key of ["sockets", "cores", "threads"] as const) {
      if (cpu[key] !== undefined && cpu[key] !== o.cpu?.[key]) {
        add(`spec.cpu.${key}`, cpu[key], o.cpu?.[key]);
      }
    }
  }
  const mode = cpu?.mode ?? spec.cpuMode;
  if (mode !== undefined && o.domainType === "kvm" && o.cpu?.mode !== mode) {
    add(cpu?.mode !== undefined ? "spec.cpu.mode" : "spec.cpuMode", mode, o.cpu?.mode);
  }
  if (spec.numa !== undefined) {
    const want = spec.numa.map((c) => ({ cpus: c.cpus, memoryGiB: c.memoryGiB }));
    const have = (o.numa ?? []).map((c) => ({ cpus: c.cpus, memoryGiB: c.memoryMiB / 1024 }));
    if (canonicalJson(want) !== canonicalJson(have)) add("spec.numa", want, have);
  }
  const g = o.graphics[0];
  if (spec.graphics !== undefined) {
    if (g === undefined || g.type !== spec.graphics.type) {
      add("spec.graphics.type", spec.graphics.type, g?.type);
    } else {
      const listen = spec.graphics.listen ?? DEFAULT_GRAPHICS_LISTEN;
      if (g.listen !== undefined && g.listen !== listen) {
        add("spec.graphics.listen", listen, g.listen);
      }
    }
  } else if (g !== undefined) add("spec.graphics", undefined, { type: g.type });
  if (spec.domainType !== undefined && spec.domainType !== o.domainType) {
    add("spec.domainType", spec.domainType, o.domainType);
  }
  return out;
}

/**
 * The drift of a VM from its stored spec and domain XMLs, without the spec hash check (see
 * {@linkcode storedSpecHashMatches}; {@linkcode driftOf} does both). Pure, for `get` and tests.
 */
export function driftChanges(stored: StoredVm, xmls: DomainXmls): DriftChange[] {
  const vm = stored.vm;
  const current = observedSpec(xmls.current);
  const out: DriftChange[] = [];
  if (current.active && xmls.inactive !== undefined) {
    const config = observedSpec(xmls.inactive);
    out.push(...compare(vm, config, "config"));
    // foundry writes a vCPU increase of a TCG domain for its next boot (resize and apply never
    // hot-plug vCPUs there): fewer vCPUs live than stored, with the definition as stored, is
    // that change waiting, not drift.
    const waiting = (c: DriftChange) =>
      c.path === "spec.vcpus" && current.domainType === "qemu" &&
      config.vcpus === vm.spec.vcpus && current.vcpus < vm.spec.vcpus;
    out.push(...compare(vm, current, "live").filter((c) => !waiting(c)));
  } else {
    out.push(...compare(vm, current, current.active ? "live" : "config"));
  }
  const autostart = vm.spec.autostart ?? true;
  if (xmls.autostart !== undefined && xmls.autostart !== autostart) {
    out.push({
      path: "spec.autostart",
      stored: autostart,
      actual: xmls.autostart,
      where: "config",
    });
  }
  return out;
}

/**
 * The whole drift report from what `get` already read: the changes of {@linkcode driftChanges}
 * and, when the stored spec no longer has its recorded hash, a `specSha256` change with
 * `where: "metadata"` (stored: the recorded hash; actual: the stored document's hash now).
 */
export async function driftReport(
  name: string,
  stored: StoredVm,
  xmls: DomainXmls,
): Promise<DriftReport> {
  const changes = driftChanges(stored, xmls);
  const specHashMatches = await storedSpecHashMatches(stored);
  if (specHashMatches === false) {
    changes.unshift({
      path: "specSha256",
      stored: stored.specSha256,
      actual: await storedSpecSha256(stored),
      where: "metadata",
    });
  }
  return { name, changes, specHashMatches };
}

/**
 * What changed behind foundry's back in VM `name`: its stored spec against its running state, its
 * persistent definition and the hash recorded with it. Reads the domain's XML (and, running, its
 * persistent definition) and its autostart flag.
 *
 * @throws {import("./vm_errors.ts").VmNotFoundError} when there is no such domain
 * @throws {VmOperationError} when the domain is not foundry's
 */
export async function driftOf(lv: Libvirt, name: string): Promise<DriftReport> {
  const { domain, xml, stored } = await lookupVm(lv, name);
  if (stored === undefined) {
    throw new VmOperationError(`VM ${name} was not created by foundry (no foundry metadata)`);
  }
  const [inactive, autostart] = await Promise.all([
    isActiveDomainXml(xml)
      ? lv.domainGetXmlDesc(domain, DomainXmlFlags.INACTIVE)
      : Promise.resolve(undefined),
    lv.domainGetAutostart(domain),
  ]);
  const xmls: DomainXmls = { current: xml, autostart };
  if (inactive !== undefined) xmls.inactive = inactive;
  return await driftReport(name, stored, xmls);
}

/** A value as a drift line shows it. */
function shown(value: unknown): string {
  if (value === undefined) return "(none)";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/**
 * The report as text, one line per change: `path: stored -> actual (where)`; `NAME: no drift`
 * when there is none.
 */
export function formatDrift(report: DriftReport): string {
  if (report.changes.length === 0) return `${report.name}: no drift`;
  return report.changes.map((c) =>
    `${c.path}: ${shown(c.stored)} -> ${shown(c.actual)} (${c.where})`
  ).join("\n");
}

/** The message of a `Drifted` condition: the changed paths, each once, with where. */
export function driftSummary(report: DriftReport): string {
  if (report.changes.length === 0) return "the domain is as foundry left it";
  const seen = new Set<string>();
  for (const c of report.changes) seen.add(`${c.path} (${c.where})`);
  return `changed behind foundry's back: ${[...seen].join(", ")}`;
}
