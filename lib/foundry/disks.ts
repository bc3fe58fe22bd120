/**
 * The disks of a libvirt domain and who else uses them: what `destroy` may delete. A volume goes
 * only when foundry created it for this very domain, it is still attached, and nothing else on the
 * host uses it (another domain, running or not, or a volume whose backing file it is).
 * @module
 */
import { XMLParser } from "npm:fast-xml-parser@^5.12.1";
import {
  type DomainRef,
  DomainXmlFlags,
  type Libvirt,
  LibvirtError,
  type StorageVolRef,
} from "../libvirt/mod.ts";
import type { StoredVm } from "./metadata.ts";
import { volumeNameBoot, volumeNameCloudInit, volumeNameData } from "./naming.ts";

/** A disk `destroy` left alone, and why. */
export interface KeptDisk {
  /** `pool/volume` for a volume disk, the path for a file or block disk. */
  disk: string;
  /** Why it was not deleted, e.g. `not created by foundry for this VM`. */
  reason: string;
}

/** A disk of a domain as its XML describes it. */
export interface DomainDisk {
  /** `<disk type>`: `volume`, `file`, `block`, `network`, ... */
  type: string;
  /** `<disk device>`: `disk`, `cdrom`, ... */
  device: string;
  /** Target device, e.g. `vda`; "" when absent. */
  target: string;
  /** Pool of a volume disk. */
  pool?: string;
  /** Volume of a volume disk. */
  volume?: string;
  /** Path of a file, block or directory disk (or the one libvirt resolved for a volume). */
  path?: string;
  /** Paths of the backing chain libvirt reports for a running domain. */
  backing: string[];
}

type XmlNode = Record<string, unknown>;
const diskParser = new XMLParser({
  ignoreAttributes: false,
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (_name: string, _path: unknown, _leaf: boolean, isAttribute: boolean) => !isAttribute,
});

function firstNode(value: unknown): XmlNode | undefined {
  const first = Array.isArray(value) ? value[0] : undefined;
  return typeof first === "object" && first !== null ? first as XmlNode : undefined;
}

function attr(node: XmlNode | undefined, name: string): string | undefined {
  const v = node?.[`@_${name}`];
  return typeof v === "string" ? v : undefined;
}

function backingPaths(node: XmlNode | undefined, out: string[] = []): string[] {
  for (let b = firstNode(node?.backingStore); b; b = firstNode(b.backingStore)) {
    const src = firstNode(b.source);
    const path = attr(src, "file") ?? attr(src, "dev");
    if (path) out.push(path);
  }
  return out;
}

/** The disks of a domain XML, in XML order. */
export function domainDisks(domainXml: string): DomainDisk[] {
  const doc = diskParser.parse(domainXml) as XmlNode;
  const devices = firstNode(firstNode(doc.domain)?.devices);
  const out: DomainDisk[] = [];
  for (const d of (devices?.disk as unknown[] | undefined) ?? []) {
    if (typeof d !== "object" || d === null) continue;
    const node = d as XmlNode;
    const src = firstNode(node.source);
    const disk: DomainDisk = {
      type: attr(node, "type") ?? "",
      device: attr(node, "device") ?? "disk",
      target: attr(firstNode(node.target), "dev") ?? "",
      backing: backingPaths(node),
    };
    const pool = attr(src, "pool");
    const volume = attr(src, "volume");
    if (disk.type === "volume" && pool && volume) {
      disk.pool = pool;
      disk.volume = volume;
    }
    const path = attr(src, "file") ?? attr(src, "dev") ?? attr(src, "dir");
    if (path) disk.path = path;
    out.push(disk);
  }
  return out;
}

/** The pool volumes a domain's disks use (`<source pool= volume=>`), in XML order. */
export function domainVolumes(domainXml: string): { pool: string; volume: string }[] {
  return domainDisks(domainXml).flatMap((d) =>
    d.pool && d.volume ? [{ pool: d.pool, volume: d.volume }] : []
  );
}

/** How a disk is named to the user: `pool/volume`, or its path. */
function diskLabel(d: DomainDisk): string | undefined {
  return d.pool && d.volume ? `${d.pool}/${d.volume}` : d.path;
}

