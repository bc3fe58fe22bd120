/**
 * What a libvirt domain has, in foundry's terms: sizes, disks, NICs, CPU topology, NUMA cells,
 * graphics, domain type and boot order, read from its XML (`virDomainGetXMLDesc`, live or
 * persistent). Drift detection compares it with the stored spec; `foundry adopt` writes a spec
 * from it. Pure, on foundry's own small XML reader (no npm package), so `get` may load it: the
 * sizes are read here rather than through `domainSizes` of resize.ts, whose imports (metadata,
 * cloud-init, the guest agent) cost `get` ~50 ms of loading (measured).
 *
 * @example
 * ```ts
 * import { observedSpec } from "./live_spec.ts";
 * const xml = `<domain type="qemu"><name>web</name><memory unit="KiB">1048576</memory>
 *   <vcpu current="1">2</vcpu><devices><interface type="bridge"><mac address="52:54:00:00:00:01"/>
 *   <source bridge="br0"/></interface></devices></domain>`;
 * const o = observedSpec(xml);
 * console.log(o.vcpus, o.maxVcpus, o.memoryMiB, o.nics[0]?.bridge); // 1 2 1024 br0
 * ```
 *
 * @module
 */
import { VmOperationError } from "./vm_errors.ts";
import { childElements, ownText, readXml, type XmlElement } from "./xml_reader.ts";

/** A disk (or CD-ROM) of the domain. */
export interface ObservedDisk {
  /** Guest device (`<target dev>`): `vda`, `sda`. */
  device: string;
  /** What the guest sees (`<disk device>`): `disk`, `cdrom`, `floppy`, `lun`. */
  kind: string;
  /** Where it comes from (`<disk type>`): `file`, `volume`, `block`, `network`, ... */
  type: string;
  /** Bus (`<target bus>`): `virtio`, `scsi`, `sata`, ... */
  bus?: string;
  /** Pool and volume of a `type="volume"` disk. */
  pool?: string;
  /** Volume of a `type="volume"` disk. */
  volume?: string;
  /** File of a `type="file"` disk. */
  file?: string;
  /** Block device of a `type="block"` disk. */
  dev?: string;
  /** Image format (`<driver type>`): `qcow2`, `raw`. */
  format?: string;
  /** `<serial>`. */
  serial?: string;
  /** Whether it is read-only. */
  readonly: boolean;
  /** Per-device boot order (`<boot order>`), when set. */
  bootOrder?: number;
}

/** A network interface of the domain. */
export interface ObservedNic {
  /** `<interface type>`: `bridge`, `network`, `direct`, `user`, ... */
  type: string;
  /** Host bridge of a `bridge` interface (or the bridge libvirt put a `network` one on, when live). */
  bridge?: string;
  /** Libvirt network of a `network` interface. */
  network?: string;
  /** Host device of a `direct` (macvtap) interface. */
  sourceDev?: string;
  /** MAC address, lowercase. */
  mac?: string;
  /** Model: `virtio`, `e1000e`, ... */
  model?: string;
  /** Host tap device name, when given. */
  target?: string;
  /** Per-device boot order, when set. */
  bootOrder?: number;
}

/** One NUMA cell of the domain's CPU. */
export interface ObservedNumaCell {
  /** Cell id. */
  id?: number;
  /** vCPU ids, libvirt's cpuset syntax. */
  cpus: string;
  /** Memory of the cell in MiB. */
  memoryMiB: number;
}

/** A graphical console (never its password). */
export interface ObservedGraphics {
  /** `vnc`, `spice`, ... */
  type: string;
  /** Address it listens on, when it says. */
  listen?: string;
}

/** What a domain has, in foundry's terms. */
export interface ObservedSpec {
  /** Domain name. */
  name: string;
  /** Domain type: `kvm`, `qemu` (TCG), "" when absent. */
  domainType: string;
  /** Whether the XML is a running domain's (it has a positive `id`). */
  active: boolean;
  /** vCPUs in use. */
  vcpus: number;
  /** vCPU slots (`<vcpu>`). */
  maxVcpus: number;
  /** Memory in use (`<currentMemory>`), MiB. */
  memoryMiB: number;
  /** Most memory (`<memory>`), MiB. */
  maxMemoryMiB: number;
  /** Disks and CD-ROMs in document order. */
  disks: ObservedDisk[];
  /** Network interfaces in document order. */
  nics: ObservedNic[];
  /** CPU mode and topology, when the domain has a `<cpu>`. */
  cpu?: { mode?: string; sockets?: number; cores?: number; threads?: number };
  /** NUMA cells, when the CPU has any. */
  numa?: ObservedNumaCell[];
  /** Graphical consoles. */
  graphics: ObservedGraphics[];
  /** Boot devices of `<os>` in order (`hd`, `cdrom`, `network`). */
  boot: string[];
}

const child = (el: XmlElement | undefined, name: string): XmlElement | undefined =>
  el === undefined ? undefined : childElements(el).find((c) => c.name === name);

const EMPTY: XmlElement = { name: "", attributes: {}, children: [] };

