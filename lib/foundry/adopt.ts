/**
 * `foundry adopt`: a `foundry.cofront.xyz/v1alpha1` spec for a domain foundry did not create (made
 * with virt-install, Ansible, virsh), and with `apply` the spec stored in the domain so that
 * foundry manages it from then on.
 *
 * The spec says what the domain's persistent definition has: its disks as they are (`volume`:
 * `pool:volume` when the file is a volume of a libvirt pool, else the absolute path; the first
 * disk, or the one first in boot order, is the boot disk), its bridge NICs with their MACs and no
 * address (the guest keeps configuring itself), vCPUs and memory in use, the maxima as
 * `resources`, the CPU topology and mode, NUMA cells, the graphics type and listen address (never
 * a password), the domain type and autostart. `metadata.annotations["foundry.cofront.xyz/adopted"]`
 * is `"true"`. The spec is checked with the loader before anything is printed or stored: what adopt
 * writes is valid input for `foundry apply -f` (and for `create`, which refuses it only because the
 * VM exists).
 *
 * What a spec cannot say is refused, naming it: a NIC on a libvirt network or of another type than
 * bridge, a data disk that is not a virtio `vdb`-`vdz`, a network disk, a graphics type other than
 * vnc/spice, a domain type other than kvm/qemu. With `skipUnsupported` those are left out of the
 * spec (and said so) and the domain keeps them untouched. CD-ROMs are never in the spec (noted).
 *
 * Storing (`apply`): the spec, and beside it foundry's record of the VM's volumes listing the pool
 * volumes adopt found, bound to the domain's UUID, so that `foundry destroy` deletes them as it
 * deletes the volumes of the VMs it created. A disk that is a file in no libvirt pool is not in
 * the record, and destroy never deletes it. Adopting changes nothing else in the domain.
 *
 * @example
 * ```ts
 * import { Libvirt } from "../libvirt/mod.ts";
 * import { adoptVm } from "./adopt.ts";
 * const lv = await Libvirt.connect();
 * const r = await adoptVm(lv, "legacy-01", { labels: { team: "ops" } });
 * console.log(r.vm.spec.networkInterfaces, r.notes);
 * await lv.close();
 * ```
 *
 * @module
 */
import { XMLBuilder } from "npm:fast-xml-parser@^5.12.1";
import {
  type DomainRef,
  DomainStatsType,
  DomainXmlFlags,
  type Libvirt,
  LibvirtError,
} from "../libvirt/mod.ts";
import { writeDomainRecord } from "./domain_records.ts";
import { ADOPTED_ANNOTATION } from "./apply.ts";
import { parseVirtualMachine } from "./loader.ts";
import { isActiveDomainXml } from "./drift.ts";
import { type ObservedDisk, type ObservedSpec, observedSpec } from "./live_spec.ts";
import { lookupVm } from "./lookup.ts";
import {
  type CreatedVolume,
  metadataNode,
  storedMetadataXml,
  VOLUMES_ELEMENT,
  VOLUMES_PREFIX,
} from "./metadata.ts";
import { API_VERSION, GRAPHICS_TYPES, KIND, type VirtualMachine } from "./types.ts";

// apply's planner owns the annotation (it forbids recreating an adopted VM); adopt writes it.
export { ADOPTED_ANNOTATION };

const GIB = 1024 ** 3;
const DATA_DEVICE = /^vd([b-z]|[a-z]{2})$/;

/** Options of {@linkcode adoptSpec} and {@linkcode adoptVm}. */
export interface AdoptOptions {
  /** Labels of the spec (`--label k=v`). */
  labels?: Record<string, string>;
  /** Leave out what a spec cannot say instead of refusing (see the module doc). */
  skipUnsupported?: boolean;
}

/** What adopt made of a domain. */
export interface AdoptResult {
  /** The spec, as the loader reads it back. */
  vm: VirtualMachine;
  /** The pool volumes of its disks: what the volume record lists once stored. */
  volumes: CreatedVolume[];
  /** What the spec leaves out or does not say, one line each (skipped items, CD-ROMs, passwords). */
  notes: string[];
  /** Whether the spec was stored in the domain. */
  stored: boolean;
}

/** Why a domain cannot be adopted. */
export class AdoptError extends Error {
  /** The domain. */
  readonly domain: string;
  /**
   * `managed`: foundry's already; `unsupported`: it has what a spec cannot say (`items`);
   * `invalid`: the spec made of it is not valid (its name, a limit).
   */
  readonly reason: "managed" | "unsupported" | "invalid";
  /** The items a spec cannot say, for `unsupported`. */
  readonly items: readonly string[];
  /** Creates the error. */
  constructor(
    domain: string,
    reason: AdoptError["reason"],
    message: string,
    items: readonly string[] = [],
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "AdoptError";
    this.domain = domain;
    this.reason = reason;
    this.items = items;
  }
}