/**
 * `path` with `.`, `..` and repeated slashes resolved (textually: symbolic links cannot be seen
 * through the daemon's API), so that `/pool/./x` and `/pool//x` name `/pool/x`.
 */
function normalPath(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}

/**
 * Every name by which `d` may refer to a volume: its key when libvirt resolves it, path, pool/name;
 * with `withBacking`, those of the files in its backing chain too.
 */
async function diskIdentities(lv: Libvirt, d: DomainDisk, withBacking = true): Promise<string[]> {
  const ids = withBacking ? d.backing.map((p) => `path:${normalPath(p)}`) : [];
  if (d.pool && d.volume) ids.push(`vol:${d.pool}/${d.volume}`);
  if (d.path) ids.push(`path:${normalPath(d.path)}`);
  try {
    const ref = d.pool && d.volume
      ? await lv.storageVolLookupByName(await lv.storagePoolLookupByName(d.pool), d.volume)
      : d.path
      ? await lv.storageVolLookupByPath(normalPath(d.path))
      : undefined;
    if (ref) ids.push(`key:${ref.key}`, `vol:${ref.pool}/${ref.name}`);
  } catch { /* not a volume libvirt knows (or its pool is inactive): the names above remain */ }
  for (const p of withBacking ? d.backing : []) {
    const ref = await lv.storageVolLookupByPath(normalPath(p)).catch(() => undefined);
    if (ref) ids.push(`key:${ref.key}`);
  }
  return ids;
}

/**
 * Who else uses a volume, by each name it may go by (see {@linkcode diskIdentities}): every other
 * domain's disks, running and persistent definitions with the backing chains libvirt reports, and
 * every volume of an active pool whose backing file it is (a linked clone of a stopped VM shows
 * its backing file nowhere else). Volumes in `own`, the candidates themselves, do not count.
 */
async function diskUsers(
  lv: Libvirt,
  name: string,
  own: readonly { pool: string; name: string }[],
): Promise<Map<string, string>> {
  const usedBy = new Map<string, string>();
  const add = (id: string, user: string) => {
    if (!usedBy.has(id)) usedBy.set(id, user);
  };
  const others = (await lv.listAllDomains()).filter((d) => d.name !== name);
  await Promise.all(others.map(async (other) => {
    const xmls = await Promise.all([
      lv.domainGetXmlDesc(other).catch(() => ""),
      lv.domainGetXmlDesc(other, DomainXmlFlags.INACTIVE).catch(() => ""),
    ]);
    const theirs = xmls.flatMap((x) => x ? domainDisks(x) : []);
    for (const ids of await Promise.all(theirs.map((d) => diskIdentities(lv, d)))) {
      for (const id of ids) add(id, `domain ${other.name}`);
    }
  }));
  const mine = new Set(own.map((v) => `${v.pool}/${v.name}`));
  const pools = await lv.listAllStoragePools(2 /* VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE */);
  await Promise.all(pools.map(async (p) => {
    const vols = await lv.storagePoolListAllVolumes(p).catch(() => [] as StorageVolRef[]);
    await Promise.all(vols.map(async (v) => {
      if (mine.has(`${v.pool}/${v.name}`)) return;
      const xml = await lv.storageVolGetXmlDesc(v).catch(() => "");
      const backing = /<backingStore>\s*<path>([^<]+)<\/path>/.exec(xml)?.[1];
      if (backing) {
        add(
          `path:${normalPath(unescapeXml(backing))}`,
          `volume ${v.pool}/${v.name} (its backing file)`,
        );
      }
    }));
  }));
  return usedBy;
}

function unescapeXml(s: string): string {
  return s.replaceAll("&apos;", "'").replaceAll("&quot;", '"').replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">").replaceAll("&amp;", "&");
}

/**
 * Which volumes `destroy` deletes, decided before anything changes, and which disks it keeps; see
 * `destroyVm` for the rules.
 *
 * @param uuid the domain's UUID, lowercase, from its XML
 * @param stored foundry's record of the domain, undefined for a domain foundry did not create
 * @param disks the domain's disks, running and persistent definitions (duplicates are fine)
 */