/** A whole number attribute, or undefined. */
function int(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

const KIB_PER_UNIT: Record<string, number> = {
  b: 1 / 1024,
  bytes: 1 / 1024,
  k: 1,
  kib: 1,
  m: 1024,
  mib: 1024,
  g: 1024 ** 2,
  gib: 1024 ** 2,
};

/** MiB (rounded down) of a memory amount in libvirt's units (KiB when none is given). */
function miB(value: string | undefined, unit: string | undefined): number | undefined {
  const per = KIB_PER_UNIT[(unit ?? "KiB").toLowerCase()];
  const n = Number(value?.trim());
  if (value === undefined || per === undefined || !Number.isFinite(n)) return undefined;
  return Math.floor((n * per) / 1024);
}

const elementMiB = (el: XmlElement | undefined) =>
  el === undefined ? undefined : miB(ownText(el), el.attributes.unit);

/** Sets `key` of `target` to `value` unless it is undefined (exactOptionalPropertyTypes). */
function put<T, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

function observedDisk(d: XmlElement): ObservedDisk | undefined {
  const device = child(d, "target")?.attributes.dev;
  if (device === undefined) return undefined;
  const src = child(d, "source")?.attributes ?? {};
  const disk: ObservedDisk = {
    device,
    kind: d.attributes.device ?? "disk",
    type: d.attributes.type ?? "",
    readonly: child(d, "readonly") !== undefined,
  };
  put(disk, "bus", child(d, "target")?.attributes.bus);
  put(disk, "pool", src.pool);
  put(disk, "volume", src.volume);
  put(disk, "file", src.file);
  put(disk, "dev", src.dev);
  put(disk, "format", child(d, "driver")?.attributes.type);
  const serial = child(d, "serial");
  if (serial !== undefined) disk.serial = ownText(serial).trim();
  put(disk, "bootOrder", int(child(d, "boot")?.attributes.order));
  return disk;
}

function observedNic(i: XmlElement): ObservedNic {
  const src = child(i, "source")?.attributes ?? {};
  const nic: ObservedNic = { type: i.attributes.type ?? "" };
  // A running `network` interface names the bridge libvirt put it on in <source bridge>.
  put(nic, "bridge", src.bridge);
  put(nic, "network", src.network);
  if (nic.type === "direct") put(nic, "sourceDev", src.dev);
  put(nic, "mac", child(i, "mac")?.attributes.address?.toLowerCase());
  put(nic, "model", child(i, "model")?.attributes.type);
  put(nic, "target", child(i, "target")?.attributes.dev);
  put(nic, "bootOrder", int(child(i, "boot")?.attributes.order));
  return nic;
}

function observedGraphics(g: XmlElement): ObservedGraphics {
  const out: ObservedGraphics = { type: g.attributes.type ?? "" };
  const listen = child(g, "listen");
  put(out, "listen", g.attributes.listen ?? listen?.attributes.address);
  return out;
}

function observedCpu(domain: XmlElement): Pick<ObservedSpec, "cpu" | "numa"> {
  const cpu = child(domain, "cpu");
  if (cpu === undefined) return {};
  const out: Pick<ObservedSpec, "cpu" | "numa"> = { cpu: {} };
  put(out.cpu!, "mode", cpu.attributes.mode);
  const topology = child(cpu, "topology")?.attributes ?? {};
  put(out.cpu!, "sockets", int(topology.sockets));
  put(out.cpu!, "cores", int(topology.cores));
  put(out.cpu!, "threads", int(topology.threads));
  const cells = childElements(child(cpu, "numa") ?? EMPTY).filter((c) => c.name === "cell");
  if (cells.length > 0) {
    out.numa = cells.map((c) => {
      const cell: ObservedNumaCell = {
        cpus: c.attributes.cpus ?? "",
        memoryMiB: miB(c.attributes.memory, c.attributes.unit) ?? 0,
      };
      put(cell, "id", int(c.attributes.id));
      return cell;
    });
  }
  return out;
}

/**
 * What the domain whose XML is `domainXml` has, in foundry's terms (sizes as `domainSizes` of
 * resize.ts reads them); graphics passwords are never read.
 *
 * @throws {import("./vm_errors.ts").VmOperationError} when the XML has no readable `<vcpu>` or
 *   `<memory>`
 * @throws {import("./xml_reader.ts").XmlReadError} when it is not well-formed
 */
export function observedSpec(domainXml: string): ObservedSpec {
  const domain = readXml(domainXml);
  const vcpu = child(domain, "vcpu");
  const maxVcpus = int(vcpu === undefined ? undefined : ownText(vcpu));
  const vcpus = vcpu?.attributes.current === undefined ? maxVcpus : int(vcpu.attributes.current);
  const maxMemoryMiB = elementMiB(child(domain, "memory"));
  const memoryMiB = elementMiB(child(domain, "currentMemory")) ?? maxMemoryMiB;
  if (
    maxVcpus === undefined || vcpus === undefined || maxMemoryMiB === undefined ||
    memoryMiB === undefined
  ) {
    throw new VmOperationError("the domain XML has no readable <vcpu> or <memory>");
  }
  const devices = child(domain, "devices") ?? EMPTY;
  const elements = childElements(devices);
  const id = int(domain.attributes.id);
  return {
    name: ownText(child(domain, "name") ?? EMPTY).trim(),
    domainType: domain.attributes.type ?? "",
    active: id !== undefined && id > 0,
    vcpus,
    maxVcpus,
    memoryMiB,
    maxMemoryMiB,
    disks: elements.filter((e) => e.name === "disk").flatMap((d) => observedDisk(d) ?? []),
    nics: elements.filter((e) => e.name === "interface").map(observedNic),
    ...observedCpu(domain),
    graphics: elements.filter((e) => e.name === "graphics").map(observedGraphics),
    boot: childElements(child(domain, "os") ?? EMPTY)
      .filter((e) => e.name === "boot" && e.attributes.dev !== undefined)
      .map((e) => e.attributes.dev!),
  };
}