/** What adopt learnt of one disk from libvirt: how a spec names it and how big it is. */
export interface DiskFacts {
  /** `pool:volume`, or the absolute path of a file or block device in no pool. */
  source: string;
  /** Capacity in bytes, when known. */
  capacity?: number;
  /** The pool volume, when it is one. */
  volume?: { pool: string; name: string; key: string };
}

/** The boot disk among `disks`: the first in boot order, else the first. */
function bootDiskOf(disks: ObservedDisk[]): ObservedDisk | undefined {
  const ordered = disks.filter((d) => d.bootOrder !== undefined)
    .sort((a, b) => a.bootOrder! - b.bootOrder!);
  return ordered[0] ?? disks[0];
}

/** Whole GB (GiB, as specs read them), rounded up; a note when that is not exact. */
function sizeGBOf(device: string, capacity: number | undefined, notes: string[]): number {
  if (capacity === undefined || capacity <= 0) {
    notes.push(`disk ${device}: size unknown, written as 1 GB`);
    return 1;
  }
  const size = Math.ceil(capacity / GIB);
  if (size * GIB !== capacity) {
    notes.push(
      `disk ${device}: ${capacity} bytes is not a whole GB, written as ${size} GB ` +
        "(the disk itself is not changed)",
    );
  }
  return size;
}

/**
 * The spec document (not yet checked by the loader) of a domain: pure, from what its persistent
 * definition has (`o`), what libvirt said of its disks (`facts`, by device) and its autostart
 * flag. Returns the document, the pool volumes found, what a spec cannot say (`unsupported`) and
 * notes.
 */
export function adoptedDocument(
  o: ObservedSpec,
  facts: ReadonlyMap<string, DiskFacts>,
  autostart: boolean,
  opts: AdoptOptions = {},
): {
  doc: Record<string, unknown>;
  volumes: CreatedVolume[];
  unsupported: string[];
  notes: string[];
} {
  const unsupported: string[] = [];
  const notes: string[] = [];
  const volumes: CreatedVolume[] = [];
  const disks = o.disks.filter((d) => d.kind === "disk");
  for (const d of o.disks) {
    if (d.kind !== "disk") {
      notes.push(`${d.kind} ${d.device}: not in the spec, left as it is`);
    }
  }
  const usable = disks.filter((d) => {
    if (facts.has(d.device)) return true;
    unsupported.push(`disk ${d.device}: a ${d.type} disk (a spec names files and pool volumes)`);
    return false;
  });
  const boot = bootDiskOf(usable);
  const spec: Record<string, unknown> = {
    vcpus: o.vcpus,
    memoryGiB: o.memoryMiB / 1024,
  };
  if (boot === undefined) {
    unsupported.push("no disk: a spec needs a boot disk");
  } else {
    const f = facts.get(boot.device)!;
    spec.bootDisk = { volume: f.source, sizeGB: sizeGBOf(boot.device, f.capacity, notes) };
    if (f.volume) {
      volumes.push({ role: "boot", ...f.volume });
      spec.storagePool = f.volume.pool;
    }
  }
  const dataDisks: Record<string, unknown>[] = [];
  for (const d of usable) {
    if (d === boot) continue;
    if (!DATA_DEVICE.test(d.device) || (d.bus !== undefined && d.bus !== "virtio")) {
      unsupported.push(
        `disk ${d.device} (${d.bus ?? "no"} bus): foundry's data disks are virtio vdb to vdz`,
      );
      continue;
    }
    const f = facts.get(d.device)!;
    const disk: Record<string, unknown> = {
      device: d.device,
      volume: f.source,
      sizeGB: sizeGBOf(d.device, f.capacity, notes),
    };
    if (d.serial !== undefined && d.serial !== "") disk.serial = d.serial;
    dataDisks.push(disk);
    if (f.volume) volumes.push({ role: "data", ...f.volume });
  }
  if (dataDisks.length > 0) spec.dataDisks = dataDisks;
  const nics: Record<string, unknown>[] = [];
  for (const n of o.nics) {
    if (n.type === "bridge" && n.bridge !== undefined && n.mac !== undefined) {
      nics.push({ bridge: n.bridge, mac: n.mac });
      continue;
    }
    const what = n.type === "network"
      ? `on libvirt network "${n.network ?? "?"}"`
      : `of type ${n.type || "unknown"}`;
    unsupported.push(
      `interface ${n.mac ?? "without MAC"} ${what}: a spec attaches NICs to host bridges`,
    );
  }
  if (nics.length === 0) unsupported.push("no bridge interface: a spec needs at least one NIC");
  spec.networkInterfaces = nics;
  if (o.cpu !== undefined) {
    const cpu: Record<string, unknown> = {};
    const { sockets, cores, threads } = o.cpu;
    if (sockets !== undefined || cores !== undefined || threads !== undefined) {
      cpu.sockets = sockets ?? 1;
      cpu.cores = cores ?? 1;
      cpu.threads = threads ?? 1;
    }
    if (o.cpu.mode === "host-model" || o.cpu.mode === "host-passthrough") cpu.mode = o.cpu.mode;
    else if (o.cpu.mode !== undefined && o.cpu.mode !== "custom" && o.cpu.mode !== "maximum") {
      notes.push(`cpu mode ${o.cpu.mode}: not in the spec, left as it is`);
    }
    if (Object.keys(cpu).length > 0) spec.cpu = cpu;
  }
  if (o.numa !== undefined) {
    spec.numa = o.numa.map((c) => ({ cpus: c.cpus, memoryGiB: c.memoryMiB / 1024 }));
  }
  const [graphics, ...moreGraphics] = o.graphics;
  if (graphics !== undefined) {
    if ((GRAPHICS_TYPES as readonly string[]).includes(graphics.type)) {
      spec.graphics = graphics.listen === undefined
        ? { type: graphics.type }
        : { type: graphics.type, listen: graphics.listen };
      notes.push(
        `graphics ${graphics.type}: a console password, if the domain has one, stays in the ` +
          "domain and is not in the spec",
      );
    } else {
      unsupported.push(`graphics ${graphics.type}: a spec has vnc or spice`);
    }
  }
  for (const g of moreGraphics) notes.push(`graphics ${g.type}: only the first is in the spec`);
  spec.autostart = autostart;
  if (o.domainType === "kvm" || o.domainType === "qemu") spec.domainType = o.domainType;
  else unsupported.push(`domain type ${o.domainType || "unknown"}: a spec has kvm or qemu`);
  spec.resources = { maxVcpus: o.maxVcpus, maxMemoryGiB: o.maxMemoryMiB / 1024 };
  const metadata: Record<string, unknown> = { name: o.name };
  if (opts.labels !== undefined && Object.keys(opts.labels).length > 0) {
    metadata.labels = { ...opts.labels };
  }
  metadata.annotations = { [ADOPTED_ANNOTATION]: "true" };
  return {
    doc: { apiVersion: API_VERSION, kind: KIND, metadata, spec },
    volumes,
    unsupported,
    notes,
  };
}