export async function planVolumeDeletion(
  lv: Libvirt,
  domain: DomainRef,
  uuid: string | undefined,
  stored: StoredVm | undefined,
  disks: DomainDisk[],
): Promise<{ delete: StorageVolRef[]; kept: KeptDisk[] }> {
  const name = domain.name;
  const own = [...new Map(disks.flatMap((d) => {
    const label = diskLabel(d);
    return label === undefined ? [] : [[label, d] as const];
  })).values()];
  // With the backing chain to tell whether a volume is attached (an external snapshot's base is);
  // without, to tell whether a disk itself is one that goes.
  const ownIds = await Promise.all(own.map((d) => diskIdentities(lv, d)));
  const ownDirectIds = await Promise.all(own.map((d) => diskIdentities(lv, d, false)));

  type Candidate = { pool: string; name: string; key?: string };
  let candidates: Candidate[] = [];
  const copied = stored?.volumesDomainUuid !== undefined &&
    stored.volumesDomainUuid.toLowerCase() !== uuid;
  if (copied) {
    // A definition copied from another domain, foundry's record with it: none of it is ours.
  } else if (stored?.volumes) {
    candidates = stored.volumes.map((v) => ({ pool: v.pool, name: v.name, key: v.key }));
  } else if (stored) {
    // No record (an older foundry): the naming convention, in the pool of the boot disk only.
    const bootPool = own.find((d) => d.target === "vda" && d.volume === volumeNameBoot(name))
      ?.pool;
    const dataDevices = new Set((stored.vm.spec.dataDisks ?? []).map((d) => d.device));
    candidates = own.filter((d) =>
      d.pool === bootPool && d.volume !== undefined && (
        (d.target === "vda" && d.volume === volumeNameBoot(name)) ||
        (d.target === "sda" && d.volume === volumeNameCloudInit(name)) ||
        (dataDevices.has(d.target) && d.volume === volumeNameData(name, d.target))
      )
    ).map((d) => ({ pool: d.pool!, name: d.volume! }));
  }

  const usedBy = candidates.length ? await diskUsers(lv, name, candidates) : new Map();

  const toDelete: StorageVolRef[] = [];
  const keptBecause = new Map<string, string>(); // identity -> reason, for candidates kept
  const kept: KeptDisk[] = [];
  for (const c of candidates) {
    const label = `${c.pool}/${c.name}`;
    let ref: StorageVolRef;
    try {
      ref = await lv.storageVolLookupByName(await lv.storagePoolLookupByName(c.pool), c.name);
    } catch (e) {
      if (e instanceof LibvirtError && (e.isNoStorageVol() || e.isNoStoragePool())) continue;
      kept.push({ disk: label, reason: `cannot be looked up: ${(e as Error).message}` });
      continue;
    }
    const path = normalPath(await lv.storageVolGetPath(ref).catch(() => ref.key));
    const ids = [`key:${ref.key}`, `path:${path}`, `vol:${label}`];
    const attached = ownIds.some((own) => own.some((id) => ids.includes(id)));
    const user = ids.map((id) => usedBy.get(id)).find((u) => u !== undefined);
    let reason: string | undefined;
    if (c.key !== undefined && ref.key !== c.key) {
      reason = "not the volume created for this VM (its key changed)";
    } else if (!attached) reason = "created for this VM but no longer attached to it";
    else if (user !== undefined) reason = `also used by ${user}`;
    if (reason === undefined) {
      toDelete.push(ref);
      continue;
    }
    for (const id of ids) keptBecause.set(id, reason);
    if (!attached) kept.push({ disk: label, reason });
  }
  const deletedIds = new Set(toDelete.flatMap((r) => [`key:${r.key}`, `vol:${r.pool}/${r.name}`]));
  own.forEach((d, i) => {
    const ids = ownDirectIds[i] ?? [];
    if (ids.some((id) => deletedIds.has(id))) return;
    const because = ids.map((id) => keptBecause.get(id)).find((r) => r !== undefined);
    kept.push({
      disk: diskLabel(d)!,
      reason: because ??
        (copied
          ? "the volume record was written for another domain (a copied definition)"
          : stored
          ? "not created by foundry for this VM"
          : "the domain was not created by foundry"),
    });
  });
  return { delete: toDelete, kept };
}