/** Capacities of a domain's disks by path, from one bulk stats call (libvirt reads the images). */
async function blockCapacities(lv: Libvirt, domain: DomainRef): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const records = await lv.getAllDomainStats(DomainStatsType.BLOCK, 0, [domain]).catch(() => []);
  const params = new Map(
    (records[0]?.params ?? []).map((p) => [p.field, p.value] as const),
  );
  for (const [field, value] of params) {
    const m = /^block\.(\d+)\.path$/.exec(field);
    const capacity = Number(params.get(`block.${m?.[1]}.capacity`));
    if (m && typeof value === "string" && Number.isFinite(capacity)) out.set(value, capacity);
  }
  return out;
}

/** What libvirt says of each file, block or volume disk of the domain. */
async function diskFacts(
  lv: Libvirt,
  domain: DomainRef,
  o: ObservedSpec,
): Promise<Map<string, DiskFacts>> {
  const facts = new Map<string, DiskFacts>();
  let capacities: Map<string, number> | undefined;
  for (const d of o.disks.filter((x) => x.kind === "disk")) {
    let vol;
    try {
      if (d.type === "volume" && d.pool !== undefined && d.volume !== undefined) {
        vol = await lv.storageVolLookupByName(await lv.storagePoolLookupByName(d.pool), d.volume);
      } else if (d.type === "file" && d.file !== undefined) {
        vol = await lv.storageVolLookupByPath(d.file);
      } else if (d.type === "block" && d.dev !== undefined) {
        vol = await lv.storageVolLookupByPath(d.dev);
      } else continue; // network and other disks: not for a spec
    } catch (e) {
      if (!(e instanceof LibvirtError)) throw e;
      // In no pool: named by its path.
      const path = d.file ?? d.dev;
      if (path === undefined) continue;
      capacities ??= await blockCapacities(lv, domain);
      const f: DiskFacts = { source: path };
      const capacity = capacities.get(path);
      if (capacity !== undefined) f.capacity = capacity;
      facts.set(d.device, f);
      continue;
    }
    const info = await lv.storageVolGetInfo(vol);
    facts.set(d.device, {
      source: `${vol.pool}:${vol.name}`,
      capacity: Number(info.capacity),
      volume: { pool: vol.pool, name: vol.name, key: vol.key },
    });
  }
  return facts;
}

/**
 * The spec of domain `name`, checked with the loader, and what it leaves out; nothing is changed.
 *
 * @throws {AdoptError} when the domain is foundry's already, has what a spec cannot say (unless
 *   `skipUnsupported`) or makes no valid spec
 * @throws {import("./vm_errors.ts").VmNotFoundError} when there is no such domain
 */
export async function adoptSpec(
  lv: Libvirt,
  name: string,
  opts: AdoptOptions = {},
): Promise<Omit<AdoptResult, "stored"> & { domain: DomainRef; uuid: string | undefined }> {
  const { domain, xml, stored } = await lookupVm(lv, name);
  if (stored !== undefined) {
    throw new AdoptError(
      name,
      "managed",
      `VM ${name} is already managed by foundry (it has foundry's metadata): nothing to adopt`,
    );
  }
  const [definition, autostart] = await Promise.all([
    isActiveDomainXml(xml)
      ? lv.domainGetXmlDesc(domain, DomainXmlFlags.INACTIVE)
      : Promise.resolve(xml),
    lv.domainGetAutostart(domain),
  ]);
  const o = observedSpec(definition);
  const facts = await diskFacts(lv, domain, o);
  const made = adoptedDocument(o, facts, autostart, opts);
  if (made.unsupported.length > 0 && opts.skipUnsupported !== true) {
    throw new AdoptError(
      name,
      "unsupported",
      `cannot adopt ${name}: ${made.unsupported.join("; ")}`,
      made.unsupported,
    );
  }
  const notes = [...made.unsupported.map((u) => `left out: ${u}`), ...made.notes];
  let vm: VirtualMachine;
  try {
    // JSON is YAML: the loader checks exactly what `adopt -o json` prints.
    vm = parseVirtualMachine(JSON.stringify(made.doc), `adopt ${name}`);
  } catch (e) {
    throw new AdoptError(
      name,
      "invalid",
      `cannot adopt ${name}: ${(e as Error).message}`,
      [],
      { cause: e },
    );
  }
  const uuid = /<uuid>([^<]+)<\/uuid>/.exec(definition)?.[1]?.trim().toLowerCase();
  return { vm, volumes: made.volumes, notes, domain, uuid };
}

/** The volume record as virDomainSetMetadata takes it (a bare element, see `storedMetadataXml`). */
function volumesRecordXml(vm: VirtualMachine, volumes: CreatedVolume[], uuid?: string): string {
  const node = metadataNode(vm, volumes, uuid)[`${VOLUMES_PREFIX}:${VOLUMES_ELEMENT}`] as Record<
    string,
    unknown
  >;
  const { [`@_xmlns:${VOLUMES_PREFIX}`]: _ns, ...element } = node;
  return new XMLBuilder({ ignoreAttributes: false }).build({ [VOLUMES_ELEMENT]: element });
}

/**
 * Adopts domain `name`: makes its spec ({@linkcode adoptSpec}) and, unless `dryRun`, stores it
 * with the record of its pool volumes (persistent definition, and the running domain when it
 * runs). The domain is otherwise not changed: same disks, MACs, devices.
 *
 * @throws {AdoptError} see {@linkcode adoptSpec}
 */
export async function adoptVm(
  lv: Libvirt,
  name: string,
  opts: AdoptOptions & { dryRun?: boolean } = {},
): Promise<AdoptResult> {
  const made = await adoptSpec(lv, name, opts);
  const result = { vm: made.vm, volumes: made.volumes, notes: made.notes };
  if (opts.dryRun === true) return { ...result, stored: false };
  const running = isActiveDomainXml(await lv.domainGetXmlDesc(made.domain));
  // The volume record first: a spec without it would leave destroy the naming convention only.
  const volumes = volumesRecordXml(made.vm, made.volumes, made.uuid);
  await writeDomainRecord(lv, made.domain, "volumes", volumes, running);
  try {
    await writeDomainRecord(lv, made.domain, "spec", storedMetadataXml(made.vm), running);
  } catch (e) {
    // Undo the record: the domain stays as adopt found it.
    await writeDomainRecord(lv, made.domain, "volumes", null, running).catch(() => {});
    throw e;
  }
  return { ...result, stored: true };
}
